"""Few-pixel differential-evolution attacks (Wang et al., pixel space) as an evaluation.

One ``kind: de`` attack of params.yaml is k pixels in one region (whole image, foreground or
background), searched as the paper does (``search: composite``) or as we do (``indexed``).

Which images are attacked (``attacked``):

- ``all`` (the paper's): every one of the first ``images`` test images, each with y = the class
  the model predicts for the clean image (§III-A: "y represents the true class predicted by
  the classifier before being attacked"; §IV-B: 500 random test images per model). A success
  is a label other than y, so a misclassified image is attacked like any other.
- ``correct`` (ours): only the images the model classifies correctly, with their true labels
  (an image it already gets wrong needs no attack).

Both success rates are reported wherever they exist: over every attacked image (the paper's
Table II denominator under ``all``) and over the attacked images the model classifies correctly
(ours; under ``correct`` the two are one). Robust accuracy is over every evaluated image and is
the same quantity under both: correct on the clean image and not fooled. So the robust metrics
(accuracy, loss, perturbation sizes, ``per_image``) use the adversarial image only where the
clean image was classified correctly; a misclassified image stays clean there (it is an error
already, and its attack, away from the wrong class, could even land on the true one).

Besides the usual metrics the result holds a ``pixel_attack`` block with everything Wang et
al.'s Table II, Table IV and Figs. 3-6 need: the search, strategy and attacked set, per-image
outcomes with their fitness curves, and, for the first ``targeted_images`` attacked images,
the outcome of the targeted attack towards each other class (source = y, as the paper's
targeted attack on "an image classified as class A").
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from stages.attacks.de_forward import DEForward
from stages.attacks.differential_evolution import (
    DEConfig,
    DEResult,
    differential_evolution_attack,
    targeted_all_pairs,
)
from stages.attacks.spec import attack_region
from stages.config import AttackSpec
from stages.data.processed import ProcessedSplit
from stages.evaluation.records import per_image_record
from stages.utils.precision import apply_memory_format

log = logging.getLogger(__name__)

DIGITS = 6  # rounding of probabilities and colours in the JSON (stable, readable files)


def _round(value: float) -> float:
    return round(float(value), DIGITS)


def _mean(values: list[float]) -> float | None:
    return _round(sum(values) / len(values)) if values else None


def _predict(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat(
            [model(x[s : s + batch_size].to(device)).cpu() for s in range(0, len(x), batch_size)]
        )


def _image_records(
    index: torch.Tensor, labels: torch.Tensor, true_labels: torch.Tensor, result: DEResult
) -> list[dict[str, Any]]:
    """One record per attacked image. ``label`` is the class y the attack moved away from (the
    clean prediction or the true label, see the module docstring), ``true_label`` the dataset's;
    ``pixels`` are the pixels written into the image (row, col, colour), i.e. the reported
    candidate's pixels inside the region, ``pixels_in_region`` of them out of k."""
    assert result.history is not None
    records = []
    for i in range(len(index)):
        stop = int(result.generations[i]) + 1
        inside = result.in_region[i]
        coords, values = result.pixel_coords[i][inside].tolist(), result.pixel_values[i][inside].tolist()
        records.append(
            {
                "index": int(index[i]),
                "label": int(labels[i]),
                "true_label": int(true_labels[i]),
                "clean_correct": bool(labels[i] == true_labels[i]),
                "success": bool(result.success[i]),
                "queries": int(result.queries[i]),
                "generations": int(result.generations[i]),
                "true_class_probability": _round(result.confidence[i]),
                "adversarial_label": int(result.adversarial_label[i]),
                "adversarial_confidence": _round(result.adversarial_confidence[i]),
                "pixels": [
                    [r, c, *(_round(v) for v in colour)]
                    for (r, c), colour in zip(coords, values, strict=True)
                ],
                "pixels_in_region": int(inside.sum()),
                "idle_queries": int(result.idle_queries[i]),
                "forwards": int(result.forwards[i]),
                "low_precision_rejections": int(result.low_precision_rejections[i]),
                "fitness": [_round(v) for v in result.history[i, :stop].tolist()],
            }
        )
    return records


def _rate(successes: int, images: int) -> float | None:
    return _round(successes / images) if images else None


def _untargeted_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and rates over the attacked images: ``success_rate`` = successes / every attacked
    image (the paper's denominator under ``attacked: all``), ``correct_success_rate`` =
    successes / the attacked images classified correctly (ours)."""
    wins = [r for r in records if r["success"]]
    correct = [r for r in records if r["clean_correct"]]
    correct_wins = sum(r["success"] for r in correct)
    queries = sum(r["queries"] for r in records)
    return {
        "successes": len(wins),
        "success_rate": _rate(len(wins), len(records)),
        "correct_images": len(correct),
        "correct_successes": correct_wins,
        "correct_success_rate": _rate(correct_wins, len(correct)),
        # The composite search's evaluations of the clean image itself (0 when indexed).
        "idle_query_share": _rate(sum(r["idle_queries"] for r in records), queries),
        # The images the model actually scored (repeated candidates are not scored again, and a
        # low-precision search adds its fp32 confirmations), and the successes fp32 rejected.
        "forwards": sum(r["forwards"] for r in records),
        "low_precision_rejections": sum(r["low_precision_rejections"] for r in records),
        "confidence": _mean([r["adversarial_confidence"] for r in wins]),
        "mean_generations": _mean([r["generations"] for r in wins]),
        "mean_queries": _mean([r["queries"] for r in records]),
        "images": records,
    }


def _targeted_summary(
    model: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    clean_correct: torch.Tensor,
    index: torch.Tensor,
    region: torch.Tensor,
    attack: AttackSpec,
    num_classes: int,
    generator: torch.Generator,
    progress: bool,
    forward: DEForward | None,
) -> tuple[dict[str, Any], int]:
    sweep = targeted_all_pairs(
        model,
        x,
        labels.to(x.device),
        region,
        num_classes,
        de_config(attack, targeted=True, forward=forward),
        generator=generator,
        progress=progress,
        desc=f"{attack.name} targeted",
    )
    r = sweep.result
    pairs = [
        {
            "index": int(index[sweep.image_index[p]]),
            "source": int(sweep.source[p]),
            "target": int(sweep.target[p]),
            "success": bool(r.success[p]),
            "queries": int(r.queries[p]),
            "generations": int(r.generations[p]),
            "target_probability": _round(r.confidence[p]),
            "adversarial_label": int(r.adversarial_label[p]),
            "clean_correct": bool(clean_correct[sweep.image_index[p]]),
        }
        for p in range(len(sweep.target))
    ]
    wins = [p for p in pairs if p["success"]]
    correct = [p for p in pairs if p["clean_correct"]]
    reached = torch.bincount(sweep.targets_reached(), minlength=num_classes)
    summary = {
        "images": len(x),
        "pairs": len(pairs),
        "successes": len(wins),
        "success_rate": _rate(len(wins), len(pairs)),
        "correct_images": int(clean_correct.sum()),
        "correct_pairs": len(correct),
        "correct_successes": sum(p["success"] for p in correct),
        "confidence": _mean(
            [float(r.adversarial_confidence[p]) for p in range(len(pairs)) if pairs[p]["success"]]
        ),
        "untargeted_success_rate": _round(float(sweep.untargeted_success().float().mean()))
        if len(x)
        else None,
        "targets_reached": reached.tolist(),
        "forwards": int(r.forwards.sum()),
        "low_precision_rejections": int(r.low_precision_rejections.sum()),
        "pairs_list": pairs,
    }
    return summary, int(r.queries.sum())


def evaluate_pixel_attack(
    model: nn.Module,
    split: ProcessedSplit,
    attack: AttackSpec,
    *,
    box_fraction: float,
    batch_size: int,
    seed: int,
    device: torch.device,
    progress: bool = True,
    de_forward: DEForward | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (metrics, throughput) of ``model`` under the few-pixel DE attack ``attack``.

    ``de_forward``: how this device scores candidates (batch, precision, memory layout; None:
    DEConfig's defaults). The model is stored in its memory layout for the run.

    Deterministic for a fixed seed and device: DE draws its random numbers on the CPU from a
    generator seeded with ``seed`` (stages.attacks.differential_evolution, "Determinism").
    """
    model.eval()
    forward = de_forward or DEForward()
    apply_memory_format(model, forward.memory_format)
    split = split.head(attack.images)
    x_all, y_all, m_all = split.tensors()
    n = len(split)
    started = time.perf_counter()
    logits = _predict(model, x_all, batch_size, device)
    num_classes = logits.shape[1]
    predicted = logits.argmax(1)
    clean_correct = predicted == y_all
    if attack.attacked == "all":
        # The paper: every image, y = the class the model predicted before the attack.
        index = torch.arange(n)
        y = predicted
    else:
        index = clean_correct.nonzero().flatten()
        y = y_all[index]
    correct = clean_correct[index]  # per attacked image
    x = x_all[index].to(device)
    masks = None if m_all is None else m_all[index].to(device)
    region = attack_region(attack, x.shape, masks, box_fraction, "natural", device)
    generator = torch.Generator().manual_seed(seed)
    x_adv = x_all.clone()
    fooled = torch.zeros(n, dtype=torch.bool)  # correct on the clean image, then fooled
    queries = 0
    if len(index):
        result = differential_evolution_attack(
            model,
            x,
            y.to(device),
            region,
            de_config(attack, forward=forward),
            generator=generator,
            record_history=True,
            progress=progress,
            desc=attack.name,
        )
        # Robust metrics take the adversarial image where the clean one was right (module docstring).
        x_adv[index[correct]] = result.adversarial[correct]
        fooled[index[correct]] = result.success[correct]
        queries += int(result.queries.sum())
        untargeted = _untargeted_summary(_image_records(index, y, y_all[index], result))
    else:
        untargeted = _untargeted_summary([])
    targeted = None
    chosen = min(attack.targeted_images, len(index))
    if chosen:
        targeted, spent = _targeted_summary(
            model,
            x[:chosen],
            y[:chosen],
            correct[:chosen],
            index[:chosen],
            region[:chosen],
            attack,
            num_classes,
            generator,
            progress,
            de_forward,
        )
        queries += spent
    with torch.no_grad():
        adv_logits = _predict(model, x_adv, batch_size, device)
    image_loss = F.cross_entropy(adv_logits, y_all, reduction="none")
    loss = image_loss.sum()
    prediction = adv_logits.argmax(1)
    robust = clean_correct & ~fooled
    delta = (x_adv - x_all).flatten(1)
    seconds = time.perf_counter() - started
    metrics = {
        "attack": attack.name,
        "model_input": "natural",
        "effective_region": attack.region,
        "restarts": 1,
        "samples": n,
        "accuracy": float(robust.sum()) / n if n else 0.0,
        "loss": float(loss) / n if n else 0.0,
        "max_linf_perturbation": float(delta.abs().max()) if delta.numel() else 0.0,
        "mean_l2_perturbation": float(delta.norm(dim=1).sum()) / n if n else 0.0,
        "per_image": per_image_record(
            split.ids, robust.int().tolist(), image_loss.tolist(), prediction.tolist()
        ),
        "pixel_attack": {
            "pixels": attack.pixels,
            "region": attack.region,
            # How the attack ran: the paper's method is search composite, strategy rand1,
            # attacked_set all (Wang et al. §III-D, Eq. 11, §IV-B).
            "search": attack.search,
            "strategy": attack.strategy,
            "attacked_set": attack.attacked,
            "population": attack.population,
            "max_generations": attack.max_generations,
            # How candidates were scored: a low-precision search confirms every success in fp32.
            "search_precision": forward.precision,
            "memory_format": forward.memory_format,
            "num_classes": num_classes,
            "natural_accuracy": _round(float(clean_correct.sum()) / n) if n else None,
            "attacked": len(index),
            "correct_attacked": int(correct.sum()),
            "untargeted": untargeted,
            "targeted": targeted,
        },
    }
    throughput = {
        "seconds": seconds,
        "images_per_s": n / max(seconds, 1e-9),
        "model_evaluations": queries,
        "model_evaluations_per_s": queries / max(seconds, 1e-9),
    }
    log.info(
        "%s (%s search, %s): %d of %d attacked images fooled, robust accuracy %.4f on %d samples "
        "(%.0f model evaluations/s)",
        attack.name,
        attack.search,
        attack.strategy,
        untargeted["successes"],
        len(index),
        metrics["accuracy"],
        n,
        throughput["model_evaluations_per_s"],
    )
    return metrics, throughput


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
