"""From evaluation records to claim records and their markdown (stages/claims: evidence, build,
record, render): checked inputs whose errors name the file and field, paired comparisons where
per-image data allow, degenerate models, the minimum sample size, the claims file's round trip
and the rendered summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stages.claims.build import ClaimBook
from stages.claims.evidence import (
    accuracy_difference,
    check_pair,
    evaluation,
    loss_difference,
    model_health,
)
from stages.claims.record import ClaimRecord, ClaimsFile, Effect, Quantity, read_claims, write_claims
from stages.claims.render import claim_bullet, outcome_counts, summary_table
from stages.claims.settings import ClaimSettings
from stages.claims.stats import (
    ABOVE_ZERO,
    Estimate,
    Method,
    Outcome,
    directional,
    mean_difference_paired,
    mean_paired,
    rate_difference_paired,
    within,
)
from stages.utils.errors import DataError

ALPHA = 0.05
IDS = "0" * 64


def record(
    correct: list[int], *, predictions: list[int] | None = None, ids: str = IDS, per_image: bool = True
) -> dict[str, Any]:
    """An evaluation JSON as the evaluate stage writes it (per-image block optional)."""
    n = len(correct)
    losses = [0.1 if c else 2.0 for c in correct]
    data: dict[str, Any] = {"samples": n, "accuracy": sum(correct) / n, "loss": sum(losses) / n}
    if per_image:
        data["per_image"] = {
            "correct": list(correct),
            "loss": losses,
            "prediction": predictions if predictions is not None else [i % 7 for i in range(n)],
            "ids_sha256": ids,
        }
    return data


def summary(accuracy: float, n: int) -> dict[str, Any]:
    return {"samples": n, "accuracy": accuracy, "loss": 1.0}


def first(k: int, n: int) -> list[int]:
    return [1] * k + [0] * (n - k)


# --- evidence: reading evaluations ---------------------------------------------------------------


@pytest.mark.parametrize(("accuracy", "n"), [(0.108, 500), (0.9031, 1000), (0.5, 2)])
def test_a_summary_only_evaluation_is_unpaired_and_counts_from_its_accuracy(accuracy: float, n: int) -> None:
    ev = evaluation(summary(accuracy, n), "results/evals/m/natural.json", "m", "natural")
    assert not ev.paired
    assert ev.correct is None and ev.losses is None and ev.predictions is None and ev.ids_sha256 is None
    assert ev.k == round(accuracy * n)
    assert (ev.n, ev.accuracy, ev.source) == (n, accuracy, "results/evals/m/natural.json")
    assert ev.image_values("loss") is None


def test_a_per_image_evaluation_counts_exactly_from_its_outcomes() -> None:
    data = record(first(54, 500))
    data["accuracy"] = 0.2  # a stale summary: the per-image outcomes win
    ev = evaluation(data, Path("results/evals/m/natural.json"), "m", "natural")
    assert ev.paired and ev.k == 54 and ev.ids_sha256 == IDS
    assert ev.correct.dtype.kind == "i" and ev.losses.dtype.kind == "f"
    q = ev.quantity("clean", ALPHA)
    assert q.value == pytest.approx(10.8) and q.unit == "%" and q.n == 500
    assert q.low < 10.8 < q.high and q.source == "results/evals/m/natural.json"
    np.testing.assert_array_equal(ev.image_values("loss"), ev.losses)


@pytest.mark.parametrize("field", ["correct", "loss", "prediction"])
def test_per_image_arrays_of_the_wrong_length_name_the_file_and_field(tmp_path: Path, field: str) -> None:
    data = record(first(5, 10))
    data["per_image"][field] = data["per_image"][field][:-1]
    source = tmp_path / "evals" / "m" / "natural.json"
    with pytest.raises(DataError) as err:
        evaluation(data, source, "m", "natural")
    message = str(err.value)
    assert str(source) in message
    assert f"per_image.{field}" in message
    assert "9 entries for 10 samples" in message


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (lambda d: d.pop("samples"), "samples"),
        (lambda d: d.pop("accuracy"), "accuracy"),
        (lambda d: d["per_image"].pop("correct"), "per_image.correct"),
        (lambda d: d["per_image"].pop("ids_sha256"), "per_image.ids_sha256"),
        (lambda d: d.update(samples=0), "samples"),
    ],
    ids=["no-samples", "no-accuracy", "no-correct", "no-ids", "zero-samples"],
)
def test_incomplete_evaluations_name_the_file_and_field(damage: Any, field: str) -> None:
    data = record(first(5, 10))
    damage(data)
    with pytest.raises(DataError, match=rf"^results/evals/m/x\.json: .*'{field}'"):
        evaluation(data, "results/evals/m/x.json", "m", "x")


def test_pairs_of_different_sample_counts_name_both_files() -> None:
    a = evaluation(record(first(5, 10)), "evals/a.json", "a", "natural")
    b = evaluation(record(first(5, 12)), "evals/b.json", "b", "natural")
    with pytest.raises(DataError) as err:
        check_pair(a, b)
    message = str(err.value)
    assert "evals/a.json" in message and "evals/b.json" in message and "'samples'" in message
    with pytest.raises(DataError):
        accuracy_difference(a, b, ALPHA)


@pytest.mark.parametrize("paired_first", [True, False])
def test_a_pair_where_only_one_side_keeps_per_image_data_names_the_other(paired_first: bool) -> None:
    paired = evaluation(record(first(5, 10)), "evals/new.json", "new", "natural")
    old = evaluation(record(first(5, 10), per_image=False), "evals/old.json", "old", "natural")
    a, b = (paired, old) if paired_first else (old, paired)
    with pytest.raises(DataError) as err:
        check_pair(a, b)
    message = str(err.value)
    assert message.startswith("evals/old.json: no field 'per_image'")
    assert "evals/new.json" in message


def test_a_pair_on_different_images_is_refused() -> None:
    a = evaluation(record(first(5, 10)), "evals/a.json", "a", "natural")
    b = evaluation(record(first(5, 10), ids="1" * 64), "evals/b.json", "b", "natural")
    with pytest.raises(DataError, match="ids_sha256") as err:
        check_pair(a, b)
    assert "evals/a.json" in str(err.value) and "evals/b.json" in str(err.value)
    check_pair(a, evaluation(record(first(3, 10)), "evals/c.json", "c", "natural"))  # same ids: fine


def test_accuracy_difference_is_paired_when_both_keep_per_image_outcomes() -> None:
    a = evaluation(record(first(900, 1000)), "evals/a.json", "a", "natural")
    b = evaluation(record(first(500, 1000)), "evals/b.json", "b", "natural")
    est = accuracy_difference(a, b, ALPHA)
    assert est.paired and est.p_value is not None and est.p_value < 1e-50
    assert est.method == Method.PAIRED_SCORE_RATE
    assert est.value == pytest.approx(0.4) and est.n == 1000
    assert est == rate_difference_paired(a.correct, b.correct, ALPHA)
    loss = loss_difference(b, a, ALPHA)
    assert loss is not None and loss.paired and loss.value == pytest.approx(0.4 * 1.9)


def test_accuracy_difference_is_unpaired_from_summary_counts() -> None:
    a = evaluation(summary(0.9, 1000), "evals/a.json", "a", "natural")
    b = evaluation(summary(0.5, 1000), "evals/b.json", "b", "natural")
    est = accuracy_difference(a, b, ALPHA)
    assert not est.paired and est.p_value is None and est.method == Method.NEWCOMBE
    assert est.value == pytest.approx(0.4) and directional(est) == Outcome.HOLDS
    assert loss_difference(a, b, ALPHA) is None  # a mean loss alone has no interval


def test_a_constant_predictor_is_degenerate() -> None:
    ev = evaluation(record(first(100, 1000), predictions=[3] * 1000), "evals/const.json", "const", "natural")
    health = model_health(ev, 10, ALPHA)
    assert health.degenerate and "constant" in health.tests
    text = health.text
    assert "`const`" in text and "class 3" in text and "1000" in text and "evals/const.json" in text


def test_a_majority_class_predictor_at_29_of_34_is_degenerate() -> None:
    """Segment-6's clean model: "bird" (11 of 34 test images, 32.4 %) for 29 of 34 images,
    10 of them right (29.4 %). Its accuracy's Wilson interval clears 1/6 but not the majority
    share, and one class takes most of its predictions: both tests fire."""
    shares = (3 / 34, 11 / 34, 7 / 34, 5 / 34, 5 / 34, 3 / 34)  # by label; bird is label 1
    predictions = [1] * 29 + [0, 2, 3, 4, 5]
    correct = [1] * 10 + [0] * 24
    ev = evaluation(record(correct, predictions=predictions), "evals/s6.json", "segment6_clean", "natural")
    health = model_health(ev, 6, ALPHA, majority_share=11 / 34, class_shares=shares)
    assert health.tests == ("constant", "majority")
    assert "29 of its 34" in health.text and "32.4 %" in health.text
    # The old rule (the Wilson interval against 1/classes alone) would have passed it.
    assert ev.accuracy_estimate(ALPHA).low > 1 / 6


def test_a_model_at_chance_is_degenerate_and_a_good_one_is_not() -> None:
    chance = evaluation(summary(0.108, 500), "evals/weak.json", "weak", "natural")
    health = model_health(chance, 10, ALPHA)
    assert health.tests == ("majority",)
    assert "chance" in health.text and "10.8" in health.text and "evals/weak.json" in health.text
    good = evaluation(summary(0.9, 500), "evals/good.json", "good", "natural")
    assert not model_health(good, 10, ALPHA).degenerate
    varied = evaluation(record(first(450, 500)), "evals/good.json", "good", "natural")
    assert not model_health(varied, 10, ALPHA).degenerate
    # 10.8 % is well above chance among 100 classes.
    assert not model_health(chance, 100, ALPHA).degenerate
    # ... but not above a majority class that makes up 12 % of the test split.
    assert model_health(chance, 100, ALPHA, majority_share=0.12).tests == ("majority",)


def test_a_high_loss_with_good_accuracy_is_overfit_not_constant() -> None:
    """A loss above ln(classes) is not by itself a constant predictor: confident errors."""
    data = record(first(450, 500))
    data["loss"] = 2.5
    health = model_health(evaluation(data, "evals/o.json", "overfit", "natural"), 10, ALPHA)
    assert (
        not health.degenerate and "overfitting" in health.text and "not a constant predictor" in health.text
    )


# --- build: deciding claims ------------------------------------------------------------------------


def large_effect(n: int = 1000) -> Estimate:
    return rate_difference_paired(np.array(first(n * 9 // 10, n)), np.array(first(n // 2, n)), ALPHA)


def test_decide_is_degenerate_when_a_model_it_rests_on_is() -> None:
    book = ClaimBook("paper", ClaimSettings())
    book.check_model(evaluation(summary(0.108, 500), "evals/weak.json", "weak", "natural"), 10)
    book.check_model(evaluation(summary(0.9, 500), "evals/good.json", "good", "natural"), 10)
    assert set(book.degenerate) == {"weak"}
    outcome, reason = book.decide(large_effect(), ABOVE_ZERO, ["good", "weak", "weak"])
    assert outcome == Outcome.DEGENERATE
    assert reason == book.degenerate["weak"]  # named once, though listed twice
    outcome, reason = book.decide(large_effect(), ABOVE_ZERO, ["good"])
    assert outcome == Outcome.HOLDS and reason.startswith("the 95 % interval [") and "lies above 0" in reason


def test_a_small_sample_is_a_flag_not_an_override() -> None:
    settings = ClaimSettings()
    book = ClaimBook("paper", settings)
    small = large_effect(settings.min_samples - 10)
    assert ABOVE_ZERO(small) == Outcome.HOLDS
    record_ = book.effect_claim(
        claim_id="small",
        claim="a beats b",
        quote="q",
        section="§1",
        dataset="d",
        rule_text="above 0",
        rule=ABOVE_ZERO,
        effect=Effect.of("difference", "points", small.scaled(100)),
        estimate=small,
        quantities=[],
        models=["a", "b"],
    )
    assert record_.outcome == Outcome.HOLDS and record_.small_sample


def test_decide_says_why_an_interval_is_inconclusive() -> None:
    book = ClaimBook("paper", ClaimSettings())
    est = Estimate(0.01, -0.02, 0.04, 500, Method.WILSON, False)
    outcome, reason = book.decide(est, ABOVE_ZERO, ["a"])
    assert outcome == Outcome.INCONCLUSIVE and "includes 0" in reason and "95 %" in reason
    assert book.decide(est, within(0.03), ["a"])[1].endswith(
        "crosses a bound of ±0.03, so these images cannot tell"
    )
    # An effect without an interval decides nothing, whatever its value.
    none = Estimate(0.5, 0.5, 0.5, 500, Method.NONE, False)
    assert book.decide(none, ABOVE_ZERO, ["a"])[0] == Outcome.INCONCLUSIVE


def test_a_rule_must_be_a_rule_object() -> None:
    with pytest.raises(TypeError, match="stats.Rule"):
        ClaimBook("paper", ClaimSettings()).decide(large_effect(), directional, ["a"])  # type: ignore[arg-type]


def claim_records() -> list[ClaimRecord]:
    """A paper's claims as a table stage makes them: two effects, a composite and an untested one."""
    book = ClaimBook("paper", ClaimSettings())
    a = evaluation(record(first(900, 1000)), "results/evals/a/natural.json", "a", "natural")
    b = evaluation(record(first(500, 1000)), "results/evals/b/natural.json", "b", "natural")
    common = {"quote": "a beats b", "section": "§5", "dataset": "mnist"}
    est = accuracy_difference(a, b, ALPHA)
    holds = book.effect_claim(
        claim_id="a_beats_b",
        claim="a is more accurate than b",
        rule_text="holds when the interval is above 0",
        rule=ABOVE_ZERO,
        effect=Effect.of("accuracy difference", "points", est.scaled(100), paper=30.0),
        estimate=est,
        quantities=[a.quantity("a", ALPHA), b.quantity("b", ALPHA)],
        models=["a", "b"],
        **common,
    )
    fails = book.effect_claim(
        claim_id="b_beats_a",
        claim="b is more accurate than a",
        rule_text="holds when the interval is above 0",
        rule=ABOVE_ZERO,
        effect=Effect.of("accuracy difference", "points", est.negated().scaled(100), paper=-1.0),
        estimate=est.negated(),
        quantities=[b.quantity("b", ALPHA), a.loss_quantity("a's loss")],
        models=["b", "a"],
        ours=True,
        note="paired on the same 1000 images",
        **common,
    )
    book.composite(claim_id="both", claim="both of the above", parts=[holds, fails], **common)
    book.not_tested(
        claim_id="later",
        claim="a third claim",
        reason="no CIFAR-10 run at this scale",
        constraint="compute",
        **common,
    )
    return book.finish()


def test_effect_claims_and_composites_take_their_outcomes_from_the_rules() -> None:
    holds, fails, both, later = claim_records()
    assert (holds.outcome, fails.outcome, later.outcome) == (Outcome.HOLDS, Outcome.FAILS, Outcome.NOT_TESTED)
    assert holds.effect.paper_in_interval is False and holds.effect.value == pytest.approx(40.0)
    assert holds.effect.low == pytest.approx(37.0, abs=0.5) and holds.effect.p_value is not None
    assert both.outcome == Outcome.FAILS and both.parts == ("a_beats_b", "b_beats_a")
    assert both.reason == "parts not holding: b_beats_a (does not hold)"
    assert both.models == ("a", "b") and both.effect is None


# --- record: the claims file ---------------------------------------------------------------------


def claims_file() -> ClaimsFile:
    return ClaimsFile.of("paper", "A paper (2020)", "tiny", claim_records())


def test_claims_round_trip_exactly(tmp_path: Path) -> None:
    path = tmp_path / "claims" / "paper.json"
    written = claims_file()
    write_claims(path, written)
    read = read_claims(path)
    assert read == written
    assert isinstance(read.claims[0].outcome, Outcome) and isinstance(read.claims[0].quantities[0], Quantity)
    assert isinstance(read.claims[0].effect, Effect) and read.claims[2].parts == ("a_beats_b", "b_beats_a")
    assert json.loads(path.read_text(encoding="utf-8"))["claims"][1]["outcome"] == "does not hold"


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (lambda c: c.pop("outcome"), "'outcome'"),
        (lambda c: c.update(outcome="probably"), "'outcome'"),
        (lambda c: c.update(colour="red"), "'colour'"),
        (lambda c: c.pop("reason"), "'reason'"),
        (lambda c: c["quantities"][0].pop("source"), "'source'"),
        (lambda c: c["effect"].pop("high"), "'high'"),
    ],
    ids=[
        "no-outcome",
        "unknown-outcome",
        "unknown-field",
        "no-reason",
        "quantity-no-source",
        "effect-no-high",
    ],
)
def test_a_damaged_claim_names_the_file_the_claim_and_the_field(
    tmp_path: Path, damage: Any, field: str
) -> None:
    path = tmp_path / "paper.json"
    write_claims(path, claims_file())
    data = json.loads(path.read_text(encoding="utf-8"))
    damage(data["claims"][1])
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_claims(path)
    message = str(err.value)
    assert str(path) in message and "claims[1] (b_beats_a)" in message and field in message


def test_a_missing_or_unreadable_claims_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "paper.json"
    with pytest.raises(DataError, match="claims file missing"):
        read_claims(path)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON") as err:
        read_claims(path)
    assert str(path) in str(err.value)
    path.write_text(json.dumps({"paper": "p", "title": "t", "scale": "tiny"}), encoding="utf-8")
    with pytest.raises(DataError, match="missing field 'claims'"):
        read_claims(path)


def test_write_claims_refuses_duplicate_ids(tmp_path: Path) -> None:
    records = claim_records()
    path = tmp_path / "paper.json"
    duplicated = ClaimsFile("paper", "A paper", "tiny", (*records, records[0]))
    with pytest.raises(ValueError, match="repeated: a_beats_b"):
        write_claims(path, duplicated)
    assert not path.exists()


def test_an_unknown_field_inside_a_quantity_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "paper.json"
    write_claims(path, claims_file())
    data = json.loads(path.read_text(encoding="utf-8"))
    data["claims"][0]["quantities"][0]["colour"] = "red"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(
        DataError, match=r"paper\.json: claims\[0\] \(.*\), quantities\[0\]: unknown field\(s\) 'colour'"
    ):
        read_claims(path)


# --- render ---------------------------------------------------------------------------------------


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def test_summary_table_has_one_row_per_record_and_counts_a_composites_parts() -> None:
    records = claim_records()
    every = {(r.paper, r.claim_id): r for r in records}
    table = summary_table([("A paper", r) for r in records], parts=every)
    lines = table.splitlines()
    assert len(lines) == 2 + len(records)
    assert cells(lines[0])[3] == "outcome"
    rows = [cells(line) for line in lines[2:]]
    assert [row[3] for row in rows] == [f"**{r.outcome}**" for r in records]
    assert [row[1].split(":")[0] for row in rows] == [r.claim_id for r in records]
    assert rows[0][4].startswith("+40.0 points [+3") and rows[0][6] == "1000 (400:0 discordant)"
    assert rows[0][5] == "+30.0 (outside ours)"
    assert rows[1][1].endswith("*(ours)*")
    assert rows[2][4] == "parts: 1 holds, 1 does not hold" and rows[2][6] == "–"
    assert rows[3][4] == "–"


def test_summary_table_links_effects_to_the_claims_file() -> None:
    records = claim_records()
    table = summary_table(
        [("A paper", records[0])], link=lambda p: f"../{p}", sources={"paper": "results/claims/paper.json"}
    )
    row = cells(table.splitlines()[2])
    assert row[4].startswith("[+40.0 points [") and row[4].endswith("](../results/claims/paper.json)")


def test_outcome_counts_follow_the_outcome_order() -> None:
    records = claim_records()
    assert outcome_counts(records) == "1 holds, 2 does not hold, 1 not tested"
    assert outcome_counts(records[3:]) == "1 not tested" and outcome_counts([]) == ""


def test_a_bullet_without_a_linker_shows_source_paths_in_backticks() -> None:
    bullet = claim_bullet(claim_records()[0])
    assert bullet.startswith("- **a_beats_b** (mnist): a is more accurate than b — **holds**.")
    assert "`results/evals/a/natural.json`" in bullet and "`results/evals/b/natural.json`" in bullet
    assert "](" not in bullet
    assert "McNemar exact p = " in bullet and "paper: +30.0" in bullet and bullet.endswith(".")


def test_a_bullet_with_a_linker_links_each_number_to_its_file() -> None:
    bullet = claim_bullet(claim_records()[0], link=lambda p: f"files/{p}")
    assert "a: [90.0 %](files/results/evals/a/natural.json) (CI " in bullet
    assert "b: [50.0 %](files/results/evals/b/natural.json)" in bullet
    assert "`results/evals/a/natural.json`" not in bullet


def test_a_bullet_says_why_and_how_and_whose_claim() -> None:
    _, fails, both, later = claim_records()
    assert "*(our extension, not the paper's)*" in claim_bullet(fails)
    assert "Note: paired on the same 1000 images." in claim_bullet(fails)
    assert "parts: a_beats_b, b_beats_a" in claim_bullet(both)
    assert claim_bullet(later).endswith(
        "Why: no CIFAR-10 run at this scale. What would decide it: evaluations not run at this scale."
    )


def test_a_bullet_keeps_relative_links_that_climb_out_of_the_report_folder() -> None:
    bullet = claim_bullet(claim_records()[0], link=lambda p: f"../{p}")
    assert "(../results/evals/a/natural.json)" in bullet


# --- finish: multiplicity and what it would take ----------------------------------------------------


def leaf(
    book: ClaimBook, claim_id: str, a_only: int, b_only: int, *, n: int = 400, ours: bool = False
) -> ClaimRecord:
    """A paired accuracy claim with ``a_only``:``b_only`` discordant pairs among ``n`` images."""
    a = np.r_[
        np.ones(a_only),
        np.zeros(b_only),
        np.ones((n - a_only - b_only) // 2),
        np.zeros(n - a_only - b_only - (n - a_only - b_only) // 2),
    ]
    b = np.r_[
        np.zeros(a_only),
        np.ones(b_only),
        np.ones((n - a_only - b_only) // 2),
        np.zeros(n - a_only - b_only - (n - a_only - b_only) // 2),
    ]
    est = rate_difference_paired(a, b, ALPHA)
    return book.effect_claim(
        claim_id=claim_id,
        claim=f"{claim_id} is above 0",
        quote="q",
        section="§1",
        dataset="d",
        rule_text="above 0",
        rule=ABOVE_ZERO,
        effect=Effect.of("difference", "points", est.scaled(100.0), paper=5.0),
        estimate=est.scaled(100.0),
        quantities=[],
        models=[],
        ours=ours,
    )


def above_zero_claim(
    book: ClaimBook, claim_id: str, est: Estimate, unit: str = "points", **extra: Any
) -> ClaimRecord:
    """``est`` as a claim that the effect lies above 0, with nothing else to show."""
    return book.effect_claim(
        claim_id=claim_id,
        claim=claim_id,
        quote="q",
        section="§1",
        dataset="d",
        rule_text="above 0",
        rule=ABOVE_ZERO,
        effect=Effect.of("difference", unit, est),
        estimate=est,
        quantities=[],
        **{"models": [], **extra},
    )


def test_holm_demotes_a_borderline_leaf_in_a_large_family_and_its_composite_follows() -> None:
    book = ClaimBook("paper", ClaimSettings())
    borderline = leaf(book, "borderline", 14, 4)  # decided alone at 5 %, p about 0.02
    strong = leaf(book, "strong", 60, 5)
    nulls = [leaf(book, f"null{i}", 5, 5) for i in range(4)]
    book.composite(
        claim_id="both", claim="both", quote="q", section="§1", dataset="d", parts=[borderline, strong]
    )
    mine = leaf(book, "mine", 14, 4, ours=True)  # the same effect in a family of one (ours)
    done = {r.claim_id: r for r in book.finish()}
    b = done["borderline"]
    assert b.outcome_unadjusted == Outcome.HOLDS and b.outcome == Outcome.INCONCLUSIVE
    assert b.effect.rule_p < ALPHA <= b.effect.holm_p
    assert "not after Holm's adjustment over the 6 tests of its family" in b.reason
    assert done["strong"].outcome == Outcome.HOLDS and done["strong"].effect.holm_p < ALPHA
    assert done["both"].outcome == Outcome.INCONCLUSIVE and done["both"].outcome_unadjusted == Outcome.HOLDS
    assert done["mine"].outcome == Outcome.HOLDS and done["mine"].family == "ours"
    assert done["mine"].effect.holm_p == done["mine"].effect.rule_p
    assert all(done[n.claim_id].outcome == Outcome.INCONCLUSIVE for n in nulls)
    assert mine.effect.rule_p is None  # the records made before finish carry no p


def test_what_it_would_take_for_an_undecided_claim() -> None:
    book = ClaimBook("paper", ClaimSettings())
    leaf(book, "weak", 12, 6)
    leaf(book, "zero", 5, 5)
    done = {r.claim_id: r for r in book.finish()}
    needs = done["weak"].needs
    assert needs is not None and needs.constraint == "images" and needs.basis == "the observed effect"
    # 1.5 points of difference, a per-image sd of about 21 points (d = 0.07), at the level Holm's
    # first step asks in a family of two (0.025): about 1,900 images (1,560 at 0.05).
    assert 1800 < needs.n_needed < 2000 and "80 % power at the observed effect (level 0.025" in needs.text
    # A zero effect takes the paper's effect (+5 points) as the one to detect.
    zero = done["zero"].needs
    # 5 points against a per-image sd of about 16 points (d = 0.32): about 80 images.
    assert zero is not None and zero.basis == "the paper's effect" and 60 < zero.n_needed < 100


def test_an_effect_exactly_on_the_boundary_without_a_paper_effect_is_not_computable() -> None:
    book = ClaimBook("paper", ClaimSettings())
    est = mean_difference_paired(np.r_[np.ones(10), np.zeros(10)], np.r_[np.zeros(10), np.ones(10)], ALPHA)
    above_zero_claim(book, "flat", est, "loss")
    (flat,) = book.finish()
    assert flat.outcome == Outcome.INCONCLUSIVE
    assert flat.needs.constraint == "not computable" and "exactly on the rule's boundary" in flat.needs.text


def write_eval(root: Path, model: str, attack: str, n: int, seconds: float, dataset: str = "d") -> str:
    path = root / "evals" / model / f"{attack}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"samples": n, "accuracy": 0.5, "loss": 1.0, "dataset": dataset}), encoding="utf-8"
    )
    timing = {"device": "cpu", "seconds": seconds, "images_per_s": n / seconds}
    path.with_name(f"{attack}.throughput.json").write_text(json.dumps(timing), encoding="utf-8")
    return str(path)


def write_dataset(root: Path, name: str, test: int) -> None:
    data = {"builder": "mnist", "dataset": name, "test_summary": {"samples": test, "per_class": {"0": test}}}
    (root / "datasets").mkdir(parents=True, exist_ok=True)
    (root / "datasets" / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize(("pool", "constraint"), [(10_000, "images"), (300, "data")])
def test_the_pool_decides_between_more_images_and_more_data(
    tmp_path: Path, pool: int, constraint: str
) -> None:
    from stages.claims.feasibility import Feasibility

    write_dataset(tmp_path, "d", pool)
    sources = [write_eval(tmp_path, m, "natural", 200, 20.0) for m in ("a", "b")]
    book = ClaimBook("paper", ClaimSettings())
    a = np.r_[np.ones(8), np.zeros(4), np.ones(94), np.zeros(94)]
    b = np.r_[np.zeros(8), np.ones(4), np.ones(94), np.zeros(94)]
    est = rate_difference_paired(a, b, ALPHA).scaled(100.0)
    above_zero_claim(book, "c", est, "points", sources=sources)
    (claim,) = book.finish(Feasibility(tmp_path / "evals", tmp_path / "datasets", ALPHA))
    needs = claim.needs
    assert needs is not None and needs.constraint == constraint and needs.pool == pool
    assert needs.n_needed > 300
    if constraint == "images":
        # 0.1 s per image for each of the two evaluations, for the images beyond the 200 evaluated.
        assert needs.cpu_hours == pytest.approx((needs.n_needed - 200) * 0.2 / 3600, rel=1e-2)
    else:
        assert needs.cpu_hours is None and "the pool holds 300" in needs.text


def test_a_unit_cost_prices_units_that_are_not_images_of_the_evaluation() -> None:
    """A targeted claim's n counts targeted images (5 of 100 attacked): more of them cost their own
    measured seconds, not the evaluation's 100 images scaled up by 20."""
    from stages.claims.feasibility import UnitCost

    book = ClaimBook("paper", ClaimSettings())
    values = np.array([40.0, 0.0, 20.0, 0.0, 10.0])
    est = mean_paired(values, ALPHA)
    above_zero_claim(book, "targeted", est, "points", unit_cost=UnitCost(1.0, 36.0))
    (claim,) = book.finish()
    assert claim.outcome == Outcome.INCONCLUSIVE and claim.needs is not None
    assert "to evaluate" not in claim.needs.text
    assert claim.needs.cpu_hours == pytest.approx((claim.needs.n_needed - 5) * 36.0 / 3600, rel=1e-2)


def test_a_family_with_no_tested_leaf_finishes_and_says_what_binds() -> None:
    """Every claim degenerate or untested: Holm has nothing to adjust, and each record still says
    what would decide it (a model that learns, the data), naming no p."""
    book = ClaimBook("paper", ClaimSettings())
    book.check_model(evaluation(summary(0.108, 500), "evals/weak.json", "weak", "natural"), 10)
    above_zero_claim(book, "on_weak", large_effect(), models=["weak"])
    book.not_tested(
        claim_id="later", claim="c", quote="q", section="§1", dataset="d", reason="r", constraint="data"
    )
    on_weak, later = book.finish()
    assert on_weak.outcome == Outcome.DEGENERATE and on_weak.effect.holm_p is None
    assert on_weak.needs.constraint == "model" and "`weak`" in on_weak.needs.text
    assert later.needs.constraint == "data"
