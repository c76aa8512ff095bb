"""Regions an attacker may change: foreground/background masks, the centre box, eps matrices.

A *region* is a bool tensor of shape (N, 1, H, W), True where a pixel may change. The
channel axis is kept (size 1) so a region broadcasts against (N, C, H, W) images without
callers having to remember an ``unsqueeze``. Functions taking a mask or region also accept the
per-image (N, H, W) layout of the processed files and convert it explicitly (never read as
(C, H, W): see :mod:`stages.utils.layouts`); other shapes are a ``ValueError`` naming them.

The region names live in one place (:data:`RegionName` / :data:`REGIONS`) so that the
params.yaml schema, the stages and the attack code cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np
import torch

from stages.utils.errors import ConfigError
from stages.utils.layouts import LayoutError, as_batch_masks, as_region, dtype_error, layout_error

RegionName = Literal["full", "foreground", "background", "box", "outside_box"]
"""``full``: every pixel. ``foreground``/``background``: the dataset's object mask and its
complement (the dual-perturbation paper's F(x) and B(x)). ``box``: inside the centre box.
``outside_box``: everything but the centre box, the LAT paper's background attack
("middle pixels unaltered")."""

REGIONS: tuple[str, ...] = get_args(RegionName)
"""Every valid region name, in a stable order (for schemas and error messages)."""

REGIONS_NEEDING_FOREGROUND: frozenset[str] = frozenset({"foreground", "background"})
"""Regions that only exist for datasets that come with (or derive) a foreground mask."""

REGIONS_NEEDING_BOX: frozenset[str] = frozenset({"box", "outside_box"})
"""Regions defined by the centre box, hence needing ``box_fraction``."""


class RegionError(ConfigError, ValueError):
    """A region name is unknown, or needs data (a foreground mask, a box size) not given.

    Also a ``ValueError`` so library callers that do not know Backdrop's error hierarchy
    still catch it idiomatically.
    """


def intensity_foreground(images_uint8: np.ndarray, threshold: int) -> np.ndarray:
    """Foreground of dark-background images (MNIST) by intensity: a pixel is foreground
    when its brightest channel exceeds ``threshold``.

    MNIST has no segmentation, but its digits are bright strokes on an exactly black
    background, so a fixed threshold is a faithful object mask. The maximum over channels
    makes the rule independent of the channel count.

    Args:
        images_uint8: uint8 images, (N, H, W) or (N, H, W, C) (the processed-file layout).
        threshold: 0..255; pixels strictly brighter than this are foreground.

    Returns:
        bool array (N, H, W).
    """
    images = np.asarray(images_uint8)
    wants = "uint8 images (N, H, W) or (N, H, W, C)"
    if images.ndim not in (3, 4):
        raise layout_error("intensity_foreground", "images_uint8", images.shape, wants)
    if images.dtype != np.uint8:
        raise dtype_error("intensity_foreground", "images_uint8", images.dtype, wants)
    if not 0 <= int(threshold) <= 255:
        raise ValueError(f"intensity threshold must be in 0..255, got {threshold}")
    brightest = images.max(axis=3) if images.ndim == 4 else images
    return brightest > int(threshold)


def _box_margin(size: int, fraction: float) -> int:
    """Margin (pixels cut on *each* side) of a centred box covering ``fraction`` of ``size``.

    A centred box is symmetric only if the same number of pixels is cut on both sides, so
    its side must have the parity of ``size``. We take the side of that parity nearest to
    ``fraction * size``; a tie (possible only when ``fraction * size`` lies exactly between
    two such sides) goes to the *larger* box. The box always keeps at least one pixel
    (two for even sizes).

    Examples: 28 px at 0.5 -> 14 px (margin 7); 32 -> 16; 5 -> 3 (2.5 is nearer 3 than 1);
    6 -> 4 (3 is equally near 2 and 4: larger box).
    """
    # Rounding to 9 decimals absorbs float noise such as 28 * (1 - 0.7) / 2 = 4.2000000000000002
    # before the tie test, so ties are decided by the exact decimal value the user wrote.
    half_cut = round(size * (1.0 - fraction) / 2.0, 9)
    margin = math.ceil(half_cut - 0.5)
    return max(0, min(margin, (size - 1) // 2))


def centre_box(height: int, width: int, fraction: float) -> np.ndarray:
    """True inside the central box whose sides are ``fraction`` of the image's sides.

    The LAT paper leaves its "middle pixels" box size unspecified; ``fraction`` makes it a
    parameter (callers default to 0.5, the central half of each side). The box is exactly
    centred: see :func:`_box_margin` for how a non-integer side is rounded.

    Returns:
        bool array (height, width).
    """
    if height < 1 or width < 1:
        raise ValueError(f"centre_box needs a positive image size, got {height}x{width}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"centre box fraction must be in (0, 1], got {fraction}")
    top = _box_margin(height, fraction)
    left = _box_margin(width, fraction)
    box = np.zeros((height, width), dtype=bool)
    box[top : height - top, left : width - left] = True
    return box


def region_mask(
    name: str,
    shape: Sequence[int],
    *,
    foreground: torch.Tensor | None = None,
    box_fraction: float | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The region named ``name`` for a batch of images, as a bool (N, 1, H, W) tensor.

    Only the inputs a region needs are required: ``foreground`` for "foreground" and
    "background", ``box_fraction`` for "box" and "outside_box". Asking for a region whose
    input is missing (e.g. a foreground attack on a dataset without masks) is a
    configuration error, reported with the region's name.

    Args:
        name: one of :data:`REGIONS`.
        shape: (N, H, W) of the batch (a longer shape (N, C, H, W) is accepted; C is ignored).
        foreground: bool (N, H, W) or (N, 1, H, W), True on the object, N, H, W the batch's.
        box_fraction: side fraction of the centre box (see :func:`centre_box`).
        device: where to build the mask; defaults to ``foreground``'s device, else CPU.
    """
    if name not in REGIONS:
        raise RegionError(f"unknown region {name!r}; valid regions are: {', '.join(REGIONS)}")
    dims = tuple(int(s) for s in shape)
    if len(dims) == 4:
        dims = (dims[0], dims[2], dims[3])
    if len(dims) != 3:
        raise LayoutError(f"region_mask: shape is {tuple(shape)}; wants (N, H, W) or (N, C, H, W)")
    n, h, w = dims
    if device is None:
        device = foreground.device if foreground is not None else torch.device("cpu")

    if name == "full":
        return torch.ones((n, 1, h, w), dtype=torch.bool, device=device)

    if name in REGIONS_NEEDING_FOREGROUND:
        if foreground is None:
            raise RegionError(
                f"region {name!r} needs a foreground mask, but this dataset has none; choose "
                f"one of the regions that do not: "
                f"{', '.join(r for r in REGIONS if r not in REGIONS_NEEDING_FOREGROUND)}"
            )
        fg = as_batch_masks(foreground, dims, "foreground", f"region_mask({name!r})").to(device)
        return fg.clone() if name == "foreground" else ~fg

    # name in REGIONS_NEEDING_BOX
    if box_fraction is None:
        raise RegionError(f"region {name!r} needs box_fraction (the centre box's side fraction)")
    box = torch.from_numpy(centre_box(h, w, box_fraction)).to(device)
    if name == "outside_box":
        box = ~box
    return box.expand(n, 1, h, w).clone()


def eps_matrix(region: torch.Tensor, eps: float, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The LAT paper's ``epmatrix``: ``eps`` where a pixel may change, 0 elsewhere.

    Its shape is the region's, (N, 1, H, W), which broadcasts over the image channels, so
    a per-pixel l_inf box [x - E, x + E] localises an attack with no special casing.

    ``region``: bool (N, 1, H, W), or (N, H, W) (converted: the result is (N, 1, H, W) either way).
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    region = as_region(region, "region", "eps_matrix")
    return region.to(dtype) * eps
