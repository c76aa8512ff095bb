"""Processed MNIST and CIFAR-10: the raw images in the processed format, with MNIST's
intensity-threshold foreground masks and, when asked for, CIFAR-10's automatic GrabCut masks
(Wang et al.). The LAT experiment uses the centre box, which needs no mask."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stages.data.cifar_grabcut import CifarGrabCutConfig, cifar_grabcut_split
from stages.data.processed import ProcessedSplit
from stages.data.readers import cifar10_class_names, read_cifar10, read_mnist
from stages.masks.regions import intensity_foreground

MNIST_CLASSES = [str(d) for d in range(10)]
SPLITS = ("train", "test")


@dataclass(frozen=True)
class MnistConfig:
    # MNIST digits are bright strokes on black: a pixel above this uint8 value is foreground.
    # None: no masks.
    foreground_threshold: int | None = None


@dataclass(frozen=True)
class Cifar10Config:
    # Automatic GrabCut foreground masks (Wang et al., §III); None: no masks. With masks, each
    # split keeps only its first `train_masks` / `test_masks` images, so every image has one.
    grabcut: CifarGrabCutConfig | None = None


def _ids(split: str, n: int) -> np.ndarray:
    # Provenance: the index into the official split, which fixes every sample's source.
    return np.array([f"{split}/{i}" for i in range(n)])


def build_mnist(
    raw: Path, cfg: MnistConfig, *, progress: bool = True
) -> tuple[dict[str, ProcessedSplit], dict]:
    splits: dict[str, ProcessedSplit] = {}
    for split in SPLITS:
        images, labels = read_mnist(raw, split)
        masks = None
        if cfg.foreground_threshold is not None:
            masks = intensity_foreground(images, cfg.foreground_threshold)
        splits[split] = ProcessedSplit(
            images=images,
            labels=labels,
            ids=_ids(split, len(labels)),
            masks=masks,
            meta={
                "source": "mnist",
                "split": split,
                "classes": MNIST_CLASSES,
                "num_classes": len(MNIST_CLASSES),
                "mask_source": None if masks is None else f"intensity > {cfg.foreground_threshold}",
            },
        )
    return splits, {}


def build_cifar10(
    raw: Path, cfg: Cifar10Config, *, progress: bool = True
) -> tuple[dict[str, ProcessedSplit], dict]:
    classes = cifar10_class_names(raw)
    splits: dict[str, ProcessedSplit] = {}
    stats: dict[str, Any] = {}
    for split in SPLITS:
        images, labels = read_cifar10(raw, split)
        processed = ProcessedSplit(
            images=images,
            labels=labels,
            ids=_ids(split, len(labels)),
            meta={
                "source": "cifar10",
                "split": split,
                "classes": list(classes),
                "num_classes": len(classes),
                "mask_source": None,
            },
        )
        if cfg.grabcut is not None:
            started = time.perf_counter()
            processed, stats[split] = cifar_grabcut_split(processed, cfg.grabcut, split, progress=progress)
            stats.setdefault("throughput", {})[split] = {
                "grabcut_images_per_s": len(processed) / max(time.perf_counter() - started, 1e-9)
            }
        splits[split] = processed
    return splits, stats
