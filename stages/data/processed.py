"""The processed-split format every training and attack stage reads.

One uncompressed ``.npz`` per split: ``images`` uint8 (N, H, W, C), ``labels`` int64 (N,),
``masks`` bool (N, H, W) foreground masks (absent when the dataset has none), ``ids`` str (N,)
provenance of each sample (source file / image / annotation id), and ``meta`` a JSON string
(dataset name, class names, mask source, ...). Uncompressed so it loads at disk speed.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stages.utils.errors import DataError
from stages.utils.io import atomic_path


@dataclass
class ProcessedSplit:
    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray  # int64 (N,)
    ids: np.ndarray  # str (N,)
    masks: np.ndarray | None = None  # bool (N, H, W)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N,H,W,C), got {self.images.dtype} {self.images.shape}")
        if self.labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {self.labels.shape}")
        if self.ids.shape != (n,):
            raise ValueError(f"ids must have shape ({n},), got {self.ids.shape}")
        if self.masks is not None and (
            self.masks.dtype != np.bool_ or self.masks.shape != self.images.shape[:3]
        ):
            raise ValueError(
                f"masks must be bool {self.images.shape[:3]}, got {self.masks.dtype} {self.masks.shape}"
            )

    def __len__(self) -> int:
        return len(self.images)

    def head(self, n: int | None) -> ProcessedSplit:
        """The first ``n`` samples (all when ``n`` is None): the same images for every run."""
        if n is None or n >= len(self):
            return self
        return ProcessedSplit(
            images=self.images[:n],
            labels=self.labels[:n],
            ids=self.ids[:n],
            masks=None if self.masks is None else self.masks[:n],
            meta=self.meta,
        )

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Images as float (N, C, H, W) in [0, 1], contiguous (NCHW in memory), labels int64,
        masks bool (N, 1, H, W).

        Contiguous, not the permuted view of the stored NHWC array: with such NHWC-strided
        batches, torch 2.11's CPU backward pass through ResNet-34 corrupted memory ("double free
        or corruption") at batch sizes 3, 5, 7, 9 and 15, i.e. at an epoch's last partial batch.
        """
        x = (
            torch.from_numpy(self.images)
            .permute(0, 3, 1, 2)
            .to(torch.float32, memory_format=torch.contiguous_format)
        )
        x = x.div_(255.0)
        y = torch.from_numpy(self.labels.astype(np.int64))
        m = None if self.masks is None else torch.from_numpy(self.masks).unsqueeze(1)
        return x, y, m


def require_images(split: ProcessedSplit, path: str | Path, purpose: str) -> ProcessedSplit:
    """``split`` itself, or a DataError naming ``path`` when it holds no image to ``purpose``."""
    if len(split) == 0:
        raise DataError(
            f"{path}: holds no images to {purpose}; the dataset's statistics "
            f"(results/<scale>/datasets/<dataset>.json) say what the builder dropped and why. Use a mirror "
            f"with more images or other builder options in params.yaml"
        )
    return split


def save_split(path: str | Path, split: ProcessedSplit) -> None:
    arrays: dict[str, np.ndarray] = {
        "images": np.ascontiguousarray(split.images),
        "labels": split.labels.astype(np.int64),
        "ids": split.ids.astype(str),
        "meta": np.array(json.dumps(split.meta, sort_keys=True)),
    }
    if split.masks is not None:
        arrays["masks"] = np.ascontiguousarray(split.masks)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_split(path: str | Path) -> ProcessedSplit:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: processed split not found; run the pipeline's prepare stage first")
    try:
        with np.load(path, allow_pickle=False) as data:
            return ProcessedSplit(
                images=data["images"],
                labels=data["labels"],
                ids=data["ids"],
                masks=data["masks"] if "masks" in data.files else None,
                meta=json.loads(str(data["meta"])),
            )
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise DataError(
            f"{path}: not a valid processed split ({exc}); delete it and rerun the prepare stage"
        ) from None


def split_stats(split: ProcessedSplit) -> dict[str, object]:
    """A split's summary for its dataset's statistics: size, image shape, images per class
    and (masked datasets) the mean foreground fraction."""
    counts = np.bincount(split.labels, minlength=int(split.meta.get("num_classes", 0)))
    stats: dict[str, object] = {
        "samples": len(split),
        "image_shape": list(split.images.shape[1:]),
        "per_class": {str(c): int(k) for c, k in zip(split.meta.get("classes", []), counts, strict=False)},
    }
    if split.masks is not None:
        stats["mean_foreground_fraction"] = round(float(split.masks.mean()), 6)
    return stats
