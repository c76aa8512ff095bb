"""The documented layouts of images, labels, masks, regions and eps matrices, checked at the door.

Every public function of :mod:`stages.attacks`, :mod:`stages.models` and :mod:`stages.masks`
checks its array arguments with these helpers, so a wrong layout fails at once with a
:class:`LayoutError` (a ``ValueError``) naming the function, the argument, the shape it got and
the shape it wants, instead of broadcasting into a silently wrong result. (The case that
motivated this: an (N, H, W) mask against (N, C, H, W) images broadcasts as (1, N, H, W), a
mask per *channel*, whenever N equals C.)

Layouts of the torch side (attacks, models, regions):

- images: float (N, C, H, W).
- labels: integer (N,), one per image.
- masks and regions: bool (N, 1, H, W), True where a pixel belongs to the mask (may change). The
  per-image (N, H, W) layout of the processed files is also accepted and converted explicitly by
  inserting the channel axis; N, H and W must be the images'. A 3-D mask is therefore always N
  masks, never C channels, and no other layout (a single (H, W) mask, a (1, 1, H, W) mask for a
  whole batch, a per-channel (N, C, H, W) mask) is guessed at.
- eps matrices (a per-coordinate l_inf radius): a float, or a float tensor in the region layout
  (N, 1, H, W) (what :func:`stages.masks.regions.eps_matrix` returns; (N, H, W) converted as for
  masks) or in the image layout (N, C, H, W).

The numpy side (OpenCV GrabCut, :mod:`stages.masks.grabcut`) works per image: uint8 (H, W, 3)
RGB images and bool (H, W) masks; batches of masks are bool (N, H, W).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

MASK_LAYOUT = "bool (N, H, W) or (N, 1, H, W)"
EPS_LAYOUT = "a float, or a float tensor (N, H, W), (N, 1, H, W) or (N, C, H, W)"


class LayoutError(ValueError):
    """An argument's shape, dtype or type is not the documented layout (see the module docstring)."""


def shape_text(shape: Sequence[int]) -> str:
    """``(3, 32, 32)``: a shape as Python writes a tuple of ints."""
    return str(tuple(int(s) for s in shape))


def layout_error(where: str, name: str, got: Sequence[int], wants: str) -> LayoutError:
    """``"<where>: <name> has shape <got>; wants <wants>"``."""
    return LayoutError(f"{where}: {name} has shape {shape_text(got)}; wants {wants}")


def dtype_error(where: str, name: str, got: object, wants: str) -> LayoutError:
    """``"<where>: <name> has dtype <got>; wants <wants>"``."""
    return LayoutError(f"{where}: {name} has dtype {got}; wants {wants}")


def _tensor(value: object, where: str, name: str, wants: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise LayoutError(f"{where}: {name} is a {type(value).__name__}, not a tensor; wants {wants}")
    return value


def _nhw(images: torch.Tensor | Sequence[int]) -> tuple[int, int, int]:
    """(N, H, W) of images given as a tensor or a shape, (N, C, H, W) or (N, H, W)."""
    shape = tuple(int(s) for s in (images.shape if isinstance(images, torch.Tensor) else images))
    if len(shape) == 4:
        return shape[0], shape[2], shape[3]
    if len(shape) == 3:
        return shape
    raise ValueError(f"images must have shape (N, C, H, W) or (N, H, W), got {shape_text(shape)}")


def images_text(images: torch.Tensor | Sequence[int], *, channels: bool = False) -> str:
    """``"N = 3 images of 32x32"`` (or ``"... of C x H x W = 3x32x32"`` with ``channels``)."""
    shape = tuple(int(s) for s in (images.shape if isinstance(images, torch.Tensor) else images))
    if channels and len(shape) == 4:
        return f"N = {shape[0]} images of C x H x W = {shape[1]}x{shape[2]}x{shape[3]}"
    n, h, w = _nhw(shape)
    return f"N = {n} images of {h}x{w}"


# ------------------------------------------------------------------ torch


def require_images(
    x: object,
    name: str,
    where: str,
    *,
    channels: int | None = None,
    size: int | None = None,
    min_size: int | None = None,
) -> torch.Tensor:
    """``x`` itself if it is a float (N, C, H, W) tensor (with C = ``channels``, H = W = ``size``,
    H, W >= ``min_size`` when given); else a :class:`LayoutError`."""
    wants = "float images (N, C, H, W)"
    if channels is not None:
        wants += f" with C = {channels}"
    if size is not None:
        wants += f" with H = W = {size}"
    if min_size is not None:
        wants += f" with H, W >= {min_size}"
    x = _tensor(x, where, name, wants)
    if (
        x.dim() != 4
        or (channels is not None and x.shape[1] != channels)
        or (size is not None and tuple(x.shape[2:]) != (size, size))
        or (min_size is not None and min(x.shape[2:]) < min_size)
    ):
        raise layout_error(where, name, x.shape, wants)
    if not x.dtype.is_floating_point:
        raise dtype_error(where, name, x.dtype, wants)
    return x


def require_labels(y: object, images: torch.Tensor | Sequence[int], name: str, where: str) -> torch.Tensor:
    """``y`` itself if it is an integer (N,) tensor for the N ``images``; else a :class:`LayoutError`."""
    n = _nhw(images)[0]
    wants = f"integer labels (N,) with N = {n} images"
    y = _tensor(y, where, name, wants)
    if tuple(y.shape) != (n,):
        raise layout_error(where, name, y.shape, wants)
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise dtype_error(where, name, y.dtype, wants)
    return y


def as_batch_masks(mask: object, images: torch.Tensor | Sequence[int], name: str, where: str) -> torch.Tensor:
    """``mask`` as bool (N, 1, H, W) for ``images`` (a tensor or its shape, (N, C, H, W) or
    (N, H, W)).

    Accepts bool (N, 1, H, W) (returned as is) and bool (N, H, W) (returned as the view
    ``mask.unsqueeze(1)``), with N, H, W the images'; anything else is a :class:`LayoutError`.
    """
    n, h, w = _nhw(images)
    wants = f"{MASK_LAYOUT} with {images_text((n, h, w))}"
    mask = _tensor(mask, where, name, wants)
    shape = tuple(mask.shape)
    if shape == (n, h, w):
        mask = mask.unsqueeze(1)
    elif shape != (n, 1, h, w):
        raise layout_error(where, name, shape, wants)
    if mask.dtype != torch.bool:
        raise dtype_error(where, name, mask.dtype, wants)
    return mask


def as_region(region: object, name: str, where: str) -> torch.Tensor:
    """``region`` as bool (N, 1, H, W) where no images are at hand to compare with (a threat's
    constructor, :func:`~stages.masks.regions.eps_matrix`): (N, H, W) gets its channel axis
    (``unsqueeze(1)``), (N, 1, H, W) is kept, anything else is a :class:`LayoutError`. Check it
    against the images later with :func:`check_against_images`."""
    region = _tensor(region, where, name, MASK_LAYOUT)
    if region.dim() == 3:
        region = region.unsqueeze(1)
    elif region.dim() != 4 or region.shape[1] != 1:
        raise layout_error(where, name, region.shape, MASK_LAYOUT)
    if region.dtype != torch.bool:
        raise dtype_error(where, name, region.dtype, MASK_LAYOUT)
    return region


def as_eps_matrix(eps: torch.Tensor, name: str, where: str) -> torch.Tensor:
    """A tensor eps matrix as float (N, 1, H, W) or (N, C, H, W): (N, H, W) gets its channel axis,
    4-D is kept, anything else is a :class:`LayoutError`. Check it against the images later with
    :func:`check_against_images` (``per_coordinate=True``)."""
    eps = _tensor(eps, where, name, EPS_LAYOUT)
    if eps.dim() == 3:
        eps = eps.unsqueeze(1)
    elif eps.dim() != 4:
        raise layout_error(where, name, eps.shape, EPS_LAYOUT)
    if not eps.dtype.is_floating_point:
        raise dtype_error(where, name, eps.dtype, EPS_LAYOUT)
    return eps


def check_against_images(
    t: torch.Tensor,
    images: torch.Tensor | Sequence[int],
    name: str,
    where: str,
    *,
    per_coordinate: bool = False,
    given: Sequence[int] | None = None,
) -> None:
    """Raise a :class:`LayoutError` unless the 4-D ``t`` (from :func:`as_region` or
    :func:`as_eps_matrix`) is (N, 1, H, W) for the (N, C, H, W) ``images`` (or, with
    ``per_coordinate``, also (N, C, H, W)). ``given``: the shape the caller passed before
    the conversion, to report instead of ``t``'s."""
    shape = tuple(int(s) for s in (images.shape if isinstance(images, torch.Tensor) else images))
    n, c, h, w = shape
    allowed = {(n, 1, h, w), (n, c, h, w)} if per_coordinate else {(n, 1, h, w)}
    if tuple(t.shape) not in allowed:
        layouts = "(N, H, W), (N, 1, H, W) or (N, C, H, W)" if per_coordinate else "(N, H, W) or (N, 1, H, W)"
        got = t.shape if given is None else given
        raise layout_error(where, name, got, f"{layouts} with {images_text(shape, channels=True)}")


# ------------------------------------------------------------------ numpy (OpenCV)


def require_rgb_image(image: object, name: str, where: str) -> np.ndarray:
    """``image`` itself if it is a uint8 (H, W, 3) numpy array; else a :class:`LayoutError`."""
    wants = "uint8 (H, W, 3) RGB image"
    if not isinstance(image, np.ndarray):
        raise LayoutError(f"{where}: {name} is a {type(image).__name__}, not a numpy array; wants {wants}")
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise layout_error(where, name, image.shape, wants)
    if image.dtype != np.uint8:
        raise dtype_error(where, name, image.dtype, wants)
    return image
