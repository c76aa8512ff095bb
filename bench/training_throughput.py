"""Training throughput: adversarial vs natural epochs, data share, GPU options, paper-scale projection.

In detail: the cost of adversarial training relative to natural training, the share of data
handling in an epoch, what channels-last, bf16 autocast and torch.compile buy, and the projected
wall time of the paper-scale DAG.

On a CPU (reduced-scale widths and recipes, a few minutes on 2 cores; add ``--threads 1`` on a
machine shared with other jobs, where multi-threaded ops stall on each other):

    uv run python -m bench.training_throughput --device cpu --scale reduced --synthetic 256 \
        --images 256 --batch 32 --repeats 3 --out bench/results/training_throughput.json

On a GPU (paper-scale widths and recipes, torch.compile on; ``nvidia-ml-py`` lets it sample the
GPU's utilisation, without it that column is n/a):

    uv run --with nvidia-ml-py python -m bench.training_throughput --device cuda \
        --out bench/results/training_throughput_cuda.json

``--parts`` picks a subset of the four parts (all by default):

* ``at_ratio``: for each pair natural:adversarial of params.yaml models (same dataset and
  architecture, ``--pairs``), one epoch of each through the pipeline's own
  :func:`stages.training.trainer.train` (1 epoch, the first ``--images`` training images, a
  temporary checkpoint deleted before each run so that nothing resumes, progress bar off), at
  ``--scale``. The epoch time is the trainer's own (``EpochRecord.seconds``: the epoch loop,
  without building the model or writing the checkpoint). Ratio = AT epoch / ((K + 1) x natural
  epoch), K = the train attack's steps (a dual attack's too): an AT step runs K attack
  forward/backward passes and one training pass, so 1.0 means AT costs exactly its K + 1
  passes and the target is <= 1.10. (An attack pass computes no weight gradient, so a lean
  implementation can come in under 1.) The recipe's eps ramp does not change the cost: a
  ramped attack still runs K steps.
* ``data``: the data part of the natural epoch alone, done as the trainer does it (index the
  on-device split per batch, ``augment_batch``, ``model_view``), over the natural epoch. Besides,
  every timed training call records the process's CPU time over its wall time (cores kept busy)
  and, on CUDA, the mean of ``torch.cuda.utilization()`` sampled every 50 ms (needs NVML's
  Python bindings; recorded as unavailable otherwise).
* ``gpu_variants``: VGG-19 (``vgg19_bn``) and ResNet-34 (``resnet34``) at ``--scale``'s width on
  random 32x32x3 images with 10 classes, ``--batches`` batches of ``--batch`` images per timed
  call: images/s of natural training (forward, backward, SGD step), of AT (``--k``-step l_inf
  PGD, eps 8/255, step 2/255, random start, via :func:`stages.attacks.pgd.pgd`, then the
  training step) and of inference (forward under ``no_grad``, for the evaluation estimate),
  for the variants fp32 (baseline), channels_last, bf16 autocast, torch.compile and, on CUDA,
  cudnn.benchmark; then the options that helped (geometric mean of the natural and AT
  speed-ups > 1) combined, measured again beside a baseline of its own. K = 10 is the l_inf
  PGD of Vaishnavi et al. (§Experiments: 10 steps, eps 8/255, step 2/255; params.yaml
  ``am_pgd``); the projection rescales to each model's own K.
* ``projection``: every model of params.yaml at the paper scale (replicas included): images
  trained on (epochs x training images, or steps x batch for a steps recipe) x seconds per
  image, seconds per image = natural pass + K x attack step,
  from the measured rates (attack step = (1/AT rate - 1/natural rate) / K). An architecture,
  width or input size that was not measured is scaled from a measured one by forward
  multiply-adds (same family first, else the nearest in size), and says so. Evaluations
  (``Params.evaluations()``) are estimated apart: PGD and dual attacks as steps x restarts
  attack steps per test image; differential evolution and AutoAttack as upper bounds (every
  image runs the whole budget, no early stop). "hours" is the library as it trains today (the
  fp32 baseline); "hours (best)" the measured variant cheapest for that model. Rates measured
  on a CPU at a small width make all of this an indication only.

Every ratio compares numbers measured in the same run, interleaved, each the median of
``--repeats`` (``bench.common.interleaved_medians``). Absolute times mean something only on a
GPU on a quiet machine; CPU rows are labelled as such.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

if __package__ in (None, ""):
    # Run as a script (`python bench/training_throughput.py`): make `bench` importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    REPO_ROOT,
    interleaved_medians,
    machine,
    markdown_table,
    synchronize,
    write_record,
)
from stages.attacks.pgd import pgd  # noqa: E402
from stages.attacks.threats import make_threat  # noqa: E402
from stages.config import DatasetSpec, ModelSpec, Params  # noqa: E402
from stages.data.processed import ProcessedSplit, load_split  # noqa: E402
from stages.models.registry import ArchSpec, build_model  # noqa: E402
from stages.report.dataset_table import PAPER_COCO_IC_COUNTS, PAPER_SEGMENT6_PER_CLASS  # noqa: E402
from stages.training.trainer import epoch_batches, train  # noqa: E402
from stages.utils.runtime import select_device  # noqa: E402

PARTS: tuple[str, ...] = ("at_ratio", "data", "gpu_variants", "projection")
DEFAULT_PAIRS = (
    "mnist_natural:mnist_standard,mnist_natural:mnist_lat,coco_ic_natural:coco_ic_adversarial,"
    "cifar10_grabcut_clean:cifar10_grabcut_at_pgd,cifar10_grabcut_clean:cifar10_grabcut_at_dual"
)
DEFAULT_ARCHS = "vgg19_bn,resnet34"
AT_RATIO_TARGET = 1.10  # the target for AT epoch / ((K + 1) x natural epoch)
DATA_SHARE_LIMIT = 0.10  # below this share of the natural epoch, data handling is not the bottleneck
GPU_SAMPLE_SECONDS = 0.05
SPEEDUP_TO_KEEP = 1.0  # an option joins the combined variant when it beat the baseline at all

# The gpu_variants workload: 32x32 RGB, 10 classes (CIFAR-10, MS-COCO-IC, the dual paper's sets).
VARIANT_CHANNELS, VARIANT_SIZE, VARIANT_CLASSES = 3, 32, 10
# Vaishnavi et al. (§Experiments): l_inf PGD, eps 8/255, step 2/255, 10 steps (params.yaml am_pgd).
PGD_EPS, PGD_STEP, DEFAULT_K = 8 / 255, 2 / 255, 10
# The VGG/ResNet recipes of params.yaml (am_coco_ic, dual_resnet): SGD, momentum 0.9, wd 5e-4.
SGD_LR, SGD_MOMENTUM, SGD_WEIGHT_DECAY = 0.01, 0.9, 5e-4

# Per device kind: (--images, --batch, --batches). A CPU run must finish in minutes on 2 cores.
DEVICE_DEFAULTS: dict[str, tuple[int, int, int]] = {"cpu": (256, 32, 1), "cuda": (2048, 128, 10)}


@dataclass(frozen=True)
class DatasetFacts:
    """Image shape, classes and paper-scale split sizes of a processed dataset."""

    channels: int
    size: int
    classes: int
    train: int
    test: int
    source: str


# params.yaml's paper scale takes `all` of every split, whose size only a full mirror tells;
# these are the published sizes (a builder may drop a few images, which this ignores).
PAPER_DATASETS: dict[str, DatasetFacts] = {
    "mnist": DatasetFacts(1, 28, 10, 60_000, 10_000, "LeCun et al. 1998, the official MNIST split"),
    "cifar10": DatasetFacts(3, 32, 10, 50_000, 10_000, "Krizhevsky 2009, the official CIFAR-10 split"),
    # Capped further by the GrabCut mask counts of params.yaml (paper: every train image, 500 test).
    "cifar10_grabcut": DatasetFacts(3, 32, 10, 50_000, 10_000, "CIFAR-10 with GrabCut masks"),
    "coco_ic": DatasetFacts(
        3,
        32,
        len(PAPER_COCO_IC_COUNTS),
        sum(train for train, _ in PAPER_COCO_IC_COUNTS.values()),
        sum(test for _, test in PAPER_COCO_IC_COUNTS.values()),
        "Vaishnavi et al., Table 1",
    ),
    "gtsrb_ic": DatasetFacts(3, 32, 43, 39_209, 12_630, "Stallkamp et al. 2012, the official GTSRB split"),
    "gtsrb_ic_roi": DatasetFacts(
        3, 32, 43, 39_209, 12_630, "Stallkamp et al. 2012, the official GTSRB split"
    ),
    "segment6": DatasetFacts(
        3,
        32,
        6,
        6 * PAPER_SEGMENT6_PER_CLASS[0],
        6 * PAPER_SEGMENT6_PER_CLASS[1],
        "dual-perturbation paper, §5: 3,000 train / 200 test per class",
    ),
}


def facts(name: str) -> DatasetFacts:
    if name not in PAPER_DATASETS:
        raise SystemExit(f"dataset {name!r}: no entry in PAPER_DATASETS of {Path(__file__).name}; add one")
    return PAPER_DATASETS[name]


# --- timing helpers ------------------------------------------------------------------------------


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system  # every thread of this process


def gpu_utilization_reader(device: torch.device) -> tuple[Callable[[], float] | None, str | None]:
    """A function returning the GPU's utilisation in percent, or None and why not."""
    if device.type != "cuda":
        return None, "not a CUDA device"
    try:
        torch.cuda.utilization(device)
    except Exception as exc:  # pynvml absent, no NVML permission, ...: all mean "unavailable"
        return None, f"torch.cuda.utilization failed: {type(exc).__name__}: {exc}"
    return lambda: float(torch.cuda.utilization(device)), None


@contextmanager
def watched(
    device: torch.device, gpu_reader: Callable[[], float] | None, into: list[dict[str, float | None]]
) -> Iterator[None]:
    """Record the CPU cores kept busy (CPU time / wall time) and the mean GPU utilisation."""
    samples: list[float] = []
    stop = threading.Event()
    thread: threading.Thread | None = None
    if gpu_reader is not None:

        def sample() -> None:
            while not stop.wait(GPU_SAMPLE_SECONDS):
                samples.append(gpu_reader())

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
    cpu, wall = _cpu_seconds(), time.perf_counter()
    try:
        yield
    finally:
        synchronize(device)
        wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
        stop.set()
        if thread is not None:
            thread.join()
        into.append(
            {
                "cpu_cores_busy": cpu / max(wall, 1e-9),
                "gpu_utilization_percent": statistics.fmean(samples) if samples else None,
            }
        )


def median_of(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


# --- data ----------------------------------------------------------------------------------------


def synthetic_split(dataset: DatasetSpec, n: int, seed: int) -> ProcessedSplit:
    """``n`` random images of the dataset's shape and classes (masks when it has masks): the
    cost of a training step does not depend on what the pixels show."""
    f = facts(dataset.name)
    rng = np.random.default_rng(seed)
    return ProcessedSplit(
        images=rng.integers(0, 256, (n, f.size, f.size, f.channels), dtype=np.uint8),
        labels=(np.arange(n) % f.classes).astype(np.int64),
        ids=np.array([f"synthetic-{i}" for i in range(n)]),
        masks=rng.random((n, f.size, f.size)) < 0.5 if dataset.has_masks else None,
        meta={"num_classes": f.classes, "synthetic": True},
    )


def training_split(spec: ModelSpec, args: argparse.Namespace) -> ProcessedSplit:
    if args.synthetic is not None:
        split = synthetic_split(spec.dataset, args.synthetic, args.seed)
    else:
        split = load_split(REPO_ROOT / "data" / "processed" / spec.dataset.name / "train.npz")
    limit = (
        args.images if spec.dataset.train_samples is None else min(args.images, spec.dataset.train_samples)
    )
    return split.head(limit)


def data_pass(spec: ModelSpec, tensors: tuple[torch.Tensor, ...], masks: torch.Tensor | None) -> None:
    """The data part of one epoch, by the trainer's own batch generator, and nothing else."""
    x_all, y_all = tensors
    gen = torch.Generator(device=x_all.device)
    gen.manual_seed(0)
    for _ in epoch_batches(spec, x_all, y_all, masks, gen):
        pass


# --- part at_ratio and data ----------------------------------------------------------------------


def parse_pairs(text: str) -> dict[str, list[str]]:
    """``"nat:adv1,nat:adv2"`` -> {"nat": ["adv1", "adv2"]} (each natural epoch timed once)."""
    groups: dict[str, list[str]] = {}
    for item in filter(None, text.split(",")):
        natural, _, adversarial = item.partition(":")
        if not natural or not adversarial:
            raise SystemExit(f"--pairs: expected NATURAL:ADVERSARIAL model names, got {item!r}")
        groups.setdefault(natural, []).append(adversarial)
    return groups


def one_epoch(spec: ModelSpec) -> ModelSpec:
    return dataclasses.replace(spec, training=dataclasses.replace(spec.training, epochs=1, steps=None))


@dataclass
class TrainerRun:
    """One epoch of ``spec`` through the pipeline's ``train()``: a case for interleaved_medians
    that keeps the trainer's own epoch times and what the call kept busy."""

    spec: ModelSpec
    split: ProcessedSplit
    params: Params
    device: torch.device
    checkpoint: Path
    gpu_reader: Callable[[], float] | None
    epochs: list[float] = field(default_factory=list)
    usage: list[dict[str, float | None]] = field(default_factory=list)

    def __call__(self) -> None:
        self.checkpoint.unlink(missing_ok=True)  # else the second call resumes a finished run
        with watched(self.device, self.gpu_reader, self.usage):
            outcome = train(
                self.spec,
                self.split,
                seed=self.params.seed,
                box_fraction=self.params.box_fraction,
                device=self.device,
                checkpoint=self.checkpoint,
                progress=False,
            )
        self.epochs.append(outcome.history[-1].seconds)

    def epoch_s(self, warmup: int) -> float:
        return statistics.median(self.epochs[warmup:])

    def busy(self, key: str, warmup: int) -> float | None:
        return median_of([u[key] for u in self.usage[warmup:]])


def paired_specs(params: Params, natural_name: str, adversarial_names: list[str]) -> list[ModelSpec]:
    """The natural model's one-epoch spec, then the adversarial ones'; checked to be pairs."""
    natural = one_epoch(params.model(natural_name))
    if natural.adversarial:
        raise SystemExit(f"--pairs: {natural_name} trains adversarially; put the natural model first")
    specs = [natural]
    for name in adversarial_names:
        spec = one_epoch(params.model(name))
        if not spec.adversarial:
            raise SystemExit(f"--pairs: {name} trains naturally; the second model must be adversarial")
        if (spec.dataset.name, spec.arch, spec.input) != (natural.dataset.name, natural.arch, natural.input):
            raise SystemExit(f"--pairs: {natural_name} and {name} differ in dataset, architecture or input")
        specs.append(spec)
    return specs


def measure_pairs(
    args: argparse.Namespace, params: Params, device: torch.device, parts: set[str], tmp: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    gpu_reader, _ = gpu_utilization_reader(device)
    at_rows: list[dict[str, Any]] = []
    data_rows: list[dict[str, Any]] = []
    for natural_name, adversarial_names in parse_pairs(args.pairs).items():
        natural, *adversarials = paired_specs(params, natural_name, adversarial_names)
        if "at_ratio" not in parts:
            adversarials = []
        split = training_split(natural, args)
        runs = {
            spec.name: TrainerRun(spec, split, params, device, tmp / f"{spec.name}.pt", gpu_reader)
            for spec in (natural, *adversarials)
        }
        cases: dict[str, Callable[[], Any]] = {natural.name: runs[natural.name]}
        data_key = f"data part of {natural.name}"
        if "data" in parts:
            x_all, y_all, m_all = split.tensors()
            masks = None if m_all is None else m_all.to(device)
            cases[data_key] = functools.partial(
                data_pass, natural, (x_all.to(device), y_all.to(device)), masks
            )
        cases |= {spec.name: runs[spec.name] for spec in adversarials}
        print(f"timing {', '.join(cases)} on {len(split)} images", end="", flush=True)
        started = time.perf_counter()
        walls = interleaved_medians(cases, device, repeats=args.repeats, warmup=args.warmup)
        print(f": {time.perf_counter() - started:.0f} s", flush=True)
        base = runs[natural.name]
        common_fields = {
            "natural_model": natural.name,
            "dataset": natural.dataset.name,
            "arch": natural.arch.name,
            "images": len(split),
            "batch_size": natural.training.batch_size,
            "natural_epoch_s": base.epoch_s(args.warmup),
        }
        for spec in adversarials:
            run, k = runs[spec.name], spec.train_attack.steps
            ratio = run.epoch_s(args.warmup) / ((k + 1) * base.epoch_s(args.warmup))
            at_rows.append(
                common_fields
                | {
                    "adversarial_model": spec.name,
                    "train_attack": spec.train_attack.name,
                    "attack_kind": spec.train_attack.kind,
                    "k": k,
                    "eps_ramp_epochs": spec.training.eps_ramp_epochs,
                    "adversarial_epoch_s": run.epoch_s(args.warmup),
                    "natural_train_call_s": walls[natural.name],
                    "adversarial_train_call_s": walls[spec.name],
                    "at_ratio": ratio,
                    "target": AT_RATIO_TARGET,
                    "meets_target": ratio <= AT_RATIO_TARGET,
                    "adversarial_cpu_cores_busy": run.busy("cpu_cores_busy", args.warmup),
                    "adversarial_gpu_utilization_percent": run.busy("gpu_utilization_percent", args.warmup),
                }
            )
        if "data" in parts:
            share = walls[data_key] / base.epoch_s(args.warmup)
            data_rows.append(
                common_fields
                | {
                    "augment": dataclasses.asdict(natural.training.augment),
                    "input": natural.input,
                    "data_part_s": walls[data_key],
                    "data_share": share,
                    "bottleneck": share >= DATA_SHARE_LIMIT,
                    "natural_cpu_cores_busy": base.busy("cpu_cores_busy", args.warmup),
                    "natural_gpu_utilization_percent": base.busy("gpu_utilization_percent", args.warmup),
                }
            )
    return at_rows, data_rows


# --- part gpu_variants ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    channels_last: bool = False
    bf16: bool = False
    compile: bool = False
    cudnn_benchmark: bool = False

    def options(self) -> list[str]:
        return [
            f.name for f in dataclasses.fields(self) if f.type in ("bool", bool) and getattr(self, f.name)
        ]


BASELINE = Variant("fp32")
SINGLE_OPTIONS = (
    Variant("channels_last", channels_last=True),
    Variant("bf16_autocast", bf16=True),
    Variant("compile", compile=True),
    Variant("cudnn_benchmark", cudnn_benchmark=True),
)
MODES: tuple[str, ...] = ("natural", "adversarial", "inference")


@contextmanager
def cudnn_benchmark(on: bool) -> Iterator[None]:
    # A global flag: each case sets its own, so interleaved cases do not leak it to each other.
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = on
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def variant_cases(
    base: nn.Module, variant: Variant, device: torch.device, args: argparse.Namespace
) -> dict[str, Callable[[], None]]:
    """One callable per mode, each running ``--batches`` steps on one fixed random batch."""
    model = copy.deepcopy(base).to(device)  # the same initial weights for every variant
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed)
    x = torch.rand(args.batch, VARIANT_CHANNELS, VARIANT_SIZE, VARIANT_SIZE, generator=gen, device=device)
    y = torch.randint(0, VARIANT_CLASSES, (args.batch,), generator=gen, device=device)
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=SGD_LR, momentum=SGD_MOMENTUM, weight_decay=SGD_WEIGHT_DECAY
    )
    runner: nn.Module = torch.compile(model) if variant.compile else model  # type: ignore[assignment]
    threat = make_threat("linf", PGD_EPS, None)

    def autocast() -> AbstractContextManager[Any]:
        return torch.autocast(device.type, dtype=torch.bfloat16) if variant.bf16 else nullcontext()

    def train_step(inputs: torch.Tensor) -> None:
        runner.train()
        with autocast():
            loss = F.cross_entropy(runner(inputs), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def natural() -> None:
        with cudnn_benchmark(variant.cudnn_benchmark):
            for _ in range(args.batches):
                train_step(x)

    def adversarial() -> None:
        with cudnn_benchmark(variant.cudnn_benchmark):
            for _ in range(args.batches):
                runner.eval()  # as the trainer attacks: BatchNorm statistics stay put
                with autocast():
                    x_adv = pgd(
                        runner,
                        x,
                        y,
                        threat,
                        steps=args.k,
                        step_size=PGD_STEP,
                        random_start=True,
                        generator=gen,
                    )
                train_step(x_adv)

    def inference() -> None:
        with cudnn_benchmark(variant.cudnn_benchmark), torch.no_grad(), autocast():
            runner.eval()
            for _ in range(args.batches):
                runner(x)

    return {"natural": natural, "adversarial": adversarial, "inference": inference}


def channels_last_probe(device: torch.device) -> dict[str, Any]:
    """Whether stages.attacks.pgd keeps a channels_last batch channels_last (model inputs and
    the returned images), with and without a random start."""
    seen: list[bool] = []

    def is_channels_last(t: torch.Tensor) -> bool:
        return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(VARIANT_CHANNELS, 4, 3)
            self.head = nn.Linear(4, VARIANT_CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(is_channels_last(x))
            return self.head(self.conv(x).mean((2, 3)))

    model = Probe().to(device).to(memory_format=torch.channels_last)
    x = torch.rand(2, VARIANT_CHANNELS, 8, 8, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.zeros(2, dtype=torch.long, device=device)
    result: dict[str, Any] = {}
    for random_start in (True, False):
        seen.clear()
        out = pgd(
            model,
            x,
            y,
            make_threat("linf", PGD_EPS, None),
            steps=2,
            step_size=PGD_STEP,
            random_start=random_start,
        )
        key = "random_start" if random_start else "zero_start"
        result[key] = {"model_inputs_channels_last": all(seen), "output_channels_last": is_channels_last(out)}
    result["preserved"] = all(
        v["model_inputs_channels_last"] and v["output_channels_last"] for v in result.values()
    )
    return result


def rates_from(seconds: dict[str, float], variant: str, images: int) -> dict[str, float]:
    return {mode: images / seconds[f"{variant}|{mode}"] for mode in MODES}


def ready_cases(
    base: nn.Module, variant: Variant, device: torch.device, args: argparse.Namespace
) -> tuple[dict[str, Callable[[], None]], str | None]:
    """The variant's cases keyed "variant|mode", or none and the compiler's error. A compiled
    variant runs each case once here: compiling happens on the first call and must not be
    timed, and a failure drops the variant, not the run."""
    modes = variant_cases(base, variant, device, args)
    if variant.compile:
        try:
            for fn in modes.values():
                fn()
        except Exception as exc:  # any compiler or backend error means "compile unusable here"
            return {}, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
    return {f"{variant.name}|{mode}": fn for mode, fn in modes.items()}, None


def helped(rows: list[dict[str, Any]], variants: list[Variant]) -> list[Variant]:
    """The single options whose geometric mean of natural and AT speed-ups exceeds 1."""
    by_name = {v.name: v for v in variants}
    return [
        by_name[row["variant"]]
        for row in rows
        if row["variant"] != BASELINE.name
        and math.sqrt(row["speedup"]["natural"] * row["speedup"]["adversarial"]) > SPEEDUP_TO_KEEP
    ]


def measure_combined(
    base: nn.Module, options: list[Variant], device: torch.device, args: argparse.Namespace
) -> tuple[dict[str, Any] | None, str | None]:
    """The helpful options together, timed again beside a fresh baseline."""
    flags = ("channels_last", "bf16", "compile", "cudnn_benchmark")
    combined = Variant("combined", **{flag: any(getattr(v, flag) for v in options) for flag in flags})
    cases, error = ready_cases(base, combined, device, args)
    if error is not None:
        return None, error
    cases |= ready_cases(base, BASELINE, device, args)[0]
    print(f"timing the combination {'+'.join(combined.options())}", flush=True)
    seconds = interleaved_medians(cases, device, repeats=args.repeats, warmup=args.warmup)
    images = args.batch * args.batches
    rebase, rates = rates_from(seconds, BASELINE.name, images), rates_from(seconds, "combined", images)
    row = {
        "variant": "combined",
        "options": combined.options(),
        "images_per_s": rates,
        "speedup": {m: rates[m] / rebase[m] for m in MODES},
        "baseline_images_per_s": rebase,
    }
    return row, None


def measure_variants(
    args: argparse.Namespace, params: Params, device: torch.device, compile_on: bool
) -> dict[str, Any]:
    variants = [BASELINE]
    skipped: dict[str, str] = {}
    for v in SINGLE_OPTIONS:
        if v.compile and not compile_on:
            skipped[v.name] = "--compile off (the default on CPU, where compiling takes minutes)"
        elif v.cudnn_benchmark and device.type != "cuda":
            skipped[v.name] = "CUDA only"
        else:
            variants.append(v)
    images = args.batch * args.batches
    archs: list[dict[str, Any]] = []
    for arch_name in filter(None, args.archs.split(",")):
        arch = params.architecture(arch_name)
        torch.manual_seed(args.seed)
        base = build_model(arch, VARIANT_CHANNELS, VARIANT_SIZE, VARIANT_CLASSES)
        cases: dict[str, Callable[[], Any]] = {}
        errors: dict[str, str] = {}
        for v in variants:
            ready, error = ready_cases(base, v, device, args)
            cases |= ready
            if error is not None:
                errors[v.name] = error
        print(f"{arch_name}: timing {len(cases)} cases ({images} images each)", end="", flush=True)
        started = time.perf_counter()
        seconds = interleaved_medians(cases, device, repeats=args.repeats, warmup=args.warmup)
        print(f": {time.perf_counter() - started:.0f} s", flush=True)
        base_rates = rates_from(seconds, BASELINE.name, images)
        rows = []
        for v in variants:
            if v.name not in errors:
                rates = rates_from(seconds, v.name, images)
                rows.append(
                    {
                        "variant": v.name,
                        "options": v.options(),
                        "images_per_s": rates,
                        "speedup": {m: rates[m] / base_rates[m] for m in MODES},
                        "baseline_images_per_s": base_rates,
                    }
                )
        options = helped(rows, variants)
        best = options[0].name if len(options) == 1 else BASELINE.name
        if len(options) > 1:
            row, error = measure_combined(base, options, device, args)
            if row is not None:
                rows.append(row)
                best = "combined"
            else:
                errors["combined"] = str(error)
        archs.append(
            {
                "arch": arch_name,
                "family": arch.family,
                "width": getattr(arch.options, "width", None),
                "forward_macs_per_image": forward_macs(arch, VARIANT_CHANNELS, VARIANT_SIZE, VARIANT_CLASSES),
                "rows": rows,
                "errors": errors,
                "best_variant": best,
            }
        )
        if compile_on:
            torch._dynamo.reset()  # drop this architecture's compiled graphs before the next
    return {
        "device_kind": device.type,
        "scale": args.scale,
        "k": args.k,
        "batch": args.batch,
        "batches_per_call": args.batches,
        "images_per_call": images,
        "skipped": skipped,
        "archs": archs,
        "channels_last_probe": channels_last_probe(device),
    }


# --- part projection -----------------------------------------------------------------------------

_MACS: dict[tuple[Any, ...], int] = {}


def forward_macs(arch: ArchSpec, channels: int, size: int, classes: int) -> int:
    """Multiply-adds of one image's forward pass through the convolutions and linear layers."""
    key = (arch, channels, size, classes)
    if key not in _MACS:
        with torch.device("meta"):  # shapes only: no weights to initialise, no arithmetic
            model = build_model(arch, channels, size, classes).eval()
        total = [0]

        def count(module: nn.Module, _: Any, out: torch.Tensor) -> None:
            if isinstance(module, nn.Conv2d):
                kh, kw = module.kernel_size
                total[0] += out[0].numel() * (module.in_channels // module.groups) * kh * kw
            elif isinstance(module, nn.Linear):
                total[0] += module.in_features * module.out_features

        hooks = [
            m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)
        ]
        with torch.no_grad():
            model(torch.zeros(1, channels, size, size, device="meta"))
        for hook in hooks:
            hook.remove()
        _MACS[key] = total[0]
    return _MACS[key]


@dataclass(frozen=True)
class PerImage:
    """Seconds per image: a natural training pass, one attack step, one inference forward."""

    train: float
    attack_step: float
    forward: float

    def scaled(self, factor: float) -> PerImage:
        return PerImage(self.train * factor, self.attack_step * factor, self.forward * factor)


def per_image(rates: dict[str, float], k: int) -> PerImage:
    train_s, at_s = 1 / rates["natural"], 1 / rates["adversarial"]
    # Noise can make a tiny AT run look cheaper than a natural one; an attack step is never free.
    return PerImage(train_s, max(at_s - train_s, 0.0) / k, 1 / rates["inference"])


def split_size(dataset: DatasetSpec, split: str) -> int:
    """Images of ``split`` at the paper scale: the published size, capped by params.yaml."""
    f = facts(dataset.name)
    n = f.train if split == "train" else f.test
    limit = dataset.train_samples if split == "train" else dataset.test_samples
    grabcut = getattr(dataset.options, "grabcut", None)
    masks = grabcut.count(split) if grabcut is not None and hasattr(grabcut, "count") else None
    for cap in (limit, masks):
        if cap is not None:
            n = min(n, cap)
    return n


class CostModel:
    """Per-image costs of any architecture at the paper scale, under each measured variant,
    from the measured architectures."""

    def __init__(self, measured: list[dict[str, Any]], k: int) -> None:
        self.refs = [
            (entry, {row["variant"]: per_image(row["images_per_s"], k) for row in entry["rows"]})
            for entry in measured
        ]
        if not self.refs:
            raise SystemExit("--parts projection needs gpu_variants (the measured rates) and --archs")

    def costs(self, arch: ArchSpec, dataset: DatasetSpec) -> tuple[dict[str, PerImage], str]:
        """{variant: seconds per image} (the baseline first) and how they were obtained."""
        f = facts(dataset.name)
        macs = forward_macs(arch, f.channels, f.size, f.classes)
        same_family = [r for r in self.refs if r[0]["family"] == arch.family]
        exact = [r for r in same_family if r[0]["arch"] == arch.name]
        pool = exact or same_family or self.refs
        entry, costs = min(pool, key=lambda r: abs(math.log(macs / r[0]["forward_macs_per_image"])))
        factor = macs / entry["forward_macs_per_image"]
        same_shape = (f.channels, f.size) == (VARIANT_CHANNELS, VARIANT_SIZE)
        if entry["arch"] == arch.name and same_shape and math.isclose(factor, 1.0):
            basis = "measured"
        else:
            basis = f"scaled x{factor:.3g} by MACs from {entry['arch']} (width {entry['width']})"
        return {name: cost.scaled(factor) for name, cost in costs.items()}, basis


def cheapest(seconds: dict[str, float]) -> tuple[str, float]:
    name = min(seconds, key=lambda v: seconds[v])
    return name, seconds[name]


def evaluation_seconds(kind_spec: Any, cost: PerImage, images: int, classes: int) -> float:
    """Seconds of one evaluation on ``images`` test images (upper bounds for DE and AutoAttack)."""
    a = kind_spec
    if a.kind == "none":
        return images * cost.forward
    if a.kind in ("pgd", "dual"):
        return images * (a.restarts * a.steps * cost.attack_step + cost.forward)
    if a.kind == "de":
        attacked = images if a.images is None else min(a.images, images)
        targeted = min(a.targeted_images, attacked) * (classes - 1)
        return (attacked + targeted) * a.population * (a.max_generations + 1) * cost.forward
    if a.kind == "autoattack":
        gradient_steps = sum(
            a.steps * (a.target_classes if name in ("apgd-t", "fab-t") else 1)
            for name in a.ensemble
            if name != "square"
        )
        queries = a.n_queries if "square" in a.ensemble else 0
        return images * a.restarts * (gradient_steps * cost.attack_step + queries * cost.forward)
    raise SystemExit(f"attack {a.name}: no cost model for kind {a.kind!r}")


EVALUATION_NOTES = {
    "none": "one forward pass per test image",
    "pgd": "restarts x steps attack steps per test image",
    "dual": "steps attack steps per test image (the salience term of λ > 0 not counted)",
    "de": "upper bound: population x (generations + 1) forwards per attacked image and target, no early stop",
    "autoattack": "upper bound: every image through APGD-CE, APGD-T, FAB-T (one attack step per iteration) "
    "and Square",
}


def project(args: argparse.Namespace, variants: dict[str, Any], device_label: str) -> dict[str, Any]:
    """Hours per paper-scale model as the library trains today (the fp32 baseline), and under
    the measured variant that is cheapest for that model."""
    paper = Params.load(args.params, "paper")
    model = CostModel(variants["archs"], variants["k"])
    rows = []
    for name in paper.model_names():
        spec = paper.model(name)
        costs, basis = model.costs(spec.arch, spec.dataset)
        k = spec.train_attack.steps if spec.adversarial else 0
        n = split_size(spec.dataset, "train")
        images = spec.training.images_seen(n)  # a steps recipe's last epoch is partial
        hours = {v: images * (c.train + k * c.attack_step) / 3600 for v, c in costs.items()}
        best, best_hours = cheapest(hours)
        rows.append(
            {
                "model": name,
                "arch": spec.arch.name,
                "dataset": spec.dataset.name,
                "epochs": spec.training.total_epochs(n),
                "train_images": n,
                "k": k,
                "basis": basis,
                "hours": hours[BASELINE.name],
                "best_variant": best,
                "hours_best_variant": best_hours,
            }
        )
    evaluations: dict[str, dict[str, Any]] = {}
    for model_name, attack_name in paper.evaluations():
        spec, attack = paper.model(model_name), paper.attack(attack_name)
        dataset = paper.evaluation_dataset(model_name)
        costs, _ = model.costs(spec.arch, dataset)
        images, classes = split_size(dataset, "test"), facts(dataset.name).classes
        seconds = {v: evaluation_seconds(attack, c, images, classes) for v, c in costs.items()}
        entry = evaluations.setdefault(
            attack.kind, {"kind": attack.kind, "pairs": 0, "hours": 0.0, "hours_best_variant": 0.0}
        )
        entry["pairs"] += 1
        entry["hours"] += seconds[BASELINE.name] / 3600
        entry["hours_best_variant"] += cheapest(seconds)[1] / 3600
    for entry in evaluations.values():
        entry["estimate"] = EVALUATION_NOTES[entry["kind"]]
    eval_rows = list(evaluations.values())
    return {
        "rates_measured_on": device_label,
        "rows": rows,
        "total_hours": sum(r["hours"] for r in rows),
        "total_hours_best_variant": sum(r["hours_best_variant"] for r in rows),
        "evaluations": eval_rows,
        "evaluations_total_hours": sum(r["hours"] for r in eval_rows),
        "evaluations_total_hours_best_variant": sum(r["hours_best_variant"] for r in eval_rows),
        "dataset_sizes": {name: dataclasses.asdict(f) for name, f in PAPER_DATASETS.items()},
    }


# --- output --------------------------------------------------------------------------------------


def at_ratio_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    columns = [
        "natural",
        "adversarial",
        "attack",
        "K",
        "images",
        "natural epoch s",
        "AT epoch s",
        "ratio",
        "met",
    ]
    return columns, [
        [r["natural_model"], r["adversarial_model"], f"{r['train_attack']} ({r['attack_kind']})", r["k"]]
        + [r["images"], fmt(r["natural_epoch_s"]), fmt(r["adversarial_epoch_s"]), fmt(r["at_ratio"], ".2f")]
        + ["yes" if r["meets_target"] else "no"]
        for r in rows
    ]


def data_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    columns = ["natural model", "images", "data part s", "epoch s", "share", "CPU cores busy", "GPU util %"]
    return columns, [
        [r["natural_model"], r["images"], fmt(r["data_part_s"], ".4f"), fmt(r["natural_epoch_s"])]
        + [f"{r['data_share']:.1%}", fmt(r["natural_cpu_cores_busy"], ".2f")]
        + [fmt(r["natural_gpu_utilization_percent"], ".0f")]
        for r in rows
    ]


def variants_table(variants: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    columns = ["arch", "width", "variant", "natural", "AT", "inference", "× nat", "× AT", "× inf"]
    rows = []
    for entry in variants["archs"]:
        for r in entry["rows"]:
            name = r["variant"] + (" (best)" if r["variant"] == entry["best_variant"] else "")
            rates = [fmt(r["images_per_s"][m], ".1f") for m in MODES]
            gains = [f"{r['speedup'][m]:.2f}x" for m in MODES]
            rows.append([entry["arch"], entry["width"], name, *rates, *gains])
    return columns, rows


def projection_tables(projection: dict[str, Any]) -> list[tuple[list[str], list[list[Any]]]]:
    columns = ["model", "arch", "epochs", "images", "K", "basis", "hours", "best variant", "hours (best)"]
    rows: list[list[Any]] = [
        [r["model"], r["arch"], r["epochs"], r["train_images"], r["k"], r["basis"], fmt(r["hours"], ".2f")]
        + [r["best_variant"], fmt(r["hours_best_variant"], ".2f")]
        for r in projection["rows"]
    ]
    total = [fmt(projection["total_hours"], ".1f"), "", fmt(projection["total_hours_best_variant"], ".1f")]
    rows.append(["**total**", "", "", "", "", "", *total])
    evaluations: list[list[Any]] = [
        [r["kind"], r["pairs"], fmt(r["hours"], ".1f"), fmt(r["hours_best_variant"], ".1f"), r["estimate"]]
        for r in projection["evaluations"]
    ]
    pairs = sum(r["pairs"] for r in projection["evaluations"])
    ev_total = [fmt(projection[f"evaluations_total_hours{s}"], ".1f") for s in ("", "_best_variant")]
    evaluations.append(["**total**", pairs, *ev_total, ""])
    return [(columns, rows), (["attack kind", "pairs", "hours", "hours (best)", "estimate"], evaluations)]


def cpu_label(cpu: bool) -> str:
    return " (CPU, small sizes: absolute numbers indicative only)" if cpu else ""


def print_pairs(record: dict[str, Any], cpu: bool) -> None:
    if record["at_ratio"]:
        print(f"\n### AT epoch / ((K + 1) x natural epoch), target <= {AT_RATIO_TARGET}{cpu_label(cpu)}\n")
        print(markdown_table(*at_ratio_table(record["at_ratio"])))
    if record["data_share"]:
        limit = f"{DATA_SHARE_LIMIT:.0%}"
        print(f"\n### Data part of the natural epoch (bottleneck at >= {limit}){cpu_label(cpu)}\n")
        print(markdown_table(*data_table(record["data_share"])))
        print(f"\n- GPU utilisation: {record['gpu_utilization']}")


def print_variants(variants: dict[str, Any], cpu: bool) -> None:
    print(f"\n### Images/s, 32x32x3, batch {variants['batch']}, AT with K = {variants['k']}, ", end="")
    print(f"scale {variants['scale']}{cpu_label(cpu)}\n")
    print(markdown_table(*variants_table(variants)))
    for name, why in variants["skipped"].items():
        print(f"- {name}: skipped, {why}")
    for entry in variants["archs"]:
        for name, error in entry["errors"].items():
            print(f"- {entry['arch']} {name}: failed, {error}")
    print(f"- stages.attacks.pgd keeps channels_last: {variants['channels_last_probe']['preserved']}")


def print_projection(projection: dict[str, Any]) -> None:
    training, evaluations = projection_tables(projection)
    where = projection["rates_measured_on"]
    print(f"\n### Projected training time of the paper-scale DAG, rates from {where}\n")
    print(markdown_table(*training))
    print("\nEvaluations of the paper-scale DAG (estimates):\n")
    print(markdown_table(*evaluations))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=Path, default=REPO_ROOT / "params.yaml")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument(
        "--scale", choices=("tiny", "reduced", "paper"), help="default: paper on CUDA, else reduced"
    )
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from: {', '.join(PARTS)}")
    p.add_argument("--pairs", default=DEFAULT_PAIRS, help="NATURAL:ADVERSARIAL params.yaml models (at_ratio)")
    p.add_argument(
        "--synthetic",
        type=int,
        metavar="N",
        help="N random images of each dataset's shape instead of data/processed/<dataset>/train.npz",
    )
    p.add_argument(
        "--images", type=int, help="at_ratio/data: train on the first N images (cpu 256, cuda 2048)"
    )
    p.add_argument("--archs", default=DEFAULT_ARCHS, help="gpu_variants: params.yaml architectures")
    p.add_argument("--batch", type=int, help="gpu_variants: images per batch (cpu 32, cuda 128)")
    p.add_argument("--batches", type=int, help="gpu_variants: batches per timed call (cpu 1, cuda 10)")
    p.add_argument("--k", type=int, default=DEFAULT_K, help="gpu_variants: PGD steps of AT")
    p.add_argument("--compile", choices=("auto", "on", "off"), default="auto", help="auto: on for CUDA only")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds before the timed ones")
    p.add_argument(
        "--threads",
        type=int,
        help="torch.set_num_threads (default: torch's); 1 on a loaded machine, where other jobs "
        "stall the barriers of a multi-threaded op",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write the record here (JSON)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    parts = set(filter(None, args.parts.split(",")))
    if unknown := sorted(parts - set(PARTS)):
        raise SystemExit(f"--parts: unknown {unknown}; valid: {', '.join(PARTS)}")
    if "projection" in parts and "gpu_variants" not in parts:
        raise SystemExit("--parts projection needs gpu_variants too (it projects from the measured rates)")
    device = select_device(args.device)
    cuda = device.type == "cuda"
    kind = "cuda" if cuda else "cpu"
    for name, value in zip(("images", "batch", "batches"), DEVICE_DEFAULTS[kind], strict=True):
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.scale = args.scale or ("paper" if cuda else "reduced")
    if min(args.images, args.batch, args.batches, args.k) < 1:
        raise SystemExit("--images, --batch, --batches and --k must be >= 1")
    compile_on = args.compile == "on" or (args.compile == "auto" and cuda)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    params = Params.load(args.params, args.scale)

    record: dict[str, Any] = {
        "command": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "argv": sys.argv[1:] if argv is None else list(argv),
        "machine": machine(device),
    }
    seconds: dict[str, float] = {}
    record["part_seconds"] = seconds
    # Each part's tables are printed as soon as it ends, so a run cut short still shows them.
    if parts & {"at_ratio", "data"}:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            at_rows, data_rows = measure_pairs(args, params, device, parts, Path(tmp))
        record["at_ratio"], record["data_share"] = at_rows, data_rows
        _, why = gpu_utilization_reader(device)
        record["gpu_utilization"] = "sampled" if why is None else f"unavailable: {why}"
        seconds["at_ratio_and_data"] = time.perf_counter() - started
        print_pairs(record, cpu=not cuda)
    if "gpu_variants" in parts:
        started = time.perf_counter()
        record["gpu_variants"] = measure_variants(args, params, device, compile_on)
        seconds["gpu_variants"] = time.perf_counter() - started
        print_variants(record["gpu_variants"], cpu=not cuda)
    if "projection" in parts:
        started = time.perf_counter()
        m = record["machine"]
        caveat = "" if cuda else ", indicative only"
        label = f"{m['device_name']} ({device.type}, {args.scale} widths{caveat})"
        record["projection"] = project(args, record["gpu_variants"], label)
        seconds["projection"] = time.perf_counter() - started
        print_projection(record["projection"])
    # The load at the start is in `machine`; other jobs may have come or gone since.
    record["load_average_at_end"] = (
        [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    )
    write_record(args.out, record)
    return record


if __name__ == "__main__":
    main()
