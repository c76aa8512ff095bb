"""Projected gradient descent (Madry et al.) as one loop over a :class:`Threat`.

Two ways of localising an attack to a region, both from the papers:

* ``"project"``: per-step projection onto the localised set (the threat built on the
  region). The stronger attack: every step's budget is spent where it is allowed.
* ``"post_clip"``: the LAT paper's Algorithm 1: PGD on the *whole* image with the same eps,
  then one clip of the final image into the region's set (:func:`post_clip`).

:func:`pgd` always does the first with whatever threat it is given; :func:`localized_pgd`
builds the threats for either mode from (norm, eps, region), so the difference between the
two is visible in one place.

Caller's responsibilities (deliberately not done here): put the model in the mode to be
attacked (``model.eval()`` normally; the attack never calls ``train()``/``eval()``, so
BatchNorm statistics would update if the model is left in training mode), and put ``x``,
``y`` and the model on the same device. Gradients are taken w.r.t. the input only
(``torch.autograd.grad``), so nothing accumulates in the parameters' ``.grad``. The attack
runs under ``torch.enable_grad`` and so also works inside a caller's ``torch.no_grad``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from stages.attacks.threats import Norm, Threat, make_threat
from stages.utils.layouts import as_batch_masks, layout_error, require_images, require_labels, shape_text

Localization = Literal["project", "post_clip"]
LOCALIZATIONS: tuple[str, ...] = ("project", "post_clip")

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def summed_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy summed (not averaged) over the batch.

    With a sum, each image's gradient is the gradient of its own loss, independent of how
    many other images share the batch; with a mean it would shrink as 1/N. (For l_inf and
    l_2 steps the scale cancels, but it matters for any loss mixing terms, e.g. saliency.)
    """
    return F.cross_entropy(logits, y, reduction="sum")


def _clip_to_images(delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """In place: delta <- clamp(x + delta, 0, 1) - x, so x + delta is a valid image.

    Where delta is zero this yields exactly zero again (x + 0 - x), so pixels that may not
    change stay bit-identical.
    """
    return delta.add_(x).clamp_(0.0, 1.0).sub_(x)


def _dense(t: torch.Tensor) -> bool:
    """Whether ``t`` owns one memory cell per element, so in-place writes are allowed."""
    return t.is_contiguous() or t.is_contiguous(memory_format=torch.channels_last)


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: Threat,
    *,
    steps: int,
    step_size: float,
    random_start: bool,
    generator: torch.Generator | None = None,
    loss_fn: LossFn = summed_cross_entropy,
) -> torch.Tensor:
    """Untargeted PGD maximising ``loss_fn`` within ``threat``; returns x_adv in [0, 1].

    Each iteration: gradient of the loss at x + delta; ``threat.step``; clip x + delta to
    [0, 1]; ``threat.project``. Clipping before projecting is the order of ART's PGD; both
    leave a delta that is in the threat set *and* gives a valid image (a box projection
    commutes with the clip; an l_2 shrink moves x + delta towards x, which stays in [0, 1]).

    Args:
        model: maps (N, C, H, W) images in [0, 1] to logits; its mode is the caller's choice.
        x: clean images in [0, 1], float (N, C, H, W). Not modified.
        y: labels, integer (N,) (int64 for the cross-entropy).
        threat: the perturbation set (see :mod:`stages.attacks.threats`); its region or eps
            matrix must fit ``x`` (checked here).
        steps: number of gradient steps (0 returns the random start, or x).
        step_size: absolute step length in the threat's norm.
        random_start: start from ``threat.random_start`` instead of x.
        generator: source of the random start, for determinism; may live on the CPU for a
            CUDA attack (the start is then identical on every device).
        loss_fn: (logits, y) -> scalar to maximise; must be a *sum* over the batch (see
            :func:`summed_cross_entropy`).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if step_size < 0:
        raise ValueError(f"step_size must be >= 0, got {step_size}")
    require_images(x, "x", "pgd")
    require_labels(y, x, "y", "pgd")
    threat.validate(x)

    x = x.detach()
    with torch.no_grad():
        if random_start:
            delta = threat.random_start(x, generator)
            delta = threat.project(_clip_to_images(delta, x))
        else:
            delta = torch.zeros_like(x)

    with torch.enable_grad():
        delta.requires_grad_(True)
        for _ in range(steps):
            loss = loss_fn(model(x + delta), y)
            (grad,) = torch.autograd.grad(loss, delta)
            if not _dense(grad):
                grad = grad.contiguous()  # e.g. an expanded grad: threats write to it in place
            with torch.no_grad():
                threat.step(delta, grad, step_size)
                _clip_to_images(delta, x)
                threat.project(delta)

    with torch.no_grad():
        return (x + delta).clamp_(0.0, 1.0)


def post_clip(x: torch.Tensor, x_adv: torch.Tensor, threat: Threat) -> torch.Tensor:
    """Clip a finished adversarial image into ``threat``'s set once (LAT's Algorithm 1:
    x' clipped to [x - epmatrix, x + epmatrix]). Returns a new tensor in [0, 1].

    ``x`` and ``x_adv`` are float (N, C, H, W) of the same shape; ``threat`` must fit them.
    """
    require_images(x, "x", "post_clip")
    require_images(x_adv, "x_adv", "post_clip")
    if x_adv.shape != x.shape:
        raise layout_error("post_clip", "x_adv", x_adv.shape, f"x's shape {shape_text(x.shape)}")
    threat.validate(x)
    with torch.no_grad():
        return threat.localize(x.detach(), x_adv.detach())


def localized_pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: Norm,
    eps: float,
    region: torch.Tensor | None,
    localization: Localization,
    steps: int,
    step_size: float,
    random_start: bool,
    generator: torch.Generator | None = None,
    loss_fn: LossFn = summed_cross_entropy,
) -> torch.Tensor:
    """PGD with radius ``eps`` restricted to ``region``, localised per step or post hoc.

    ``localization="project"`` runs :func:`pgd` with the region's threat.
    ``localization="post_clip"`` runs :func:`pgd` on the whole image with the same eps and
    then clips the result once into the region's threat set with :func:`post_clip` (LAT,
    Algorithm 1).
    With ``region=None`` (the whole image) both are the same attack.

    Args:
        x: clean images in [0, 1], float (N, C, H, W). Not modified.
        y: labels, integer (N,).
        region: bool (N, 1, H, W) (see :mod:`stages.masks.regions`), or None for every pixel.
            The per-image layout (N, H, W) is accepted too and converted to (N, 1, H, W): a 3-D
            region is always one mask per image, never one per channel (even when N = C).
            Anything else is a ``ValueError`` naming the shapes.
        Other arguments as in :func:`pgd`.
    """
    require_images(x, "x", "localized_pgd")
    require_labels(y, x, "y", "localized_pgd")
    if region is not None:
        region = as_batch_masks(region, x, "region", "localized_pgd")
    local = make_threat(norm, eps, region)
    if localization == "project":
        return pgd(
            model,
            x,
            y,
            local,
            steps=steps,
            step_size=step_size,
            random_start=random_start,
            generator=generator,
            loss_fn=loss_fn,
        )
    if localization == "post_clip":
        x_full = pgd(
            model,
            x,
            y,
            make_threat(norm, eps, None),
            steps=steps,
            step_size=step_size,
            random_start=random_start,
            generator=generator,
            loss_fn=loss_fn,
        )
        return post_clip(x, x_full, local)
    raise ValueError(f"unknown localization {localization!r}; valid values are: {', '.join(LOCALIZATIONS)}")
