"""The registry of attack kinds: the one place that dispatches on params.yaml's
``attacks.<name>.kind``.

Each kind is one object implementing :class:`~stages.attack_kinds.base.AttackKind` (how it
perturbs a batch, how it is evaluated, the region it changes, its restarts, whether it can
train), named ``KIND`` in a module of this package named after it. Training
(stages.training.trainer) and evaluation (:mod:`stages.attack_kinds.evaluate`) look the object up with
:func:`attack_kind` and never branch on the kind's name, so a new kind is one module here plus
one entry in :data:`KIND_MODULES` (and its settings in params.yaml's schema and AttackSpec).

A kind's module is imported only when an attack of that kind runs, so a job's code is the
kinds it names and no other (workflow.code_deps reads :data:`KIND_MODULES` for the job's code
digest): a change to the DE search reruns the DE evaluations, not the PGD ones.

This package sits between the attack algorithms (stages.attacks, which import neither it nor
stages.evaluation) and the evaluation procedures (stages.evaluation, which import stages.attacks
but not it): kinds use both, nothing below them uses the kinds.
"""

from __future__ import annotations

import importlib

import torch
from torch import nn

from stages.attack_kinds.base import AttackKind, ExtraRecords
from stages.config import AttackSpec
from stages.utils.errors import ConfigError

__all__ = [
    "ATTACK_KINDS",
    "KIND_MODULES",
    "AttackKind",
    "ExtraRecords",
    "all_kinds",
    "attack_kind",
    "perturb",
    "register",
]

KIND_MODULES: dict[str, str] = {
    "none": "stages.attack_kinds.none",
    "pgd": "stages.attack_kinds.pgd",
    "dual": "stages.attack_kinds.dual",
    "de": "stages.attack_kinds.de",
    "autoattack": "stages.attack_kinds.autoattack",
}
"""The built-in kinds by params.yaml's ``kind``: the module whose ``KIND`` object runs them."""

ATTACK_KINDS: dict[str, AttackKind] = {}
"""The kinds loaded so far (built-in ones on first use) and those added with :func:`register`."""


def register(kind: AttackKind) -> AttackKind:
    """Make ``kind`` the object of attacks with ``kind: <kind.name>``; returns it."""
    if kind.name in ATTACK_KINDS or kind.name in KIND_MODULES:
        raise ValueError(f"attack kind {kind.name!r} is registered already ({kind_by_name(kind.name)!r})")
    ATTACK_KINDS[kind.name] = kind
    return kind


def kind_by_name(name: str) -> AttackKind:
    """The kind object of ``name``, its module imported on first use; KeyError if none."""
    if name not in ATTACK_KINDS:
        ATTACK_KINDS[name] = importlib.import_module(KIND_MODULES[name]).KIND
    return ATTACK_KINDS[name]


def all_kinds() -> dict[str, AttackKind]:
    """Every kind, built-in and registered, by name (imports every built-in kind's module)."""
    for name in KIND_MODULES:
        kind_by_name(name)
    return dict(sorted(ATTACK_KINDS.items()))


def attack_kind(spec: AttackSpec) -> AttackKind:
    """The registered object of ``spec``'s kind; a ConfigError naming the known kinds if none."""
    try:
        return kind_by_name(spec.kind)
    except KeyError:
        known = ", ".join(sorted({*KIND_MODULES, *ATTACK_KINDS}))
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
