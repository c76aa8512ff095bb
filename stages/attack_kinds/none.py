"""``kind: none``: the clean images, for natural accuracy and as a natural model's train attack."""

from __future__ import annotations

import torch
from torch import nn

from stages.attack_kinds.base import AttackKind
from stages.config import AttackSpec


class NoAttack(AttackKind):
    """Leaves every image as it is; evaluated like any attack, one start per batch."""

    name = "none"
    can_train = True  # a natural model's train_attack (nothing to perturb)

    def perturb(
        self,
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
        return x

    def effective_region(self, spec: AttackSpec, model_input: str) -> str | None:
        return None


KIND = NoAttack()
"""The object of attacks with ``kind: none`` (stages.attack_kinds.KIND_MODULES)."""
