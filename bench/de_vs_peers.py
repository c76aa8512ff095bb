"""Backdrop's batched few-pixel DE attack against its peers, in interleaved rounds on the same work.

    uv run python bench/de_vs_peers.py --weights results/reduced/models/cifar10_vgg16/model.pt \
        --data data/reduced/processed/cifar10_grabcut/test.npz --images 20 --pixels 1 \
        --population 100 --generations 20 --rounds 3 --peers scipy,torchattacks \
        --out bench/results/de_vs_peers.json

The one-command GPU benchmark (ours in its precision and layout variants, the peers, CUDA):

    uv run python bench/de_vs_peers.py --weights results/reduced/models/cifar10_vgg16/model.pt \
        --data data/reduced/processed/cifar10_grabcut/test.npz --device cuda --images 50 \
        --pixels 1 --population 400 --generations 100 --rounds 3 --peers scipy,torchattacks \
        --ours fp32:contiguous,fp32:channels_last,fp16:channels_last,bf16:channels_last \
        --out bench/results/de_vs_peers_cuda.json

What it measures. Several *sides* (attacks) run on the same model and the same images: ours
(:func:`stages.attacks.differential_evolution.differential_evolution_attack`, all images in one
call), in one or more variants, and its peers. For every side: the wall time of the attack
(median over rounds), images/s, the model's forward passes per image, the success rate with its
95 % interval, successes per 1,000 forwards, the speed ratio of ours over the side and the
difference of their success rates on the same images with a paired 95 % interval.

Fairness rules (enforced by the code; a test checks the structure, never a time):

* Same images: every side attacks exactly the first ``--images`` test images the model
  classifies correctly (their ids in the split are recorded per side), each with its true label.
* Same budget: k pixels (``--pixels``), the total population (``--population``) and the
  generations after the initial population (``--generations``), untargeted, anywhere in the
  image, early stop once the label changes. scipy and torchattacks size their population as a
  multiple of the number of parameters, k (2 + C); a ``--population`` that they cannot match
  exactly is refused. ART fixes its own population (400 // parameters x parameters) whatever is
  asked: its row shows the population it used, and its notes say so.
* Same model: in eval mode, checked after every run of every side (the run stops if a side
  left the model in training mode). ``--peer-memory-format channels_last`` gives the peers a
  channels-last copy as well, to show how much of a layout gain is the layout alone.
* Same counting: every side's model is wrapped in :class:`CountingModel`, which counts images
  passed through the model; forwards per image = that count / images. Verification forwards
  (below) are outside it, and so is the untimed warm-up.
* Same verification: success = the model's label of the returned image (in fp32, TF32 off on
  a GPU, the model's own layout, outside the timing) differs from the true label and at most k
  pixels changed (a pixel changes when a channel moves by more than half an 8-bit level).
  The searches themselves run with PyTorch's defaults for every side (on a GPU, cuDNN
  convolutions may use TF32); the record's machine entry gives those settings.
* Same timing: ``--rounds`` interleaved rounds; in each round every side runs once on the same
  images, in an order that rotates by one side per round (round r starts with side r), so a
  burst of load from elsewhere does not hit one side only. Before round 1 every side runs once
  on the first image, untimed (lazy initialisation, allocator, kernel selection). A side's time
  is the median of its rounds (the GPU synchronised before and after). images/s = images /
  median seconds; the speed ratio ours / side = the side's median seconds / ours' median
  seconds (the images are the same), and its min-max over rounds is the ratio taken round by
  round, which shows the noise.
* Success is taken from round 1. Every side is seeded (ours from ``--seed``; scipy's ``rng``
  per image with ``--seed`` + the image's position; torchattacks and ART through numpy's global
  generator, reseeded the same way before each image), so rounds repeat the same search; the
  record says per side whether the outcomes of all rounds were identical.

Statistics. The success rate's 95 % interval is Wilson's score interval
(``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``). The difference of success
rates, ours - side, is paired (the same images): its 95 % interval is Tango's asymptotic score
interval for paired proportions (Tango 1998, from the counts of images only one side fooled;
unlike Newcombe's square-and-add interval it does not shrink to a point when both sides fool
exactly the same images; the record gives Newcombe's too), and the exact McNemar test on the discordant
images (``scipy.stats.binomtest(ours_only, ours_only + side_only, 0.5)``) gives its p-value.
Successes per 1,000 forwards = successes / total forwards of round 1 x 1000.

The sides:

* ``backdrop:PRECISION:FORMAT`` (ours), one per ``--ours`` variant (default: one variant from
  ``--precision`` and ``--memory-format``, which default to params.yaml's DE forward settings
  for the device, ``evaluation.de_forward.<device>``): all images in one call,
  :class:`DEConfig` defaults except pixels, population, generations, ``max_batch``
  (``--max-batch``, default params.yaml's ``evaluation.de_forward.<device>.batch``),
  ``strategy`` (``--strategy``, default ``best1``: scipy's and torchattacks' ``best1bin``, for a
  like-for-like comparison), ``search`` ``indexed`` (on the whole image the same as
  ``composite``), and, when this DEConfig has them, ``precision`` (the precision candidates are
  searched at; every success and the final image are confirmed in fp32), ``memory_format`` (a
  copy of the model is converted to it before the runs) and ``skip_repeats``
  (``--no-skip-repeats`` or a variant's ``:noskip`` turns it off; the side's name then ends in
  ``:noskip``). The first variant is the reference of the ratios and differences. For variants
  not at fp32, the record and the printout give the successes found at low precision that fp32
  rejected.
* ``backdrop-per-image:...`` (optional, ``--peers backdrop-per-image``): the reference variant
  called once per image, which separates the gain of batching images from the rest.
* ``scipy``: ``scipy.optimize.differential_evolution`` one image at a time, as Su et al. and
  Wang et al. ran it: genes (row, col, r, g, b) per pixel over the whole image, ``popsize`` =
  population / (k (2 + C)), Latin-hypercube init, F ~ U[0.5, 1), CR 0.7, best1bin, no
  polishing, no stop on convergence, stop once some candidate changes the label (a callback
  after each generation). The fitness (true-class probability) is evaluated for the whole
  population in one forward pass (``vectorized=True``, hence ``updating="deferred"``): the
  fastest fair setting of this peer.
* ``torchattacks``: ``torchattacks.OnePixel(pixels=k, steps=generations, popsize=population,
  inf_batch=population)``.
* ``art`` (optional): ART's ``PixelAttack`` (th = k, es = 1: DE) through a ``PyTorchClassifier``
  whose model ends in a softmax, so that its fitness is the true-class probability as in ours.

Each side's notes (printed and in the JSON record) list every difference from ours. The JSON
record (``--out``, written atomically) holds the machine, every setting, the plan (sides, image
ids, budget, the order of every round), each side's seconds per round, medians, per-image
success lists, forwards, and the comparisons. ``--forward-share`` also times each forward pass
inside the counting wrapper (the share of a side's time spent in the model; it synchronises the
GPU around every pass, so leave it off for the speed comparison on a GPU). ``--region`` runs
ours alone (with ``backdrop-per-image`` if asked) on the split's foreground or background masks
(the peers attack whole images only).
Numbers from a shared or throttled machine are noisy: compare ratios from one interleaved run,
not absolute times across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import hashlib
import importlib.metadata
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import torch
from scipy.optimize import OptimizeResult
from scipy.optimize import differential_evolution as scipy_differential_evolution
from scipy.stats import binomtest
from torch import nn

# Run as a script (`python bench/de_vs_peers.py`), Python puts bench/ on the path, not the
# repository root that holds `stages` and `bench`.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import first_correct, machine, predict, synchronize, write_record  # noqa: E402
from bench.common import markdown_table as render_table  # noqa: E402
from stages.attacks.differential_evolution import DEConfig, differential_evolution_attack  # noqa: E402

OURS = "backdrop"
OURS_PER_IMAGE = "backdrop-per-image"
SCIPY, TORCHATTACKS, ART = "scipy", "torchattacks", "art"
PEERS: tuple[str, ...] = (SCIPY, TORCHATTACKS, ART, OURS_PER_IMAGE)
# Peers whose population is popsize x (number of parameters), popsize an integer.
PER_PARAMETER_POPULATION = (SCIPY, TORCHATTACKS)
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
MEMORY_FORMATS: tuple[str, ...] = ("contiguous", "channels_last")
TORCH_MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
NO_SKIP = "noskip"
SKIP = "skip"

COLOR_MAX = 255  # colours are 8-bit levels 0..255, as DEConfig's default color_levels=256
CHANGE_TOLERANCE = 0.5 / COLOR_MAX  # a pixel counts as changed if a channel moves by half a level
GENES_PER_PIXEL_POSITION = 2  # peers encode a pixel as (row, col) followed by its C colours
MIN_PEER_POPULATION = 5  # scipy and torchattacks use at least 5 members
SCIPY_MUTATION = (0.5, 1.0)  # the paper's F ~ U[0.5, 1) ("dithering")
SCIPY_RECOMBINATION = 0.7  # CR; scipy's default and DEConfig's
SCIPY_STRATEGY = "best1bin"
SCIPY_INIT = "latinhypercube"  # DEConfig's default init "latin_hypercube"
# scipy stops when std(energies) <= atol + tol * |mean(energies)|; with these it never does.
NO_CONVERGENCE_TOL = 0.0
NO_CONVERGENCE_ATOL = -1.0
ART_POPULATION = 400  # ART hard-codes popsize = 400 // (number of parameters)
ART_FORWARD_BATCH = 128  # PyTorchClassifier.predict's default batch, which PixelAttack uses
ART_ES_DE = 1  # PixelAttack's es: 0 = CMA-ES, 1 = differential evolution
DEFAULT_SEED = 0
DEFAULT_ROUNDS = 3
DEFAULT_STRATEGY = "best1"
CONFIDENCE = 0.95
Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


# ------------------------------------------------------------------ the model, counted


class CountingModel(nn.Module):
    """The model, counting the images it is asked about (the attack's forwards); with
    ``time_forwards`` also the seconds inside its forward passes (synchronising the GPU)."""

    def __init__(self, model: nn.Module, time_forwards: bool = False) -> None:
        super().__init__()
        self.model = model
        self.forwards = 0
        self.time_forwards = time_forwards
        self.forward_seconds = 0.0
        # A new module starts in training mode; a peer that "restores" the mode it was handed
        # (torchattacks does, after each call) would then switch the model's BatchNorm to batch
        # statistics. Take the wrapped model's mode instead.
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forwards += x.shape[0]
        if not self.time_forwards:
            return self.model(x)
        synchronize(x.device)
        start = time.perf_counter()
        out = self.model(x)
        synchronize(x.device)
        self.forward_seconds += time.perf_counter() - start
        return out


def with_memory_format(model: nn.Module, memory_format: str) -> nn.Module:
    """``model`` itself for ``contiguous``, else a copy converted to ``memory_format`` (through
    ``stages.utils.precision.apply_memory_format`` where it exists)."""
    if memory_format == "contiguous":
        return model
    converted = copy.deepcopy(model)
    try:
        from stages.utils.precision import apply_memory_format  # type: ignore[import-not-found]
    except ImportError:
        return converted.to(memory_format=TORCH_MEMORY_FORMATS[memory_format])
    return apply_memory_format(converted, memory_format) or converted


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True)
class Budget:
    """What every side is asked to spend: k pixels, the total population, generations."""

    pixels: int
    population: int
    generations: int


@dataclass(frozen=True)
class Side:
    """One attack of the comparison, with the budget it actually uses and its settings."""

    name: str
    kind: str  # OURS, OURS_PER_IMAGE, SCIPY, TORCHATTACKS or ART
    pixels: int
    population: int
    generations: int
    memory_format: str
    image_ids: tuple[int, ...]
    settings: dict[str, Any]
    notes: tuple[str, ...]
    config: DEConfig | None = None  # ours only

    @property
    def budget(self) -> Budget:
        return Budget(self.pixels, self.population, self.generations)


@dataclass(frozen=True)
class Variant:
    """One variant of ours: ``PRECISION:FORMAT[:noskip]``."""

    precision: str
    memory_format: str
    skip_repeats: bool

    @property
    def label(self) -> str:
        return f"{self.precision}:{self.memory_format}" + ("" if self.skip_repeats else f":{NO_SKIP}")


@dataclass(frozen=True)
class Options:
    """The benchmark's settings (the command line, less the paths)."""

    images: int = 10
    pixels: int = 1
    population: int = DEConfig.population
    generations: int = DEConfig.max_generations
    peers: tuple[str, ...] = (SCIPY, TORCHATTACKS)
    ours: tuple[Variant, ...] = (Variant("fp32", "contiguous", True),)
    max_batch: int = DEConfig.max_batch
    strategy: str = DEFAULT_STRATEGY
    peer_memory_format: str = "contiguous"
    rounds: int = DEFAULT_ROUNDS
    seed: int = DEFAULT_SEED
    region: str = "all"
    forward_share: bool = False


@dataclass(frozen=True)
class Plan:
    """Who runs, on which images, with which budget, in which order; nothing timed yet."""

    image_ids: tuple[int, ...]
    budget: Budget
    sides: tuple[Side, ...]
    rounds: int
    seed: int
    reference: str  # the name of the variant of ours every ratio and difference is against

    def order(self, round_index: int) -> list[Side]:
        """The sides in round ``round_index`` (0-based): the list rotated by one per round."""
        shift = round_index % len(self.sides)
        return list(self.sides[shift:] + self.sides[:shift])

    def side(self, name: str) -> Side:
        return next(s for s in self.sides if s.name == name)

    def as_record(self) -> dict[str, Any]:
        return {
            "image_ids": list(self.image_ids),
            "budget": dataclasses.asdict(self.budget),
            "rounds": self.rounds,
            "seed": self.seed,
            "reference": self.reference,
            "order_by_round": [[s.name for s in self.order(r)] for r in range(self.rounds)],
            "sides": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "pixels": s.pixels,
                    "population": s.population,
                    "generations": s.generations,
                    "budget_matches": s.budget == self.budget,
                    "memory_format": s.memory_format,
                    "image_ids": list(s.image_ids),
                    "settings": s.settings,
                    "config": None if s.config is None else dataclasses.asdict(s.config),
                    "notes": list(s.notes),
                }
                for s in self.sides
            ],
        }


def parameters_per_candidate(pixels: int, channels: int) -> int:
    """The peers' genes per candidate: (row, col, colour...) per pixel."""
    return pixels * (GENES_PER_PIXEL_POSITION + channels)


def per_parameter_population(population: int, parameters: int) -> int:
    """The total population of scipy / torchattacks asked for ``population``: popsize (an
    integer multiplier of the parameters, at least 1) x parameters, at least 5."""
    return max(MIN_PEER_POPULATION, max(1, population // parameters) * parameters)


def art_population(parameters: int) -> int:
    return max(1, ART_POPULATION // parameters) * parameters


def de_config_fields() -> set[str]:
    return {f.name for f in dataclasses.fields(DEConfig)}


def ours_config(options: Options, variant: Variant) -> tuple[DEConfig, list[str]]:
    """DEConfig of a variant of ours and notes on options this DEConfig lacks."""
    have = de_config_fields()
    extra: dict[str, Any] = {}
    notes: list[str] = []
    wanted = {
        "precision": (variant.precision, "fp32"),
        "memory_format": (variant.memory_format, "contiguous"),
        "skip_repeats": (variant.skip_repeats, True),
    }
    for name, (value, default) in wanted.items():
        if name in have:
            extra[name] = value
        elif name == "precision" and value != default:
            raise SystemExit(
                f"--ours {variant.label}: this DEConfig has no `precision` option; only fp32 can run"
            )
        elif value != default:
            notes.append(
                f"this DEConfig has no `{name}` option: {value} applies only as far as the caller can"
                + (" (the model converted to channels-last)" if name == "memory_format" else " (ignored)")
            )
    cfg = DEConfig(
        pixels=options.pixels,
        population=options.population,
        max_generations=options.generations,
        # scipy's and torchattacks' mutation, and the search that spends every query in the
        # region (on whole images the two searches are one).
        strategy=options.strategy,  # type: ignore[arg-type]
        search="indexed",
        max_batch=options.max_batch,
        **extra,
    )
    return cfg, notes


def build_plan(options: Options, image_ids: Sequence[int], channels: int) -> Plan:
    """The comparison's plan: the sides, each with the images and budget it gets.

    Raises SystemExit on a plan that cannot be fair: no variant of ours, an unknown peer, peers
    with a region, fewer than one round, or a population scipy / torchattacks cannot match.
    """
    ids = tuple(int(i) for i in image_ids)
    budget = Budget(options.pixels, options.population, options.generations)
    if not options.ours:
        raise SystemExit("--ours: at least one variant of ours is needed (it is every ratio's reference)")
    if options.rounds < 1:
        raise SystemExit(f"--rounds must be >= 1, got {options.rounds}")
    if not ids:
        raise SystemExit("no images to attack")
    unknown = sorted(set(options.peers) - set(PEERS))
    if unknown:
        raise SystemExit(f"unknown peers {unknown}; valid: {', '.join(PEERS)}")
    if options.region != "all" and set(options.peers) - {OURS_PER_IMAGE}:
        raise SystemExit(
            f"--region {options.region}: the peers attack whole images only; use --peers '' "
            f"(or {OURS_PER_IMAGE})"
        )
    labels = [v.label for v in options.ours]
    if len(set(labels)) != len(labels):
        raise SystemExit(f"--ours lists a variant twice: {', '.join(labels)}")
    parameters = parameters_per_candidate(options.pixels, channels)
    mismatched = [p for p in options.peers if p in PER_PARAMETER_POPULATION]
    if mismatched and per_parameter_population(options.population, parameters) != options.population:
        below = max(1, options.population // parameters) * parameters
        raise SystemExit(
            f"--population {options.population}: {' and '.join(mismatched)} use popsize x {parameters} "
            f"parameters (k (2 + C) = {options.pixels} x (2 + {channels})); use a multiple of {parameters} "
            f"(e.g. {max(below, MIN_PEER_POPULATION)} or {below + parameters}) so that every side has the "
            "same population"
        )
    where = "the whole image" if options.region == "all" else f"the split's {options.region} masks"
    common = {"pixels": options.pixels, "generations": options.generations, "image_ids": ids}
    sides: list[Side] = []
    for variant in options.ours:
        cfg, notes = ours_config(options, variant)
        how = f"strategy={cfg.strategy}, search={cfg.search}, max_batch={cfg.max_batch}"
        notes.insert(
            0, f"DEConfig defaults except the budget and {how}; all images in one call; pixels from {where}"
        )
        settings = dataclasses.asdict(variant) | {"calls": "all images in one call", "pixels_from": where}
        name = f"{OURS}:{variant.label}"
        sides.append(
            Side(
                name,
                OURS,
                population=cfg.population,
                memory_format=variant.memory_format,
                settings=settings,
                notes=tuple(notes),
                config=cfg,
                **common,
            )
        )
    reference = sides[0]
    suffix = "" if options.peer_memory_format == "contiguous" else f":{options.peer_memory_format}"
    for peer in options.peers:
        if peer == OURS_PER_IMAGE:
            name = f"{OURS_PER_IMAGE}:{options.ours[0].label}"
            sides.append(
                dataclasses.replace(
                    reference,
                    name=name,
                    kind=OURS_PER_IMAGE,
                    notes=("the reference variant of ours called once per image",),
                    settings=reference.settings | {"calls": "one image per call"},
                )
            )
            continue
        population, settings, peer_notes = peer_settings(peer, options, parameters)
        sides.append(
            Side(
                peer + suffix,
                peer,
                population=population,
                memory_format=options.peer_memory_format,
                settings=settings,
                notes=tuple(peer_notes),
                **common,
            )
        )
    names = [s.name for s in sides]
    if len(set(names)) != len(names):
        raise SystemExit(f"a side is listed twice: {', '.join(names)}")
    return Plan(ids, budget, tuple(sides), options.rounds, options.seed, reference.name)


def peer_settings(peer: str, options: Options, parameters: int) -> tuple[int, dict[str, Any], list[str]]:
    """A peer's population (what it actually uses), settings and differences from ours."""
    k, generations, population = options.pixels, options.generations, options.population
    early_stop = (
        "early stop only when the population's best member is fooled, checked with one extra forward per "
        "generation (not after the initial population); success only if the final best is fooled"
    )
    if peer == SCIPY:
        popsize = population // parameters
        settings = {
            "version": scipy.__version__,
            "popsize": popsize,
            "parameters": parameters,
            "strategy": SCIPY_STRATEGY,
            "init": SCIPY_INIT,
            "mutation": SCIPY_MUTATION,
            "recombination": SCIPY_RECOMBINATION,
            "vectorized": True,
            "updating": "deferred",
            "polish": False,
            "rng": f"--seed + the image's position ({options.seed} + i)",
        }
        return (
            per_parameter_population(population, parameters),
            settings,
            [
                f"scipy {scipy.__version__}: popsize={popsize} x {parameters} parameters, vectorized=True, "
                "updating='deferred' (the fastest fair setting of this peer), seeded per image",
                "the early-stop callback runs after each generation, not after the initial population: an "
                "image fooled by its initial population still costs one generation",
                "k > 1: pixels are not made distinct (a repeated pixel overwrites); ours repairs clashes",
            ],
        )
    if peer == TORCHATTACKS:
        settings = {"pixels": k, "steps": generations, "popsize": population, "inf_batch": population}
        return (
            per_parameter_population(population, parameters),
            settings,
            [
                f"OnePixel(pixels={k}, steps={generations}, popsize={population}, inf_batch={population}): "
                f"it uses popsize // {parameters} x {parameters} members",
                "uniform random initial population (hard-coded) instead of a Latin hypercube",
                "crossover rate 1 (hard-coded, Su et al.'s) instead of 0.7",
                "colours continuous in [0, 1] instead of 8-bit levels; positions truncated",
                early_stop,
                "candidates painted one by one in a Python loop",
                "seeded through numpy's global RandomState per image (its DE takes no seed)",
            ],
        )
    if peer == ART:
        used = art_population(parameters)
        notes = [
            f"PixelAttack(th={k}, es={ART_ES_DE}, max_iter={generations})",
            f"population fixed by ART at {ART_POPULATION} // {parameters} x {parameters} = {used}, "
            "whatever --population says",
            "crossover rate 1 (hard-coded, Su et al.'s) instead of 0.7",
            early_stop,
            "positions: bounds [0, H] truncated and wrapped modulo H; colours truncated to 0..255 "
            "(255 only at the bound) instead of rounded",
            f"forward passes of {ART_FORWARD_BATCH} images (PyTorchClassifier.predict's default; "
            "PixelAttack exposes no batch size)",
            "seeded through numpy's global RandomState per image (ART's DE takes no seed)",
        ]
        if used != population:
            notes.insert(0, f"NOT the same budget: population {used}, not {population}")
        return used, {"th": k, "es": ART_ES_DE, "max_iter": generations}, notes
    raise ValueError(f"unknown peer {peer!r}")


# ------------------------------------------------------------------ running one side once


@dataclass
class Output:
    """What one run of a side returns, besides its time."""

    adversarial: torch.Tensor
    reported_forwards: list[int] | None = None  # per image, as the attack itself reports them
    low_precision_rejections: list[int] | None = None  # per image (ours at low precision)


@dataclass
class Attempt:
    """One timed run of one side."""

    seconds: float
    success: list[bool]
    forwards: int  # counted by the wrapper: images passed through the model
    forwards_by_image: list[int] | None
    reported_forwards: list[int] | None
    low_precision_rejections: list[int] | None
    forward_seconds: float | None
    images_fingerprint: str  # sha256 of the images tensor the side received


def fingerprint(images: torch.Tensor) -> str:
    return hashlib.sha256(images.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


@contextlib.contextmanager
def strict_fp32(device: torch.device) -> Iterator[None]:
    """No TF32 in the enclosed CUDA convolutions and matrix products (PyTorch allows it in
    cuDNN convolutions by default), so that the verification is fp32 on every device."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def verify(
    model: nn.Module, clean: torch.Tensor, adversarial: torch.Tensor, labels: torch.Tensor, pixels: int
) -> list[bool]:
    """Per image: the label changed and at most ``pixels`` pixels changed (the same test for
    all sides, in fp32)."""
    adversarial = adversarial.to(clean.device, clean.dtype)
    changed = ((adversarial - clean).abs().amax(dim=1) > CHANGE_TOLERANCE).flatten(1).sum(dim=1)
    with strict_fp32(clean.device):
        fooled = predict(model, adversarial) != labels
    return [bool(v) for v in (fooled & (changed <= pixels)).cpu().tolist()]


def paint(image: torch.Tensor, genes: np.ndarray, pixels: int) -> torch.Tensor:
    """Copies of ``image`` (C, H, W) with candidates ``genes`` (S, k * (2 + C)) written in.

    A pixel's genes are (row, col, colour...) with row in [0, H], col in [0, W] (floored) and
    colours in [0, 255] (rounded to the nearest 8-bit level), as in DEConfig's default.
    """
    channels, height, width = image.shape
    g = torch.from_numpy(np.ascontiguousarray(genes)).to(image.device)
    g = g.view(g.shape[0], pixels, GENES_PER_PIXEL_POSITION + channels)
    rows = g[:, :, 0].floor().long().clamp(0, height - 1)
    cols = g[:, :, 1].floor().long().clamp(0, width - 1)
    colour = (g[:, :, GENES_PER_PIXEL_POSITION:].round() / COLOR_MAX).to(image.dtype)
    out = image.unsqueeze(0).repeat(g.shape[0], 1, 1, 1)
    view = out.view(g.shape[0], channels, height * width)
    # (S, k) indices around a slice index a (S, k, C) block: the colours' layout.
    view[torch.arange(g.shape[0], device=out.device).unsqueeze(1), :, rows * width + cols] = colour
    return out


def per_image(
    counting: CountingModel, count: int, attack_one: Callable[[int], torch.Tensor], forwards: list[int]
) -> torch.Tensor:
    """Attack images 0..count-1 one at a time, recording each one's counted forwards."""
    out = []
    for i in range(count):
        before = counting.forwards
        out.append(attack_one(i))
        forwards.append(counting.forwards - before)
    return torch.cat(out)


def prepare(
    side: Side,
    counting: CountingModel,
    images: torch.Tensor,
    labels: torch.Tensor,
    region: torch.Tensor | None,
    seed: int,
    forwards_by_image: list[int],
) -> Callable[[], Output]:
    """The untimed set-up of one run of ``side``; the returned call is what is timed."""
    pixels, n = side.pixels, images.shape[0]
    if side.kind in (OURS, OURS_PER_IMAGE):
        cfg = side.config
        assert cfg is not None

        def ours() -> Output:
            generator = torch.Generator().manual_seed(seed)
            parts = [slice(0, n)] if side.kind == OURS else [slice(i, i + 1) for i in range(n)]
            adversarial, reported, rejections = [], [], []
            for part in parts:
                before = counting.forwards
                result = differential_evolution_attack(
                    counting,
                    images[part],
                    labels[part],
                    None if region is None else region[part],
                    cfg,
                    generator=generator,
                )
                if side.kind == OURS_PER_IMAGE:
                    forwards_by_image.append(counting.forwards - before)
                adversarial.append(result.adversarial)
                reported += getattr(result, "forwards", result.queries).tolist()
                lpr = getattr(result, "low_precision_rejections", None)
                rejections += [] if lpr is None else lpr.tolist()
            return Output(torch.cat(adversarial), reported, rejections if len(rejections) == n else None)

        return ours

    if side.kind == SCIPY:
        channels, height, width = images.shape[1:]
        bounds = [(0, height), (0, width)] + [(0, COLOR_MAX)] * channels
        bounds = bounds * pixels
        popsize = side.settings["popsize"]

        def attack_one(i: int) -> torch.Tensor:
            image, label = images[i], int(labels[i])
            found: list[torch.Tensor] = []  # the first successful candidate, once there is one

            def fitness(x: np.ndarray) -> np.ndarray:  # x: (parameters, S), vectorized=True
                candidates = paint(image, x.T, pixels)
                with torch.no_grad():
                    probs = torch.softmax(counting(candidates).float(), dim=1)
                p_true = probs[:, label]
                fooled = probs.argmax(dim=1) != label
                if not found and bool(fooled.any()):
                    found.append(candidates[torch.where(fooled, p_true, math.inf).argmin()])
                return p_true.cpu().double().numpy()

            def stop_when_fooled(intermediate_result: OptimizeResult) -> None:
                if found:
                    raise StopIteration

            result = scipy_differential_evolution(
                fitness,
                bounds,
                strategy=SCIPY_STRATEGY,
                maxiter=side.generations,
                popsize=popsize,
                tol=NO_CONVERGENCE_TOL,
                atol=NO_CONVERGENCE_ATOL,
                mutation=SCIPY_MUTATION,
                recombination=SCIPY_RECOMBINATION,
                rng=seed + i,
                callback=stop_when_fooled,
                polish=False,
                init=SCIPY_INIT,
                updating="deferred",
                vectorized=True,
            )
            return (found[0] if found else paint(image, result.x[np.newaxis], pixels)[0]).unsqueeze(0)

        return lambda: Output(per_image(counting, n, attack_one, forwards_by_image))

    if side.kind == TORCHATTACKS:
        try:
            import torchattacks
        except ImportError:
            raise SystemExit(
                "torchattacks is not installed; run `uv sync --frozen` (it is a dependency)"
            ) from None
        attack_obj = torchattacks.OnePixel(
            counting,
            pixels=pixels,
            steps=side.generations,
            popsize=side.settings["popsize"],
            inf_batch=side.settings["inf_batch"],
        )

        def torchattacks_one(i: int) -> torch.Tensor:
            np.random.seed(seed + i)  # torchattacks' DE draws from numpy's global RandomState
            return attack_obj(images[i : i + 1], labels[i : i + 1])

        return lambda: Output(per_image(counting, n, torchattacks_one, forwards_by_image))

    if side.kind == ART:
        from art.attacks.evasion import PixelAttack
        from art.estimators.classification import PyTorchClassifier

        with torch.no_grad():
            classes = int(counting.model(images[:1]).shape[1])
        classifier = PyTorchClassifier(
            model=nn.Sequential(counting, nn.Softmax(dim=1)),  # fitness: the true-class probability
            loss=nn.CrossEntropyLoss(),  # required by the wrapper, unused by a black-box attack
            input_shape=tuple(images.shape[1:]),
            nb_classes=classes,
            clip_values=(0.0, 1.0),
            device_type="gpu" if images.device.type == "cuda" else "cpu",
        )
        attack_obj = PixelAttack(
            classifier, th=pixels, es=ART_ES_DE, max_iter=side.generations, verbose=False
        )
        x, y = images.cpu().numpy(), labels.cpu().numpy()

        def art_one(i: int) -> torch.Tensor:
            np.random.seed(seed + i)  # ART's DE draws from numpy's global RandomState
            return torch.from_numpy(attack_obj.generate(x[i : i + 1], y[i : i + 1]))

        return lambda: Output(per_image(counting, n, art_one, forwards_by_image))

    raise ValueError(f"unknown side kind {side.kind!r}")


def run_once(
    side: Side,
    model: nn.Module,
    reference_model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    region: torch.Tensor | None,
    seed: int,
    forward_share: bool,
) -> Attempt:
    """One timed run of ``side`` on ``images``, then the common verification (untimed)."""
    counting = CountingModel(model, time_forwards=forward_share)
    forwards_by_image: list[int] = []
    attack = prepare(side, counting, images, labels, region, seed, forwards_by_image)
    device = images.device
    synchronize(device)
    start = time.perf_counter()
    output = attack()
    synchronize(device)
    seconds = time.perf_counter() - start
    for name, m in (("its model", model), ("the reference model", reference_model)):
        if m.training:
            raise SystemExit(f"{side.name} left {name} in training mode; its numbers are not comparable")
    return Attempt(
        seconds=seconds,
        success=verify(reference_model, images, output.adversarial, labels, side.pixels),
        forwards=counting.forwards,
        forwards_by_image=forwards_by_image or None,
        reported_forwards=output.reported_forwards,
        low_precision_rejections=output.low_precision_rejections,
        forward_seconds=counting.forward_seconds if forward_share else None,
        images_fingerprint=fingerprint(images),
    )


def run_plan(
    plan: Plan,
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    region: torch.Tensor | None = None,
    *,
    forward_share: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, list[Attempt]]:
    """Warm every side up on the first image, then run ``plan.rounds`` interleaved rounds.

    ``images`` and ``labels`` are the plan's images (``plan.image_ids`` of the split), on the
    device; ``model`` is in eval mode in its own (contiguous) layout and verifies every side.
    """
    if images.shape[0] != len(plan.image_ids) or labels.shape[0] != len(plan.image_ids):
        raise ValueError(f"{images.shape[0]} images for a plan of {len(plan.image_ids)}")
    model.eval()
    models = {fmt: with_memory_format(model, fmt) for fmt in {s.memory_format for s in plan.sides}}
    for m in models.values():
        m.eval()
    first = slice(0, 1)
    for side in plan.sides:  # warm-up: one image, untimed, uncounted
        log(f"warm-up {side.name}")
        run_once(
            side,
            models[side.memory_format],
            model,
            images[first],
            labels[first],
            None if region is None else region[first],
            plan.seed,
            False,
        )
    attempts: dict[str, list[Attempt]] = {s.name: [] for s in plan.sides}
    for r in range(plan.rounds):
        for side in plan.order(r):
            attempt = run_once(
                side, models[side.memory_format], model, images, labels, region, plan.seed, forward_share
            )
            attempts[side.name].append(attempt)
            log(
                f"round {r + 1}/{plan.rounds} {side.name}: {attempt.seconds:.2f} s, "
                f"{sum(attempt.success)}/{len(attempt.success)} fooled"
            )
    return attempts


# ------------------------------------------------------------------ statistics


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion (scipy.stats)."""
    ci = binomtest(successes, n).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def tango_interval(ours_only: int, other_only: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Tango's (1998) asymptotic score interval for the difference of two paired proportions,
    p_ours - p_other, from the discordant counts of ``n`` pairs (Fagerland, Lydersen & Laake
    2014 recommend it). Unlike Newcombe's square-and-add interval it does not shrink to a point
    when every pair agrees."""
    b, c = ours_only, other_only

    def score(delta: float) -> float:  # decreasing in delta; 0 at the estimate (b - c) / n
        w = -b - c + (2 * n - b + c) * delta
        # The maximum-likelihood P(other only) under the constraint p_ours - p_other = delta.
        p21 = (math.sqrt(max(0.0, w * w + 8 * n * c * delta * (1 - delta))) - w) / (4 * n)
        variance = n * (2 * p21 + delta * (1 - delta))
        numerator = b - c - n * delta
        if variance <= 0.0:
            return 0.0 if numerator == 0 else math.copysign(math.inf, numerator)
        return numerator / math.sqrt(variance)

    def solve(lo: float, hi: float, target: float) -> float:
        """The delta in [lo, hi] where score(delta) = target (bisection)."""
        for _ in range(100):
            mid = (lo + hi) / 2
            if score(mid) > target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    estimate = (b - c) / n
    low = -1.0 if score(-1.0) <= z else solve(-1.0, estimate, z)
    high = 1.0 if score(1.0) >= -z else solve(estimate, 1.0, -z)
    return low, high


def newcombe_interval(a: int, b: int, c: int, d: int) -> tuple[float, float]:
    """Newcombe's (1998, method 10) square-and-add interval for p_ours - p_other from the
    paired counts (both, ours only, other only, neither), with Wilson intervals; recorded beside
    Tango's."""
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n)
    l2, u2 = wilson_interval(a + c, n)
    denominator = (a + b) * (c + d) * (a + c) * (b + d)
    phi = 0.0 if denominator == 0 else (a * d - b * c) / math.sqrt(denominator)
    below = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    above = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, p1 - p2 - below), min(1.0, p1 - p2 + above)


def paired_difference(ours: Sequence[bool], other: Sequence[bool]) -> dict[str, Any]:
    """Success rate of ours minus ``other``'s on the same images: Tango's paired score
    interval (95 %), Newcombe's for reference, and the exact McNemar p-value (a binomial test
    of the discordant images)."""
    if len(ours) != len(other) or not ours:
        raise ValueError("a paired comparison needs the same non-empty list of images on both sides")
    n = len(ours)
    a = sum(1 for x, y in zip(ours, other, strict=True) if x and y)
    b = sum(1 for x, y in zip(ours, other, strict=True) if x and not y)  # ours only
    c = sum(1 for x, y in zip(ours, other, strict=True) if y and not x)  # other only
    d = n - a - b - c
    low, high = tango_interval(b, c, n)
    return {
        "difference": (b - c) / n,
        "ci95": [low, high],
        "method": "Tango (1998) asymptotic score interval for paired proportions",
        "newcombe_ci95": list(newcombe_interval(a, b, c, d)),
        "both": a,
        "ours_only": b,
        "other_only": c,
        "neither": d,
        "mcnemar_exact_p": 1.0 if b + c == 0 else float(binomtest(b, b + c, 0.5).pvalue),
    }


def side_summary(side: Side, attempts: list[Attempt]) -> dict[str, Any]:
    """A side's numbers: times of every round and their median, round 1's outcomes."""
    first = attempts[0]
    n = len(first.success)
    successes = sum(first.success)
    median = statistics.median(a.seconds for a in attempts)
    low, high = wilson_interval(successes, n)
    rejections = [
        None if a.low_precision_rejections is None else sum(a.low_precision_rejections) for a in attempts
    ]
    return {
        "name": side.name,
        "kind": side.kind,
        "images": n,
        "image_ids": list(side.image_ids),
        "images_fingerprint_by_round": [a.images_fingerprint for a in attempts],
        "pixels": side.pixels,
        "population": side.population,
        "generations": side.generations,
        "seconds_by_round": [a.seconds for a in attempts],
        "median_seconds": median,
        "images_per_second": n / median,
        "success": first.success,
        "success_by_round": [a.success for a in attempts],
        "success_identical_across_rounds": all(a.success == first.success for a in attempts),
        "successes": successes,
        "success_rate": successes / n,
        "success_ci95": [low, high],
        "success_ci_method": "Wilson score (scipy.stats.binomtest(k, n).proportion_ci(method='wilson'))",
        "forwards_by_round": [a.forwards for a in attempts],
        "forwards": first.forwards,
        "forwards_per_image": first.forwards / n,
        "forwards_by_image": first.forwards_by_image,
        "attack_reported_forwards_by_image": first.reported_forwards,
        "success_per_1k_forwards": 1000.0 * successes / first.forwards if first.forwards else math.nan,
        "low_precision_rejections_by_round": rejections,
        "low_precision_rejections": rejections[0],
        "low_precision_rejections_by_image": first.low_precision_rejections,
        "forward_seconds_by_round": [a.forward_seconds for a in attempts],
        "forward_share": (
            None
            if first.forward_seconds is None
            else statistics.median(a.forward_seconds / a.seconds for a in attempts)  # type: ignore[operator]
        ),
    }


def comparison(ours: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Ours against ``other`` on the same images: speed from the medians and per round, and the
    paired success difference."""
    if ours["image_ids"] != other["image_ids"]:
        raise ValueError(f"{ours['name']} and {other['name']} attacked different images")
    by_round = [o / u for o, u in zip(other["seconds_by_round"], ours["seconds_by_round"], strict=True)]
    return {
        "ours": ours["name"],
        "other": other["name"],
        # images/s ours / images/s other = other's median seconds / ours' (the same images).
        "speed_ratio": ours["images_per_second"] / other["images_per_second"],
        "speed_ratio_by_round": by_round,
        "speed_ratio_min": min(by_round),
        "speed_ratio_max": max(by_round),
        "success_difference": paired_difference(ours["success"], other["success"]),
    }


def summarise(plan: Plan, attempts: dict[str, list[Attempt]]) -> dict[str, Any]:
    """Every side's summary and every variant of ours compared with every side."""
    sides = {s.name: side_summary(s, attempts[s.name]) for s in plan.sides}
    comparisons = {
        ours.name: {other.name: comparison(sides[ours.name], sides[other.name]) for other in plan.sides}
        for ours in plan.sides
        if ours.kind == OURS
    }
    return {"sides": sides, "comparisons": comparisons}


# ------------------------------------------------------------------ reporting


TABLE_COLUMNS = (
    "side",
    "images",
    "population",
    "generations",
    "median s",
    "images/s",
    "forwards/image",
    "success: k/n = rate [95 % CI]",
    "success / 1k forwards",
    "speed ratio ours ÷ side [min–max over rounds]",
    "Δ success ours − side [95 % CI]",
)


def table(plan: Plan, summary: dict[str, Any], reference: str | None = None) -> str:
    """The Markdown table of every side against ``reference`` (by default the plan's)."""
    reference = reference or plan.reference
    rows = []
    for side in plan.sides:
        s = summary["sides"][side.name]
        c = summary["comparisons"][reference][side.name]
        diff = c["success_difference"]
        lo, hi = s["success_ci95"]
        rows.append(
            [
                side.name,
                s["images"],
                s["population"],
                s["generations"],
                f"{s['median_seconds']:.4g}",
                f"{s['images_per_second']:.4g}",
                f"{s['forwards_per_image']:.0f}",
                f"{s['successes']}/{s['images']} = {s['success_rate']:.2f} [{lo:.2f}, {hi:.2f}]",
                f"{s['success_per_1k_forwards']:.3f}",
                f"{c['speed_ratio']:.2f}× [{c['speed_ratio_min']:.2f}–{c['speed_ratio_max']:.2f}]",
                "—"
                if side.name == reference
                else f"{diff['difference']:+.2f} [{diff['ci95'][0]:+.2f}, {diff['ci95'][1]:+.2f}]",
            ]
        )
    return render_table(TABLE_COLUMNS, rows)


def benchmark(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    options: Options,
    *,
    masks: torch.Tensor | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Pick the images, plan, run and summarise: the record (without the machine and paths).

    ``images`` float (N, C, H, W) in [0, 1] and ``labels`` (N,) are the whole split (any
    device: they move to the model's), ``masks`` its foreground masks for ``options.region``.
    """
    from stages.masks.regions import region_mask

    device = next(model.parameters()).device
    model.eval()
    index = first_correct(model, images, labels, options.images)
    if len(index) < options.images:
        raise SystemExit(f"the model classifies only {len(index)} images correctly, not {options.images}")
    plan = build_plan(options, index.tolist(), images.shape[1])
    x, y = images[index].to(device), labels[index].to(device)
    region = None
    if options.region != "all":
        if masks is None:
            raise SystemExit(f"--region {options.region}: the split has no foreground masks")
        region = region_mask(options.region, x.shape, foreground=masks[index].to(device))
    attempts = run_plan(plan, model, x, y, region, forward_share=options.forward_share, log=log)
    summary = summarise(plan, attempts)
    tables = {ours: table(plan, summary, ours) for ours in summary["comparisons"]}
    return {
        "options": dataclasses.asdict(options),
        "labels": y.cpu().tolist(),
        "plan": plan.as_record(),
        **summary,
        "table": tables[plan.reference],
        "tables_by_reference": tables,
    }


def report(record: dict[str, Any]) -> str:
    """The printout: the table, rejections at low precision, and every side's notes."""
    lines = [record["table"], ""]
    for s in record["plan"]["sides"]:
        side = record["sides"][s["name"]]
        if s["kind"] == OURS and s["settings"].get("precision", "fp32") != "fp32":
            lines.append(
                f"- {s['name']}: {side['low_precision_rejections']} low-precision successes rejected in fp32 "
                f"(round 1, all images; by round: {side['low_precision_rejections_by_round']})"
            )
        if not side["success_identical_across_rounds"]:
            lines.append(f"- {s['name']}: outcomes differ between rounds; success is round 1's")
        for note in s["notes"]:
            lines.append(f"- {s['name']}: {note}")
    others = [name for name in record["tables_by_reference"] if name != record["plan"]["reference"]]
    for name in others:
        lines += ["", f"Against {name}:", "", record["tables_by_reference"][name]]
    return "\n".join(lines)


# ------------------------------------------------------------------ command line


def pipeline_de_settings(device_type: str) -> tuple[dict[str, Any], dict[str, str]]:
    """params.yaml's DE forward settings for ``device_type`` ("cpu", "cuda"), as the pipeline
    runs the attack (``evaluation.de_forward.<device>``: batch, precision, memory_format; or the
    older ``evaluation.de_forward_batch.<device>``), each falling back to DEConfig's default;
    also where each value came from."""
    values: dict[str, Any] = {
        "max_batch": DEConfig.max_batch,
        "precision": "fp32",
        "memory_format": "contiguous",
    }
    source = {key: "DEConfig default" for key in values}
    try:
        from stages.config import Params

        params = Params.load(REPO_ROOT / "params.yaml")
        evaluation = params.section("evaluation")
    except Exception as exc:  # a params.yaml being edited must not stop a benchmark
        return values, {key: f"DEConfig default (params.yaml unreadable: {exc})" for key in values}
    found: dict[str, Any] = {}
    if "de_forward" in evaluation:
        method = getattr(params, "de_forward", None)
        forward = method(device_type) if callable(method) else evaluation["de_forward"].get(device_type, {})
        found = {"max_batch": forward.get("batch")} | {
            k: forward.get(k) for k in ("precision", "memory_format")
        }
        where = f"params.yaml evaluation.de_forward.{device_type}"
    elif "de_forward_batch" in evaluation:
        found = {"max_batch": evaluation["de_forward_batch"].get(device_type)}
        where = f"params.yaml evaluation.de_forward_batch.{device_type}"
    for key, value in found.items():
        if value is not None:
            values[key] = int(value) if key == "max_batch" else str(value)
            source[key] = where
    return values, source


def parse_variants(text: str, skip_repeats: bool) -> tuple[Variant, ...]:
    """``"fp32:contiguous,bf16:channels_last:noskip"`` -> the variants of ours."""
    out = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        fields = item.split(":")
        precision = fields[0]
        memory_format = fields[1] if len(fields) > 1 else "contiguous"
        skip = fields[2] if len(fields) > 2 else (SKIP if skip_repeats else NO_SKIP)
        if (
            len(fields) > 3
            or precision not in PRECISIONS
            or memory_format not in MEMORY_FORMATS
            or skip not in (SKIP, NO_SKIP)
        ):
            raise SystemExit(
                f"--ours: expected PRECISION[:FORMAT[:skip|noskip]], PRECISION in {', '.join(PRECISIONS)}, "
                f"FORMAT in {', '.join(MEMORY_FORMATS)}; got {item!r}"
            )
        out.append(Variant(precision, memory_format, skip == SKIP))
    return tuple(out)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, required=True, help="a trained model.pt")
    p.add_argument("--data", type=Path, required=True, help="a processed split (.npz)")
    p.add_argument(
        "--images", type=int, default=10, help="every side attacks the first N correctly classified images"
    )
    p.add_argument("--pixels", type=int, default=1, help="k, pixels changed per image")
    p.add_argument("--population", type=int, default=DEConfig.population, help="total population, every side")
    p.add_argument(
        "--generations", type=int, default=DEConfig.max_generations, help="after the initial population"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--peers",
        default=f"{SCIPY},{TORCHATTACKS}",
        help=f"comma-separated, from: {', '.join(PEERS)} ('' for ours alone)",
    )
    p.add_argument(
        "--ours",
        help="variants of ours, comma-separated PRECISION:FORMAT[:skip|noskip], e.g. "
        "fp32:contiguous,fp32:channels_last,bf16:channels_last (the first is the reference); "
        "default: one variant from --precision, --memory-format and --no-skip-repeats",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="ours' search precision (default: params.yaml's for the device, else fp32)",
    )
    p.add_argument(
        "--memory-format",
        choices=MEMORY_FORMATS,
        help="ours' model layout (default: params.yaml's for the device, else contiguous)",
    )
    p.add_argument(
        "--no-skip-repeats",
        action="store_true",
        help="ours re-evaluates candidates identical to their parent or to another of the image's",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        help="ours' candidate images per forward pass (default: params.yaml's "
        "evaluation.de_forward.DEVICE.batch, as the pipeline runs it)",
    )
    p.add_argument(
        "--strategy",
        choices=("best1", "rand1"),
        default=DEFAULT_STRATEGY,
        help="ours' mutation (best1: the peers' best1bin)",
    )
    p.add_argument(
        "--peer-memory-format",
        choices=MEMORY_FORMATS,
        default="contiguous",
        help="the layout of the peers' model (channels_last: how much of a gain is the layout alone)",
    )
    p.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="interleaved timed rounds")
    p.add_argument(
        "--region",
        choices=("all", "foreground", "background"),
        default="all",
        help="ours only (--peers '' or backdrop-per-image): change pixels of the split's foreground or "
        "background masks",
    )
    p.add_argument(
        "--forward-share",
        action="store_true",
        help="also time each forward pass (synchronising the GPU around it): the share of a side's "
        "time in the model",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--out", type=Path, help="write the record here (JSON)")
    return p


def options_from(args: argparse.Namespace, device: torch.device) -> tuple[Options, dict[str, str]]:
    defaults, source = pipeline_de_settings(device.type)
    if args.max_batch is not None:
        source["max_batch"] = "--max-batch"
    if args.ours:
        variants = parse_variants(args.ours, not args.no_skip_repeats)
        source |= {"precision": "--ours", "memory_format": "--ours"}
    else:
        precision = args.precision or defaults["precision"]
        memory_format = args.memory_format or defaults["memory_format"]
        source |= {k: f"--{k.replace('_', '-')}" for k in ("precision", "memory_format") if getattr(args, k)}
        variants = (Variant(precision, memory_format, not args.no_skip_repeats),)
    options = Options(
        images=args.images,
        pixels=args.pixels,
        population=args.population,
        generations=args.generations,
        peers=tuple(name for name in (p.strip() for p in args.peers.split(",")) if name),
        ours=variants,
        max_batch=args.max_batch or defaults["max_batch"],
        strategy=args.strategy,
        peer_memory_format=args.peer_memory_format,
        rounds=args.rounds,
        seed=args.seed,
        region=args.region,
        forward_share=args.forward_share,
    )
    return options, source


def versions() -> dict[str, str | None]:
    """The peers' package versions (without importing them)."""
    out: dict[str, str | None] = {"scipy": scipy.__version__}
    for name in ("torchattacks", "adversarial-robustness-toolbox"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from stages.data.processed import load_split
    from stages.models.checkpoint import load_trained

    args = parser().parse_args(argv)
    device = torch.device(args.device)
    options, source = options_from(args, device)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    model = load_trained(args.weights, device).eval()
    images, labels, masks = load_split(args.data).tensors()
    record = benchmark(model, images, labels, options, masks=masks, log=lambda line: print(line, flush=True))
    record = {
        "benchmark": "de_vs_peers",
        "argv": list(sys.argv[1:] if argv is None else argv),
        "weights": str(args.weights),
        "data": str(args.data),
        "device": str(device),
        "defaults_from": source,
        "machine": machine(device)
        | versions()
        | {
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
            "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        },
        **record,
    }
    print()
    print(report(record))
    write_record(args.out, record)
    return record


if __name__ == "__main__":
    main()
