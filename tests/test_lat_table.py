"""The LAT table and its claims: the paper's numbers sit beside ours, the natural loss is scaled
as in the paper, our extension rows are marked ours, and each claim's outcome follows from a
95 % interval of its effect (paired % less loss with per-image losses, an unpaired accuracy
proxy without), with degenerate models, small samples and mismatched evaluations caught."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from stages.claims import evidence
from stages.claims.evals import eval_path
from stages.claims.evidence import Evaluation
from stages.claims.lat import (
    PAPER,
    PAPER_LAT_REDUCTION,
    PAPER_LAT_VS_STANDARD,
    PAPER_TRADE,
    PAPER_WHITEBOX,
    SUMMARY_ONLY,
    TITLE,
    lat_claims,
)
from stages.claims.record import ClaimRecord, ClaimsFile, read_claims, write_claims
from stages.claims.settings import ClaimSettings, DatasetFacts
from stages.claims.stats import Method, Outcome
from stages.evaluation.records import per_image_record
from stages.lat_table import main, parser
from stages.report.lat_table import (
    NATURAL_LOSS_SCALE,
    PAPER_LOSSES,
    LatRow,
    build_lat_table,
    lat_rows,
    required_pairs,
    to_markdown,
)
from stages.report.markdown import MISSING, markdown_table
from stages.utils.errors import DataError

ROOT = Path(__file__).resolve().parent.parent
EVALS = Path("evals")  # where the in-memory evaluations say they come from
N = 500
CLASSES = 10
KINDS = ("natural", "standard_attack", "background_attack")
INPUTS = {"natural": "nat", "standard_attack": "std", "background_attack": "bg"}
SPEC: dict[str, Any] = {
    "datasets": {
        ds: {"natural": f"{ds}_nat", "standard": f"{ds}_std", "background": f"{ds}_lat"}
        for ds in ("mnist", "cifar10")
    },
    "inputs": INPUTS,
}
SPEC_WITH_EXTENSION: dict[str, Any] = {
    **SPEC,
    "extensions": {
        "cifar10_eps8": {
            "dataset": "cifar10",
            "models": {"natural": "cifar10_nat", "standard": "cifar10_std8", "background": "cifar10_lat8"},
            "inputs": {"natural": "nat", "standard_attack": "std8", "background_attack": "bg8"},
        }
    },
}
SETTINGS = ClaimSettings()
FACTS = {ds: DatasetFacts(ds, CLASSES, None, f"datasets/{ds}.json") for ds in ("mnist", "cifar10")}

# role -> (accuracy, mean loss) on the (natural, standard-attack, background-attack) inputs.
Numbers = dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]]
# Large, clear effects in the paper's direction: LAT beats natural everywhere, standard AT costs
# natural accuracy and buys robustness, the background attack takes the natural model down.
CLEAR: Numbers = {
    "natural": ((0.85, 0.05, 0.10), (0.04, 2.0, 1.5)),
    "standard": ((0.70, 0.60, 0.55), (0.06, 0.3, 0.2)),
    "background": ((0.95, 0.40, 0.70), (0.03, 1.0, 0.5)),
}
# Every effect reversed.
REVERSED: Numbers = {
    "natural": ((0.60, 0.30, 0.90), (0.04, 2.0, 1.5)),
    "standard": ((0.80, 0.05, 0.05), (0.03, 2.5, 2.0)),
    "background": ((0.40, 0.05, 0.10), (0.05, 2.5, 2.0)),
}
EQUAL: Numbers = {role: ((0.6, 0.6, 0.6), (0.5, 0.5, 0.5)) for role in CLEAR}


def record(accuracy: float, loss: float, samples: int = N, **extra: Any) -> dict[str, Any]:
    """An evaluation JSON as an older evaluate stage wrote it: summary numbers only."""
    return {"samples": samples, "accuracy": accuracy, "loss": loss, **extra}


def summary_evals(
    rows: list[LatRow], numbers: Numbers, samples: int = N, per_dataset: dict[str, Numbers] | None = None
) -> dict[tuple[str, str], Evaluation]:
    out: dict[tuple[str, str], Evaluation] = {}
    for row in rows:
        table = (per_dataset or {}).get(row.key, numbers)
        for role, model in row.models.items():
            accuracy, loss = table[role]
            for i, kind in enumerate(KINDS):
                attack = row.inputs[kind]
                out[(model, attack)] = evidence.evaluation(
                    record(accuracy[i], loss[i], samples), eval_path(EVALS, model, attack), model, attack
                )
    return out


# The paper's claims that need data we cannot have: always "not tested" (tested on their own).
UNTESTABLE = {"imagenet.L4"}


def by_id(claims: list[ClaimRecord]) -> dict[str, ClaimRecord]:
    """The claims our evaluations decide, by id."""
    ids = [c.claim_id for c in claims]
    assert len(ids) == len(set(ids)), f"duplicate claim ids: {ids}"
    return {c.claim_id: c for c in claims if c.claim_id not in UNTESTABLE}


def claim_ids(key: str) -> set[str]:
    return {
        *(f"{key}.L1.{kind}" for kind in KINDS),
        f"{key}.L1",
        f"{key}.L2.cost",
        f"{key}.L2.robustness",
        f"{key}.L2",
        f"{key}.L3",
        f"{key}.L5",
    }


def claims_for(spec: dict[str, Any], evals: dict[tuple[str, str], Evaluation]) -> dict[str, ClaimRecord]:
    return by_id(lat_claims(lat_rows(spec), evals, FACTS, SETTINGS))


# --- the table ----------------------------------------------------------------------------------


def test_rows_and_required_pairs_include_the_extension() -> None:
    rows = lat_rows(SPEC_WITH_EXTENSION)
    assert [(r.key, r.dataset, r.ours) for r in rows] == [
        ("mnist", "mnist", False),
        ("cifar10", "cifar10", False),
        ("cifar10_eps8", "cifar10", True),
    ]
    pairs = required_pairs(rows)
    assert len(pairs) == len(set(pairs)) == 3 * 9 - 1  # (cifar10_nat, nat) is shared, listed once
    assert ("cifar10_lat8", "bg8") in pairs and ("cifar10_nat", "std8") in pairs


def test_layout_paper_numbers_and_scaling() -> None:
    rows = lat_rows(SPEC_WITH_EXTENSION)
    table = build_lat_table(summary_evals(rows, CLEAR), rows, [])
    frame = table.frame
    assert list(frame["dataset"]) == ["mnist"] * 3 + ["cifar10"] * 3 + ["cifar10_eps8 (ours)"] * 3
    assert list(frame["model"]) == ["natural", "standard", "background"] * 3
    mnist = frame[frame["dataset"] == "mnist"].set_index("model")
    natural = mnist.loc["natural"]
    assert natural["natural loss scale"] == 1000.0
    assert natural["loss natural"] == 40.0  # 0.04 x1000 for MNIST, as in the paper's Figure 2
    assert natural["loss standard_attack"] == 2.0  # attack losses are not scaled
    assert natural["paper loss natural"] == PAPER_LOSSES["mnist"]["natural"][0] == 41.4
    assert natural["paper loss standard_attack"] == 68.19
    assert mnist.loc["background", "paper loss background_attack"] == 0.23
    assert natural["accuracy background_attack"] == 0.10 and natural["samples"] == N
    assert natural["model_key"] == "mnist_nat"
    cifar = frame[frame["dataset"] == "cifar10"].set_index("model")
    assert cifar.loc["natural", "natural loss scale"] == NATURAL_LOSS_SCALE["cifar10"] == 100.0
    assert cifar.loc["natural", "loss natural"] == 4.0
    assert cifar["paper loss natural"].isna().all()  # unreadable in the published text
    ours = frame[frame["dataset"] == "cifar10_eps8 (ours)"].set_index("model")
    assert list(ours["model_key"]) == ["cifar10_nat", "cifar10_std8", "cifar10_lat8"]
    assert ours.loc["standard", "loss natural"] == 6.0  # the extension is CIFAR-10: x100
    assert ours[[f"paper loss {k}" for k in KINDS]].isna().all().all()  # not the paper's experiment


def test_markdown_layout() -> None:
    rows = lat_rows(SPEC_WITH_EXTENSION)
    evals = summary_evals(rows, CLEAR)
    table = build_lat_table(evals, rows, lat_claims(rows, evals, FACTS, SETTINGS))
    md = to_markdown(
        table, scale="tiny", level=SETTINGS.level, claims_path=Path("results/tiny/claims/lat.json")
    )
    assert md.startswith("# LAT:") and "Scale: **tiny**" in md and "Figure 2" in md
    order = ["## mnist\n", "## cifar10\n", "## cifar10_eps8 (ours)\n", "## Claims\n"]
    assert [md.index(h) for h in order] == sorted(md.index(h) for h in order)
    # The claims file is named as the stage was given it: per scale, never a scale-less path.
    assert "from a 95 % interval" in md and "`results/tiny/claims/lat.json` holds the records" in md
    for key in ("mnist", "cifar10", "cifar10_eps8"):
        assert md.count(f"\n- **{key}.L") == len(claim_ids(key))
    assert md.count("*(our extension, not the paper's)*") == len(claim_ids("cifar10_eps8"))
    assert "> Rothberg et al. 2019, §5.1: “" in md and "> Rothberg et al. 2019, §1.1: “" in md
    head = "**mnist.L1** (mnist): LAT model beats the natural model on natural and adversarial inputs"
    assert f"{head} — **holds**" in md
    assert "nan" not in md and "None |" not in md


def test_missing_numbers_show_as_a_dash() -> None:
    md = markdown_table(pd.DataFrame({"a": [1.5, float("nan")], "b": [None, "x"]}))
    assert "nan" not in md and "None" not in md
    assert md.count(MISSING) == 2


# --- claims from summary counts -------------------------------------------------------------------


def test_claims_hold_with_large_clear_effects() -> None:
    claims = claims_for(SPEC, summary_evals(lat_rows(SPEC), CLEAR))
    assert set(claims) == claim_ids("mnist") | claim_ids("cifar10")
    assert {c.claim_id: c.outcome for c in claims.values() if c.outcome != Outcome.HOLDS} == {}
    assert not any(c.ours for c in claims.values())
    # The reason comes from the numbers: the interval lies above the boundary (composites: none).
    for c in claims.values():
        above = re.fullmatch(r"the 95 % interval \[.*\] lies above 0.*", c.reason)
        assert c.reason == "" if c.parts else above
    # Without per-image losses the direction is decided on accuracy, unpaired, and says so.
    l1 = claims["mnist.L1.natural"]
    assert l1.effect is not None and l1.effect.unit == "points" and not l1.effect.paired
    assert l1.effect.method == str(Method.NEWCOMBE) and l1.effect.label.endswith("(proxy)")
    assert l1.effect.value == pytest.approx(10.0)  # 95 % - 85 %
    assert l1.effect.low > 0 and l1.effect.paper is None and l1.note == SUMMARY_ONLY
    assert [q.unit for q in l1.quantities] == ["%", "%"] and l1.quantities[0].n == N
    assert l1.quantities[0].source == str(eval_path(EVALS, "mnist_nat", "nat"))
    cost = claims["cifar10.L2.cost"].effect
    assert cost is not None and cost.value == pytest.approx(15.0)  # natural minus standard, 85 - 70
    assert claims["mnist.L1"].effect is None
    assert claims["mnist.L1"].parts == tuple(f"mnist.L1.{k}" for k in KINDS)
    # L3 is about accuracy in the paper too, so its drop is compared with the paper's.
    l3 = claims["mnist.L3"].effect
    before, after = PAPER_WHITEBOX["mnist"]
    assert l3 is not None and l3.value == pytest.approx(75.0) and l3.paper == pytest.approx(before - after)
    assert l3.paper_in_interval is False  # 99.11 points is far above our 75 [..]
    # L5 on summaries: LAT minus standard natural accuracy (95 - 70), the paper's loss effect not compared.
    l5 = claims["mnist.L5"]
    assert l5.effect is not None and l5.effect.value == pytest.approx(25.0) and l5.effect.paper is None
    assert l5.models == ("mnist_std", "mnist_lat") and l5.note == SUMMARY_ONLY
    assert l5.section == "Rothberg et al. 2019, §4; Figure 2 (§5.1)"
    assert "standard adversarially-trained" in l5.quote


def test_claims_do_not_hold_when_the_effects_are_reversed() -> None:
    claims = claims_for(SPEC, summary_evals(lat_rows(SPEC), REVERSED))
    assert {c.outcome for c in claims.values()} == {Outcome.FAILS}
    effect = claims["mnist.L1.natural"].effect
    assert effect is not None and effect.high < 0
    reason = claims["cifar10.L2"].reason
    assert "cifar10.L2.cost (does not hold)" in reason and "cifar10.L2.robustness (does not hold)" in reason


def test_equal_numbers_are_inconclusive() -> None:
    claims = claims_for(SPEC, summary_evals(lat_rows(SPEC), EQUAL))
    assert {c.outcome for c in claims.values()} == {Outcome.INCONCLUSIVE}
    for claim in claims.values():
        if claim.effect is not None:
            assert claim.effect.value == 0.0 and claim.effect.low < 0 < claim.effect.high
            assert "includes 0" in claim.reason and "cannot tell" in claim.reason
        else:
            assert claim.reason.startswith("parts not holding:")


def test_too_few_images_cannot_decide() -> None:
    # min_samples is a flag, not an override: every effect on 20 images carries it, and the
    # intervals alone decide. A 10-point difference on 20 images (95 % vs 85 %) cannot be told.
    claims = claims_for(SPEC, summary_evals(lat_rows(SPEC), CLEAR, samples=20))
    effects = [c for c in claims.values() if c.effect is not None]
    assert effects and all(c.small_sample and c.effect.n == 20 for c in effects if c.effect is not None)
    natural = claims["mnist.L1.natural"]
    assert natural.outcome == Outcome.INCONCLUSIVE and "cannot tell" in natural.reason
    assert claims["mnist.L1"].small_sample and claims["mnist.L1"].outcome == Outcome.INCONCLUSIVE
    assert not [c for c in effects if c.outcome == Outcome.FAILS]


def test_standard_model_at_chance_makes_its_claims_degenerate() -> None:
    # The reduced-scale CIFAR-10 standard model at eps 0.3: 10.8 % clean accuracy, 10 classes.
    at_chance = {**CLEAR, "standard": ((0.108, 0.108, 0.108), (2.3026, 2.3026, 2.3026))}
    claims = claims_for(SPEC, summary_evals(lat_rows(SPEC), CLEAR, per_dataset={"cifar10": at_chance}))
    degenerate = {i for i, c in claims.items() if c.outcome == Outcome.DEGENERATE}
    assert degenerate == {"cifar10.L2.cost", "cifar10.L2.robustness", "cifar10.L2", "cifar10.L5"}
    reason = claims["cifar10.L2"].reason
    assert "`cifar10_std`: its clean accuracy 10.8 %" in reason
    assert "is not above chance (1/10), 10.0 %" in reason
    assert str(eval_path(EVALS, "cifar10_std", "nat")) in reason
    assert "cifar10_std" in claims["cifar10.L2.cost"].models
    # Claims that do not rest on that model are decided as usual.
    assert claims["cifar10.L1"].outcome == claims["cifar10.L3"].outcome == Outcome.HOLDS
    assert claims["mnist.L2"].outcome == Outcome.HOLDS


# --- claims from per-image losses -----------------------------------------------------------------


def _zero_mean(rng: np.random.Generator, scale: float) -> np.ndarray:
    noise = rng.normal(0.0, scale, N)
    return noise - noise.mean()


def paired_losses() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per-image losses of the three models on the same 500 images, built so that the LAT model
    has exactly the paper's 4.35 % less natural loss (its interval must include it) but only
    ~50 % less under the standard attack (far from the paper's 99.19 %), and the standard model
    the paper's 39.9 % more natural loss."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.02, 0.06, N)
    nat = (base, rng.uniform(1.5, 2.5, N), rng.uniform(1.0, 2.0, N))
    lat = (
        base * (1 - 0.0435) + _zero_mean(rng, 0.002),
        nat[1] * rng.uniform(0.4, 0.6, N),
        nat[2] * rng.uniform(0.2, 0.4, N),
    )
    std = (base * 1.399 + _zero_mean(rng, 0.002), nat[1] * rng.uniform(0.0, 0.02, N), nat[2] * 0.5)
    return {"natural": nat, "standard": std, "background": lat}


def per_image_evals(
    row: LatRow,
    losses: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    accuracy: dict[str, tuple[float, float, float]],
    prediction: dict[str, int] | None = None,
) -> dict[tuple[str, str], Evaluation]:
    """Evaluations as the current evaluate stage writes them, with a ``per_image`` block; a
    role in ``prediction`` predicts that class for every image."""
    ids = [f"test/{i:05d}" for i in range(N)]
    labels = np.arange(N) % CLASSES
    out: dict[tuple[str, str], Evaluation] = {}
    for role, model in row.models.items():
        for i, kind in enumerate(KINDS):
            attack = row.inputs[kind]
            correct = (np.arange(N) < round(accuracy[role][i] * N)).astype(int)
            predicted = np.where(correct == 1, labels, (labels + 1) % CLASSES)
            if prediction and role in prediction:
                predicted = np.full(N, prediction[role])
            block = per_image_record(ids, correct, losses[role][i], predicted)
            rec = record(correct.mean(), float(np.mean(block["loss"])), per_image=block)
            out[(model, attack)] = evidence.evaluation(rec, eval_path(EVALS, model, attack), model, attack)
    return out


MNIST = {"datasets": {"mnist": SPEC["datasets"]["mnist"]}, "inputs": INPUTS}
CLEAR_ACCURACY = {role: numbers[0] for role, numbers in CLEAR.items()}


def test_paired_loss_effects_are_the_papers_percent_less_loss() -> None:
    row = lat_rows(MNIST)[0]
    evals = per_image_evals(row, paired_losses(), CLEAR_ACCURACY)
    claims = claims_for(MNIST, evals)
    assert {c.outcome for c in claims.values()} == {Outcome.HOLDS}

    natural = claims["mnist.L1.natural"]
    effect = natural.effect
    assert effect is not None and effect.unit == "%" and effect.label.endswith("% less loss")
    assert effect.paired and effect.method == str(Method.PAIRED_BCA) and effect.n == N
    base, new = evals[("mnist_nat", "nat")].losses, evals[("mnist_lat", "nat")].losses
    assert base is not None and new is not None
    assert effect.value == pytest.approx(100 * (base.mean() - new.mean()) / base.mean())
    assert effect.value == pytest.approx(4.35, abs=0.01)
    assert 0 < effect.low < effect.value < effect.high < 10
    assert effect.paper == PAPER_LAT_REDUCTION["mnist"]["natural"] and effect.paper_in_interval is True
    assert natural.note == "" and [q.unit for q in natural.quantities] == ["loss", "loss"]

    # The direction holds under the standard attack, but the size is far from the paper's.
    attacked = claims["mnist.L1.standard_attack"].effect
    assert attacked is not None and attacked.value == pytest.approx(50, abs=3)
    assert attacked.paper == 99.19 and attacked.paper_in_interval is False

    # Standard AT's cost: % more natural loss, the paper's 39.9 % inside our interval.
    cost = claims["mnist.L2.cost"].effect
    assert (
        cost is not None
        and cost.label.endswith("% more loss")
        and cost.value == pytest.approx(39.9, abs=0.05)
    )
    assert cost.paper == PAPER_TRADE["mnist"][0] and cost.paper_in_interval is True
    gain = claims["mnist.L2.robustness"].effect
    assert gain is not None and gain.value > 97 and gain.paper == PAPER_TRADE["mnist"][1]

    # L3 is on accuracy, paired over images with McNemar's exact test.
    l3 = claims["mnist.L3"].effect
    assert l3 is not None and l3.paired and l3.method == str(Method.PAIRED_SCORE_RATE)
    assert l3.value == pytest.approx(75.0) and l3.p_value is not None and l3.p_value < 1e-10

    # L5: the LAT model's natural loss against the standard model's, paired: 1 - 0.9565 / 1.399.
    l5 = claims["mnist.L5"].effect
    assert l5 is not None and l5.label == "LAT model vs standard model on natural inputs: % less loss"
    assert l5.paired and l5.value == pytest.approx(100 * (1 - 0.9565 / 1.399), abs=0.1)
    assert l5.paper == PAPER_LAT_VS_STANDARD["mnist"] == 31.61 and l5.paper_in_interval is True


@pytest.mark.parametrize(
    ("lat_over_standard", "outcome"),
    [(None, Outcome.HOLDS), (1.2, Outcome.FAILS), (1.0, Outcome.INCONCLUSIVE)],
    ids=["paper_like", "lat_worse", "equal"],
)
def test_lat_vs_standard_natural_loss_follows_the_interval(
    lat_over_standard: float | None, outcome: Outcome
) -> None:
    """L5 (§4, Figure 2): the LAT model's natural loss below the standard model's, paired over
    images. Paper-like losses (31.6 % less) hold; the LAT model's natural losses at 1.2 x the
    standard model's (20 % more) do not; the same mean with per-image noise cannot tell."""
    row = lat_rows(MNIST)[0]
    losses = paired_losses()
    if lat_over_standard is not None:
        std = losses["standard"][0]
        noise = _zero_mean(np.random.default_rng(1), 0.002)
        lat = lat_over_standard * std + noise
        losses["background"] = (lat, *losses["background"][1:])
    evals = per_image_evals(row, losses, CLEAR_ACCURACY)
    claims = claims_for(MNIST, evals)
    l5 = claims["mnist.L5"]
    effect = l5.effect
    assert l5.outcome == outcome and effect is not None and effect.n == N and effect.paired
    assert l5.models == ("mnist_std", "mnist_lat") and not l5.ours
    base, new = evals[("mnist_std", "nat")].losses, evals[("mnist_lat", "nat")].losses
    assert base is not None and new is not None
    assert effect.value == pytest.approx(100 * (base.mean() - new.mean()) / base.mean())
    if outcome == Outcome.FAILS:
        assert effect.high < 0 and effect.value == pytest.approx(-20.0, abs=0.1)
    elif outcome == Outcome.INCONCLUSIVE:
        assert effect.low < 0 < effect.high and "cannot tell" in l5.reason
        assert l5.needs is not None and l5.needs.constraint in ("images", "data", "not computable")
    else:
        assert effect.low > 0
    # The other claims do not read the LAT model's natural losses against the standard model's.
    assert claims["mnist.L2"].outcome == Outcome.HOLDS


def test_paired_losses_reversed_do_not_hold() -> None:
    row = lat_rows(MNIST)[0]
    losses = paired_losses()
    # The LAT model now has the natural model's losses x1.5, the natural model the LAT's.
    lat, nat = losses["background"], losses["natural"]
    swapped = {"natural": lat, "background": (1.5 * nat[0], 1.5 * nat[1], 1.5 * nat[2]), "standard": nat}
    claims = claims_for(MNIST, per_image_evals(row, swapped, CLEAR_ACCURACY))
    for kind in KINDS:
        effect = claims[f"mnist.L1.{kind}"].effect
        assert effect is not None and effect.high < 0
        assert claims[f"mnist.L1.{kind}"].outcome == Outcome.FAILS
    assert claims["mnist.L1"].outcome == Outcome.FAILS


def test_a_constant_predictor_is_degenerate() -> None:
    # Above chance by accuracy (40 %: its class is common), yet one class for every image.
    row = lat_rows(MNIST)[0]
    accuracy = {**CLEAR_ACCURACY, "standard": (0.40, 0.40, 0.40)}
    claims = claims_for(MNIST, per_image_evals(row, paired_losses(), accuracy, prediction={"standard": 3}))
    assert claims["mnist.L2"].outcome == Outcome.DEGENERATE
    assert "`mnist_std`: predicts class 3 for 500 of its 500 clean test images" in claims["mnist.L2"].reason
    assert "near-constant" in claims["mnist.L2"].reason
    assert claims["mnist.L5"].outcome == Outcome.DEGENERATE
    assert claims["mnist.L1"].outcome == Outcome.HOLDS


# --- our extension ------------------------------------------------------------------------------


def test_extension_claims_are_ours_and_have_no_paper_effect() -> None:
    rows = lat_rows(SPEC_WITH_EXTENSION)
    claims = claims_for(SPEC_WITH_EXTENSION, summary_evals(rows, CLEAR))
    ours = {i: c for i, c in claims.items() if i.startswith("cifar10_eps8.")}
    assert set(ours) == claim_ids("cifar10_eps8")
    assert all(c.ours and c.dataset == "cifar10_eps8" for c in ours.values())
    assert all(c.effect is None or c.effect.paper is None for c in ours.values())
    assert all(c.outcome == Outcome.HOLDS for c in ours.values())
    assert ours["cifar10_eps8.L2.cost"].models == ("cifar10_nat", "cifar10_std8")
    # The paper's own rows keep their comparison with the paper.
    paper_l3 = claims["cifar10.L3"]
    assert not paper_l3.ours and paper_l3.effect is not None
    assert paper_l3.effect.paper == pytest.approx(95.17 - 59.26)


# --- mismatched evaluations -----------------------------------------------------------------------


def test_different_sample_counts_name_both_files() -> None:
    evals = summary_evals(lat_rows(MNIST), CLEAR)
    lat_std = eval_path(EVALS, "mnist_lat", "std")
    evals[("mnist_lat", "std")] = evidence.evaluation(
        record(0.4, 1.0, samples=400), lat_std, "mnist_lat", "std"
    )
    with pytest.raises(DataError) as exc:
        lat_claims(lat_rows(MNIST), evals, FACTS, SETTINGS)
    message = str(exc.value)
    assert str(eval_path(EVALS, "mnist_nat", "std")) in message and str(lat_std) in message
    assert "'samples' = 500" in message and "'samples' = 400" in message


def test_per_image_beside_summary_only_is_a_data_error() -> None:
    row = lat_rows(MNIST)[0]
    evals = per_image_evals(row, paired_losses(), CLEAR_ACCURACY)
    old = eval_path(EVALS, "mnist_lat", "bg")
    evals[("mnist_lat", "bg")] = evidence.evaluation(record(0.7, 0.5), old, "mnist_lat", "bg")
    with pytest.raises(DataError, match=re.escape(f"{old}: no field 'per_image'")):
        lat_claims([row], evals, FACTS, SETTINGS)


def test_per_image_of_other_images_is_a_data_error() -> None:
    row = lat_rows(MNIST)[0]
    evals = per_image_evals(row, paired_losses(), CLEAR_ACCURACY)
    moved = dict(evals[("mnist_std", "std")].record)
    moved["per_image"] = {**moved["per_image"], "ids_sha256": "0" * 64}
    path = eval_path(EVALS, "mnist_std", "std")
    evals[("mnist_std", "std")] = evidence.evaluation(moved, path, "mnist_std", "std")
    with pytest.raises(DataError, match="ids_sha256' differs") as exc:
        lat_claims([row], evals, FACTS, SETTINGS)
    assert str(path) in str(exc.value) and str(eval_path(EVALS, "mnist_nat", "std")) in str(exc.value)


def test_per_image_of_the_wrong_length_names_file_and_field() -> None:
    block = per_image_record(["a", "b"], [1, 0], [0.1, 0.2], [1, 2])
    with pytest.raises(DataError, match=r"evals/m/nat.json: field 'per_image.correct' has 2 entries for 3"):
        evidence.evaluation(record(0.5, 0.1, samples=3, per_image=block), "evals/m/nat.json", "m", "nat")


# --- the claims file and the stage ----------------------------------------------------------------


def test_claims_round_trip_through_json(tmp_path: Path) -> None:
    rows = lat_rows(MNIST)
    claims = lat_claims(rows, per_image_evals(rows[0], paired_losses(), CLEAR_ACCURACY), FACTS, SETTINGS)
    path = tmp_path / "claims" / "lat.json"
    write_claims(path, ClaimsFile(PAPER, TITLE, "tiny", tuple(claims)))
    back = read_claims(path)
    assert (back.paper, back.title, back.scale) == ("lat", TITLE, "tiny")
    assert back.claims == tuple(claims)
    assert json.loads(path.read_text())["claims"][0]["outcome"] == "holds"


def write_evals(evals_dir: Path, rows: list[LatRow], numbers: Numbers) -> None:
    """Summary evaluations of every row's models and inputs, as the evaluate stage lays them out."""
    for (model, attack), result in summary_evals(rows, numbers).items():
        path = eval_path(evals_dir, model, attack)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**result.record, "model": model, "attack": attack}))


def write_datasets(folder: Path, names: set[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        stats = {"test_summary": {"per_class": {f"class{c}": 50 for c in range(CLASSES)}, "samples": N}}
        (folder / f"{name}.json").write_text(json.dumps(stats))


def real_rows() -> list[LatRow]:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    return lat_rows(raw["tables"]["lat"])


def project(tmp_path: Path) -> tuple[list[LatRow], list[str]]:
    """Evaluations and dataset statistics for every row of the real params.yaml's tables.lat
    (the paper's datasets and our extensions), and the stage's arguments."""
    rows = real_rows()
    write_evals(tmp_path / "evals", rows, CLEAR)
    write_datasets(tmp_path / "datasets", {row.dataset for row in rows})
    argv = ["--params", str(ROOT / "params.yaml"), "--scale", "tiny", "--evals", str(tmp_path / "evals")]
    argv += ["--datasets", str(tmp_path / "datasets"), "--out", str(tmp_path / "tables" / "lat")]
    return rows, [*argv, "--claims", str(tmp_path / "claims" / "lat.json")]


def test_cli_end_to_end_with_the_real_params(tmp_path: Path) -> None:
    rows, argv = project(tmp_path)
    assert any(row.ours for row in rows)  # params.yaml's extension (cifar10_eps8) is included
    main(parser().parse_args(argv))
    frame = pd.read_csv(tmp_path / "tables" / "lat.csv")
    assert len(frame) == 3 * len(rows)
    assert "cifar10_eps8 (ours)" in set(frame["dataset"])
    md = (tmp_path / "tables" / "lat.md").read_text(encoding="utf-8")
    assert "Scale: **tiny**" in md and "## cifar10_eps8 (ours)" in md and "## Claims" in md
    # The markdown names the claims file the stage wrote (its --claims), which exists.
    named = tmp_path / "claims" / "lat.json"
    assert f"`{named.as_posix()}` holds the records" in md and named.is_file()
    claims = read_claims(named)
    assert (claims.paper, claims.scale) == ("lat", "tiny")
    decided = [c for c in claims.claims if c.claim_id not in UNTESTABLE]
    assert {c.claim_id for c in decided} == set().union(*(claim_ids(row.key) for row in rows))
    assert {c.outcome for c in decided} == {Outcome.HOLDS}
    assert {c.claim_id for c in claims.claims if c.ours} == claim_ids("cifar10_eps8")
    assert not list((tmp_path / "tables").glob(".*.tmp"))  # atomic writes leave no temp files


def test_cli_missing_extension_evaluation_names_the_file(tmp_path: Path) -> None:
    rows, argv = project(tmp_path)
    ext = next(row for row in rows if row.ours)
    missing = eval_path(tmp_path / "evals", ext.models["background"], ext.inputs["background_attack"])
    missing.unlink()
    with pytest.raises(DataError) as exc:
        main(parser().parse_args(argv))
    assert str(missing) in str(exc.value) and "run the evaluate stage" in str(exc.value)
    assert not (tmp_path / "tables").exists() and not (tmp_path / "claims").exists()


def test_cli_missing_dataset_statistics_names_the_file(tmp_path: Path) -> None:
    _, argv = project(tmp_path)
    stats = tmp_path / "datasets" / "mnist.json"
    stats.unlink()
    with pytest.raises(
        DataError, match=re.escape(f"{stats}: dataset statistics missing; run the prepare stage")
    ):
        main(parser().parse_args(argv))
    assert not (tmp_path / "claims").exists()


def test_a_claim_that_needs_data_we_cannot_have_is_listed_as_not_tested() -> None:
    claims = lat_claims(lat_rows(SPEC), summary_evals(lat_rows(SPEC), CLEAR), FACTS, SETTINGS)
    (inception,) = [c for c in claims if c.claim_id in UNTESTABLE]
    assert inception.outcome == Outcome.NOT_TESTED and inception.effect is None
    assert "Inception-v3" in inception.reason and "cannot be downloaded" in inception.reason
    assert "nine images" in inception.quote
