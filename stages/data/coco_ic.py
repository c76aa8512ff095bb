"""MS-COCO-IC (Vaishnavi et al.) and Segment-6 (Cong & Prakash; used by the dual-perturbation
paper): COCO instance annotations turned into small classification images with exact
foreground masks.

One sample per non-crowd object of a selected class: a square crop centred on the object's
box, every *other* annotated object inside it blacked out (so each crop shows one label
only; see ``overlaps`` for other objects lying on the sample's own object), resized to
``image_size``; the mask is the visible part of the object's own segmentation. The two
datasets differ only in their settings (:func:`segment6_config`).

Where the papers are silent the choice is a config field whose comment says why; the
paper-faithful defaults reproduce the published procedure, not necessarily its numbers
(see the ``min_area`` comment for what the published class list implies).

Output depends only on the input files and the config: samples are ordered by (image id,
annotation id), sub-sampling uses a seeded hash of ids (not a random stream, so one sample's
fate does not depend on which others exist), the hold-out visits images in a seeded hash
order, and no wall-clock value enters anything but the separate ``throughput`` entry of the
stats.

Why one module of ~750 lines: one builder whose filters, crops, overlap rules and statistics are
the steps of the published procedure, read in order; its settings' comments explain each step
beside the code that takes it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from stages.data.processed import ProcessedSplit
from stages.data.readers import CocoSplit, read_coco
from stages.data.sources import COCO_CATEGORIES
from stages.utils.errors import ConfigError, DataError
from stages.utils.progress import progress as progress_bar

log = logging.getLogger(__name__)

CropMode = Literal["clamp", "pad", "stretch"]
CROP_MODES: tuple[CropMode, ...] = ("clamp", "pad", "stretch")
TestSplit = Literal["val", "train_holdout"]
TEST_SPLITS: tuple[TestSplit, ...] = ("val", "train_holdout")
OverlapRule = Literal["black_out_front", "keep_inside_own_mask"]
OVERLAP_RULES: tuple[OverlapRule, ...] = ("black_out_front", "keep_inside_own_mask")
COCO_CATEGORY_NAMES = frozenset(name for _, name, _ in COCO_CATEGORIES)

# Segment-6 (Cong & Prakash 2019), as the dual-perturbation paper §5.1 describes it.
SEGMENT6_CLASSES = ("train", "bird", "cat", "dog", "toilet", "clock")
SEGMENT6_TRAIN_PER_CLASS = 3000
SEGMENT6_TEST_PER_CLASS = 200

# Vaishnavi et al., Table 1: 100,000 train / 51,271 test, per class in the same ratio, so the
# test set looks like a held-out share of one pool; this is that share.
PAPER_TEST_FRACTION = 51_271 / 151_271

# Drop reasons, in the order an annotation is tested against them (it is counted under the
# first that applies, so the counts of a split sum to its number of annotations).
DROP_REASONS = (
    "crowd",
    "excluded_class",
    "class_not_selected",
    "degenerate",
    "too_small",
    "empty_mask",
    "class_cap",
)

_MIN_POLYGON_COORDS = 6  # three (x, y) points: anything less encloses no area
_MASK_THRESHOLD = 0.5  # a resized mask pixel is foreground when the object covers most of it
# A crop counts as heavily covered when front objects hide more than this share of its mask:
# the threshold of the audit that raised the overlap question (issue 19), so the stats can be
# read against it.
HEAVY_COVER_SHARE = 0.10


@dataclass(frozen=True)
class CocoIcConfig:
    """Settings of one COCO-derived classification dataset; defaults are MS-COCO-IC's."""

    # Name written into the processed meta ("dataset"); Segment-6 sets "segment6".
    name: str = "coco_ic"
    # Vaishnavi et al., "Dataset Creation": "resize all the extracted image patches to 32x32".
    image_size: int = 32
    # None: the top_k most frequent categories (Vaishnavi et al., "Dataset Creation").
    # A tuple of COCO category names fixes the list and the label order (Segment-6:
    # SEGMENT6_CLASSES; MS-COCO-IC at the paper scale: Vaishnavi et al.'s Table 1, which no
    # frequency rule reproduces on COCO 2017, see ``min_area``). The frequency ranking is
    # recorded in the stats either way, so the two lists can be compared.
    classes: tuple[str, ...] | None = None
    # Vaishnavi et al., "Dataset Creation": "we ignore the person class (over frequent)".
    exclude: tuple[str, ...] = ("person",)
    # Vaishnavi et al., "Dataset Creation": "short-list top 10 classes ... based on the
    # frequency". Frequency = annotations of the training images that pass the crowd,
    # exclusion, degenerate and min_area filters; ties go to the smaller category id.
    top_k: int = 10
    # Minimum segmentation area (the annotation's COCO "area", original pixels). Neither paper
    # gives one, yet one is implied: Table 1's per-class counts are 61% (car) to 95% (dining
    # table) of COCO's instances of that class, and a 2x2-pixel object upscaled to 32x32 shows
    # nothing. On the real-data mirror, thresholds of 256-300 px reproduce those per-class
    # retention ratios best (0: 97-100% kept; 32*32 = COCO's "small" bound: 26% of books, the
    # paper keeps ~71%). 16x16 = 256 px also bounds upscaling of a compact object to ~2x.
    # No area threshold reproduces the published *class list* (cup and bowl would outrank
    # sheep and cow at any of them), so the paper must have filtered in some unstated way.
    min_area: float = 256.0
    # Vaishnavi et al.: no cap (all objects). Segment-6 (dual-perturbation paper §5.1): 3,000
    # train and 200 test per class. Capped classes keep the samples with the smallest seeded
    # hash of their annotation id: a uniform random subset that is stable under reruns.
    max_per_class_train: int | None = None
    max_per_class_test: int | None = None
    # The crop. Vaishnavi et al., "Dataset Creation": "we adjust the crop dimensions in order
    # to extract square image patches", read as a square of side max(w, h) centred on the box.
    # Where that square leaves the image, "clamp" shifts it inside (shrinking it to the short
    # side when it cannot fit) and "pad" keeps it centred and fills the outside with black.
    # Clamp is the default: every pixel stays real, so black in a crop always means "another
    # object", and no border artefact correlates with the object touching the image edge.
    # "stretch" is the other reading: crop the box itself and let the resize make it square
    # (aspect ratio not kept). The paper's ~56% foreground fits stretch better: on the mirror
    # the mean mask/box area of usable objects is ~60%, mask/square ~37%.
    crop: CropMode = "clamp"
    # Extra context: the square's side is max(w, h) * (1 + crop_margin), i.e. crop_margin / 2
    # of the box side on each side (stretch: each box side grows alike, within the image).
    # Neither paper mentions a margin: 0.
    crop_margin: float = 0.0
    # "val": COCO val2017 is the test set (the standard split; at full scale it is ~4% of the
    # objects). "train_holdout": a test_fraction of train2017's *images* (never part of an
    # image, so no photograph is on both sides), chosen so that every selected class has about
    # that share of its objects in the test split: Vaishnavi et al.'s Table 1 has test/train
    # = 0.51 in every class, which a held-out share of one pool gives and val2017 does not.
    test_split: TestSplit = "val"
    # Used by "train_holdout" only: the share test / (train + test) of each class's objects.
    # Default: Vaishnavi et al., Table 1 (see PAPER_TEST_FRACTION).
    test_fraction: float = PAPER_TEST_FRACTION
    # Other objects' pixels that lie on the sample's own mask. Vaishnavi et al., "Dataset
    # Creation": every crop holds "object(s) of one label only", and "to deal with objects
    # having overlapping bounding box regions, we explicitly black-out pixels corresponding to
    # the extra objects". COCO has no depth order, so where two masks overlap the *smaller*
    # object is taken to be in front (a cup on a table, a pizza on a dining table: COCO
    # outlines large objects around what stands on them). Equal sizes: neither is in front.
    # "black_out_front" (the paper's reading, default): a smaller object's pixels are blacked
    # out inside the sample's mask too and leave the mask, so the mask is the visible part of
    # the one labelled object. "keep_inside_own_mask" (the earlier rule): the sample's own mask
    # is never blacked out (a pizza on a dining table stays in the table's crop and mask).
    # Outside the own mask every other object is blacked out under both rules.
    overlaps: OverlapRule = "black_out_front"
    # Seeds the hashes behind per-class caps and the image hold-out.
    seed: int = 0

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"coco_ic config: {key}={getattr(self, key)!r} {why}")

        allowed_names = f"allowed: the COCO 2017 category names {', '.join(sorted(COCO_CATEGORY_NAMES))}"
        if self.image_size < 1:
            raise bad("image_size", "must be a positive number of pixels")
        for key in ("classes", "exclude"):
            names = getattr(self, key)
            if names is None and key == "classes":
                continue
            if not isinstance(names, tuple) or not all(isinstance(n, str) for n in names):
                hint = " or null (a scaled value needs exactly the keys tiny, reduced, paper)"
                raise bad(key, "must be a list of COCO category names" + (hint if key == "classes" else ""))
            unknown = [n for n in names if n not in COCO_CATEGORY_NAMES]
            if unknown:
                raise bad(key, f"has {unknown}, which are not COCO categories ({allowed_names})")
        if self.classes is not None:
            if not self.classes or len(set(self.classes)) != len(self.classes):
                raise bad("classes", "must be a non-empty list of distinct COCO category names")
            clash = sorted(set(self.classes) & set(self.exclude))
            if clash:
                raise bad("classes", f"names excluded classes {clash}; drop them from one list")
        if self.top_k < 1:
            raise bad("top_k", "must be at least 1")
        if not (self.min_area >= 0 and math.isfinite(self.min_area)):
            raise bad("min_area", "must be a finite number >= 0 (pixels)")
        for key in ("max_per_class_train", "max_per_class_test"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise bad(key, "must be a positive number of samples, or null for no cap")
        if self.crop not in CROP_MODES:
            raise bad("crop", f"must be one of {', '.join(CROP_MODES)}")
        if not (self.crop_margin >= 0 and math.isfinite(self.crop_margin)):
            raise bad("crop_margin", "must be a finite fraction >= 0")
        if self.test_split not in TEST_SPLITS:
            raise bad("test_split", f"must be one of {', '.join(TEST_SPLITS)}")
        if not (isinstance(self.test_fraction, (int, float)) and 0.0 < self.test_fraction < 1.0):
            raise bad("test_fraction", "must be a number in (0, 1): the test share of each class")
        if self.overlaps not in OVERLAP_RULES:
            raise bad("overlaps", f"must be one of {', '.join(OVERLAP_RULES)}")


def segment6_config(**overrides: Any) -> CocoIcConfig:
    """Segment-6: the MS-COCO-IC procedure with six fixed classes and per-class caps."""
    base = CocoIcConfig(
        name="segment6",
        classes=SEGMENT6_CLASSES,
        max_per_class_train=SEGMENT6_TRAIN_PER_CLASS,
        max_per_class_test=SEGMENT6_TEST_PER_CLASS,
    )
    return replace(base, **overrides)


# --- annotations -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ann:
    id: int
    image_id: int
    category_id: int
    iscrowd: bool
    area: float
    bbox: tuple[float, float, float, float]
    segmentation: Any


def _unit_hash(*parts: object) -> float:
    """A uniform number in [0, 1) fixed by ``parts``: the same on every machine and run."""
    digest = hashlib.blake2b("/".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _categories(split: CocoSplit) -> dict[int, str]:
    try:
        cats = {int(c["id"]): str(c["name"]) for c in split.coco.dataset["categories"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{split.annotation_file}: a category record lacks id or name ({exc})") from None
    if len(set(cats.values())) != len(cats):
        raise DataError(f"{split.annotation_file}: category names are not unique")
    return cats


def _annotations(split: CocoSplit, categories: dict[int, str]) -> list[_Ann]:
    """Every annotation, checked for the keys the builder reads, sorted by (image, id).

    A missing key or non-numeric box is a broken file (error); a zero-size box is a
    legitimate but useless annotation (dropped as degenerate later)."""
    out = []
    for raw in split.coco.dataset["annotations"]:
        ann_id = raw.get("id", "?") if isinstance(raw, dict) else "?"
        try:
            bbox = tuple(float(v) for v in raw["bbox"])
            if len(bbox) != 4:
                raise ValueError(f"bbox has {len(bbox)} numbers, not 4")
            ann = _Ann(
                id=int(raw["id"]),
                image_id=int(raw["image_id"]),
                category_id=int(raw["category_id"]),
                iscrowd=bool(raw.get("iscrowd", 0)),
                area=float(raw["area"]),
                bbox=bbox,  # type: ignore[arg-type]
                segmentation=raw["segmentation"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(
                f"{split.annotation_file}: annotation {ann_id} is malformed ({type(exc).__name__}: "
                f"{exc}); re-fetch the file or fix that record"
            ) from None
        if ann.category_id not in categories:
            raise DataError(
                f"{split.annotation_file}: annotation {ann.id} has category_id {ann.category_id}, "
                "which is not in 'categories'"
            )
        out.append(ann)
    return sorted(out, key=lambda a: (a.image_id, a.id))


def _is_degenerate(ann: _Ann, width: int, height: int) -> bool:
    """Nothing to crop: an empty or non-finite box, no area, no polygon, or a box off the image."""
    x, y, w, h = ann.bbox
    if not all(math.isfinite(v) for v in ann.bbox) or w <= 0 or h <= 0 or ann.area <= 0:
        return True
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        return True
    seg = ann.segmentation
    if isinstance(seg, list):
        return not any(isinstance(p, list) and len(p) >= _MIN_POLYGON_COORDS for p in seg)
    return not isinstance(seg, dict)


# --- crops ---------------------------------------------------------------------------------


def _crop_window(
    bbox: tuple[float, float, float, float], width: int, height: int, crop: CropMode, margin: float
) -> tuple[int, int, int, int]:
    """(x0, y0, crop width, crop height); in pad mode the window may leave the image."""
    x, y, w, h = bbox
    if crop == "stretch":
        grow_x, grow_y = w * margin / 2.0, h * margin / 2.0
        x0, y0 = max(0, math.floor(x - grow_x)), max(0, math.floor(y - grow_y))
        x1, y1 = min(width, math.ceil(x + w + grow_x)), min(height, math.ceil(y + h + grow_y))
        return x0, y0, max(1, x1 - x0), max(1, y1 - y0)
    side = max(1, math.ceil(max(w, h) * (1.0 + margin)))
    if crop == "clamp":
        side = min(side, width, height)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0, y0 = math.floor(cx - side / 2.0 + 0.5), math.floor(cy - side / 2.0 + 0.5)
    if crop == "clamp":
        x0, y0 = min(max(x0, 0), width - side), min(max(y0, 0), height - side)
    return x0, y0, side, side


def _take(array: np.ndarray, x0: int, y0: int, cw: int, ch: int) -> np.ndarray:
    """The cw x ch window at (x0, y0), zeros where it leaves ``array``."""
    height, width = array.shape[:2]
    out = np.zeros((ch, cw, *array.shape[2:]), dtype=array.dtype)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + cw, width), min(y0 + ch, height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = array[sy0:sy1, sx0:sx1]
    return out


@dataclass(frozen=True)
class _Crop:
    """One object's crop, with what the overlap rule did to it."""

    image: np.ndarray  # (S, S, 3) uint8
    mask: np.ndarray  # (S, S) bool: the visible part of the object
    mask_px: int  # pixels of the object's own segmentation (source resolution)
    front_px: int  # of those, pixels under a smaller ("front") object (source resolution)
    removed_px: int  # output mask pixels the overlap rule removed (0 under keep_inside_own_mask)
    foreground_by_crop: dict[str, float]  # output mask fraction under each crop mode


def _small_mask(region: np.ndarray, window: tuple[int, int, int, int], size: int) -> np.ndarray:
    cover = cv2.resize(_take(region, *window).astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
    return cover >= _MASK_THRESHOLD


def _crop_sample(
    image: np.ndarray,
    own: np.ndarray,
    others: np.ndarray,
    front: np.ndarray,
    bbox: tuple[float, float, float, float],
    cfg: CocoIcConfig,
) -> _Crop:
    """One object's crop; ``others`` is every other object, ``front`` the smaller ones.

    Other objects' pixels go black. On the object's own mask only ``front`` objects do, and
    only under ``overlaps: black_out_front`` (see the config comment); their pixels then leave
    the mask too. A larger object overlapping the sample's (shared outlines, a table under a
    cup) is taken to be behind it, so the sample stays whole there under both rules.

    Image and mask share one resampling (INTER_AREA: each output pixel is the mean of its
    footprint), and the mask keeps a pixel when the visible object covers at least half of that
    footprint, so a mask pixel is on exactly where the resized image is mostly object.
    """
    height, width = own.shape
    hidden = front & own
    visible = own & ~hidden if cfg.overlaps == "black_out_front" else own
    window = _crop_window(bbox, width, height, cfg.crop, cfg.crop_margin)
    crop = _take(image, *window)
    crop[_take(others, *window) & ~_take(visible, *window)] = 0
    size = cfg.image_size
    small = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    mask = _small_mask(visible, window, size)
    removed = 0
    if visible is not own:
        removed = int(_small_mask(own, window, size).sum()) - int(mask.sum())
    # The mean foreground fraction depends on the crop rule more than on anything else (the
    # paper's ~56% vs our clamp's; see ``crop``): record every rule's on the same objects.
    by_crop = {cfg.crop: float(mask.mean())}
    for mode in CROP_MODES:
        if mode != cfg.crop:
            other_window = _crop_window(bbox, width, height, mode, cfg.crop_margin)
            by_crop[mode] = float(_small_mask(visible, other_window, size).mean())
    return _Crop(
        image=small,
        mask=mask,
        mask_px=int(own.sum()),
        front_px=int(hidden.sum()),
        removed_px=removed,
        foreground_by_crop=by_crop,
    )


def _ann_mask(split: CocoSplit, ann: _Ann) -> np.ndarray:
    try:
        mask = split.coco.annToMask(split.coco.anns[ann.id])
    except Exception as exc:  # pycocotools raises bare errors from C on bad polygons/RLE
        raise DataError(
            f"{split.annotation_file}: annotation {ann.id} (image {ann.image_id}): segmentation does not "
            f"rasterise ({type(exc).__name__}: {exc}); fix or remove that record"
        ) from None
    return mask.astype(bool)


# --- building --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sample:
    image_id: int
    ann_id: int
    label: int
    crop: _Crop


@dataclass
class _Part:
    """One output split being assembled: which source images feed it and what came out."""

    name: str
    source: CocoSplit
    image_ids: list[int]
    drops: Counter[str] = field(default_factory=Counter)
    annotations: int = 0
    images_decoded: int = 0
    # Objects whose whole output mask lay under front objects (also counted as empty_mask).
    emptied_by_overlap: int = 0
    seconds: float = 0.0
    samples: list[_Sample] = field(default_factory=list)


def _check_class_names(cfg: CocoIcConfig, categories: dict[int, str], annotation_file: Path) -> None:
    """The configured names against the annotation file's own category list (the config
    already checked them against COCO 2017's; a file from another release may differ)."""
    known = set(categories.values())
    for key in ("classes", "exclude"):
        unknown = [c for c in getattr(cfg, key) or () if c not in known]
        if unknown:
            raise ConfigError(
                f"coco_ic config: {key} {unknown} are not COCO categories in {annotation_file}; "
                f"allowed: {', '.join(sorted(known))}"
            )


def _frequency_ranking(counts: Counter[int], top_k: int) -> list[int]:
    """Vaishnavi et al., "Dataset Creation": the top_k classes "based on the frequency";
    ties go to the smaller category id."""
    ranked = sorted((cid for cid, n in counts.items() if n > 0), key=lambda cid: (-counts[cid], cid))
    return ranked[:top_k]


def _holdout(image_ids: list[int], objects: dict[int, Counter[int]], fraction: float, seed: int) -> set[int]:
    """Test images of a ``train_holdout`` split: whole images, about ``fraction`` of every
    class's objects.

    Images are visited in a seeded hash order; each goes to the side that brings the classes it
    holds closest to ``fraction`` (sum of squared deviations of test count from fraction x
    total, over its classes), ties and images without selected objects by their hash. Every
    class's test count stays within a few images' objects of its target, however rare the
    class, which a plain per-image coin (test iff hash < fraction) does not give.
    """
    rank = {i: _unit_hash(seed, "holdout", i) for i in image_ids}
    total: Counter[int] = Counter()
    test: Counter[int] = Counter()
    held: set[int] = set()
    for i in sorted(image_ids, key=lambda i: (rank[i], i)):
        counts = objects.get(i)
        if not counts:
            if rank[i] < fraction:
                held.add(i)
            continue
        total.update(counts)
        # Deviation d = test - fraction * total if the image goes to train; to test it is d + c.
        # Test lowers sum(d^2) iff sum(c * (2d + c)) < 0.
        change = sum(c * (2.0 * (test[k] - fraction * total[k]) + c) for k, c in counts.items())
        if change < 0 or (change == 0 and rank[i] < fraction):
            held.add(i)
            test.update(counts)
    return held


def _process_part(
    part: _Part,
    anns: list[_Ann],
    eligible: set[int],
    label_of: dict[int, int],
    cfg: CocoIcConfig,
    progress: bool,
) -> None:
    """Crop every eligible object of the part's images, decoding each image once."""
    start = time.perf_counter()
    by_image: dict[int, list[_Ann]] = defaultdict(list)
    for a in anns:
        by_image[a.image_id].append(a)
    todo = [i for i in part.image_ids if any(a.id in eligible for a in by_image[i])]
    for image_id in progress_bar(todo, desc=f"{cfg.name} {part.name}", unit="img", enabled=progress):
        image = part.source.load_image(image_id)
        part.images_decoded += 1
        group = by_image[image_id]
        # Every annotation counts as an object to black out, crowd regions and excluded
        # classes (person) included: the crop must show one label only.
        masks = {a.id: _ann_mask(part.source, a) for a in group}
        sizes = {k: int(m.sum()) for k, m in masks.items()}
        coverage = np.zeros(image.shape[:2], dtype=np.uint16)
        for m in masks.values():
            coverage += m
        for a in group:
            if a.id not in eligible:
                continue
            own = masks[a.id]
            if not own.any():
                part.drops["degenerate"] += 1
                continue
            others = (coverage - own) > 0
            front = np.zeros_like(own)
            for b in group:
                if b.id != a.id and sizes[b.id] < sizes[a.id] and _boxes_meet(a.bbox, b.bbox):
                    front |= masks[b.id]
            crop = _crop_sample(image, own, others, front, a.bbox, cfg)
            if not crop.mask.any():
                part.drops["empty_mask"] += 1
                part.emptied_by_overlap += crop.removed_px > 0
                continue
            part.samples.append(_Sample(image_id, a.id, label_of[a.category_id], crop))
    part.seconds = time.perf_counter() - start


def _boxes_meet(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """Whether two (x, y, w, h) boxes overlap, with a pixel of slack for rasterisation."""
    return (
        a[0] <= b[0] + b[2] + 1
        and b[0] <= a[0] + a[2] + 1
        and a[1] <= b[1] + b[3] + 1
        and b[1] <= a[1] + a[3] + 1
    )


def _apply_cap(part: _Part, cap: int | None, seed: int) -> None:
    if cap is None:
        return
    by_label: dict[int, list[int]] = defaultdict(list)
    for k, s in enumerate(part.samples):
        by_label[s.label].append(k)
    keep: set[int] = set()
    for idx in by_label.values():
        ranked = sorted(idx, key=lambda k: (_unit_hash(seed, "cap", part.name, part.samples[k].ann_id), k))
        keep.update(ranked[:cap])
        part.drops["class_cap"] += max(0, len(idx) - cap)
    part.samples = [s for k, s in enumerate(part.samples) if k in keep]


def _to_split(part: _Part, cfg: CocoIcConfig, classes: list[str], category_ids: list[int]) -> ProcessedSplit:
    size = cfg.image_size
    samples = sorted(part.samples, key=lambda s: (s.image_id, s.ann_id))
    if samples:
        images = np.stack([s.crop.image for s in samples]).astype(np.uint8)
        masks = np.stack([s.crop.mask for s in samples]).astype(bool)
    else:
        images = np.zeros((0, size, size, 3), dtype=np.uint8)
        masks = np.zeros((0, size, size), dtype=bool)
    source_name = part.source.image_dir.name
    return ProcessedSplit(
        images=images,
        labels=np.array([s.label for s in samples], dtype=np.int64),
        ids=np.array([f"{source_name}/{s.image_id}/{s.ann_id}" for s in samples], dtype=str),
        masks=masks,
        meta={
            "dataset": cfg.name,
            "source": "coco",
            "split": part.name,
            "source_split": source_name,
            "classes": classes,
            "num_classes": len(classes),
            "category_ids": category_ids,
            "mask_source": "coco_segmentation",
            "config": asdict(cfg),
        },
    )


def build_coco_ic(
    raw_root: Path, cfg: CocoIcConfig, *, progress: bool = True
) -> tuple[dict[str, ProcessedSplit], dict[str, Any]]:
    """Build {"train", "test"} from a raw COCO folder (``annotations/``, ``train2017/``, ...).

    Returns the splits and a stats dict; everything but ``stats["throughput"]`` is a pure
    function of the input files and ``cfg``. Sample ids are ``<source split>/<image id>/<annotation id>``.
    """
    t0 = time.perf_counter()
    train_src = read_coco(Path(raw_root), "train")
    categories = _categories(train_src)
    _check_class_names(cfg, categories, train_src.annotation_file)
    train_anns = _annotations(train_src, categories)
    excluded = {cid for cid, n in categories.items() if n in cfg.exclude}

    def first_filters(a: _Ann, src: CocoSplit) -> str | None:
        """The drop reason knowable before class selection, or None if the object is usable."""
        if a.iscrowd:
            return "crowd"
        if a.category_id in excluded:
            return "excluded_class"
        info = src.coco.imgs[a.image_id]
        if _is_degenerate(a, int(info["width"]), int(info["height"])):
            return "degenerate"
        if a.area < cfg.min_area:
            return "too_small"
        return None

    # Classes are ranked on train2017's usable objects. With train_holdout that is the whole
    # pool, before the hold-out: the paper's split has the same ratio in every class, so its
    # classes were fixed before it split (and the hold-out needs them to balance the classes).
    usable = [a for a in train_anns if first_filters(a, train_src) is None]
    usable_counts: Counter[int] = Counter(a.category_id for a in usable)
    ranked = _frequency_ranking(usable_counts, cfg.top_k)
    if cfg.classes is None and len(ranked) < cfg.top_k:
        log.warning(
            "coco_ic: top_k=%d but only %d categories have usable training objects; using %d",
            cfg.top_k, len(ranked), len(ranked),
        )  # fmt: skip
    by_name = {n: cid for cid, n in categories.items()}
    selected = ranked if cfg.classes is None else [by_name[c] for c in cfg.classes]
    label_of = {cid: k for k, cid in enumerate(selected)}
    classes = [categories[cid] for cid in selected]

    if cfg.test_split == "val":
        test_src = read_coco(Path(raw_root), "val")
        if _categories(test_src) != categories:
            raise DataError(
                f"{test_src.annotation_file} and {train_src.annotation_file} list different "
                "categories; both must come from the same COCO release"
            )
        parts = [
            (_Part("train", train_src, train_src.image_ids), train_anns),
            (_Part("test", test_src, test_src.image_ids), _annotations(test_src, categories)),
        ]
    else:
        objects: dict[int, Counter[int]] = defaultdict(Counter)
        for a in usable:
            if a.category_id in label_of:
                objects[a.image_id][a.category_id] += 1
        held = _holdout(train_src.image_ids, objects, cfg.test_fraction, cfg.seed)
        parts = [
            (
                _Part("train", train_src, [i for i in train_src.image_ids if i not in held]),
                [a for a in train_anns if a.image_id not in held],
            ),
            (
                _Part("test", train_src, [i for i in train_src.image_ids if i in held]),
                [a for a in train_anns if a.image_id in held],
            ),
        ]

    for part, anns in parts:
        part.annotations = len(anns)
        eligible: set[int] = set()
        for a in anns:
            reason = first_filters(a, part.source)
            # "class not selected" outranks degenerate/too small: those describe objects
            # the dataset would have wanted.
            if reason not in ("crowd", "excluded_class") and a.category_id not in label_of:
                reason = "class_not_selected"
            if reason is None:
                eligible.add(a.id)
            else:
                part.drops[reason] += 1
        _process_part(part, anns, eligible, label_of, cfg, progress)
        cap = cfg.max_per_class_train if part.name == "train" else cfg.max_per_class_test
        _apply_cap(part, cap, cfg.seed)

    splits = {p.name: _to_split(p, cfg, classes, selected) for p, _ in parts}
    total = time.perf_counter() - t0
    stats: dict[str, Any] = {
        "dataset": cfg.name,
        "classes": [
            {"label": k, "name": categories[cid], "category_id": cid} for k, cid in enumerate(selected)
        ],
        "selection": {
            "method": "fixed" if cfg.classes is not None else f"top_{cfg.top_k}",
            # What the frequency rule picks on this data, whichever list is used: the dataset
            # table shows it beside the used list and the paper's.
            "frequency_top_k": [categories[cid] for cid in ranked],
            "pool": train_src.image_dir.name,
            "usable_train_objects": {
                categories[cid]: n for cid, n in sorted(usable_counts.items(), key=lambda t: (-t[1], t[0]))
            },
        },
        "overlaps": cfg.overlaps,
        "crop": cfg.crop,
        "test_split": cfg.test_split,
        "splits": {},
        "throughput": {"seconds_total": round(total, 3)},
    }
    if cfg.test_split == "train_holdout":
        stats["test_fraction"] = cfg.test_fraction
    for part, _ in parts:
        split = splits[part.name]
        kept = len(split)
        assert kept + sum(part.drops.values()) == part.annotations, "every annotation is kept or dropped once"
        stats["splits"][part.name] = {
            "source_split": part.source.image_dir.name,
            "source_images": len(part.image_ids),
            "images_decoded": part.images_decoded,
            "images_with_samples": len({i.split("/")[1] for i in split.ids.tolist()}),
            "annotations": part.annotations,
            "samples": kept,
            "samples_per_class": {c: int((split.labels == k).sum()) for k, c in enumerate(classes)},
            "foreground_fraction": round(float(split.masks.mean()), 6) if kept else None,
            "foreground_fraction_by_crop": _mean_by_crop(part.samples),
            "overlap": _overlap_stats(part, classes),
            "drops": {r: int(part.drops[r]) for r in DROP_REASONS},
        }
        rate = part.images_decoded / part.seconds if part.seconds > 0 else float("nan")
        stats["throughput"][part.name] = {
            "seconds": round(part.seconds, 3),
            "source_images_per_s": round(rate, 2),
        }
        log.info(
            "%s %s: %d samples from %d decoded images in %.1f s (%.1f images/s)",
            cfg.name, part.name, kept, part.images_decoded, part.seconds, rate,
        )  # fmt: skip
    return splits, stats


def _mean_by_crop(samples: list[_Sample]) -> dict[str, float | None]:
    """Mean output foreground fraction of the kept samples under each crop mode (the used one
    equals ``foreground_fraction``)."""
    return {
        mode: round(float(np.mean([s.crop.foreground_by_crop[mode] for s in samples])), 6)
        if samples
        else None
        for mode in CROP_MODES
    }


def _overlap_stats(part: _Part, classes: list[str]) -> dict[str, Any]:
    """What smaller ("front") objects cover of the kept samples' masks, and what the overlap
    rule removed: measured under both rules, so ``keep_inside_own_mask`` shows what it keeps."""

    def summary(samples: list[_Sample]) -> dict[str, Any]:
        mask_px = sum(s.crop.mask_px for s in samples)
        front_px = sum(s.crop.front_px for s in samples)
        removed = sum(s.crop.removed_px for s in samples)
        before = removed + sum(int(s.crop.mask.sum()) for s in samples)
        return {
            "crops": len(samples),
            "crops_with_front_objects": sum(s.crop.front_px > 0 for s in samples),
            "crops_heavily_covered": sum(
                s.crop.front_px > HEAVY_COVER_SHARE * s.crop.mask_px for s in samples
            ),
            "front_share_of_mask_pixels": round(front_px / mask_px, 6) if mask_px else None,
            "output_mask_pixels_removed": removed,
            "output_mask_share_removed": round(removed / before, 6) if before else None,
        }

    by_label: dict[int, list[_Sample]] = defaultdict(list)
    for s in part.samples:
        by_label[s.label].append(s)
    return {
        **summary(part.samples),
        "heavy_cover_share": HEAVY_COVER_SHARE,
        "emptied_and_dropped": part.emptied_by_overlap,
        "per_class": {c: summary(by_label[k]) for k, c in enumerate(classes)},
    }
