"""Accuracy and cross-entropy of one model under one attack, batch by batch.

:func:`stages.attack_kinds.evaluate` asks the attack's kind for the evaluation; most kinds take
:func:`evaluate_batches`, the batch-wise one here (this module imports no kind: the kinds
import it, so stages.evaluation and stages.attack_kinds form no import loop). With R > 1 starts
(:meth:`~stages.attack_kinds.AttackKind.evaluation_starts`, PGD's ``restarts``) each sample
keeps the worst of R random starts (a misclassifying start first, then the highest loss), the
usual way to make a PGD estimate of robust accuracy less optimistic.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from stages.config import AttackSpec
from stages.data.processed import ProcessedSplit
from stages.evaluation.records import per_image_record, round_values
from stages.models.inputs import model_view
from stages.utils.progress import progress as progress_bar

if TYPE_CHECKING:
    from stages.attack_kinds import AttackKind

log = logging.getLogger(__name__)


def evaluate_batches(
    kind: AttackKind,
    model: nn.Module,
    split: ProcessedSplit,
    attack: AttackSpec,
    *,
    box_fraction: float,
    batch_size: int,
    seed: int,
    device: torch.device,
    model_input: str,
    progress: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics, throughput) of ``model`` on ``split`` under ``attack`` of ``kind``, batch by
    batch: each image keeps the worst of the kind's starts, and the record holds the usual
    per-image outcomes plus the kind's extra records (a dual attack's foreground scores)."""
    model.eval()
    x_all, y_all, m_all = split.tensors()
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    n = len(split)
    loss_sum, correct, linf_max, l2_sum = 0.0, 0, 0.0, 0.0
    extra = kind.extra_records(attack, device)
    # Per image, so that a claim's verdict can be a paired test and be recomputed later
    # without rerunning the attack (stages/claims).
    image_correct: list[int] = []
    image_loss: list[float] = []
    image_prediction: list[int] = []
    started = time.perf_counter()
    batches = range(0, n, batch_size)
    for start in progress_bar(batches, desc=attack.name, enabled=progress, unit="batch"):
        x = x_all[start : start + batch_size].to(device)
        y = y_all[start : start + batch_size].to(device)
        masks = None if m_all is None else m_all[start : start + batch_size].to(device)
        x = model_view(x, masks, model_input)
        x_adv, losses = _worst_of_restarts(kind, model, x, y, masks, attack, box_fraction, gen, model_input)
        with torch.no_grad():
            logits = model(x_adv)
        delta = (x_adv - x).flatten(1)
        predictions = logits.argmax(1)
        loss_sum += float(losses.sum())
        correct += int((predictions == y).sum())
        image_correct.extend(int(v) for v in (predictions == y).tolist())
        image_loss.extend(float(v) for v in losses.tolist())
        image_prediction.extend(int(v) for v in predictions.tolist())
        linf_max = max(linf_max, float(delta.abs().max()) if delta.numel() else 0.0)
        l2_sum += float(delta.norm(dim=1).sum())
        if extra is not None:
            extra.add(x, x_adv, masks)
    seconds = time.perf_counter() - started
    metrics = {
        "attack": attack.name,
        "model_input": model_input,
        "effective_region": kind.effective_region(attack, model_input),
        "restarts": kind.restarts(attack),
        "samples": n,
        "accuracy": correct / n,
        "loss": loss_sum / n,
        "max_linf_perturbation": linf_max,
        "mean_l2_perturbation": l2_sum / n,
        "per_image": per_image_record(split.ids, image_correct, image_loss, image_prediction),
    }
    if extra is not None:
        metrics["per_image"].update({key: round_values(v) for key, v in extra.per_image().items()})
        metrics.update(extra.summary(n))
    throughput = {"seconds": seconds, "images_per_s": n / max(seconds, 1e-9)}
    log.info(
        "%s: accuracy %.4f, loss %.4f on %d samples (%.1f images/s)",
        attack.name,
        metrics["accuracy"],
        metrics["loss"],
        n,
        throughput["images_per_s"],
    )
    return metrics, throughput


def _worst_of_restarts(
    kind: AttackKind,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    masks: torch.Tensor | None,
    attack: AttackSpec,
    box_fraction: float,
    gen: torch.Generator,
    model_input: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best of R random starts per image: a start that misclassifies the image wins over one
    that does not (robust only if every start fails), then the higher loss. R is the kind's
    evaluation starts (1 for an attack that restarts inside itself, as AutoAttack)."""
    best_x, best_loss, best_wrong = x, None, None
    for _ in range(kind.evaluation_starts(attack)):
        x_adv = kind.perturb(model, x, y, masks, attack, box_fraction, gen, model_input=model_input)
        with torch.no_grad():
            logits = model(x_adv)
        loss = F.cross_entropy(logits, y, reduction="none")
        wrong = logits.argmax(1) != y
        if best_loss is None or best_wrong is None:
            best_x, best_loss, best_wrong = x_adv, loss, wrong
            continue
        better = (wrong & ~best_wrong) | ((wrong == best_wrong) & (loss > best_loss))
        best_x = torch.where(better.view(-1, 1, 1, 1), x_adv, best_x)
        best_loss = torch.where(better, loss, best_loss)
        best_wrong = best_wrong | wrong
    assert best_loss is not None
    return best_x, best_loss
