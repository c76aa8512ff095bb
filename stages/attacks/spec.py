"""Running an attack described by params.yaml (an :class:`AttackSpec`) on one batch.

The single bridge between the config and the attack library, shared by training
(adversarial examples for AT and LAT) and evaluation.
"""

from __future__ import annotations

import torch
from torch import nn

from stages.attacks.pgd import localized_pgd
from stages.config import AttackSpec
from stages.masks.regions import region_mask
from stages.utils.errors import DataError


def attack_region(
    spec: AttackSpec,
    shape: torch.Size,
    masks: torch.Tensor | None,
    box_fraction: float,
    model_input: str,
    device: torch.device,
) -> torch.Tensor:
    """The pixels ``spec`` may change on a model with input ``model_input`` (bool (N, 1, H, W))."""
    region = region_mask(spec.region, shape, foreground=masks, box_fraction=box_fraction, device=device)
    if model_input == "foreground":
        if masks is None:
            raise DataError(f"{spec.name}: a foreground-input model needs foreground masks")
        region = region & masks
    return region


def perturb(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor | None,
    spec: AttackSpec,
    box_fraction: float,
    generator: torch.Generator | None,
    *,
    model_input: str = "natural",
) -> torch.Tensor:
    """Adversarial examples of ``x`` under ``spec``; ``x`` itself for ``kind: none``.

    ``masks`` are the batch's foreground masks (bool (N, 1, H, W)) or None when the dataset
    has none; the attack's region is built from them or from the centre box. A model that sees
    only the foreground (``model_input: foreground``, x already x∘F) can only be attacked there:
    the region is cut down to the foreground, so its background stays exactly 0.
    """
    if spec.kind == "none":
        return x
    region = attack_region(spec, x.shape, masks, box_fraction, model_input, x.device)
    assert spec.norm is not None
    return localized_pgd(
        model,
        x,
        y,
        norm=spec.norm,
        eps=spec.eps,
        region=region,
        localization=spec.localization,
        steps=spec.steps,
        step_size=spec.step_size,
        random_start=spec.random_start,
        generator=generator,
    )
