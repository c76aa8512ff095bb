"""Loss-gradient images (dual-perturbation paper, §5.5 and Fig. 6, after Tsipras et al. 2019).

The paper compares *which pixels matter* to Clean, AT-PGD and AT-Dual models by drawing
∇_x L(h(x), y) on the same clean test inputs: a robust model's gradient looks like the object,
a clean model's is noise, and AT-Dual's has sharper foreground edges and a quieter background
than AT-PGD's. This module computes those gradients, turns them into displayable images the
way Tsipras et al. ("Robustness may be at odds with accuracy", Fig. 2) do, and draws the grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from stages.models.inputs import model_view  # noqa: E402
from stages.utils.io import atomic_path  # noqa: E402

# Tsipras et al. (2019, Fig. 2): each image's gradient is clipped to its mean ± 3 standard
# deviations, so a few extreme pixels do not squash the rest of the picture into one grey.
CLIP_STDS = 3.0
# The clipped range [mean - 3σ, mean + 3σ] maps linearly onto [0, 1]: the mean (and any
# constant gradient, which has no contrast to show) lands on mid grey.
GREY = 0.5

# Grid layout, in the house style of stages/report/grids.py.
PANEL_INCHES = 1.6  # width and height of one image panel
TITLE_INCHES = 0.6  # extra height for the figure title
DPI = 80
INPUT_ROW_TITLE = "input"


def input_gradients(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    masks: torch.Tensor | None = None,
    model_input: str = "natural",
) -> torch.Tensor:
    """∇_x of the summed cross-entropy of ``model`` on ``(x, y)``, the same shape as ``x``.

    The loss is summed, not averaged, so each image's gradient does not depend on how many
    others share its batch. The model runs in eval mode (batch norm on its running statistics,
    as at test time: Fig. 6 shows the trained classifier, not a training step) and is put back
    in the mode it was in. Only ``x`` is differentiated (``torch.autograd.grad``), so no
    gradient is accumulated on the parameters' ``.grad``. A ``foreground``-input model sees
    x∘F (stages/models/inputs.py), so its gradient is zero on the background.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            x_in = x.detach().clone().requires_grad_(True)
            logits = model(model_view(x_in, masks, model_input))
            loss = F.cross_entropy(logits, y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x_in)
    finally:
        model.train(was_training)
    return grad.detach()


def gradient_image(grad: torch.Tensor) -> torch.Tensor:
    """Each image of ``grad`` (N, ...) as a displayable image in [0, 1] (Tsipras et al. 2019).

    Per image, over all its pixels and channels: clip to mean ± ``CLIP_STDS`` standard
    deviations and rescale that range linearly onto [0, 1], so the mean is mid grey. A constant
    gradient (σ = 0) has nothing to show and is uniformly ``GREY``.
    """
    flat = grad.detach().float().flatten(1)
    mean = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, unbiased=False, keepdim=True)
    half_range = CLIP_STDS * std
    # Where σ = 0 every value equals the mean; divide by 1 instead of 0 to land on 0 -> GREY.
    safe = torch.where(half_range > 0, half_range, torch.ones_like(half_range))
    unit = ((flat - mean) / safe).clamp(-1.0, 1.0)
    return (GREY + GREY * unit).reshape(grad.shape)


def _as_hwc(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> what imshow takes: (H, W) for one channel, else (H, W, C)."""
    array = image.detach().cpu().float().clamp(0.0, 1.0).permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def save_gradient_grid(
    path: str | Path,
    images: torch.Tensor,
    rows: Mapping[str, torch.Tensor],
    *,
    labels: Sequence[int] | torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> None:
    """A PNG like the paper's Fig. 6: the inputs in the first row, then one row per entry of
    ``rows`` (title -> gradient images, e.g. "Clean", "AT-PGD", "AT-Dual"), one column per image.

    ``images`` and every row are (N, C, H, W) in [0, 1] (rows from :func:`gradient_image`).
    Columns are headed by the class name of ``labels`` (or the label itself without
    ``class_names``). The file is written atomically. The figure is exactly
    (N·PANEL_INCHES) x ((1 + len(rows))·PANEL_INCHES + TITLE_INCHES) inches at ``DPI``.
    """
    n = len(images)
    if n == 0:
        raise ValueError("save_gradient_grid needs at least one image")
    for name, row in rows.items():
        if row.shape != images.shape:
            raise ValueError(f"row {name!r} has shape {tuple(row.shape)}, the inputs {tuple(images.shape)}")
    shown = {INPUT_ROW_TITLE: images, **rows}
    fig, axes = plt.subplots(
        len(shown),
        n,
        figsize=(n * PANEL_INCHES, len(shown) * PANEL_INCHES + TITLE_INCHES),
        squeeze=False,
    )
    for r, (name, row) in enumerate(shown.items()):
        for c in range(n):
            ax = axes[r, c]
            panel = _as_hwc(row[c])
            ax.imshow(
                panel, cmap="gray" if panel.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest"
            )
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=9)
    if labels is not None:
        for c, label in enumerate(labels[:n]):
            label = int(label)
            text = class_names[label] if class_names is not None and label < len(class_names) else str(label)
            axes[0, c].set_title(text, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    finally:
        plt.close(fig)
