"""The registry of attack kinds: the one place that dispatches on params.yaml's
``attacks.<name>.kind``.

Each kind is one object implementing :class:`~stages.attacks.kinds.base.AttackKind` (how it
perturbs a batch, how it is evaluated, the region it changes, its restarts, whether it can
train), in a module of this package named after it. Training (stages.training.trainer) and
evaluation (stages.evaluation.robustness) look the object up with :func:`attack_kind` and never
branch on the kind's name, so a new kind is one module here plus one entry in
:data:`BUILTIN_KINDS` (and its settings in params.yaml's schema and AttackSpec).
"""

from __future__ import annotations

import torch
from torch import nn

from stages.attacks.kinds.autoattack import AutoAttack
from stages.attacks.kinds.base import AttackKind, ExtraRecords
from stages.attacks.kinds.de import DifferentialEvolution
from stages.attacks.kinds.dual import Dual
from stages.attacks.kinds.none import NoAttack
from stages.attacks.kinds.pgd import Pgd
from stages.config import AttackSpec
from stages.utils.errors import ConfigError

__all__ = ["ATTACK_KINDS", "AttackKind", "ExtraRecords", "attack_kind", "perturb", "register"]

ATTACK_KINDS: dict[str, AttackKind] = {}
"""Every registered kind by its name (params.yaml's ``kind``)."""


def register(kind: AttackKind) -> AttackKind:
    """Make ``kind`` the object of attacks with ``kind: <kind.name>``; returns it."""
    if kind.name in ATTACK_KINDS:
        raise ValueError(f"attack kind {kind.name!r} is registered already ({ATTACK_KINDS[kind.name]!r})")
    ATTACK_KINDS[kind.name] = kind
    return kind


BUILTIN_KINDS: tuple[AttackKind, ...] = (NoAttack(), Pgd(), Dual(), DifferentialEvolution(), AutoAttack())
for _kind in BUILTIN_KINDS:
    register(_kind)


def attack_kind(spec: AttackSpec) -> AttackKind:
    """The registered object of ``spec``'s kind; a ConfigError naming the known kinds if none."""
    try:
        return ATTACK_KINDS[spec.kind]
    except KeyError:
        known = ", ".join(sorted(ATTACK_KINDS))
        raise ConfigError(
            f"attacks.{spec.name}.kind: unknown attack kind {spec.kind!r} (known: {known})"
        ) from None


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
    """Adversarial examples of the batch ``x`` under ``spec`` (:meth:`AttackKind.perturb` of
    its kind); ``x`` itself for ``kind: none``."""
    return attack_kind(spec).perturb(
        model, x, y, masks, spec, box_fraction, generator, model_input=model_input
    )
