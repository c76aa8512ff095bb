"""Example grids of masked datasets (image, mask, masked image), as the papers' Tables 2-3."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from stages.data.processed import ProcessedSplit  # noqa: E402
from stages.utils.io import atomic_path  # noqa: E402


def pick_examples(split: ProcessedSplit, per_class: int, max_classes: int) -> np.ndarray:
    """Indices of the first ``per_class`` samples of each of the first ``max_classes`` classes
    present: deterministic, and every class that is shown is shown alike."""
    chosen: list[int] = []
    for label in np.unique(split.labels)[:max_classes]:
        chosen.extend(np.flatnonzero(split.labels == label)[:per_class].tolist())
    return np.array(chosen, dtype=int)


def save_mask_grid(
    path: str | Path,
    split: ProcessedSplit,
    *,
    title: str,
    per_class: int = 1,
    max_classes: int = 10,
    scale: int = 4,
) -> None:
    """A PNG with one row per example: image, foreground mask, background-zeroed image (only
    the image for a dataset without masks)."""
    idx = pick_examples(split, per_class, max_classes)
    classes = split.meta.get("classes") or [str(c) for c in range(int(split.labels.max()) + 1)]
    rows = len(idx)
    columns = ("image", "mask", "masked") if split.masks is not None else ("image",)
    fig, axes = plt.subplots(
        rows, len(columns), figsize=(len(columns) * 1.6, rows * 1.6 + 0.6), squeeze=False
    )
    for r, i in enumerate(idx):
        image = split.images[i]
        shown = [image]
        if split.masks is not None:
            mask = split.masks[i]
            shown += [mask.astype(np.uint8) * 255, image * mask[..., None]]
        for c, panel in enumerate(shown):
            ax = axes[r, c]
            big = np.kron(panel, np.ones((scale, scale, 1) if panel.ndim == 3 else (scale, scale)))
            ax.imshow(
                big.astype(np.uint8).squeeze(),
                cmap="gray" if big.ndim == 2 or big.shape[-1] == 1 else None,
                vmin=0,
                vmax=255,
                interpolation="nearest",
            )
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(str(classes[int(split.labels[i])]), fontsize=8)
    for c, name in enumerate(columns):
        axes[0, c].set_title(name, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
