"""Natural, adversarial and localized adversarial training, resumable epoch by epoch.

One loop serves every mode: an adversarial model replaces each minibatch by its adversarial
examples under the model's ``train_attack`` (standard AT when the attack's region is the whole
image, LAT when it is localized) before the optimiser step. Each epoch's randomness (shuffle
order and attack random starts) derives from (seed, epoch) alone, so a run resumed from the
checkpoint of epoch k ends bit-identical to an uninterrupted one on the same device.

A recipe's length is epochs or optimizer steps (Rothberg et al. 2019, §5 train for 100,000
steps); a steps recipe runs exactly that many, its last epoch cut short.
"""

from __future__ import annotations

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

from stages.attacks.kinds import ATTACK_KINDS, attack_kind, perturb
from stages.config import AttackSpec, ModelSpec, TrainingSpec, digest
from stages.data.processed import ProcessedSplit
from stages.models.inputs import model_view
from stages.models.registry import build_model
from stages.training.augment import augment_batch
from stages.utils.errors import BackdropError, ConfigError
from stages.utils.io import save_torch
from stages.utils.progress import progress as progress_bar

log = logging.getLogger(__name__)


class TrainingDiverged(BackdropError):
    """The loss became NaN or infinite."""


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

    def metrics(self) -> dict[str, Any]:
        """Deterministic results: identical for identical settings and seed."""
        last = self.history[-1]
        return {
            "epochs": len(self.history),
            "steps": sum(h.steps for h in self.history),
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
) -> TrainingOutcome:
    """Train ``spec`` on ``split``, resuming from ``checkpoint`` when it matches ``spec``."""
    train_kind = attack_kind(spec.train_attack)
    if not train_kind.can_train:
        trainable = ", ".join(name for name, kind in sorted(ATTACK_KINDS.items()) if kind.can_train)
        raise ConfigError(
            f"models.{spec.name}.train_attack: {spec.train_attack.name!r} is a kind "
            f"{train_kind.name} attack, which runs in evaluation only; the kinds that can train: {trainable}"
        )
    torch.manual_seed(seed)
    model = model_for_split(spec, split).to(device)
    optimizer = make_optimizer(model, spec.training)
    run_key = digest({"spec": spec, "seed": seed, "box": box_fraction, "n": len(split)})

    history: list[EpochRecord] = []
    start_epoch = resumed_from = 0
    state = _read_checkpoint(checkpoint, device)
    if state is not None:
        if state.get("run_key") == run_key:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
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
            if spec.adversarial:
                attack = ramped_attack(spec, global_step, steps_per_epoch)
                model.eval()
                x = perturb(model, x, y, masks, attack, box_fraction, gen, model_input=spec.input)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(spec.training, global_step, total_steps)
            model.train()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"{spec.name}: the training loss became {loss.item()} at epoch {epoch + 1}, "
                    f"step {step + 1}; lower training.{spec.training.name}.lr in params.yaml. "
                    f"The last good checkpoint ({checkpoint}, epoch {start_epoch}) is kept."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
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
        _save_checkpoint(checkpoint, model, optimizer, history, epoch + 1, run_key)
        start_epoch = epoch + 1

    return TrainingOutcome(model=model, history=history, resumed_from_epoch=resumed_from)


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
) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "history": [asdict(h) for h in history],
        "epoch": epoch,
        "steps": sum(h.steps for h in history),  # optimizer steps taken so far
        "run_key": run_key,
    }
    save_torch(path, state)
