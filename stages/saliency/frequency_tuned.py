"""Frequency-tuned salience (Achanta, Hemami, Estrada & Süsstrunk, "Frequency-tuned Salient
Region Detection", CVPR 2009) in torch, differentiable end to end.

A second weight-free stand-in for the dual-perturbation paper's DeepGaze II, behind
:class:`stages.saliency.base.SalienceModel`. Where spectral residual (Hou & Zhang 2007) marks
what is *unexpected in the spectrum* (mostly edges and texture), frequency-tuned salience
marks what differs in *colour* from the image as a whole, keeping the low frequencies so that
whole objects, not just their outlines, light up (Achanta et al. §3: salient regions should
be "uniformly highlighted" with "well-defined boundaries"). Their eq. (1) with §3.3:

    S(x, y) = || I_mu - I_whc(x, y) ||_2

in CIE L*a*b*, with I_mu the image's mean Lab vector and I_whc the image blurred by a 5 x 5
separable binomial kernel (which removes the highest frequencies: noise, fine texture and
JPEG artefacts).

Implementation choices:

* sRGB (IEC 61966-2-1) to linear RGB, to CIE XYZ (the ITU-R BT.709 primaries), to L*a*b*
  with the D65 white point: the conversion ``cv2.cvtColor(..., COLOR_RGB2Lab)`` performs, so
  an OpenCV reference reproduces the map (tests/test_saliency.py);
* the binomial kernel [1 4 6 4 1] / 16 per axis, with the image reflected at its borders
  (without repeating the edge pixel): OpenCV's ``GaussianBlur`` with a 5 x 5 kernel and
  sigma 0 uses this kernel and this border (BORDER_REFLECT_101);
* one-channel images are treated as grey RGB (a* = b* = 0, so only lightness counts);
* the Euclidean norm is taken as sqrt(d^2 + floor^2) with a tiny floor, so its gradient is
  finite where a pixel equals the mean (an exact zero of the norm) and a flat image gets the
  uniform density, FS = the foreground's area fraction (the honest answer for an image with
  nothing salient), rather than an all-zero map;
* the map is used as is (no thresholding or segmentation, which Achanta et al. add in §4
  for object masks) and scaled to a density by :func:`normalize_density`, as the salience
  interface requires.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stages.saliency.base import normalize_density

# sRGB transfer function (IEC 61966-2-1): linear below the knee, a 2.4 power above.
_SRGB_KNEE = 0.04045
_SRGB_LINEAR_SLOPE = 12.92
_SRGB_OFFSET = 0.055
_SRGB_GAMMA = 2.4

# Linear sRGB (BT.709 primaries, D65) to CIE XYZ, the matrix OpenCV's RGB2Lab uses.
_RGB_TO_XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
# D65 reference white (X_n, Y_n, Z_n) in the same units (OpenCV's values).
_D65_WHITE = (0.950456, 1.0, 1.088754)

# CIE 1976 L*a*b*: f(t) = t^(1/3) above (6/29)^3, the linear segment t / (3 (6/29)^2) + 4/29
# below, so f and its derivative stay finite at 0.
_LAB_EPSILON = (6.0 / 29.0) ** 3
_LAB_SLOPE = 1.0 / (3.0 * (6.0 / 29.0) ** 2)
_LAB_OFFSET = 4.0 / 29.0

# Achanta et al. §3.3: "a 5 x 5 separable binomial kernel".
_BINOMIAL_5 = (1.0, 4.0, 6.0, 4.0, 1.0)


def srgb_to_lab(x: torch.Tensor) -> torch.Tensor:
    """sRGB images (N, 3, H, W) in [0, 1] to CIE L*a*b* (D65): L in [0, 100], a and b roughly
    in [-128, 127], OpenCV's float convention. Differentiable everywhere on [0, 1]."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"srgb_to_lab expects RGB images (N, 3, H, W), got shape {tuple(x.shape)}")
    # The power branch is evaluated on clamped values so the unused side of torch.where never
    # produces an inf gradient (0 * inf would be NaN).
    power = ((x.clamp_min(_SRGB_KNEE) + _SRGB_OFFSET) / (1.0 + _SRGB_OFFSET)) ** _SRGB_GAMMA
    linear = torch.where(x > _SRGB_KNEE, power, x / _SRGB_LINEAR_SLOPE)
    matrix = torch.tensor(_RGB_TO_XYZ, dtype=x.dtype, device=x.device)
    white = torch.tensor(_D65_WHITE, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    xyz = torch.einsum("ij,njhw->nihw", matrix, linear) / white
    cube_root = xyz.clamp_min(_LAB_EPSILON) ** (1.0 / 3.0)
    f = torch.where(xyz > _LAB_EPSILON, cube_root, xyz * _LAB_SLOPE + _LAB_OFFSET)
    fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    return torch.cat([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


def binomial_blur(t: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) blurred per channel by the 5 x 5 binomial kernel, borders reflected
    without repeating the edge pixel (OpenCV's default BORDER_REFLECT_101, which torch's
    "reflect" padding is). Needs H, W >= 3 (a reflection of 2 pixels)."""
    if t.shape[-1] < 3 or t.shape[-2] < 3:
        raise ValueError(
            f"the 5 x 5 binomial blur needs images of at least 3 x 3 pixels, got {tuple(t.shape)}"
        )
    kernel = torch.tensor(_BINOMIAL_5, dtype=t.dtype, device=t.device)
    kernel = kernel / kernel.sum()
    c, r = t.shape[1], len(_BINOMIAL_5) // 2
    ky = kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    kx = kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    t = F.conv2d(F.pad(t, (0, 0, r, r), mode="reflect"), ky, groups=c)
    return F.conv2d(F.pad(t, (r, r, 0, 0), mode="reflect"), kx, groups=c)


class FrequencyTunedSaliency(nn.Module):
    """Frequency-tuned salience density, a :class:`~stages.saliency.base.SalienceModel`.

    Has no parameters; an ``nn.Module`` only so it sits beside learned models (``.to``,
    containers). Works on any device and float dtype; gradients flow to the input.

    Args:
        norm_floor: the floor f in sqrt(||I_mu - I_whc||^2 + f^2), in Lab units (L spans
            0..100). The default 1e-3 is far below one 8-bit grey level (about 0.4 L units at
            mid grey), so it changes no map of a real image, but it keeps the norm's gradient
            finite and makes a flat image's density uniform. Ours, not Achanta et al.'s.
    """

    def __init__(self, norm_floor: float = 1e-3) -> None:
        super().__init__()
        if norm_floor <= 0:
            raise ValueError(f"norm_floor must be > 0, got {norm_floor}")
        self.norm_floor = float(norm_floor)

    def extra_repr(self) -> str:
        return f"norm_floor={self.norm_floor}"

    def raw_map(self, x: torch.Tensor) -> torch.Tensor:
        """Achanta et al.'s S (N, 1, H, W) in Lab units, before normalisation."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(
                f"frequency-tuned saliency expects RGB or grey images (N, 3 or 1, H, W), got shape "
                f"{tuple(x.shape)}"
            )
        rgb = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        lab = srgb_to_lab(rgb)
        mean = lab.mean(dim=(2, 3), keepdim=True)
        blurred = binomial_blur(lab)
        return ((blurred - mean).square().sum(dim=1, keepdim=True) + self.norm_floor**2).sqrt()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Density (N, 1, H, W) summing to 1 per image, for images (N, C, H, W) in [0, 1]."""
        return normalize_density(self.raw_map(x))
