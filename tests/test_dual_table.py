"""The dual-perturbation report (ICLR 2021 submission, §5.2-5.4): the main table holds the
evaluations' accuracies in %, a missing named evaluation is a clear error, the verdicts on the
paper's claims follow our numbers, and every dataset gets a figure and every (dataset, sweep) a
plot CSV whose x values come from the attacks' params."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from stages.config import AttackSpec, Params
from stages.dual_table import main, parser
from stages.report.dual_table import (
    FS_COLUMN,
    INPUT_COLUMNS,
    MAIN_COLUMNS,
    ROLES,
    build_dual_table,
    paper_equivalent,
    required_pairs,
    sweep_axes,
    write_dual_report,
)
from stages.report.evals import eval_path
from stages.utils.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SAMPLES = 16
FS_NATURAL = 0.6
PLOT_COLUMNS = ["x", "clean", "at_pgd", "at_dual"]
ROLE_INDEX = {role: i for i, role in enumerate(ROLES)}

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
    datasets = {ds: {role: f"{ds}_{role}" for role in ROLES} for ds in ("ds_a", "ds_b")}
    return {"datasets": datasets, "inputs": dict(real["inputs"]), "sweeps": dict(real["sweeps"])}


def default_accuracy(params: Params) -> Accuracy:
    """Distinct per model and attack, so a value in the wrong cell shows."""
    order = {name: i for i, name in enumerate(sorted(params.raw["attacks"]))}

    def accuracy(role: str, attack: AttackSpec) -> float:
        return round(0.05 + 0.1 * ROLE_INDEX[role] + 0.005 * order[attack.name], 4)

    return accuracy


def default_fs(role: str, attack: AttackSpec) -> float:
    """FS above the clean images' and growing with λ, as the paper reports (§5.2)."""
    return round(0.55 + 0.05 * ROLE_INDEX[role] + 0.002 * attack.salience_weight, 4)


def fake_evals(
    spec: dict[str, Any],
    params: Params,
    accuracy: Accuracy | None = None,
    fs: Score = default_fs,
) -> dict[tuple[str, str], dict[str, Any]]:
    accuracy = accuracy or default_accuracy(params)
    role_of = {model: (ds, role) for ds, roles in spec["datasets"].items() for role, model in roles.items()}
    evals = {}
    for model, attack in required_pairs(spec):
        dataset, role = role_of[model]
        attack_spec = params.attack(attack)
        metrics: dict[str, Any] = {
            "model": model,
            "dataset": dataset,
            "scale": "tiny",
            "attack": attack,
            "samples": SAMPLES,
            "accuracy": accuracy(role, attack_spec),
            "loss": 1.0,
            "model_input": "natural",
            "effective_region": "full",
            "restarts": 1,
            "max_linf_perturbation": 0.1,
            "mean_l2_perturbation": 0.5,
        }
        if attack_spec.kind == "dual":
            metrics.update(
                foreground_score=fs(role, attack_spec),
                foreground_score_natural=FS_NATURAL,
                foreground_source="segmentation",
            )
        evals[(model, attack)] = metrics
    return evals


def write_evals(evals_dir: Path, evals: dict[tuple[str, str], dict[str, Any]]) -> None:
    for (model, attack), metrics in evals.items():
        path = eval_path(evals_dir, model, attack)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(metrics))


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
    assert table.salience == ["spectral_residual"]


def test_missing_input_evaluation_names_the_file(
    tmp_path: Path, spec: dict[str, Any], params: Params
) -> None:
    evals = fake_evals(spec, params)
    del evals[("ds_b_at_pgd", spec["inputs"]["dual"])]
    write_evals(tmp_path / "evals", evals)
    out, figures, plots = tmp_path / "tables" / "dual", tmp_path / "figures", tmp_path / "plots"
    with pytest.raises(DataError) as exc:
        write_dual_report(spec, params, tmp_path / "evals", out, figures, plots, "tiny")
    missing = eval_path(tmp_path / "evals", "ds_b_at_pgd", spec["inputs"]["dual"])
    assert str(missing) in str(exc.value) and "run the evaluate stage" in str(exc.value)
    assert not out.with_suffix(".csv").exists() and not figures.exists() and not plots.exists()


def test_dual_eval_without_foreground_score_is_a_data_error(spec: dict[str, Any], params: Params) -> None:
    evals = fake_evals(spec, params)
    del evals[("ds_a_clean", spec["inputs"]["dual"])]["foreground_score"]
    with pytest.raises(DataError, match=f"ds_a_clean/{spec['inputs']['dual']}.json: .*foreground_score"):
        build_dual_table(evals, spec, params)


@pytest.mark.parametrize(
    ("at_pgd", "at_dual", "holds", "below"),
    [
        (0.05, 0.45, True, "is below 10%"),
        (0.45, 0.05, False, "is not below 10%"),
        (0.3, 0.3, False, "not below"),
    ],
)
def test_dual_claim_follows_the_numbers(
    spec: dict[str, Any], params: Params, at_pgd: float, at_dual: float, holds: bool, below: str
) -> None:
    accuracy = with_dual_inputs(params, spec, spec["inputs"]["dual"], at_pgd, at_dual)
    table = build_dual_table(fake_evals(spec, params, accuracy), spec, params)
    claims = [v for v in table.verdicts if v.claim == 1]
    assert [v.dataset for v in claims] == ["ds_a", "ds_b"]
    for verdict in claims:
        assert verdict.holds is holds
        assert (" holds:" in verdict.text) is holds and ("does not hold" in verdict.text) is not holds
        assert f"AT-Dual {100 * at_dual:.2f}% vs AT-PGD {100 * at_pgd:.2f}%" in verdict.text
        assert f"margin {100 * (at_dual - at_pgd):+.2f} points" in verdict.text
        assert below in verdict.text


@pytest.mark.parametrize(("at_pgd", "at_dual", "holds"), [(0.2, 0.4, True), (0.4, 0.2, False)])
def test_strong_pgd_claim_follows_the_numbers(
    spec: dict[str, Any], params: Params, at_pgd: float, at_dual: float, holds: bool
) -> None:
    accuracy = with_dual_inputs(params, spec, spec["inputs"]["pgd_strong"], at_pgd, at_dual)
    table = build_dual_table(fake_evals(spec, params, accuracy), spec, params)
    claims = [v for v in table.verdicts if v.claim == 2]
    assert len(claims) == 2 and all(v.holds is holds for v in claims)
    strong = params.attack(spec["inputs"]["pgd_strong"])
    assert f"paper-equivalent eps {paper_equivalent('eps', 'l2', strong.eps)}" in claims[0].text
    assert f"AT-Dual {100 * at_dual:.2f}% vs AT-PGD {100 * at_pgd:.2f}%" in claims[0].text


def test_foreground_score_claim_follows_the_numbers(spec: dict[str, Any], params: Params) -> None:
    grows = build_dual_table(fake_evals(spec, params), spec, params)
    claims = [v for v in grows.verdicts if v.claim == 3]
    assert len(claims) == 2 and all(v.holds is True for v in claims)
    assert "FS above 0.5 at every point: yes" in claims[0].text
    assert f"FS of the clean images {FS_NATURAL:.3f}" in claims[0].text

    def falls_for_at_dual(role: str, attack: AttackSpec) -> float:
        # AT-Dual's FS falls with λ, and below 0.5 at the largest λ.
        return (
            round(0.7 - 0.003 * attack.salience_weight, 4) if role == "at_dual" else default_fs(role, attack)
        )

    falls = build_dual_table(fake_evals(spec, params, fs=falls_for_at_dual), spec, params)
    claims = [v for v in falls.verdicts if v.claim == 3]
    assert all(v.holds is False and "does not hold" in v.text for v in claims)
    assert "FS above 0.5 at every point: no" in claims[0].text


def test_foreground_score_claim_without_a_salience_sweep(spec: dict[str, Any], params: Params) -> None:
    name, _ = salience_sweep(spec)
    no_lambda = {**spec, "sweeps": {k: v for k, v in spec["sweeps"].items() if k != name}}
    table = build_dual_table(fake_evals(no_lambda, params), no_lambda, params)
    claims = [v for v in table.verdicts if v.claim == 3]
    assert all(v.holds is None and "not checked" in v.text for v in claims)


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


def test_figures_and_plot_data(tmp_path: Path, spec: dict[str, Any], params: Params) -> None:
    evals = fake_evals(spec, params)
    write_evals(tmp_path / "evals", evals)
    out, figures, plots = tmp_path / "tables" / "dual", tmp_path / "figures", tmp_path / "plots"
    table = write_dual_report(spec, params, tmp_path / "evals", out, figures, plots, "tiny")

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
                accuracy = [100 * evals[(roles[role], a.name)]["accuracy"] for a in attacks]
                assert curve[role].tolist() == pytest.approx(accuracy)
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
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    assert md.startswith("# Dual-perturbation attacks") and "Scale: **tiny**" in md
    assert "spectral residual (Hou & Zhang 2007)" in md and "DeepGaze II" in md
    assert all(f"### `{name}`" in md for name in spec["sweeps"])
    assert "paper eps_F" in md and "| 4/255 " in md and "paper-equivalent {2.0, 20.0}" in md
    assert f"- {len(list(plots.iterdir()))} CSV files for `dvc plots`" in md
    assert md.count("\n- ds_a: claim") == 3 and md.count("\n- ds_b: claim") == 3
    assert "ds_a.png" in md and "nan" not in md
    assert not list(tmp_path.rglob(".*.tmp"))  # atomic writes leave no temp files


def test_cli_end_to_end(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(raw))
    params = Params(raw, "tiny")
    spec = raw["tables"]["dual_perturbation"]
    write_evals(tmp_path / "evals", fake_evals(spec, params))
    out, figures, plots = tmp_path / "tables" / "dual", tmp_path / "figures", tmp_path / "plots"
    argv = ["--params", str(params_file), "--scale", "tiny", "--evals", str(tmp_path / "evals")]
    argv += ["--out", str(out), "--figures", str(figures), "--plots", str(plots)]
    main(parser().parse_args(argv))
    frame = pd.read_csv(out.with_suffix(".csv"))
    assert list(frame.columns) == MAIN_COLUMNS and len(frame) == len(ROLES) * len(spec["datasets"])
    assert "Scale: **tiny**" in out.with_suffix(".md").read_text(encoding="utf-8")
    assert sorted(p.stem for p in figures.glob("*.png")) == sorted(spec["datasets"])
    assert len(list(plots.glob("*.csv"))) >= len(spec["datasets"]) * len(spec["sweeps"])
