"""The salience interface of the dual-perturbation paper, and what is computed from a map.

The paper ("Towards Robustness against Unsuspicious Adversarial Examples", ICLR 2021
submission) uses salience twice:

* §3.2: the attack's salience term S(x) is the *foreground score*, the sum of a fixation
  density (DeepGaze II, which sums to 1 over the image) over the foreground pixels:
  :func:`foreground_score`.
* §3.3: for datasets without segmentation the foreground mask is the density thresholded
  at t = 0.5 * (s_min(x) + s_max(x)) per image: :func:`threshold_mask`.

Both only need *some* map that sums to 1 per image, so the model is behind a small
protocol, :class:`SalienceModel`. DeepGaze II weights cannot be fetched here; the classical
spectral-residual model (:mod:`stages.saliency.spectral_residual`) implements the protocol,
and a learned fixation model can be plugged in wherever its weights exist (its log-density
output goes through ``exp`` and :func:`normalize_density`).
"""

from __future__ import annotations

from typing import Protocol

import torch


class SalienceModel(Protocol):
    """Maps images to a per-image fixation density.

    ``__call__(x)`` takes images (N, C, H, W) in [0, 1] and returns a non-negative map
    (N, 1, H, W) summing to 1 over each image, differentiable w.r.t. ``x`` so the attack can
    ascend the salience term. The map's resolution is the image's, so a pixel mask indexes
    it directly. An ``nn.Module`` whose ``forward`` does this satisfies the protocol.
    """

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


def _check_map(saliency: torch.Tensor, what: str) -> None:
    if saliency.dim() != 4 or saliency.shape[1] != 1:
        raise ValueError(f"{what} expects a saliency map (N, 1, H, W), got shape {tuple(saliency.shape)}")


def normalize_density(raw: torch.Tensor) -> torch.Tensor:
    """``raw`` (N, 1, H, W), non-negative, scaled to sum to 1 per image (differentiably).

    The paper's foreground score is only comparable across images (and with its 0.5 rule
    of thumb) for maps that are densities, so every model ends with this. An all-zero map
    stays all zero rather than dividing by zero.
    """
    _check_map(raw, "normalize_density")
    total = raw.sum(dim=(1, 2, 3), keepdim=True).clamp_min(torch.finfo(raw.dtype).tiny)
    return raw / total


def foreground_score(saliency: torch.Tensor, foreground: torch.Tensor) -> torch.Tensor:
    """The paper's FS (§3.2): the density summed over the foreground pixels, shape (N,).

    For a density (sum 1) FS lies in [0, 1]; FS well above the foreground's area fraction
    (the paper: "significantly higher than 0.5") means predicted attention stays on the
    object. Differentiable w.r.t. ``saliency``, which is how the attack's λ·S term ascends it.

    Args:
        saliency: (N, 1, H, W) density, e.g. a :class:`SalienceModel`'s output.
        foreground: bool (N, 1, H, W), True on the object (F(x) in the paper).
    """
    _check_map(saliency, "foreground_score")
    if foreground.dtype != torch.bool:
        raise ValueError(f"a foreground mask must be a bool tensor, got dtype {foreground.dtype}")
    if foreground.shape != saliency.shape:
        raise ValueError(
            f"foreground mask of shape {tuple(foreground.shape)} does not match the saliency map "
            f"{tuple(saliency.shape)}"
        )
    return torch.where(foreground, saliency, torch.zeros_like(saliency)).flatten(1).sum(dim=1)


def threshold_mask(saliency: torch.Tensor) -> torch.Tensor:
    """Foreground by thresholding salience (§3.3): pixels above t = 0.5 (s_min + s_max).

    The paper's mask for datasets without segmentation (STL-10, ImageNet-10), computed per
    image. A constant map has no pixel above its midpoint and so an empty foreground (the
    whole image is background), which is the honest answer for an image with nothing salient.

    Returns:
        bool (N, 1, H, W), the region layout of :mod:`stages.masks.regions`.
    """
    _check_map(saliency, "threshold_mask")
    s = saliency.detach()
    t = 0.5 * (s.amin(dim=(1, 2, 3), keepdim=True) + s.amax(dim=(1, 2, 3), keepdim=True))
    return s > t
