"""One model's evaluation under one attack: the dispatch to the attack's kind.

A kind evaluated its own way (DE's per-image search) returns its records from
:meth:`~stages.attack_kinds.base.AttackKind.evaluate`; every other kind is evaluated batch by
batch (:func:`stages.evaluation.robustness.evaluate_batches`). Only the evaluate stage imports
this module, so evaluation code is no part of a training job's code (workflow.code_deps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from stages.attack_kinds import attack_kind
from stages.config import AttackSpec
from stages.data.processed import ProcessedSplit
from stages.evaluation.robustness import evaluate_batches

if TYPE_CHECKING:
    from stages.attacks.de_forward import DEForward


def evaluate(
    model: nn.Module,
    split: ProcessedSplit,
    attack: AttackSpec,
    *,
    box_fraction: float,
    batch_size: int,
    seed: int,
    device: torch.device,
    model_input: str = "natural",
    progress: bool = True,
    de_forward: DEForward | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (metrics, throughput) of ``model`` on ``split`` under ``attack``.

    ``model_input`` is what the model sees (see :mod:`stages.models.inputs`): a foreground
    model is shown x∘F and attacked on its foreground only. The metrics are deterministic for
    a fixed seed and device; throughput is timing only. ``de_forward`` is how a DE search
    scores its candidates on this device (:mod:`stages.evaluation.pixel`).
    """
    kind = attack_kind(attack)
    settings: dict[str, Any] = {
        "box_fraction": box_fraction,
        "batch_size": batch_size,
        "seed": seed,
        "device": device,
        "model_input": model_input,
        "progress": progress,
    }
    own = kind.evaluate(model, split, attack, **settings, de_forward=de_forward)
    if own is not None:
        return own
    return evaluate_batches(kind, model, split, attack, **settings)
