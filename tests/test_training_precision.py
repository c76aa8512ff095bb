"""Training precision and memory layout (issue 25; params.yaml's ``precision``).

bf16 training lowers the loss as fp32 does, with fp32 master weights and optimizer state; the
settings in force reach the model's metrics; a NaN under bf16 stops the run naming the step and
the setting, keeping the last good checkpoint; channels-last trains to fp32's losses; the
training attack runs at its own precision; fp16 goes through a gradient scaler. The CUDA-only
pieces (TF32, the scaler on a GPU) are tested on the CPU as far as they can be (the flags, the
autocast dtypes, a scaler disabled unless fp16); the tests that need a GPU are skipped without
one. The settings are checked by the schema, resolved per scale and device, and written into
the training jobs' files, so that changing them reruns training.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from stages.config import (
    AttackSpec,
    DatasetSpec,
    ModelSpec,
    Params,
    TrainingPrecision,
    TrainingSpec,
    resolve_tree,
)
from stages.data.processed import ProcessedSplit, save_split
from stages.models.registry import make_arch
from stages.report.full_report import precision_lines
from stages.training import trainer
from stages.training.trainer import TrainingDiverged, precision_record, train
from stages.utils.errors import ConfigError
from stages.utils.precision import autocast, autocast_dtype, autocast_forward, grad_scaler, tf32
from tests.dag_tools import REPO

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
CPU = torch.device("cpu")
NATURAL = AttackSpec(name="natural", kind="none")
PGD = AttackSpec(name="pgd", kind="pgd", norm="linf", eps=0.1, step_size=0.05, steps=2, random_start=True)
LAT_CNN = make_arch("lat_cnn", "lat_cnn", {}, "test")
TINY_VGG = make_arch("vgg", "vgg", {"depth": 11, "width": 0.0625}, "test")  # 4-32 channels, BN
N, BATCH = 96, 16
STEPS_PER_EPOCH = N // BATCH
BF16 = TrainingPrecision(precision="bf16")
needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU (TF32 and the fp16 gradient scaler act on CUDA only); the CPU tests "
    "above cover the flags, the autocast dtypes and the scaler as far as a CPU can",
)


def bands(size: int = 12, channels: int = 1, classes: int = 4, seed: int = 0) -> ProcessedSplit:
    """``classes`` classes: which horizontal band of a noisy image is brighter (a faint signal,
    so the loss falls over dozens of steps rather than in a few)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, N)
    images = rng.integers(0, 120, (N, size, size, channels)).astype(np.uint8)
    band = size // classes
    for i, y in enumerate(labels):
        images[i, y * band : (y + 1) * band] += 40
    return ProcessedSplit(
        images=images,
        labels=labels.astype(np.int64),
        ids=np.array([str(i) for i in range(N)]),
        meta={"num_classes": classes},
    )


def spec(
    arch: Any = LAT_CNN, attack: AttackSpec = NATURAL, epochs: int = 6, optimizer: str = "adam"
) -> ModelSpec:
    training = TrainingSpec(
        name="toy",
        optimizer=optimizer,  # type: ignore[arg-type]
        lr=1e-3 if optimizer == "adam" else 0.02,
        batch_size=BATCH,
        epochs=epochs,
    )
    return ModelSpec(
        name="toy",
        dataset=DatasetSpec(name="toy", source="mnist", train_samples=None, test_samples=None),
        arch=arch,
        training=training,
        train_attack=attack,
    )


def run(
    tmp_path: Path,
    precision: TrainingPrecision,
    model_spec: ModelSpec | None = None,
    split: ProcessedSplit | None = None,
    name: str = "ckpt.pt",
    device: torch.device = CPU,
) -> trainer.TrainingOutcome:
    return train(
        model_spec or spec(),
        split or bands(),
        seed=0,
        box_fraction=0.5,
        device=device,
        checkpoint=tmp_path / name,
        progress=False,
        precision=precision,
    )


def losses(outcome: trainer.TrainingOutcome) -> list[float]:
    return [h.loss for h in outcome.history]


# --- training under bf16 ----------------------------------------------------------------------

# bf16 keeps 8 bits of mantissa: its loss curve follows fp32's, not to the last digit. Measured
# here: final losses 0.133 (fp32) and 0.128 (bf16) after 36 steps; the tolerance leaves room
# for other CPUs' bf16 kernels.
LOSS_TOLERANCE = 0.1


def test_bf16_training_lowers_the_loss_as_fp32_does(tmp_path: Path) -> None:
    fp32 = run(tmp_path, TrainingPrecision(), name="fp32.pt")
    bf16 = run(tmp_path, BF16, name="bf16.pt")
    for outcome in (fp32, bf16):
        curve = losses(outcome)
        assert curve[-1] < 0.5 * curve[0], curve  # 36 steps: the loss falls well below its start
    assert losses(bf16) != losses(fp32)  # it did run in another precision
    assert losses(bf16) == pytest.approx(losses(fp32), abs=LOSS_TOLERANCE)


def test_master_weights_and_optimizer_state_stay_fp32_under_bf16(tmp_path: Path, monkeypatch) -> None:
    optimizers: list[torch.optim.Optimizer] = []
    original = trainer.make_optimizer

    def keep(model, training):
        optimizers.append(original(model, training))
        return optimizers[-1]

    monkeypatch.setattr(trainer, "make_optimizer", keep)
    forward_dtypes: set[torch.dtype] = set()
    original_model = trainer.model_for_split

    def hooked(model_spec, split):
        model = original_model(model_spec, split)
        for layer in model.modules():
            if isinstance(layer, nn.Conv2d | nn.Linear):
                layer.register_forward_hook(lambda _m, _i, out: forward_dtypes.add(out.dtype))
        return model

    monkeypatch.setattr(trainer, "model_for_split", hooked)
    outcome = run(tmp_path, BF16, spec(epochs=1))

    assert forward_dtypes == {torch.bfloat16}  # the convolutions and products ran in bf16
    assert {p.dtype for p in outcome.model.parameters()} == {torch.float32}
    state = optimizers[0].state
    assert state, "the optimizer took no step"
    moments = [v for s in state.values() for v in s.values() if torch.is_tensor(v) and v.is_floating_point()]
    assert moments and {v.dtype for v in moments} == {torch.float32}
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert {v.dtype for v in saved["model"].values() if v.is_floating_point()} == {torch.float32}
    assert "scaler" not in saved  # bf16 needs no loss scaling


def test_the_precision_in_force_is_recorded_in_the_metrics(tmp_path: Path) -> None:
    natural = run(tmp_path, BF16, spec(epochs=1), name="natural.pt")
    assert natural.metrics()["precision"] == {
        "device": "cpu",
        "precision": "bf16",
        "memory_format": "contiguous",
        "tf32": False,
        "attack_precision": None,  # no training attack runs
    }
    adversarial = run(
        tmp_path,
        TrainingPrecision(memory_format="channels_last", tf32=True),
        spec(attack=PGD, epochs=1),
        name="adversarial.pt",
    )
    assert adversarial.metrics()["precision"] == {
        "device": "cpu",
        "precision": "fp32",
        "memory_format": "channels_last",
        "tf32": False,  # no TF32 off CUDA, whatever the setting
        "attack_precision": "fp32",  # unset: the attack runs in fp32
    }
    cuda = precision_record(TrainingPrecision("bf16", "channels_last", True, "bf16"), torch.device("cuda"))
    assert cuda == {
        "device": "cuda",
        "precision": "bf16",
        "memory_format": "channels_last",
        "tf32": True,
        "attack_precision": "bf16",
    }


# --- numerical guards -------------------------------------------------------------------------


def nan_at(monkeypatch, k: int) -> None:
    """The model's training-mode forward passes return NaN from the ``k``-th on (a hook, so the
    weights and their names are the model's own)."""
    original = trainer.model_for_split
    calls = {"n": 0}

    def nan_from_k(module: nn.Module, _inputs: Any, out: torch.Tensor) -> torch.Tensor:
        if module.training:
            calls["n"] += 1
            if calls["n"] >= k:
                return out * float("nan")
        return out

    def hooked(model_spec, split):
        model = original(model_spec, split)
        model.register_forward_hook(nan_from_k)
        return model

    monkeypatch.setattr(trainer, "model_for_split", hooked)


def test_a_nan_under_bf16_stops_naming_the_step_and_precision_and_keeps_the_last_checkpoint(
    tmp_path: Path, monkeypatch
) -> None:
    nan_at(monkeypatch, STEPS_PER_EPOCH + 3)  # epoch 2, step 3
    with pytest.raises(TrainingDiverged) as error:
        run(tmp_path, BF16, spec(epochs=3))
    message = str(error.value)
    assert "became nan at epoch 2, step 3 (optimizer step 9)" in message
    assert "under precision bf16, memory_format contiguous on cpu" in message
    assert "training.toy.lr" in message and "or train in fp32 (precision.training.cpu" in message
    assert f"The last good checkpoint ({tmp_path / 'ckpt.pt'}, epoch 1) is kept." in message

    kept = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert kept["epoch"] == 1 and kept["steps"] == STEPS_PER_EPOCH and len(kept["history"]) == 1
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())

    # The kept checkpoint is this setting's: without the NaN the run resumes from it.
    monkeypatch.undo()
    resumed = run(tmp_path, BF16, spec(epochs=3))
    assert resumed.resumed_from_epoch == 1 and len(resumed.history) == 3


def test_a_nan_in_the_first_epoch_says_there_is_no_checkpoint(tmp_path: Path, monkeypatch) -> None:
    nan_at(monkeypatch, 2)
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step 2 .*no checkpoint to keep"):
        run(tmp_path, BF16, spec(epochs=2))
    assert not (tmp_path / "ckpt.pt").exists()


def test_an_infinite_loss_is_caught_too(tmp_path: Path, monkeypatch) -> None:
    original = trainer.F.cross_entropy
    monkeypatch.setattr(trainer.F, "cross_entropy", lambda *a, **k: original(*a, **k) * float("inf"))
    with pytest.raises(TrainingDiverged, match=r"became inf at epoch 1, step 1 .*precision bf16"):
        run(tmp_path, BF16, spec(epochs=1))


def test_an_unknown_precision_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"precision\.training\.cpu\.precision: unknown precision 'fp8'"):
        run(tmp_path, TrainingPrecision(precision="fp8"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"precision\.training_attack\.cpu\.precision: unknown"):
        run(tmp_path, TrainingPrecision(attack_precision="int8"), spec(attack=PGD))  # type: ignore[arg-type]


# --- memory format and the training attack ----------------------------------------------------


def test_channels_last_trains_to_the_losses_of_contiguous(tmp_path: Path, monkeypatch) -> None:
    split = bands(size=32, channels=3)
    model_spec = spec(TINY_VGG, epochs=3, optimizer="sgd")
    contiguous = run(tmp_path, TrainingPrecision(), model_spec, split, name="contiguous.pt")

    layouts: list[bool] = []
    original = trainer.model_for_split

    def hooked(s, sp):
        model = original(s, sp)
        first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        first.register_forward_hook(
            lambda m, inputs, _out: layouts.append(
                inputs[0].is_contiguous(memory_format=torch.channels_last)
                and m.weight.is_contiguous(memory_format=torch.channels_last)
            )
        )
        return model

    monkeypatch.setattr(trainer, "model_for_split", hooked)
    nhwc = run(tmp_path, TrainingPrecision(memory_format="channels_last"), model_spec, split, name="nhwc.pt")
    assert layouts and all(layouts)  # the weights and every batch NHWC
    # The same values in another order: float sums are taken in another order, so the first
    # epoch agrees closely and later ones drift apart as the rounding differences compound.
    assert losses(nhwc)[0] == pytest.approx(losses(contiguous)[0], rel=1e-2)
    assert losses(nhwc) == pytest.approx(losses(contiguous), abs=LOSS_TOLERANCE)
    assert losses(nhwc)[-1] < losses(nhwc)[0]
    # bf16 and channels-last together (the fastest CPU setting in docs/benchmarks.md) train too.
    both = run(tmp_path, TrainingPrecision("bf16", "channels_last"), model_spec, split, name="both.pt")
    assert losses(both) == pytest.approx(losses(contiguous), abs=LOSS_TOLERANCE)


def test_the_training_attack_runs_at_its_own_precision(tmp_path: Path, monkeypatch) -> None:
    seen: dict[str, set[torch.dtype]] = {"attack": set(), "training": set()}
    adversarial: list[torch.dtype] = []
    original_model = trainer.model_for_split
    original_perturb = trainer.perturb

    def hooked(s, sp):
        model = original_model(s, sp)
        first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        first.register_forward_hook(
            lambda m, _i, out: seen["training" if m.training else "attack"].add(out.dtype)
        )
        return model

    def perturb(*args, **kwargs):
        x_adv = original_perturb(*args, **kwargs)
        adversarial.append(x_adv.dtype)
        return x_adv

    monkeypatch.setattr(trainer, "model_for_split", hooked)
    monkeypatch.setattr(trainer, "perturb", perturb)
    outcome = run(tmp_path, TrainingPrecision(attack_precision="bf16"), spec(attack=PGD, epochs=1))
    assert seen == {"attack": {torch.bfloat16}, "training": {torch.float32}}
    assert set(adversarial) == {torch.float32}  # the attack's own arithmetic stays fp32
    assert outcome.metrics()["precision"]["attack_precision"] == "bf16"


def test_autocast_forward_lowers_the_model_alone_and_returns_fp32() -> None:
    model = nn.Linear(4, 3)
    assert autocast_forward(model, CPU, "fp32") is model
    wrapped = autocast_forward(model, CPU, "bf16")
    x = torch.randn(2, 4, requires_grad=True)
    out = wrapped(x)
    assert out.dtype == torch.float32 and x.dtype == torch.float32
    assert list(wrapped.parameters()) == list(model.parameters())
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert grad.dtype == torch.float32
    assert not wrapped.eval().model.training  # the mode is the wrapped model's


# --- the CUDA pieces, on the CPU as far as they go ----------------------------------------------


@pytest.mark.parametrize(
    ("precision", "dtype"), [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)]
)
def test_the_autocast_dtype_switch(precision: str, dtype: torch.dtype) -> None:
    assert autocast_dtype(precision) == dtype  # type: ignore[arg-type]
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with autocast(CPU, precision):  # type: ignore[arg-type]
        assert (a @ b).dtype == dtype


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_gradient_scaler_is_disabled_unless_fp16(precision: str) -> None:
    scaler = grad_scaler(CPU, precision)  # type: ignore[arg-type]
    assert not scaler.is_enabled()
    loss = torch.tensor(2.0, requires_grad=True)
    assert scaler.scale(loss) is loss  # passes straight through
    assert not grad_scaler(torch.device("cuda"), precision).is_enabled()  # type: ignore[arg-type]


def test_fp16_trains_through_an_enabled_scaler_whose_state_is_checkpointed(tmp_path: Path) -> None:
    scaler = grad_scaler(CPU, "fp16")
    if not scaler.is_enabled():
        pytest.skip(f"torch {torch.__version__} has no CPU gradient scaler (torch < 2.3)")
    outcome = run(
        tmp_path, TrainingPrecision("fp16"), spec(TINY_VGG, epochs=2, optimizer="sgd"), bands(32, 3)
    )
    assert losses(outcome)[-1] < losses(outcome)[0]
    assert {p.dtype for p in outcome.model.parameters()} == {torch.float32}
    saved = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    assert saved["scaler"]["scale"] > 0  # the loss scale, for a resumed run to continue from


def test_tf32_flags_are_set_on_cuda_only_and_restored() -> None:
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn)
    before = tuple(f.allow_tf32 for f in flags)
    for enabled in (True, False):
        with tf32(torch.device("cuda"), enabled):  # flags only: no GPU needed
            assert tuple(f.allow_tf32 for f in flags) == (enabled, enabled)
        assert tuple(f.allow_tf32 for f in flags) == before
        with tf32(CPU, enabled):
            assert tuple(f.allow_tf32 for f in flags) == before
    # An fp32 training step keeps the run's setting (the shared autocast would switch TF32 off
    # for fp32 on CUDA, as evaluations want).
    with tf32(torch.device("cuda"), True), trainer._forward_precision(torch.device("cuda"), "fp32"):
        assert tuple(f.allow_tf32 for f in flags) == (True, True)


@needs_cuda
def test_cuda_bf16_and_tf32_training(tmp_path: Path, monkeypatch) -> None:
    cuda = torch.device("cuda")
    flags: list[tuple[bool, bool]] = []
    original = trainer.model_for_split

    def hooked(s, sp):
        model = original(s, sp)
        model.register_forward_hook(
            lambda *_: flags.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        )
        return model

    monkeypatch.setattr(trainer, "model_for_split", hooked)
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    fp32 = run(tmp_path, TrainingPrecision(), name="fp32.pt", device=cuda)
    assert set(flags) == {(False, False)}  # fp32 is true fp32: cuDNN's TF32 default turned off
    flags.clear()
    tf32_run = run(tmp_path, TrainingPrecision(tf32=True), name="tf32.pt", device=cuda)
    assert set(flags) == {(True, True)}
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    bf16 = run(tmp_path, TrainingPrecision("bf16", "channels_last", True), name="bf16.pt", device=cuda)
    for outcome in (fp32, tf32_run, bf16):
        assert losses(outcome)[-1] < 0.5 * losses(outcome)[0]
    assert losses(bf16) == pytest.approx(losses(fp32), abs=LOSS_TOLERANCE)
    assert bf16.metrics()["precision"] == {
        "device": "cuda",
        "precision": "bf16",
        "memory_format": "channels_last",
        "tf32": True,
        "attack_precision": None,
    }


@needs_cuda
def test_cuda_fp16_uses_the_gradient_scaler(tmp_path: Path, monkeypatch) -> None:
    cuda = torch.device("cuda")
    scalers = []
    original = trainer.grad_scaler
    monkeypatch.setattr(trainer, "grad_scaler", lambda *a: scalers.append(original(*a)) or scalers[-1])
    outcome = run(tmp_path, TrainingPrecision("fp16"), device=cuda)
    assert scalers[0].is_enabled() and scalers[0].get_scale() > 1
    assert losses(outcome)[-1] < 0.5 * losses(outcome)[0]
    assert {p.dtype for p in outcome.model.parameters()} == {torch.float32}


# --- params.yaml: schema, scales, devices, job files, report -----------------------------------


def params_with(**changes: object) -> dict:
    raw = copy.deepcopy(PARAMS)
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return raw


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "precision.training.cpu.precision",
            "fp64",
            r"precision\.training\.cpu\.precision: 'fp64' is not one of \['fp32', 'bf16', 'fp16'\]",
        ),
        (
            "precision.training.cuda.precision",
            {"tiny": "fp32", "reduced": "int8", "paper": "bf16"},
            r"precision\.training\.cuda\.precision\.reduced: 'int8' is not one of",
        ),
        (
            "precision.training.cuda.memory_format",
            "nhwc",
            r"precision\.training\.cuda\.memory_format: 'nhwc' is not one of \['contiguous', 'channels_l",
        ),
        (
            "precision.training.cuda.tf32",
            "yes",
            r"precision\.training\.cuda\.tf32: 'yes' is not of type 'boolean'",
        ),
        ("precision.training.cpu.tf32", True, r"precision\.training\.cpu: .*'tf32' was unexpected"),
        ("precision.training.cuda.tf32", None, r"precision\.training\.cuda: 'tf32' is a required property"),
        (
            "precision.training_attack.cpu.precision",
            "half",
            r"precision\.training_attack\.cpu\.precision: 'half' is not one of",
        ),
        ("precision", None, r"<top level>: 'precision' is a required property"),
    ],
)
def test_schema_errors_name_the_precision_key(key: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        Params(params_with(**{key: value}))


def test_the_settings_resolve_per_scale_and_device() -> None:
    raw = params_with(
        **{
            "precision.training.cpu": {
                "precision": {"tiny": "fp32", "reduced": "bf16", "paper": "bf16"},
                "memory_format": {"tiny": "contiguous", "reduced": "contiguous", "paper": "channels_last"},
            },
            "precision.training_attack.cuda.precision": {"tiny": "fp32", "reduced": "fp32", "paper": "bf16"},
        }
    )
    adversarial, natural = "mnist_lat", "mnist_natural"
    tiny, reduced, paper = (Params(raw, scale=s) for s in ("tiny", "reduced", "paper"))
    assert tiny.training_precision(adversarial, "cpu") == TrainingPrecision(
        "fp32", "contiguous", False, "fp32"
    )
    assert reduced.training_precision(adversarial, "cpu") == TrainingPrecision(
        "bf16", "contiguous", False, "fp32"
    )
    assert paper.training_precision(natural, "cpu") == TrainingPrecision("bf16", "channels_last", False, None)
    cuda = PARAMS["precision"]["training"]["cuda"]
    assert paper.training_precision(adversarial, "cuda") == TrainingPrecision(
        cuda["precision"], cuda["memory_format"], cuda["tf32"], "bf16"
    )
    # A device params.yaml has no entry for trains in fp32.
    assert tiny.training_precision(natural, "mps") == TrainingPrecision()


def test_the_committed_cpu_default_is_what_the_committed_results_were_trained_with() -> None:
    for scale in ("tiny", "reduced", "paper"):
        params = Params(PARAMS, scale=scale)
        for model in PARAMS["models"]:
            setting = params.training_precision(model, "cpu")
            assert (setting.precision, setting.memory_format, setting.tf32) == ("fp32", "contiguous", False)
            assert setting.attack_precision in (None, "fp32")


@pytest.fixture(scope="module")
def plan():
    from workflow.plan import Plan

    return Plan(copy.deepcopy(PARAMS), scale="tiny")


def test_training_jobs_read_the_precision_settings(plan) -> None:
    full = plan.params
    for job in plan.jobs_of("train"):
        model = job.wildcards["model"]
        precision = job.params["precision"]
        assert precision["training"] == resolve_tree(PARAMS["precision"]["training"], "tiny")
        adversarial = full.model(model).adversarial
        assert ("training_attack" in precision) == adversarial  # only where a training attack runs
        view = Params.for_job(json.loads(job.params_text)["params"], "tiny", source=job.params_file)
        for device in ("cpu", "cuda"):
            assert view.training_precision(model, device) == full.training_precision(model, device)


def test_changing_the_precision_reruns_training(plan) -> None:
    from workflow.plan import Plan, reruns

    trainings = {job.name for job in plan.jobs_of("train")}
    adversarial = {f"train-{m}" for m in plan.params.model_names() if plan.params.model(m).adversarial}
    assert adversarial and adversarial < trainings

    raw = copy.deepcopy(PARAMS)
    raw["precision"]["training"]["cuda"]["precision"] = "bf16"
    after = Plan(raw, scale="tiny")
    rerun = reruns(plan, after)
    assert trainings <= rerun  # every model trains again (the device is known only at run time)
    assert {n for n in rerun if n.startswith("evaluate")} == {
        j.name for j in after.jobs if j.rule.startswith("evaluate")
    }  # and so every evaluation of its weights

    raw = copy.deepcopy(PARAMS)
    raw["precision"]["training_attack"]["cpu"]["precision"] = "bf16"
    rerun = reruns(plan, Plan(raw, scale="tiny"))
    assert rerun & trainings == adversarial  # natural training runs no attack: not rerun


def test_the_report_provenance_names_the_settings() -> None:
    lines = precision_lines(PARAMS, "reduced")
    assert len(lines) == 1
    cpu, cuda = PARAMS["precision"]["training"]["cpu"], PARAMS["precision"]["training"]["cuda"]
    assert f"cpu {cpu['precision']}, {cpu['memory_format']}; cuda {cuda['precision']}, " in lines[0]
    assert f"TF32 {'on' if cuda['tf32'] else 'off'}" in lines[0]
    assert "`metrics.json` records" in lines[0] and "Evaluation attacks run in fp32" in lines[0]
    scaled = params_with(
        **{"precision.training.cpu.precision": {"tiny": "fp32", "reduced": "bf16", "paper": "fp16"}}
    )
    assert "cpu bf16, " in precision_lines(scaled, "reduced")[0]
    assert "cpu fp16, " in precision_lines(scaled, "paper")[0]
    assert precision_lines({}, "tiny") == []


# --- the stage: metrics.json and model.pt ---------------------------------------------------------


def test_the_train_stage_records_the_settings_in_metrics_json(tmp_path: Path) -> None:
    from stages.train import main, parser
    from stages.utils.runtime import select_device
    from workflow.plan import Plan

    raw = copy.deepcopy(PARAMS)
    for device in ("cpu", "cuda"):
        raw["precision"]["training"][device].update(precision="bf16", memory_format="channels_last")
    raw["precision"]["training"]["cuda"]["tf32"] = True
    job = Plan(raw, scale="tiny").job("train", {"model": "cifar10_natural"})
    job_file = tmp_path / "job.json"
    job_file.write_text(job.params_text or "", encoding="utf-8")
    split = bands(size=32, channels=3, classes=10)
    split.meta["dataset"] = "cifar10"
    save_split(tmp_path / "train.npz", split)
    out = tmp_path / "model"
    args = parser().parse_args(
        ["--job", str(job_file), "--model", "cifar10_natural", "--data", str(tmp_path / "train.npz")]
        + ["--out", str(out), "--checkpoint-dir", str(tmp_path / "checkpoints"), "--no-progress"]
    )
    main(args)

    device = select_device(raw["device"]).type
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["precision"] == {
        "device": device,
        "precision": "bf16",
        "memory_format": "channels_last",
        "tf32": device == "cuda",
        "attack_precision": None,
    }
    assert math.isfinite(metrics["final_train_loss"])
    weights = torch.load(out / "model.pt", weights_only=False)["state_dict"]
    # Saved in torch's default layout whatever the training's, and in fp32.
    assert all(v.is_contiguous() for v in weights.values())
    assert {v.dtype for v in weights.values() if v.is_floating_point()} == {torch.float32}
