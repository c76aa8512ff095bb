"""The robustness-matrix report: per evaluation dataset, every model evaluated on it x the attacks
params.yaml's ``robustness_matrix`` lists (stages.config.Params.robustness_matrices), each cell the
robust accuracy, ``n/a`` with its reason where the pair does not fit, ``–`` where it is not
evaluated yet; and how far our full-image PGD columns are from their AutoAttack references.

Missing evaluations do not stop the report: the matrix grows whenever a column is added, and a
partial matrix listing the commands for its missing cells is more useful than none.

With ``replicates`` R > 1 every model is also trained and evaluated as R − 1 replicas
(``<model>_seed<N>``, stages.config.Params.replicas); a cell then aggregates its base model's
evaluation and its replicas': the mean over the seeds that ran, ± their sample standard deviation.

Why one module of ~660 lines: the matrix cells, their AutoAttack gaps and their markdown share
one record of a cell (:class:`CellResult`); issue 38 reworks the report's rooms.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from stages.claims.evals import eval_path, load_evals
from stages.config import AttackSpec, MatrixCell, Params, RobustnessMatrix, resolve_scaled
from stages.config.experiments import ATTACK_PLACEHOLDER, MODEL_PLACEHOLDER, Misfit
from stages.report.markdown import MISSING, text_table, write_table
from stages.utils.errors import DataError
from stages.utils.io import write_json

# The attack whose cell is the model's clean accuracy; as a column it becomes `clean %`.
CLEAN_ATTACK = "natural"
NOT_APPLICABLE = "n/a"
# A reference lowering our PGD number by more than this many points means our PGD missed
# adversarial examples the ensemble found: the PGD cell is an upper bound, not a measurement.
GAP_THRESHOLD_POINTS = 2.0
MINUS = "\u2212"

Role = Literal["attack", "reference"]
CSV_COLUMNS = [
    "dataset",
    "model",
    "attack",
    "column",
    "role",
    "fits",
    "reason",
    "accuracy",
    "accuracy_std",
    "seeds",
    "samples",
    "model_input",
    "effective_region",
    "evaluated",
]


@dataclass(frozen=True)
class Run:
    """One seed of a cell: the base model's evaluation or one replica's."""

    model: str  # the base model or one of its replicas (<model>_seed<N>)
    seed: int
    target: str  # the Snakemake target that makes its evaluation (its file under the folder read)
    result: dict[str, Any] | None  # the evaluation JSON; None when missing or not fitting

    @property
    def accuracy(self) -> float | None:
        return None if self.result is None else float(self.result["accuracy"])


def mean_accuracy(accuracies: Sequence[float]) -> float | None:
    if not accuracies:
        return None
    return accuracies[0] if len(accuracies) == 1 else statistics.fmean(accuracies)


def std_accuracy(accuracies: Sequence[float]) -> float | None:
    """The sample standard deviation (ddof=1) over seeds; None for fewer than two."""
    return statistics.stdev(accuracies) if len(accuracies) > 1 else None


def shown_accuracy(accuracies: Sequence[float]) -> str:
    """One evaluation as a percentage (``42.3``), several as ``mean ± std`` (``42.3 ± 1.2``)."""
    mean, std = mean_accuracy(accuracies), std_accuracy(accuracies)
    if mean is None:
        return MISSING
    return percent(mean) if std is None else f"{percent(mean)} ± {percent(std)}"


@dataclass(frozen=True)
class CellResult:
    """One cell of a matrix: a (model, attack) under one column, and its evaluations if any: the
    base model's and each replica's (one run per seed, the base model's first)."""

    dataset: str
    model: str
    attack: str
    column: str  # the column attack: the cell's own attack, or the PGD column a reference checks
    role: Role
    misfit: Misfit | None  # why the pair does not fit; None when it does
    runs: tuple[Run, ...]  # the base model's, then its replicas' in seed order

    @property
    def fits(self) -> bool:
        return self.misfit is None

    @property
    def reason(self) -> str | None:
        return None if self.misfit is None else self.misfit.text()

    @property
    def target(self) -> str:
        """The Snakemake target that makes the base model's evaluation."""
        return self.runs[0].target

    @property
    def results(self) -> list[dict[str, Any]]:
        """The evaluations that ran, in seed order."""
        return [run.result for run in self.runs if run.result is not None]

    @property
    def result(self) -> dict[str, Any] | None:
        """The first evaluation that ran (the base model's when it did); None when none did."""
        return next(iter(self.results), None)

    @property
    def missing_runs(self) -> list[Run]:
        return [run for run in self.runs if run.result is None] if self.fits else []

    @property
    def evaluated(self) -> bool:
        return self.result is not None

    @property
    def accuracies(self) -> list[float]:
        return [float(result["accuracy"]) for result in self.results]

    @property
    def seeds(self) -> int:
        """How many evaluations the accuracy is a mean over."""
        return len(self.results)

    @property
    def accuracy(self) -> float | None:
        """The mean over the seeds that ran; None when none did."""
        return mean_accuracy(self.accuracies)

    @property
    def accuracy_std(self) -> float | None:
        """The sample standard deviation over the seeds that ran; None for fewer than two."""
        return std_accuracy(self.accuracies)

    @property
    def shown(self) -> str:
        return shown_accuracy(self.accuracies)


@dataclass(frozen=True)
class Gap:
    """A model's full-image PGD column beside its AutoAttack reference, both evaluated."""

    pgd: CellResult
    autoattack: CellResult

    @property
    def points(self) -> float:
        """AutoAttack − PGD in percentage points: negative when the ensemble finds adversarial
        examples our PGD missed."""
        assert self.pgd.accuracy is not None and self.autoattack.accuracy is not None
        return (self.autoattack.accuracy - self.pgd.accuracy) * 100.0

    @property
    def pgd_overestimates(self) -> bool:
        return self.points < -GAP_THRESHOLD_POINTS

    @property
    def where(self) -> str:
        return f"`{self.pgd.model}` × `{self.pgd.attack}` on {self.pgd.dataset}"


@dataclass(frozen=True)
class MatrixReport:
    frame: pd.DataFrame  # long format, one row per cell (the csv)
    markdown: str
    metrics: dict[str, Any]
    cells: tuple[CellResult, ...]
    gaps: tuple[Gap, ...]


def read_optional_eval(folder: Path, model: str, attack: str) -> dict[str, Any] | None:
    """The evaluation of (model, attack) under ``folder``, None when it does not exist yet; a
    file that is there but is not an evaluation is a DataError naming it."""
    path = eval_path(folder, model, attack)
    if not path.is_file():
        return None
    result = load_evals(folder, [(model, attack)])[(model, attack)]
    accuracy = result.get("accuracy")
    if isinstance(accuracy, bool) or not isinstance(accuracy, int | float) or not 0 <= accuracy <= 1:
        raise DataError(
            f"{path}: 'accuracy' is {accuracy!r}, not a fraction in [0, 1]; delete it and re-run the "
            f"evaluate stage"
        )
    samples = result.get("samples")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise DataError(
            f"{path}: 'samples' is {samples!r}, not a count of test images; delete it and re-run the "
            f"evaluate stage"
        )
    return result


def percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}"


def signed_points(points: float) -> str:
    text = f"{points:+.1f}"
    if text in ("+0.0", "-0.0"):
        return "0.0"
    return text.replace("-", MINUS)


def _eps(value: float) -> str:
    """A budget as params.yaml readers know it: 0.3, 2, or 8/255 for an 8-bit step count."""
    if abs(value - round(value, 3)) < 1e-9:
        return f"{value:g}"
    levels = value * 255
    if abs(levels - round(levels)) < 1e-6:
        return f"{round(levels)}/255"
    return f"{value:.3g}"


def trained_label(attack: AttackSpec) -> str:
    if attack.kind == "none":
        return "natural"
    if attack.kind == "pgd":
        # LAT's background training differs from standard AT only in its region.
        region = "" if attack.region == "full" else f" {attack.region}"
        return f"pgd {attack.norm} {_eps(attack.eps)}{region} ({attack.name})"
    return f"{attack.kind} ({attack.name})"


def input_label(model_input: str) -> str:
    return "x∘F" if model_input == "foreground" else model_input


def _test_images(params: Params, dataset: str) -> str:
    sizes = params.raw["samples"].get(dataset)
    count = resolve_scaled(sizes["test"], params.scale) if sizes else "all"
    return "every" if count == "all" else f"the first {count}"


def seed_list(params: Params) -> list[int]:
    """The training seeds: the base models' and then their replicas'."""
    return [params.seed + k for k in range(params.replicates)]


def seeds_text(params: Params) -> str:
    """``Seeds: 1 (seed 0)`` or ``Seeds: 3 (seeds 0, 1, 2); cells are mean ± std ...``."""
    seeds = seed_list(params)
    if len(seeds) == 1:
        return f"Seeds: 1 (seed {seeds[0]})"
    return (
        f"Seeds: {len(seeds)} (seeds {', '.join(map(str, seeds))}); cells are mean ± std over the "
        "seeds that ran"
    )


def _columns_of(matrix: RobustnessMatrix) -> list[tuple[str, str, Role]]:
    """(attack, column, role) in the order Params.robustness_matrices() makes a row's cells."""
    out: list[tuple[str, str, Role]] = []
    for column in matrix.attacks:
        out.append((column, column, "attack"))
        if column in matrix.references:
            out.append((matrix.references[column], column, "reference"))
    return out


def snakemake_command(params: Params, target: Path | str) -> str:
    """The command that makes ``target`` at the report's scale. The scale is always named:
    Snakemake runs at params.yaml's own scale otherwise, which has no rule for another scale's
    files (results/<scale>/...)."""
    target = target.as_posix() if isinstance(target, Path) else target
    return f"uv run snakemake {target} --config scale={params.scale}"


def _runs(params: Params, model: str, attack: str, folder: Path, read: bool) -> tuple[Run, ...]:
    """The base model's run and each replica's, all in the base model's folder (the plan's
    evaluation folder or matrix folder, as given to the stage); their evaluations are read only
    when ``read`` (the pair fits)."""
    return tuple(
        Run(
            name,
            params.model_seed(name),
            eval_path(folder, name, attack).as_posix(),
            read_optional_eval(folder, name, attack) if read else None,
        )
        for name in (model, *params.replicas(model))
    )


def collect_cells(
    params: Params, matrix: RobustnessMatrix, evals_dir: Path, matrix_dir: Path
) -> list[CellResult]:
    groups = set(params.group_pairs())
    cells: list[CellResult] = []
    for model in matrix.models:
        for attack, column, role in _columns_of(matrix):
            cell: MatrixCell = matrix.cell(model, attack)
            # A replica's evaluation goes where its base model's does (workflow/plan.py).
            in_group = (model, attack) in groups
            folder = evals_dir if in_group else matrix_dir
            runs = _runs(params, model, attack, folder, read=cell.fits)
            cells.append(CellResult(matrix.dataset, model, attack, column, role, cell.misfit, runs))
    return cells


def _clean_accuracies(
    params: Params, model: str, cells: dict[tuple[str, str], CellResult], evals_dir: Path
) -> list[float]:
    """The model's clean accuracy over the seeds that ran."""
    cell = cells.get((model, CLEAN_ATTACK))
    if cell is not None:
        return cell.accuracies
    # Not a column of this matrix: a group may still have evaluated it.
    if (model, CLEAN_ATTACK) in set(params.group_pairs()):
        runs = _runs(params, model, CLEAN_ATTACK, evals_dir, read=True)
        return [run.accuracy for run in runs if run.accuracy is not None]
    return []


def _shown(cell: CellResult) -> str:
    return NOT_APPLICABLE if not cell.fits else cell.shown


def _header(attack: str, role: Role, column: str) -> str:
    if role == "reference":
        return f"{column} AutoAttack"
    return "clean %" if attack == CLEAN_ATTACK else attack


def _table(
    params: Params, matrix: RobustnessMatrix, cells: list[CellResult], evals_dir: Path
) -> pd.DataFrame:
    by_pair = {(c.model, c.attack): c for c in cells}
    rows: list[dict[str, str]] = []
    for model in matrix.models:
        spec = params.model(model)
        row = {
            "model": model,
            "trained": trained_label(spec.train_attack),
            "input": input_label(spec.input),
            "clean %": shown_accuracy(_clean_accuracies(params, model, by_pair, evals_dir)),
        }
        for cell in (c for c in cells if c.model == model):
            if cell.attack == CLEAN_ATTACK and cell.role == "attack":
                continue
            shown = _shown(cell)
            pgd = by_pair[(model, cell.column)]
            if cell.role == "reference" and cell.accuracy is not None and pgd.accuracy is not None:
                shown += f" ({signed_points(Gap(pgd, cell).points)})"
            row[_header(cell.attack, cell.role, cell.column)] = shown
        rows.append(row)
    headers = ["model", "trained", "input", "clean %"] + [
        _header(attack, role, column)
        for attack, column, role in _columns_of(matrix)
        if not (attack == CLEAN_ATTACK and role == "attack")
    ]
    return pd.DataFrame(rows, columns=headers)


def _samples_line(matrix: RobustnessMatrix, cells: list[CellResult]) -> str:
    parts = []
    for attack, column, role in _columns_of(matrix):
        counts = sorted(
            {
                int(result["samples"])
                for c in cells
                if c.attack == attack and c.column == column
                for result in c.results
            }
        )
        label = f"`{attack}`" + (f" ({column} AutoAttack)" if role == "reference" else "")
        parts.append(f"{label}: {', '.join(map(str, counts)) or MISSING}")
    return "Samples (test images per evaluation): " + "; ".join(parts) + "."


def _cell_names(cells: Iterable[CellResult]) -> str:
    """The cells compactly: models sharing the same attacks as one product, in table order."""
    attacks: dict[str, list[str]] = {}
    for cell in cells:
        attacks.setdefault(cell.model, []).append(cell.attack)
    products: dict[tuple[str, ...], list[str]] = {}
    for model, names in attacks.items():
        products.setdefault(tuple(names), []).append(model)
    return "; ".join(
        f"{', '.join(f'`{m}`' for m in models)} × {', '.join(f'`{a}`' for a in names)}"
        for names, models in products.items()
    )


def _unique(cells: Iterable[CellResult]) -> list[CellResult]:
    """One cell per (model, attack): two columns sharing a reference make one evaluation."""
    seen: dict[tuple[str, str], CellResult] = {}
    for cell in cells:
        seen.setdefault((cell.model, cell.attack), cell)
    return list(seen.values())


def _dataset_section(
    params: Params, matrix: RobustnessMatrix, cells: list[CellResult], evals_dir: Path
) -> list[str]:
    lines = [f"## {matrix.dataset}", ""]
    lines += [
        f"Test images: {_test_images(params, matrix.dataset)} of the test split "
        f"(`samples.{matrix.dataset}.test`); {len(matrix.models)} models x {len(matrix.attacks)} attacks. "
        f"{seeds_text(params)}.",
        "",
    ]
    if not matrix.models:
        return lines + ["No model is evaluated on this dataset.", ""]
    lines += [text_table(_table(params, matrix, cells, evals_dir), text_columns=3), ""]
    lines += [_samples_line(matrix, cells), ""]

    other_scale = [
        (run, c.attack)
        for c in _unique(cells)
        for run in c.runs
        if run.result and run.result.get("scale", params.scale) != params.scale
    ]
    if other_scale:
        listed = ", ".join(
            f"`{run.model}` × `{attack}` ({run.result['scale']})" for run, attack in other_scale if run.result
        )
        lines += [
            f"Made at another scale than **{params.scale}** (stale; re-run them): {listed}.",
            "",
        ]

    reasons: dict[str, list[CellResult]] = {}
    for cell in _unique(cells):
        if not cell.fits:
            reasons.setdefault(cell.misfit.general(), []).append(cell)  # type: ignore[union-attr]
    lines.append(
        "Not applicable:"
        + (
            f" ({MODEL_PLACEHOLDER} and {ATTACK_PLACEHOLDER} stand for each model and attack listed "
            "after the dash)"
            if reasons
            else " none."
        )
    )
    lines += [f"- {reason} — {_cell_names(covered)}" for reason, covered in reasons.items()]
    lines.append("")

    # A replica's missing evaluation is listed like any other (its cell shows the others' mean).
    missing = [(run, c.attack) for c in _unique(cells) for run in c.missing_runs]
    lines.append("Missing:" + ("" if missing else " none."))
    lines += [
        f"- `{run.model}` × `{attack}`: `{snakemake_command(params, run.target)}`" for run, attack in missing
    ]
    lines.append("")
    return lines


def find_gaps(cells: Iterable[CellResult]) -> list[Gap]:
    """Every (dataset, model, column with a reference) whose PGD and reference are evaluated."""
    cells = list(cells)
    by_key = {(c.dataset, c.model, c.attack, c.role): c for c in cells}
    gaps = []
    for ref in cells:
        if ref.role != "reference" or ref.accuracy is None:
            continue
        pgd = by_key.get((ref.dataset, ref.model, ref.column, "attack"))
        if pgd is not None and pgd.accuracy is not None:
            gaps.append(Gap(pgd, ref))
    return gaps


def largest_gap(gaps: list[Gap]) -> Gap | None:
    """The gap largest in magnitude, the earliest on ties (params order)."""
    return max(gaps, key=lambda g: abs(g.points), default=None)


def _gap_section(gaps: list[Gap]) -> list[str]:
    lines = [
        "## How far is PGD from AutoAttack",
        "",
        "Each full-image PGD column with a reference beside the AutoAttack ensemble at the same norm "
        "and eps, on the same model. gap = AutoAttack − PGD in points: how much the stronger "
        "ensemble lowers our PGD robust accuracy.",
        "",
    ]
    if not gaps:
        return lines + [
            "No model has both a PGD column and its AutoAttack reference evaluated yet; nothing to compare.",
            "",
        ]
    frame = pd.DataFrame(
        [
            {
                "dataset": g.pgd.dataset,
                "model": g.pgd.model,
                "PGD": g.pgd.attack,
                "AutoAttack": g.autoattack.attack,
                "PGD %": g.pgd.shown,
                "AutoAttack %": g.autoattack.shown,
                "gap": signed_points(g.points),
            }
            for g in gaps
        ]
    )
    lines += [text_table(frame, text_columns=4), ""]
    top = largest_gap(gaps)
    assert top is not None
    verdict = f"The largest gap is {signed_points(top.points)} points ({top.where})."
    over = [g for g in gaps if g.pgd_overestimates]
    if over:
        listed = ", ".join(f"{g.where} ({signed_points(g.points)})" for g in over)
        verdict += (
            f" AutoAttack lowers our PGD number by more than {GAP_THRESHOLD_POINTS:g} points in "
            f"{len(over)} of {len(gaps)} cells: {listed}. Our PGD overestimates robust accuracy there; "
            f"read those cells as upper bounds."
        )
    else:
        verdict += (
            f" AutoAttack lowers no PGD number by more than {GAP_THRESHOLD_POINTS:g} points: our PGD "
            f"columns hold up against the stronger ensemble."
        )
    under = [g for g in gaps if g.points > GAP_THRESHOLD_POINTS]
    if under:
        # A weaker reference (scaled-down steps, queries, targets) checks nothing.
        verdict += (
            f" AutoAttack scores more than {GAP_THRESHOLD_POINTS:g} points above our PGD in "
            f"{_gap_names(under)}: the ensemble as configured at this scale is the weaker attack "
            f"there, so those cells are not checked."
        )
    lines += [verdict, ""]
    unlike = [
        g
        for g in gaps
        if g.pgd.result
        and g.autoattack.result
        and (
            g.pgd.result.get("samples") != g.autoattack.result.get("samples")
            or g.pgd.result.get("effective_region") != g.autoattack.result.get("effective_region")
        )
    ]
    if unlike:
        lines += [
            f"Not like for like (other test images or attacked pixels): {_gap_names(unlike)}; "
            f"their gaps compare different evaluations.",
            "",
        ]
    return lines


def _gap_names(gaps: list[Gap]) -> str:
    return ", ".join(g.where for g in gaps)


def _intro(params: Params, out: Path | None) -> list[str]:
    # The report's own target depends on every fitting cell: making it makes them all.
    everything = (
        f"`{snakemake_command(params, out.with_suffix('.md'))}` makes them all"
        if out is not None
        else "making this report with Snakemake makes them all"
    )
    return [
        "# Robustness matrices",
        "",
        f"Scale: **{params.scale}**. {seeds_text(params)}. "
        "One matrix per dataset of params.yaml's `robustness_matrix`: the rows are every model "
        "evaluated on the dataset (its evaluation group's dataset, else its own), "
        "the columns the attacks listed there for this scale, and each cell the robust accuracy (%) on "
        "the dataset's first N test images (N below each table; few-pixel DE attacks evaluate fewer, "
        "see Samples). `trained`: the model's training attack; `input`: what the model sees, natural "
        "images or x∘F (background zeroed); `clean %`: its `natural` evaluation. A full-image PGD "
        "column with a reference is followed by `<attack> AutoAttack`: the AutoAttack ensemble at the "
        "same norm and eps, with its gap to our PGD in parentheses (AutoAttack − PGD, in points). "
        f"`{NOT_APPLICABLE}`: the pair does not fit (the reason is listed below the table); "
        f"`{MISSING}`: not evaluated yet (listed with the command that makes it; {everything}).",
        "",
    ]


def _frame(cells: list[CellResult]) -> pd.DataFrame:
    rows = [
        {
            "dataset": c.dataset,
            "model": c.model,
            "attack": c.attack,
            "column": c.column,
            "role": c.role,
            "fits": c.fits,
            "reason": c.reason or "",
            "accuracy": c.accuracy,
            "accuracy_std": c.accuracy_std,
            "seeds": c.seeds,
            "samples": c.result.get("samples") if c.result else None,
            "model_input": c.result.get("model_input") if c.result else None,
            "effective_region": c.result.get("effective_region") if c.result else None,
            "evaluated": c.evaluated,
        }
        for c in cells
    ]
    frame = pd.DataFrame(rows, columns=CSV_COLUMNS)
    # Nullable ints: a missing cell leaves samples empty instead of turning 401 into 401.0.
    frame["samples"] = frame["samples"].astype("Int64")
    frame["accuracy"] = frame["accuracy"].astype("float64")
    frame["accuracy_std"] = frame["accuracy_std"].astype("float64")
    frame["seeds"] = frame["seeds"].astype("int64")
    return frame


def _metrics(params: Params, cells: list[CellResult], gaps: list[Gap]) -> dict[str, Any]:
    """Accuracy (the mean over seeds) per dataset, model and attack, and the largest gap; with
    ``replicates`` > 1 also the number of seeds."""
    metrics: dict[str, Any] = {}
    for cell in cells:
        if cell.accuracy is not None:
            metrics.setdefault(cell.dataset, {}).setdefault(cell.model, {})[cell.attack] = round(
                cell.accuracy, 4
            )
    top = largest_gap(gaps)
    metrics["pgd_vs_autoattack"] = {
        "max_gap_points": None if top is None else round(top.points, 2),
        "cells_over_2_points": sum(g.pgd_overestimates for g in gaps),
    }
    if params.replicates > 1:
        metrics["seeds"] = params.replicates
    return metrics


def build_matrix_report(
    params: Params, evals_dir: Path, matrix_dir: Path | None = None, *, out: Path | None = None
) -> MatrixReport:
    """The report of every robustness matrix of ``params``. A group's pair is read from
    ``evals_dir``, a matrix-only cell from ``matrix_dir`` (by default ``evals_dir`` too); a
    missing cell's command names its file there. ``out``: where the report goes (the stage's
    ``--out``, without suffix), for the command that makes every cell."""
    matrix_dir = evals_dir if matrix_dir is None else matrix_dir
    lines = _intro(params, out)
    all_cells: list[CellResult] = []
    for matrix in params.robustness_matrices():
        cells = collect_cells(params, matrix, evals_dir, matrix_dir)
        lines += _dataset_section(params, matrix, cells, evals_dir)
        all_cells += cells
    gaps = find_gaps(all_cells)
    lines += _gap_section(gaps)
    return MatrixReport(
        frame=_frame(all_cells),
        markdown="\n".join(lines),
        metrics=_metrics(params, all_cells, gaps),
        cells=tuple(all_cells),
        gaps=tuple(gaps),
    )


def write_matrix_report(report: MatrixReport, out: Path, metrics_path: Path) -> None:
    """``out``.csv, ``out``.md and the metrics JSON, each written atomically."""
    write_table(out, report.frame, report.markdown)
    write_json(metrics_path, report.metrics)
