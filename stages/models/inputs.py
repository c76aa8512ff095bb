"""What a model sees of an image: the whole image, or only its foreground (Vaishnavi et al.'s
X_FG models see x∘F, the background zeroed, at training and at test time)."""

from __future__ import annotations

import torch

from stages.utils.errors import DataError
from stages.utils.layouts import as_batch_masks, require_images


def model_view(x: torch.Tensor, masks: torch.Tensor | None, model_input: str) -> torch.Tensor:
    """``x`` for ``natural`` models; x∘F for ``foreground`` ones.

    Args:
        x: images, float (N, C, H, W).
        masks: the foreground, bool (N, 1, H, W) (or (N, H, W), converted), N, H, W the
            images'; only read for ``foreground`` models.
        model_input: ``"natural"`` or ``"foreground"``.

    Multiplying by a 0/1 mask keeps foreground pixels bit-identical and makes the background
    exactly 0.
    """
    require_images(x, "x", "model_view")
    if model_input == "natural":
        return x
    if model_input != "foreground":
        raise ValueError(f"model input must be 'natural' or 'foreground', got {model_input!r}")
    if masks is None:
        raise DataError("a foreground-input model needs the dataset's foreground masks, and it has none")
    return x * as_batch_masks(masks, x, "masks", "model_view").to(x.dtype)
