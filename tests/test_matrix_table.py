"""The robustness-matrix report, built from the repo's params.yaml at the tiny scale and fake
evaluation JSONs: rows, columns, values, n/a reasons, missing cells, AutoAttack gaps, csv,
metrics and the stage CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from stages.config import Params, load_yaml
from stages.matrix_table import main, parser
from stages.report.markdown import MISSING
from stages.report.matrix_table import MatrixReport, build_matrix_report
from stages.utils.errors import DataError

PARAMS_PATH = Path(__file__).resolve().parent.parent / "params.yaml"
DATASET = "coco_ic"

# (model, attack) -> (accuracy, samples) on coco_ic; every other fitting cell stays missing.
FAKE = {
    ("coco_ic_natural", "natural"): (0.5, 128),
    ("coco_ic_natural", "am_pgd"): (0.2, 128),
    ("coco_ic_natural", "aa_linf_8"): (0.15, 128),  # gap -5.0: flagged
    ("coco_ic_natural", "am_pgd_box"): (1 / 3, 128),
    ("coco_ic_natural", "matrix_de_background_1px"): (0.75, 4),
    ("coco_ic_adversarial", "natural"): (0.45, 128),
    ("coco_ic_adversarial", "am_pgd"): (0.40, 128),
    ("coco_ic_adversarial", "aa_linf_8"): (0.39, 128),  # gap -1.0: within 2 points
    ("coco_ic_fg_natural", "am_pgd"): (0.25, 128),
    ("coco_ic_clean", "aa_linf_8"): (0.1, 128),  # its am_pgd is missing: no gap to show
    ("coco_ic_clean", "dual_linf_f4_b20"): (0.05, 128),  # a group pair: read from evals/
}


def write_eval(
    params: Params, evals: Path, matrix: Path, model: str, attack: str, accuracy: float, samples: int
) -> Path:
    """Where the Snakemake rules put it: a group's pair in evals/, a matrix-only cell in matrix/."""
    folder = evals if (model, attack) in set(params.group_pairs()) else matrix
    path = folder / model / f"{attack}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = params.model(model)
    record = {
        "accuracy": accuracy,
        "samples": samples,
        "model_input": spec.input,
        "effective_region": params.attack(attack).region,
        "restarts": 1,
        "dataset": params.evaluation_dataset(model).name,
        "scale": "tiny",
    }
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


def fill(params: Params, root: Path, fake: dict[tuple[str, str], tuple[float, int]]) -> tuple[Path, Path]:
    evals, matrix = root / "evals", root / "matrix"
    evals.mkdir(parents=True, exist_ok=True)
    matrix.mkdir(parents=True, exist_ok=True)
    for (model, attack), (accuracy, samples) in fake.items():
        write_eval(params, evals, matrix, model, attack, accuracy, samples)
    return evals, matrix


def section(markdown: str, heading: str) -> str:
    start = markdown.index(f"## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else len(markdown)]


def table(markdown: str, dataset: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    """The dataset's matrix as headers and {model: {header: shown text}}."""
    lines = [line for line in section(markdown, dataset).splitlines() if line.startswith("|")]

    def cells(line: str) -> list[str]:
        return [part.strip() for part in line.strip().strip("|").split("|")]

    headers = cells(lines[0])
    rows = {}
    for line in lines[2:]:
        row = dict(zip(headers, cells(line), strict=True))
        rows[row["model"]] = row
    return headers, rows


@pytest.fixture(scope="module")
def params() -> Params:
    return Params(load_yaml(PARAMS_PATH), scale="tiny")


@pytest.fixture(scope="module")
def dirs(params: Params, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return fill(params, tmp_path_factory.mktemp("results"), FAKE)


@pytest.fixture(scope="module")
def report(params: Params, dirs: tuple[Path, Path]) -> MatrixReport:
    return build_matrix_report(params, *dirs)


def test_every_model_is_a_row_and_every_attack_a_column(params: Params, report: MatrixReport) -> None:
    for matrix in params.robustness_matrices():
        headers, rows = table(report.markdown, matrix.dataset)
        assert list(rows) == list(matrix.models)
        assert headers[:4] == ["model", "trained", "input", "clean %"]
        # The natural attack is the clean % column; every other attack has its own.
        expected = []
        for attack in matrix.attacks:
            if attack != "natural":
                expected.append(attack)
            if attack in matrix.references:
                expected.append(f"{attack} AutoAttack")
        assert headers[4:] == expected


def test_values_equal_the_evaluations(report: MatrixReport) -> None:
    _, rows = table(report.markdown, DATASET)
    natural = rows["coco_ic_natural"]
    assert natural["clean %"] == "50.0"  # fixed one decimal: 0.5 -> 50.0, not 50
    assert natural["am_pgd"] == "20.0"
    assert natural["am_pgd_box"] == "33.3"
    assert natural["matrix_de_background_1px"] == "75.0"
    assert rows["coco_ic_adversarial"]["clean %"] == "45.0"
    assert rows["coco_ic_clean"]["dual_linf_f4_b20"] == "5.0"  # found in evals/, not matrix/
    assert rows["coco_ic_adversarial"]["trained"] == "pgd linf 8/255 (am_train_pgd)"
    assert rows["coco_ic_at_dual"]["trained"] == "dual (dual_train_dual_l2)"
    assert rows["coco_ic_natural"]["trained"] == "natural"
    assert rows["coco_ic_fg_natural"]["input"] == "x∘F"
    assert rows["coco_ic_natural"]["input"] == "natural"


def test_a_cell_that_does_not_fit_shows_na_and_its_reason(params: Params, report: MatrixReport) -> None:
    _, rows = table(report.markdown, DATASET)
    matrix = next(m for m in params.robustness_matrices() if m.dataset == DATASET)
    cell = matrix.cell("coco_ic_fg_natural", "dual_linf_f4_b20")
    assert not cell.fits
    assert rows["coco_ic_fg_natural"]["dual_linf_f4_b20"] == "n/a"
    assert rows["coco_ic_fg_natural"]["am_pgd AutoAttack"] == "n/a"
    text = section(report.markdown, DATASET)
    not_applicable = text[text.index("Not applicable:") : text.index("Missing:")]
    # One line for the reason, covering both x∘F models (their names made a placeholder).
    [line] = [line for line in not_applicable.splitlines() if "a dual attack perturbs the background" in line]
    assert "`coco_ic_fg_natural`, `coco_ic_fg_adversarial` × `dual_linf_f4_b20`" in line
    assert "model MODEL never sees" in line and "'coco_ic_fg_natural'" not in line
    assert "{" not in not_applicable  # no template placeholder left unfilled
    assert "MODEL and ATTACK stand for each model and attack listed after the dash" in not_applicable


def command(folder: Path, model: str, attack: str, scale: str = "tiny") -> str:
    """The command a missing cell lists: its file under the folder the report read it from, made
    at the report's scale."""
    return f"`uv run snakemake {(folder / model / f'{attack}.json').as_posix()} --config scale={scale}`"


def test_a_missing_cell_shows_a_dash_and_its_command(report: MatrixReport, dirs: tuple[Path, Path]) -> None:
    evals, matrix = dirs
    _, rows = table(report.markdown, DATASET)
    assert rows["coco_ic_adversarial"]["am_pgd_box"] == MISSING
    assert rows["coco_ic_at_pgd"]["clean %"] == MISSING
    missing = section(report.markdown, DATASET).split("Missing:")[1]
    # A matrix-only cell is made under the matrix folder, a group's pair under the evals folder.
    assert (
        f"`coco_ic_adversarial` × `am_pgd_box`: {command(matrix, 'coco_ic_adversarial', 'am_pgd_box')}"
        in missing
    )
    assert f"`coco_ic_at_pgd` × `natural`: {command(evals, 'coco_ic_at_pgd', 'natural')}" in missing
    assert "results/evals/" not in report.markdown and "results/matrix/" not in report.markdown
    # Evaluated and non-fitting cells are not missing.
    assert "`coco_ic_natural` × `am_pgd`:" not in missing
    assert "`coco_ic_fg_natural` × `dual_linf_f4_b20`" not in missing


def test_the_samples_line_lists_each_columns_counts(report: MatrixReport) -> None:
    [line] = [line for line in section(report.markdown, DATASET).splitlines() if line.startswith("Samples")]
    assert "`am_pgd`: 128;" in line
    assert line.endswith("`matrix_de_background_1px`: 4.")  # DE evaluates fewer images
    assert "`aa_linf_8` (am_pgd AutoAttack): 128;" in line


def test_sections_without_problems_say_none(params: Params, report: MatrixReport, tmp_path: Path) -> None:
    assert "Not applicable: none." in section(report.markdown, "mnist")  # every mnist pair fits
    segment6 = next(m for m in params.robustness_matrices() if m.dataset == "segment6")
    fake = {(c.model, c.attack): (0.5, 32) for c in segment6.cells if c.fits}
    text = section(build_matrix_report(params, *fill(params, tmp_path, fake)).markdown, "segment6")
    assert "Missing: none." in text
    assert MISSING not in table(text, "segment6")[1]["segment6_at_dual"].values()


def test_an_evaluation_made_at_another_scale_is_flagged(params: Params, tmp_path: Path) -> None:
    evals, matrix = fill(params, tmp_path, {("segment6_clean", "natural"): (0.9, 32)})
    path = evals / "segment6_clean" / "natural.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "scale": "reduced"}), encoding="utf-8")
    text = section(build_matrix_report(params, evals, matrix).markdown, "segment6")
    assert (
        "Made at another scale than **tiny** (stale; re-run them): `segment6_clean` × `natural` (reduced)"
        in text
    )


def test_reference_column_shows_accuracy_and_signed_gap(report: MatrixReport) -> None:
    _, rows = table(report.markdown, DATASET)
    assert rows["coco_ic_natural"]["am_pgd AutoAttack"] == "15.0 (\u22125.0)"
    assert rows["coco_ic_adversarial"]["am_pgd AutoAttack"] == "39.0 (\u22121.0)"
    assert rows["coco_ic_clean"]["am_pgd AutoAttack"] == "10.0"  # no PGD number: no gap
    assert rows["coco_ic_clean"]["am_pgd"] == MISSING


def test_gap_section_flags_only_gaps_over_two_points(report: MatrixReport) -> None:
    gaps = section(report.markdown, "How far is PGD from AutoAttack")
    assert "| coco_ic   | coco_ic_natural " in gaps and "| coco_ic_adversarial " in gaps
    verdict = next(line for line in gaps.splitlines() if line.startswith("The largest gap"))
    assert verdict.startswith("The largest gap is \u22125.0 points (`coco_ic_natural` × `am_pgd` on coco_ic)")
    flagged = verdict.split("more than 2 points in")[1]
    assert "1 of 2 cells" in flagged and "`coco_ic_natural` × `am_pgd`" in flagged
    assert "coco_ic_adversarial" not in flagged
    assert "upper bounds" in flagged
    assert {(g.pgd.model, round(g.points, 6)) for g in report.gaps} == {
        ("coco_ic_natural", -5.0),
        ("coco_ic_adversarial", -1.0),
    }


def test_csv_has_one_row_per_cell_with_role_and_column(params: Params, report: MatrixReport) -> None:
    frame = report.frame
    matrices = params.robustness_matrices()
    assert len(frame) == sum(len(m.cells) for m in matrices)
    for matrix in matrices:
        rows = frame[frame["dataset"] == matrix.dataset]
        assert [(r.model, r.attack) for r in rows.itertuples()] == [(c.model, c.attack) for c in matrix.cells]
        references = {ref: col for col, ref in matrix.references.items()}
        for r in rows.itertuples():
            if r.role == "reference":
                assert references[r.attack] == r.column
            else:
                assert r.role == "attack" and r.attack == r.column
            assert r.fits == matrix.cell(r.model, r.attack).fits
    row = frame.set_index(["dataset", "model", "attack"]).loc[(DATASET, "coco_ic_natural", "aa_linf_8")]
    assert (row["role"], row["column"], row["accuracy"], row["samples"], row["evaluated"]) == (
        "reference",
        "am_pgd",
        0.15,
        128,
        True,
    )
    na = frame.set_index(["dataset", "model", "attack"]).loc[(DATASET, "coco_ic_fg_natural", "aa_linf_8")]
    assert not na["fits"] and "x∘F" in na["reason"] and not na["evaluated"] and pd.isna(na["accuracy"])
    assert frame["evaluated"].sum() == len(FAKE)


def test_metrics_hold_the_evaluated_values(report: MatrixReport) -> None:
    metrics = report.metrics
    assert metrics[DATASET]["coco_ic_natural"] == {
        "natural": 0.5,
        "am_pgd": 0.2,
        "aa_linf_8": 0.15,
        "am_pgd_box": 0.3333,
        "matrix_de_background_1px": 0.75,
    }
    assert "coco_ic_at_pgd" not in metrics[DATASET]  # nothing evaluated
    assert "mnist" not in metrics
    assert metrics["pgd_vs_autoattack"] == {"max_gap_points": -5.0, "cells_over_2_points": 1}


def test_a_reference_above_pgd_is_not_an_overestimate(params: Params, tmp_path: Path) -> None:
    fake = {("segment6_at_pgd", "am_pgd"): (0.30, 32), ("segment6_at_pgd", "aa_linf_8"): (0.36, 32)}
    result = build_matrix_report(params, *fill(params, tmp_path, fake))
    _, rows = table(result.markdown, "segment6")
    assert rows["segment6_at_pgd"]["am_pgd AutoAttack"] == "36.0 (+6.0)"
    gaps = section(result.markdown, "How far is PGD from AutoAttack")
    assert "AutoAttack lowers no PGD number by more than 2 points" in gaps
    assert "scores more than 2 points above our PGD in `segment6_at_pgd` × `am_pgd`" in gaps
    assert result.metrics["pgd_vs_autoattack"] == {"max_gap_points": 6.0, "cells_over_2_points": 0}


def test_no_pair_to_compare_and_nothing_evaluated(params: Params, tmp_path: Path) -> None:
    result = build_matrix_report(params, tmp_path / "evals", tmp_path / "matrix")
    assert "nothing to compare" in section(result.markdown, "How far is PGD from AutoAttack")
    assert result.metrics == {"pgd_vs_autoattack": {"max_gap_points": None, "cells_over_2_points": 0}}
    assert not result.frame["evaluated"].any()
    assert set(result.frame["accuracy"].isna()) == {True}


@pytest.mark.parametrize(
    "contents",
    [
        "{not json",
        json.dumps([0.5]),
        json.dumps({"accuracy": 50.0, "samples": 1}),
        json.dumps({"accuracy": 0.5, "samples": "all"}),
    ],
    ids=["malformed", "not-an-object", "accuracy-not-a-fraction", "samples-not-a-count"],
)
def test_a_bad_evaluation_file_is_a_data_error_naming_it(
    params: Params, tmp_path: Path, contents: str
) -> None:
    path = tmp_path / "evals" / "coco_ic_natural" / "am_pgd.json"
    path.parent.mkdir(parents=True)
    path.write_text(contents, encoding="utf-8")
    with pytest.raises(DataError, match="am_pgd.json"):
        build_matrix_report(params, tmp_path / "evals", tmp_path / "matrix")


def test_the_cli_writes_csv_markdown_and_metrics(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    evals, matrix = dirs
    out, metrics_path = tmp_path / "tables" / "robustness_matrix", tmp_path / "metrics" / "matrix.json"
    args = parser().parse_args(
        [
            *("--params", str(PARAMS_PATH), "--scale", "tiny"),
            *("--evals", str(evals), "--matrix", str(matrix)),
            *("--out", str(out), "--metrics", str(metrics_path)),
        ]
    )
    main(args)
    markdown = out.with_suffix(".md").read_text(encoding="utf-8")
    assert markdown.startswith("# Robustness matrices\n") and "Scale: **tiny**" in markdown
    # The command that makes every cell is the report's own target (--out), at its scale; each
    # missing cell's command names its file under the --evals or --matrix folder given.
    everything = f"`uv run snakemake {out.with_suffix('.md').as_posix()} --config scale=tiny` makes them all"
    assert everything in markdown
    assert command(matrix, "coco_ic_adversarial", "am_pgd_box") in markdown
    assert command(evals, "coco_ic_at_pgd", "natural") in markdown
    assert "results/tables/" not in markdown and "results/evals/" not in markdown
    assert table(markdown, DATASET)[1]["coco_ic_natural"]["am_pgd"] == "20.0"
    frame = pd.read_csv(out.with_suffix(".csv"))
    assert list(frame.columns)[:5] == ["dataset", "model", "attack", "column", "role"]
    assert frame["evaluated"].sum() == len(FAKE)
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    assert metrics[DATASET]["coco_ic_adversarial"]["aa_linf_8"] == 0.39
    assert metrics["pgd_vs_autoattack"]["cells_over_2_points"] == 1


def _with_column(raw: dict[str, Any], dataset: str, attack: str) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    datasets = raw["robustness_matrix"]["datasets"]
    # YAML anchors make several datasets share one dict (deepcopy keeps that); give this one its own.
    datasets[dataset] = copy.deepcopy(datasets[dataset])
    columns = datasets[dataset]["attacks"]
    columns["tiny"] = [*columns["tiny"], attack]
    return raw


@pytest.mark.parametrize(
    ("attack", "new_headers"),
    [("am_pgd_foreground", ["am_pgd_foreground"]), ("am_pgd_l2", ["am_pgd_l2", "am_pgd_l2 AutoAttack"])],
    ids=["plain", "with-reference"],
)
def test_adding_a_column_changes_only_that_datasets_table(
    params: Params, dirs: tuple[Path, Path], report: MatrixReport, attack: str, new_headers: list[str]
) -> None:
    wider = Params(_with_column(params.raw, DATASET, attack), scale="tiny")
    result = build_matrix_report(wider, *dirs)
    before, _ = table(report.markdown, DATASET)
    after, rows = table(result.markdown, DATASET)
    # The attack itself (a full-image PGD column with a reference brings its AutoAttack too).
    assert after == before + new_headers
    assert rows["coco_ic_natural"][attack] == MISSING
    assert rows["coco_ic_fg_natural"][attack] == MISSING  # fits: PGD on an x∘F model
    for matrix in params.robustness_matrices():
        if matrix.dataset != DATASET:
            assert section(result.markdown, matrix.dataset) == section(report.markdown, matrix.dataset)
    added = result.frame[(result.frame["dataset"] == DATASET) & (result.frame["column"] == attack)]
    models = next(m.models for m in params.robustness_matrices() if m.dataset == DATASET)
    assert len(added) == len(models) * len(new_headers)
    assert len(result.frame) == len(report.frame) + len(added)


# Replicates: every model trained R times (seeds 0, 1, 2 with R = 3), each replica a model
# <model>_seed<N> evaluated into the same folder kind as its base model.
def _replicated(params: Params, replicates: Any) -> Params:
    raw = copy.deepcopy(params.raw)
    raw["replicates"] = replicates
    return Params(raw, scale="tiny")


def _seeded(params: Params, per_seed: dict[tuple[str, str], tuple[float | None, ...]]) -> dict:
    """{(base model, attack): accuracy per seed (None: not evaluated)} as fill()'s fake evals."""
    fake = {}
    for (model, attack), accuracies in per_seed.items():
        for name, accuracy in zip((model, *params.replicas(model)), accuracies, strict=True):
            if accuracy is not None:
                fake[(name, attack)] = (accuracy, 128)
    return fake


@pytest.fixture(scope="module")
def replicated(params: Params) -> Params:
    three = _replicated(params, 3)
    assert three.replicas("coco_ic_natural") == ["coco_ic_natural_seed1", "coco_ic_natural_seed2"]
    return three


def test_a_cell_over_seeds_shows_mean_and_std(replicated: Params, tmp_path: Path) -> None:
    fake = _seeded(replicated, {("coco_ic_natural", "am_pgd"): (0.5, 0.6, 0.7)})
    assert ("coco_ic_natural_seed2", "am_pgd") in fake
    result = build_matrix_report(replicated, *fill(replicated, tmp_path, fake))
    _, rows = table(result.markdown, DATASET)
    assert rows["coco_ic_natural"]["am_pgd"] == "60.0 ± 10.0"
    row = result.frame.set_index(["dataset", "model", "attack"]).loc[(DATASET, "coco_ic_natural", "am_pgd")]
    assert row["accuracy"] == pytest.approx(0.6)
    assert row["accuracy_std"] == pytest.approx(0.1)
    assert row["seeds"] == 3 and row["evaluated"] and row["samples"] == 128
    # Rows are base models only; an unevaluated cell is over no seed and has no spread.
    assert not result.frame["model"].str.contains("_seed").any()
    other = result.frame.set_index(["dataset", "model", "attack"]).loc[
        (DATASET, "coco_ic_adversarial", "am_pgd")
    ]
    assert other["seeds"] == 0 and pd.isna(other["accuracy"]) and pd.isna(other["accuracy_std"])
    assert result.metrics[DATASET]["coco_ic_natural"] == {"am_pgd": 0.6}
    assert result.metrics["seeds"] == 3
    seeds = "Seeds: 3 (seeds 0, 1, 2); cells are mean ± std over the seeds that ran"
    assert seeds in result.markdown.split("\n## ")[0]  # the intro
    for matrix in replicated.robustness_matrices():
        [line] = [
            line
            for line in section(result.markdown, matrix.dataset).splitlines()
            if line.startswith("Test images")
        ]
        assert seeds in line
    assert "Missing:" in section(result.markdown, DATASET)
    missing = section(result.markdown, DATASET).split("Missing:")[1]
    assert "`coco_ic_natural` × `am_pgd`" not in missing
    assert "`coco_ic_natural_seed1` × `am_pgd`" not in missing


def test_a_missing_replica_is_listed_and_the_cell_is_the_mean_of_the_others(
    replicated: Params, tmp_path: Path
) -> None:
    fake = _seeded(
        replicated,
        {
            ("coco_ic_natural", "am_pgd"): (0.5, None, 0.7),  # a group pair: results/evals
            ("coco_ic_natural", "am_pgd_box"): (None, 0.4, None),  # matrix-only: results/matrix
            ("coco_ic_natural", "natural"): (0.9, 0.9, 0.9),
        },
    )
    result = build_matrix_report(replicated, *fill(replicated, tmp_path, fake))
    _, rows = table(result.markdown, DATASET)
    assert rows["coco_ic_natural"]["am_pgd"] == "60.0 ± 14.1"  # mean and std of 0.5 and 0.7
    assert rows["coco_ic_natural"]["am_pgd_box"] == "40.0"  # one seed ran: no spread
    assert rows["coco_ic_natural"]["clean %"] == "90.0 ± 0.0"
    frame = result.frame.set_index(["dataset", "model", "attack"])
    assert frame.loc[(DATASET, "coco_ic_natural", "am_pgd"), "seeds"] == 2
    assert frame.loc[(DATASET, "coco_ic_natural", "am_pgd"), "accuracy"] == pytest.approx(0.6)
    box = frame.loc[(DATASET, "coco_ic_natural", "am_pgd_box")]
    assert box["seeds"] == 1 and box["accuracy"] == pytest.approx(0.4) and pd.isna(box["accuracy_std"])
    missing = section(result.markdown, DATASET).split("Missing:")[1]
    evals, matrix = tmp_path / "evals", tmp_path / "matrix"  # fill's folders
    assert (
        f"`coco_ic_natural_seed1` × `am_pgd`: {command(evals, 'coco_ic_natural_seed1', 'am_pgd')}" in missing
    )
    assert f"`coco_ic_natural` × `am_pgd_box`: {command(matrix, 'coco_ic_natural', 'am_pgd_box')}" in missing
    assert (
        f"`coco_ic_natural_seed2` × `am_pgd_box`: {command(matrix, 'coco_ic_natural_seed2', 'am_pgd_box')}"
        in missing
    )
    assert "`coco_ic_natural_seed2` × `am_pgd`:" not in missing
    assert "`coco_ic_natural_seed1` × `am_pgd_box`:" not in missing
    assert f"× `natural`: `uv run snakemake {evals.as_posix()}/coco_ic_natural" not in missing
    # Every unevaluated seed of a fitting cell is listed, the replicas' too; n/a cells are not.
    assert f"`coco_ic_adversarial_seed2` × `am_pgd_box`: `uv run snakemake {matrix.as_posix()}/" in missing
    assert "`coco_ic_fg_natural_seed1` × `dual_linf_f4_b20`" not in missing


def test_the_reference_gap_is_between_the_means(replicated: Params, tmp_path: Path) -> None:
    fake = _seeded(
        replicated,
        {
            ("coco_ic_natural", "am_pgd"): (0.2, 0.3, 0.4),  # mean 0.3
            ("coco_ic_natural", "aa_linf_8"): (0.15, 0.25, 0.2),  # mean 0.2 (base gap alone: -5)
        },
    )
    result = build_matrix_report(replicated, *fill(replicated, tmp_path, fake))
    _, rows = table(result.markdown, DATASET)
    assert rows["coco_ic_natural"]["am_pgd"] == "30.0 ± 10.0"
    assert rows["coco_ic_natural"]["am_pgd AutoAttack"] == "20.0 ± 5.0 (\u221210.0)"
    [gap] = result.gaps
    assert gap.points == pytest.approx(-10.0)
    gaps = section(result.markdown, "How far is PGD from AutoAttack")
    assert "The largest gap is \u221210.0 points" in gaps
    [row] = [line for line in gaps.splitlines() if line.startswith("| coco_ic ")]
    assert [part.strip() for part in row.strip("|").split("|")][4:] == [
        "30.0 ± 10.0",
        "20.0 ± 5.0",
        "\u221210.0",
    ]
    assert result.metrics["pgd_vs_autoattack"] == {"max_gap_points": -10.0, "cells_over_2_points": 1}
    assert result.metrics[DATASET]["coco_ic_natural"] == {"am_pgd": 0.3, "aa_linf_8": 0.2}


def test_replicates_per_scale(params: Params, tmp_path: Path) -> None:
    per_scale = _replicated(params, {"tiny": 2, "reduced": 1, "paper": 1})
    fake = _seeded(per_scale, {("coco_ic_natural", "am_pgd"): (0.5, 0.6)})
    result = build_matrix_report(per_scale, *fill(per_scale, tmp_path, fake))
    assert table(result.markdown, DATASET)[1]["coco_ic_natural"]["am_pgd"] == "55.0 ± 7.1"
    assert "Seeds: 2 (seeds 0, 1); cells are mean ± std" in result.markdown


def test_one_replicate_is_the_single_run_report(
    params: Params, dirs: tuple[Path, Path], report: MatrixReport
) -> None:
    implicit = copy.deepcopy(params.raw)
    implicit.pop("replicates", None)
    for other in (Params(implicit, scale="tiny"), _replicated(params, 1)):
        result = build_matrix_report(other, *dirs)
        assert result.markdown == report.markdown
        pd.testing.assert_frame_equal(result.frame, report.frame)
        assert result.metrics == report.metrics
    assert "seeds" not in report.metrics
    assert "Scale: **tiny**. Seeds: 1 (seed 0). " in report.markdown
    assert set(report.frame["seeds"]) == {0, 1} and report.frame["accuracy_std"].isna().all()
    assert (report.frame["seeds"] == report.frame["evaluated"].astype(int)).all()
    assert "± " not in report.markdown
