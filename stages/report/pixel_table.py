"""The pixel-space report (Wang et al., "Analyzing Adversarial Robustness of Deep Neural Networks
in Pixel Space: a Semantic Perspective"): few-pixel differential-evolution attacks on the whole
image, its foreground and its background, laid out like the paper's Tables I, II and IV with the
paper's numbers beside ours, our verdicts on its claims (stages/claims/pixel_space.py), and its
Figs. 3-6 redrawn from our evaluations.

Ours beside them (no paper has it): ``tables.pixel_space.searches`` lists the foreground and
background attacks again under another DE search (the indexed search, positions inside the
region, against the paper's composite search of §III-D); the report sets success by region side
by side for each search, over both denominators (every attacked image, the paper's; the
correctly classified ones, ours), draws it, and re-tests the paper's claim under each search.
Every table says which search, strategy and attacked set its evaluations ran (read from them).

Missing evaluations do not stop the report: a pixel attack on three models at three pixel
counts is long to run, and a partial report (listing what is missing) is more useful than none.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from stages.claims.evidence import evaluation as claim_evaluation  # noqa: E402
from stages.claims.feasibility import Feasibility  # noqa: E402
from stages.claims.pixel_space import PAPER as PAPER_KEY  # noqa: E402
from stages.claims.pixel_space import TITLE as PAPER_TITLE  # noqa: E402
from stages.claims.pixel_space import pixel_claims  # noqa: E402
from stages.claims.pixel_space_base import reached_any  # noqa: E402
from stages.claims.record import ClaimRecord, ClaimsFile, write_claims  # noqa: E402
from stages.claims.render import claim_section_lines  # noqa: E402
from stages.claims.settings import ClaimSettings  # noqa: E402
from stages.claims.stats import Outcome  # noqa: E402
from stages.report.evals import eval_path, load_evals  # noqa: E402
from stages.report.markdown import MISSING, text_table, write_table  # noqa: E402
from stages.utils.errors import ConfigError, DataError  # noqa: E402
from stages.utils.io import atomic_path  # noqa: E402

# params `inputs`: the clean evaluation's key, and `<region>_<pixels>` for the attacks;
# `searches`: search -> `<region>_<pixels>` -> attack. A row's `spec_set` says which it fills.
NATURAL_INPUT = "natural"
MAIN_SET = "inputs"
INPUT_PATTERN = re.compile(r"^(?P<region>[a-z]+)_(?P<pixels>[1-9][0-9]*)$")
# The paper's "original" image is the evaluate stage's "full" region.
EVAL_REGIONS = {"original": "full"}
ORIGINAL, FOREGROUND, BACKGROUND = "original", "foreground", "background"

ROLE_TITLES = {"allconv": "AllConv", "nin": "NiN", "vgg16": "VGG-16"}
REGION_TITLES = {ORIGINAL: "Original", FOREGROUND: "Foreground", BACKGROUND: "Background"}
DATASET_TITLES = {"cifar10_grabcut": "CIFAR-10 with GrabCut masks"}
# Table II's metrics, in the paper's row order: csv column -> the paper's name.
METRICS = {
    "untargeted1": "Untargeted1",
    "confidence_u": "Confidence_u",
    "untargeted2": "Untargeted2",
    "targeted": "Targeted",
    "confidence_t": "Confidence_t",
}
CSV_COLUMNS = [
    "dataset",
    "role",
    "model",
    "region",
    "pixels",
    "spec_set",  # `inputs` (Table II's columns) or `searches.<search>` (ours)
    # How the evaluation ran, as it recorded it: search, DE strategy, attacked set (all | correct).
    "search",
    "strategy",
    "attacked_set",
    "samples",
    "attacked",
    "correct_attacked",
    "natural_accuracy",
    *METRICS,  # untargeted1 = successes / every attacked image (the paper's, under attacked_set all)
    "untargeted1_correct",  # successes / attacked images classified correctly (ours)
    # untargeted2 is the paper's: a target reached "at least for one target class" (§IV-C); ours
    # counts an image whose label some targeted run changed, to the target or not.
    "untargeted2_label_change",
    "idle_query_share",  # % of model evaluations spent on the clean image (composite search)
    "mean_generations",  # counted from 0 (the initial population), ours
    "mean_generations_from_1",  # counted from 1, as the paper's Table IV counts
    "mean_queries",
    "targeted_images",
    "paper_untargeted1",
    "paper_untargeted2",
    "paper_targeted",
    "paper_confidence_u",
    "paper_confidence_t",
    "paper_mean_generations",
]
# Counts that pandas would otherwise turn into floats (85.0) as soon as one row lacks them.
COUNT_COLUMNS = ["samples", "attacked", "correct_attacked", "targeted_images"]
TEXT_COLUMNS = ["dataset", "role", "model", "region", "spec_set", "search", "strategy", "attacked_set"]
# Evaluations written before the search was an option: they ran the indexed search (positions
# indexing the region's pixels) on the correctly classified images only, and recorded neither.
LEGACY_SEARCH, LEGACY_ATTACKED_SET = "indexed", "correct"
ATTACKED_SET_TEXT = {
    "all": "every image, y = the model's clean prediction (the paper's)",
    "correct": "the correctly classified images, y = the true label (ours)",
}
PERCENT_DECIMALS = 2
GENERATION_DECIMALS = 2
QUERY_DECIMALS = 1
PERCENT = 100.0


@dataclass(frozen=True)
class PaperModel:
    """One of the paper's CIFAR-10 models: Table I's accuracy, Table II's metrics (in %) at
    PAPER_PIXELS pixels per region, Table IV's mean generations at PAPER_GENERATION_PIXELS."""

    accuracy: float
    table_ii: Mapping[str, Mapping[str, tuple[float, float, float]]]  # metric -> region -> per pixels
    generations: Mapping[str, float]  # region -> mean generations to success


PAPER_PIXELS = (1, 3, 5)
PAPER_GENERATION_PIXELS = 1
PAPER_IMAGES = 500  # the paper's random CIFAR-10 test images per model (§IV-B)
# Wang et al., Table I (test accuracy %), Table II (CIFAR-10, %) and Table IV (mean generations,
# 1 pixel), keyed by our params roles and regions.
PAPER: dict[str, PaperModel] = {
    "allconv": PaperModel(
        accuracy=85.71,
        table_ii={
            "untargeted1": {
                ORIGINAL: (12.80, 47.00, 51.20),
                FOREGROUND: (11.80, 40.20, 41.20),
                BACKGROUND: (6.20, 19.40, 20.60),
            },
            "confidence_u": {
                ORIGINAL: (74.01, 70.12, 75.35),
                FOREGROUND: (71.38, 72.75, 77.13),
                BACKGROUND: (74.71, 72.32, 80.09),
            },
            "untargeted2": {
                ORIGINAL: (12.60, 48.20, 55.00),
                FOREGROUND: (11.80, 43.60, 45.80),
                BACKGROUND: (6.60, 22.20, 24.00),
            },
            "targeted": {
                ORIGINAL: (2.93, 13.11, 16.84),
                FOREGROUND: (2.91, 11.42, 13.27),
                BACKGROUND: (1.78, 5.51, 6.84),
            },
            "confidence_t": {
                ORIGINAL: (67.51, 61.75, 65.99),
                FOREGROUND: (66.72, 64.05, 68.58),
                BACKGROUND: (68.09, 66.51, 72.07),
            },
        },
        generations={ORIGINAL: 1.63, FOREGROUND: 1.77, BACKGROUND: 3.03},
    ),
    "nin": PaperModel(
        accuracy=86.55,
        table_ii={
            "untargeted1": {
                ORIGINAL: (21.00, 67.80, 75.40),
                FOREGROUND: (19.20, 59.80, 60.00),
                BACKGROUND: (9.80, 35.60, 35.20),
            },
            "confidence_u": {
                ORIGINAL: (66.40, 63.77, 66.23),
                FOREGROUND: (63.67, 64.25, 69.29),
                BACKGROUND: (64.14, 64.65, 70.14),
            },
            "untargeted2": {
                ORIGINAL: (21.00, 69.60, 76.80),
                FOREGROUND: (19.40, 64.00, 69.20),
                BACKGROUND: (11.40, 40.80, 45.00),
            },
            "targeted": {
                ORIGINAL: (5.91, 30.62, 38.56),
                FOREGROUND: (5.56, 25.07, 28.49),
                BACKGROUND: (2.71, 13.84, 16.07),
            },
            "confidence_t": {
                ORIGINAL: (59.50, 53.41, 54.40),
                FOREGROUND: (59.57, 54.71, 57.72),
                BACKGROUND: (59.79, 56.41, 60.70),
            },
        },
        generations={ORIGINAL: 1.36, FOREGROUND: 1.48, BACKGROUND: 2.45},
    ),
    "vgg16": PaperModel(
        accuracy=85.65,
        table_ii={
            "untargeted1": {
                ORIGINAL: (43.40, 88.40, 92.00),
                FOREGROUND: (41.60, 79.60, 79.00),
                BACKGROUND: (18.20, 51.40, 48.20),
            },
            "confidence_u": {
                ORIGINAL: (70.06, 69.98, 73.80),
                FOREGROUND: (70.00, 71.62, 74.82),
                BACKGROUND: (67.52, 68.36, 72.40),
            },
            "untargeted2": {
                ORIGINAL: (44.60, 90.80, 93.20),
                FOREGROUND: (42.80, 87.00, 90.60),
                BACKGROUND: (20.20, 61.60, 66.80),
            },
            "targeted": {
                ORIGINAL: (22.78, 68.13, 70.80),
                FOREGROUND: (22.33, 61.24, 60.64),
                BACKGROUND: (8.82, 35.04, 36.80),
            },
            "confidence_t": {
                ORIGINAL: (59.38, 51.55, 53.66),
                FOREGROUND: (59.94, 53.39, 57.85),
                BACKGROUND: (58.40, 54.54, 59.26),
            },
        },
        generations={ORIGINAL: 1.45, FOREGROUND: 1.69, BACKGROUND: 4.70},
    ),
}
# §IV-C: the average relative drop of the 1-pixel success rate from the whole image to the
# foreground / background over the three models, in % (the text quotes these, Table II gives them).
PAPER_QUOTED_DROPS = {
    "untargeted1": {FOREGROUND: 6.84, BACKGROUND: 54.32},
    "targeted": {FOREGROUND: 2.86, BACKGROUND: 51.56},
}

# Figures.
FIGURE_DPI = 100
PANEL_INCHES = (4.2, 3.2)
HEATMAP_INCHES = (3.4, 3.2)
REGION_COLORS = {ORIGINAL: "tab:blue", FOREGROUND: "tab:orange", BACKGROUND: "tab:green"}
SEARCH_HATCHES = ("", "//", "..", "xx")  # the main columns' search plain, each compared one hatched
FALLBACK_COLORS = ("tab:red", "tab:purple", "tab:brown", "tab:pink")
BAR_GROUP_WIDTH = 0.85
PIXEL_ALPHA_RANGE = (1.0, 0.4)  # the fewest pixels darkest, so one region's bars read as one family
CURVE_ALPHA = 0.12  # one image's fitness curve: faint, as in the paper's Fig. 6
CURVE_WIDTH = 0.6
MEAN_WIDTH = 2.0
HEATMAP_FONT = 5
HEATMAP_DARK = 0.5  # cells darker than half the scale take white counts
FITNESS_LIMITS = (0.0, 1.0)


@dataclass(frozen=True)
class PixelInput:
    """One attack column of the spec: ``column`` = ``<region>_<pixels>`` names ``attack``;
    ``search``: the search it must have run (a ``searches`` entry), None for ``inputs``."""

    column: str
    region: str
    pixels: int
    attack: str
    search: str | None = None

    @property
    def spec_set(self) -> str:
        return MAIN_SET if self.search is None else f"searches.{self.search}"

    @property
    def where(self) -> str:
        return f"tables.pixel_space.{self.spec_set}.{self.column}"


@dataclass(frozen=True)
class Missing:
    """An evaluation the spec names that is not on disk; the report lists it instead of failing."""

    role: str
    model: str
    column: str  # `natural`, `<region>_<pixels>`, or `searches.<search>.<region>_<pixels>`
    attack: str
    path: Path

    @property
    def reason(self) -> str:
        return f"evaluation not found: {self.path}"


@dataclass(frozen=True)
class PixelTable:
    """Everything the report draws on: the long table for the csv and the markdown, and the raw
    ``pixel_attack`` blocks, whose per-image records the figures need."""

    dataset: str
    roles: dict[str, str]  # role -> model
    inputs: list[PixelInput]
    natural: str | None  # the clean evaluation's attack name
    frame: pd.DataFrame  # CSV_COLUMNS, a row per (role, region, pixels)
    # (role, region, pixels) -> the evaluation's "pixel_attack" block
    attacks: dict[tuple[str, str, int], dict[str, Any]]
    natural_evals: dict[str, dict[str, Any]]  # role -> the clean evaluation
    missing: list[Missing]
    fitness_images: int
    # Ours: search -> its columns, and search -> (role, region, pixels) -> the block.
    searches: dict[str, list[PixelInput]]
    search_attacks: dict[str, dict[tuple[str, str, int], dict[str, Any]]]
    comparison: pd.DataFrame  # CSV_COLUMNS, a row per (search, role, region, pixels) of `searches`

    @property
    def csv_frame(self) -> pd.DataFrame:
        """Every row the csv holds: Table II's columns, then the compared searches'."""
        if self.comparison.empty:
            return self.frame
        return pd.concat([self.frame, self.comparison], ignore_index=True)

    @property
    def main_search(self) -> str:
        """The search of Table II's region columns as their evaluations recorded it (the paper's:
        composite), ``inputs`` when they disagree or none is there."""
        ran = {str(b.get("search", LEGACY_SEARCH)) for (_, r, _), b in self.attacks.items() if r != ORIGINAL}
        return ran.pop() if len(ran) == 1 else MAIN_SET

    @property
    def regions(self) -> list[str]:
        return list(dict.fromkeys(p.region for p in self.inputs))

    @property
    def pixels(self) -> list[int]:
        return sorted({p.pixels for p in self.inputs})


def role_title(role: str) -> str:
    return ROLE_TITLES.get(role, role)


def region_title(region: str) -> str:
    return REGION_TITLES.get(region, region.capitalize())


def percent(fraction: float | None) -> float | None:
    return None if fraction is None else round(PERCENT * fraction, PERCENT_DECIMALS)


def rate(successes: int, total: int) -> float | None:
    """A success rate, or None when nothing was attacked (0/0 is no evidence, not 0%)."""
    return successes / total if total else None


def _round(value: float | None, decimals: int) -> float | None:
    return None if value is None else round(float(value), decimals)


def _is_number(value: Any) -> bool:
    """False for every way an absent value reaches us: None, NaN, and pandas' NA in count columns."""
    return value is not None and not pd.isna(value)


def fmt(value: Any) -> str:
    """A table number with two decimals, or the markdown tables' dash when absent."""
    return f"{float(value):.2f}" if _is_number(value) else MISSING


def parse_inputs(spec: Mapping[str, Any]) -> tuple[str | None, list[PixelInput]]:
    """The spec's clean evaluation and its attack columns; a key other than ``natural`` or
    ``<region>_<pixels>`` is a ConfigError, since its region and pixel count are read from it."""
    natural: str | None = None
    inputs: list[PixelInput] = []
    for column, attack in spec["inputs"].items():
        if column == NATURAL_INPUT:
            natural = str(attack)
            continue
        match = INPUT_PATTERN.match(column)
        if match is None:
            raise ConfigError(
                f"tables.pixel_space.inputs.{column}: expected `{NATURAL_INPUT}` or `<region>_<pixels>`"
            )
        inputs.append(PixelInput(column, match["region"], int(match["pixels"]), str(attack)))
    return natural, inputs


def parse_searches(spec: Mapping[str, Any]) -> dict[str, list[PixelInput]]:
    """``searches``: search -> its ``<region>_<pixels>`` columns (none when the spec has none)."""
    searches: dict[str, list[PixelInput]] = {}
    for search, columns in (spec.get("searches") or {}).items():
        inputs = []
        for column, attack in columns.items():
            match = INPUT_PATTERN.match(column)
            if match is None:
                where = f"tables.pixel_space.searches.{search}.{column}"
                raise ConfigError(f"{where}: expected `<region>_<pixels>`")
            inputs.append(PixelInput(column, match["region"], int(match["pixels"]), str(attack), str(search)))
        searches[str(search)] = inputs
    return searches


def _dataset(spec: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """The one dataset the models were attacked on; several would need one figure set each."""
    datasets = spec["datasets"]
    if len(datasets) != 1:
        raise ConfigError(f"tables.pixel_space.datasets: expected one dataset, got {sorted(datasets)}")
    (dataset, roles), *_ = datasets.items()
    return str(dataset), {str(role): str(model) for role, model in roles.items()}


def _load(evals_dir: Path, model: str, attack: str) -> dict[str, Any] | None:
    if not eval_path(evals_dir, model, attack).is_file():
        return None
    return load_evals(evals_dir, [(model, attack)])[(model, attack)]


def _pixel_block(evaluation: dict[str, Any], path: Path, pixel_input: PixelInput) -> dict[str, Any]:
    """The evaluation's ``pixel_attack`` block, checked against the column it fills: a stale
    file from another attack would otherwise put its numbers in the wrong cell."""
    block = evaluation.get("pixel_attack")
    if not isinstance(block, dict):
        raise DataError(f"{path}: no `pixel_attack` block; is `{pixel_input.attack}` a kind de attack?")
    region = EVAL_REGIONS.get(pixel_input.region, pixel_input.region)
    if int(block["pixels"]) != pixel_input.pixels or block["region"] != region:
        raise DataError(
            f"{path}: a {block['pixels']}-pixel attack on region {block['region']!r}, but "
            f"{pixel_input.where} expects {pixel_input.pixels} on {region!r}; "
            "re-run the evaluate stage"
        )
    ran = block.get("search", LEGACY_SEARCH)
    if pixel_input.search is not None and ran != pixel_input.search:
        raise DataError(
            f"{path}: an attack with the {ran!r} search, but {pixel_input.where} compares the "
            f"{pixel_input.search!r} search; re-run the evaluate stage"
        )
    return block


def paper_value(role: str, metric: str, region: str, pixels: int) -> float | None:
    paper = PAPER.get(role)
    if paper is None or pixels not in PAPER_PIXELS:
        return None
    values = paper.table_ii.get(metric, {}).get(region)
    return None if values is None else values[PAPER_PIXELS.index(pixels)]


def paper_generations(role: str, region: str, pixels: int) -> float | None:
    paper = PAPER.get(role)
    if paper is None or pixels != PAPER_GENERATION_PIXELS:
        return None
    return paper.generations.get(region)


def measured(block: dict[str, Any] | None) -> dict[str, float | int | None]:
    """Our Table II / IV numbers from one ``pixel_attack`` block (rates recomputed from counts,
    so they do not inherit the evaluation's rounding); all None without a block."""
    keys = [
        *METRICS,
        "search",
        "strategy",
        "attacked_set",
        "attacked",
        "correct_attacked",
        "natural_accuracy",
        "untargeted1_correct",
        "untargeted2_label_change",
        "idle_query_share",
        "mean_generations",
        "mean_generations_from_1",
        "mean_queries",
        "targeted_images",
    ]
    if block is None:
        return dict.fromkeys(keys)
    attacked = int(block["attacked"])
    untargeted = block["untargeted"]
    targeted = block.get("targeted")
    # Older evaluations attacked the correctly classified images only: both denominators are one.
    correct_attacked = int(block.get("correct_attacked", attacked))
    correct_successes = int(untargeted.get("correct_successes", untargeted["successes"]))
    values: dict[str, Any] = {
        "search": block.get("search", LEGACY_SEARCH),
        "strategy": block.get("strategy"),
        "attacked_set": block.get("attacked_set", LEGACY_ATTACKED_SET),
        "attacked": attacked,
        "correct_attacked": correct_attacked,
        "natural_accuracy": percent(block.get("natural_accuracy")),
        "untargeted1": percent(rate(int(untargeted["successes"]), attacked)),
        "untargeted1_correct": percent(rate(correct_successes, correct_attacked)),
        "idle_query_share": percent(untargeted.get("idle_query_share", 0.0)),
        "confidence_u": percent(untargeted.get("confidence")),
        "mean_generations": _round(untargeted.get("mean_generations"), GENERATION_DECIMALS),
        "mean_generations_from_1": _round(_plus_one(untargeted.get("mean_generations")), GENERATION_DECIMALS),
        "mean_queries": _round(untargeted.get("mean_queries"), QUERY_DECIMALS),
        "untargeted2": None,
        "untargeted2_label_change": None,
        "targeted": None,
        "confidence_t": None,
        "targeted_images": None,
    }
    if targeted:
        values.update(
            untargeted2=percent(reached_any(targeted)),
            untargeted2_label_change=percent(targeted.get("untargeted_success_rate")),
            targeted=percent(rate(int(targeted["successes"]), int(targeted["pairs"]))),
            confidence_t=percent(targeted.get("confidence")),
            targeted_images=int(targeted["images"]),
        )
    return values


def _plus_one(generations: float | None) -> float | None:
    """Generations as the paper counts them: its smallest means (1.36, NiN; 1.00, ResNet-50) put
    the initial population at generation 1, where ours counts 0."""
    return None if generations is None else float(generations) + 1.0


def _row(
    dataset: str,
    role: str,
    model: str,
    pixel_input: PixelInput,
    evaluation: dict[str, Any] | None,
    block: dict[str, Any] | None,
) -> dict[str, Any]:
    region, k = pixel_input.region, pixel_input.pixels
    row: dict[str, Any] = {
        "dataset": dataset,
        "role": role,
        "model": model,
        "region": region,
        "pixels": k,
        "spec_set": pixel_input.spec_set,
        "samples": None if evaluation is None else int(evaluation["samples"]),
    }
    row.update(measured(block))
    row.update({f"paper_{metric}": paper_value(role, metric, region, k) for metric in METRICS})
    row["paper_mean_generations"] = paper_generations(role, region, k)
    return row


def build_pixel_table(spec: Mapping[str, Any], evals_dir: Path) -> PixelTable:
    """Read every evaluation ``spec`` names (absent ones become Missing entries) into the long
    table, one row per (role, region, pixels) whether its evaluation exists or not, so the
    paper's numbers always show."""
    dataset, roles = _dataset(spec)
    natural, inputs = parse_inputs(spec)
    searches = parse_searches(spec)
    rows: list[dict[str, Any]] = []
    attacks: dict[tuple[str, str, int], dict[str, Any]] = {}
    natural_evals: dict[str, dict[str, Any]] = {}
    missing: list[Missing] = []
    for role, model in roles.items():
        if natural is not None:
            clean = _load(evals_dir, model, natural)
            if clean is None:
                missing.append(
                    Missing(role, model, NATURAL_INPUT, natural, eval_path(evals_dir, model, natural))
                )
            else:
                natural_evals[role] = clean
        for pixel_input in inputs:
            path = eval_path(evals_dir, model, pixel_input.attack)
            evaluation = _load(evals_dir, model, pixel_input.attack)
            block = None
            if evaluation is None:
                missing.append(Missing(role, model, pixel_input.column, pixel_input.attack, path))
            else:
                block = _pixel_block(evaluation, path, pixel_input)
                attacks[(role, pixel_input.region, pixel_input.pixels)] = block
            rows.append(_row(dataset, role, model, pixel_input, evaluation, block))
    search_attacks: dict[str, dict[tuple[str, str, int], dict[str, Any]]] = {s: {} for s in searches}
    compared: list[dict[str, Any]] = []
    for search, columns in searches.items():
        for role, model in roles.items():
            for pixel_input in columns:
                path = eval_path(evals_dir, model, pixel_input.attack)
                evaluation = _load(evals_dir, model, pixel_input.attack)
                block = None
                if evaluation is None:
                    column = f"{pixel_input.spec_set}.{pixel_input.column}"
                    missing.append(Missing(role, model, column, pixel_input.attack, path))
                else:
                    block = _pixel_block(evaluation, path, pixel_input)
                    search_attacks[search][(role, pixel_input.region, pixel_input.pixels)] = block
                compared.append(_row(dataset, role, model, pixel_input, evaluation, block))
    return PixelTable(
        dataset=dataset,
        roles=roles,
        inputs=inputs,
        natural=natural,
        frame=_typed_frame(rows),
        attacks=attacks,
        natural_evals=natural_evals,
        missing=missing,
        fitness_images=int(spec["fitness_images"]),
        searches=searches,
        search_attacks=search_attacks,
        comparison=_typed_frame(compared),
    )


def _typed_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """CSV_COLUMNS with counts as nullable integers, text as text, the rest as floats."""
    frame = pd.DataFrame(rows, columns=CSV_COLUMNS)
    for column in COUNT_COLUMNS:
        frame[column] = frame[column].astype("Int64")
    for column in frame.columns.difference([*TEXT_COLUMNS, "pixels", *COUNT_COLUMNS]):
        frame[column] = frame[column].astype(float)
    return frame


# --- the claim ---------------------------------------------------------------------------------

Lookup = Callable[[str, str, int], float | None]  # (role, region, pixels) -> a metric in %


def ours_lookup(table: PixelTable, metric: str) -> Lookup:
    indexed = table.frame.set_index(["role", "region", "pixels"])[metric]

    def lookup(role: str, region: str, pixels: int) -> float | None:
        key = (role, region, pixels)
        value = indexed.get(key) if key in indexed.index else None
        return float(value) if _is_number(value) else None

    return lookup


def paper_lookup(metric: str) -> Lookup:
    return lambda role, region, pixels: paper_value(role, metric, region, pixels)


def relative_drops(roles: Sequence[str], pixels: int, lookup: Lookup) -> dict[str, tuple[float | None, int]]:
    """The paper's summary (§IV-C): per region, the mean over models of (original − region) /
    original in %, with the number of models it averages (those with a success on the whole
    image, since the drop is relative to it)."""
    drops: dict[str, tuple[float | None, int]] = {}
    for region in (FOREGROUND, BACKGROUND):
        values = []
        for role in roles:
            original, other = lookup(role, ORIGINAL, pixels), lookup(role, region, pixels)
            if original and other is not None:
                values.append(PERCENT * (original - other) / original)
        drops[region] = (sum(values) / len(values) if values else None, len(values))
    return drops


# --- figures' data -----------------------------------------------------------------------------


def pair_counts(pairs: Sequence[tuple[int, int]], num_classes: int) -> np.ndarray:
    counts = np.zeros((num_classes, num_classes), dtype=int)
    for source, target in pairs:
        counts[source, target] += 1
    return counts


def untargeted_pairs(block: Mapping[str, Any]) -> list[tuple[int, int]]:
    """(attacked class y, adversarial label) of every successful untargeted attack (Fig. 4)."""
    images = block["untargeted"]["images"]
    return [(int(i["label"]), int(i["adversarial_label"])) for i in images if i["success"]]


def targeted_pairs(block: Mapping[str, Any]) -> list[tuple[int, int]]:
    """(source, target) of every successful targeted attack (Fig. 5)."""
    targeted = block.get("targeted") or {}
    return [(int(p["source"]), int(p["target"])) for p in targeted.get("pairs_list", []) if p["success"]]


def carry_forward(curve: Sequence[float], length: int) -> list[float]:
    """``curve`` extended to ``length`` with its last value: an attack that stopped keeps the
    fitness it stopped at."""
    values = list(curve)
    return values + values[-1:] * (length - len(values))


def mean_fitness(curves: Sequence[Sequence[float]], length: int = 0) -> list[float]:
    """The mean of curves of different lengths, each carried forward to the longest curve's end
    (or to ``length`` if longer, so the regions of one panel share an x range)."""
    curves = [c for c in curves if len(c)]
    if not curves:
        return []
    length = max(length, *(len(c) for c in curves))
    return np.array([carry_forward(c, length) for c in curves], dtype=float).mean(axis=0).tolist()


def fitness_selection(blocks: Mapping[str, Mapping[str, Any]], limit: int) -> tuple[list[int], bool]:
    """The test indices whose fitness curves Fig. 6 averages, and whether they are the paper's
    choice: up to ``limit`` images fooled in every region (in test order); when none is, every
    image attacked in all regions, so the figure still shows how fitness falls."""
    if not blocks:
        return [], False
    fooled = [{i["index"] for i in b["untargeted"]["images"] if i["success"]} for b in blocks.values()]
    common = sorted(set.intersection(*fooled))
    if common:
        return common[:limit], True
    attacked = [{i["index"] for i in b["untargeted"]["images"]} for b in blocks.values()]
    return sorted(set.intersection(*attacked)), False


def fitness_curves(block: Mapping[str, Any], indices: Sequence[int]) -> list[list[float]]:
    wanted = set(indices)
    return [list(i["fitness"]) for i in block["untargeted"]["images"] if i["index"] in wanted]


# --- markdown ----------------------------------------------------------------------------------


def _ours_paper(ours: Any, paper: Any) -> str:
    return f"{fmt(ours)} ({fmt(paper)})"


def _counts(values: Sequence[Any]) -> str:
    distinct = sorted({int(v) for v in values if _is_number(v)})
    return "/".join(str(v) for v in distinct) or MISSING


def sample_sizes(table: PixelTable) -> str:
    """The sample sizes every section quotes: few images make every rate here coarse."""
    frame = table.csv_frame

    def per_role(column: str) -> str:
        return "; ".join(
            f"{role_title(r)} {_counts(frame.loc[frame['role'] == r, column].tolist())}" for r in table.roles
        )

    return (
        f"Sample sizes: the first {_counts(frame['samples'].tolist())} test images per evaluation "
        f"(paper: {PAPER_IMAGES} random ones); attacked images: {per_role('attacked')}; of them classified "
        f"correctly: {per_role('correct_attacked')}; targeted images (each attacked towards every other "
        f"class): {per_role('targeted_images')}."
    )


def _distinct(frame: pd.DataFrame, column: str) -> str:
    values = sorted({str(v) for v in frame[column].tolist() if isinstance(v, str)})
    return "/".join(values) or MISSING


def method_text(table: PixelTable) -> str:
    """How each set of columns ran, as its evaluations recorded it: search, DE strategy and the
    attacked set, with what Untargeted1's denominator then is."""
    parts = []
    for spec_set, frame in table.csv_frame.groupby("spec_set", sort=False):
        sets = sorted({str(v) for v in frame["attacked_set"].tolist() if isinstance(v, str)})
        attacked = "; ".join(f"{v}: {ATTACKED_SET_TEXT.get(v, v)}" for v in sets) or MISSING
        parts.append(
            f"`{spec_set}`: search {_distinct(frame, 'search')}, strategy {_distinct(frame, 'strategy')}, "
            f"attacked {attacked}"
        )
    return (
        "Method, as the evaluations recorded it (the paper's: search composite, §III-D; strategy rand1, "
        "Eq. 11; attacked all, §IV-B): "
        + ("; ".join(parts) or MISSING)
        + ". Untargeted1 is over every attacked image (under attacked all, the paper's denominator); "
        "Untargeted1 over correct is over the attacked images the model classifies correctly (ours)."
    )


def table_i(table: PixelTable) -> pd.DataFrame:
    rows = []
    for role, model in table.roles.items():
        clean = table.natural_evals.get(role)
        paper = PAPER.get(role)
        rows.append(
            {
                "network": role_title(role),
                "model": model,
                "test images": MISSING if clean is None else str(int(clean["samples"])),
                "accuracy %: ours (paper)": _ours_paper(
                    None if clean is None else percent(float(clean["accuracy"])),
                    None if paper is None else paper.accuracy,
                ),
            }
        )
    return pd.DataFrame(rows)


def _column_title(region: str, k: int) -> str:
    return f"{region_title(region)} {k}px"


# Our rows of Table II, each after the paper's metric it differs from: Untargeted1's successes
# over our denominator, and Untargeted2 under our definition (any label change).
OURS_METRICS = {
    "untargeted1": {"untargeted1_correct": "Untargeted1 over correct (ours)"},
    "untargeted2": {"untargeted2_label_change": "Untargeted2, any label change (ours)"},
}


def table_ii(table: PixelTable) -> pd.DataFrame:
    """Table II as the paper lays it out: a row per model x metric, a column per region x pixels,
    each cell "ours (paper)"; our rows (ours alone) follow the paper's metric they differ from."""
    indexed = table.frame.set_index(["role", "region", "pixels"])
    metrics = {}
    for metric, title in METRICS.items():
        metrics[metric] = title
        metrics.update(OURS_METRICS.get(metric, {}))
    rows = []
    for role in table.roles:
        for metric, title in metrics.items():
            row = {"network": role_title(role), "metric": f"{title} %"}
            for p in table.inputs:
                ours = indexed.loc[(role, p.region, p.pixels), metric]
                row[_column_title(p.region, p.pixels)] = _ours_paper(
                    ours, paper_value(role, metric, p.region, p.pixels)
                )
            rows.append(row)
    return pd.DataFrame(rows)


def search_comparison(table: PixelTable, metric: str) -> pd.DataFrame:
    """Ours: ``metric`` by region for each search, a row per model x pixels; the whole image's
    column serves every search (they coincide there), the foreground and background have one
    column per search."""
    main = table.frame.set_index(["role", "region", "pixels"])[metric]
    other = {
        search: table.comparison[table.comparison["spec_set"] == f"searches.{search}"].set_index(
            ["role", "region", "pixels"]
        )[metric]
        for search in table.searches
    }
    rows = []
    for role in table.roles:
        for k in table.pixels:
            row: dict[str, str] = {"network": role_title(role), "pixels": str(k)}
            for region in (ORIGINAL, FOREGROUND, BACKGROUND):
                key = (role, region, k)
                if region == ORIGINAL:
                    row[f"{region_title(region)} (every search)"] = fmt(
                        main.get(key) if key in main.index else None
                    )
                    continue
                row[f"{region_title(region)} ({table.main_search})"] = fmt(
                    main.get(key) if key in main.index else None
                )
                for search, values in other.items():
                    row[f"{region_title(region)} ({search})"] = fmt(
                        values.get(key) if key in values.index else None
                    )
            rows.append(row)
    return pd.DataFrame(rows)


# Table IV's rows per network: csv column -> how it counts generations. The paper's count first,
# since the paper's numbers (in parentheses) compare with it.
GENERATION_COUNTS = {
    "mean_generations_from_1": "from 1, the paper's count",
    "mean_generations": "from 0, ours",
}


def table_iv(table: PixelTable) -> pd.DataFrame:
    """Table IV: mean generations to a successful untargeted attack, a row per network and way of
    counting; the paper's values (1 pixel only) sit beside ours counted as it counts."""
    indexed = table.frame.set_index(["role", "region", "pixels"])
    rows = []
    for role in table.roles:
        for column, counted in GENERATION_COUNTS.items():
            row = {"network": role_title(role), "generations counted": counted}
            for p in sorted(table.inputs, key=lambda p: p.pixels):
                ours = indexed.loc[(role, p.region, p.pixels), column]
                paper = paper_generations(role, p.region, p.pixels) if column != "mean_generations" else None
                row[_column_title(p.region, p.pixels)] = (
                    fmt(ours) if paper is None else _ours_paper(ours, paper)
                )
            rows.append(row)
    return pd.DataFrame(rows)


def _drops_frame(table: PixelTable, k: int) -> pd.DataFrame:
    rows = []
    for metric in PAPER_QUOTED_DROPS:
        ours = relative_drops(list(table.roles), k, ours_lookup(table, metric))
        paper = relative_drops(list(PAPER), PAPER_GENERATION_PIXELS, paper_lookup(metric))
        for region in (FOREGROUND, BACKGROUND):
            value, models = ours[region]
            rows.append(
                {
                    "metric": METRICS[metric],
                    "region": region,
                    "ours: mean relative drop %": fmt(value),
                    "ours: models": str(models),
                    "paper (quoted) %": fmt(PAPER_QUOTED_DROPS[metric][region]),
                    "paper (from Table II) %": fmt(paper[region][0]),
                }
            )
    return pd.DataFrame(rows)


def claim_section(
    table: PixelTable, claims: Sequence[ClaimRecord], level: str, claims_path: Path
) -> list[str]:
    k = min(table.pixels) if table.pixels else PAPER_GENERATION_PIXELS
    return [
        "## The paper's claims and our verdicts",
        "",
        f"Each outcome comes from a {level} interval (`{claims_path.as_posix()}` holds the records). "
        "Every region of a model attacks the same images, so regions are compared paired over images, and a "
        "model's verdict pools its pixel counts per image (each image's mean outcome over k) rather than "
        "turning on one cell. `P1`: background vs foreground success (`P1.below`: background below "
        "foreground; `P1.far`: the background's gap below the whole image more than twice the foreground's); "
        "`P2`: targeted success; `P3`: generations to success (Table IV), each against the foreground and "
        "(`.whole`) the whole image; `P4`: the adversarial class's confidence across regions; `P8`: the "
        "foreground about as vulnerable as the whole image; `P9`: more pixels, more success; `P10`: the "
        "confidence the same at every pixel count; `P11`: fewer target classes from the background (Fig. 3); "
        "`P12`: the fitness curves (Fig. 6). Ours: `P6.<search>`, P1's rules with the foreground and "
        "background attacked by another search (the whole image shared); `P7.<search>`: that search raises "
        "background success more than foreground success, i.e. part of the paper's gap comes from its "
        "search. Success here is over every attacked image.",
        "",
        sample_sizes(table),
        "",
        method_text(table),
        "",
        *survival_lines(table, claims),
        *claim_section_lines(claims),
        f"Average relative drop at {k} pixel(s) from the whole image to each region, (original − region) "
        "/ original over the models with a success on the whole image (the paper quotes its 1-pixel "
        "drops; the last column recomputes them from its Table II):",
        "",
        text_table(_drops_frame(table, k)),
        "",
    ]


SURVIVAL = {
    Outcome.HOLDS: "yes",
    Outcome.FAILS: "no",
    Outcome.INCONCLUSIVE: "undecided",
    Outcome.DEGENERATE: "undecided (a model is degenerate)",
    Outcome.NOT_TESTED: "not tested",
}


def survival_lines(table: PixelTable, claims: Sequence[ClaimRecord]) -> list[str]:
    """Whether the paper's claim (P1, its composite search) survives each stronger search (P6),
    read from the records' outcomes."""
    by_id = {c.claim_id: c for c in claims}
    p1, lines = by_id.get("P1"), []
    for search in table.searches:
        p6, p7 = by_id.get(f"P6.{search}"), by_id.get(f"P7.{search}")
        if p1 is None or p6 is None:
            continue
        gap = f"; `P7.{search}` (the {search} search narrows the gap): **{p7.outcome}**" if p7 else ""
        lines += [
            f"Does the paper's claim (background much less vulnerable) survive the {search} search? "
            f"**{SURVIVAL[Outcome(p6.outcome)]}**: `P1` ({table.main_search} search): **{p1.outcome}**; "
            f"`P6.{search}`: **{p6.outcome}**{gap}.",
            "",
        ]
    return lines[:-1]  # the claim bullets open with a blank line of their own


def searches_section(table: PixelTable) -> list[str]:
    """Ours: success by region under each search, both denominators, and the composite search's
    idle evaluations."""
    if not table.searches:
        return []
    searches = ", ".join(
        f"`{s}`: " + "; ".join(f"{p.column}: `{p.attack}`" for p in c) for s, c in table.searches.items()
    )
    return [
        "## Searches compared (ours; no paper has this comparison)",
        "",
        f"The paper's search (composite, §III-D, Eqs. 17-18) draws a candidate's pixels over the whole image "
        "and leaves those outside the region clean, so a candidate wholly outside is the clean image; the "
        "indexed search draws them among the region's own pixels. On the whole image the two are one search, "
        "so its column serves both. Columns of `searches` "
        f"({searches}) against Table II's (`{MAIN_SET}`, the {table.main_search} search). "
        + method_text(table),
        "",
        sample_sizes(table),
        "",
        "Untargeted success over every attacked image (%; the paper's denominator under attacked all):",
        "",
        text_table(search_comparison(table, "untargeted1")),
        "",
        "Untargeted success over the attacked images the model classifies correctly (%; ours):",
        "",
        text_table(search_comparison(table, "untargeted1_correct")),
        "",
        "Share of model evaluations spent on candidates with no pixel in the region, i.e. on the clean image "
        "(%; 0 for the indexed search and on the whole image):",
        "",
        text_table(search_comparison(table, "idle_query_share")),
        "",
    ]


def to_markdown(
    table: PixelTable,
    claims: Sequence[ClaimRecord],
    *,
    scale: str,
    level: str,
    figures: Sequence[Path],
    claims_path: Path,
) -> str:
    """The report's markdown; ``claims_path``: the claim records the stage writes (its ``--claims``)."""
    sizes = sample_sizes(table)
    dataset = DATASET_TITLES.get(table.dataset, table.dataset)
    columns = "; ".join(f"{p.column}: `{p.attack}`" for p in table.inputs)
    lines = [
        "# Pixel-space attacks on the whole image, its foreground and its background",
        "",
        f"Scale: **{scale}**. Paper: Wang et al., “Analyzing Adversarial Robustness of Deep Neural "
        "Networks in Pixel Space: a Semantic Perspective”, Tables I, II, IV and Figs. 3-6 (CIFAR-10, "
        f"{PAPER_IMAGES} test images per model, GrabCut masks refined by hand; ours are automatic). "
        f"Dataset: `{table.dataset}` ({dataset}). Cells are “ours (paper)”, {MISSING} where absent.",
        "",
        sizes,
        "",
        f"Attacks (`<region>_<pixels>`): {columns}. Clean evaluation: `{table.natural or MISSING}`.",
        "",
        "## Table I: test accuracy",
        "",
        "Ours on the clean evaluation's test images; the paper's on the CIFAR-10 test set. " + sizes,
        "",
        text_table(table_i(table)),
        "",
        "## Table II: success rates and confidences (%)",
        "",
        method_text(table),
        "",
        "Untargeted1: untargeted successes / attacked images. Untargeted1 over correct (ours): the "
        "successes among the attacked images the model classifies correctly / those images. "
        "Confidence_u: mean probability of the "
        "adversarial class over untargeted successes. Untargeted2, as the paper defines it (§IV-C): "
        "targeted images on which the targeted attack succeeded “at least for one target class”, beside the "
        "paper's value; Untargeted2, any label change (ours): targeted images whose label some targeted run "
        "changed, to its target or not (never below the paper's). No claim uses Untargeted2. "
        "Targeted: targeted successes / (image, target) pairs. Confidence_t: "
        "mean target probability over targeted successes. " + sizes,
        "",
        text_table(table_ii(table)),
        "",
        "## Table IV: mean generations to a successful untargeted attack",
        "",
        "We count the initial population as generation 0; the paper's smallest means (1.36 for NiN on "
        "CIFAR-10, 1.00 for ResNet-50 on ImageNet) say it counts it as 1, so its values (in parentheses) "
        "sit beside ours + 1, and ours as counted follow. Differences between regions (claims P3, "
        f"P3.whole) do not depend on the count. The paper reports {PAPER_GENERATION_PIXELS} pixel only; "
        "other pixel counts show ours alone. " + method_text(table) + " " + sizes,
        "",
        text_table(table_iv(table)),
        "",
        *searches_section(table),
        *claim_section(table, claims, level, claims_path),
        "## Figures",
        "",
        sizes,
        "",
        *[f"- `{path}`: {FIGURE_CAPTIONS[path.name]}" for path in figures],
        "",
        "## Missing",
        "",
    ]
    if table.missing:
        lines += [f"- {role_title(m.role)} `{m.column}` (`{m.attack}`): {m.reason}" for m in table.missing]
    else:
        lines += ["None: every evaluation the spec names was found."]
    lines += [""]
    return "\n".join(lines)


# --- figures -----------------------------------------------------------------------------------

TARGETS_FIGURE = "targets_reached.png"
UNTARGETED_FIGURE = "untargeted_heatmap.png"
TARGETED_FIGURE = "targeted_heatmap.png"
FITNESS_FIGURE = "fitness.png"
SEARCH_FIGURE = "search_comparison.png"
FIGURE_CAPTIONS = {
    TARGETS_FIGURE: "Fig. 3, % of targeted images that reached 0, 1, … target classes",
    UNTARGETED_FIGURE: "Fig. 4, successful untargeted attacks per (attacked y, adversarial) class, fewest px",
    TARGETED_FIGURE: "Fig. 5, successful targeted attacks per (source, target) class, fewest pixels",
    FITNESS_FIGURE: "Fig. 6, mean fitness (attacked class's probability) over generations, fewest pixels",
    SEARCH_FIGURE: "ours: untargeted success (every attacked image) by region, each search and pixel count",
}


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        # No software version in the file: the same numbers give the same bytes.
        fig.savefig(tmp, format="png", dpi=FIGURE_DPI, metadata={"Software": None})
    plt.close(fig)


def save_no_data(path: Path, title: str) -> None:
    """A PNG that says there is nothing to draw: the DAG declares every figure as an output."""
    fig, ax = plt.subplots(figsize=PANEL_INCHES)
    ax.axis("off")
    ax.text(0.5, 0.5, f"{title}\n\nno data", ha="center", va="center", fontsize=10)
    _save(fig, path)


def _region_color(table: PixelTable, region: str) -> str:
    others = [r for r in table.regions if r not in REGION_COLORS]
    if region in REGION_COLORS:
        return REGION_COLORS[region]
    return FALLBACK_COLORS[others.index(region) % len(FALLBACK_COLORS)]


def _empty_panel(ax: Axes, title: str) -> None:
    ax.set_title(title, fontsize=8)
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _pixel_alpha(table: PixelTable, k: int) -> float:
    pixels = table.pixels
    if len(pixels) < 2:
        return PIXEL_ALPHA_RANGE[0]
    start, stop = PIXEL_ALPHA_RANGE
    return start + (stop - start) * pixels.index(k) / (len(pixels) - 1)


def save_targets_reached(path: Path, table: PixelTable) -> None:
    """Fig. 3: per model, grouped bars over the number of target classes reached, one bar per
    region x pixels with a targeted run, as % of that run's targeted images."""
    series = {
        role: [
            p for p in table.inputs if (table.attacks.get((role, p.region, p.pixels)) or {}).get("targeted")
        ]
        for role in table.roles
    }
    if not any(series.values()):
        save_no_data(path, f"Fig. 3: target classes reached ({table.dataset})")
        return
    fig, axes = plt.subplots(
        1, len(table.roles), figsize=(len(table.roles) * PANEL_INCHES[0], PANEL_INCHES[1]), squeeze=False
    )
    for ax, role in zip(axes.flat, table.roles, strict=True):
        runs = series[role]
        if not runs:
            _empty_panel(ax, role_title(role))
            continue
        width = BAR_GROUP_WIDTH / len(runs)
        for i, p in enumerate(runs):
            targeted = table.attacks[(role, p.region, p.pixels)]["targeted"]
            reached = np.asarray(targeted["targets_reached"], dtype=float)
            share = PERCENT * reached / max(int(targeted["images"]), 1)
            x = np.arange(len(reached)) - BAR_GROUP_WIDTH / 2 + (i + 0.5) * width
            ax.bar(
                x,
                share,
                width=width,
                color=_region_color(table, p.region),
                alpha=_pixel_alpha(table, p.pixels),
                label=_column_title(p.region, p.pixels),
            )
        images = _counts([table.attacks[(role, p.region, p.pixels)]["targeted"]["images"] for p in runs])
        ax.set_title(f"{role_title(role)} ({images} targeted images)", fontsize=9)
        ax.set_xlabel("target classes reached", fontsize=8)
        ax.set_ylabel("% of images", fontsize=8)
        ax.set_xticks(range(_num_classes(table)))
        ax.legend(fontsize=5, ncol=len(table.pixels) or 1)
    fig.suptitle(f"Fig. 3: target classes reached ({table.dataset})", fontsize=10)
    _save(fig, path)


def _num_classes(table: PixelTable) -> int:
    return max((int(b["num_classes"]) for b in table.attacks.values()), default=0)


def save_heatmaps(
    path: Path, table: PixelTable, pairs_of: Callable[[Mapping[str, Any]], list[tuple[int, int]]], title: str
) -> None:
    """Figs. 4-5: a grid (rows: models, columns: regions) of class-pair success counts for the
    fewest pixels, each cell annotated with its count."""
    num_classes = _num_classes(table)
    k = min(table.pixels) if table.pixels else None
    if k is None or num_classes == 0:
        save_no_data(path, title)
        return
    counts = {
        (role, region): pair_counts(pairs_of(table.attacks[(role, region, k)]), num_classes)
        for role in table.roles
        for region in table.regions
        if (role, region, k) in table.attacks
    }
    if not any(c.sum() for c in counts.values()):
        save_no_data(path, f"{title}, {k} pixel(s)")
        return
    vmax = max(int(c.max()) for c in counts.values())
    rows, columns = len(table.roles), len(table.regions)
    fig, axes = plt.subplots(
        rows, columns, figsize=(columns * HEATMAP_INCHES[0], rows * HEATMAP_INCHES[1]), squeeze=False
    )
    for r, role in enumerate(table.roles):
        for c, region in enumerate(table.regions):
            ax = axes[r, c]
            panel = f"{role_title(role)}, {region_title(region)}"
            if (role, region) not in counts:
                _empty_panel(ax, panel)
                continue
            matrix = counts[(role, region)]
            # One colour scale for the whole figure: the regions are compared with each other.
            ax.imshow(matrix, cmap="Reds", vmin=0, vmax=vmax)
            for (i, j), value in np.ndenumerate(matrix):
                if value:
                    color = "white" if value > vmax * HEATMAP_DARK else "black"
                    ax.text(j, i, str(value), ha="center", va="center", fontsize=HEATMAP_FONT, color=color)
            ax.set_title(f"{panel} ({matrix.sum()})", fontsize=8)
            ax.set_xticks(range(num_classes))
            ax.set_yticks(range(num_classes))
            ax.tick_params(labelsize=HEATMAP_FONT)
            ax.set_xlabel("adversarial / target class", fontsize=7)
            ax.set_ylabel("attacked class y", fontsize=7)
    fig.suptitle(f"{title}, {k} pixel(s) ({table.dataset})", fontsize=10)
    _save(fig, path)


def save_fitness(path: Path, table: PixelTable) -> None:
    """Fig. 6: per model, the mean fitness over generations for each region at the fewest pixels,
    over the same images in every region (with each image's curve drawn faintly)."""
    title = "Fig. 6: fitness over generations"
    k = min(table.pixels) if table.pixels else None
    panels = {
        role: {r: table.attacks[(role, r, k)] for r in table.regions if (role, r, k) in table.attacks}
        for role in table.roles
    }
    if k is None or not any(panels.values()):
        save_no_data(path, title)
        return
    fig, axes = plt.subplots(
        1, len(table.roles), figsize=(len(table.roles) * PANEL_INCHES[0], PANEL_INCHES[1]), squeeze=False
    )
    for ax, role in zip(axes.flat, table.roles, strict=True):
        blocks = panels[role]
        indices, paper_choice = fitness_selection(blocks, table.fitness_images)
        if not indices:
            _empty_panel(ax, role_title(role))
            continue
        curves = {region: fitness_curves(block, indices) for region, block in blocks.items()}
        length = max((len(c) for region_curves in curves.values() for c in region_curves), default=0)
        for region, region_curves in curves.items():
            color = _region_color(table, region)
            for curve in region_curves:
                ax.plot(carry_forward(curve, length), color=color, alpha=CURVE_ALPHA, linewidth=CURVE_WIDTH)
            ax.plot(
                mean_fitness(region_curves, length),
                color=color,
                linewidth=MEAN_WIDTH,
                label=f"{region_title(region)} mean",
            )
        which = (
            f"{len(indices)} images fooled in every region"
            if paper_choice
            else f"none fooled in every region: all {len(indices)} attacked images"
        )
        ax.set_title(f"{role_title(role)}: {which}", fontsize=8)
        ax.set_xlabel("generation", fontsize=8)
        ax.set_ylabel("probability of the attacked class y", fontsize=8)
        ax.set_ylim(*FITNESS_LIMITS)
        ax.legend(fontsize=6)
    fig.suptitle(f"{title}, {k} pixel(s) ({table.dataset})", fontsize=10)
    _save(fig, path)


def search_bars(table: PixelTable, role: str) -> list[tuple[str, str, str, list[float | None]]]:
    """The bars of one model's panel in the search figure: (region, search, label, success % per
    pixel count) for the whole image (every search), then each region under each search."""
    main = ours_lookup(table, "untargeted1")
    bars = [
        (ORIGINAL, table.main_search, region_title(ORIGINAL), [main(role, ORIGINAL, k) for k in table.pixels])
    ]
    for region in (FOREGROUND, BACKGROUND):
        bars.append(
            (
                region,
                table.main_search,
                f"{region_title(region)} ({table.main_search})",
                [main(role, region, k) for k in table.pixels],
            )
        )
        for search in table.searches:
            rows = table.comparison[
                (table.comparison["spec_set"] == f"searches.{search}")
                & (table.comparison["role"] == role)
                & (table.comparison["region"] == region)
            ].set_index("pixels")["untargeted1"]
            values = [
                float(rows[k]) if k in rows.index and _is_number(rows[k]) else None for k in table.pixels
            ]
            bars.append((region, search, f"{region_title(region)} ({search})", values))
    return bars


def save_search_comparison(path: Path, table: PixelTable) -> None:
    """Ours: per model, untargeted success over every attacked image, grouped by pixel count,
    a bar per region and search (the main columns' search plain, each compared search hatched)."""
    title = "Success by region for each search (ours)"
    if not table.searches or not table.pixels:
        save_no_data(path, title)
        return
    panels = {role: search_bars(table, role) for role in table.roles}
    if not any(v is not None for bars in panels.values() for *_, values in bars for v in values):
        save_no_data(path, title)
        return
    fig, axes = plt.subplots(
        1, len(table.roles), figsize=(len(table.roles) * PANEL_INCHES[0], PANEL_INCHES[1]), squeeze=False
    )
    hatches = {s: SEARCH_HATCHES[(i + 1) % len(SEARCH_HATCHES)] for i, s in enumerate(table.searches)}
    for ax, role in zip(axes.flat, table.roles, strict=True):
        bars = panels[role]
        width = BAR_GROUP_WIDTH / len(bars)
        for i, (region, search, label, values) in enumerate(bars):
            x = np.arange(len(table.pixels)) - BAR_GROUP_WIDTH / 2 + (i + 0.5) * width
            heights = [np.nan if v is None else v for v in values]
            ax.bar(
                x,
                heights,
                width=width,
                color=_region_color(table, region),
                hatch=hatches.get(search, SEARCH_HATCHES[0]),
                edgecolor="black",
                linewidth=0.3,
                label=label,
            )
        ax.set_title(role_title(role), fontsize=9)
        ax.set_xticks(range(len(table.pixels)), [f"{k} px" for k in table.pixels])
        ax.set_ylabel("untargeted success % (every attacked image)", fontsize=7)
        ax.set_ylim(0, PERCENT)
        ax.legend(fontsize=5)
    fig.suptitle(f"{title} ({table.dataset})", fontsize=10)
    _save(fig, path)


def save_figures(table: PixelTable, figures_dir: Path) -> list[Path]:
    figures_dir.mkdir(parents=True, exist_ok=True)
    paths = [figures_dir / name for name in FIGURE_CAPTIONS]
    save_targets_reached(paths[0], table)
    save_heatmaps(paths[1], table, untargeted_pairs, "Fig. 4: untargeted successes")
    save_heatmaps(paths[2], table, targeted_pairs, "Fig. 5: targeted successes")
    save_fitness(paths[3], table)
    save_search_comparison(paths[4], table)
    return paths


def pixel_space_claims(
    table: PixelTable, evals_dir: Path, settings: ClaimSettings, datasets_dir: Path | None = None
) -> list[ClaimRecord]:
    """The paper's claims judged on the table's evaluations (stages/claims/pixel_space.py)."""
    blocks = {
        (role, p.region, p.pixels): (
            table.attacks[(role, p.region, p.pixels)],
            str(eval_path(evals_dir, model, p.attack)),
        )
        for role, model in table.roles.items()
        for p in table.inputs
        if (role, p.region, p.pixels) in table.attacks
    }
    # The degenerate-model check: each model's clean evaluation and its number of classes.
    classes = {role: int(block["num_classes"]) for (role, _, _), block in table.attacks.items()}
    clean = {}
    for role, record in table.natural_evals.items():
        if role in classes and table.natural is not None:
            model = table.roles[role]
            path = eval_path(evals_dir, model, table.natural)
            clean[role] = (claim_evaluation(record, path, model, table.natural), classes[role])
    searches = {
        search: {
            (role, p.region, p.pixels): (
                table.search_attacks[search][(role, p.region, p.pixels)],
                str(eval_path(evals_dir, model, p.attack)),
            )
            for role, model in table.roles.items()
            for p in columns
            if (role, p.region, p.pixels) in table.search_attacks[search]
        }
        for search, columns in table.searches.items()
    }
    return pixel_claims(
        table.roles,
        ROLE_TITLES,
        blocks,
        table.pixels,
        paper_value,
        paper_generations,
        settings,
        table.dataset,
        clean,
        searches,
        None if datasets_dir is None else Feasibility(evals_dir, datasets_dir, settings.alpha),
    )


def write_pixel_report(
    spec: dict[str, Any],
    evals_dir: Path,
    out: Path,
    figures_dir: Path,
    scale: str,
    *,
    claims_path: Path,
    settings: ClaimSettings,
    datasets_dir: Path | None = None,
) -> None:
    """Build the report from ``spec`` (params' ``tables.pixel_space``) and write ``out``.csv,
    ``out``.md, the four figures under ``figures_dir`` and the claim records. A missing
    evaluation is listed in the report (its model's claims "not tested"), not raised; an
    unreadable or mismatched one is a DataError naming its file, raised before any output."""
    table = build_pixel_table(spec, evals_dir)
    claims = pixel_space_claims(table, evals_dir, settings, datasets_dir)
    figures = save_figures(table, figures_dir)
    write_claims(claims_path, ClaimsFile.of(PAPER_KEY, PAPER_TITLE, scale, claims))
    markdown = to_markdown(
        table, claims, scale=scale, level=settings.level, figures=figures, claims_path=claims_path
    )
    write_table(out, table.csv_frame, markdown)
