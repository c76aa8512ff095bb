"""The pixels an attack described by params.yaml (an :class:`AttackSpec`) may change.

Shared by the attack kinds (stages.attack_kinds) and the DE evaluation (stages.evaluation.pixel).
Each kind's own settings (a dual attack's foreground and salience model, AutoAttack's ensemble,
the DE configuration) live with the code that uses them, so that a kind's change is no other
kind's code (workflow.code_deps).
"""

from __future__ import annotations

import torch

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
