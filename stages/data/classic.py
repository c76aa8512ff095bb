"""Processed MNIST and CIFAR-10: the raw images in the processed format, plus MNIST's
intensity-threshold foreground masks. (CIFAR-10's foreground comes from GrabCut, built by
its own stage; the LAT experiment uses the centre box, which needs no mask.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.config import DatasetSpec
from stages.data.processed import ProcessedSplit
from stages.data.readers import cifar10_class_names, read_cifar10, read_mnist
from stages.masks.regions import intensity_foreground

MNIST_CLASSES = [str(d) for d in range(10)]
SPLITS = ("train", "test")


def _ids(split: str, n: int) -> np.ndarray:
    # Provenance: the index into the official split, which fixes every sample's source.
    return np.array([f"{split}/{i}" for i in range(n)])


def build_mnist(raw: Path, spec: DatasetSpec, split: str) -> ProcessedSplit:
    images, labels = read_mnist(raw, split)
    if spec.foreground_threshold is None:
        masks, mask_source = None, None
    else:
        masks = intensity_foreground(images, spec.foreground_threshold)
        mask_source = f"intensity > {spec.foreground_threshold}"
    return ProcessedSplit(
        images=images,
        labels=labels,
        ids=_ids(split, len(labels)),
        masks=masks,
        meta={
            "dataset": spec.name,
            "source": "mnist",
            "split": split,
            "classes": MNIST_CLASSES,
            "num_classes": len(MNIST_CLASSES),
            "mask_source": mask_source,
        },
    )


def build_cifar10(raw: Path, spec: DatasetSpec, split: str) -> ProcessedSplit:
    images, labels = read_cifar10(raw, split)
    classes = cifar10_class_names(raw)
    return ProcessedSplit(
        images=images,
        labels=labels,
        ids=_ids(split, len(labels)),
        masks=None,
        meta={
            "dataset": spec.name,
            "source": "cifar10",
            "split": split,
            "classes": list(classes),
            "num_classes": len(classes),
            "mask_source": None,
        },
    )


BUILDERS = {"mnist": build_mnist, "cifar10": build_cifar10}


def split_stats(split: ProcessedSplit) -> dict[str, object]:
    counts = np.bincount(split.labels, minlength=int(split.meta.get("num_classes", 0)))
    stats: dict[str, object] = {
        "samples": len(split),
        "image_shape": list(split.images.shape[1:]),
        "per_class": {str(c): int(k) for c, k in zip(split.meta.get("classes", []), counts, strict=False)},
    }
    if split.masks is not None:
        stats["mean_foreground_fraction"] = round(float(split.masks.mean()), 6)
    return stats
