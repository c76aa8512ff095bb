"""``kind: pgd``: (localized) PGD in one region, l_inf or l_2 (stages.attacks.pgd).

The region is params.yaml's ``region`` (full, box, foreground, ...) cut down to the foreground
for a model that sees only x∘F; evaluation keeps each image's worst of ``restarts`` random
starts.
"""

from __future__ import annotations

import torch
from torch import nn

from stages.attack_kinds.base import AttackKind, check_l2_budgets
from stages.attacks.pgd import localized_pgd
from stages.attacks.spec import attack_region
from stages.config import AttackSpec


class Pgd(AttackKind):
    name = "pgd"
    can_train = True  # standard AT (region full) and LAT (a localized region)

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
        check_l2_budgets(spec, x)
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

    def effective_region(self, spec: AttackSpec, model_input: str) -> str | None:
        """The region, and the foreground on a foreground-input model (see attack_region)."""
        if model_input == "foreground" and spec.region != "foreground":
            return f"{spec.region} & foreground"
        return spec.region

    def restarts(self, spec: AttackSpec) -> int:
        return spec.restarts

    def evaluation_starts(self, spec: AttackSpec) -> int:
        return spec.restarts


KIND = Pgd()
"""The object of attacks with ``kind: pgd`` (stages.attack_kinds.KIND_MODULES)."""
