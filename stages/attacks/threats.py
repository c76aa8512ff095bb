"""Threat models: the set a perturbation must stay in, and how PGD moves inside it.

PGD is one loop (:func:`stages.attacks.pgd.pgd`) over a *threat* that supplies the three
norm-specific pieces (random start, ascent step, projection), in the spirit of MadryLab
robustness' ``AttackerStep``. Keeping the loop ignorant of the norm is what lets a
dual-perturbation attack (one threat for the foreground, one for the background, each
stepped and projected on its own part of the merged gradient) reuse the same loop.

Threats work on the perturbation ``delta = x_adv - x`` rather than on ``x_adv``: a delta is
exactly zero (never an ulp off) where a pixel may not change, and perturbations with
disjoint supports compose by addition. The loop owns ``delta`` and ``grad`` and lets a
threat update them in place, so a step allocates nothing beyond the model's own work.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import torch

from stages.masks.regions import eps_matrix as _eps_matrix
from stages.utils.layouts import as_eps_matrix, as_region, check_against_images, require_images

Norm = Literal["linf", "l2"]
NORMS: tuple[str, ...] = ("linf", "l2")


def _rand(
    shape: tuple[int, ...],
    like: torch.Tensor,
    generator: torch.Generator | None,
    *,
    normal: bool = False,
) -> torch.Tensor:
    """Random numbers for ``like``'s device and dtype, drawn on the generator's own device.

    Drawing where the generator lives (then moving) means a caller may pass a CPU generator
    for a CUDA attack, and a CPU generator gives the same random start on every device.
    """
    device = generator.device if generator is not None else like.device
    draw = torch.randn if normal else torch.rand
    out = draw(shape, generator=generator, device=device, dtype=like.dtype)
    return out.to(like.device)


def _per_image_norm(t: torch.Tensor) -> torch.Tensor:
    """l_2 norm of each image, shaped (N, 1, ..., 1) to broadcast back against ``t``."""
    return torch.linalg.vector_norm(t.flatten(1), dim=1).view(-1, *([1] * (t.dim() - 1)))


class Threat(ABC):
    """A perturbation set S and the PGD moves inside it.

    Implementations may modify ``delta`` and ``grad`` in place (the PGD loop owns both) and
    must return the result. All tensors are float (N, C, H, W), the images' layout; a threat
    holding per-image tensors (a region, an eps matrix) checks that they fit the images
    (:meth:`validate`) before it first uses them with images of a new shape.
    """

    def validate(self, x: torch.Tensor) -> None:
        """Raise a ``ValueError`` naming the shapes unless the threat fits images ``x``
        (N, C, H, W). The base class holds nothing per image, so anything fits."""
        return None

    @abstractmethod
    def random_start(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """A random delta in S (before the [0, 1] clip, which the loop applies)."""

    @abstractmethod
    def step(self, delta: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
        """Move ``delta`` by ``step_size`` along the steepest-ascent direction of the norm."""

    @abstractmethod
    def project(self, delta: torch.Tensor) -> torch.Tensor:
        """Euclidean projection of ``delta`` onto S."""

    def localize(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """Clip a finished adversarial image into S once (the LAT paper's post-clip).

        Returns a new tensor in [0, 1]; ``x_adv`` is not modified.
        """
        delta = self.project(x_adv - x)
        return (x + delta).clamp_(0.0, 1.0)


class LinfThreat(Threat):
    """Per-pixel box |delta| <= E, with E an eps matrix (or a scalar eps).

    A localized l_inf attack is just a box with E = 0 outside the region, so the region
    needs no separate handling: the projection pins those pixels to exactly zero.

    Args:
        eps_matrix: a float, or a float tensor (N, 1, H, W) (one radius per pixel, shared by
            the channels: the result of :func:`stages.masks.regions.eps_matrix`) or (N, C, H, W)
            (one per coordinate), N, C, H, W the attacked images'; every entry >= 0. (N, H, W)
            is accepted and converted to (N, 1, H, W). No other shape is broadcast.
    """

    def __init__(self, eps_matrix: torch.Tensor | float) -> None:
        self._fits: torch.Size | None = None
        # (function, argument, shape given, per-coordinate allowed): what a misfit names.
        self._source: tuple[str, str, tuple[int, ...], bool] = (
            "LinfThreat",
            "eps_matrix",
            tuple(getattr(eps_matrix, "shape", ())),
            True,
        )
        if isinstance(eps_matrix, torch.Tensor):
            eps_matrix = as_eps_matrix(eps_matrix, "eps_matrix", "LinfThreat")
            if bool((eps_matrix < 0).any()):
                raise ValueError("an l_inf eps matrix must be >= 0 everywhere")
            self.eps: torch.Tensor | float = eps_matrix
            self._neg_eps: torch.Tensor | float = -eps_matrix
        else:
            if eps_matrix < 0:
                raise ValueError(f"eps must be >= 0, got {eps_matrix}")
            self.eps = float(eps_matrix)
            self._neg_eps = -float(eps_matrix)

    def validate(self, x: torch.Tensor) -> None:
        if isinstance(self.eps, torch.Tensor) and x.shape != self._fits:
            where, name, given, per_coordinate = self._source
            require_images(x, "images", where)
            check_against_images(self.eps, x, name, where, per_coordinate=per_coordinate, given=given)
            self._fits = x.shape

    def _on(self, like: torch.Tensor) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        """Bounds on ``like``'s device and dtype; moved once and cached, not per step."""
        self.validate(like)
        if isinstance(self.eps, torch.Tensor) and (
            self.eps.device != like.device or self.eps.dtype != like.dtype
        ):
            self.eps = self.eps.to(device=like.device, dtype=like.dtype)
            self._neg_eps = -self.eps
        return self._neg_eps, self.eps

    def random_start(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Uniform in the box: each coordinate independently U(-E, E)."""
        _, hi = self._on(x)
        u = _rand(tuple(x.shape), x, generator)
        return u.mul_(2.0).sub_(1.0).mul_(hi)

    def step(self, delta: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
        """step_size * sign(grad): steepest ascent for l_inf (pixels with E = 0 are reset
        by the projection)."""
        return delta.add_(grad.sign_(), alpha=step_size)

    def project(self, delta: torch.Tensor) -> torch.Tensor:
        lo, hi = self._on(delta)
        if isinstance(hi, torch.Tensor):
            return delta.clamp_(min=lo, max=hi)
        return delta.clamp_(lo, hi)

    def localize(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """Clip ``x_adv`` to [x - E, x + E], literally as the LAT paper's Algorithm 1 does.

        Clamping ``x_adv`` itself (not ``x + clamp(x_adv - x)``) keeps pixels with E = 0
        bit-identical to ``x`` and the result bit-identical to the paper's formula.
        """
        lo, hi = self._on(x)
        return torch.clamp(x_adv, min=x + lo, max=x + hi)


class L2Threat(Threat):
    """delta supported on ``region`` (zero elsewhere) with ||delta||_2 <= eps per image.

    Args:
        eps: l_2 radius per image, >= 0.
        region: bool (N, 1, H, W) with N, H, W the attacked images' ((N, H, W) is accepted
            and converted); None = every pixel. No other shape is broadcast.
    """

    def __init__(self, eps: float, region: torch.Tensor | None = None) -> None:
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.eps = float(eps)
        self._source: tuple[str, str, tuple[int, ...]] = (
            "L2Threat",
            "region",
            tuple(getattr(region, "shape", ())),
        )
        self.region = None if region is None else as_region(region, "region", "L2Threat")
        self._mask: torch.Tensor | None = None
        self._fits: torch.Size | None = None

    def validate(self, x: torch.Tensor) -> None:
        if self.region is not None and x.shape != self._fits:
            where, name, given = self._source
            require_images(x, "images", where)
            check_against_images(self.region, x, name, where, given=given)
            self._fits = x.shape

    def _mask_on(self, like: torch.Tensor) -> torch.Tensor | None:
        """The region as a 0/1 float mask of ``like``'s dtype; built once, not per step."""
        if self.region is None:
            return None
        self.validate(like)
        if self._mask is None or self._mask.device != like.device or self._mask.dtype != like.dtype:
            self._mask = self.region.to(device=like.device, dtype=like.dtype)
        return self._mask

    def random_start(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Uniform in the l_2 ball of radius eps *within the region's coordinates*.

        Sampling: a standard normal z on the region's d coordinates (d = region pixels x
        channels, per image) gives a uniform direction z / ||z||; the radius eps * u^(1/d)
        with u ~ U(0, 1) makes the point uniform in the d-dimensional ball (its volume
        grows as r^d). For large d nearly all the mass is near the sphere, as it should be.
        Unlike a plain renormalised uniform (MadryLab robustness), this is exactly uniform.
        """
        mask = self._mask_on(x)
        z = _rand(tuple(x.shape), x, generator, normal=True)
        u = _rand((x.shape[0],), x, generator)
        if mask is None:
            dims = torch.full_like(u, float(x[0].numel()))
        else:
            z.mul_(mask)
            dims = mask.expand_as(x).flatten(1).sum(dim=1)
        radius = self.eps * u.pow_(1.0 / dims.clamp_min(1.0))
        norm = _per_image_norm(z).clamp_min_(torch.finfo(x.dtype).tiny)
        return z.div_(norm).mul_(radius.view(norm.shape))

    def step(self, delta: torch.Tensor, grad: torch.Tensor, step_size: float) -> torch.Tensor:
        """step_size * g / ||g||_2 with g the gradient restricted to the region.

        Masking before normalising puts the whole step length inside the region. An image
        whose masked gradient is zero does not move (no division by zero).
        """
        mask = self._mask_on(grad)
        if mask is not None:
            grad.mul_(mask)
        norm = _per_image_norm(grad).clamp_min_(torch.finfo(grad.dtype).tiny)
        return delta.addcdiv_(grad, norm, value=step_size)

    def project(self, delta: torch.Tensor) -> torch.Tensor:
        """Zero outside the region, then shrink onto the ball if outside it.

        Zeroing first is the exact projection: the set is a ball in the region's subspace.
        """
        mask = self._mask_on(delta)
        if mask is not None:
            delta.mul_(mask)
        norm = _per_image_norm(delta).clamp_min_(torch.finfo(delta.dtype).tiny)
        return delta.mul_((self.eps / norm).clamp_max_(1.0))


def make_threat(norm: Norm, eps: float, region: torch.Tensor | None = None) -> Threat:
    """The threat for ``norm`` with radius ``eps`` on ``region`` (None = the whole image).

    ``region``: bool (N, 1, H, W), or (N, H, W) converted to it (one mask per image, never one
    per channel); the threat checks it against the images when it first sees them.
    """
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; valid norms are: {', '.join(NORMS)}")
    if region is None:
        return LinfThreat(eps) if norm == "linf" else L2Threat(eps)
    given = tuple(getattr(region, "shape", ()))
    region = as_region(region, "region", "make_threat")
    if norm == "linf":
        linf = LinfThreat(_eps_matrix(region, eps))
        linf._source = ("make_threat", "region", given, False)
        return linf
    l2 = L2Threat(eps, region)
    l2._source = ("make_threat", "region", given)
    return l2
