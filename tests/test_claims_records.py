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
    degenerate_reason,
    evaluation,
    loss_difference,
)
from stages.claims.record import ClaimRecord, ClaimsFile, Effect, Quantity, read_claims, write_claims
from stages.claims.render import claim_bullet, outcome_counts, summary_table
from stages.claims.settings import ClaimSettings
from stages.claims.stats import Estimate, Method, Outcome, directional, rate_difference_paired
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
    assert est.method == Method.PAIRED_BOOTSTRAP_RATE
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
    reason = degenerate_reason(ev, 10, ALPHA)
    assert reason is not None
    assert "`const`" in reason and "class 3" in reason and "1000" in reason and "evals/const.json" in reason


def test_a_model_at_chance_is_degenerate_and_a_good_one_is_not() -> None:
    chance = evaluation(summary(0.108, 500), "evals/weak.json", "weak", "natural")
    reason = degenerate_reason(chance, 10, ALPHA)
    assert reason is not None and "chance" in reason and "10.8" in reason and "evals/weak.json" in reason
    good = evaluation(summary(0.9, 500), "evals/good.json", "good", "natural")
    assert degenerate_reason(good, 10, ALPHA) is None
    varied = evaluation(record(first(450, 500)), "evals/good.json", "good", "natural")
    assert degenerate_reason(varied, 10, ALPHA) is None
    # 10.8 % is well above chance among 100 classes.
    assert degenerate_reason(chance, 100, ALPHA) is None


# --- build: deciding claims ------------------------------------------------------------------------


def large_effect(n: int = 1000) -> Estimate:
    return rate_difference_paired(np.array(first(n * 9 // 10, n)), np.array(first(n // 2, n)), ALPHA)


def test_decide_is_degenerate_when_a_model_it_rests_on_is() -> None:
    book = ClaimBook("paper", ClaimSettings())
    book.check_model(evaluation(summary(0.108, 500), "evals/weak.json", "weak", "natural"), 10)
    book.check_model(evaluation(summary(0.9, 500), "evals/good.json", "good", "natural"), 10)
    assert set(book.degenerate) == {"weak"}
    outcome, reason = book.decide(large_effect(), directional, ["good", "weak", "weak"])
    assert outcome == Outcome.DEGENERATE
    assert reason == book.degenerate["weak"]  # named once, though listed twice
    assert book.decide(large_effect(), directional, ["good"]) == (Outcome.HOLDS, "")


def test_decide_is_inconclusive_below_the_minimum_sample_size() -> None:
    settings = ClaimSettings()
    book = ClaimBook("paper", settings)
    small = large_effect(settings.min_samples - 10)
    assert directional(small) == Outcome.HOLDS  # the rule alone would decide
    outcome, reason = book.decide(small, directional, ["a", "b"])
    assert outcome == Outcome.INCONCLUSIVE
    assert "claims.min_samples" in reason and f"only {small.n} images" in reason


def test_decide_says_why_an_interval_is_inconclusive() -> None:
    book = ClaimBook("paper", ClaimSettings())
    est = Estimate(0.01, -0.02, 0.04, 500, Method.NONE, False)
    outcome, reason = book.decide(est, directional, ["a"])
    assert outcome == Outcome.INCONCLUSIVE and "straddles" in reason and "95 %" in reason


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
        rule=directional,
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
        rule=directional,
        effect=Effect.of("accuracy difference", "points", est.negated().scaled(100), paper=-1.0),
        estimate=est.negated(),
        quantities=[b.quantity("b", ALPHA), a.loss_quantity("a's loss")],
        models=["b", "a"],
        ours=True,
        note="paired on the same 1000 images",
        **common,
    )
    book.composite(claim_id="both", claim="both of the above", parts=[holds, fails], **common)
    book.not_tested(claim_id="later", claim="a third claim", reason="no CIFAR-10 run at this scale", **common)
    return book.records


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
    return ClaimsFile(paper="paper", title="A paper (2020)", scale="tiny", claims=tuple(claim_records()))


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
    assert rows[0][4].startswith("+40.0 points [+3") and rows[0][6] == "1000"
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
    assert claim_bullet(later).endswith("Why: no CIFAR-10 run at this scale.")


def test_a_bullet_keeps_relative_links_that_climb_out_of_the_report_folder() -> None:
    bullet = claim_bullet(claim_records()[0], link=lambda p: f"../{p}")
    assert "(../results/evals/a/natural.json)" in bullet
