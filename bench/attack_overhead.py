"""What Backdrop's PGD and dual attack cost beyond the model's own passes, and PGD against peers.

    uv run python bench/attack_overhead.py --weights results/models/cifar10_grabcut_at_dual/model.pt \
        --data data/processed/cifar10_grabcut/test.npz --batch 32 --images 140 --repeats 20 \
        --threads 1 --device cpu --out bench/results/attack_overhead.json

Every figure is a ratio of two times measured side by side in one run on one machine: the timed
cases run in turn, round after round (:func:`bench.common.interleaved_medians`), and each time is
the median of ``--repeats`` rounds after one untimed warm-up round. Absolute times are kept in the
JSON record but printed only for a GPU. On a CPU shared with other work, ``--threads 1``: with
more threads than idle cores, torch's threads wait on each other and a pass can take 30x longer.

What it measures, on one timing batch (the first ``--batch`` images of ``--data``, the model in
eval mode, K the attack's steps):

* PGD overhead: the time of ``stages.attacks.pgd.pgd`` with K steps over the time of the
  *reference*, one loop of K forward+backward passes w.r.t. the input on the same batch
  (``summed_cross_entropy(model(x + delta), y)``, ``torch.autograd.grad`` w.r.t. ``delta``):
  what the attack adds to the passes it cannot avoid. Target <= 1.05. The same for
  ``localized_pgd`` (``localization="project"``) on a region (``--region``; default the
  foreground masks of ``--data``, or the centre box when it has none), and, for comparison, for
  torchattacks' and ART's PGD.
* Dual overhead (``stages.attacks.dual.dual_pgd``, called as the pipeline calls it, through
  ``stages.attack_kinds.perturb``): with λ = 0 over the same reference; with λ > 0 (the
  attack's salience model) over K forward+backward passes of the whole objective,
  cross-entropy + λ·foreground_score(salience(x + delta)). Target <= 1.10. The λ > 0 attack over
  the classifier-only reference is printed too, which shows the salience's share.
* Speed against peers: ours' PGD time over torchattacks' ``PGD`` and over ART's
  ``ProjectedGradientDescentPyTorch`` (same model, batch, eps, step, K, one random start).
  Target <= 1.0.
* Agreement with peers: robust accuracy of each PGD on ``--images`` images (with ``--weights``,
  the first ones the model classifies correctly, so robust accuracy = 1 - success rate), attacked
  in batches of ``--batch``, and the difference peer - ours in points with its paired standard
  error sqrt(var(d) / n), d the per-image difference of the 0/1 outcomes. Target: within 1 point.
  The random starts come from different generators, so part of a difference is sampling noise;
  the standard error says how much.

Attack settings are params.yaml's (``--params``, at ``--scale``): ``--attack`` (default
``am_pgd``: l_inf eps 8/255, step 2/255, 10 steps at the reduced and paper scales, random start;
Vaishnavi et al.'s evaluation PGD) and ``--dual-attack`` (default ``dual_linf_f4_b20``: eps_F
4/255, eps_B 20/255, steps 2.5 eps / K, λ = 1, spectral-residual salience; the dual-perturbation
paper's l_inf setting). ``--steps`` overrides K of both (step lengths unchanged). Without
``--weights`` the model is a freshly initialised ``--arch`` of params.yaml at ``--scale``: the
overheads are measured, its accuracies mean nothing. ``--examples PATH`` saves the attacked
images and every attack's output (torch.save), for a closer look at disagreements.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# Run as a script (`python bench/attack_overhead.py`), Python puts bench/ on the path, not the
# repository root that holds the `bench` package (and its path setup) and `stages`.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from bench.common import (  # noqa: E402
    REPO_ROOT,
    correctly_classified,
    interleaved_medians,
    machine,
    markdown_table,
    predict,
    write_record,
)
from stages.attack_kinds import perturb  # noqa: E402
from stages.attack_kinds.dual import salience_model  # noqa: E402
from stages.attacks.pgd import localized_pgd, pgd, summed_cross_entropy  # noqa: E402
from stages.attacks.threats import make_threat  # noqa: E402
from stages.config import AttackSpec, Params  # noqa: E402
from stages.data.processed import ProcessedSplit, load_split  # noqa: E402
from stages.masks.regions import REGIONS, eps_matrix, region_mask  # noqa: E402
from stages.models.checkpoint import load_trained  # noqa: E402
from stages.models.registry import build_model  # noqa: E402
from stages.saliency import SalienceModel, foreground_score  # noqa: E402

PEERS: tuple[str, ...] = ("torchattacks", "art")
PEER_LABELS = {"torchattacks": "torchattacks", "art": "ART"}
DEFAULT_ATTACK = "am_pgd"
DEFAULT_DUAL_ATTACK = "dual_linf_f4_b20"
DEFAULT_ARCH = "lat_cnn"
DEFAULT_SEED = 0
DEFAULT_SALIENCE_WEIGHT = 1.0  # λ of the salience case when the dual attack's own λ is 0 (paper: 1)

PGD_TARGET = 1.05
DUAL_TARGET = 1.10
PEER_SPEED_TARGET = 1.0
AGREEMENT_POINTS = 1.0
# float32 rounding of (x + delta) - x: a bound met exactly may show an excess of a few ulps
BUDGET_TOLERANCE = 1e-5

UNTRAINED = "untrained: not meaningful"

LossOf = Callable[[torch.Tensor], torch.Tensor]  # x_adv -> a scalar summed over the batch


# ------------------------------------------------------------------ setup


@dataclass(frozen=True)
class Batch:
    """Images in [0, 1] (N, C, H, W), labels (N,), and foreground masks (N, 1, H, W) or None."""

    x: torch.Tensor
    y: torch.Tensor
    masks: torch.Tensor | None


def num_classes_of(split: ProcessedSplit) -> int:
    return int(split.meta.get("num_classes", int(split.labels.max()) + 1))


def first_images(split: ProcessedSplit, count: int, device: torch.device) -> Batch:
    if len(split) < count:
        raise SystemExit(f"the split holds {len(split)} images, fewer than the {count} asked for")
    x, y, masks = split.head(count).tensors()
    return Batch(x.to(device), y.to(device), None if masks is None else masks.to(device))


def untrained_model(
    params: Params, arch: str, channels: int, size: int, classes: int, seed: int
) -> nn.Module:
    """A freshly initialised ``arch`` (params.yaml's, at the params' scale), in eval mode.

    Initialised from ``seed`` without touching the caller's global generator state, so a test
    gets the same model by calling this again.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(params.architecture(arch), channels, size, classes)
    return model.eval()


def pgd_spec(params: Params, name: str, steps: int | None) -> AttackSpec:
    spec = params.attack(name)
    if spec.kind != "pgd" or spec.norm != "linf":
        raise SystemExit(f"--attack {name}: the peers run l_inf PGD; pick an attack of kind pgd, norm linf")
    return spec if steps is None else dataclasses.replace(spec, steps=steps)


def dual_spec(params: Params, name: str, steps: int | None) -> AttackSpec:
    spec = params.attack(name)
    if spec.kind != "dual":
        raise SystemExit(f"--dual-attack {name}: not a dual attack (kind {spec.kind})")
    return spec if steps is None else dataclasses.replace(spec, steps=steps)


def generator(seed: int) -> torch.Generator:
    # On the CPU whatever the device: pgd draws there and moves, so the start is device-independent.
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ the attacks and references


def gradient_passes(loss_of: LossOf, x: torch.Tensor, delta: torch.Tensor, steps: int) -> Callable[[], None]:
    """The reference: ``steps`` forward+backward passes of ``loss_of`` w.r.t. the input, nothing
    else. ``delta`` is a fixed point of the ball; a pass costs the same wherever it is taken."""

    def run() -> None:
        d = delta.clone().requires_grad_(True)
        with torch.enable_grad():
            for _ in range(steps):
                torch.autograd.grad(loss_of(x + d), d)

    return run


def classifier_loss(model: nn.Module, y: torch.Tensor) -> LossOf:
    return lambda x_adv: summed_cross_entropy(model(x_adv), y)


def salience_objective(
    model: nn.Module, y: torch.Tensor, salience: SalienceModel, foreground: torch.Tensor, weight: float
) -> LossOf:
    """Eq. 3's objective as dual_pgd ascends it: summed cross-entropy + λ Σ_n FS(x_adv)_n."""

    def loss(x_adv: torch.Tensor) -> torch.Tensor:
        score = foreground_score(salience(x_adv), foreground)
        return summed_cross_entropy(model(x_adv), y) + weight * score.sum()

    return loss


def ours_pgd(model: nn.Module, spec: AttackSpec, seed: int) -> Callable[..., torch.Tensor]:
    """``attack(x, y, gen=None)``: :func:`pgd` with ``spec``'s settings, starting from a fresh
    ``seed`` generator unless ``gen`` is given."""
    assert spec.norm is not None
    threat = make_threat(spec.norm, spec.eps)

    def attack(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        return pgd(
            model,
            x,
            y,
            threat,
            steps=spec.steps,
            step_size=spec.step_size,
            random_start=spec.random_start,
            generator=gen if gen is not None else generator(seed),
        )

    return attack


class TorchattacksPGD:
    """torchattacks' PGD with our settings. Its random start draws from torch's global
    generator, which a call reseeds (unless told not to) so that repeated calls do the same work."""

    def __init__(self, model: nn.Module, spec: AttackSpec, seed: int) -> None:
        import torchattacks

        self.version: str = torchattacks.__version__
        self.seed = seed
        self.attack = torchattacks.PGD(
            model, eps=spec.eps, alpha=spec.step_size, steps=spec.steps, random_start=spec.random_start
        )

    def __call__(self, x: torch.Tensor, y: torch.Tensor, *, reseed: bool = True) -> torch.Tensor:
        if reseed:
            torch.manual_seed(self.seed)
        return self.attack(x, y)


class ArtPGD:
    """ART's PyTorch PGD through its ``PyTorchClassifier``, numpy in and out, as ART is used.
    Its random start draws from numpy's global RandomState, reseeded as in :class:`TorchattacksPGD`."""

    def __init__(
        self, model: nn.Module, spec: AttackSpec, batch: int, shape: Sequence[int], classes: int, seed: int
    ) -> None:
        import art
        from art.attacks.evasion import ProjectedGradientDescentPyTorch
        from art.estimators.classification import PyTorchClassifier

        device = next(model.parameters()).device
        self.version: str = art.__version__
        self.seed = seed
        classifier = PyTorchClassifier(
            model=model,
            loss=nn.CrossEntropyLoss(),
            input_shape=tuple(shape),
            nb_classes=classes,
            clip_values=(0.0, 1.0),
            device_type="gpu" if device.type == "cuda" else "cpu",
        )
        self.attack = ProjectedGradientDescentPyTorch(
            classifier,
            norm=np.inf,
            eps=spec.eps,
            eps_step=spec.step_size,
            max_iter=spec.steps,
            targeted=False,
            num_random_init=1 if spec.random_start else 0,
            batch_size=batch,
            verbose=False,
        )

    def __call__(self, x: np.ndarray, y: np.ndarray, *, reseed: bool = True) -> np.ndarray:
        if reseed:
            np.random.seed(self.seed)
        return self.attack.generate(x, y)


# ------------------------------------------------------------------ checks, statistics, rows


def budget_excess(x: torch.Tensor, adv: torch.Tensor, bound: torch.Tensor | float) -> float:
    """How far ``adv`` leaves the per-pixel box |adv - x| <= bound or the range [0, 1]; 0 inside."""
    adv = adv.to(x.device, x.dtype)
    change = ((adv - x).abs() - bound).clamp_min(0.0).amax()
    below = (-adv).clamp_min(0.0).amax()
    above = (adv - 1.0).clamp_min(0.0).amax()
    return float(torch.stack([change, below, above]).amax())


def paired_difference(peer: Sequence[bool], ours: Sequence[bool]) -> tuple[float, float]:
    """Mean of peer - ours over the same images and its standard error, both in points (x100)."""
    d = np.asarray(peer, dtype=float) - np.asarray(ours, dtype=float)
    se = math.sqrt(d.var(ddof=1) / d.size) if d.size > 1 else 0.0
    return 100.0 * float(d.mean()), 100.0 * se


@dataclass
class Row:
    """One measurement. ``kind``: "overhead" or "speed" (a time ratio ``numerator`` /
    ``denominator`` of timed cases), "accuracy" (a fraction), "agreement" (points, with ``se``).
    ``met`` is None where there is no target, or (untrained model) it means nothing."""

    measurement: str
    kind: str
    value: float
    target: str
    met: bool | None
    se: float | None = None
    numerator: str | None = None
    denominator: str | None = None
    note: str = ""


def ratio_row(
    what: str, kind: str, times: dict[str, float], numerator: str, denominator: str, target: float | None
) -> Row:
    value = times[numerator] / times[denominator]
    return Row(
        measurement=what,
        kind=kind,
        value=value,
        target="-" if target is None else f"<= {target:.2f}",
        met=None if target is None else value <= target,
        numerator=numerator,
        denominator=denominator,
    )


def cells(row: Row) -> list[str]:
    value = f"{row.value:+.1f} ± {row.se:.1f} pt" if row.se is not None else f"{row.value:.3f}"
    met = "-" if row.met is None else ("yes" if row.met else "no")
    return [row.measurement, value, row.target, met]


# ------------------------------------------------------------------ the measurements


@dataclass
class Timing:
    """Median seconds per case, each attack's last output, and the per-pixel l_inf bound each
    output must respect (a scalar or an (N, 1, H, W) eps matrix)."""

    seconds: dict[str, float]
    outputs: dict[str, torch.Tensor]
    bounds: dict[str, torch.Tensor | float]
    dual_reference: str  # the classifier-only reference with the dual attack's K


def time_cases(
    model: nn.Module,
    batch: Batch,
    spec: AttackSpec,
    dual: AttackSpec,
    *,
    region: torch.Tensor,
    foreground: torch.Tensor,
    salience_weight: float,
    peers: dict[str, Any],
    repeats: int,
    seed: int,
) -> Timing:
    x, y, device = batch.x, batch.y, batch.x.device
    assert dual.norm is not None
    salience = salience_model(dual, device)
    start = make_threat("linf", spec.eps).random_start(x, generator(seed)).clamp_(-x, 1.0 - x)
    outputs: dict[str, torch.Tensor] = {}

    def keep(name: str, attack: Callable[[], torch.Tensor]) -> Callable[[], None]:
        # Holding on to the output costs nothing and lets the budget be checked afterwards.
        def run() -> None:
            outputs[name] = attack()

        return run

    def dual_attack(weight: float) -> Callable[[], torch.Tensor]:
        # The pipeline's own path, as an evaluation or AT-Dual training batch runs it
        # (stages.attack_kinds.perturb: foreground from the masks, salience model built per call).
        attack = dataclasses.replace(dual, salience_weight=weight)
        return lambda: perturb(model, x, y, foreground, attack, 0.0, generator(seed))

    ours = ours_pgd(model, spec, seed)
    cases: dict[str, Callable[[], None]] = {
        "reference": gradient_passes(classifier_loss(model, y), x, start, spec.steps),
        "pgd": keep("pgd", lambda: ours(x, y)),
        "pgd_localized": keep(
            "pgd_localized",
            lambda: localized_pgd(
                model,
                x,
                y,
                norm="linf",
                eps=spec.eps,
                region=region,
                localization="project",
                steps=spec.steps,
                step_size=spec.step_size,
                random_start=spec.random_start,
                generator=generator(seed),
            ),
        ),
    }
    dual_reference = "reference"
    if dual.steps != spec.steps:  # e.g. --scale paper: am_pgd 10 steps, the dual attack 20
        dual_reference = "reference_dual"
        cases[dual_reference] = gradient_passes(classifier_loss(model, y), x, start, dual.steps)
    objective = salience_objective(model, y, salience, foreground, salience_weight)
    cases["dual"] = keep("dual", dual_attack(0.0))
    cases["reference_objective"] = gradient_passes(objective, x, start, dual.steps)
    cases["dual_salience"] = keep("dual_salience", dual_attack(salience_weight))
    if "torchattacks" in peers:
        ta = peers["torchattacks"]
        cases["torchattacks"] = keep("torchattacks", lambda: ta(x, y))
    if "art" in peers:
        art_pgd = peers["art"]
        x_np, y_np = x.cpu().numpy(), y.cpu().numpy()
        cases["art"] = keep("art", lambda: torch.from_numpy(art_pgd(x_np, y_np)))

    seconds = interleaved_medians(cases, device, repeats=repeats)
    bounds: dict[str, torch.Tensor | float] = {
        "pgd": spec.eps,
        "pgd_localized": eps_matrix(region, spec.eps),
        "torchattacks": spec.eps,
        "art": spec.eps,
    }
    if dual.norm == "linf":  # an l_2 dual attack's set is no per-pixel box: not checked here
        box = eps_matrix(foreground, dual.eps_foreground) + eps_matrix(~foreground, dual.eps_background)
        bounds["dual"] = bounds["dual_salience"] = box
    bounds = {name: bound for name, bound in bounds.items() if name in outputs}
    return Timing(seconds, outputs, bounds, dual_reference)


def timing_rows(timing: Timing, peers: Sequence[str]) -> list[Row]:
    t, dual_reference = timing.seconds, timing.dual_reference
    rows = [
        ratio_row("PGD overhead (full image)", "overhead", t, "pgd", "reference", PGD_TARGET),
        ratio_row(
            "PGD overhead (localized, project)", "overhead", t, "pgd_localized", "reference", PGD_TARGET
        ),
    ]
    rows += [
        ratio_row(f"{PEER_LABELS[peer]} PGD overhead", "overhead", t, peer, "reference", None)
        for peer in peers
    ]
    rows += [
        ratio_row("dual overhead, λ = 0", "overhead", t, "dual", dual_reference, DUAL_TARGET),
        ratio_row(
            "dual overhead, λ > 0 (vs objective)",
            "overhead",
            t,
            "dual_salience",
            "reference_objective",
            DUAL_TARGET,
        ),
        ratio_row("dual, λ > 0, vs classifier only", "overhead", t, "dual_salience", dual_reference, None),
        ratio_row(
            "objective ÷ classifier fwd+bwd", "overhead", t, "reference_objective", dual_reference, None
        ),
    ]
    rows += [
        ratio_row(f"time ours ÷ {PEER_LABELS[peer]} (PGD)", "speed", t, "pgd", peer, PEER_SPEED_TARGET)
        for peer in peers
    ]
    return rows


def robust_outcomes(
    model: nn.Module, batch: Batch, size: int, attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> tuple[list[bool], torch.Tensor]:
    """Per image, whether the model still classifies the attacked image right; the images."""
    adversarial = torch.cat(
        [
            attack(x, y).to(batch.x.device)
            for x, y in zip(batch.x.split(size), batch.y.split(size), strict=True)
        ]
    )
    return (predict(model, adversarial) == batch.y).cpu().tolist(), adversarial


@dataclass
class Agreement:
    rows: list[Row]
    correct: dict[str, list[bool]]  # per attack, per image: still classified right
    adversarial: dict[str, torch.Tensor]


def agreement(
    model: nn.Module,
    batch: Batch,
    size: int,
    spec: AttackSpec,
    peers: dict[str, Any],
    seed: int,
    trained: bool,
) -> Agreement:
    """Robust accuracy of ours and each peer on the same images, and the peers' differences."""
    ours = ours_pgd(model, spec, seed)
    gen = generator(seed)  # one stream across the batches, as an evaluation draws it
    results = {"pgd": robust_outcomes(model, batch, size, lambda x, y: ours(x, y, gen))}
    if "torchattacks" in peers:
        ta = peers["torchattacks"]
        torch.manual_seed(seed)
        results["torchattacks"] = robust_outcomes(model, batch, size, lambda x, y: ta(x, y, reseed=False))
    if "art" in peers:
        art_pgd = peers["art"]
        np.random.seed(seed)
        # ART splits into batches itself (batch_size = --batch): hand it every image at once.
        adv = torch.from_numpy(art_pgd(batch.x.cpu().numpy(), batch.y.cpu().numpy(), reseed=False))
        adv = adv.to(batch.x.device)
        results["art"] = ((predict(model, adv) == batch.y).cpu().tolist(), adv)

    correct = {name: outcome for name, (outcome, _) in results.items()}
    n = batch.x.shape[0]
    note = "" if trained else UNTRAINED
    rows = [
        Row(f"robust accuracy, {name} ({n} images)", "accuracy", sum(c) / n, "-", None, note=note)
        for name, c in correct.items()
    ]
    for name in peers:
        diff, se = paired_difference(correct[name], correct["pgd"])
        rows.append(
            Row(
                f"robust accuracy {PEER_LABELS[name]} − ours",
                "agreement",
                diff,
                f"within ±{AGREEMENT_POINTS:.0f} pt",
                abs(diff) <= AGREEMENT_POINTS if trained else None,
                se=se,
                note=note,
            )
        )
    return Agreement(rows, correct, {name: adv for name, (_, adv) in results.items()})


# ------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--weights", type=Path, help="a trained model.pt; without it an untrained --arch")
    p.add_argument("--data", type=Path, required=True, help="a processed split (.npz)")
    p.add_argument(
        "--arch", default=DEFAULT_ARCH, help="params.yaml architecture when there are no --weights"
    )
    p.add_argument("--params", type=Path, default=REPO_ROOT / "params.yaml")
    p.add_argument("--scale", help="params.yaml scale of the attacks' steps and of --arch (default: its own)")
    p.add_argument("--attack", default=DEFAULT_ATTACK, help="params.yaml l_inf PGD attack")
    p.add_argument("--dual-attack", default=DEFAULT_DUAL_ATTACK, help="params.yaml dual attack")
    p.add_argument("--steps", type=int, help="K of every attack (default: each attack's own)")
    p.add_argument(
        "--region",
        choices=[r for r in REGIONS if r != "full"],
        help="the localized PGD's region (default: foreground when the data has masks, else box)",
    )
    p.add_argument("--batch", type=int, default=32, help="the timing batch, and the accuracy runs' batch")
    p.add_argument("--images", type=int, default=100, help="images of the robust-accuracy agreement")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (after one warm-up round)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's); 1 on a shared machine")
    p.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated subset of {','.join(PEERS)}")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--out", type=Path, help="write the record here (JSON)")
    p.add_argument("--examples", type=Path, help="save the attacked images and outputs here (torch.save)")
    args = p.parse_args(argv)
    for name in ("batch", "images", "repeats", "steps", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SystemExit(f"--{name} must be >= 1, got {value}")
    args.peers = [name for name in args.peers.split(",") if name]
    unknown = sorted(set(args.peers) - set(PEERS))
    if unknown:
        raise SystemExit(f"unknown peers {unknown}; valid: {', '.join(PEERS)}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the measurements, print the table and notes, write ``--out``; returns the record."""
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    params = Params.load(args.params, args.scale)
    spec = pgd_spec(params, args.attack, args.steps)
    dual = dual_spec(params, args.dual_attack, args.steps)
    weight = dual.salience_weight or DEFAULT_SALIENCE_WEIGHT
    notes: list[str] = []
    if not dual.salience_weight:
        notes.append(f"{dual.name} has λ = 0; the salience case uses λ = {weight}")
    if args.steps is not None:
        notes.append(f"--steps {args.steps}: K of both attacks; their step lengths are params.yaml's")

    split = load_split(args.data)
    timing_batch = first_images(split, args.batch, device)
    _, channels, height, width = timing_batch.x.shape
    classes = num_classes_of(split)
    trained = args.weights is not None
    if trained:
        model = load_trained(args.weights, device)
        accuracy_set = Batch(*correctly_classified(model, args.data, args.images, device), masks=None)
        model_name = str(args.weights)
    else:
        model = untrained_model(params, args.arch, channels, height, classes, args.seed).to(device)
        accuracy_set = first_images(split, args.images, device)
        model_name = f"untrained {args.arch} (scale {params.scale}, seed {args.seed})"
        notes.append(f"no --weights: {model_name}; overheads only, robust accuracies {UNTRAINED}")
    del split

    masks = timing_batch.masks
    region_name = args.region or ("foreground" if masks is not None else "box")
    shape = timing_batch.x.shape
    region = region_mask(
        region_name, shape, foreground=masks, box_fraction=params.box_fraction, device=device
    )
    if masks is None:
        # The dual attack needs some F(x); the centre box costs the same as an object mask.
        masks = region_mask("box", shape, box_fraction=params.box_fraction, device=device)
        notes.append(
            f"{args.data} has no foreground masks: the localized PGD attacks region {region_name!r} and "
            f"the dual attack takes the centre box (side fraction {params.box_fraction}) as foreground"
        )

    peers: dict[str, Any] = {}
    if "torchattacks" in args.peers:
        peers["torchattacks"] = TorchattacksPGD(model, spec, args.seed)
        notes.append(
            f"torchattacks {peers['torchattacks'].version}: PGD(eps, alpha=step, steps, random_start); mean "
            "cross-entropy (the sign step is the same as with our sum); start from torch's global generator"
        )
    if "art" in args.peers:
        peers["art"] = ArtPGD(model, spec, args.batch, (channels, height, width), classes, args.seed)
        notes.append(
            f"adversarial-robustness-toolbox {peers['art'].version}: ProjectedGradientDescentPyTorch "
            "through PyTorchClassifier, numpy in and out; its loss_gradient back-propagates into the weights "
            "too, and generate() ends with a success check (two more forward passes); start from numpy's "
            "global RandomState"
        )
    peer_names = [name for name in PEERS if name in peers]

    print(
        f"timing: {args.batch} images, K = {spec.steps} (dual: {dual.steps}), {args.repeats} rounds",
        flush=True,
    )
    timing = time_cases(
        model,
        timing_batch,
        spec,
        dual,
        region=region,
        foreground=masks,
        salience_weight=weight,
        peers=peers,
        repeats=args.repeats,
        seed=args.seed,
    )
    print(f"robust accuracy: {accuracy_set.x.shape[0]} images in batches of {args.batch}", flush=True)
    agreed = agreement(model, accuracy_set, args.batch, spec, peers, args.seed, trained)
    rows = timing_rows(timing, peer_names) + agreed.rows

    excess = {
        name: budget_excess(timing_batch.x, timing.outputs[name], b) for name, b in timing.bounds.items()
    }
    excess |= {
        f"{name} (accuracy set)": budget_excess(accuracy_set.x, adv, spec.eps)
        for name, adv in agreed.adversarial.items()
    }
    broken = sorted(name for name, value in excess.items() if value > BUDGET_TOLERANCE)
    if broken:
        notes.append(f"OUTSIDE THEIR BUDGET (by more than {BUDGET_TOLERANCE}): {', '.join(broken)}")

    print()
    print(markdown_table(["measurement", "value", "target", "met"], [cells(row) for row in rows]))
    if device.type == "cuda":
        print()
        print(markdown_table(["case", "median s"], [[k, f"{v:.4f}"] for k, v in timing.seconds.items()]))
    for note in notes:
        print(f"- {note}")

    record: dict[str, Any] = {
        "command": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine(device),
        "settings": {
            "model": model_name,
            "trained": trained,
            "data": str(args.data),
            "image_shape": [channels, height, width],
            "num_classes": classes,
            "scale": params.scale,
            "timing_batch": args.batch,
            "accuracy_images": int(accuracy_set.x.shape[0]),
            "accuracy_images_are": "first correctly classified" if trained else "first of the split",
            "repeats": args.repeats,
            "seed": args.seed,
            "pgd": dataclasses.asdict(spec),
            "localized_region": region_name,
            "dual": dataclasses.asdict(dual),
            "dual_foreground": "masks" if timing_batch.masks is not None else "centre box",
            "salience_weight": weight,
        },
        "rows": [dataclasses.asdict(row) for row in rows],
        "median_seconds": timing.seconds,  # across runs, compare only GPU times; on a CPU the ratios
        "budget_excess": excess,
        "robust_correct": agreed.correct,
        "notes": notes,
    }
    write_record(args.out, record)
    if args.examples is not None:
        args.examples.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "eps": spec.eps,
                "timing": {
                    "x": timing_batch.x.cpu(),
                    "y": timing_batch.y.cpu(),
                    "outputs": {k: v.cpu() for k, v in timing.outputs.items()},
                    "bounds": {
                        k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in timing.bounds.items()
                    },
                },
                "accuracy": {
                    "x": accuracy_set.x.cpu(),
                    "y": accuracy_set.y.cpu(),
                    "adversarial": {k: v.cpu() for k, v in agreed.adversarial.items()},
                },
            },
            args.examples,
        )
        print(f"wrote {args.examples}")
    return record


if __name__ == "__main__":
    main()
