"""The settings an attack described by params.yaml (an :class:`AttackSpec`) passes to the
attack library: its region, a dual attack's foreground and salience model, the DE and
AutoAttack configurations.

Shared by the attack kinds (stages.attacks.kinds, which run an attack on a batch) and the DE
evaluation (stages.evaluation.pixel); which code runs for which kind is the kinds' registry's
business, not this module's.
"""

from __future__ import annotations

import torch

from stages.attacks.autoattack import AutoAttackConfig
from stages.attacks.differential_evolution import DEConfig, DEForward
from stages.config import AttackSpec
from stages.masks.regions import region_mask
from stages.saliency import SALIENCE_MODELS, SalienceModel, threshold_mask
from stages.utils.errors import DataError


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


def de_config(spec: AttackSpec, *, targeted: bool = False, forward: DEForward | None = None) -> DEConfig:
    """The DE settings of a ``kind: de`` attack (Wang et al., §IV-B; defaults in DEConfig);
    ``forward``: how the device scores candidates (None: DEConfig's defaults)."""
    config = DEConfig(
        pixels=spec.pixels,
        population=spec.population,
        max_generations=spec.max_generations,
        mutation=spec.mutation,
        crossover_rate=spec.crossover_rate,
        strategy=spec.strategy,
        search=spec.search,
        init=spec.init,
        targeted=targeted,
        color_levels=spec.color_levels,
    )
    return config if forward is None else forward.apply(config)


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
