"""``kind: autoattack``: the AutoAttack ensemble (stages.attacks.autoattack), the strong
whole-image reference of a robustness-matrix column. Evaluation only: it cannot train."""

from __future__ import annotations

import torch
from torch import nn

from stages.attack_kinds.base import AttackKind, check_l2_budgets, config_or_error
from stages.attacks.autoattack import AutoAttackConfig, autoattack
from stages.config import AttackSpec
from stages.utils.errors import DataError


class AutoAttack(AttackKind):
    name = "autoattack"
    can_train = False  # an evaluation reference, far too costly per training step

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
        if model_input == "foreground":
            raise DataError(f"{spec.name}: AutoAttack changes every pixel; this model sees only x∘F")
        check_l2_budgets(spec, x)
        with torch.no_grad():
            num_classes = int(model(x[:1]).shape[1])
        # A seed per batch from the evaluation's generator: reruns give the same examples.
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator, device=x.device)) if generator else 0
        try:
            return autoattack(model, x, y, autoattack_config(spec), num_classes=num_classes, seed=seed)
        except ValueError as exc:
            raise DataError(f"attacks.{spec.name}: {exc}") from None

    def check(self, spec: AttackSpec) -> None:
        """The ensemble settings AutoAttackConfig accepts."""
        config_or_error(spec, lambda: autoattack_config(spec))

    def effective_region(self, spec: AttackSpec, model_input: str) -> str | None:
        """The whole image (the schema gives an autoattack attack no region)."""
        return spec.region

    def restarts(self, spec: AttackSpec) -> int:
        """The ensemble's own restarts; evaluation starts it once per batch."""
        return spec.restarts


def autoattack_config(spec: AttackSpec) -> AutoAttackConfig:
    """The ensemble of a ``kind: autoattack`` attack (Croce & Hein 2020; defaults in AutoAttackConfig)."""
    assert spec.norm is not None
    return AutoAttackConfig(
        norm=spec.norm,
        eps=spec.eps,
        attacks=spec.ensemble,
        steps=spec.steps,
        n_queries=spec.n_queries,
        target_classes=spec.target_classes,
        restarts=spec.restarts,
    )


KIND = AutoAttack()
"""The object of attacks with ``kind: autoattack`` (stages.attack_kinds.KIND_MODULES)."""
