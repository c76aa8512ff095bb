"""GTSRB-IC (Vaishnavi et al.): GTSRB at 32x32 with automatic graph-cut foreground masks.

The paper seeds a min-cut with random pixels near the image centre and reports ~25% foreground
(blaming its ad-hoc segmenter). GTSRB's CSVs also give every sign's bounding box, a far better
prior; both are offered (``seeding``) so the two can be built and compared.

Masks are cut at ``grabcut.work_size`` (tiny signs are upscaled first), then image and mask
are both taken to ``image_size`` x ``image_size`` from the same full frame, so they stay
aligned: the image by area interpolation, the mask by area + majority vote straight from the
work size (one resampling, unbiased foreground fraction). Like the usual GTSRB pipelines, the
frame is resized without keeping its aspect ratio (the originals are nearly square).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stages.data.processed import ProcessedSplit
from stages.data.readers import GtsrbSplit, read_gtsrb, split_gtsrb_by_track
from stages.data.sources import GTSRB_NUM_CLASSES
from stages.masks.grabcut import GrabCutConfig, SeedConfig, SeededJob, Seeding, masks_parallel
from stages.utils.errors import DataError

log = logging.getLogger(__name__)

GTSRB_CLASSES = [str(c) for c in range(GTSRB_NUM_CLASSES)]


@dataclass(frozen=True)
class GtsrbIcConfig:
    """Every setting of the GTSRB-IC build (a params.yaml block)."""

    # Vaishnavi et al. train VGG-19 on 32x32 GTSRB-IC images.
    image_size: int = 32
    # "centre" = the paper's random pixels near the centre; "roi" = the CSV's sign box.
    seeding: Seeding = "centre"
    seed_count: int = SeedConfig.count
    seed_radius: float = SeedConfig.radius
    grabcut: GrabCutConfig = field(default_factory=GrabCutConfig)
    # Used only when the mirror has no official test split: hold out whole tracks. 0.2 is the
    # usual 80/20 split, close to the official 39,209 / 12,630 (24%).
    test_fraction: float = 0.2
    split_seed: int = 0
    # At most this many images per class and split (the first in file order); None = all.
    per_class_cap: int | None = None

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise ValueError(f"gtsrb_ic image_size must be >= 8, got {self.image_size}")
        if self.per_class_cap is not None and self.per_class_cap < 1:
            raise ValueError(f"gtsrb_ic per_class_cap must be >= 1 or None, got {self.per_class_cap}")

    @property
    def seeds(self) -> SeedConfig:
        return SeedConfig(method=self.seeding, count=self.seed_count, radius=self.seed_radius)


def _cap(labels: np.ndarray, cap: int | None) -> np.ndarray:
    """Indices of the first ``cap`` samples of each class, in file order (all when None)."""
    if cap is None:
        return np.arange(len(labels))
    keep = np.concatenate([np.flatnonzero(labels == c)[:cap] for c in np.unique(labels)])
    return np.sort(keep)


def _holdout(
    train: GtsrbSplit, ids: list[str], cfg: GtsrbIcConfig
) -> tuple[GtsrbSplit, list[str], GtsrbSplit, list[str]]:
    """Track hold-out that keeps each sample's provenance id (file names repeat across classes,
    so the ids ride through the split in place of the file names and are swapped back)."""
    tagged = GtsrbSplit(
        train.images, train.labels, train.rois, train.tracks, [str(i) for i in range(len(train))]
    )
    tr, te = split_gtsrb_by_track(tagged, cfg.test_fraction, cfg.split_seed)
    out = []
    for part in (tr, te):
        index = [int(i) for i in part.filenames]
        part.filenames = [train.filenames[i] for i in index]
        out.append((part, [ids[i] for i in index]))
    (tr, tr_ids), (te, te_ids) = out
    return tr, tr_ids, te, te_ids


def _resize_images(images: list[np.ndarray], size: int) -> np.ndarray:
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        interp = cv2.INTER_AREA if min(img.shape[:2]) >= size else cv2.INTER_LINEAR
        out[i] = cv2.resize(img, (size, size), interpolation=interp)
    return out


def _mask_split(
    split: GtsrbSplit, ids: list[str], name: str, cfg: GtsrbIcConfig, workers: int | None, progress: bool
) -> tuple[ProcessedSplit, dict[str, Any], dict[str, Any]]:
    size = cfg.image_size
    job = SeededJob(cfg=cfg.grabcut, seeding=cfg.seeds, out_size=(size, size))
    items = [(img, tuple(int(v) for v in roi)) for img, roi in zip(split.images, split.rois, strict=True)]
    start = time.perf_counter()
    results = masks_parallel(items, job, workers=workers, progress=progress, desc=f"gtsrb_ic {name}")
    elapsed = time.perf_counter() - start
    masks = np.stack([m for m, _ in results]) if results else np.zeros((0, size, size), bool)
    fell_back = np.array([fb for _, fb in results], dtype=bool)
    processed = ProcessedSplit(
        images=_resize_images(split.images, size),
        labels=split.labels.astype(np.int64),
        ids=np.array(ids, dtype=str),
        masks=masks,
        meta={
            "dataset": "gtsrb_ic",
            "source": "gtsrb",
            "split": name,
            "classes": GTSRB_CLASSES,
            "num_classes": GTSRB_NUM_CLASSES,
            "mask_source": f"grabcut/{cfg.seeding}",
        },
    )
    counts = np.bincount(processed.labels, minlength=GTSRB_NUM_CLASSES)
    stats = {
        "samples": len(processed),
        "per_class": {c: int(k) for c, k in zip(GTSRB_CLASSES, counts, strict=True)},
        "mean_foreground_fraction": round(float(masks.mean()), 6) if len(masks) else None,
        "fallbacks": int(fell_back.sum()),
        "fallback_fraction": round(float(fell_back.mean()), 6) if len(fell_back) else None,
    }
    n = len(processed)
    throughput = {
        "images": n,
        "seconds": round(elapsed, 3),
        "images_per_s": round(n / elapsed, 2) if elapsed > 0 else None,
        "workers": workers,
    }
    return processed, stats, throughput


def build_gtsrb_ic(
    raw_root: Path, cfg: GtsrbIcConfig, *, workers: int | None = None, progress: bool = True
) -> tuple[dict[str, ProcessedSplit], dict[str, Any]]:
    """The train and test splits of GTSRB-IC and their statistics.

    Train comes from Final_Training; test from the official test set, or, when the mirror has
    none, from whole tracks held out of Final_Training (consecutive frames of one physical
    sign are near-duplicates, so an image-level split would leak). Stats hold samples per class,
    mean foreground fraction (paper: ~25%) and GrabCut fallbacks per split, where the test split
    came from, and (under ``throughput``, as it varies run to run) the timings.
    """
    raw_root = Path(raw_root)
    train = read_gtsrb(raw_root, "train")
    train_ids = [
        f"Final_Training/{int(lab):05d}/{n}" for lab, n in zip(train.labels, train.filenames, strict=True)
    ]
    try:
        test = read_gtsrb(raw_root, "test")
        test_ids = [f"Final_Test/{n}" for n in test.filenames]
        test_source = "official Final_Test"
    except DataError as exc:
        log.warning("gtsrb_ic: %s; holding out %.0f%% of training tracks", exc, 100 * cfg.test_fraction)
        train, train_ids, test, test_ids = _holdout(train, train_ids, cfg)
        test_source = (
            f"held out of Final_Training by track (test_fraction={cfg.test_fraction}, "
            f"seed={cfg.split_seed}): the mirror has no official test split"
        )
    splits: dict[str, ProcessedSplit] = {}
    stats: dict[str, Any] = {
        "mask_source": f"grabcut/{cfg.seeding}",
        "test_source": test_source,
        "test_held_out": test_source != "official Final_Test",
        "throughput": {},
    }
    for name, split, ids in (("train", train, train_ids), ("test", test, test_ids)):
        keep = _cap(split.labels, cfg.per_class_cap)
        capped, ids = split.subset(keep), [ids[int(i)] for i in keep]
        processed, split_stats, throughput = _mask_split(capped, ids, name, cfg, workers, progress)
        splits[name] = processed
        stats[name] = split_stats
        stats["throughput"][name] = throughput
    return splits, stats
