"""Training: it learns, an interrupted run resumes to the same result as an uninterrupted one,
a NaN loss stops with a clear error and keeps the last good checkpoint, the adversary used
by LAT never touches the centre box, and a recipe given in optimizer steps (Rothberg et al.
2019, §5: 100,000 steps) runs exactly that many."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch

from stages.config import AttackSpec, DatasetSpec, ModelSpec, TrainingSpec
from stages.data.processed import ProcessedSplit
from stages.models.registry import make_arch
from stages.training import trainer
from stages.training.trainer import TrainingDiverged, train
from stages.utils.errors import ConfigError

NATURAL = AttackSpec(name="natural", kind="none")
LAT_ATTACK = AttackSpec(
    name="lat",
    kind="pgd",
    norm="linf",
    eps=0.3,
    step_size=0.1,
    steps=2,
    random_start=True,
    region="outside_box",
    localization="post_clip",
)
BOX = 0.5


def toy_split(n: int = 96, seed: int = 0) -> ProcessedSplit:
    """Two classes: a bright bar in the top or the bottom half of a 12x12 image."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.integers(0, 40, (n, 12, 12, 1)).astype(np.uint8)
    for i, y in enumerate(labels):
        rows = slice(2, 5) if y == 0 else slice(7, 10)
        images[i, rows, 2:10, 0] = 230
    return ProcessedSplit(
        images=images,
        labels=labels.astype(np.int64),
        ids=np.array([str(i) for i in range(n)]),
        meta={"num_classes": 2},
    )


def spec(
    attack: AttackSpec = NATURAL,
    epochs: int = 3,
    *,
    steps: int | None = None,
    batch_size: int = 16,
    lr_schedule: Literal["constant", "cosine"] = "constant",
) -> ModelSpec:
    """A toy model; given ``steps``, its recipe is a steps recipe (and ``epochs`` is unused)."""
    training = TrainingSpec(
        name="toy",
        optimizer="adam",
        lr=1e-3,
        batch_size=batch_size,
        epochs=None if steps is not None else epochs,
        steps=steps,
        lr_schedule=lr_schedule,
    )
    return ModelSpec(
        name="toy",
        dataset=DatasetSpec(name="toy", source="mnist", train_samples=None, test_samples=None),
        arch=make_arch("lat_cnn", "lat_cnn", {}, "test"),
        training=training,
        train_attack=attack,
    )


def run_training(tmp_path: Path, model_spec: ModelSpec, name: str = "ckpt.pt"):
    return train(
        model_spec,
        toy_split(),
        seed=0,
        box_fraction=BOX,
        device=torch.device("cpu"),
        checkpoint=tmp_path / name,
        progress=False,
    )


def test_natural_training_learns_the_toy_task(tmp_path: Path) -> None:
    outcome = run_training(tmp_path, spec(epochs=3))
    losses = [h.loss for h in outcome.history]
    assert losses[-1] < losses[0]
    assert outcome.history[-1].accuracy > 0.9


def test_interrupted_training_resumes_to_the_same_result(tmp_path: Path, monkeypatch) -> None:
    model_spec = spec(LAT_ATTACK, epochs=3)
    reference = run_training(tmp_path, model_spec, "reference.pt")

    calls = {"n": 0}
    original = trainer.perturb
    steps_per_epoch = 96 // 16

    def killed_mid_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == steps_per_epoch + 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "perturb", killed_mid_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        run_training(tmp_path, model_spec, "resumed.pt")
    assert torch.load(tmp_path / "resumed.pt", weights_only=False)["epoch"] == 1
    monkeypatch.setattr(trainer, "perturb", original)

    resumed = run_training(tmp_path, model_spec, "resumed.pt")
    assert resumed.resumed_from_epoch == 1
    assert resumed.metrics() == reference.metrics()
    for a, b in zip(resumed.model.state_dict().values(), reference.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_checkpoint_of_other_settings_is_not_resumed(tmp_path: Path) -> None:
    run_training(tmp_path, spec(epochs=1))
    other = spec(epochs=2)
    outcome = run_training(tmp_path, other)
    assert outcome.resumed_from_epoch == 0 and len(outcome.history) == 2


@pytest.mark.parametrize("damage", ["truncated", "foreign"])
def test_an_unreadable_checkpoint_is_named_and_training_starts_over(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    model_spec = spec(epochs=2)
    reference = run_training(tmp_path, model_spec, "reference.pt")
    checkpoint = tmp_path / "ckpt.pt"
    if damage == "truncated":  # half of a real checkpoint, as a full disk or a killed copy leaves it
        data = (tmp_path / "reference.pt").read_bytes()
        checkpoint.write_bytes(data[: len(data) // 2])
    else:
        torch.save({"something": "else"}, checkpoint)
    caplog.set_level(logging.WARNING, logger="stages.training.trainer")
    outcome = run_training(tmp_path, model_spec, "ckpt.pt")
    assert outcome.resumed_from_epoch == 0
    assert outcome.metrics() == reference.metrics()
    assert any(
        str(checkpoint) in r.getMessage() and "unreadable checkpoint" in r.getMessage()
        for r in caplog.records
    )
    # Set aside for a post-mortem, not deleted; the run's own checkpoint is a fresh, readable one.
    aside = tmp_path / "ckpt.pt.unreadable"
    assert aside.is_file() and f"set aside as {aside}" in caplog.text
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 2


def test_nan_loss_stops_clearly_and_keeps_the_last_good_checkpoint(tmp_path: Path, monkeypatch) -> None:
    calls = {"n": 0}
    original = trainer.F.cross_entropy

    def nan_in_epoch_two(logits, y, *args, **kwargs):
        calls["n"] += 1
        loss = original(logits, y, *args, **kwargs)
        return loss * float("nan") if calls["n"] > 96 // 16 + 1 else loss

    monkeypatch.setattr(trainer.F, "cross_entropy", nan_in_epoch_two)
    with pytest.raises(
        TrainingDiverged, match=r"became nan at epoch 2.*training\.toy\.lr.*epoch 1\) is kept"
    ):
        run_training(tmp_path, spec(epochs=3))
    assert torch.load(tmp_path / "ckpt.pt", weights_only=False)["epoch"] == 1


def test_lat_training_examples_leave_the_centre_box_untouched(tmp_path: Path, monkeypatch) -> None:
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    original = trainer.perturb

    def record(model, x, y, masks, attack, box_fraction, gen, **kwargs):
        x_adv = original(model, x, y, masks, attack, box_fraction, gen, **kwargs)
        seen.append((x.clone(), x_adv.clone()))
        return x_adv

    monkeypatch.setattr(trainer, "perturb", record)
    run_training(tmp_path, spec(LAT_ATTACK, epochs=1))
    assert seen
    for x, x_adv in seen:
        box = slice(3, 9)  # central half of 12
        assert torch.equal(x[..., box, box], x_adv[..., box, box])
        assert (x_adv - x).abs().max() <= 0.3 + 1e-6
        assert not torch.equal(x, x_adv)


def test_eps_ramp_grows_the_training_attack_linearly_then_holds(tmp_path: Path) -> None:
    from dataclasses import replace

    from stages.training.trainer import ramped_attack

    ramped = replace(spec(LAT_ATTACK), training=replace(spec().training, eps_ramp_epochs=1))
    steps_per_epoch = 4
    eps = [ramped_attack(ramped, s, steps_per_epoch).eps for s in range(6)]
    assert eps[:4] == pytest.approx([0.075, 0.15, 0.225, 0.3])
    assert eps[4:] == [LAT_ATTACK.eps, LAT_ATTACK.eps]
    step = ramped_attack(ramped, 1, steps_per_epoch).step_size
    assert step == pytest.approx(LAT_ATTACK.step_size * 0.5)
    assert ramped_attack(spec(LAT_ATTACK), 0, steps_per_epoch) is LAT_ATTACK  # no ramp: unchanged


# --- recipes given in optimizer steps ---------------------------------------------------------

N = 96  # toy_split()'s size
BATCH = 20  # not a divisor of N: every epoch ends on a short batch of 16


def counted_optimizer_steps(monkeypatch) -> list[float]:
    """Record the learning rate of every optimizer.step() the trainer takes, in order."""
    taken: list[float] = []
    original = trainer.make_optimizer

    def counting(model, training):
        optimizer = original(model, training)
        step = optimizer.step

        def counted_step(*args, **kwargs):
            taken.append(optimizer.param_groups[0]["lr"])
            return step(*args, **kwargs)

        optimizer.step = counted_step  # type: ignore[method-assign]
        return optimizer

    monkeypatch.setattr(trainer, "make_optimizer", counting)
    return taken


@pytest.mark.parametrize("steps", [1, 4, 5, 13, 15])
def test_a_steps_recipe_runs_exactly_that_many_optimizer_steps(
    tmp_path: Path, monkeypatch, steps: int
) -> None:
    taken = counted_optimizer_steps(monkeypatch)
    model_spec = spec(steps=steps, batch_size=BATCH)
    outcome = run_training(tmp_path, model_spec)

    per_epoch = -(-N // BATCH)  # 5
    epochs = -(-steps // per_epoch)
    assert len(taken) == steps
    assert outcome.metrics()["steps"] == steps
    assert outcome.metrics()["epochs"] == len(outcome.history) == epochs
    last = steps - per_epoch * (epochs - 1)  # the partial epoch's steps (all of them if whole)
    assert [h.steps for h in outcome.history] == [per_epoch] * (epochs - 1) + [last]
    state = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert (state["epoch"], state["steps"]) == (epochs, steps)
    assert model_spec.training.total_steps(N) == steps
    assert model_spec.training.total_epochs(N) == epochs


def test_the_lr_schedule_of_a_steps_recipe_spans_its_steps(tmp_path: Path, monkeypatch) -> None:
    taken = counted_optimizer_steps(monkeypatch)
    model_spec = spec(steps=13, batch_size=BATCH, lr_schedule="cosine")
    run_training(tmp_path, model_spec)
    expected = [trainer.learning_rate(model_spec.training, s, 13) for s in range(13)]
    assert taken == pytest.approx(expected)
    assert taken[0] == pytest.approx(1e-3) and taken[-1] < 0.02 * 1e-3  # annealed to ~0 at step 13


def test_whole_epochs_in_steps_train_as_the_epochs_recipe(tmp_path: Path) -> None:
    per_epoch = -(-N // BATCH)
    by_steps = run_training(tmp_path, spec(steps=2 * per_epoch, batch_size=BATCH), "steps.pt")
    by_epochs = run_training(tmp_path, spec(epochs=2, batch_size=BATCH), "epochs.pt")
    assert by_steps.metrics() == by_epochs.metrics()
    for a, b in zip(by_steps.model.state_dict().values(), by_epochs.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("killed_at_call", [7, 12])  # mid epoch 2; mid the partial epoch 3
def test_an_interrupted_steps_recipe_resumes_to_the_same_steps_and_weights(
    tmp_path: Path, monkeypatch, killed_at_call: int
) -> None:
    model_spec = spec(LAT_ATTACK, steps=13, batch_size=BATCH)
    reference = run_training(tmp_path, model_spec, "reference.pt")

    calls = {"n": 0}
    original = trainer.perturb

    def killed(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == killed_at_call:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "perturb", killed)
    with pytest.raises(KeyboardInterrupt):
        run_training(tmp_path, model_spec, "resumed.pt")
    done_epochs = (killed_at_call - 1) // 5
    state = torch.load(tmp_path / "resumed.pt", weights_only=False)
    assert (state["epoch"], state["steps"]) == (done_epochs, 5 * done_epochs)
    monkeypatch.setattr(trainer, "perturb", original)

    taken = counted_optimizer_steps(monkeypatch)
    resumed = run_training(tmp_path, model_spec, "resumed.pt")
    assert resumed.resumed_from_epoch == done_epochs
    assert len(taken) == 13 - 5 * done_epochs
    assert torch.load(tmp_path / "resumed.pt", weights_only=False)["steps"] == 13
    assert resumed.metrics() == reference.metrics()
    for a, b in zip(resumed.model.state_dict().values(), reference.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("lengths", "expected"),
    [
        ({}, r"training\.toy: gives neither of epochs and steps; give exactly one"),
        ({"epochs": 2, "steps": 10}, r"training\.toy: gives both of epochs and steps; give exactly one"),
        ({"steps": 0}, r"training\.toy\.steps: 0; give a positive integer"),
    ],
)
def test_a_recipe_needs_exactly_one_length(lengths: dict[str, int], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        TrainingSpec(name="toy", optimizer="adam", lr=1e-3, batch_size=BATCH, **lengths)
