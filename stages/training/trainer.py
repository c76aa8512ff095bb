"""Natural, adversarial and localized adversarial training, resumable epoch by epoch.

One loop serves every mode: an adversarial model replaces each minibatch by its adversarial
examples under the model's ``train_attack`` (standard AT when the attack's region is the whole
image, LAT when it is localized) before the optimiser step. Each epoch's randomness (shuffle
order and attack random starts) derives from (seed, epoch) alone, so a run resumed from the
checkpoint of epoch k ends bit-identical to an uninterrupted one on the same device.

A recipe's length is epochs or optimizer steps (Rothberg et al. 2019, §5 train for 100,000
steps); a steps recipe runs exactly that many, its last epoch cut short.

How it computes is a :class:`~stages.config.TrainingPrecision` (params.yaml's ``precision``):
the forward pass and the loss under autocast (bf16, fp16) or not (fp32), the weights and the
optimizer state in fp32 always, fp16's gradients through a loss scaler, the model and its
batches in a memory format, TF32 on CUDA on or off, and the training attack's passes through
the model at their own precision (stages/utils/precision.py). ``contiguous`` is torch's default
layout for the weights and the batches (ProcessedSplit.tensors gives NCHW-contiguous images);
``channels_last`` stores the weights and every batch NHWC. On a CPU, channels-last training of
ResNet-34 crashed in the backward pass (memory corruption, torch 2.11) at small odd batch sizes,
an epoch's last partial batch: keep ``contiguous`` there.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from stages.attack_kinds import all_kinds, attack_kind, perturb
from stages.config import AttackSpec, ModelSpec, TrainingPrecision, TrainingSpec, digest
from stages.data.processed import ProcessedSplit
from stages.models.inputs import model_view
from stages.models.registry import build_model
from stages.training.augment import augment_batch
from stages.utils.errors import BackdropError, ConfigError
from stages.utils.io import save_torch
from stages.utils.precision import (
    apply_memory_format,
    autocast,
    autocast_forward,
    check_memory_format,
    check_precision,
    grad_scaler,
    tf32,
    to_memory_format,
)
from stages.utils.progress import progress as progress_bar

log = logging.getLogger(__name__)


class TrainingDiverged(BackdropError):
    """The loss became NaN or infinite."""


FP32 = TrainingPrecision()


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    accuracy: float
    images_per_s: float
    seconds: float
    steps: int  # optimizer steps in this epoch (fewer than a full pass in a steps recipe's last)


@dataclass
class TrainingOutcome:
    model: nn.Module
    history: list[EpochRecord] = field(default_factory=list)
    resumed_from_epoch: int = 0
    # The settings in force (:func:`precision_record`): part of what the metrics are results of.
    precision: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """Deterministic results: identical for identical settings and seed."""
        last = self.history[-1]
        return {
            "epochs": len(self.history),
            "steps": sum(h.steps for h in self.history),
            "precision": self.precision,
            "final_train_loss": last.loss,
            "final_train_accuracy": last.accuracy,
            "train_loss": [h.loss for h in self.history],
            "train_accuracy": [h.accuracy for h in self.history],
        }

    def throughput(self) -> dict[str, Any]:
        """Timings, which vary from run to run and so live apart from the metrics."""
        return {
            "train_seconds": sum(h.seconds for h in self.history),
            "images_per_s": [h.images_per_s for h in self.history],
            "resumed_from_epoch": self.resumed_from_epoch,
        }


def precision_record(precision: TrainingPrecision, device: torch.device) -> dict[str, Any]:
    """The settings a run trains with on ``device``, as its metrics record them: ``tf32`` is
    whether TF32 was in force (never on a device without it)."""
    return {
        "device": device.type,
        "precision": precision.precision,
        "memory_format": precision.memory_format,
        "tf32": bool(precision.tf32 and device.type == "cuda"),
        "attack_precision": precision.attack_precision,
    }


def check_training_precision(precision: TrainingPrecision, device: torch.device) -> None:
    """A ConfigError naming params.yaml's key when a setting is not one the code knows."""
    where = f"precision.training.{device.type}"
    try:
        check_precision(precision.precision, f"{where}.precision")
        check_memory_format(precision.memory_format, f"{where}.memory_format")
        if precision.attack_precision is not None:
            check_precision(precision.attack_precision, f"precision.training_attack.{device.type}.precision")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def make_optimizer(model: nn.Module, spec: TrainingSpec) -> torch.optim.Optimizer:
    if spec.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay
    )


def learning_rate(spec: TrainingSpec, global_step: int, total_steps: int) -> float:
    """The learning rate at ``global_step``: constant, or cosine-annealed from ``lr`` to 0 over
    the whole run (Loshchilov & Hutter 2017, SGDR without restarts). A function of the step
    alone, so a resumed run follows the same schedule with no scheduler state to restore."""
    if spec.lr_schedule == "constant":
        return spec.lr
    return 0.5 * spec.lr * (1.0 + math.cos(math.pi * global_step / max(total_steps, 1)))


# Every budget and step length of an attack (pgd's, and a dual attack's two parts).
RAMPED_FIELDS = (
    "eps",
    "step_size",
    "eps_foreground",
    "eps_background",
    "step_size_foreground",
    "step_size_background",
)


def ramped_attack(spec: ModelSpec, global_step: int, steps_per_epoch: int) -> AttackSpec:
    """The training attack at ``global_step``: eps and step size grow linearly from 0 to
    their full values over the first ``eps_ramp_epochs`` epochs (a curriculum that keeps
    large-eps adversarial training from stalling at chance before the model has learnt
    anything; 0 epochs: the full attack from the start)."""
    ramp_steps = spec.training.eps_ramp_epochs * steps_per_epoch
    if ramp_steps <= 0 or global_step >= ramp_steps:
        return spec.train_attack
    factor = (global_step + 1) / ramp_steps
    attack = spec.train_attack
    return replace(
        attack,
        **{field: getattr(attack, field) * factor for field in RAMPED_FIELDS},
    )


def _epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed * 100_003 + epoch)
    return gen


def epoch_batches(
    spec: ModelSpec,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    m_all: torch.Tensor | None,
    gen: torch.Generator,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """One epoch's minibatches (images as the model sees them, labels, masks): the split, held
    as tensors on the device, shuffled by ``gen``, each batch augmented with ``gen``."""
    batch_size = spec.training.batch_size
    order = torch.randperm(len(y_all), generator=gen, device=y_all.device)
    for idx in order.split(batch_size):
        x, y = x_all[idx], y_all[idx]
        masks = None if m_all is None else m_all[idx]
        x, masks = augment_batch(x, masks, spec.training.augment, gen)
        yield model_view(x, masks, spec.input), y, masks


def model_for_split(spec: ModelSpec, split: ProcessedSplit) -> nn.Module:
    _, height, width, channels = split.images.shape
    if height != width:
        raise BackdropError(f"{spec.name}: images must be square, got {height}x{width}")
    num_classes = int(split.meta.get("num_classes", int(split.labels.max()) + 1))
    return build_model(spec.arch, channels, height, num_classes)


def train(
    spec: ModelSpec,
    split: ProcessedSplit,
    *,
    seed: int,
    box_fraction: float,
    device: torch.device,
    checkpoint: Path,
    progress: bool = True,
    precision: TrainingPrecision = FP32,
) -> TrainingOutcome:
    """Train ``spec`` on ``split``, resuming from ``checkpoint`` when it matches ``spec`` (and
    ``precision``); ``precision``: how it computes (default: fp32, contiguous, no TF32)."""
    train_kind = attack_kind(spec.train_attack)
    if not train_kind.can_train:
        trainable = ", ".join(name for name, kind in all_kinds().items() if kind.can_train)
        raise ConfigError(
            f"models.{spec.name}.train_attack: {spec.train_attack.name!r} is a kind "
            f"{train_kind.name} attack, which runs in evaluation only; the kinds that can train: {trainable}"
        )
    # The training attack's precision is in force for an adversarially trained model only.
    attack_precision = (precision.attack_precision or "fp32") if spec.adversarial else None
    precision = replace(precision, attack_precision=attack_precision)
    check_training_precision(precision, device)
    with tf32(device, precision.tf32):
        return _train(spec, split, seed, box_fraction, device, checkpoint, progress, precision)


def _train(
    spec: ModelSpec,
    split: ProcessedSplit,
    seed: int,
    box_fraction: float,
    device: torch.device,
    checkpoint: Path,
    progress: bool,
    precision: TrainingPrecision,
) -> TrainingOutcome:
    torch.manual_seed(seed)
    model = model_for_split(spec, split).to(device)
    channels_last = precision.memory_format == "channels_last"
    if channels_last:  # the weights stay fp32 (autocast lowers only the operations): layout only
        model = apply_memory_format(model, "channels_last")
    optimizer = make_optimizer(model, spec.training)
    scaler = grad_scaler(device, precision.precision)
    # The attack's passes through the model at their own precision, outputs back in fp32.
    attack_model = autocast_forward(model, device, precision.attack_precision or "fp32")
    key: dict[str, Any] = {"spec": spec, "seed": seed, "box": box_fraction, "n": len(split)}
    # fp32 runs keep the key their checkpoints had before the setting existed.
    if precision != replace(FP32, attack_precision=precision.attack_precision and "fp32"):
        key["precision"] = precision
    run_key = digest(key)
    setting = _setting_text(precision, device)

    history: list[EpochRecord] = []
    start_epoch = resumed_from = 0
    state = _read_checkpoint(checkpoint, device)
    if state is not None:
        if state.get("run_key") == run_key:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            history = [EpochRecord(**h) for h in state["history"]]
            start_epoch = state["epoch"]
            log.info("%s: resuming from the checkpoint of epoch %d", spec.name, start_epoch)
            resumed_from = start_epoch
        else:
            log.info("%s: checkpoint %s is for other settings; starting afresh", spec.name, checkpoint)

    x_all, y_all, m_all = split.tensors()
    x_all, y_all = x_all.to(device), y_all.to(device)
    m_all = None if m_all is None else m_all.to(device)
    n = len(split)
    steps_per_epoch = spec.training.steps_per_epoch(n)
    # The lr schedule and the run end on the recipe's step count, whether given as steps or
    # as epochs; a steps recipe's last epoch takes only the first batches of its shuffle.
    total_steps = spec.training.total_steps(n)
    epochs = spec.training.total_epochs(n)

    for epoch in range(start_epoch, epochs):
        gen = _epoch_generator(seed, epoch, device)
        total_loss, correct, seen = 0.0, 0, 0
        epoch_steps = min(steps_per_epoch, total_steps - epoch * steps_per_epoch)
        started = time.perf_counter()
        bar = progress_bar(
            range(epoch_steps),
            desc=f"{spec.name} epoch {epoch + 1}/{epochs}",
            enabled=progress,
            unit="batch",
        )
        batches = epoch_batches(spec, x_all, y_all, m_all, gen)
        # zip stops after epoch_steps batches: the whole shuffle, or its head in a partial epoch.
        for step, (x, y, masks) in zip(bar, batches, strict=epoch_steps == steps_per_epoch):
            global_step = epoch * steps_per_epoch + step
            if channels_last:
                x = to_memory_format(x, "channels_last")
            if spec.adversarial:
                attack = ramped_attack(spec, global_step, steps_per_epoch)
                model.eval()
                x = perturb(attack_model, x, y, masks, attack, box_fraction, gen, model_input=spec.input)
                if channels_last:
                    x = to_memory_format(x, "channels_last")
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(spec.training, global_step, total_steps)
            model.train()
            with _forward_precision(device, precision.precision):
                logits = model(x)
                loss = F.cross_entropy(logits, y)
            if not torch.isfinite(loss):
                kept = (
                    f"The last good checkpoint ({checkpoint}, epoch {start_epoch}) is kept."
                    if start_epoch > 0
                    else "No epoch had ended, so there is no checkpoint to keep."
                )
                low = precision.precision != "fp32" or precision.attack_precision not in (None, "fp32")
                raise TrainingDiverged(
                    f"{spec.name}: the training loss became {loss.item()} at epoch {epoch + 1}, "
                    f"step {step + 1} (optimizer step {global_step + 1}) under {setting}; lower "
                    f"training.{spec.training.name}.lr in params.yaml"
                    + (f", or train in fp32 (precision.training.{device.type} in params.yaml)" if low else "")
                    + f". {kept}"
                )
            optimizer.zero_grad(set_to_none=True)
            # A disabled scaler (every precision but fp16) passes these straight through.
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total_loss += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            rate = seen / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", img_s=f"{rate:.0f}", refresh=False)
        seconds = time.perf_counter() - started
        record = EpochRecord(
            epoch + 1, total_loss / seen, correct / seen, seen / seconds, seconds, epoch_steps
        )
        history.append(record)
        log.info(
            "%s epoch %d/%d: loss %.4f, accuracy %.4f, %.0f images/s",
            spec.name,
            record.epoch,
            epochs,
            record.loss,
            record.accuracy,
            record.images_per_s,
        )
        _save_checkpoint(checkpoint, model, optimizer, history, epoch + 1, run_key, scaler.state_dict())
        start_epoch = epoch + 1

    return TrainingOutcome(
        model=model,
        history=history,
        resumed_from_epoch=resumed_from,
        precision=precision_record(precision, device),
    )


def _forward_precision(device: torch.device, precision: str) -> contextlib.AbstractContextManager[None]:
    """Autocast for bf16 and fp16; for fp32 nothing, so that the run's own TF32 setting holds
    (the shared :func:`autocast` switches TF32 off for fp32 on CUDA, as evaluations want)."""
    return contextlib.nullcontext() if precision == "fp32" else autocast(device, precision)  # type: ignore[arg-type]


def _setting_text(precision: TrainingPrecision, device: torch.device) -> str:
    """The settings in force, for messages: "precision bf16, memory_format contiguous, ..."."""
    record = precision_record(precision, device)
    parts = [f"precision {record['precision']}", f"memory_format {record['memory_format']}"]
    if device.type == "cuda":
        parts.append(f"tf32 {'on' if record['tf32'] else 'off'}")
    if record["attack_precision"] is not None:
        parts.append(f"training attack {record['attack_precision']}")
    return f"{', '.join(parts)} on {device.type} (params.yaml precision)"


def _read_checkpoint(path: Path, device: torch.device) -> dict[str, Any] | None:
    """The resume state at ``path``, or None. A checkpoint is only a cache of a run in progress:
    one that cannot be read (a truncated copy, a disk error) is reported, naming the file, set
    aside as ``<name>.unreadable`` (for a post-mortem; never silently deleted), and training
    starts from the beginning instead of stopping: the checkpoint is the run's only one, so
    there is no earlier good one to fall back to."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=False)
        if not isinstance(state, dict) or not {"model", "optimizer", "history", "epoch"} <= set(state):
            raise ValueError("not a training checkpoint of this pipeline")
    except Exception as exc:  # torch raises many types for a damaged zip or pickle
        aside = path.with_name(path.name + ".unreadable")
        path.replace(aside)
        log.warning(
            "%s: unreadable checkpoint (%s); set aside as %s, training from the start instead",
            path,
            exc,
            aside,
        )
        return None
    return state


def _save_checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    history: list[EpochRecord],
    epoch: int,
    run_key: str,
    scaler: dict[str, Any] | None = None,
) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": [asdict(h) for h in history],
        "epoch": epoch,
        "steps": sum(h.steps for h in history),  # optimizer steps taken so far
        "run_key": run_key,
    }
    if scaler:  # fp16's loss scale, so that a resumed run continues from it
        state["scaler"] = scaler
    save_torch(path, state)
