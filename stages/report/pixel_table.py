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

import numpy as np
import pandas as pd

from stages.claims.evals import eval_path, load_evals
from stages.claims.pixel_space_base import BACKGROUND, FOREGROUND, ORIGINAL, reached_any
from stages.report.markdown import MISSING
from stages.report.pixel_paper import paper_generations, paper_value
from stages.utils.errors import ConfigError, DataError

# params `inputs`: the clean evaluation's key, and `<region>_<pixels>` for the attacks;
# `searches`: search -> `<region>_<pixels>` -> attack. A row's `spec_set` says which it fills.
NATURAL_INPUT = "natural"
MAIN_SET = "inputs"
INPUT_PATTERN = re.compile(r"^(?P<region>[a-z]+)_(?P<pixels>[1-9][0-9]*)$")
# The paper's "original" image is the evaluate stage's "full" region.
EVAL_REGIONS = {"original": "full"}

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
# Fields every pixel_attack block of the current evaluate stage records (older records lack the
# first two and are refused, naming the file and the field).
REQUIRED_BLOCK_FIELDS = ("search", "attacked_set", "pixels", "region")
ATTACKED_SET_TEXT = {
    "all": "every image, y = the model's clean prediction (the paper's)",
    "correct": "the correctly classified images, y = the true label (ours)",
}
PERCENT_DECIMALS = 2
GENERATION_DECIMALS = 2
QUERY_DECIMALS = 1
PERCENT = 100.0


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
        ran = {str(b["search"]) for (_, r, _), b in self.attacks.items() if r != ORIGINAL}
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


def is_number(value: Any) -> bool:
    """False for every way an absent value reaches us: None, NaN, and pandas' NA in count columns."""
    return value is not None and not pd.isna(value)


def fmt(value: Any) -> str:
    """A table number with two decimals, or the markdown tables' dash when absent."""
    return f"{float(value):.2f}" if is_number(value) else MISSING


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
    missing = [name for name in REQUIRED_BLOCK_FIELDS if name not in block]
    if missing:
        fields = ", ".join(f"`pixel_attack.{name}`" for name in missing)
        raise DataError(f"{path}: no {fields} (an older evaluate stage wrote it); re-run the evaluate stage")
    region = EVAL_REGIONS.get(pixel_input.region, pixel_input.region)
    if int(block["pixels"]) != pixel_input.pixels or block["region"] != region:
        raise DataError(
            f"{path}: a {block['pixels']}-pixel attack on region {block['region']!r}, but "
            f"{pixel_input.where} expects {pixel_input.pixels} on {region!r}; "
            "re-run the evaluate stage"
        )
    ran = block["search"]
    if pixel_input.search is not None and ran != pixel_input.search:
        raise DataError(
            f"{path}: an attack with the {ran!r} search, but {pixel_input.where} compares the "
            f"{pixel_input.search!r} search; re-run the evaluate stage"
        )
    return block


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
        "search": block["search"],
        "strategy": block.get("strategy"),
        "attacked_set": block["attacked_set"],
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
        return float(value) if is_number(value) else None

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


def counts_text(values: Sequence[Any]) -> str:
    distinct = sorted({int(v) for v in values if is_number(v)})
    return "/".join(str(v) for v in distinct) or MISSING


def column_title(region: str, k: int) -> str:
    return f"{region_title(region)} {k}px"
