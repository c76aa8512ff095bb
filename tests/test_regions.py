"""Properties of the region helpers: names, centre box geometry, intensity masks, eps matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stages.masks.regions import (
    REGIONS,
    REGIONS_NEEDING_BOX,
    REGIONS_NEEDING_FOREGROUND,
    RegionError,
    centre_box,
    eps_matrix,
    intensity_foreground,
    region_mask,
)
from stages.utils.errors import BackdropError


def test_region_names_are_the_documented_set() -> None:
    assert set(REGIONS) == {"full", "foreground", "background", "box", "outside_box"}
    assert REGIONS_NEEDING_FOREGROUND | REGIONS_NEEDING_BOX < set(REGIONS)


def test_centre_box_half_of_28_is_the_centred_14x14_square() -> None:
    box = centre_box(28, 28, 0.5)
    rows, cols = np.nonzero(box)
    assert box.dtype == bool and box.shape == (28, 28)
    assert box.sum() == 14 * 14
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (7, 20, 7, 20)


@pytest.mark.parametrize("height,width", [(28, 28), (32, 32), (5, 7), (6, 9), (1, 1), (224, 160)])
@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.3, 0.5, 0.7, 0.9, 1.0])
def test_centre_box_is_symmetric_nonempty_and_near_the_requested_size(
    height: int, width: int, fraction: float
) -> None:
    box = centre_box(height, width, fraction)
    assert np.array_equal(box, box[::-1, :]) and np.array_equal(box, box[:, ::-1])
    rows = int(box.any(axis=1).sum())
    cols = int(box.any(axis=0).sum())
    assert box.sum() == rows * cols >= 1  # a filled rectangle
    # Symmetry forces the side's parity; within that, it is the nearest side (error <= 1 px).
    for side, size in ((rows, height), (cols, width)):
        assert (size - side) % 2 == 0
        assert abs(side - fraction * size) <= 1.0 or side == (2 - size % 2)


def test_centre_box_ties_go_to_the_larger_box_and_full_fraction_is_everything() -> None:
    assert centre_box(6, 6, 0.5).sum() == 4 * 4  # 3 px is equally near 2 and 4
    assert centre_box(5, 5, 0.5).sum() == 3 * 3  # 2.5 px is nearest 3
    assert centre_box(9, 4, 1.0).all()


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_centre_box_rejects_fractions_outside_0_1(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        centre_box(28, 28, fraction)


def test_intensity_foreground_is_strictly_above_threshold_on_the_brightest_channel() -> None:
    gray = np.array([[[0, 9, 10, 11, 255]]], dtype=np.uint8)  # (1, 1, 5)
    assert intensity_foreground(gray, 10).tolist() == [[[False, False, False, True, True]]]
    rgb = np.zeros((1, 1, 2, 3), dtype=np.uint8)
    rgb[0, 0, 1, 2] = 200  # only the blue channel of the second pixel is bright
    fg = intensity_foreground(rgb, 100)
    assert fg.shape == (1, 1, 2) and fg.tolist() == [[[False, True]]]
    with pytest.raises(ValueError, match="uint8"):
        intensity_foreground(gray.astype(np.float32), 10)


def _foreground(n: int = 3, h: int = 8, w: int = 8) -> torch.Tensor:
    return torch.rand(n, h, w, generator=torch.Generator().manual_seed(0)) > 0.5


def test_region_mask_full_foreground_background() -> None:
    fg = _foreground()
    full = region_mask("full", fg.shape)
    assert full.dtype == torch.bool and full.shape == (3, 1, 8, 8) and bool(full.all())
    fore = region_mask("foreground", fg.shape, foreground=fg)
    back = region_mask("background", fg.shape, foreground=fg)
    assert torch.equal(fore[:, 0], fg)
    assert torch.equal(back, ~fore)
    # A (N, 1, H, W) foreground and an (N, C, H, W) shape are accepted too.
    assert torch.equal(region_mask("foreground", (3, 3, 8, 8), foreground=fg[:, None]), fore)


def test_region_mask_box_and_outside_box_partition_the_image() -> None:
    box = region_mask("box", (2, 28, 28), box_fraction=0.5)
    outside = region_mask("outside_box", (2, 28, 28), box_fraction=0.5)
    assert box.shape == outside.shape == (2, 1, 28, 28)
    assert torch.equal(box[1, 0], torch.from_numpy(centre_box(28, 28, 0.5)))
    assert torch.equal(outside, ~box)
    assert int(outside[0].sum()) == 28 * 28 - 14 * 14


@pytest.mark.parametrize("name", sorted(REGIONS_NEEDING_FOREGROUND))
def test_region_mask_without_foreground_names_the_region(name: str) -> None:
    with pytest.raises(RegionError, match=repr(name)) as info:
        region_mask(name, (2, 8, 8), box_fraction=0.5)
    assert isinstance(info.value, BackdropError) and isinstance(info.value, ValueError)


def test_region_mask_unknown_name_or_missing_box_fraction() -> None:
    with pytest.raises(RegionError, match="'centre'.*full, foreground"):
        region_mask("centre", (2, 8, 8))
    with pytest.raises(RegionError, match="'outside_box'.*box_fraction"):
        region_mask("outside_box", (2, 8, 8))
    with pytest.raises(ValueError, match=r"foreground has shape .*; wants"):
        region_mask("foreground", (2, 8, 8), foreground=_foreground(3))


def test_eps_matrix_is_eps_on_the_region_zero_elsewhere_and_broadcasts() -> None:
    region = region_mask("outside_box", (2, 8, 8), box_fraction=0.5)
    e = eps_matrix(region, 0.3)
    assert e.shape == (2, 1, 8, 8) and e.dtype == torch.float32
    assert bool((e[region] == torch.tensor(0.3)).all()) and bool((e[~region] == 0).all())
    assert (torch.zeros(2, 3, 8, 8) + e).shape == (2, 3, 8, 8)
    with pytest.raises(ValueError):
        eps_matrix(region, -0.1)
