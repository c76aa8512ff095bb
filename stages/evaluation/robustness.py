"""Accuracy and cross-entropy of one model under one attack.

With ``restarts`` R > 1 each sample keeps the worst of R random starts (a misclassifying
start first, then the highest loss), the usual way to make a PGD estimate of robust accuracy
less optimistic.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from stages.attacks.spec import dual_foreground, perturb, salience_model
from stages.config import AttackSpec
from stages.data.processed import ProcessedSplit
from stages.evaluation.pixel import evaluate_pixel_attack
from stages.evaluation.records import per_image_record, round_values
from stages.models.inputs import model_view
from stages.saliency import foreground_score
from stages.utils.progress import progress as progress_bar

log = logging.getLogger(__name__)


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
    de_forward_batch: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (metrics, throughput) of ``model`` on ``split`` under ``attack``.

    ``model_input`` is what the model sees (see :mod:`stages.models.inputs`): a foreground
    model is shown x∘F and attacked on its foreground only. The metrics are deterministic for
    a fixed seed and device; throughput is timing only. Few-pixel DE attacks (``kind: de``)
    are black-box and report much more: see :mod:`stages.evaluation.pixel`; ``de_forward_batch``
    is their candidates per forward pass (speed only).
    """
    if attack.kind == "de":
        return evaluate_pixel_attack(
            model,
            split,
            attack,
            box_fraction=box_fraction,
            batch_size=batch_size,
            seed=seed,
            device=device,
            progress=progress,
            forward_batch=de_forward_batch,
        )
    model.eval()
    x_all, y_all, m_all = split.tensors()
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    n = len(split)
    loss_sum, correct, linf_max, l2_sum = 0.0, 0, 0.0, 0.0
    # Dual attacks: the foreground score (paper §3.2) of every adversarial and clean image.
    salience = salience_model(attack, device) if attack.kind == "dual" else None
    fs_adv_sum, fs_nat_sum = 0.0, 0.0
    # Per image, so that a claim's verdict can be a paired test and be recomputed later
    # without rerunning the attack (stages/claims).
    image_correct: list[int] = []
    image_loss: list[float] = []
    image_prediction: list[int] = []
    image_fs: list[float] = []
    image_fs_natural: list[float] = []
    image_fg_fraction: list[float] = []
    started = time.perf_counter()
    batches = range(0, n, batch_size)
    for start in progress_bar(batches, desc=attack.name, enabled=progress, unit="batch"):
        x = x_all[start : start + batch_size].to(device)
        y = y_all[start : start + batch_size].to(device)
        masks = None if m_all is None else m_all[start : start + batch_size].to(device)
        x = model_view(x, masks, model_input)
        x_adv, losses = _worst_of_restarts(model, x, y, masks, attack, box_fraction, gen, model_input)
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
        if salience is not None:
            with torch.no_grad():
                fg = dual_foreground(attack, x, masks, salience)
                fs_adv = foreground_score(salience(x_adv), fg)
                fs_nat = foreground_score(salience(x), fg)
                fs_adv_sum += float(fs_adv.sum())
                fs_nat_sum += float(fs_nat.sum())
                image_fs.extend(float(v) for v in fs_adv.tolist())
                image_fs_natural.extend(float(v) for v in fs_nat.tolist())
                # FS of a uniform salience map: what FS_natural must beat (stages/claims).
                image_fg_fraction.extend(float(v) for v in fg.flatten(1).float().mean(1).tolist())
    seconds = time.perf_counter() - started
    metrics = {
        "attack": attack.name,
        "model_input": model_input,
        "effective_region": _effective_region(attack, model_input),
        "restarts": attack.restarts if attack.kind != "none" else 1,
        "samples": n,
        "accuracy": correct / n,
        "loss": loss_sum / n,
        "max_linf_perturbation": linf_max,
        "mean_l2_perturbation": l2_sum / n,
        "per_image": per_image_record(split.ids, image_correct, image_loss, image_prediction),
    }
    if salience is not None:
        metrics["per_image"].update(
            foreground_score=round_values(image_fs),
            foreground_score_natural=round_values(image_fs_natural),
            foreground_fraction=round_values(image_fg_fraction),
        )
        metrics.update(
            foreground_source=attack.foreground,
            # Which salience model FS came from: the dual table reports what ran, not what
            # params.yaml says now.
            salience_model=attack.salience,
            foreground_score=fs_adv_sum / n,
            foreground_score_natural=fs_nat_sum / n,
        )
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


def _effective_region(attack: AttackSpec, model_input: str) -> str | None:
    """The pixels the attack could change, in words (see stages.attacks.spec.attack_region)."""
    if attack.kind == "none":
        return None
    if attack.kind == "dual":
        return (
            f"foreground <= {attack.eps_foreground:.4g}, background <= {attack.eps_background:.4g} "
            f"({attack.norm})"
        )
    if model_input == "foreground" and attack.region != "foreground":
        return f"{attack.region} & foreground"
    return attack.region


def _worst_of_restarts(
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
    that does not (robust only if every start fails), then the higher loss. AutoAttack runs its
    own restarts inside."""
    best_x, best_loss, best_wrong = x, None, None
    for _ in range(attack.restarts if attack.kind in ("pgd", "dual") else 1):
        x_adv = perturb(model, x, y, masks, attack, box_fraction, gen, model_input=model_input)
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
