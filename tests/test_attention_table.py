"""The attention-mask table (Vaishnavi et al. Table 4): the paper's layout, accuracy in %, the
paper's numbers beside ours, claim records whose outcomes follow a 95 % interval of our
numbers (directional A1 and GTSRB's A2, COCO's "comparable" A2 as equivalence, A3 as
non-inferiority), every other attack of the same models listed, and a clear error when a named
evaluation is missing, corrupt or on a different number of images."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from stages.attention_table import main, parser, write_attention_table
from stages.claims import evidence
from stages.claims.attention_masks import PAPER_FOREGROUND, SECTION_DATASETS, attention_claims
from stages.claims.evals import eval_path, find_evals
from stages.claims.evidence import Evaluation
from stages.claims.record import ClaimRecord, read_claims
from stages.claims.settings import ClaimSettings, DatasetFacts
from stages.claims.stats import Method, Outcome
from stages.config import Params
from stages.evaluation.records import per_image_record
from stages.report.attention_table import (
    MAIN_COLUMNS,
    PAPER_ACCURACY,
    AttentionTable,
    build_attention_table,
    to_markdown,
)
from stages.report.markdown import MISSING
from stages.utils.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parent.parent
EVALS = Path("evals")  # where the in-memory evaluations say they come from
INPUTS = {"natural": "natural", "pgd": "am_pgd"}
LABELS = {"natural": "X-N", "fg_natural": "X_FG-N", "adversarial": "X-A", "fg_adversarial": "X_FG-A"}
DATASETS = {
    ds: {
        role: f"{ds}_{suffix}"
        for role, suffix in zip(LABELS, ("natural", "fg_natural", "adv", "fg_adv"), strict=True)
    }
    for ds in ("coco_ic", "gtsrb_ic")
}
SPEC = {"datasets": DATASETS, "inputs": INPUTS}
SAMPLES = 500
CLASSES = 10
SETTINGS = ClaimSettings()
CLAIMS_PATH = Path("results/tiny/claims/attention_masks.json")  # what the stage renders

Accuracy = dict[str, dict[str, tuple[float, float]]]  # dataset -> paper row -> (natural %, PGD %)
# Large, clear effects in the paper's directions: X_FG-A beats X-A by >= 15 points on both
# inputs, X_FG-N and X-N within a point under PGD on COCO-IC (comparable) and 25 points apart on
# GTSRB-IC, masking gains natural accuracy.
CLEAR: Accuracy = {
    "coco_ic": {"X-N": (80.0, 2.0), "X_FG-N": (90.0, 3.0), "X-A": (60.0, 30.0), "X_FG-A": (80.0, 55.0)},
    "gtsrb_ic": {"X-N": (90.0, 20.0), "X_FG-N": (95.0, 45.0), "X-A": (70.0, 50.0), "X_FG-A": (85.0, 70.0)},
}
# Every effect reversed, and on COCO-IC the naturally trained models 28 points apart under PGD.
REVERSED: Accuracy = {
    "coco_ic": {"X-N": (80.0, 2.0), "X_FG-N": (70.0, 30.0), "X-A": (80.0, 55.0), "X_FG-A": (60.0, 30.0)},
    "gtsrb_ic": {"X-N": (95.0, 45.0), "X_FG-N": (85.0, 20.0), "X-A": (85.0, 70.0), "X_FG-A": (70.0, 50.0)},
}
EQUAL: Accuracy = {ds: dict.fromkeys(LABELS.values(), (80.0, 40.0)) for ds in DATASETS}


def claim_ids(dataset: str) -> list[str]:
    """Every claim of ``dataset``: A4 (the foreground share) where the paper gives one."""
    return [
        f"{dataset}.A1.natural",
        f"{dataset}.A1.pgd",
        f"{dataset}.A1",
        f"{dataset}.A2",
        f"{dataset}.A3.natural",
        f"{dataset}.A3.adversarial",
        f"{dataset}.A3",
        *([f"{dataset}.A4"] if dataset in PAPER_FOREGROUND else []),
    ]


def accuracy_claims(claims: dict[str, ClaimRecord]) -> dict[str, ClaimRecord]:
    """The claims on the models' accuracies: all but A4, a property of the dataset (tested on its own)."""
    return {i: c for i, c in claims.items() if not i.endswith(".A4")}


def result(model: str, attack: str, accuracy: float, samples: int = SAMPLES, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "dataset": model.rsplit("_", 1)[0],
        "scale": "tiny",
        "attack": attack,
        "samples": samples,
        "accuracy": accuracy,
        "loss": 1.0,
        "max_linf_perturbation": 8 / 255,
        "mean_l2_perturbation": 0.5,
        **extra,
    }


def evals_from(
    accuracy: Accuracy, datasets: dict[str, dict[str, str]] = DATASETS, samples: int = SAMPLES
) -> dict[tuple[str, str], dict]:
    """(natural, PGD) accuracy in % per dataset and paper row -> evaluations as the stage reads them."""
    out = {}
    for ds, roles in datasets.items():
        for role, model in roles.items():
            nat, pgd = accuracy[ds][LABELS[role]]
            fg = "foreground" if "fg" in role else "natural"
            out[(model, "natural")] = result(model, "natural", nat / 100, samples, model_input=fg)
            out[(model, "am_pgd")] = result(model, "am_pgd", pgd / 100, samples, model_input=fg)
    return out


def paper_like() -> Accuracy:
    return copy.deepcopy(PAPER_ACCURACY)


def evaluations(raw: dict[tuple[str, str], dict]) -> dict[tuple[str, str], Evaluation]:
    return {
        (model, attack): evidence.evaluation(record, eval_path(EVALS, model, attack), model, attack)
        for (model, attack), record in raw.items()
        if attack in INPUTS.values()
    }


def facts(datasets: dict[str, dict[str, str]]) -> dict[str, DatasetFacts]:
    return {ds: DatasetFacts(ds, CLASSES, None, f"datasets/{ds}.json") for ds in datasets}


def claims_of(
    raw: dict[tuple[str, str], dict], datasets: dict[str, dict[str, str]] = DATASETS
) -> list[ClaimRecord]:
    return attention_claims(datasets, INPUTS, evaluations(raw), facts(datasets), SETTINGS)


def by_id(claims: list[ClaimRecord]) -> dict[str, ClaimRecord]:
    return {c.claim_id: c for c in claims}


def table_of(
    raw: dict[tuple[str, str], dict], datasets: dict[str, dict[str, str]] = DATASETS
) -> AttentionTable:
    return build_attention_table(raw, datasets, INPUTS, claims_of(raw, datasets))


def write_evals(evals_dir: Path, evals: dict[tuple[str, str], dict]) -> None:
    for (model, attack), metrics in evals.items():
        path = eval_path(evals_dir, model, attack)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(metrics))


def write_datasets(folder: Path, names: list[str]) -> Path:
    """The prepare stage's statistics, as much of them as the claims read (the mean foreground
    fraction at the paper's share, where it gives one)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        summary: dict[str, Any] = {"per_class": {f"class{c}": SAMPLES // CLASSES for c in range(CLASSES)}}
        if name in PAPER_FOREGROUND:
            summary["mean_foreground_fraction"] = PAPER_FOREGROUND[name] / 100
        (folder / f"{name}.json").write_text(json.dumps({"test_summary": summary}))
    return folder


def write_table(tmp_path: Path, spec: dict[str, Any] = SPEC) -> AttentionTable:
    return write_attention_table(
        spec,
        tmp_path,
        tmp_path / "out" / "attention_masks",
        "tiny",
        datasets_dir=write_datasets(tmp_path / "datasets", list(spec["datasets"])),
        claims_path=tmp_path / "claims" / "attention_masks.json",
        settings=SETTINGS,
    )


# --- the table ----------------------------------------------------------------------------------


def test_layout_percent_and_paper_numbers_beside_ours() -> None:
    acc = paper_like()
    acc["gtsrb_ic"]["X-A"] = (80.0, 40.5)
    table = table_of(evals_from(acc))
    frame = table.frame
    assert list(frame.columns) == MAIN_COLUMNS
    assert list(frame["dataset"]) == ["coco_ic"] * 4 + ["gtsrb_ic"] * 4
    assert list(frame["model"]) == ["X-N", "X_FG-N", "X-A", "X_FG-A"] * 2
    row = frame.set_index(["dataset", "model"]).loc[("gtsrb_ic", "X-A")]
    assert row["natural accuracy %"] == 80.0  # 0.8 -> 80 %
    assert row["PGD accuracy %"] == 40.5
    assert (row["paper natural accuracy %"], row["paper PGD accuracy %"]) == (89.54, 55.25)
    assert row["model_key"] == "gtsrb_ic_adv" and row["samples"] == SAMPLES
    coco = frame.set_index(["dataset", "model"]).loc[("coco_ic", "X_FG-A")]
    assert coco["paper natural accuracy %"] == 72.92 and coco["paper PGD accuracy %"] == 53.62
    assert table.samples == [SAMPLES]
    assert [c.claim_id for c in table.claims] == claim_ids("coco_ic") + claim_ids("gtsrb_ic")


def test_unknown_dataset_has_no_paper_numbers() -> None:
    roi = {role: model.replace("gtsrb_ic", "gtsrb_ic_roi") for role, model in DATASETS["gtsrb_ic"].items()}
    table = table_of(
        evals_from({"gtsrb_ic_roi": CLEAR["gtsrb_ic"]}, {"gtsrb_ic_roi": roi}), {"gtsrb_ic_roi": roi}
    )
    assert table.frame["paper natural accuracy %"].isna().all()
    md = to_markdown(table, scale="tiny", level=SETTINGS.level, claims_path=CLAIMS_PATH)
    assert "## gtsrb_ic_roi\n" in md and f"| {MISSING} " in md
    claims = by_id(table.claims)
    assert list(claims) == claim_ids("gtsrb_ic_roi")
    assert all(
        c.effect is None or (c.effect.paper, c.effect.paper_in_interval) == (None, None) for c in table.claims
    )
    # Without a statement of its own, A2 is checked in its directional (GTSRB-IC) form.
    assert claims["gtsrb_ic_roi.A2"].claim == "X_FG-N is more robust than X-N under PGD"
    assert claims["gtsrb_ic_roi.A2"].outcome == Outcome.HOLDS


def test_extra_attacks_are_listed(tmp_path: Path) -> None:
    evals = evals_from(paper_like())
    fg_a, x_n = DATASETS["coco_ic"]["fg_adversarial"], DATASETS["gtsrb_ic"]["natural"]
    extra = {
        (fg_a, "am_pgd_foreground"): result(fg_a, "am_pgd_foreground", 0.5, model_input="foreground"),
        (fg_a, "am_pgd_background"): result(
            fg_a, "am_pgd_background", 0.7, model_input="foreground", effective_region="background"
        ),
        (x_n, "lat_standard"): result(x_n, "lat_standard", 0.125),  # an old file: no model_input
    }
    write_evals(tmp_path, {**evals, **extra})
    # Timings beside an evaluation and unrelated JSON are not evaluations.
    (tmp_path / fg_a / "am_pgd.throughput.json").write_text(json.dumps({"seconds": 1.0}))
    (tmp_path / fg_a / "notes.json").write_text(json.dumps({"comment": "x"}))
    found = find_evals(tmp_path, [fg_a, x_n, "never_evaluated"])
    assert set(found) == {(fg_a, "natural"), (fg_a, "am_pgd"), (x_n, "natural"), (x_n, "am_pgd"), *extra}

    table = write_table(tmp_path)
    listed = table.extra.set_index(["model_key", "attack"])
    assert list(listed.index) == [
        (fg_a, "am_pgd_background"),
        (fg_a, "am_pgd_foreground"),
        (x_n, "lat_standard"),
    ]
    assert listed.loc[(fg_a, "am_pgd_foreground"), "accuracy %"] == 50.0
    assert listed.loc[(fg_a, "am_pgd_foreground"), "model"] == "X_FG-A"
    assert listed.loc[(fg_a, "am_pgd_background"), "effective_region"] == "background"
    assert listed.loc[(x_n, "lat_standard"), "accuracy %"] == 12.5
    assert pd.isna(listed.loc[(x_n, "lat_standard"), "model_input"])
    md = (tmp_path / "out" / "attention_masks.md").read_text()
    assert "| gtsrb_ic  | X-N     | gtsrb_ic_natural | lat_standard" in md
    assert "throughput" not in md and "notes" not in md
    # The extra attacks are listed, never used as evidence for a claim.
    sources = {q.source for c in table.claims for q in c.quantities}
    assert sources and not any("am_pgd_" in s or "lat_standard" in s for s in sources)


def test_no_extra_evaluations() -> None:
    table = table_of(evals_from(paper_like()))
    assert table.extra.empty
    md = to_markdown(table, scale="tiny", level=SETTINGS.level, claims_path=CLAIMS_PATH)
    assert "None found beside the natural and PGD evaluations above." in md


def test_markdown_layout() -> None:
    claims_path = Path("results/reduced/claims/attention_masks.json")
    md = to_markdown(
        table_of(evals_from(paper_like())), scale="reduced", level=SETTINGS.level, claims_path=claims_path
    )
    assert md.startswith("# Attention masks:")
    assert "Scale: **reduced**" in md and "Vaishnavi et al. 2020, Table 4" in md
    assert f"first {SAMPLES} test images" in md and "the model sees x∘F" in md
    assert "only foreground pixels" in md
    order = ["## coco_ic (MS-COCO-IC)", "## gtsrb_ic (GTSRB-IC)", "## Claims", "## Other evaluations"]
    assert [md.index(h) for h in order] == sorted(md.index(h) for h in order)
    # The claims file is named as the stage was given it: per scale, never a scale-less path.
    assert (
        "from a 95 % interval" in md
        and "`results/reduced/claims/attention_masks.json` holds the records" in md
    )
    assert md.count("\n- **coco_ic.A") == 8 and md.count("\n- **gtsrb_ic.A") == 8
    assert "> Vaishnavi et al. 2020, Experiments and Table 4: “" in md
    assert "| X_FG-A  |                72.92 |                      72.92 |" in md
    assert "nan" not in md and "None |" not in md


# --- claims -------------------------------------------------------------------------------------


def test_claims_hold_with_large_clear_effects() -> None:
    claims = by_id(claims_of(evals_from(CLEAR)))
    assert list(claims) == claim_ids("coco_ic") + claim_ids("gtsrb_ic")
    assert {i: c.outcome for i, c in accuracy_claims(claims).items() if c.outcome != Outcome.HOLDS} == {}
    a1 = claims["coco_ic.A1.pgd"]
    assert a1.effect is not None and a1.effect.unit == "points" and a1.effect.value == pytest.approx(25.0)
    assert a1.effect.low > 0 and a1.effect.n == SAMPLES
    assert a1.effect.method == str(Method.NEWCOMBE) and not a1.effect.paired
    assert a1.note == "unpaired: these evaluations keep only summary counts"
    assert [q.value for q in a1.quantities] == pytest.approx([55.0, 30.0])
    assert a1.quantities[0].source == str(eval_path(EVALS, "coco_ic_fg_adv", "am_pgd"))
    assert a1.models == ("coco_ic_fg_adv", "coco_ic_adv")
    assert claims["coco_ic.A1"].parts == ("coco_ic.A1.natural", "coco_ic.A1.pgd")
    # COCO-IC's A2 is the paper's "comparable": equivalence within the margin.
    coco_a2 = claims["coco_ic.A2"]
    assert coco_a2.claim == "X-N and X_FG-N are comparably vulnerable to PGD"
    assert coco_a2.effect is not None
    assert (
        -SETTINGS.comparable_margin
        < coco_a2.effect.low
        < 0
        < coco_a2.effect.high
        < SETTINGS.comparable_margin
    )
    assert "equivalence" in coco_a2.rule and "±5 points" in coco_a2.rule
    # GTSRB-IC's A2 is directional; A3 non-inferiority within the no-cost margin.
    assert claims["gtsrb_ic.A2"].claim == "X_FG-N is more robust than X-N under PGD"
    assert (
        "non-inferiority" in claims["gtsrb_ic.A3.natural"].rule
        and "-2 points" in claims["gtsrb_ic.A3.natural"].rule
    )


def test_claims_do_not_hold_when_the_effects_are_reversed() -> None:
    claims = by_id(claims_of(evals_from(REVERSED)))
    assert {i: c.outcome for i, c in accuracy_claims(claims).items() if c.outcome != Outcome.FAILS} == {}
    a2 = claims["coco_ic.A2"].effect
    assert a2 is not None and a2.low > SETTINGS.comparable_margin  # 28 points apart: not comparable
    a3 = claims["gtsrb_ic.A3.adversarial"].effect
    assert a3 is not None and a3.high < -SETTINGS.no_cost_margin
    assert "gtsrb_ic.A1.natural (does not hold)" in claims["gtsrb_ic.A1"].reason


def test_equal_numbers_are_inconclusive() -> None:
    claims = accuracy_claims(by_id(claims_of(evals_from(EQUAL))))
    assert {c.outcome for c in claims.values()} == {Outcome.INCONCLUSIVE}
    for claim in claims.values():
        if claim.effect is None:
            assert claim.reason.startswith("parts not holding:")
        else:
            # "includes 0" (directional), "crosses a bound of ±5" (A2 on COCO-IC, equivalence).
            assert claim.effect.value == 0.0 and "so these images cannot tell" in claim.reason


def test_too_few_images_cannot_decide() -> None:
    # Ten images: every interval is too wide to decide, and each record carries the flag
    # (params claims.min_samples is a flag, not an override).
    claims = claims_of(evals_from(CLEAR, samples=10))
    effects = [c for c in claims if c.effect is not None]
    assert effects and {c.outcome for c in effects} == {Outcome.INCONCLUSIVE}
    assert all(c.small_sample and "cannot tell" in c.reason for c in effects)


def test_a_model_at_chance_makes_its_claims_degenerate() -> None:
    acc = copy.deepcopy(CLEAR)
    acc["coco_ic"]["X-N"] = (10.8, 2.0)  # 10 classes: its interval reaches chance
    claims = by_id(claims_of(evals_from(acc)))
    degenerate = {i for i, c in claims.items() if c.outcome == Outcome.DEGENERATE}
    assert degenerate == {"coco_ic.A2", "coco_ic.A3.natural", "coco_ic.A3"}
    at_chance = "`coco_ic_natural`: its clean accuracy 10.8 % [8.4, 13.8] on 500 images is not above chance"
    assert at_chance in claims["coco_ic.A2"].reason and at_chance in claims["coco_ic.A3"].reason
    assert claims["coco_ic.A1"].outcome == claims["gtsrb_ic.A3"].outcome == Outcome.HOLDS


def test_the_papers_effects_are_compared_with_our_intervals() -> None:
    claims = by_id(claims_of(evals_from(paper_like())))
    a1 = claims["coco_ic.A1.pgd"].effect
    assert a1 is not None and a1.paper == pytest.approx(53.62 - 30.80) and a1.paper_in_interval is True
    assert claims["coco_ic.A1.pgd"].outcome == Outcome.HOLDS
    gtsrb_a2 = claims["gtsrb_ic.A2"].effect
    assert gtsrb_a2 is not None and gtsrb_a2.paper == pytest.approx(38.38 - 18.69)
    # With our numbers far from the paper's, its effect falls outside our interval.
    acc = paper_like()
    acc["coco_ic"]["X_FG-A"] = (72.92, 32.0)
    shifted = by_id(claims_of(evals_from(acc)))["coco_ic.A1.pgd"]
    assert shifted.effect is not None and shifted.effect.paper_in_interval is False
    assert shifted.outcome == Outcome.INCONCLUSIVE  # 1.2 points on 500 images cannot tell


def per_image(accuracy: float, same_as: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """0/1 outcomes on the same SAMPLES images (the first ones right) and their per_image block."""
    correct = same_as if same_as is not None else (np.arange(SAMPLES) < round(accuracy * SAMPLES)).astype(int)
    labels = np.arange(SAMPLES) % CLASSES
    block = per_image_record(
        [f"test/{i}" for i in range(SAMPLES)],
        correct,
        np.where(correct == 1, 0.1, 2.0),
        np.where(correct == 1, labels, (labels + 1) % CLASSES),
    )
    return correct, block


def test_paired_outcomes_decide_what_summary_counts_cannot() -> None:
    # The naturally trained X-N and X_FG-N right on exactly the same 80 % of images: paired, the
    # difference is 0 on every image and the no-cost claim holds; from summary counts alone the
    # same accuracies leave an interval wider than the margin.
    raw = evals_from(CLEAR)
    for roles in DATASETS.values():
        for role, model in roles.items():
            for kind, attack in INPUTS.items():
                value = raw[(model, attack)]["accuracy"]
                if kind == "natural" and role in ("natural", "fg_natural"):
                    value = 0.8
                raw[(model, attack)]["accuracy"] = value
                raw[(model, attack)]["per_image"] = per_image(value)[1]
    paired = by_id(claims_of(raw))
    a3 = paired["coco_ic.A3.natural"]
    assert a3.effect is not None and a3.effect.paired and a3.effect.method == str(Method.PAIRED_SCORE_RATE)
    # No discordant pair: the paired score interval is symmetric about 0 and narrow (±0.6 points
    # on 500 images), well inside the 2-point margin.
    assert a3.effect.value == 0.0 and a3.effect.discordant == (0, 0)
    assert -SETTINGS.no_cost_margin < a3.effect.low == -a3.effect.high < 0
    assert a3.outcome == Outcome.HOLDS and a3.note == ""
    a1 = paired["gtsrb_ic.A1.pgd"].effect
    assert a1 is not None and a1.p_value is not None and a1.p_value < 1e-10
    summary = {key: {k: v for k, v in record.items() if k != "per_image"} for key, record in raw.items()}
    assert by_id(claims_of(summary))["coco_ic.A3.natural"].outcome == Outcome.INCONCLUSIVE


def with_fractions(shares: dict[str, float] | None) -> dict[tuple[str, str], dict]:
    """CLEAR's evaluations with per-image outcomes; with ``shares`` (dataset -> mean share in %),
    X-N's clean evaluation also keeps each image's foreground fraction: the mean -0.1, the mean,
    +0.1 in turn (an image's share spreads by 10 points)."""
    raw = evals_from(CLEAR)
    for ds, roles in DATASETS.items():
        for role, model in roles.items():
            for attack in INPUTS.values():
                block = per_image(raw[(model, attack)]["accuracy"])[1]
                if shares is not None and role == "natural" and attack == INPUTS["natural"]:
                    offsets = np.array([-0.1, 0.0, 0.1])[np.arange(SAMPLES) % 3]
                    offsets[-2] = 0.0  # SAMPLES is not a multiple of 3: one -0.1 less keeps the mean
                    block["foreground_fraction"] = (shares[ds] / 100 + offsets).round(6).tolist()
                raw[(model, attack)]["per_image"] = block
    return raw


@pytest.mark.parametrize(
    ("shares", "outcome"),
    [
        ({"coco_ic": 56.0, "gtsrb_ic": 25.0}, Outcome.HOLDS),  # the paper's shares
        ({"coco_ic": 36.0, "gtsrb_ic": 34.0}, Outcome.FAILS),  # about ours at the reduced scale
        ({"coco_ic": 51.0, "gtsrb_ic": 30.0}, Outcome.INCONCLUSIVE),  # 5 points off: on the bound
    ],
    ids=["paper", "far", "on_the_margin"],
)
def test_foreground_share_follows_the_per_image_fractions(shares: dict[str, float], outcome: Outcome) -> None:
    """A4 (Dataset Creation): our mean share of foreground pixels against the paper's ≈56 %
    (MS-COCO-IC) and ≈25 % (GTSRB-IC), within ±comparable_margin points, from per-image
    fractions where an evaluation keeps them (a BCa interval over images)."""
    claims = by_id(claims_of(with_fractions(shares)))
    margin = SETTINGS.comparable_margin
    for ds in DATASETS:
        a4 = claims[f"{ds}.A4"]
        effect = a4.effect
        assert a4.outcome == outcome, a4.reason
        assert effect is not None and effect.unit == "points" and effect.n == SAMPLES and effect.paired
        assert effect.method in (str(Method.PAIRED_BCA), str(Method.PAIRED_T))
        assert effect.value == pytest.approx(shares[ds] - PAPER_FOREGROUND[ds], abs=1e-6)
        inside = -margin <= effect.low and effect.high <= margin
        outside = effect.low > margin or effect.high < -margin
        assert inside is (outcome == Outcome.HOLDS) and outside is (outcome == Outcome.FAILS)
        assert a4.section == SECTION_DATASETS and f"≈{PAPER_FOREGROUND[ds]:g}% foreground pixels" in a4.quote
        assert a4.models == () and not a4.ours and a4.family == "attention_masks"
        (quantity,) = a4.quantities
        assert quantity.value == pytest.approx(shares[ds]) and quantity.unit == "%"
        assert quantity.source == str(eval_path(EVALS, DATASETS[ds]["natural"], "natural"))
        if outcome == Outcome.INCONCLUSIVE:
            assert "crosses a bound of ±5 points" in a4.reason and a4.needs is not None
    assert "ad hoc graph-cut segmenter" in claims["gtsrb_ic.A4"].note
    # The accuracy claims do not change with the foreground fractions.
    assert {c.outcome for c in accuracy_claims(claims).values()} == {Outcome.HOLDS}


def test_foreground_share_from_the_dataset_statistics_has_no_interval() -> None:
    """Without per-image fractions, the dataset statistics' mean (36.5 % on MS-COCO-IC at the
    reduced scale) has no interval: inconclusive, and no power calculation; without a mean
    either, A4 is not tested for want of data."""
    raw = evals_from(CLEAR)
    known = {"coco_ic": DatasetFacts("coco_ic", CLASSES, 0.364514, "datasets/coco_ic.json")}
    known["gtsrb_ic"] = DatasetFacts("gtsrb_ic", CLASSES, None, "datasets/gtsrb_ic.json")
    claims = by_id(attention_claims(DATASETS, INPUTS, evaluations(raw), known, SETTINGS))
    coco = claims["coco_ic.A4"]
    assert coco.outcome == Outcome.INCONCLUSIVE and coco.reason.endswith("no interval")
    assert coco.effect is not None and coco.effect.method == str(Method.NONE)
    assert coco.effect.value == pytest.approx(36.4514 - 56.0)
    assert coco.quantities[0].source == "datasets/coco_ic.json" and "no interval" in coco.note
    assert coco.needs is not None and coco.needs.constraint == "not computable"
    gtsrb = claims["gtsrb_ic.A4"]
    assert gtsrb.outcome == Outcome.NOT_TESTED and gtsrb.effect is None
    assert gtsrb.needs is not None and gtsrb.needs.constraint == "data"
    assert "datasets/gtsrb_ic.json has no mean foreground fraction" in gtsrb.reason


# --- errors -------------------------------------------------------------------------------------


def test_missing_main_evaluation_names_the_file(tmp_path: Path) -> None:
    evals = evals_from(paper_like())
    del evals[(DATASETS["gtsrb_ic"]["fg_natural"], "am_pgd")]
    write_evals(tmp_path, evals)
    with pytest.raises(DataError) as exc:
        write_table(tmp_path)
    missing = eval_path(tmp_path, "gtsrb_ic_fg_natural", "am_pgd")
    assert str(missing) in str(exc.value) and "run the evaluate stage" in str(exc.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "claims").exists()


def test_corrupt_evaluation_is_a_data_error(tmp_path: Path) -> None:
    write_evals(tmp_path, evals_from(paper_like()))
    eval_path(tmp_path, "coco_ic_natural", "natural").write_text("{not json")
    with pytest.raises(DataError, match="coco_ic_natural/natural.json: not valid JSON"):
        write_table(tmp_path)
    assert not (tmp_path / "claims").exists()


def test_different_sample_counts_name_both_files(tmp_path: Path) -> None:
    evals = evals_from(CLEAR)
    adv = DATASETS["gtsrb_ic"]["adversarial"]
    evals[(adv, "am_pgd")] = result(adv, "am_pgd", 0.5, samples=400)
    write_evals(tmp_path, evals)
    with pytest.raises(DataError) as exc:
        write_table(tmp_path)
    message = str(exc.value)
    assert str(eval_path(tmp_path, adv, "am_pgd")) in message
    assert str(eval_path(tmp_path, DATASETS["gtsrb_ic"]["fg_adversarial"], "am_pgd")) in message
    assert "different sample counts" in message
    assert not (tmp_path / "out").exists() and not (tmp_path / "claims").exists()


def test_missing_dataset_statistics_names_the_file(tmp_path: Path) -> None:
    write_evals(tmp_path, evals_from(CLEAR))
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    (datasets / "coco_ic.json").write_text(json.dumps({"test_summary": {"per_class": {"a": 1, "b": 1}}}))
    (datasets / "gtsrb_ic.json").write_text(json.dumps({"train_summary": {}}))
    with pytest.raises(
        DataError, match=re.escape(f"{datasets / 'gtsrb_ic.json'}: no readable 'test_summary")
    ):
        write_attention_table(
            SPEC,
            tmp_path,
            tmp_path / "out" / "attention_masks",
            "tiny",
            datasets_dir=datasets,
            claims_path=tmp_path / "claims.json",
            settings=SETTINGS,
        )
    assert not (tmp_path / "claims.json").exists()


# --- the stage ----------------------------------------------------------------------------------


def test_written_claims_round_trip(tmp_path: Path) -> None:
    write_evals(tmp_path, evals_from(CLEAR))
    table = write_table(tmp_path)
    claims = read_claims(tmp_path / "claims" / "attention_masks.json")
    assert (claims.paper, claims.scale) == ("attention_masks", "tiny")
    assert claims.claims == tuple(table.claims)
    md = (tmp_path / "out" / "attention_masks.md").read_text(encoding="utf-8")
    assert "**coco_ic.A2** (coco_ic): X-N and X_FG-N are comparably vulnerable to PGD — **holds**" in md


def stage_args(tmp_path: Path, params: str, scale: str, datasets: list[str]) -> list[str]:
    return [
        *("--params", params, "--scale", scale, "--evals", str(tmp_path / "evals")),
        *("--datasets", str(write_datasets(tmp_path / "datasets", datasets))),
        *("--out", str(tmp_path / "tables" / "attention_masks")),
        *("--claims", str(tmp_path / "claims" / "attention_masks.json")),
    ]


def test_cli_reads_the_spec_from_params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # main's wiring alone (params section, --scale, --evals, --datasets, --out, --claims),
    # whatever state params.yaml is in.
    seen: dict[str, Any] = {}

    def load(path: str, scale: str | None) -> SimpleNamespace:
        seen.update(path=path, scale=scale)
        raw = {"tables": {"attention_masks": SPEC}, "claims": {"min_samples": 1000}}
        return SimpleNamespace(raw=raw, scale=scale)

    monkeypatch.setattr(Params, "load", staticmethod(load))
    write_evals(tmp_path / "evals", evals_from(paper_like()))
    main(parser().parse_args(stage_args(tmp_path, "p.yaml", "reduced", list(DATASETS))))
    assert seen == {"path": "p.yaml", "scale": "reduced"}
    out = tmp_path / "tables" / "attention_masks"
    assert pd.read_csv(out.with_suffix(".csv"))["paper PGD accuracy %"].tolist()[-1] == 64.57
    assert "Scale: **reduced**" in out.with_suffix(".md").read_text(encoding="utf-8")
    claims = read_claims(tmp_path / "claims" / "attention_masks.json")
    assert claims.scale == "reduced"
    # params' claims settings reach the records: 500 images are fewer than min_samples 1000.
    assert all(c.small_sample for c in claims.claims if c.effect is not None)


def test_cli_end_to_end(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    added = "attention_masks" not in raw.get("tables", {})
    if added:
        raw.setdefault("tables", {})["attention_masks"] = SPEC
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    # Our fake models, not params.yaml's (whatever it names there now).
    spec = raw["tables"]["attention_masks"]
    fake = evals_from({ds: CLEAR.get(ds, CLEAR["gtsrb_ic"]) for ds in spec["datasets"]}, spec["datasets"])
    write_evals(tmp_path / "evals", fake)
    args = parser().parse_args(stage_args(tmp_path, str(params), "tiny", list(spec["datasets"])))
    try:
        main(args)
    except ConfigError as exc:
        if added:  # params.yaml (or its schema) does not have tables.attention_masks yet
            pytest.skip(f"params.yaml with tables.attention_masks added does not validate yet: {exc}")
        raise
    out = tmp_path / "tables" / "attention_masks"
    frame = pd.read_csv(out.with_suffix(".csv"))
    assert list(frame.columns) == MAIN_COLUMNS and len(frame) == 4 * len(spec["datasets"])
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "Scale: **tiny**" in md and "## Claims" in md
    # The markdown names the claims file the stage wrote (its --claims), which exists.
    named = tmp_path / "claims" / "attention_masks.json"
    assert f"`{named.as_posix()}` holds the records" in md and named.is_file()
    claims = read_claims(named)
    assert [c.claim_id for c in claims.claims] == [i for ds in spec["datasets"] for i in claim_ids(ds)]
    by_claim = {c.claim_id: c for c in claims.claims}
    assert {c.outcome for c in accuracy_claims(by_claim).values()} == {Outcome.HOLDS}
    # A4 from the dataset statistics: the test split's mean only, so no interval.
    for ds in PAPER_FOREGROUND.keys() & set(spec["datasets"]):
        a4 = by_claim[f"{ds}.A4"]
        assert a4.outcome == Outcome.INCONCLUSIVE and "no interval" in a4.reason
        assert a4.quantities[0].source == str(tmp_path / "datasets" / f"{ds}.json")
    assert not list(out.parent.glob(".*.tmp"))  # atomic writes leave no temp files
