"""The dual-perturbation report (ICLR 2021 submission, §5.2-5.4): the main table holds the
evaluations' accuracies in %, a missing named evaluation is a clear error, the paper's claims are
records whose outcomes follow from confidence intervals on our numbers (holds, does not hold,
inconclusive, degenerate, not tested), and every dataset gets a figure and every (dataset, sweep)
a plot CSV whose x values come from the attacks' params."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from stages.claims.dual_perturbation import (
    NO_INTERVAL,
    PAPER,
    PAPER_STRONG_PGD_MARGIN,
    SUPERSET_NOTE,
    TITLE,
    dual_claims,
)
from stages.claims.evals import eval_path
from stages.claims.evidence import evaluation
from stages.claims.record import ClaimRecord, read_claims
from stages.claims.settings import ClaimSettings, DatasetFacts
from stages.claims.stats import Method, Outcome
from stages.config import AttackSpec, Params
from stages.dual_table import main, parser
from stages.report.dual_table import (
    FS_COLUMN,
    INPUT_COLUMNS,
    LEGACY_SALIENCE,
    MAIN_COLUMNS,
    ROLES,
    SALIENCE_COLUMNS,
    SALIENCE_TITLES,
    build_dual_table,
    load_salience_agreement,
    paper_equivalent,
    required_pairs,
    sweep_axes,
    write_dual_report,
)
from stages.saliency import SALIENCE_MODELS
from stages.saliency.quality import preferred_model, summarize
from stages.utils.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Enough images that a 40-point difference is decided and a 0-point one is not (params
# claims.min_samples is 30); a multiple of len(SPREAD), so per-image spreads average out exactly.
SAMPLES = 200
NUM_CLASSES = 10
FOREGROUND_FRACTION = 0.3  # the test split's mean foreground fraction (the FS of a uniform map)
FS_NATURAL = 0.6  # clean images' FS: above the foreground fraction, so the salience check passes
IDS_SHA256 = "0" * 64  # every fake evaluation is on the same test images
SPREAD = (-0.1, -0.05, 0.0, 0.05, 0.1)  # per-image FS around its mean
PLOT_COLUMNS = ["x", "clean", "at_pgd", "at_dual"]
ROLE_INDEX = {role: i for i, role in enumerate(ROLES)}
DATASETS = ("ds_a", "ds_b")

Accuracy = Callable[[str, AttackSpec], float]
Score = Callable[[str, AttackSpec], float]


@pytest.fixture(scope="module")
def params() -> Params:
    return Params.load(ROOT / "params.yaml", "tiny")


@pytest.fixture(scope="module")
def spec(params: Params) -> dict[str, Any]:
    """params.yaml's inputs and sweeps (the attacks whose params give the x values) on two
    datasets of fake models: nothing here is trained."""
    real = params.raw["tables"]["dual_perturbation"]
    datasets = {ds: {role: f"{ds}_{role}" for role in ROLES} for ds in DATASETS}
    return {"datasets": datasets, "inputs": dict(real["inputs"]), "sweeps": dict(real["sweeps"])}


def default_accuracy(params: Params) -> Accuracy:
    """Distinct per model and attack, so a value in the wrong cell shows; clean accuracy well
    above chance (1/NUM_CLASSES), so no model is degenerate."""
    order = {name: i for i, name in enumerate(sorted(params.raw["attacks"]))}

    def accuracy(role: str, attack: AttackSpec) -> float:
        if attack.kind == "none":
            return round(0.7 + 0.1 * ROLE_INDEX[role], 4)
        return round(0.05 + 0.1 * ROLE_INDEX[role] + 0.005 * order[attack.name], 4)

    return accuracy


def default_fs(role: str, attack: AttackSpec) -> float:
    """FS above 0.5 and the clean images', growing with λ, as the paper reports (§5.2)."""
    return round(0.55 + 0.05 * ROLE_INDEX[role] + 0.002 * attack.salience_weight, 4)


def spread(mean: float, n: int) -> list[float]:
    """``n`` per-image values whose mean is ``mean``."""
    return [round(mean + SPREAD[i % len(SPREAD)], 6) for i in range(n)]


def image_record(
    n: int, accuracy: float, fs: float | None = None, fs_natural: float | None = None
) -> dict[str, Any]:
    """The evaluate stage's ``per_image`` block: the first round(accuracy x n) images correct (so
    two evaluations' correct sets nest, as a stronger attack's do), labels i % NUM_CLASSES."""
    k = round(accuracy * n)
    correct = [int(i < k) for i in range(n)]
    record: dict[str, Any] = {
        "ids_sha256": IDS_SHA256,
        "correct": correct,
        "loss": [0.5 if c else 2.0 for c in correct],
        "prediction": [i % NUM_CLASSES if c else (i + 1) % NUM_CLASSES for i, c in enumerate(correct)],
    }
    if fs is not None and fs_natural is not None:
        record.update(
            foreground_score=spread(fs, n),
            foreground_score_natural=spread(fs_natural, n),
            foreground_fraction=spread(FOREGROUND_FRACTION, n),
        )
    return record


def fake_evals(
    spec: dict[str, Any],
    params: Params,
    accuracy: Accuracy | None = None,
    fs: Score = default_fs,
    *,
    samples: int = SAMPLES,
    fs_natural: float = FS_NATURAL,
    per_image: bool = False,
    overrides: Mapping[tuple[str, str], float] | None = None,
) -> dict[tuple[str, str], dict[str, Any]]:
    """Every evaluation the report reads, in the evaluate stage's format: summary numbers, and
    with ``per_image`` each image's outcome (and foreground scores, for dual attacks).
    ``overrides``: (model, attack) -> accuracy, for one model of one dataset."""
    accuracy = accuracy or default_accuracy(params)
    overrides = overrides or {}
    role_of = {model: (ds, role) for ds, roles in spec["datasets"].items() for role, model in roles.items()}
    evals = {}
    for model, attack in required_pairs(spec):
        dataset, role = role_of[model]
        attack_spec = params.attack(attack)
        acc = overrides.get((model, attack), accuracy(role, attack_spec))
        metrics: dict[str, Any] = {
            "model": model,
            "dataset": dataset,
            "scale": "tiny",
            "attack": attack,
            "samples": samples,
            "accuracy": acc,
            "loss": 1.0,
            "model_input": "natural",
            "effective_region": "full",
            "restarts": 1,
            "max_linf_perturbation": 0.1,
            "mean_l2_perturbation": 0.5,
        }
        score = None
        if attack_spec.kind == "dual":
            score = fs(role, attack_spec)
            metrics.update(
                foreground_score=score,
                foreground_score_natural=fs_natural,
                foreground_source="segmentation",
                salience_model=attack_spec.salience,
            )
        if per_image:
            metrics["per_image"] = image_record(
                samples, acc, score, fs_natural if score is not None else None
            )
        evals[(model, attack)] = metrics
    return evals


def write_evals(evals_dir: Path, evals: dict[tuple[str, str], dict[str, Any]]) -> None:
    for (model, attack), metrics in evals.items():
        path = eval_path(evals_dir, model, attack)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(metrics))


def write_datasets(folder: Path, datasets: list[str] | tuple[str, ...], fraction: float | None) -> None:
    """The prepare stage's ``<dataset>.json`` statistics, as much as the claims read of them."""
    folder.mkdir(parents=True, exist_ok=True)
    per_class = {f"class_{c}": SAMPLES // NUM_CLASSES for c in range(NUM_CLASSES)}
    for dataset in datasets:
        summary = {"per_class": per_class, "mean_foreground_fraction": fraction}
        (folder / f"{dataset}.json").write_text(json.dumps({"test_summary": summary}))


def judge(
    spec: dict[str, Any],
    params: Params,
    raw: dict[tuple[str, str], dict[str, Any]],
    fraction: float | None = FOREGROUND_FRACTION,
) -> dict[str, ClaimRecord]:
    """The claims on ``raw`` (as the report makes them, without files), by claim id."""
    table = build_dual_table(raw, spec, params)
    evals = {
        (model, attack): evaluation(record, eval_path(Path("evals"), model, attack), model, attack)
        for (model, attack), record in raw.items()
    }
    facts = {ds: DatasetFacts(ds, NUM_CLASSES, fraction, f"datasets/{ds}.json") for ds in spec["datasets"]}
    records = dual_claims(spec["datasets"], spec["inputs"], table.sweeps, evals, facts, ClaimSettings())
    by_id = {r.claim_id: r for r in records}
    assert len(by_id) == len(records), "claim ids must be unique"
    return by_id


def report_paths(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    return tmp_path / "tables" / "dual", tmp_path / "figures", tmp_path / "plots", tmp_path / "claims.json"


def salience_record(
    datasets: list[str] | tuple[str, ...], models: list[str] | None = None, preferred: str | None = None
) -> dict[str, Any]:
    """The salience_quality stage's record (its own summarize / preferred_model, so the format is
    the stage's): model i of ``models`` has FS FOREGROUND_FRACTION + 0.1 (i + 1) and AUC 0.6 + 0.1 i
    on every image, so the last model is preferred unless ``preferred`` says otherwise."""
    models = sorted(SALIENCE_MODELS) if models is None else models
    fraction = np.full(SAMPLES, FOREGROUND_FRACTION)
    per_model = {
        model: summarize(
            {
                "foreground_score": fraction + 0.1 * (i + 1),
                "foreground_fraction": fraction,
                "auc": np.full(SAMPLES, 0.6 + 0.1 * i),
            }
        )
        for i, model in enumerate(models)
    }
    record = {
        "scale": "tiny",
        "datasets": {ds: {"images": SAMPLES, "split": "test", "models": per_model} for ds in datasets},
        "preferred": preferred_model({ds: per_model for ds in datasets}),
    }
    if preferred is not None:
        record["preferred"]["model"] = preferred
    return record


def write_salience(
    tmp_path: Path, params: Params, datasets: list[str] | tuple[str, ...] = DATASETS, **kwargs: Any
) -> Path:
    """A record that prefers the model params' dual attacks use (unless ``kwargs`` say else)."""
    kwargs.setdefault(
        "preferred", params.attack(params.raw["tables"]["dual_perturbation"]["inputs"]["dual"]).salience
    )
    path = tmp_path / "metrics" / "salience_quality.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(salience_record(datasets, **kwargs)))
    return path


def with_dual_inputs(
    params: Params, spec: dict[str, Any], attack: str, at_pgd: float, at_dual: float
) -> Accuracy:
    """The default accuracies, but AT-PGD and AT-Dual at the given values under ``attack``."""
    base = default_accuracy(params)
    chosen = {"at_pgd": at_pgd, "at_dual": at_dual}

    def accuracy(role: str, spec_: AttackSpec) -> float:
        return chosen[role] if spec_.name == attack and role in chosen else base(role, spec_)

    return accuracy


def salience_sweep(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return next((n, s) for n, s in spec["sweeps"].items() if s["parameter"] == "salience_weight")


def test_main_table_is_the_accuracies_in_percent(spec: dict[str, Any], params: Params) -> None:
    evals = fake_evals(spec, params)
    table = build_dual_table(evals, spec, params)
    frame = table.frame
    assert list(frame.columns) == MAIN_COLUMNS
    assert list(frame["dataset"]) == ["ds_a"] * 3 + ["ds_b"] * 3
    assert list(frame["model"]) == ["Clean", "AT-PGD", "AT-Dual"] * 2
    for row in frame.to_dict("records"):
        for kind, column in INPUT_COLUMNS.items():
            expected = 100 * evals[(row["model_key"], spec["inputs"][kind])]["accuracy"]
            assert row[column] == pytest.approx(expected, abs=1e-9)
        dual = evals[(row["model_key"], spec["inputs"]["dual"])]
        assert row[FS_COLUMN] == pytest.approx(dual["foreground_score"], abs=1e-3)
        assert row["samples"] == SAMPLES
    assert table.samples == [SAMPLES]
    dual = params.attack(spec["inputs"]["dual"])
    assert table.salience == [dual.salience] and dual.salience in SALIENCE_MODELS
    assert table.salience_of[dual.name] == dual.salience
    dual_sweeps = [a for s in table.sweeps if s.dual for a in s.attacks]
    assert set(table.salience_of) == {dual.name, *dual_sweeps}


def test_missing_input_evaluation_names_the_file(
    tmp_path: Path, spec: dict[str, Any], params: Params
) -> None:
    evals = fake_evals(spec, params)
    del evals[("ds_b_at_pgd", spec["inputs"]["dual"])]
    write_evals(tmp_path / "evals", evals)
    write_datasets(tmp_path / "datasets", DATASETS, FOREGROUND_FRACTION)
    out, figures, plots, claims = report_paths(tmp_path)
    with pytest.raises(DataError) as exc:
        write_dual_report(
            spec,
            params,
            tmp_path / "evals",
            out,
            figures,
            plots,
            "tiny",
            datasets_dir=tmp_path / "datasets",
            claims_path=claims,
            salience_path=write_salience(tmp_path, params),
        )
    missing = eval_path(tmp_path / "evals", "ds_b_at_pgd", spec["inputs"]["dual"])
    assert str(missing) in str(exc.value) and "run the evaluate stage" in str(exc.value)
    assert not out.with_suffix(".csv").exists() and not figures.exists() and not plots.exists()
    assert not claims.exists()


def test_missing_dataset_statistics_names_the_file(
    tmp_path: Path, spec: dict[str, Any], params: Params
) -> None:
    write_evals(tmp_path / "evals", fake_evals(spec, params))
    write_datasets(tmp_path / "datasets", ["ds_a"], FOREGROUND_FRACTION)  # ds_b's is missing
    out, figures, plots, claims = report_paths(tmp_path)
    with pytest.raises(DataError) as exc:
        write_dual_report(
            spec,
            params,
            tmp_path / "evals",
            out,
            figures,
            plots,
            "tiny",
            datasets_dir=tmp_path / "datasets",
            claims_path=claims,
            salience_path=write_salience(tmp_path, params),
        )
    assert str(tmp_path / "datasets" / "ds_b.json") in str(exc.value)
    assert "prepare stage" in str(exc.value)
    assert not out.with_suffix(".md").exists() and not figures.exists() and not claims.exists()


def test_dual_eval_without_foreground_score_is_a_data_error(spec: dict[str, Any], params: Params) -> None:
    evals = fake_evals(spec, params)
    del evals[("ds_a_clean", spec["inputs"]["dual"])]["foreground_score"]
    with pytest.raises(DataError, match=f"ds_a_clean/{spec['inputs']['dual']}.json: .*foreground_score"):
        build_dual_table(evals, spec, params)


def test_mixing_per_image_and_summary_evaluations_is_a_data_error(
    tmp_path: Path, spec: dict[str, Any], params: Params
) -> None:
    """D1 compares AT-Dual with AT-PGD under the dual attack: one with per-image outcomes and
    one without come from different code versions, and cannot be paired."""
    evals = fake_evals(spec, params)
    dual = spec["inputs"]["dual"]
    newer = evals[("ds_a_at_dual", dual)]
    newer["per_image"] = image_record(SAMPLES, newer["accuracy"], newer["foreground_score"], FS_NATURAL)
    write_evals(tmp_path / "evals", evals)
    write_datasets(tmp_path / "datasets", DATASETS, FOREGROUND_FRACTION)
    out, figures, plots, claims = report_paths(tmp_path)
    with pytest.raises(DataError) as exc:
        write_dual_report(
            spec,
            params,
            tmp_path / "evals",
            out,
            figures,
            plots,
            "tiny",
            datasets_dir=tmp_path / "datasets",
            claims_path=claims,
            salience_path=write_salience(tmp_path, params),
        )
    message = str(exc.value)
    assert str(eval_path(tmp_path / "evals", "ds_a_at_pgd", dual)) in message
    assert str(eval_path(tmp_path / "evals", "ds_a_at_dual", dual)) in message and "'per_image'" in message
    assert not claims.exists() and not out.with_suffix(".csv").exists()


@pytest.mark.parametrize("per_image", [False, True], ids=["summary", "per_image"])
@pytest.mark.parametrize(
    ("at_pgd", "at_dual", "outcome", "ceiling"),
    [
        (0.05, 0.45, Outcome.HOLDS, Outcome.HOLDS),
        (0.45, 0.05, Outcome.FAILS, Outcome.FAILS),
        (0.3, 0.3, Outcome.INCONCLUSIVE, Outcome.FAILS),
    ],
    ids=["at_dual_ahead", "at_pgd_ahead", "equal"],
)
def test_dual_claim_follows_the_interval(
    spec: dict[str, Any],
    params: Params,
    at_pgd: float,
    at_dual: float,
    outcome: Outcome,
    ceiling: Outcome,
    per_image: bool,
) -> None:
    """D1: AT-Dual beats AT-PGD under the l2 dual attack when the interval of the difference lies
    above 0; D1.ceiling: AT-PGD stays below 10 % there."""
    dual = spec["inputs"]["dual"]
    accuracy = with_dual_inputs(params, spec, dual, at_pgd, at_dual)
    claims = judge(spec, params, fake_evals(spec, params, accuracy, per_image=per_image))
    for dataset in DATASETS:
        d1 = claims[f"{dataset}.D1"]
        assert d1.outcome == outcome and d1.dataset == dataset and d1.paper == PAPER
        assert d1.models == (f"{dataset}_at_dual", f"{dataset}_at_pgd")
        effect = d1.effect
        assert effect is not None and effect.unit == "points" and effect.n == SAMPLES
        assert effect.value == pytest.approx(100 * (at_dual - at_pgd))
        assert effect.low <= effect.value <= effect.high
        assert [q.value for q in d1.quantities] == pytest.approx([100 * at_dual, 100 * at_pgd])
        assert d1.quantities[0].source == str(eval_path(Path("evals"), f"{dataset}_at_dual", dual))
        if per_image:
            assert effect.method == str(Method.PAIRED_SCORE_RATE) and effect.paired
            assert effect.p_value is not None
            assert (effect.p_value < 0.05) is (outcome != Outcome.INCONCLUSIVE)
            assert d1.note == ""
        else:
            assert effect.method == str(Method.NEWCOMBE) and not effect.paired
            assert "unpaired" in d1.note
        if outcome == Outcome.INCONCLUSIVE:
            assert (
                effect.low <= 0 <= effect.high
                and "includes 0 points, so these images cannot tell" in d1.reason
            )
        else:
            side = "above" if outcome == Outcome.HOLDS else "below"
            assert d1.reason.endswith(f"lies {side} 0 points") and (effect.low > 0) is (
                outcome == Outcome.HOLDS
            )
        # The ceiling's own interval decides it; Holm's adjustment over the paper's family may
        # leave a decided ceiling inconclusive, and then says so.
        ceiling_claim = claims[f"{dataset}.D1.ceiling"]
        assert ceiling_claim.outcome_unadjusted == ceiling
        assert ceiling_claim.outcome == ceiling or "Holm's adjustment" in ceiling_claim.reason


@pytest.mark.parametrize(
    ("at_pgd", "at_dual", "outcome"), [(0.2, 0.4, Outcome.HOLDS), (0.4, 0.2, Outcome.FAILS)]
)
def test_strong_pgd_claim_follows_the_interval(
    spec: dict[str, Any], params: Params, at_pgd: float, at_dual: float, outcome: Outcome
) -> None:
    """D2, with the paper's "20 % more accuracy" beside ours: inside our interval when we find
    the same +20 points, outside when we find the reverse."""
    strong = spec["inputs"]["pgd_strong"]
    accuracy = with_dual_inputs(params, spec, strong, at_pgd, at_dual)
    claims = judge(spec, params, fake_evals(spec, params, accuracy))
    for dataset in DATASETS:
        d2 = claims[f"{dataset}.D2"]
        assert d2.outcome == outcome
        assert d2.effect is not None and d2.effect.paper == PAPER_STRONG_PGD_MARGIN
        assert d2.effect.value == pytest.approx(100 * (at_dual - at_pgd))
        assert d2.effect.paper_in_interval is (outcome == Outcome.HOLDS)
        assert f"`{strong}`" in d2.effect.label


def test_too_few_images_is_inconclusive(spec: dict[str, Any], params: Params) -> None:
    """A 40-point advantage on 20 images (unpaired) decides at its own level, but not after Holm's
    adjustment over the paper's family; fewer than params claims.min_samples images is a flag."""
    accuracy = with_dual_inputs(params, spec, spec["inputs"]["dual"], 0.05, 0.45)
    claims = judge(spec, params, fake_evals(spec, params, accuracy, samples=20))
    d1 = claims["ds_a.D1"]
    assert d1.outcome == Outcome.INCONCLUSIVE and d1.effect is not None and d1.effect.n == 20
    assert d1.outcome_unadjusted == Outcome.HOLDS and d1.small_sample
    assert d1.effect.value == pytest.approx(40.0)
    assert d1.effect.holm_p is not None and d1.effect.holm_p >= 0.05 > (d1.effect.rule_p or 1.0)
    assert "but not after Holm's adjustment" in d1.reason


# Per-image accuracies (the first images right, so sets nest) with known answers for D11-D13:
# case -> (claim, {role: (attack input or sweep, accuracy)}, outcome).
NEW_CLAIMS: dict[str, tuple[str, dict[str, dict[str, float]], Outcome]] = {
    # D11: AT-PGD minus Clean under the largest-eps_B l∞ dual attack, below +5 points.
    "d11_holds": ("D11", {"at_pgd": {"linf_b": 0.05}, "clean": {"linf_b": 0.05}}, Outcome.HOLDS),
    "d11_fails": ("D11", {"at_pgd": {"linf_b": 0.30}, "clean": {"linf_b": 0.05}}, Outcome.FAILS),
    "d11_cannot_tell": ("D11", {"at_pgd": {"linf_b": 0.10}, "clean": {"linf_b": 0.05}}, Outcome.INCONCLUSIVE),
    # D12: accuracy under l2 PGD minus under the l2 dual attack, for both robust models, above 0.
    "d12_holds": (
        "D12",
        {r: {"pgd": 0.40, "dual": 0.10} for r in ("at_pgd", "at_dual")},
        Outcome.HOLDS,
    ),
    "d12_fails": (
        "D12",
        {r: {"pgd": 0.10, "dual": 0.40} for r in ("at_pgd", "at_dual")},
        Outcome.FAILS,
    ),
    "d12_cannot_tell": (
        "D12",
        {r: {"pgd": 0.20, "dual": 0.20} for r in ("at_pgd", "at_dual")},
        Outcome.INCONCLUSIVE,
    ),
    # D13: AT-Dual minus Clean clean accuracy, above -5 points.
    "d13_holds": ("D13", {"clean": {"natural": 0.80}, "at_dual": {"natural": 0.79}}, Outcome.HOLDS),
    "d13_fails": ("D13", {"clean": {"natural": 0.80}, "at_dual": {"natural": 0.60}}, Outcome.FAILS),
    "d13_cannot_tell": (
        "D13",
        {"clean": {"natural": 0.80}, "at_dual": {"natural": 0.75}},
        Outcome.INCONCLUSIVE,
    ),
}


@pytest.mark.parametrize("case", list(NEW_CLAIMS))
def test_new_claims_follow_the_per_image_interval(spec: dict[str, Any], params: Params, case: str) -> None:
    """D11 (§5.4: AT-PGD "only marginally better" than Clean under large l∞ dual distortions),
    D12 (§1: the dual attack "significantly stronger than PGD", at the same foreground budget)
    and D13 (§1: AT-Dual's "relatively small" clean-accuracy cost against Clean), each decided on
    per-image outcomes with a known answer."""
    claim, accuracies, outcome = NEW_CLAIMS[case]
    linf_b = next(
        s
        for s in sweep_axes(spec["sweeps"], params)
        if s.norm == "linf" and s.dual and s.parameter == "eps_background"
    )
    attack_of = {"linf_b": linf_b.attacks[-1], **spec["inputs"]}
    overrides = {
        (f"{ds}_{role}", attack_of[key]): acc
        for ds in DATASETS
        for role, by_attack in accuracies.items()
        for key, acc in by_attack.items()
    }
    claims = judge(spec, params, fake_evals(spec, params, per_image=True, overrides=overrides))
    margin = ClaimSettings().comparable_margin
    for dataset in DATASETS:
        record = claims[f"{dataset}.{claim}"]
        assert record.outcome == outcome, (dataset, record.reason)
        assert not record.ours and record.family == PAPER
        leaves = [claims[p] for p in record.parts] if record.parts else [record]
        for leaf in leaves:
            effect = leaf.effect
            assert effect is not None and effect.paired and effect.method == str(Method.PAIRED_SCORE_RATE)
            assert effect.n == SAMPLES and leaf.outcome == outcome
            if outcome == Outcome.INCONCLUSIVE:
                assert "cannot tell" in leaf.reason and leaf.needs is not None
        if claim == "D11":
            effect = record.effect
            assert effect is not None and f"`{attack_of['linf_b']}`" in effect.label
            sides = {Outcome.HOLDS: effect.high < margin, Outcome.FAILS: effect.low > margin}
            assert sides.get(outcome, effect.low <= margin <= effect.high)
            assert (
                record.models == (f"{dataset}_at_pgd", f"{dataset}_clean")
                and record.section == "§5.4, Fig. 5"
            )
            assert "only marginally better than that of a clean model" in record.quote
        elif claim == "D12":
            assert record.parts == (f"{dataset}.D12.at_pgd", f"{dataset}.D12.at_dual")
            assert "significantly stronger than PGD" in record.quote and record.section.startswith("§1")
            part = claims[f"{dataset}.D12.at_pgd"]
            # The PGD attack at the dual attack's foreground budget (eps_F = eps): params' `pgd`.
            assert [q.label for q in part.quantities] == [
                f"AT-PGD {spec['inputs']['pgd']}",
                f"AT-PGD {spec['inputs']['dual']}",
            ]
            assert part.note == SUPERSET_NOTE and part.models == (f"{dataset}_at_pgd",)
        else:
            effect = record.effect
            assert effect is not None and effect.value == pytest.approx(
                100 * (accuracies["at_dual"]["natural"] - accuracies["clean"]["natural"])
            )
            sides = {Outcome.HOLDS: effect.low > -margin, Outcome.FAILS: effect.high < -margin}
            assert sides.get(outcome, effect.low <= -margin <= effect.high)
            assert "relatively small performance degradation" in record.quote


def test_new_claims_without_their_sweep_are_not_tested(spec: dict[str, Any], params: Params) -> None:
    """Without an l∞ dual sweep over eps_B, D11 has nothing to read: not tested, for compute."""
    sweeps = {n: s for n, s in spec["sweeps"].items() if n != "linf_dual_eps_background"}
    reduced = {**spec, "sweeps": sweeps}
    d11 = judge(reduced, params, fake_evals(reduced, params))["ds_a.D11"]
    assert d11.outcome == Outcome.NOT_TESTED and d11.needs is not None and d11.needs.constraint == "compute"


@pytest.mark.parametrize("how", ["chance", "one_class"])
def test_a_degenerate_model_makes_the_claims_resting_on_it_degenerate(
    spec: dict[str, Any], params: Params, how: str
) -> None:
    """ds_a's AT-PGD model at chance accuracy (or predicting one class for every clean image)
    is no evidence: every ds_a claim that compares with it is degenerate; the claims of
    ds_a's other models and of ds_b are decided as usual."""
    dual = spec["inputs"]["dual"]
    accuracy = with_dual_inputs(params, spec, dual, 0.05, 0.45)
    if how == "chance":
        overrides = {("ds_a_at_pgd", "natural"): 1 / NUM_CLASSES}
        raw = fake_evals(spec, params, accuracy, overrides=overrides)
        expected = "`ds_a_at_pgd`: its clean accuracy 10.0 %"
    else:
        raw = fake_evals(spec, params, accuracy, per_image=True)
        raw[("ds_a_at_pgd", "natural")]["per_image"]["prediction"] = [3] * SAMPLES
        expected = f"`ds_a_at_pgd`: predicts class 3 for {SAMPLES} of its {SAMPLES} clean test images"
    claims = judge(spec, params, raw)
    resting = ["D1", "D1.ceiling", "D2", "D5", "D6", "D7", "D3.at_pgd", "D4.at_pgd", "D3", "D4", "D8"]
    resting += ["D11", "D12.at_pgd", "D12"]
    for claim_id in resting:
        record = claims[f"ds_a.{claim_id}"]
        assert record.outcome == Outcome.DEGENERATE, claim_id
        assert expected in record.reason, claim_id
    assert any(c.startswith("ds_a.D8.at_pgd.") and r.outcome == Outcome.DEGENERATE for c, r in claims.items())
    for claim_id in ["ds_a.D12.at_dual", "ds_a.D13", "ds_b.D1", "ds_b.D1.ceiling", "ds_b.D2"]:
        assert claims[claim_id].outcome != Outcome.DEGENERATE, claim_id
    # FS claims of the other models do not rest on AT-PGD (from means alone they are degenerate
    # for another reason: the salience check cannot tell, see the D0 tests).
    for claim_id in ["ds_a.D3.at_dual", "ds_a.D4.clean"]:
        assert expected not in claims[claim_id].reason, claim_id
        assert (claims[claim_id].outcome != Outcome.DEGENERATE) is (how == "one_class"), claim_id
    assert claims["ds_b.D1"].outcome == Outcome.HOLDS


@pytest.mark.parametrize("per_image", [False, True], ids=["summary", "per_image"])
def test_salience_below_the_foreground_fraction_makes_fs_claims_degenerate(
    spec: dict[str, Any], params: Params, per_image: bool
) -> None:
    """D0 (the paper's own question, §5.2): clean images' FS at 0.2, below the foreground
    fraction 0.3, means the salience model ranks the background above the foreground, so no FS
    claim (D3, D4) can be read. Per image the check does not hold; from means alone it has no
    interval and cannot tell, which leaves the FS claims as unreadable."""
    accuracy = with_dual_inputs(params, spec, spec["inputs"]["dual"], 0.05, 0.45)
    claims = judge(spec, params, fake_evals(spec, params, accuracy, fs_natural=0.2, per_image=per_image))
    for dataset in DATASETS:
        d0 = claims[f"{dataset}.D0"]
        expected = Outcome.FAILS if per_image else Outcome.INCONCLUSIVE
        assert d0.outcome == expected and not d0.ours
        assert d0.effect is not None and d0.effect.value == pytest.approx(0.2 - FOREGROUND_FRACTION)
        why = "lies below 0" if per_image else "no interval"
        assert why in d0.reason
        assert [q.value for q in d0.quantities] == pytest.approx([0.2, FOREGROUND_FRACTION])
        fs_claims = [f"D{n}{part}" for n in (3, 4) for part in ("", *(f".{role}" for role in ROLES))]
        verdict = "fails" if per_image else "does not pass"
        for claim_id in fs_claims:
            record = claims[f"{dataset}.{claim_id}"]
            assert record.outcome == Outcome.DEGENERATE, claim_id
            assert f"the salience model {verdict} its sanity check ({dataset}.D0" in record.reason, claim_id
        # The accuracy claims do not rest on the salience model.
        assert claims[f"{dataset}.D1"].outcome == Outcome.HOLDS


def test_salience_check_without_a_foreground_fraction_is_not_tested(
    spec: dict[str, Any], params: Params
) -> None:
    claims = judge(spec, params, fake_evals(spec, params), fraction=None)
    d0 = claims["ds_a.D0"]
    assert d0.outcome == Outcome.NOT_TESTED and "datasets/ds_a.json has no foreground fraction" in d0.reason
    assert claims["ds_a.D4.at_dual"].outcome != Outcome.DEGENERATE


def test_foreground_score_claims_follow_the_per_image_scores(spec: dict[str, Any], params: Params) -> None:
    """D3 (FS grows with λ) and D4 (FS above 0.5) decided on per-image FS; summary-only
    evaluations give a mean FS without an interval, so they cannot decide them."""
    grows = judge(spec, params, fake_evals(spec, params, per_image=True))
    assert grows["ds_a.D0"].outcome == Outcome.HOLDS
    for claim_id in ["D3", "D4", *(f"D{n}.{role}" for n in (3, 4) for role in ROLES)]:
        assert grows[f"ds_a.{claim_id}"].outcome == Outcome.HOLDS, claim_id
    d3 = grows["ds_a.D3.at_dual"]
    # Every image's FS grows by the same 0.2 (up to rounding): BCa has no spread to resample,
    # so the Student t interval applies.
    assert d3.effect is not None and d3.effect.method == str(Method.PAIRED_T) and d3.effect.paired
    assert d3.effect.value == pytest.approx(0.002 * 100)  # FS(λ = 100) - FS(λ = 0)
    assert grows["ds_a.D3"].parts == tuple(f"ds_a.D3.{role}" for role in ROLES)

    dual = params.attack(spec["inputs"]["dual"])

    def at_dual_falls(role: str, attack: AttackSpec) -> float:
        # AT-Dual's FS falls with λ, and is below 0.5 under the main dual attack.
        if role != "at_dual":
            return default_fs(role, attack)
        return 0.4 if attack.name == dual.name else round(0.7 - 0.003 * attack.salience_weight, 4)

    falls = judge(spec, params, fake_evals(spec, params, fs=at_dual_falls, per_image=True))
    assert falls["ds_a.D3.at_dual"].outcome == Outcome.FAILS
    assert falls["ds_a.D4.at_dual"].outcome == Outcome.FAILS
    floor = falls["ds_a.D4.at_dual"].effect
    assert floor is not None and floor.value == pytest.approx(0.4 - 0.5)
    assert falls["ds_a.D3.clean"].outcome == Outcome.HOLDS
    assert falls["ds_a.D3"].outcome == Outcome.FAILS and "ds_a.D3.at_dual" in falls["ds_a.D3"].reason
    assert falls["ds_a.D4"].outcome == Outcome.FAILS

    # From means alone D0 has no interval and cannot tell, so no FS claim is read; each still
    # says that its own mean has no interval.
    summary = judge(spec, params, fake_evals(spec, params))
    assert summary["ds_a.D0"].outcome == Outcome.INCONCLUSIVE
    for role in ROLES:
        record = summary[f"ds_a.D3.{role}"]
        assert record.outcome == Outcome.DEGENERATE and record.note == NO_INTERVAL
        assert "does not pass its sanity check" in record.reason
        assert record.effect is not None and record.effect.method == str(Method.NONE)
    assert summary["ds_a.D3"].outcome == Outcome.DEGENERATE


@pytest.mark.parametrize("stale", ["summary_only", "other_images", "other_count"])
def test_fs_claims_on_mismatched_evaluations_are_a_data_error(
    spec: dict[str, Any], params: Params, stale: str
) -> None:
    """D3 compares one model's evaluations at the smallest and largest λ image by image; like
    every other comparison, two evaluations that cannot be paired are a DataError naming them."""

    def falls(role: str, attack: AttackSpec) -> float:
        return round(0.7 - 0.003 * attack.salience_weight, 4)

    _, sweep = salience_sweep(spec)
    smallest, largest = sweep["attacks"][0], sweep["attacks"][-1]
    assert params.attack(smallest).salience_weight == 0 and params.attack(largest).salience_weight == 100
    raw = fake_evals(spec, params, fs=falls, per_image=True)
    if stale == "summary_only":
        # Older evaluations of every ds_a model below λ = 100 (so D1 and D8 compare like with like).
        for model in spec["datasets"]["ds_a"].values():
            for attack in sweep["attacks"][:-1]:
                del raw[(model, attack)]["per_image"]
    elif stale == "other_images":
        raw[("ds_a_at_dual", largest)]["per_image"]["ids_sha256"] = "1" * 64
    else:
        record = raw[("ds_a_at_dual", largest)]
        record["samples"] = SAMPLES // 2
        record["per_image"] = image_record(SAMPLES // 2, record["accuracy"], record["foreground_score"], 0.6)
    # The first model judged names its stale file (every ds_a model has one when summary-only).
    model = "ds_a_[a-z_]+" if stale == "summary_only" else "ds_a_at_dual"
    with pytest.raises(DataError, match=f"{model}/{smallest if stale == 'summary_only' else largest}"):
        judge(spec, params, raw)


def test_claims_without_their_sweeps_are_not_tested(spec: dict[str, Any], params: Params) -> None:
    name, _ = salience_sweep(spec)
    kept = {k: v for k, v in spec["sweeps"].items() if k != name and not k.startswith("linf_")}
    reduced = {**spec, "sweeps": kept}
    claims = judge(reduced, params, fake_evals(reduced, params))
    for role in ROLES:
        record = claims[f"ds_a.D3.{role}"]
        assert (
            record.outcome == Outcome.NOT_TESTED and "no l2 dual sweep over salience_weight" in record.reason
        )
    assert "ds_a.D3" not in claims  # no composite without a tested part
    assert claims["ds_a.D8"].outcome == Outcome.NOT_TESTED and "no λ = 0" in claims["ds_a.D8"].reason
    assert claims["ds_a.D6"].outcome == Outcome.NOT_TESTED and "l∞ PGD sweep" in claims["ds_a.D6"].reason
    assert claims["ds_a.D7"].outcome == Outcome.NOT_TESTED and "l∞ dual sweep" in claims["ds_a.D7"].reason
    # The main table's inputs still decide D1 and D4.
    assert claims["ds_a.D1"].outcome != Outcome.NOT_TESTED
    assert claims["ds_a.D4"].outcome != Outcome.NOT_TESTED


def test_paper_equivalent_budgets() -> None:
    assert paper_equivalent("eps_foreground", "l2", 2.0 / 7) == "2.0"
    assert paper_equivalent("eps_background", "l2", 20.0 / 7) == "20.0"
    assert paper_equivalent("eps", "l2", 0.0) == "0.0"
    assert paper_equivalent("eps", "linf", 4 / 255) == "4/255"
    assert paper_equivalent("eps_background", "linf", 20 / 255) == "20/255"
    assert paper_equivalent("salience_weight", "l2", 10.0) == "10"


def test_sweep_mixing_norms_is_a_config_error(params: Params) -> None:
    with pytest.raises(ConfigError, match="sweeps.mixed: its attacks mix norms"):
        sweep_axes({"mixed": {"parameter": "eps", "attacks": ["pgd_l2_e1", "pgd_linf_4"]}}, params)


def test_figures_plot_data_and_claims(tmp_path: Path, spec: dict[str, Any], params: Params) -> None:
    accuracy = with_dual_inputs(params, spec, spec["inputs"]["dual"], 0.05, 0.45)
    evals = fake_evals(spec, params, accuracy, per_image=True)
    write_evals(tmp_path / "evals", evals)
    write_datasets(tmp_path / "datasets", DATASETS, FOREGROUND_FRACTION)
    out, figures, plots, claims_path = report_paths(tmp_path)
    table = write_dual_report(
        spec,
        params,
        tmp_path / "evals",
        out,
        figures,
        plots,
        "tiny",
        datasets_dir=tmp_path / "datasets",
        claims_path=claims_path,
        salience_path=write_salience(tmp_path, params),
    )

    assert sorted(p.name for p in figures.iterdir()) == ["ds_a.png", "ds_b.png"]
    for png in figures.iterdir():
        assert png.read_bytes().startswith(PNG_MAGIC)

    expected: set[str] = set()
    for dataset, roles in spec["datasets"].items():
        for name, sweep in spec["sweeps"].items():
            attacks = [params.attack(a) for a in sweep["attacks"]]
            attacks.sort(key=lambda a: getattr(a, sweep["parameter"]))
            x = [getattr(a, sweep["parameter"]) for a in attacks]
            curve = pd.read_csv(plots / f"{dataset}__{name}.csv")
            expected.add(f"{dataset}__{name}.csv")
            assert list(curve.columns) == PLOT_COLUMNS
            assert curve["x"].tolist() == pytest.approx(x)
            for role in ROLES:
                acc = [100 * evals[(roles[role], a.name)]["accuracy"] for a in attacks]
                assert curve[role].tolist() == pytest.approx(acc)
            if all(a.kind == "dual" for a in attacks):
                fs = pd.read_csv(plots / f"{dataset}__{name}__foreground_score.csv")
                expected.add(f"{dataset}__{name}__foreground_score.csv")
                assert list(fs.columns) == PLOT_COLUMNS
                assert fs["x"].tolist() == pytest.approx(x)
                for role in ROLES:
                    scores = [evals[(roles[role], a.name)]["foreground_score"] for a in attacks]
                    assert fs[role].tolist() == pytest.approx(scores, abs=1e-3)
    assert {p.name for p in plots.iterdir()} == expected
    assert any(name.endswith("__foreground_score.csv") for name in expected)

    frame = pd.read_csv(out.with_suffix(".csv"))
    assert list(frame.columns) == MAIN_COLUMNS and len(frame) == len(table.frame)

    # The claim records, read back as the full report reads them.
    claims = read_claims(claims_path)
    assert (claims.paper, claims.title, claims.scale) == (PAPER, TITLE, "tiny")
    by_id = {c.claim_id: c for c in claims.claims}
    assert by_id["ds_a.D1"].outcome == by_id["ds_b.D1"].outcome == Outcome.HOLDS
    assert by_id["ds_a.D0"].outcome == Outcome.HOLDS
    assert by_id["ds_a.D1"].quantities[0].source == str(
        eval_path(tmp_path / "evals", "ds_a_at_dual", spec["inputs"]["dual"])
    )
    assert by_id["ds_a.D1"].effect is not None and by_id["ds_a.D1"].effect.paired
    # D9 (JSMA) and D10 (STL-10, ImageNet-10) need what Backdrop lacks: not tested, on no dataset of ours.
    untestable = {c.claim_id: c for c in claims.claims if c.claim_id in ("D9", "D10")}
    assert (
        all(c.outcome == Outcome.NOT_TESTED and c.reason for c in untestable.values())
        and len(untestable) == 2
    )
    assert {c.dataset for c in claims.claims if c.claim_id not in untestable} == set(DATASETS)

    md = out.with_suffix(".md").read_text(encoding="utf-8")
    assert md.startswith("# Dual-perturbation attacks") and "Scale: **tiny**" in md
    # The claims section names the records the stage wrote (its claims_path), as given.
    assert f"(`{claims_path.as_posix()}` holds the records)" in md
    used = params.attack(spec["inputs"]["dual"]).salience
    assert f"all {len(table.salience_of)} dual attacks of this report use {SALIENCE_TITLES[used]}" in md
    assert "DeepGaze II" in md and "metrics/salience_quality.json" in md
    assert f"The record prefers `{used}`" in md and "disagree" not in md
    assert all(f"### `{name}`" in md for name in spec["sweeps"])
    assert "paper eps_F" in md and "| 4/255 " in md and "paper-equivalent {2.0, 20.0}" in md
    assert f"- {len(list(plots.iterdir()))} CSV files for `dvc plots`" in md
    assert "Each outcome comes from a 95 % interval" in md
    # Every record is one bullet with its outcome; the paper's wording is quoted above them.
    for dataset in DATASETS:
        records = [c for c in claims.claims if c.dataset == dataset]
        assert md.count(f"\n- **{dataset}.") == len(records)
    for record in claims.claims:
        assert f"- **{record.claim_id}** ({record.dataset})" in md
        assert f"**{record.claim_id}** ({record.dataset}){' *(our extension' if record.ours else ':'}" in md
    assert "**ds_a.D1** (ds_a): AT-Dual is more robust than AT-PGD under the l2 dual attack" in md
    assert "— **holds**. AT-Dual minus AT-PGD accuracy under `dual_l2_f2_b20`: +40.0 points [" in md
    assert "> §5.3, Fig. 4 (left): “when the perturbation to the foreground" in md
    assert "ds_a.png" in md and "nan" not in md
    assert not list(tmp_path.rglob(".*.tmp"))  # atomic writes leave no temp files


def test_cli_end_to_end(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    params = Params(raw, "tiny")
    spec = raw["tables"]["dual_perturbation"]
    write_evals(tmp_path / "evals", fake_evals(spec, params))
    write_datasets(tmp_path / "datasets", list(spec["datasets"]), FOREGROUND_FRACTION)
    out, figures, plots, claims = report_paths(tmp_path)
    argv = ["--params", str(params_file), "--scale", "tiny", "--evals", str(tmp_path / "evals")]
    argv += ["--datasets", str(tmp_path / "datasets"), "--claims", str(claims)]
    argv += ["--salience", str(write_salience(tmp_path, params, list(spec["datasets"])))]
    argv += ["--out", str(out), "--figures", str(figures), "--plots", str(plots)]
    main(parser().parse_args(argv))
    frame = pd.read_csv(out.with_suffix(".csv"))
    assert list(frame.columns) == MAIN_COLUMNS and len(frame) == len(ROLES) * len(spec["datasets"])
    assert "Scale: **tiny**" in out.with_suffix(".md").read_text(encoding="utf-8")
    assert sorted(p.stem for p in figures.glob("*.png")) == sorted(spec["datasets"])
    assert len(list(plots.glob("*.csv"))) >= len(spec["datasets"]) * len(spec["sweeps"])
    records = read_claims(claims).claims
    assert {r.dataset for r in records if r.claim_id not in ("D9", "D10")} == set(spec["datasets"])
    assert all(f"{ds}.D1" in {r.claim_id for r in records} for ds in spec["datasets"])


def test_cli_requires_datasets_claims_and_salience() -> None:
    base = ["--evals", "e", "--out", "o", "--figures", "f", "--plots", "p", "--salience", "s.json"]
    with pytest.raises(SystemExit):
        parser().parse_args([*base, "--claims", "c.json"])
    with pytest.raises(SystemExit):
        parser().parse_args([*base, "--datasets", "d"])
    with pytest.raises(SystemExit):
        parser().parse_args([*base[:-2], "--datasets", "d", "--claims", "c.json"])
    args = parser().parse_args([*base, "--datasets", "d", "--claims", "c.json"])
    assert (args.datasets, args.claims, args.salience) == ("d", "c.json", "s.json")


# ---------------------------------------------------------------- the salience models' agreement


def test_salience_agreement_is_the_record_with_the_used_model_marked(tmp_path: Path, params: Params) -> None:
    models = sorted(SALIENCE_MODELS)
    used = models[0]
    path = write_salience(tmp_path, params, preferred=used)
    agreement = load_salience_agreement(path, list(DATASETS), [used])
    frame = agreement.frame
    assert list(frame.columns) == SALIENCE_COLUMNS
    assert list(frame["dataset"]) == [ds for ds in DATASETS for _ in models]
    # The used model first in each dataset, then the others.
    assert list(frame["salience model"])[: len(models)] == [used, *models[1:]]
    assert list(frame["used"]) == ["yes" if m == used else "" for m in frame["salience model"]]
    for row in frame.to_dict("records"):
        i = models.index(row["salience model"])
        assert row["mean FS"] == pytest.approx(FOREGROUND_FRACTION + 0.1 * (i + 1))
        assert row["mean foreground fraction"] == pytest.approx(FOREGROUND_FRACTION)
        assert row["FS - fraction"] == pytest.approx(0.1 * (i + 1))
        assert row["mean AUC"] == pytest.approx(0.6 + 0.1 * i)
        assert row["images"] == row["AUC images"] == SAMPLES
        assert row["images FS > fraction"] == f"{SAMPLES}/{SAMPLES}"
    assert (agreement.preferred, agreement.source) == (used, str(path))


def test_a_missing_or_incomplete_salience_record_names_the_file(tmp_path: Path, params: Params) -> None:
    path = tmp_path / "salience_quality.json"
    with pytest.raises(DataError, match=rf"{path}: .*missing; run the salience_quality stage"):
        load_salience_agreement(path, list(DATASETS), ["frequency_tuned"])
    path.write_text(json.dumps(salience_record(["ds_a"])))
    with pytest.raises(DataError, match=rf"{path}: no 'datasets.ds_b' .* re-run the salience_quality stage"):
        load_salience_agreement(path, list(DATASETS), [])
    path.write_text(json.dumps(salience_record(DATASETS, models=["spectral_residual"])))
    with pytest.raises(DataError, match=r"no record of salience model\(s\) \['frequency_tuned'\]"):
        load_salience_agreement(path, list(DATASETS), ["frequency_tuned"])
    path.write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_salience_agreement(path, list(DATASETS), [])


def test_a_record_that_prefers_another_model_is_flagged(
    tmp_path: Path, spec: dict[str, Any], params: Params
) -> None:
    used = params.attack(spec["inputs"]["dual"]).salience
    other = next(m for m in SALIENCE_MODELS if m != used)
    write_evals(tmp_path / "evals", fake_evals(spec, params))
    write_datasets(tmp_path / "datasets", DATASETS, FOREGROUND_FRACTION)
    out, figures, plots, claims = report_paths(tmp_path)
    write_dual_report(
        spec,
        params,
        tmp_path / "evals",
        out,
        figures,
        plots,
        "tiny",
        datasets_dir=tmp_path / "datasets",
        claims_path=claims,
        salience_path=write_salience(tmp_path, params, preferred=other),
    )
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    assert f"The record prefers `{other}`" in md and "the dual evaluations ran with another model" in md


def test_the_table_names_the_salience_model_the_evaluations_ran_with(
    spec: dict[str, Any], params: Params
) -> None:
    """What ran, not what params.yaml says now: evaluations made before they recorded their model
    used spectral residual, and a report mixing the two says so."""
    evals = fake_evals(spec, params)
    dual = spec["inputs"]["dual"]
    for key, metrics in evals.items():
        if key[1] == dual:
            metrics.pop("salience_model", None)
    assert build_dual_table(evals, spec, params).salience_of[dual] == LEGACY_SALIENCE
    first = next(key for key in evals if key[1] == dual)
    evals[first]["salience_model"] = "frequency_tuned"
    table = build_dual_table(evals, spec, params)
    assert table.salience_of[dual] == "frequency_tuned + spectral_residual"
    assert set(table.salience) >= {"frequency_tuned", "spectral_residual"}
