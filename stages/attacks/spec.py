"""Running an attack described by params.yaml (an :class:`AttackSpec`) on one batch.

The single bridge between the config and the attack library, shared by training
(adversarial examples for AT and LAT) and evaluation.
"""

from __future__ import annotations

import torch
from torch import nn

from stages.attacks.autoattack import AutoAttackConfig, autoattack
from stages.attacks.differential_evolution import DEConfig
from stages.attacks.dual import dual_pgd
from stages.attacks.pgd import localized_pgd
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


def de_config(spec: AttackSpec, *, targeted: bool = False, max_batch: int | None = None) -> DEConfig:
    """The DE settings of a ``kind: de`` attack (Wang et al., §IV-B; defaults in DEConfig);
    ``max_batch`` (speed only) None keeps DEConfig's."""
    return DEConfig(
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
        **({} if max_batch is None else {"max_batch": max_batch}),
    )


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
    if spec.kind == "de":
        raise DataError(
            f"{spec.name}: a differential-evolution attack runs in evaluation only "
            f"(stages.evaluation.pixel), not as a training or gradient attack"
        )
    if spec.kind == "autoattack":
        if model_input == "foreground":
            raise DataError(f"{spec.name}: AutoAttack changes every pixel; this model sees only x∘F")
        with torch.no_grad():
            num_classes = int(model(x[:1]).shape[1])
        # A seed per batch from the evaluation's generator: reruns give the same examples.
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator, device=x.device)) if generator else 0
        try:
            return autoattack(model, x, y, autoattack_config(spec), num_classes=num_classes, seed=seed)
        except ValueError as exc:
            raise DataError(f"attacks.{spec.name}: {exc}") from None
    if spec.kind == "dual":
        if model_input == "foreground":
            raise DataError(f"{spec.name}: a dual attack needs a model that sees the background")
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
