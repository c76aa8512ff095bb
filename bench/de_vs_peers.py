"""Backdrop's batched few-pixel DE attack against per-image peers, side by side in one run.

    uv run python bench/de_vs_peers.py --weights results/models/cifar10_natural/model.pt \
        --data data/processed/cifar10_grabcut/test.npz --images 10 --pixels 1 --population 400 \
        --generations 100 --device cpu --peers scipy,art --out bench/results/de_vs_peers.json

Add ``torchattacks`` to ``--peers`` to include its ``OnePixel`` (torchattacks is a project
dependency since the AutoAttack reference came in).

Efficiency (ours only): the share of the attack's wall time spent inside the model's forward
passes, timed around each pass in the same run, i.e. (candidates evaluated x forward cost per
candidate at the batch sizes the attack used) / attack time. ``--region foreground|background``
restricts ours to the split's masks, as the pipeline's pixel-space attacks are; the peers have no
such option, so a region run has no peers.

What it measures. Every attack runs untargeted, over the whole image, on the same trained model
and the same images: the first ``--images`` test images the model classifies correctly. For
each attack it records the wall time (images/s), the success rate (the model's label of the
returned image differs from the true label and at most k pixels changed; the same check for
every attack) with its binomial standard error sqrt(p(1 - p)/n), and the model queries per
image (images passed through the model, counted the same way for every attack). The speed-up
is ours' images/s over the peer's (> 1: ours is faster); the success-rate difference is the
peer's minus ours' on the same images, with the standard error sqrt(se_peer^2 + se_ours^2).

The attacks:

* ``backdrop``: :func:`stages.attacks.differential_evolution.differential_evolution_attack`
  on all images at once, :class:`DEConfig` defaults (``max_batch`` included) except pixels,
  population and generations.
* ``backdrop-per-image`` (optional): the same function called once per image, which separates
  the gain of batching images from the rest.
* ``scipy``: ``scipy.optimize.differential_evolution`` one image at a time, as Su et al. and
  Wang et al. ran it: genes (row, col, r, g, b) per pixel over the whole image, ``popsize`` =
  population // (5k) (scipy's popsize multiplies the number of parameters; the table shows the
  resulting total), Latin-hypercube init, F ~ U[0.5, 1), CR 0.7, best1bin, no polishing, no
  stop on convergence, stop once some candidate changes the label (like ours). The fitness
  (true-class probability) is evaluated for the whole population in one forward pass
  (``vectorized=True``, hence ``updating="deferred"``): the fastest fair setting of this peer.
* ``art``: ART's ``PixelAttack`` (th = k, es = 1: DE) through a ``PyTorchClassifier`` whose
  model ends in a softmax, so that its fitness is the true-class probability as in ours.
* ``torchattacks``: ``torchattacks.OnePixel`` with the same total population and
  ``inf_batch`` = population.

ART and torchattacks fix some DE settings themselves; the run's notes (printed and in the JSON)
list every difference from ours. Numbers from a shared or throttled machine are noisy: compare
ratios from one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import torch
from scipy.optimize import OptimizeResult
from scipy.optimize import differential_evolution as scipy_differential_evolution
from torch import nn

# Run as a script (`python bench/de_vs_peers.py`), Python puts bench/ on the path, not the
# repository root that holds `stages` and `bench`.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import first_correct, machine, predict, synchronize, write_record  # noqa: E402
from stages.attacks.differential_evolution import DEConfig, differential_evolution_attack  # noqa: E402
from stages.config import Params  # noqa: E402
from stages.data.processed import load_split  # noqa: E402
from stages.masks.regions import region_mask  # noqa: E402
from stages.models.checkpoint import load_trained  # noqa: E402

OURS = "backdrop"
OURS_PER_IMAGE = "backdrop-per-image"
PEERS: tuple[str, ...] = ("scipy", "art", "torchattacks", OURS_PER_IMAGE)

COLOR_MAX = 255  # colours are 8-bit levels 0..255, as DEConfig's default color_levels=256
CHANGE_TOLERANCE = 0.5 / COLOR_MAX  # a pixel counts as changed if a channel moves by half a level
GENES_PER_PIXEL_POSITION = 2  # peers encode a pixel as (row, col) followed by its C colours
SCIPY_MUTATION = (0.5, 1.0)  # the paper's F ~ U[0.5, 1) ("dithering")
SCIPY_RECOMBINATION = 0.7  # CR; scipy's default and DEConfig's
SCIPY_STRATEGY = "best1bin"  # DEConfig(strategy="best1"), set below for a like-for-like comparison
SCIPY_INIT = "latinhypercube"  # DEConfig's default init "latin_hypercube"
# scipy stops when std(energies) <= atol + tol * |mean(energies)|; with these it never does.
NO_CONVERGENCE_TOL = 0.0
NO_CONVERGENCE_ATOL = -1.0
ART_POPULATION = 400  # ART hard-codes popsize = 400 // (number of parameters)
ART_FORWARD_BATCH = 128  # PyTorchClassifier.predict's default batch, which PixelAttack uses
ART_ES_DE = 1  # PixelAttack's es: 0 = CMA-ES, 1 = differential evolution
DEFAULT_SEED = 0


# ------------------------------------------------------------------ helpers


class CountingModel(nn.Module):
    """The model, counting the images it is asked about (the attack's queries) and timing its
    forward passes, which gives an attack's efficiency (:attr:`Run.efficiency`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.queries = 0
        self.forward_seconds = 0.0
        # A new module starts in training mode; a peer that "restores" the mode it was handed
        # (torchattacks does, after each call) would then switch the model's BatchNorm to batch
        # statistics. Take the wrapped model's mode instead.
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.queries += x.shape[0]
        synchronize(x.device)
        start = time.perf_counter()
        out = self.model(x)
        synchronize(x.device)
        self.forward_seconds += time.perf_counter() - start
        return out


@dataclass
class Run:
    """One attack's measurement. ``success`` and ``queries`` are per image, in image order."""

    peer: str
    images: int
    population: int
    generations: int
    seconds: float
    success: list[bool]
    queries: list[int]
    notes: list[str]
    # Seconds inside the model's forward passes during the attack (ours only).
    forward_seconds: float | None = None

    @property
    def efficiency(self) -> float | None:
        """The share of the attack's time spent in the model's forward passes, at the batch
        sizes the attack chose: 1.0 would mean no time at all in the attack's own bookkeeping
        (decoding genomes, painting pixels, selection, Python overhead). Timed inside the same
        run, so a burst of load from elsewhere slows both sides alike."""
        return None if self.forward_seconds is None else self.forward_seconds / self.seconds

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds

    @property
    def success_rate(self) -> float:
        return sum(self.success) / len(self.success)


def binomial_se(p: float, n: int) -> float:
    return math.sqrt(p * (1.0 - p) / n)


def num_classes(model: nn.Module, images: torch.Tensor) -> int:
    with torch.no_grad():
        return int(model(images[:1]).shape[1])


def verify(
    model: nn.Module, clean: torch.Tensor, adversarial: torch.Tensor, labels: torch.Tensor, pixels: int
) -> list[bool]:
    """Per image: the label changed and at most ``pixels`` pixels changed (the same test for all)."""
    changed = ((adversarial - clean).abs().amax(dim=1) > CHANGE_TOLERANCE).flatten(1).sum(dim=1)
    fooled = predict(model, adversarial) != labels
    return (fooled & (changed <= pixels)).cpu().tolist()


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


def timed(attack: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    adversarial = attack()
    return adversarial, time.perf_counter() - start


# ------------------------------------------------------------------ the attacks


def run_ours(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: DEConfig,
    seed: int,
    per_image: bool,
    region: torch.Tensor | None = None,
) -> Run:
    generator = torch.Generator().manual_seed(seed)
    counting = CountingModel(model)
    queries: list[int] = []

    def attack() -> torch.Tensor:
        if not per_image:
            result = differential_evolution_attack(counting, images, labels, region, cfg, generator=generator)
            queries.extend(result.queries.tolist())
            return result.adversarial
        out = []
        for i in range(images.shape[0]):
            one = slice(i, i + 1)
            part = None if region is None else region[one]
            result = differential_evolution_attack(
                counting, images[one], labels[one], part, cfg, generator=generator
            )
            queries.extend(result.queries.tolist())
            out.append(result.adversarial)
        return torch.cat(out)

    adversarial, seconds = timed(attack)
    how = "one image per call" if per_image else "all images in one call"
    where = "the whole image" if region is None else "the given region"
    return Run(
        peer=OURS_PER_IMAGE if per_image else OURS,
        images=images.shape[0],
        population=cfg.population,
        generations=cfg.max_generations,
        seconds=seconds,
        success=verify(model, images, adversarial.to(images.device), labels, cfg.pixels),
        queries=queries,
        notes=[
            f"DEConfig defaults except pixels/population/generations (max_batch={cfg.max_batch}); "
            f"{how}; pixels from {where}"
        ],
        forward_seconds=counting.forward_seconds,
    )


def run_scipy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: DEConfig, seed: int) -> Run:
    channels, height, width = images.shape[1:]
    bounds = [(0, height), (0, width)] + [(0, COLOR_MAX)] * channels
    bounds = bounds * cfg.pixels
    popsize = max(1, cfg.population // len(bounds))
    queries: list[int] = []

    def attack_one(image: torch.Tensor, label: int, image_seed: int) -> torch.Tensor:
        found: list[torch.Tensor] = []  # the first successful candidate, once there is one
        spent = 0

        def fitness(x: np.ndarray) -> np.ndarray:  # x: (parameters, S), vectorized=True
            nonlocal spent
            candidates = paint(image, x.T, cfg.pixels)
            with torch.no_grad():
                probs = torch.softmax(model(candidates).float(), dim=1)
            spent += candidates.shape[0]
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
            maxiter=cfg.max_generations,
            popsize=popsize,
            tol=NO_CONVERGENCE_TOL,
            atol=NO_CONVERGENCE_ATOL,
            mutation=SCIPY_MUTATION,
            recombination=SCIPY_RECOMBINATION,
            seed=image_seed,
            callback=stop_when_fooled,
            polish=False,
            init=SCIPY_INIT,
            updating="deferred",
            vectorized=True,
        )
        queries.append(spent)
        return found[0] if found else paint(image, result.x[np.newaxis], cfg.pixels)[0]

    def attack() -> torch.Tensor:
        return torch.stack([attack_one(images[i], int(labels[i]), seed + i) for i in range(images.shape[0])])

    adversarial, seconds = timed(attack)
    return Run(
        peer="scipy",
        images=images.shape[0],
        population=popsize * len(bounds),
        generations=cfg.max_generations,
        seconds=seconds,
        success=verify(model, images, adversarial, labels, cfg.pixels),
        queries=queries,
        notes=[
            f"scipy {scipy.__version__}: popsize={popsize} x {len(bounds)} parameters, vectorized=True, "
            "updating='deferred' (the fastest fair setting of this peer), seed per image",
            "the early-stop callback runs after each generation, not after the initial population: "
            "an image fooled by its initial population still costs one generation",
            "k > 1: pixels are not made distinct (a repeated pixel overwrites); ours repairs clashes",
        ],
    )


def run_art(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: DEConfig, seed: int) -> Run:
    import art
    from art.attacks.evasion import PixelAttack
    from art.estimators.classification import PyTorchClassifier

    counting = CountingModel(model)
    classifier = PyTorchClassifier(
        model=nn.Sequential(counting, nn.Softmax(dim=1)),  # fitness: the true-class probability
        loss=nn.CrossEntropyLoss(),  # required by the wrapper, unused by a black-box attack
        input_shape=tuple(images.shape[1:]),
        nb_classes=num_classes(model, images),
        clip_values=cfg.value_range,
        device_type="gpu" if images.device.type == "cuda" else "cpu",
    )
    attack_obj = PixelAttack(
        classifier, th=cfg.pixels, es=ART_ES_DE, max_iter=cfg.max_generations, verbose=False
    )
    x = images.cpu().numpy()
    y = labels.cpu().numpy()
    queries: list[int] = []

    def attack() -> torch.Tensor:
        out = []
        for i in range(x.shape[0]):
            np.random.seed(seed + i)  # ART's DE draws from numpy's global RandomState
            counting.queries = 0
            out.append(attack_obj.generate(x[i : i + 1], y[i : i + 1]))
            queries.append(counting.queries)
        return torch.from_numpy(np.concatenate(out))

    adversarial, seconds = timed(attack)
    bounds_count = cfg.pixels * (GENES_PER_PIXEL_POSITION + images.shape[1])
    population = max(1, ART_POPULATION // bounds_count) * bounds_count
    notes = [
        f"adversarial-robustness-toolbox {art.__version__}: PixelAttack(th={cfg.pixels}, es={ART_ES_DE}, "
        f"max_iter={cfg.max_generations})",
        "crossover rate 1 (hard-coded, Su et al.'s) instead of 0.7",
        f"population fixed by ART at {ART_POPULATION} // parameters, whatever --population says",
        "early stop only when the population's best member is fooled, checked with one extra query "
        "per generation (not after the initial population); success only if the final best is fooled",
        "positions: bounds [0, H] truncated and wrapped modulo H; colours truncated to 0..255 "
        "(255 only at the bound) instead of rounded",
        f"forward passes of {ART_FORWARD_BATCH} images (PyTorchClassifier.predict's default; "
        "PixelAttack exposes no batch size)",
        "seeded through numpy's global RandomState per image (ART's DE takes no seed)",
    ]
    if population != cfg.population:
        notes.insert(2, f"population {population}, not {cfg.population}")
    return Run(
        peer="art",
        images=images.shape[0],
        population=population,
        generations=cfg.max_generations,
        seconds=seconds,
        success=verify(model, images, adversarial.to(images.device, images.dtype), labels, cfg.pixels),
        queries=queries,
        notes=notes,
    )


def run_torchattacks(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, cfg: DEConfig, seed: int
) -> Run:
    try:
        import torchattacks
    except ImportError:
        raise SystemExit(
            "torchattacks is not installed; run `uv sync --frozen` (it is a dependency)"
        ) from None
    counting = CountingModel(model)
    attack_obj = torchattacks.OnePixel(
        counting,
        pixels=cfg.pixels,
        steps=cfg.max_generations,
        popsize=cfg.population,
        inf_batch=cfg.population,
    )
    queries: list[int] = []

    def attack() -> torch.Tensor:
        out = []
        for i in range(images.shape[0]):
            np.random.seed(seed + i)  # torchattacks' DE draws from numpy's global RandomState
            counting.queries = 0
            out.append(attack_obj(images[i : i + 1], labels[i : i + 1]))
            queries.append(counting.queries)
        return torch.cat(out)

    adversarial, seconds = timed(attack)
    bounds_count = cfg.pixels * (GENES_PER_PIXEL_POSITION + images.shape[1])
    population = max(1, cfg.population // bounds_count) * bounds_count
    return Run(
        peer="torchattacks",
        images=images.shape[0],
        population=population,
        generations=cfg.max_generations,
        seconds=seconds,
        success=verify(model, images, adversarial, labels, cfg.pixels),
        queries=queries,
        notes=[
            f"torchattacks {torchattacks.__version__}: popsize={cfg.population} (its total), "
            f"inf_batch={cfg.population}",
            "uniform random initial population (hard-coded) instead of a Latin hypercube",
            "crossover rate 1 (hard-coded, Su et al.'s) instead of 0.7",
            "colours continuous in [0, 1] instead of 8-bit levels; positions truncated",
            "early stop only when the population's best member is fooled, checked with one extra query "
            "per generation (not after the initial population); success only if the final best is fooled",
            "seeded through numpy's global RandomState per image (its DE takes no seed)",
        ],
    )


# ------------------------------------------------------------------ reporting


def summary(run: Run, ours: Run) -> dict[str, Any]:
    """The table's row for ``run``, compared with ``ours`` on the same (first) images."""
    ours_success = ours.success[: run.images]
    ours_rate = sum(ours_success) / len(ours_success)
    se = binomial_se(run.success_rate, run.images)
    se_ours = binomial_se(ours_rate, run.images)
    return {
        "peer": run.peer,
        "images": run.images,
        "population": run.population,
        "generations": run.generations,
        "seconds": run.seconds,
        "images_per_second": run.images_per_second,
        "success_rate": run.success_rate,
        "success_se": se,
        "mean_queries": sum(run.queries) / len(run.queries),
        "speedup_ours_over_peer": ours.images_per_second / run.images_per_second,
        "ours_success_rate_same_images": ours_rate,
        "success_diff_peer_minus_ours": run.success_rate - ours_rate,
        "success_diff_se": math.sqrt(se**2 + se_ours**2),
        "efficiency": run.efficiency,
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    header = (
        "| attack | images | population | generations | seconds | images/s | success rate ± s.e. "
        "| mean queries | speed-up (ours/peer) | Δ success vs ours ± s.e. | efficiency |"
    )
    lines = [header, "|" + "---|" * header.count(" | ") + "---|"]
    for r in rows:
        lines.append(
            f"| {r['peer']} | {r['images']} | {r['population']} | {r['generations']} | {r['seconds']:.1f} "
            f"| {r['images_per_second']:.4f} | {r['success_rate']:.2f} ± {r['success_se']:.2f} "
            f"| {r['mean_queries']:.0f} | {r['speedup_ours_over_peer']:.2f}x "
            f"| {r['success_diff_peer_minus_ours']:+.2f} ± {r['success_diff_se']:.2f} "
            f"| {'—' if r['efficiency'] is None else format(r['efficiency'], '.2f')} |"
        )
    return "\n".join(lines)


def pipeline_forward_batch(device: torch.device) -> int:
    """The DE forward batch the pipeline uses on ``device`` (params.yaml), else DEConfig's."""
    return Params.load(REPO_ROOT / "params.yaml").de_forward_batch(device.type) or DEConfig.max_batch


def parse_peer_images(text: str) -> dict[str, int]:
    """``"art=4,torchattacks=4"`` -> {"art": 4, "torchattacks": 4}."""
    out: dict[str, int] = {}
    for item in filter(None, text.split(",")):
        name, _, count = item.partition("=")
        if name not in PEERS or not count.isdigit() or int(count) < 1:
            raise SystemExit(f"--peer-images: expected PEER=N with PEER in {', '.join(PEERS)}, got {item!r}")
        out[name] = int(count)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=Path, required=True, help="a trained model.pt")
    p.add_argument("--data", type=Path, required=True, help="a processed split (.npz)")
    p.add_argument("--images", type=int, default=10, help="attack the first N correctly classified images")
    p.add_argument("--pixels", type=int, default=1, help="k, pixels changed per image")
    p.add_argument("--population", type=int, default=DEConfig.population)
    p.add_argument("--generations", type=int, default=DEConfig.max_generations)
    p.add_argument(
        "--max-batch",
        type=int,
        help="ours' candidate images per forward pass (default: params.yaml's evaluation.de_forward_batch "
        "for the device, as the pipeline runs it)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--peers", default="scipy,art", help=f"comma-separated, from: {', '.join(PEERS)}")
    p.add_argument(
        "--peer-images",
        default="",
        help="fewer images for slow peers, e.g. art=4,torchattacks=4 (the first of the same images)",
    )
    p.add_argument(
        "--region",
        choices=("all", "foreground", "background"),
        default="all",
        help="ours only (the peers attack whole images): change pixels of the split's foreground or "
        "background masks, as the pipeline's pixel-space attacks do",
    )
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--out", type=Path, help="write the measurements here (JSON)")
    args = p.parse_args(argv)

    peers = [name for name in args.peers.split(",") if name]
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        raise SystemExit(f"unknown peers {unknown}; valid: {', '.join(PEERS)}")
    peer_images = parse_peer_images(args.peer_images)

    if args.region != "all" and peers:
        raise SystemExit(f"--region {args.region}: the peers attack whole images only; use --peers ''")

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    device = torch.device(args.device)
    model = load_trained(args.weights, device)
    all_images, all_labels, all_masks = load_split(args.data).tensors()
    index = first_correct(model, all_images, all_labels, args.images)
    if len(index) < args.images:
        raise SystemExit(
            f"{args.data}: the model classifies only {len(index)} images correctly, not {args.images}"
        )
    images, labels = all_images[index].to(device), all_labels[index].to(device)
    region = None
    if args.region != "all":
        if all_masks is None:
            raise SystemExit(f"--region {args.region}: {args.data} has no foreground masks")
        region = region_mask(args.region, images.shape, foreground=all_masks[index].to(device))
    cfg = DEConfig(
        pixels=args.pixels,
        population=args.population,
        max_generations=args.generations,
        # scipy's mutation (the peers'), and the search that spends every query in the region
        # (the one these benchmarks were first measured with; on whole images the two are one).
        strategy="best1",
        search="indexed",
        max_batch=args.max_batch or pipeline_forward_batch(device),
    )
    runners: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor, DEConfig, int], Run]] = {
        "scipy": run_scipy,
        "art": run_art,
        "torchattacks": run_torchattacks,
        OURS_PER_IMAGE: lambda m, x, y, c, s: run_ours(m, x, y, c, s, per_image=True, region=region),
    }

    print(f"{OURS}: {images.shape[0]} images", flush=True)
    ours = run_ours(
        model,
        images,
        labels,
        cfg,
        args.seed,
        per_image=False,
        region=region,
    )
    runs = [ours]
    for name in peers:
        count = min(peer_images.get(name, images.shape[0]), images.shape[0])
        print(f"{name}: {count} images", flush=True)
        runs.append(runners[name](model, images[:count], labels[:count], cfg, args.seed))
        if model.training:
            raise SystemExit(f"{name} left the model in training mode; its numbers are not comparable")

    rows = [summary(run, ours) for run in runs]
    print()
    print(markdown_table(rows))
    for run in runs:
        for note in run.notes:
            print(f"- {run.peer}: {note}")

    record = {
        "command": vars(args) | {"weights": str(args.weights), "data": str(args.data), "out": str(args.out)},
        "config": asdict(cfg),
        "machine": machine(device) | {"scipy": scipy.__version__},
        "rows": rows,
        "runs": [asdict(run) | {"efficiency": run.efficiency} for run in runs],
    }
    write_record(args.out, record)


if __name__ == "__main__":
    main()
