"""Spectral-residual salience (Hou & Zhang, "Saliency Detection: A Spectral Residual
Approach", CVPR 2007) in torch, differentiable end to end.

The dual-perturbation paper scores salience with DeepGaze II, whose weights are not
available here; this classical, weight-free model stands in for it behind
:class:`stages.saliency.base.SalienceModel`. The idea (Hou & Zhang §2): the log-amplitude
spectrum of natural images is locally smooth, so what departs from its local average (the
*spectral residual*) is the unexpected, attention-grabbing content. With A, P the amplitude
and phase of the image's Fourier transform,

    L = log A,   R = L - h_n * L,   S = g * |F^-1[exp(R + iP)]|^2        (their eqs. 5-9)

with h_n an n x n averaging filter (n = 3) and g a Gaussian. We compute the reconstruction
as F^-1[X * exp(-(h_n * L))] with X the spectrum itself: exp(L + iP) = X, so this is the
same quantity, but it needs no phase angle, whose gradient is undefined where A = 0.

Implementation choices, each a parameter where it is a number:

* grayscale by ITU-R BT.601 luma weights (what MATLAB's ``rgb2gray`` in the authors'
  setting uses); one channel is used as is, other channel counts are averaged;
* the image is resized (bilinear) to ``size`` pixels wide, keeping its aspect ratio,
  because the method's scale is tied to that working resolution (Hou & Zhang §3 work at
  64 px); the map is resized back (bilinear) to the image's size;
* the box and Gaussian filters pad *circularly*: the DFT treats both the spectrum and the
  reconstructed map as periodic, so wrap-around is the consistent boundary;
* ``log A`` is taken as 0.5 log(A^2 + a^2) with an amplitude floor a (see
  :class:`SpectralResidualSaliency`), which keeps the log and its gradient finite.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from stages.saliency.base import normalize_density

_BT601 = (0.299, 0.587, 0.114)


def _luminance(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, 1, H, W) grayscale: BT.601 luma for RGB, the mean otherwise."""
    if x.shape[1] == 1:
        return x
    if x.shape[1] == 3:
        w = torch.tensor(_BT601, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(dim=1, keepdim=True)
    return x.mean(dim=1, keepdim=True)


def _resize(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize; anti-aliased when shrinking so no pixel is skipped (and every
    pixel keeps a gradient)."""
    if tuple(t.shape[-2:]) == size:
        return t
    shrinking = size[0] < t.shape[-2] or size[1] < t.shape[-1]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


def _gaussian_kernel(sigma: float, radius: int, like: torch.Tensor) -> torch.Tensor:
    offsets = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    k = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return k / k.sum()


def _circular_gaussian_blur(t: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, h, w) with wrap-around borders, truncated at 3
    sigma (and at the map's own size, beyond which wrap-around would count pixels twice)."""
    if sigma <= 0:
        return t
    h, w = t.shape[-2:]
    ry = min(math.ceil(3 * sigma), (h - 1) // 2)
    rx = min(math.ceil(3 * sigma), (w - 1) // 2)
    if ry > 0:
        ky = _gaussian_kernel(sigma, ry, t).view(1, 1, -1, 1)
        t = F.conv2d(F.pad(t, (0, 0, ry, ry), mode="circular"), ky)
    if rx > 0:
        kx = _gaussian_kernel(sigma, rx, t).view(1, 1, 1, -1)
        t = F.conv2d(F.pad(t, (rx, rx, 0, 0), mode="circular"), kx)
    return t


class SpectralResidualSaliency(nn.Module):
    """Spectral-residual fixation density, a :class:`~stages.saliency.base.SalienceModel`.

    Has no parameters; an ``nn.Module`` only so it sits beside learned models (``.to``,
    containers). Works on any device and float dtype; gradients flow to the input.

    Args:
        size: working width in pixels (height scaled to keep the aspect ratio). Hou & Zhang
            (2007, §3) compute the residual on images down-sampled to 64 px; small images
            (32 px) are up-sampled to it so the filters keep their meaning.
        sigma: standard deviation, in working-resolution pixels, of the Gaussian g that
            smooths the squared reconstruction (Hou & Zhang eq. 9). Their text, as we read
            it, gives sigma = 8; their released MATLAB script uses 2.5 (10 x 10 window). We
            default to the script's 2.5, which keeps a 32-px image's objects apart (8 px at
            64 px would blur over a quarter of the image). 0 disables the blur.
        average_size: n of the n x n local average h_n of the log spectrum (Hou & Zhang
            eq. 7: n = 3). Odd.
        amplitude_floor: a in log A = 0.5 log(A^2 + a^2), in units of white-noise standard
            deviation: white noise of std f has expected DFT amplitude f * sqrt(h * w) on an
            h x w image, so the floor is ``amplitude_floor * sqrt(h * w)``. The default 1e-3
            is the std of 8-bit quantisation noise (1 / (255 sqrt 12) = 1.1e-3): a frequency
            weaker than the rounding of the stored image carries no information, and without
            a floor the exact spectral zeros of flat synthetic regions (log A = -inf in the
            paper's formula) would dominate the residual. Ours, not Hou & Zhang's.
    """

    def __init__(
        self,
        size: int = 64,
        sigma: float = 2.5,
        average_size: int = 3,
        amplitude_floor: float = 1e-3,
    ) -> None:
        super().__init__()
        if size < 2:
            raise ValueError(f"spectral residual working size must be >= 2 px, got {size}")
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        if average_size < 1 or average_size % 2 == 0:
            raise ValueError(f"average_size must be a positive odd number, got {average_size}")
        if amplitude_floor <= 0:
            raise ValueError(f"amplitude_floor must be > 0, got {amplitude_floor}")
        self.size = int(size)
        self.sigma = float(sigma)
        self.average_size = int(average_size)
        self.amplitude_floor = float(amplitude_floor)

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, sigma={self.sigma}, average_size={self.average_size}, "
            f"amplitude_floor={self.amplitude_floor}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Density (N, 1, H, W) summing to 1 per image, for images (N, C, H, W) in [0, 1]."""
        if x.dim() != 4:
            raise ValueError(f"saliency expects images (N, C, H, W), got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        work = (max(1, round(h * self.size / w)), self.size)
        gray = _resize(_luminance(x), work)

        spectrum = torch.fft.fft2(gray)
        floor_sq = (self.amplitude_floor**2) * work[0] * work[1]
        log_amp = 0.5 * torch.log(spectrum.real.square() + spectrum.imag.square() + floor_sq)
        pad = self.average_size // 2
        local_mean = F.avg_pool2d(
            F.pad(log_amp, (pad, pad, pad, pad), mode="circular"), self.average_size, stride=1
        )
        # exp(R + iP) = exp(L - h*L) e^{iP} = X exp(-h*L): no phase angle needed.
        recon = torch.fft.ifft2(spectrum * torch.exp(-local_mean))
        energy = recon.real.square() + recon.imag.square()

        smooth = _circular_gaussian_blur(energy, self.sigma)
        return normalize_density(_resize(smooth, (h, w)).clamp_min(0.0))
