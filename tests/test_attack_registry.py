"""The attack-kind registry (stages.attack_kinds): every kind params.yaml may name has one
registered object, an unknown kind is an error naming the known ones, and a kind registered
from outside (here, in the test) is evaluated and trained on through the same dispatch, so a
new kind is one module plus one registration."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from stages.attack_kinds import (
    ATTACK_KINDS,
    AttackKind,
    all_kinds,
    attack_kind,
    kind_by_name,
    perturb,
    register,
)
from stages.attack_kinds.evaluate import evaluate
from stages.config import SCHEMA_PATH, AttackSpec, DatasetSpec, ModelSpec, TrainingSpec
from stages.data.processed import ProcessedSplit
from stages.models.registry import make_arch
from stages.training.trainer import train
from stages.utils.errors import ConfigError

BUILTIN = ["autoattack", "de", "dual", "none", "pgd"]


def schema_kinds() -> list[str]:
    schema = yaml.safe_load(Path(SCHEMA_PATH).read_text(encoding="utf-8"))
    return schema["properties"]["attacks"]["additionalProperties"]["properties"]["kind"]["enum"]


def test_every_kind_the_schema_and_attack_spec_allow_has_one_registered_object() -> None:
    spec_kinds = typing.get_args(typing.get_type_hints(AttackSpec)["kind"])
    assert sorted(schema_kinds()) == sorted(spec_kinds) == BUILTIN
    for name in BUILTIN:
        kind = attack_kind(AttackSpec(name="a", kind=name))  # type: ignore[arg-type]
        assert isinstance(kind, AttackKind) and kind.name == name
    # The evaluation-only kinds (Params.check refuses them as a train_attack).
    assert sorted(name for name, kind in all_kinds().items() if not kind.can_train) == ["autoattack", "de"]


def test_an_unknown_kind_is_an_error_naming_the_known_ones() -> None:
    laser = AttackSpec(name="zap", kind="laser")  # type: ignore[arg-type]
    message = r"attacks\.zap\.kind: unknown attack kind 'laser' \(known: autoattack, de, dual, none, pgd\)"
    with pytest.raises(ConfigError, match=message):
        attack_kind(laser)
    with pytest.raises(ConfigError, match=message):
        evaluate(
            nn.Identity(), _split(), laser, box_fraction=0.5, batch_size=4, seed=0, device=torch.device("cpu")
        )


def test_a_kind_registers_once() -> None:
    with pytest.raises(ValueError, match="'pgd' is registered already"):
        register(kind_by_name("pgd"))


class Brighten(AttackKind):
    """A toy kind: adds ``eps`` to every pixel; two starts per batch in evaluation; keeps the
    mean brightness of each adversarial image as an extra record."""

    name = "brighten"
    can_train = True

    def __init__(self) -> None:
        self.calls: list[int] = []  # batch sizes perturbed

    def perturb(self, model, x, y, masks, spec, box_fraction, generator, *, model_input="natural"):
        self.calls.append(len(x))
        return (x + spec.eps).clamp(0, 1)

    def effective_region(self, spec: AttackSpec, model_input: str) -> str | None:
        return f"everything + {spec.eps}"

    def restarts(self, spec: AttackSpec) -> int:
        return 2

    def evaluation_starts(self, spec: AttackSpec) -> int:
        return 2

    def extra_records(self, spec: AttackSpec, device: torch.device) -> Brightness:
        return Brightness()


class Brightness:
    def __init__(self) -> None:
        self.values: list[float] = []

    def add(self, x: torch.Tensor, x_adv: torch.Tensor, masks: torch.Tensor | None) -> None:
        self.values.extend(x_adv.flatten(1).mean(1).tolist())

    def per_image(self) -> dict[str, list[float]]:
        return {"brightness": self.values}

    def summary(self, samples: int) -> dict[str, Any]:
        return {"mean_brightness": sum(self.values) / samples}


class Oracle(AttackKind):
    """A toy kind evaluated its own way (as DE is): it never perturbs, it reports."""

    name = "oracle"
    can_train = False

    def perturb(self, model, x, y, masks, spec, box_fraction, generator, *, model_input="natural"):
        raise AssertionError("an oracle is never run batch by batch")

    def effective_region(self, spec: AttackSpec, model_input: str) -> str | None:
        return None

    def evaluate(self, model, split, spec, **settings: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return {"attack": spec.name, "samples": len(split), "settings": settings}, {}


@pytest.fixture
def toy_kinds():
    kinds = [register(Brighten()), register(Oracle())]
    yield kinds
    for kind in kinds:
        del ATTACK_KINDS[kind.name]


def _split(n: int = 6, size: int = 8) -> ProcessedSplit:
    rng = np.random.default_rng(0)
    return ProcessedSplit(
        images=rng.integers(0, 200, (n, size, size, 1), dtype=np.uint8),
        labels=rng.integers(0, 2, n).astype(np.int64),
        ids=np.array([str(i) for i in range(n)]),
        meta={"num_classes": 2},
    )


def test_a_registered_toy_kind_is_evaluated_through_the_one_dispatch(toy_kinds) -> None:
    brighten, _ = toy_kinds
    spec = AttackSpec(name="bright", kind="brighten", eps=0.25)  # type: ignore[arg-type]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    metrics, _ = evaluate(
        model, _split(), spec, box_fraction=0.5, batch_size=4, seed=0, device=torch.device("cpu")
    )
    assert brighten.calls == [4, 4, 2, 2]  # two batches, two starts each
    assert metrics["effective_region"] == "everything + 0.25" and metrics["restarts"] == 2
    assert 0 < metrics["max_linf_perturbation"] <= 0.25 + 1e-6
    assert len(metrics["per_image"]["brightness"]) == 6
    assert metrics["mean_brightness"] == pytest.approx(np.mean(metrics["per_image"]["brightness"]), abs=1e-5)
    x = torch.zeros(3, 1, 8, 8)
    assert torch.equal(perturb(model, x, torch.zeros(3, dtype=torch.long), None, spec, 0.5, None), x + 0.25)


def test_a_toy_kind_with_its_own_evaluation_is_asked_for_it(toy_kinds) -> None:
    spec = AttackSpec(name="ask", kind="oracle")  # type: ignore[arg-type]
    metrics, _ = evaluate(
        nn.Identity(), _split(), spec, box_fraction=0.5, batch_size=4, seed=3, device=torch.device("cpu")
    )
    assert metrics["attack"] == "ask" and metrics["samples"] == 6
    assert metrics["settings"]["seed"] == 3 and metrics["settings"]["de_forward"] is None


def _model_spec(attack: AttackSpec) -> ModelSpec:
    return ModelSpec(
        name="toy",
        dataset=DatasetSpec(name="toy", source="mnist", train_samples=None, test_samples=None),
        arch=make_arch("tiny", "lat_cnn", {"conv_channels": [2, 2], "hidden": 4, "kernel_size": 3}, "test"),
        training=TrainingSpec(name="toy", optimizer="sgd", lr=0.01, batch_size=4, epochs=1),
        train_attack=attack,
    )


def test_a_toy_kind_trains_and_an_evaluation_only_kind_is_refused(toy_kinds, tmp_path: Path) -> None:
    brighten, _ = toy_kinds
    spec = AttackSpec(name="bright", kind="brighten", eps=0.1)  # type: ignore[arg-type]
    train(
        _model_spec(spec),
        _split(),
        seed=0,
        box_fraction=0.5,
        device=torch.device("cpu"),
        checkpoint=tmp_path / "a.pt",
        progress=False,
    )
    assert brighten.calls == [4, 2]  # one start per training batch
    oracle = AttackSpec(name="ask", kind="oracle")  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError,
        match=r"models\.toy\.train_attack: 'ask' is a kind oracle attack.*: brighten, dual, none, pgd",
    ):
        train(
            _model_spec(oracle),
            _split(),
            seed=0,
            box_fraction=0.5,
            device=torch.device("cpu"),
            checkpoint=tmp_path / "b.pt",
            progress=False,
        )


@pytest.mark.parametrize("kind", ["pgd", "dual", "autoattack"])
def test_an_l2_budget_beyond_any_two_images_distance_is_an_error_naming_the_key(kind: str) -> None:
    """sqrt(C*H*W) is the largest l2 distance inside [0, 1]^(C*H*W): 28 for MNIST's 1x28x28."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval()
    x, y = torch.rand(2, 1, 28, 28), torch.tensor([1, 2])
    masks = torch.zeros(2, 1, 28, 28, dtype=torch.bool)
    masks[:, :, 8:20, 8:20] = True
    key = "eps_background" if kind == "dual" else "eps"
    budgets = {"eps_foreground": 0.5, "eps_background": 2.0} if kind == "dual" else {"eps": 0.5}

    def spec(**changed: float) -> AttackSpec:
        extra = {"foreground": "mask"} if kind == "dual" else {}
        return AttackSpec(name="a", kind=kind, norm="l2", steps=1, **{**budgets, **changed}, **extra)  # type: ignore[arg-type]

    if kind != "autoattack":  # (the whole ensemble is slow; the check comes before it)
        perturb(model, x, y, masks, spec(**{key: 27.9}), 0.5, None)  # within the diameter: runs
    with pytest.raises(ConfigError, match=rf"attacks\.a\.{key}: an l2 budget of 40 exceeds 28\.00"):
        perturb(model, x, y, masks, spec(**{key: 40.0}), 0.5, None)
