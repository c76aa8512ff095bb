"""The dual-perturbation report ("Towards Robustness against Unsuspicious Adversarial Examples",
ICLR 2021 submission): Clean, AT-PGD and AT-Dual under l2 PGD and the dual attack, the paper's
reported shape beside our numbers with verdicts computed from them, the curves of its Figs. 3-5
as PNG figures, and the same curves as CSV files for ``dvc plots``.

The paper reports figures only (§5.2-5.4), so there are no paper numbers to put beside ours:
the report quotes its statements and checks each one against our evaluations.

Why one module of ~680 lines: the table, the sweep figures and the plot CSVs are drawn from the
same sweep records with the same labels; issue 38 reworks the report's rooms.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from stages.claims.dual_perturbation import (  # noqa: E402
    PAPER,
    PAPER_FS_FLOOR,
    SALIENCE_PARAMETER,
    TITLE,
    dual_claims,
)
from stages.claims.evals import load_evals  # noqa: E402
from stages.claims.evidence import load_evaluations  # noqa: E402
from stages.claims.feasibility import Feasibility  # noqa: E402
from stages.claims.record import ClaimRecord, ClaimsFile, write_claims  # noqa: E402
from stages.claims.render import claim_section_lines  # noqa: E402
from stages.claims.settings import ClaimSettings, dataset_facts  # noqa: E402
from stages.config import AttackSpec, Params  # noqa: E402
from stages.report.markdown import markdown_table, write_table  # noqa: E402
from stages.utils.errors import ConfigError, DataError  # noqa: E402
from stages.utils.io import atomic_open, atomic_path  # noqa: E402

# params role -> the paper's model name (§5.1), in the paper's order.
ROLES = {"clean": "Clean", "at_pgd": "AT-PGD", "at_dual": "AT-Dual"}
# params `inputs` key -> the main table's column (accuracy in %).
INPUT_COLUMNS = {
    "natural": "clean accuracy %",
    "pgd": "l2 PGD accuracy %",
    "pgd_strong": "strong l2 PGD accuracy %",
    "dual": "dual accuracy %",
}
FS_COLUMN = "dual FS"
MAIN_COLUMNS = ["dataset", "model", "model_key", *INPUT_COLUMNS.values(), FS_COLUMN, "samples"]
DATASET_TITLES = {
    "segment6": "Segment-6",
    "coco_ic": "MS-COCO-IC",
    "cifar10_grabcut": "CIFAR-10 with GrabCut masks",
}

# The evaluate stage's keys for a dual attack's mean foreground score (paper §3.3): of the
# adversarial examples, and of the clean images they start from.
FS_KEY = "foreground_score"
FS_NATURAL_KEY = "foreground_score_natural"
FS_DECIMALS = 3
PERCENT_DECIMALS = 2

# Budgets. The paper attacks 224x224 ImageNet-10 images; an l2 budget grows with the square root
# of the pixel count, so params divide its l2 budgets by 224/32 = 7 for our 32x32 images (the
# attack names keep the paper's numbers). l_inf budgets are per pixel and need no rescaling; the
# paper writes them in 1/255 units.
PAPER_IMAGE_SIDE = 224
OUR_IMAGE_SIDE = 32
L2_TO_PAPER = PAPER_IMAGE_SIDE / OUR_IMAGE_SIDE
LINF_LEVELS = 255
BUDGET_PARAMETERS = ("eps", "eps_foreground", "eps_background")
PAPER_DECIMALS = 3

# Salience models (params `attacks.<name>.salience`) by what the report calls them. The paper
# uses DeepGaze II (Kümmerer et al. 2017), whose weights we cannot get.
SALIENCE_TITLES = {
    "spectral_residual": "spectral residual (Hou & Zhang 2007)",
    "frequency_tuned": "frequency-tuned (Achanta et al. 2009)",
}
PAPER_SALIENCE = "DeepGaze II (Kümmerer et al. 2017)"
# Evaluations written before they recorded their salience model (`salience_model`) all used
# spectral residual, then the only model.
LEGACY_SALIENCE = "spectral_residual"
# The salience_quality stage's record (stages/saliency/quality.py): each model's agreement with
# the ground-truth masks on clean test images, shown beside the claims as one table.
SALIENCE_COLUMNS = [
    "dataset",
    "salience model",
    "used",
    "images",
    "mean FS",
    "mean foreground fraction",
    "FS - fraction",
    "images FS > fraction",
    "mean AUC",
    "AUC images",
]

# Figures: which of the paper's figures a sweep redraws (§5.2-5.4).
SALIENCE_FIGURE = "Fig. 3"
NORM_FIGURES = {"l2": "Fig. 4", "linf": "Fig. 5"}
NORM_TITLES = {"l2": "l2", "linf": "linf"}
NORM_MATH = {"l2": r"$\ell_2$", "linf": r"$\ell_\infty$"}
PARAMETER_TITLES = {
    "eps": "eps",
    "eps_foreground": "eps_F",
    "eps_background": "eps_B",
    "salience_weight": "λ",
}
PARAMETER_MATH = {
    "eps": r"$\epsilon$",
    "eps_foreground": r"$\epsilon_F$",
    "eps_background": r"$\epsilon_B$",
    "salience_weight": r"$\lambda$",
}
ROLE_STYLES: dict[str, dict[str, str]] = {
    "clean": {"color": "tab:gray", "marker": "o"},
    "at_pgd": {"color": "tab:blue", "marker": "s"},
    "at_dual": {"color": "tab:red", "marker": "^"},
}
MAX_PANEL_COLUMNS = 4
PANEL_INCHES = (3.4, 2.8)
FIGURE_DPI = 100
SYMLOG_LINTHRESH = 1.0  # λ is 0 or spans decades (Fig. 3: 0, 1, 10, 100): linear below 1, log above
PERCENT_LIMITS = (0.0, 100.0)
FS_LIMITS = (0.0, 1.0)
PLOT_X = "x"
FS_SUFFIX = "foreground_score"


@dataclass(frozen=True)
class SweepAxis:
    """One curve of the paper's figures: the attacks of ``tables.dual_perturbation.sweeps.<name>``
    in order of the swept parameter's value (our value, params' scale resolved)."""

    name: str
    parameter: str
    norm: str
    dual: bool
    attacks: tuple[str, ...]
    x: tuple[float, ...]

    @property
    def figure(self) -> str:
        """The paper's figure this sweep redraws: λ sweeps Fig. 3, l2 Fig. 4, linf Fig. 5."""
        return SALIENCE_FIGURE if self.parameter == SALIENCE_PARAMETER else NORM_FIGURES[self.norm]

    @property
    def title(self) -> str:
        kind = "dual" if self.dual else "PGD"
        return (
            f"{NORM_TITLES[self.norm]} {kind} over {PARAMETER_TITLES[self.parameter]} (paper {self.figure})"
        )


@dataclass(frozen=True)
class DualTable:
    frame: pd.DataFrame  # the main table: dataset x (Clean, AT-PGD, AT-Dual), MAIN_COLUMNS
    sweeps: list[SweepAxis]
    # (dataset, sweep) -> columns x, clean, at_pgd, at_dual: accuracy in %
    curves: dict[tuple[str, str], pd.DataFrame]
    # (dataset, sweep) -> the same columns holding the mean FS; dual sweeps only
    fs_curves: dict[tuple[str, str], pd.DataFrame]
    # (dataset, sweep) -> mean FS of the clean images over the sweep's points; dual sweeps only
    fs_natural: dict[tuple[str, str], float]
    inputs: dict[str, AttackSpec]
    salience: list[str]  # the salience models of the dual attacks evaluated
    samples: list[int]  # the distinct test-image counts of the evaluations
    # every dual attack the report reads -> the salience model its evaluations ran with
    salience_of: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class SalienceAgreement:
    """The salience_quality record as the report shows it: a row per dataset and salience
    model (:data:`SALIENCE_COLUMNS`), and the model the record's criterion prefers."""

    frame: pd.DataFrame
    preferred: str
    criterion: str
    source: str


def percent(accuracy: float) -> float:
    return round(100.0 * accuracy, PERCENT_DECIMALS)


def _number(value: float) -> str:
    """A paper-style number: 2.0, 20.0, 0.5, 2.25 (one decimal at least, three at most)."""
    rounded = round(value, PAPER_DECIMALS)
    return f"{rounded:.1f}" if rounded == round(rounded, 1) else f"{rounded:g}"


def paper_equivalent(parameter: str, norm: str | None, value: float) -> str:
    """Our parameter ``value`` in the paper's units: l2 budgets x 7 (224/32), l_inf budgets as
    k/255, λ unchanged (it weighs FS, a score in [0, 1], whatever the image size)."""
    if parameter not in BUDGET_PARAMETERS:
        return f"{value:g}"
    if norm == "l2":
        return _number(value * L2_TO_PAPER)
    if norm == "linf":
        return f"{round(value * LINF_LEVELS, PAPER_DECIMALS):g}/{LINF_LEVELS}"
    raise ConfigError(f"a budget {parameter} needs an l2 or linf norm, not {norm!r}")


def ours(value: float) -> str:
    return f"{value:.4g}"


def describe_attack(spec: AttackSpec) -> str:
    """``spec``'s budget in our units and the paper's, for the report's text."""
    if spec.kind == "none":
        return f"`{spec.name}` (clean inputs)"
    norm = NORM_TITLES.get(spec.norm or "", str(spec.norm))
    if spec.kind == "pgd":
        paper = paper_equivalent("eps", spec.norm, spec.eps)
        return f"`{spec.name}` ({norm} PGD, eps {ours(spec.eps)}; paper-equivalent {paper})"
    fg = paper_equivalent("eps_foreground", spec.norm, spec.eps_foreground)
    bg = paper_equivalent("eps_background", spec.norm, spec.eps_background)
    return (
        f"`{spec.name}` ({norm} dual, {{eps_F, eps_B}} = {{{ours(spec.eps_foreground)}, "
        f"{ours(spec.eps_background)}}}; paper-equivalent {{{fg}, {bg}}}; λ = {spec.salience_weight:g})"
    )


def sweep_axes(sweeps: Mapping[str, Mapping[str, Any]], params: Params) -> list[SweepAxis]:
    """Every sweep of ``tables.dual_perturbation.sweeps`` with its x values read from the attacks'
    params (scale resolved); a sweep must keep one norm and one attack kind, or its curve would
    mix the paper's figures."""
    axes: list[SweepAxis] = []
    for name, sweep in sweeps.items():
        parameter = str(sweep["parameter"])
        specs = [params.attack(attack) for attack in sweep["attacks"]]
        if parameter not in {f.name for f in dataclasses.fields(AttackSpec)}:
            raise ConfigError(f"tables.dual_perturbation.sweeps.{name}.parameter: unknown {parameter!r}")
        norms = {spec.norm for spec in specs}
        kinds = {spec.kind for spec in specs}
        if len(norms) != 1 or len(kinds) != 1 or None in norms:
            raise ConfigError(
                f"tables.dual_perturbation.sweeps.{name}: its attacks mix norms {sorted(map(str, norms))} "
                f"or kinds {sorted(kinds)}; one curve takes one norm and one kind"
            )
        points = sorted(((float(getattr(spec, parameter)), spec.name) for spec in specs), key=lambda p: p[0])
        axes.append(
            SweepAxis(
                name=name,
                parameter=parameter,
                norm=str(specs[0].norm),
                dual=specs[0].kind == "dual",
                attacks=tuple(attack for _, attack in points),
                x=tuple(x for x, _ in points),
            )
        )
    return axes


def required_pairs(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every (model, attack) the report reads: the main table's inputs and every sweep point."""
    attacks = [*spec["inputs"].values(), *(a for s in spec["sweeps"].values() for a in s["attacks"])]
    models = [roles[role] for roles in spec["datasets"].values() for role in ROLES]
    return list(dict.fromkeys((model, attack) for model in models for attack in attacks))


def _fs(evals: Mapping[tuple[str, str], dict[str, Any]], model: str, attack: str, key: str = FS_KEY) -> float:
    value = evals[(model, attack)].get(key)
    if value is None:
        raise DataError(
            f"{model}/{attack}.json: a dual-attack evaluation without {key!r}; "
            "delete it and re-run the evaluate stage"
        )
    return float(value)


def build_dual_table(
    evals: Mapping[tuple[str, str], dict[str, Any]], spec: Mapping[str, Any], params: Params
) -> DualTable:
    """``evals`` maps (model, attack) to an evaluation's metrics and must hold every pair of
    :func:`required_pairs`; ``spec`` is params' ``tables.dual_perturbation``."""
    datasets: Mapping[str, Mapping[str, str]] = spec["datasets"]
    inputs: Mapping[str, str] = spec["inputs"]
    input_specs = {kind: params.attack(inputs[kind]) for kind in INPUT_COLUMNS}
    sweeps = sweep_axes(spec["sweeps"], params)
    samples = sorted({int(evals[pair]["samples"]) for pair in required_pairs(spec)})

    rows: list[dict[str, Any]] = []
    for dataset, roles in datasets.items():
        for role, label in ROLES.items():
            model = roles[role]
            row: dict[str, Any] = {"dataset": dataset, "model": label, "model_key": model}
            for kind, column in INPUT_COLUMNS.items():
                row[column] = percent(evals[(model, inputs[kind])]["accuracy"])
            row[FS_COLUMN] = round(_fs(evals, model, inputs["dual"]), FS_DECIMALS)
            row["samples"] = evals[(model, inputs["natural"])]["samples"]
            rows.append(row)
    frame = pd.DataFrame(rows, columns=MAIN_COLUMNS)

    curves: dict[tuple[str, str], pd.DataFrame] = {}
    fs_curves: dict[tuple[str, str], pd.DataFrame] = {}
    fs_natural: dict[tuple[str, str], float] = {}
    for dataset, roles in datasets.items():
        for sweep in sweeps:
            acc = {PLOT_X: list(sweep.x)}
            for role in ROLES:
                acc[role] = [percent(evals[(roles[role], a)]["accuracy"]) for a in sweep.attacks]
            curves[(dataset, sweep.name)] = pd.DataFrame(acc, columns=[PLOT_X, *ROLES])
            if sweep.dual:
                fs = {PLOT_X: list(sweep.x)}
                for role in ROLES:
                    fs[role] = [round(_fs(evals, roles[role], a), FS_DECIMALS) for a in sweep.attacks]
                fs_curves[(dataset, sweep.name)] = pd.DataFrame(fs, columns=[PLOT_X, *ROLES])
                natural = [_fs(evals, roles[r], a, FS_NATURAL_KEY) for r in ROLES for a in sweep.attacks]
                fs_natural[(dataset, sweep.name)] = round(sum(natural) / len(natural), FS_DECIMALS)

    dual_specs = [params.attack(a) for s in sweeps if s.dual for a in s.attacks]
    dual_specs = [s for s in [input_specs["dual"], *dual_specs] if s.kind == "dual"]
    salience_of = {s.name: _salience_used(evals, datasets, s.name) for s in dual_specs}
    salience = sorted({m for used in salience_of.values() for m in used.split(" + ")})
    return DualTable(
        frame=frame,
        sweeps=sweeps,
        curves=curves,
        fs_curves=fs_curves,
        fs_natural=fs_natural,
        inputs=input_specs,
        salience=salience,
        samples=samples,
        salience_of=salience_of,
    )


def _salience_used(
    evals: Mapping[tuple[str, str], Any], datasets: Mapping[str, Mapping[str, str]], attack: str
) -> str:
    """The salience model(s) the evaluations of ``attack`` recorded, joined by " + " when the
    models' evaluations differ (some were made before a change of params)."""
    used = {
        evals[(roles[role], attack)].get("salience_model", LEGACY_SALIENCE)
        for roles in datasets.values()
        for role in ROLES
        if (roles[role], attack) in evals
    }
    return " + ".join(sorted(used))


def _record_value(record: Mapping[str, Any], path: Path, *keys: str) -> Any:
    node: Any = record
    for depth, key in enumerate(keys):
        if not isinstance(node, Mapping) or key not in node:
            where = ".".join(keys[: depth + 1])
            raise DataError(
                f"{path}: no {where!r} in the salience-quality record; delete it and re-run the "
                "salience_quality stage"
            )
        node = node[key]
    return node


def load_salience_agreement(path: Path, datasets: list[str], used: list[str]) -> SalienceAgreement:
    """The salience_quality stage's record at ``path`` for the report's ``datasets``; ``used``
    are the salience models of its dual attacks, each of which the record must hold (a model
    the report cannot vouch for would be named without its agreement)."""
    if not path.is_file():
        raise DataError(f"{path}: salience-quality record missing; run the salience_quality stage")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path}: not valid JSON ({exc}); delete it and re-run the salience_quality stage"
        ) from None
    rows: list[dict[str, Any]] = []
    for dataset in datasets:
        models: Mapping[str, Any] = _record_value(record, path, "datasets", dataset, "models")
        missing = [m for m in used if m not in models]
        if missing:
            raise DataError(
                f"{path}: datasets.{dataset} has no record of salience model(s) {missing} that the dual "
                f"attacks use (it has {sorted(models)}); re-run the salience_quality stage"
            )
        for model in sorted(models, key=lambda m: (m not in used, m)):
            keys = ("datasets", dataset, "models", model)
            fs = float(_record_value(record, path, *keys, "mean_foreground_score"))
            fraction = float(_record_value(record, path, *keys, "mean_foreground_fraction"))
            images = int(_record_value(record, path, *keys, "images"))
            auc = _record_value(record, path, *keys, "auc")
            auc_images = int(_record_value(record, path, *keys, "auc", "images"))
            above = int(_record_value(record, path, *keys, "images_fs_above_fraction"))
            rows.append(
                {
                    "dataset": dataset,
                    "salience model": model,
                    "used": "yes" if model in used else "",
                    "images": images,
                    "mean FS": round(fs, FS_DECIMALS),
                    "mean foreground fraction": round(fraction, FS_DECIMALS),
                    "FS - fraction": round(fs - fraction, FS_DECIMALS),
                    "images FS > fraction": f"{above}/{images}",
                    "mean AUC": None if auc.get("mean") is None else round(float(auc["mean"]), FS_DECIMALS),
                    "AUC images": auc_images,
                }
            )
    return SalienceAgreement(
        frame=pd.DataFrame(rows, columns=SALIENCE_COLUMNS),
        preferred=str(_record_value(record, path, "preferred", "model")),
        criterion=str(_record_value(record, path, "preferred", "criterion")),
        source=str(path),
    )


def _title(dataset: str) -> str:
    name = DATASET_TITLES.get(dataset)
    return f"{dataset} ({name})" if name else dataset


def sweep_frame(table: DualTable, sweep: SweepAxis) -> pd.DataFrame:
    """One sweep as a markdown-ready frame: a row per point (attack, our value, the paper's),
    accuracy % per dataset x model, and FS per dataset x model for a dual sweep."""
    label = PARAMETER_TITLES[sweep.parameter]
    data: dict[str, list[Any]] = {
        "attack": list(sweep.attacks),
        label: [ours(x) for x in sweep.x],
        f"paper {label}": [paper_equivalent(sweep.parameter, sweep.norm, x) for x in sweep.x],
    }
    datasets = list(dict.fromkeys(ds for ds, _ in table.curves))
    for dataset in datasets:
        curve = table.curves[(dataset, sweep.name)]
        for role, model in ROLES.items():
            data[f"{dataset} {model} %"] = curve[role].tolist()
    if sweep.dual:
        for dataset in datasets:
            fs = table.fs_curves[(dataset, sweep.name)]
            for role, model in ROLES.items():
                data[f"{dataset} {model} FS"] = fs[role].tolist()
    return pd.DataFrame(data)


def _salience_title(model: str) -> str:
    return " + ".join(f"{SALIENCE_TITLES.get(m, m)} (`{m}`)" for m in model.split(" + "))


def salience_lines(table: DualTable, agreement: SalienceAgreement) -> list[str]:
    """Which salience model each dual attack used, and how well each model agrees with the
    ground-truth masks (the salience_quality record)."""
    by_model: dict[str, list[str]] = {}
    for attack, model in table.salience_of.items():
        by_model.setdefault(model, []).append(attack)
    if len(by_model) == 1:
        ((model, attacks),) = by_model.items()
        used = f"all {len(attacks)} dual attacks of this report use {_salience_title(model)}"
    else:
        used = (
            "; ".join(
                f"{_salience_title(m)}: {', '.join(f'`{a}`' for a in attacks)}"
                for m, attacks in sorted(by_model.items())
            )
            or "no dual attack"
        )
    preferred = f"The record prefers `{agreement.preferred}` ({agreement.criterion})"
    if set(by_model) - {agreement.preferred}:
        preferred += (
            "; **the dual evaluations ran with another model**: they predate the current default or "
            "params.yaml selects another, and rerunning them applies the preferred one"
        )
    return [
        f"Salience model: {used}, not the paper's {PAPER_SALIENCE}, so absolute FS values are not "
        "comparable with the paper's; the direction over λ is.",
        "",
        f"Agreement of each salience model with the ground-truth masks on the clean test images "
        f"(`{agreement.source}`): its mean FS against the mean foreground fraction (the FS of a "
        "uniform map; FS above it means the model ranks the foreground above the background), and "
        "the mean per-image AUC of salience vs mask (the chance that a foreground pixel is more "
        "salient than a background one; 0.5 is chance; `AUC images` leaves out images whose mask is "
        f"all foreground or all background). `used`: the model of the dual attacks. {preferred}.",
        "",
        markdown_table(agreement.frame),
        "",
    ]


def to_markdown(
    table: DualTable,
    claims: list[ClaimRecord],
    *,
    scale: str,
    level: str,
    figures: list[Path],
    plots: list[Path],
    agreement: SalienceAgreement,
    claims_path: Path,
) -> str:
    count = "/".join(str(n) for n in table.samples) or "?"
    lines = [
        "# Dual-perturbation attacks: Clean, AT-PGD and AT-Dual",
        "",
        f"Scale: **{scale}**. Paper: “Towards Robustness against Unsuspicious Adversarial Examples” "
        "(ICLR 2021 submission), §5.2-5.4 and Figs. 3-5 (ImageNet-10 at 224x224; the paper reports "
        "figures only, so below are its statements and our verdicts, computed from our numbers). "
        f"Accuracies are in % on the first {count} test images (`samples`); FS is the mean foreground "
        "score of the adversarial examples (§3.3).",
        "",
        f"Budgets: l2 budgets are the paper's ImageNet-224 values x {OUR_IMAGE_SIDE}/{PAPER_IMAGE_SIDE} "
        f"(divided by {L2_TO_PAPER:g}) for our {OUR_IMAGE_SIDE}x{OUR_IMAGE_SIDE} images; l_inf budgets are "
        f"unchanged and shown in 1/{LINF_LEVELS}. `paper …` columns give the paper-equivalent values.",
        "",
        "Columns: " + "; ".join(f"{INPUT_COLUMNS[k]}: {describe_attack(s)}" for k, s in table.inputs.items()),
        "",
        "## Main table",
        "",
        markdown_table(table.frame),
        "",
        "## The paper's claims and our verdicts",
        "",
        *salience_lines(table, agreement),
        "Before any FS claim is scored, `D0` checks on the clean images of the dual evaluation that the "
        "salience model ranks the foreground above the background (their mean FS above the foreground "
        "fraction); where it does not, the FS claims are degenerate.",
        "",
        f"Each outcome comes from a {level} interval (`{claims_path.as_posix()}` holds the "
        "records). `D1`/`D2`: l2 dual and strong l2 PGD; `D3`/`D4`: FS over λ and its floor; `D5`: clean "
        "accuracy; `D6`/`D7`: l∞ PGD and l∞ dual (Fig. 5); `D8`: a moderate λ keeps the attack's strength; "
        "`D11`: AT-PGD only marginally above Clean under large l∞ dual distortions; `D12`: the dual attack "
        "stronger than PGD at the same foreground budget; `D13`: AT-Dual's clean-accuracy cost against "
        "Clean.",
        *claim_section_lines(claims),
    ]
    lines += ["## Sweeps", ""]
    for sweep in table.sweeps:
        lines += [
            f"### `{sweep.name}`: {sweep.title}",
            "",
            f"Accuracy in % (`… %`){' and mean FS (`… FS`)' if sweep.dual else ''} per dataset and model.",
            "",
            markdown_table(sweep_frame(table, sweep)),
            "",
        ]
    folders = sorted({str(path.parent) for path in plots})
    lines += ["## Figures and plot data", ""]
    lines += [f"- `{path}`: every sweep's accuracy (and FS vs λ) for one dataset" for path in figures]
    lines += [
        f"- {len(plots)} CSV files for `dvc plots` in {', '.join(f'`{f}`' for f in folders) or '–'}: "
        f"`<dataset>__<sweep>.csv` (accuracy %) and `<dataset>__<sweep>__{FS_SUFFIX}.csv` (mean FS, "
        f"dual sweeps), columns {', '.join(f'`{c}`' for c in (PLOT_X, *ROLES))} (`{PLOT_X}`: our value)",
        "",
    ]
    return "\n".join(lines)


def _tick_labels(sweep: SweepAxis) -> list[str]:
    """Our value over the paper-equivalent in brackets (λ: ours only, it needs no rescaling)."""
    if sweep.parameter not in BUDGET_PARAMETERS:
        return [f"{x:g}" for x in sweep.x]
    return [f"{ours(x)}\n({paper_equivalent(sweep.parameter, sweep.norm, x)})" for x in sweep.x]


def _draw_curves(ax: Axes, sweep: SweepAxis, curve: pd.DataFrame, ylabel: str) -> None:
    for role, label in ROLES.items():
        ax.plot(curve[PLOT_X], curve[role], label=label, **ROLE_STYLES[role])
    if sweep.parameter == SALIENCE_PARAMETER:
        ax.set_xscale("symlog", linthresh=SYMLOG_LINTHRESH)
    ax.set_xticks(list(sweep.x))
    ax.set_xticklabels(_tick_labels(sweep), fontsize=7)
    unit = "" if sweep.parameter not in BUDGET_PARAMETERS else ": ours (paper-equivalent)"
    ax.set_xlabel(f"{PARAMETER_MATH[sweep.parameter]}{unit}", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.grid(True, alpha=0.3)


def save_dataset_figure(path: Path, dataset: str, table: DualTable) -> None:
    """One PNG per dataset: a panel per sweep (accuracy % vs the swept parameter, a line per
    model), plus FS vs λ for the salience sweep (the paper's Fig. 3, left)."""
    panels: list[tuple[SweepAxis, bool]] = [(s, False) for s in table.sweeps]
    panels += [(s, True) for s in table.sweeps if s.dual and s.parameter == SALIENCE_PARAMETER]
    columns = min(len(panels), MAX_PANEL_COLUMNS)
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(columns * PANEL_INCHES[0], rows * PANEL_INCHES[1]), squeeze=False
    )
    for ax, (sweep, is_fs) in zip(axes.flat, panels, strict=False):
        kind = "dual" if sweep.dual else "PGD"
        what = f"{NORM_MATH[sweep.norm]} {kind}"
        if is_fs:
            fs = table.fs_curves[(dataset, sweep.name)]
            _draw_curves(ax, sweep, fs, "foreground score")
            ax.axhline(PAPER_FS_FLOOR, color="black", linestyle="--", linewidth=0.8)
            natural = table.fs_natural[(dataset, sweep.name)]
            ax.axhline(natural, color="tab:green", linestyle=":", linewidth=1.0, label="clean images")
            ax.set_ylim(*FS_LIMITS)
            ax.set_title(
                f"{what}: FS vs {PARAMETER_MATH[sweep.parameter]} (paper {sweep.figure})", fontsize=9
            )
            ax.legend(fontsize=6)
        else:
            _draw_curves(ax, sweep, table.curves[(dataset, sweep.name)], "accuracy %")
            ax.set_ylim(*PERCENT_LIMITS)
            param = PARAMETER_MATH[sweep.parameter]
            ax.set_title(f"{what}: accuracy vs {param} (paper {sweep.figure})", fontsize=9)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{_title(dataset)}: dual-perturbation report", fontsize=11)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        # No software version in the file: the same numbers give the same bytes.
        fig.savefig(tmp, format="png", dpi=FIGURE_DPI, metadata={"Software": None})
    plt.close(fig)


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_open(path) as fh:
        frame.to_csv(fh, index=False, lineterminator="\n")


def plot_paths(table: DualTable, plots: Path) -> dict[Path, pd.DataFrame]:
    """``<plots>/<dataset>__<sweep>.csv`` (accuracy %) and, for dual sweeps,
    ``<plots>/<dataset>__<sweep>__foreground_score.csv`` (mean FS), for ``dvc plots``."""
    files = {plots / f"{dataset}__{sweep}.csv": curve for (dataset, sweep), curve in table.curves.items()}
    files.update(
        {plots / f"{ds}__{sweep}__{FS_SUFFIX}.csv": curve for (ds, sweep), curve in table.fs_curves.items()}
    )
    return files


def write_dual_report(
    spec: dict[str, Any],
    params: Params,
    evals_dir: Path,
    out: Path,
    figures: Path,
    plots: Path,
    scale: str,
    *,
    datasets_dir: Path,
    claims_path: Path,
    salience_path: Path,
) -> DualTable:
    """Build the report from ``spec`` (params' ``tables.dual_perturbation``) and write ``out``.csv,
    ``out``.md, ``<figures>/<dataset>.png``, the plot CSVs under ``plots`` and the claim records
    ``claims_path``; ``salience_path`` is the salience_quality stage's record. Every evaluation
    the report reads must exist (a missing one is a DataError naming its file), and nothing is
    written before all of them are read and judged."""
    pairs = required_pairs(spec)
    evals = load_evals(evals_dir, pairs)
    table = build_dual_table(evals, spec, params)
    agreement = load_salience_agreement(salience_path, list(spec["datasets"]), table.salience)
    settings = ClaimSettings.from_params(params.raw)
    facts = {dataset: dataset_facts(datasets_dir, dataset) for dataset in spec["datasets"]}
    claims = dual_claims(
        spec["datasets"],
        spec["inputs"],
        table.sweeps,
        load_evaluations(evals_dir, pairs),
        facts,
        settings,
        Feasibility(evals_dir, datasets_dir, settings.alpha),
    )
    figures.mkdir(parents=True, exist_ok=True)
    plots.mkdir(parents=True, exist_ok=True)
    figure_files = [figures / f"{dataset}.png" for dataset in spec["datasets"]]
    for dataset, path in zip(spec["datasets"], figure_files, strict=True):
        save_dataset_figure(path, dataset, table)
    plot_files = plot_paths(table, plots)
    for path, frame in plot_files.items():
        _write_csv(path, frame)
    write_claims(claims_path, ClaimsFile.of(PAPER, TITLE, scale, claims))
    markdown = to_markdown(
        table,
        claims,
        scale=scale,
        level=settings.level,
        figures=figure_files,
        plots=list(plot_files),
        agreement=agreement,
        claims_path=claims_path,
    )
    write_table(out, table.frame, markdown)
    return table
