"""What deciding an undecided claim would take: how many test images exist, and what evaluating
them costs.

Reads only files committed with the results, so a fresh clone (no ``benchmarks/``, no
``data/``) projects the same numbers:

* ``results/<scale>/evals/<model>/<attack>.json`` (and ``results/<scale>/matrix/...``, the same
  layout) with ``<attack>.throughput.json`` beside each: the attack loop's measured seconds;
* ``results/<scale>/datasets/<dataset>.json``: what the prepare stage built and from what.

Costs are CPU hours on the machine that made the committed run: every committed throughput
record says ``"device": "cpu"``. GPU costs are not projected from them (see ``device`` below).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.claims.evals import EVAL_SUFFIXES, eval_path
from stages.config.scales import SCALES, resolve_tree
from stages.utils.errors import DataError

SECONDS_PER_HOUR = 3600.0
THROUGHPUT_SUFFIX = ".throughput.json"
# A throughput record's images_per_s must agree with the evaluation's samples / seconds to this
# relative tolerance; otherwise the timing belongs to another run than the evaluation beside it.
AGREEMENT = 1e-3

# The names the pool's sentence uses (the papers' names; params.yaml's keys otherwise).
DISPLAY = {
    "mnist": "MNIST",
    "cifar10": "CIFAR-10",
    "coco": "MS-COCO",
    "gtsrb": "GTSRB",
    "coco_ic": "MS-COCO-IC",
    "segment6": "Segment-6",
    "gtsrb_ic": "GTSRB-IC",
    "gtsrb_ic_roi": "GTSRB-IC (ROI seeds)",
}
# Each builder reads one raw dataset (stages/data/builders.py; not imported, as that pulls in
# the builders' option classes for nothing).
BUILDER_SOURCE = {"mnist": "mnist", "cifar10": "cifar10", "coco_ic": "coco", "gtsrb_ic": "gtsrb"}


def _read_object(path: Path, rerun: str) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file is absent, a DataError when unreadable."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); {rerun}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object; {rerun}")
    return data


def _field(data: Mapping[str, Any], path: Path, dotted: str, rerun: str) -> Any:
    """The value at ``dotted`` (e.g. ``test_summary.samples``); a DataError naming file and field."""
    value: Any = data
    for key in dotted.split("."):
        if not isinstance(value, Mapping) or key not in value:
            raise DataError(f"{path}: field '{dotted}' missing; {rerun}")
        value = value[key]
    return value


def _count(data: Mapping[str, Any], path: Path, dotted: str, rerun: str) -> int:
    value = _field(data, path, dotted, rerun)
    # bool is an int to Python, never a count here.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DataError(f"{path}: field '{dotted}' is {value!r}, expected a count (an integer >= 0); {rerun}")
    return value


def _number(data: Mapping[str, Any], path: Path, dotted: str, rerun: str) -> float:
    value = _field(data, path, dotted, rerun)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise DataError(f"{path}: field '{dotted}' is {value!r}, expected a finite number >= 0; {rerun}")
    return float(value)


# --- cost -------------------------------------------------------------------------------------


def seconds_per_image(evals_dir: Path, model: str, attack: str, *, device: str = "cpu") -> float | None:
    """Measured seconds per test image of one evaluation on ``device``; None when there is no
    such measurement (no evaluation or throughput record, another device, or zero seconds).

    ``seconds / samples``, not ``1 / images_per_s``. Both come from the same clock: ``seconds``
    runs from before the first batch to after the last (for a few-pixel DE attack: the clean
    predictions, the untargeted search, the targeted pairs and the final predictions), i.e. the
    whole job's attack loop, without process start, data and model loading; ``images_per_s`` is
    derived from it with a guard against zero. ``samples`` is the evaluation's own count, the n
    a claim reports, so the cost is per image the claim counts. Where ``images_per_s`` is there,
    it must agree, else the timing belongs to another run (a DataError).

    For DE the targeted pairs are a fixed set of images (``targeted_images``), so dividing by
    ``samples`` spreads them over the run's images: projecting to more images overstates the
    cost by at most that share (conservative).
    """
    record_path = eval_path(Path(evals_dir), model, attack)
    timing_path = record_path.with_name(attack + THROUGHPUT_SUFFIX)
    rerun = f"delete it and re-run the evaluate stage for {model} / {attack}"
    timing = _read_object(timing_path, rerun)
    record = _read_object(record_path, rerun)
    if timing is None or record is None:
        return None
    recorded_device = _field(timing, timing_path, "device", rerun)
    # "cuda:0" is a cuda measurement: compare device types only.
    if str(recorded_device).split(":")[0] != device:
        return None
    seconds = _number(timing, timing_path, "seconds", rerun)
    samples = _count(record, record_path, "samples", rerun)
    # A record that timed nothing says nothing about cost; 0 s would project a free evaluation.
    if seconds == 0 or samples == 0:
        return None
    if "images_per_s" in timing:
        rate = _number(timing, timing_path, "images_per_s", rerun)
        if not math.isclose(rate * seconds, samples, rel_tol=AGREEMENT):
            raise DataError(
                f"{timing_path}: field 'images_per_s' ({rate:g}) x 'seconds' ({seconds:g}) is not "
                f"{record_path}'s 'samples' ({samples}): the timing is another run's; {rerun}"
            )
    return seconds / samples


def cpu_hours(n_images: int, seconds_per_image: Iterable[float]) -> float:
    """Hours to evaluate ``n_images`` under each evaluation whose seconds per image are given
    (their sum), on the machine that measured them (the committed run's 2-core CPU)."""
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 0:
        raise ValueError(f"n_images must be an integer >= 0, got {n_images!r}")
    costs = list(seconds_per_image)
    if any(not math.isfinite(c) or c < 0 for c in costs):
        raise ValueError(f"seconds per image must be finite and >= 0, got {costs}")
    return n_images * sum(costs) / SECONDS_PER_HOUR


def evaluation_costs(evals_dir: Path, *, device: str = "cpu") -> dict[tuple[str, str], float]:
    """(model, attack) -> seconds per image for every evaluation under ``evals_dir`` (an
    ``evals`` or ``matrix`` folder) with a measurement on ``device``; the others are left out."""
    costs: dict[tuple[str, str], float] = {}
    evals_dir = Path(evals_dir)
    if not evals_dir.is_dir():
        return costs
    for path in sorted(evals_dir.glob("*/*.json")):
        # <attack>.throughput.json is a timing, not an evaluation (stages.claims.evals).
        if path.suffixes != EVAL_SUFFIXES:
            continue
        model, attack = path.parent.name, path.stem
        cost = seconds_per_image(evals_dir, model, attack, device=device)
        if cost is not None:
            costs[(model, attack)] = cost
    return costs


# --- pool -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    """The test images a claim on ``dataset`` could draw on at this scale."""

    dataset: str
    prepared: int  # test images prepared at this scale
    available: int | None  # test images this scale's source could supply (None if unknown)
    limit: str  # in words, what bounds it (and, given params, how many evaluations use)


def _resolved(params: Mapping[str, Any] | None, datasets_dir: Path) -> dict[str, Any] | None:
    """params with every ``{tiny, reduced, paper}`` value resolved to the files' scale: the
    params' own ``scale``, else the folder's (``results/<scale>/datasets``); with neither, the
    params are taken as already resolved (a job's pruned params are)."""
    if params is None:
        return None
    scale = params.get("scale")
    if scale not in SCALES:
        scale = datasets_dir.parent.name
    return resolve_tree(dict(params), scale) if scale in SCALES else dict(params)


def _unmasked_sibling(datasets_dir: Path, dataset: str, builder: str) -> tuple[int, str] | None:
    """(test images, name) of another dataset of the same builder that kept its whole test split
    (no ``test`` mask block), e.g. ``cifar10`` beside ``cifar10_grabcut``."""
    for path in sorted(datasets_dir.glob("*.json")):
        if path.stem == dataset:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("builder") == builder and "test" not in data:
                samples = data["test_summary"]["samples"]
                if isinstance(samples, int) and not isinstance(samples, bool):
                    return samples, path.stem
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
            continue  # not a dataset record we can use; the named dataset's own errors still raise
    return None


def _evaluated(params: dict[str, Any] | None, dataset: str, prepared: int) -> str:
    """How many of the pool the evaluations take (params.yaml ``samples.<dataset>.test``)."""
    test = (params or {}).get("samples", {}).get(dataset, {}).get("test")
    if test is None:
        return ""
    where = f"params.yaml samples.{dataset}.test"
    if test == "all" or (isinstance(test, int) and test >= prepared):
        return f"; evaluations use all of them ({where}: {test})"
    return f"; evaluations use the first {test:,} ({where})"


@dataclass(frozen=True)
class _Record:
    """One dataset file being read, for the builders' helpers below."""

    path: Path
    data: dict[str, Any]
    dataset: str
    params: dict[str, Any] | None  # resolved to the scale, or None

    @property
    def rerun(self) -> str:
        return f"re-run the prepare stage for {self.dataset}"

    def count(self, dotted: str) -> int:
        return _count(self.data, self.path, dotted, self.rerun)

    def field(self, dotted: str) -> Any:
        return _field(self.data, self.path, dotted, self.rerun)

    def setting(self, *keys: str) -> tuple[bool, Any, str]:
        """(found, value, where) of ``datasets.<dataset>.options.<keys>`` in the params."""
        where = f"params.yaml datasets.{self.dataset}.options.{'.'.join(keys)}"
        value: Any = (self.params or {}).get("datasets", {}).get(self.dataset, {}).get("options", {})
        for key in keys:
            if not isinstance(value, Mapping) or key not in value:
                return False, None, where
            value = value[key]
        return True, value, where


def _whole_split(rec: _Record, prepared: int, source: str) -> tuple[int | None, str]:
    # MNIST and unmasked CIFAR-10 keep the whole official test split (stages/data/classic.py).
    return prepared, f"{source}'s test split holds {prepared:,} images, all prepared"


def _grabcut(rec: _Record, prepared: int, source: str) -> tuple[int | None, str]:
    # Masks for the split's first test_masks images only, and only masked images are kept
    # (stages/data/cifar_grabcut.py); the split's size is the unmasked sibling's.
    masked = rec.count("test.masked")
    found, cap, where = rec.setting("grabcut", "test_masks")
    setting = f"{where} = {cap}" if found else where
    sibling = _unmasked_sibling(rec.path.parent, rec.dataset, str(rec.field("builder")))
    if sibling is None:
        return (
            None,
            f"GrabCut masks for {masked:,} of {source}'s test images ({setting}; the split's size unknown)",
        )
    whole, name = sibling
    return whole, f"GrabCut masks for {masked:,} of {source}'s {whole:,} test images ({setting}; {name}.json)"


def _coco(rec: _Record, prepared: int, source: str) -> tuple[int | None, str]:
    # Every usable object crop of the selected classes in the mirror's source images; only a
    # per-class cap drops usable ones, and the builder counts what it dropped
    # (stages/data/coco_ic.py), so the file alone proves the pool's size.
    dropped = rec.count("splits.test.drops.class_cap")
    images = rec.count("splits.test.source_images")
    split = rec.field("splits.test.source_split")
    classes = rec.field("test_summary.per_class")
    available = prepared + dropped
    found, cap, where = rec.setting("max_per_class_test")
    cap_text = (
        f"the per-class cap ({where} = {cap}) drops {dropped:,}"
        if found
        else f"{dropped:,} dropped by a per-class cap"
    )
    limit = (
        f"{DISPLAY.get(rec.dataset, rec.dataset)} has {available:,} test images in all: every usable "
        f"object crop of its {len(classes)} classes in the mirror's {images:,} {split} images; {cap_text}"
    )
    return available, limit


def _gtsrb(rec: _Record, prepared: int, source: str) -> tuple[int | None, str]:
    # Every test image the mirror holds unless a per-class cap (stages/data/gtsrb_ic.py); the
    # file does not say how many a cap left out, so only params' null cap proves the whole.
    test_source = rec.field("test_source")
    found, cap, where = rec.setting("per_class_cap")
    if found and cap is None:
        return (
            prepared,
            f"the mirror's {test_source} holds {prepared:,} {source} test images, all prepared "
            f"({where}: null)",
        )
    why = (
        f"capped at {cap} per class ({where})" if found else f"per-class cap unknown without params ({where})"
    )
    return None, f"{prepared:,} {source} test images from the mirror's {test_source}, {why}"


def pool(datasets_dir: Path, dataset: str, params: Mapping[str, Any] | None = None) -> Pool:
    """The test pool of ``dataset`` from ``<datasets_dir>/<dataset>.json``: how many test images
    were prepared, how many the source would allow at this scale, and what bounds it.

    ``params`` (params.yaml as loaded; resolved here to the scale) adds the caps' settings and the
    evaluations' sample size to ``limit``; without it only facts the dataset files prove are used
    (a cap whose value only params know leaves ``available`` None). A missing file or field is a
    DataError naming both.
    """
    datasets_dir = Path(datasets_dir)
    path = datasets_dir / f"{dataset}.json"
    data = _read_object(path, f"re-run the prepare stage for {dataset}")
    if data is None:
        raise DataError(f"{path}: dataset statistics missing; run the prepare stage for {dataset}")
    rec = _Record(path, data, dataset, _resolved(params, datasets_dir))
    prepared = rec.count("test_summary.samples")
    builder = rec.field("builder")
    source = DISPLAY.get(BUILDER_SOURCE.get(str(builder), ""), str(builder))
    if builder in ("mnist", "cifar10") and "test" not in data:
        available, limit = _whole_split(rec, prepared, source)
    elif builder == "cifar10":
        available, limit = _grabcut(rec, prepared, source)
    elif builder == "coco_ic":
        available, limit = _coco(rec, prepared, source)
    elif builder == "gtsrb_ic":
        available, limit = _gtsrb(rec, prepared, source)
    else:
        available, limit = None, f"builder {builder!r}: how many test images its source holds is not recorded"
    return Pool(dataset, prepared, available, limit + _evaluated(rec.params, dataset, prepared))
