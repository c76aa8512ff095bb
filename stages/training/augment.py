"""Training-time augmentation of a batch, applied alike to images and their foreground masks
so that an X_FG model's mask still covers its object after a crop or flip. Randomness comes
from the caller's generator, so a resumed epoch repeats the same augmentations."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from stages.config import AugmentSpec


def _crop(t: torch.Tensor, pad: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    n, c, h, w = t.shape
    padded = F.pad(t, (pad, pad, pad, pad))
    rows = (dy[:, None] + torch.arange(h, device=t.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=t.device))[:, None, None, :]
    batch = torch.arange(n, device=t.device)[:, None, None, None]
    chans = torch.arange(c, device=t.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def augment_batch(
    x: torch.Tensor, masks: torch.Tensor | None, spec: AugmentSpec, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random crop (zero padding of ``spec.crop_padding``) and horizontal flip of each image."""
    n = x.shape[0]
    if spec.crop_padding > 0:
        offsets = torch.randint(
            0, 2 * spec.crop_padding + 1, (2, n), generator=generator, device=generator.device
        ).to(x.device)
        x = _crop(x, spec.crop_padding, offsets[0], offsets[1])
        if masks is not None:
            masks = _crop(masks.to(torch.uint8), spec.crop_padding, offsets[0], offsets[1]).bool()
    if spec.horizontal_flip:
        flip = (torch.rand(n, generator=generator, device=generator.device) < 0.5).to(x.device)
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        if masks is not None:
            masks = torch.where(flip.view(-1, 1, 1, 1), masks.flip(3), masks)
    return x, masks
