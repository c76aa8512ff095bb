"""CIFAR-10 foreground masks by automatic GrabCut (Wang et al.), and how good such masks are.

Wang et al. started GrabCut from a rectangle and refined each mask by hand; we cannot, so the
masks come from :func:`stages.masks.grabcut.grabcut_rect` alone (centred rectangle on a 4x
upscaled image). Because CIFAR-10 has no ground truth, :func:`grabcut_vs_ground_truth` runs
the *same* routine on images that do have one (MS-COCO-IC crops) to say how far automatic
masks are from true object masks, beside the trivial centred-rectangle baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stages.data.processed import ProcessedSplit
from stages.masks.grabcut import GrabCutConfig, RectJob, box_mask, centred_box, iou_batch, masks_parallel

CIFAR_RECT_MARGIN = 0.05


@dataclass(frozen=True)
class CifarGrabCutConfig:
    """Which CIFAR-10 images get GrabCut masks, and how (a params.yaml block)."""

    # A 5% margin, not GTSRB's 10%: CIFAR objects fill the frame, so a wider ring of probable
    # background teaches the background model the object's colours and the cut collapses (on the
    # first 200 test images: 31 cuts under 10% foreground at 0.05, 52 at 0.1, 60 at 0.15).
    grabcut: GrabCutConfig = field(default_factory=lambda: GrabCutConfig(rect_margin=CIFAR_RECT_MARGIN))
    # Masks for the first N images of each split (None = all). Wang et al. attack 500 test
    # images and train without masks, so the paper scale needs 500 test masks and no train ones.
    train_masks: int | None = 0
    test_masks: int | None = 500

    def __post_init__(self) -> None:
        for name in ("train_masks", "test_masks"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"cifar grabcut {name} must be >= 0 or None, got {value}")

    def count(self, split: str) -> int | None:
        return {"train": self.train_masks, "test": self.test_masks}[split]


def _run(images: Sequence[np.ndarray], cfg: GrabCutConfig, workers: int | None, progress: bool, desc: str):
    results = masks_parallel(list(images), RectJob(cfg), workers=workers, progress=progress, desc=desc)
    if not results:
        shape = (0, *np.asarray(images).shape[1:3]) if len(np.asarray(images).shape) >= 3 else (0, 0, 0)
        return np.zeros(shape, dtype=bool), np.zeros(0, dtype=bool)
    return np.stack([m for m, _ in results]), np.array([fb for _, fb in results], dtype=bool)


def cifar_grabcut_masks(
    images: np.ndarray, cfg: CifarGrabCutConfig, *, workers: int | None = None, progress: bool = True
) -> tuple[np.ndarray, dict[str, Any]]:
    """Bool (N, 32, 32) masks of all ``images`` and their statistics (no timings: those are
    logged, and vary run to run)."""
    masks, fell_back = _run(images, cfg.grabcut, workers, progress, "cifar10 grabcut")
    stats = {
        "masked": len(masks),
        "fallbacks": int(fell_back.sum()),
        "fallback_fraction": round(float(fell_back.mean()), 6) if len(masks) else None,
        "mean_fg_fraction": round(float(masks.mean()), 6) if len(masks) else None,
    }
    return masks, stats


def cifar_grabcut_split(
    split: ProcessedSplit,
    cfg: CifarGrabCutConfig,
    split_name: str,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[ProcessedSplit, dict[str, Any]]:
    """The first ``cfg.count(split_name)`` samples of a processed CIFAR-10 split, with masks.

    Only masked samples are kept, so every sample of a masked dataset has a real mask (a
    foreground/background attack can never meet a missing one); the unmasked full split stays
    the plain ``cifar10`` dataset for training.
    """
    head = split.head(cfg.count(split_name))
    masks, stats = cifar_grabcut_masks(head.images, cfg, workers=workers, progress=progress)
    meta = dict(split.meta, mask_source="grabcut/rect")
    out = ProcessedSplit(images=head.images, labels=head.labels, ids=head.ids, masks=masks, meta=meta)
    return out, stats


def grabcut_vs_ground_truth(
    images: np.ndarray,
    true_masks: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    cfg: GrabCutConfig,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """IoU of the automatic GrabCut (the routine CIFAR-10 masks come from) against true masks,
    per class and overall, with the centred rectangle alone as the baseline it must beat."""
    images, true_masks, labels = np.asarray(images), np.asarray(true_masks, dtype=bool), np.asarray(labels)
    if true_masks.shape != images.shape[:3] or labels.shape != (len(images),):
        raise ValueError(
            f"images {images.shape}, true_masks {true_masks.shape} and labels {labels.shape} do not match"
        )
    pred, fell_back = _run(images, cfg, workers, progress, "grabcut vs truth")
    h, w = images.shape[1:3]
    rect = np.broadcast_to(box_mask((h, w), centred_box(h, w, cfg.rect_margin)), true_masks.shape)
    ious, rect_ious = iou_batch(pred, true_masks), iou_batch(rect, true_masks)

    def summary(sel: np.ndarray) -> dict[str, Any]:
        n = int(sel.sum())
        if n == 0:
            return {"n": 0}
        return {
            "n": n,
            "mean_iou": round(float(ious[sel].mean()), 4),
            "median_iou": round(float(np.median(ious[sel])), 4),
            "rect_mean_iou": round(float(rect_ious[sel].mean()), 4),
            "rect_median_iou": round(float(np.median(rect_ious[sel])), 4),
            "fallbacks": int(fell_back[sel].sum()),
            "pred_fg_fraction": round(float(pred[sel].mean()), 4),
            "true_fg_fraction": round(float(true_masks[sel].mean()), 4),
        }

    return {
        "overall": summary(np.ones(len(images), dtype=bool)),
        "per_class": {str(name): summary(labels == c) for c, name in enumerate(class_names)},
        "rect_margin": cfg.rect_margin,
    }
