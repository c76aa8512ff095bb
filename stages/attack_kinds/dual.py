"""``kind: dual``: the dual-perturbation attack (stages.attacks.dual), one budget on the
foreground and another on the background, optionally pulling salience onto the foreground.

Its evaluation records, besides the usual ones, the foreground score FS (paper §3.2) of every
adversarial and clean image, which the dual table and its claims read.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from stages.attack_kinds.base import AttackKind, check_l2_budgets
from stages.attacks.dual import dual_pgd
from stages.config import AttackSpec
from stages.saliency import SALIENCE_MODELS, SalienceModel, foreground_score, threshold_mask
from stages.utils.errors import DataError


class Dual(AttackKind):
    name = "dual"
    can_train = True  # AT-Dual (paper §5.1)

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
            raise DataError(f"{spec.name}: a dual attack needs a model that sees the background")
        check_l2_budgets(spec, x)
        salience = salience_model(spec, x.device)
        assert spec.norm is not None
        return dual_pgd(
            model,
            x,
            y,
            dual_foreground(spec, x, masks, salience),
            norm=spec.norm,
            eps_fg=spec.eps_foreground,
            eps_bg=spec.eps_background,
            step_fg=spec.step_size_foreground,
            step_bg=spec.step_size_background,
            steps=spec.steps,
            random_start=spec.random_start,
            generator=generator,
            salience=salience,
            salience_weight=spec.salience_weight,
        )

    def effective_region(self, spec: AttackSpec, model_input: str) -> str | None:
        """Every pixel, under two budgets."""
        return (
            f"foreground <= {spec.eps_foreground:.4g}, background <= {spec.eps_background:.4g} ({spec.norm})"
        )

    def restarts(self, spec: AttackSpec) -> int:
        return spec.restarts

    def evaluation_starts(self, spec: AttackSpec) -> int:
        return spec.restarts

    def extra_records(self, spec: AttackSpec, device: torch.device) -> ForegroundScores:
        return ForegroundScores(spec, device)


class ForegroundScores:
    """FS of every adversarial and clean image under the attack's own foreground and salience
    model, and the foreground's share of the image (the FS of a uniform salience map: what
    FS_natural must beat, stages/claims)."""

    def __init__(self, spec: AttackSpec, device: torch.device) -> None:
        self.spec = spec
        self.salience = salience_model(spec, device)
        self.adversarial_sum, self.natural_sum = 0.0, 0.0
        self.adversarial: list[float] = []
        self.natural: list[float] = []
        self.foreground_fraction: list[float] = []

    def add(self, x: torch.Tensor, x_adv: torch.Tensor, masks: torch.Tensor | None) -> None:
        with torch.no_grad():
            fg = dual_foreground(self.spec, x, masks, self.salience)
            fs_adv = foreground_score(self.salience(x_adv), fg)
            fs_nat = foreground_score(self.salience(x), fg)
            self.adversarial_sum += float(fs_adv.sum())
            self.natural_sum += float(fs_nat.sum())
            self.adversarial.extend(float(v) for v in fs_adv.tolist())
            self.natural.extend(float(v) for v in fs_nat.tolist())
            self.foreground_fraction.extend(float(v) for v in fg.flatten(1).float().mean(1).tolist())

    def per_image(self) -> dict[str, list[float]]:
        return {
            "foreground_score": self.adversarial,
            "foreground_score_natural": self.natural,
            "foreground_fraction": self.foreground_fraction,
        }

    def summary(self, samples: int) -> dict[str, Any]:
        return {
            "foreground_source": self.spec.foreground,
            # Which salience model FS came from: the dual table reports what ran, not what
            # params.yaml says now.
            "salience_model": self.spec.salience,
            "foreground_score": self.adversarial_sum / samples,
            "foreground_score_natural": self.natural_sum / samples,
        }


def salience_model(spec: AttackSpec, device: torch.device) -> SalienceModel:
    """The salience model a dual attack names (``attacks.<name>.salience``), on ``device``."""
    try:
        factory = SALIENCE_MODELS[spec.salience]
    except KeyError:
        known = ", ".join(sorted(SALIENCE_MODELS))
        raise DataError(
            f"attacks.{spec.name}.salience: unknown model {spec.salience!r} (known: {known})"
        ) from None
    return factory().to(device)


def dual_foreground(
    spec: AttackSpec, x: torch.Tensor, masks: torch.Tensor | None, salience: SalienceModel
) -> torch.Tensor:
    """F(x) of a dual attack: the dataset's masks (``foreground: segmentation``) or the
    salience map of the clean images thresholded per image (``saliency``, paper §3.3)."""
    if spec.foreground == "saliency":
        with torch.no_grad():
            return threshold_mask(salience(x))
    if masks is None:
        raise DataError(
            f"attacks.{spec.name}: foreground 'segmentation' needs the dataset's foreground masks; "
            f"this dataset has none (use foreground: saliency)"
        )
    return masks


KIND = Dual()
"""The object of attacks with ``kind: dual`` (stages.attack_kinds.KIND_MODULES)."""
