"""``kind: de``: Wang et al.'s few-pixel differential evolution (stages.attacks.differential_evolution).

A black-box search per image, evaluated by its own protocol with a much richer record
(stages.evaluation.pixel: which images are attacked, per-image outcomes and fitness curves,
targeted pairs), not batch by batch. Evaluation only: far too slow to train on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from stages.attack_kinds.base import AttackKind, config_or_error
from stages.config import AttackSpec
from stages.utils.errors import DataError

if TYPE_CHECKING:
    from stages.attacks.de_forward import DEForward
    from stages.data.processed import ProcessedSplit


class DifferentialEvolution(AttackKind):
    name = "de"
    can_train = False
    # How this device scores candidates (batch, precision, memory layout): DE's own setting.
    evaluation_reads = ("evaluation.de_forward",)

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
        raise DataError(
            f"{spec.name}: a differential-evolution attack runs in evaluation only "
            f"(stages.evaluation.pixel), not as a training or gradient attack"
        )

    def check(self, spec: AttackSpec) -> None:
        """The DE settings DEConfig accepts (population >= 4, mutation in [0, 2], ...)."""
        from stages.evaluation.pixel import de_config

        config_or_error(spec, lambda: de_config(spec))

    def effective_region(self, spec: AttackSpec, model_input: str) -> str | None:
        """The region (DE attacks only natural-input models: Params.check_pair)."""
        return spec.region

    def evaluate(
        self,
        model: nn.Module,
        split: ProcessedSplit,
        spec: AttackSpec,
        *,
        box_fraction: float,
        batch_size: int,
        seed: int,
        device: torch.device,
        model_input: str,
        progress: bool,
        de_forward: DEForward | None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The per-image search of stages.evaluation.pixel; ``de_forward`` is how it scores
        its candidates on this device."""
        from stages.evaluation.pixel import evaluate_pixel_attack  # see stages.attack_kinds.base

        return evaluate_pixel_attack(
            model,
            split,
            spec,
            box_fraction=box_fraction,
            batch_size=batch_size,
            seed=seed,
            device=device,
            progress=progress,
            de_forward=de_forward,
        )


KIND = DifferentialEvolution()
"""The object of attacks with ``kind: de`` (stages.attack_kinds.KIND_MODULES)."""
