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


def perturb(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor | None,
    spec: AttackSpec,
    box_fraction: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Adversarial examples of ``x`` under ``spec``; ``x`` itself for ``kind: none``.

    ``masks`` are the batch's foreground masks (bool (N, 1, H, W)) or None when the dataset
    has none; the attack's region is built from them or from the centre box.
    """
    if spec.kind == "none":
        return x
    region = region_mask(spec.region, x.shape, foreground=masks, box_fraction=box_fraction, device=x.device)
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
