"""A second, independent check of every claim record's outcome, from the per-image evaluations.

    uv run python bench/recompute_claims.py --claims results/reduced/claims \\
        --evals results/reduced/evals --datasets results/reduced/datasets --out /tmp/recompute.json

The claim stages (stages/claims/) turn evaluation records into verdicts; this script does it again
without their code: it imports nothing from ``stages``. It reads the experimental design from
params.yaml (``tables``, ``claims``, ``attacks``), derives each leaf claim's per-image values from
``<evals>/<model>/<attack>.json`` itself, and recomputes every interval from the published
formulas, written here:

- one rate: Wilson's score interval;
- two independent rates: Newcombe's hybrid score interval (1998, method 10, unpaired);
- two rates on the same images: Newcombe's paired hybrid score interval (1998, method 10: the
  margins' Wilson limits combined with phi, whose numerator ad - bc becomes max(ad - bc - n/2, 0)
  when positive; phi = 0 when a margin is empty);
- a mean of per-image values, and the relative reduction 100 (mean(base) - mean(new)) / mean(base):
  a paired BCa bootstrap (9,999 resamples, jackknife acceleration, bias correction), with
  Student's t interval where BCa is undefined or leaves a side on the estimate; constant values
  have no interval and are decided only if an exact sign test (2^(1-n)) is below alpha.

The rule (above / below / within a bound) decides only when the whole interval lies on one side;
its p-value is the smallest level at which the interval decides (bisection over the level), and
Holm's step-down over each family makes a leaf decided at alpha but not after the adjustment
inconclusive. Degenerate and not-tested leaves are checked for the reason's category only (the
models' health is recomputed from their clean evaluations). Composite claims are recomputed from
their parts.

The bootstrap uses its own resamples (``--seed``), so a leaf whose interval lies within the
bootstrap's Monte-Carlo error of its boundary may differ from the record: such leaves are listed
apart ("within Monte-Carlo error", with the distance) and do not fail the check. Exit status 1
when any other leaf outcome (before or after Holm) disagrees, or a leaf cannot be recomputed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import special
from scipy import stats as sps

REPO_ROOT = Path(__file__).resolve().parent.parent
PAPERS = ("lat", "attention_masks", "dual_perturbation", "pixel_space")
HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
DEGENERATE, NOT_TESTED = "degenerate", "not tested"
DECIDED = (HOLDS, FAILS)
RESAMPLES = 9999
P_FLOOR = 1e-12
# A leaf is "within Monte-Carlo error" when its interval's distance to the boundary is at most this
# many standard deviations of that interval end over independent bootstrap runs.
MC_SDS = 3.0

# The record's method text -> ours.
METHOD_PREFIXES = {
    "Wilson": "wilson",
    "Newcombe hybrid score interval, unpaired": "newcombe-unpaired",
    "Newcombe paired": "newcombe-paired",
    "BCa bootstrap over images, widened": "bca+t",
    "BCa": "bca",
    "Student t": "t",
    "every image gives the same value": "constant",
    "no interval": "none",
}


def record_method(text: str | None) -> str:
    for prefix, name in METHOD_PREFIXES.items():
        if text and text.startswith(prefix):
            return name
    return "?"


class RecomputeError(Exception):
    """A leaf whose values cannot be derived (a file or field missing, images not paired)."""


# --- statistics, from the formulas ---------------------------------------------------------------


def z_of(alpha: float) -> float:
    return float(special.ndtri(1.0 - alpha / 2.0))


def wilson_limits(k: int, n: int, alpha: float) -> tuple[float, float]:
    """Wilson's score interval for k successes in n."""
    z = z_of(alpha)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(centre - half, 0.0), min(centre + half, 1.0)


def newcombe_unpaired_limits(k1: int, n1: int, k2: int, n2: int, alpha: float) -> tuple[float, float]:
    """p1 - p2 of independent samples: Newcombe's hybrid score interval (1998, method 10)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_limits(k1, n1, alpha)
    l2, u2 = wilson_limits(k2, n2, alpha)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def newcombe_paired_limits(a: int, b: int, c: int, d: int, alpha: float) -> tuple[float, float]:
    """p1 - p2 on paired data (a: both, b: first only, c: second only, d: neither): Newcombe's
    hybrid score interval (1998, method 10)."""
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_limits(a + b, n, alpha)
    l2, u2 = wilson_limits(a + c, n, alpha)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    if margins == 0:
        phi = 0.0
    else:
        num = a * d - b * c
        if num > 0:
            num = max(num - n / 2.0, 0.0)
        phi = num / math.sqrt(margins)
    est = (b - c) / n
    dl1, du1, dl2, du2 = p1 - l1, u1 - p1, p2 - l2, u2 - p2
    low = est - math.sqrt(max(dl1**2 - 2 * phi * dl1 * du2 + du2**2, 0.0))
    high = est + math.sqrt(max(dl2**2 - 2 * phi * dl2 * du1 + du1**2, 0.0))
    return max(low, -1.0), min(high, 1.0)


def t_limits(value: float, sd: float, n: int, alpha: float) -> tuple[float, float]:
    if n < 2 or sd == 0:
        return value, value
    half = float(sps.t.ppf(1 - alpha / 2, n - 1)) * sd / math.sqrt(n)
    return value - half, value + half


# Below this many images the design widens a bootstrap interval to Student's t where t is wider.
SMALL_SAMPLE_BOOTSTRAP = 30


class Bootstrap:
    """Paired bootstrap of a statistic of sample means, ``g(mean_1, ..., mean_k)``: the resampled
    statistics, the bias correction z0 (mid-rank of the estimate among them) and the jackknife
    acceleration; ``limits(alpha)`` the BCa interval (NaN where undefined)."""

    def __init__(
        self, samples: Sequence[np.ndarray], g: Callable[..., np.ndarray], seed: int, resamples: int
    ) -> None:
        n = len(samples[0])
        self.theta = float(g(*[np.array([s.mean()]) for s in samples])[0])
        rng = np.random.default_rng(seed)
        boot = np.empty(resamples)
        chunk = max(1, min(resamples, 2_000_000 // max(n, 1)))
        for start in range(0, resamples, chunk):
            m = min(chunk, resamples - start)
            idx = rng.integers(0, n, size=(m, n))
            boot[start : start + m] = g(*[s[idx].mean(axis=1) for s in samples])
        self.boot = boot
        with np.errstate(all="ignore"):
            rank = (np.sum(boot < self.theta) + np.sum(boot <= self.theta)) / (2.0 * resamples)
            self.z0 = float(special.ndtri(rank))
            jack = g(*[(s.sum() - s) / (n - 1) for s in samples])
            dev = jack.mean() - jack
            self.a = float(np.sum(dev**3) / (6.0 * np.sum(dev**2) ** 1.5))

    def limits(self, alpha: float) -> tuple[float, float]:
        if not (math.isfinite(self.z0) and math.isfinite(self.a)) or np.isnan(self.boot).any():
            return math.nan, math.nan
        out = []
        for q in (alpha / 2, 1 - alpha / 2):
            zq = float(special.ndtri(q))
            level = float(special.ndtr(self.z0 + (self.z0 + zq) / (1 - self.a * (self.z0 + zq))))
            if not math.isfinite(level):
                return math.nan, math.nan
            out.append(float(np.percentile(self.boot, 100.0 * level)))
        return out[0], out[1]


Interval = Callable[[float], tuple[float, float, str]]  # level -> (low, high, method)


@dataclass
class Est:
    """An effect with its interval at the claims' level; ``at`` recomputes it at another level,
    ``replicate(seed, level)`` with an independent bootstrap (bootstrap effects only)."""

    value: float
    n: int
    method: str
    low: float
    high: float
    at: Interval
    replicate: Callable[[int, float], tuple[float, float]] | None = None


def _estimate(value: float, n: int, at: Interval, alpha: float, replicate: Any = None) -> Est:
    low, high, method = at(alpha)
    return Est(value, n, method, low, high, at, replicate)


def _scaled(at: Interval, factor: float) -> Interval:
    def scaled(level: float) -> tuple[float, float, str]:
        low, high, method = at(level)
        low, high = sorted((low * factor, high * factor))
        return low, high, method

    return scaled


def _clamp(value: float, low: float, high: float) -> tuple[float, float]:
    return min(low, value), max(high, value)


def est_wilson(k: int, n: int, alpha: float, factor: float = 100.0) -> Est:
    value = k / n

    def at(level: float) -> tuple[float, float, str]:
        return (*_clamp(value, *wilson_limits(k, n, level)), "wilson")

    return _estimate(value * factor, n, _scaled(at, factor), alpha)


def est_rates_unpaired(k1: int, n1: int, k2: int, n2: int, alpha: float, factor: float = 100.0) -> Est:
    value = k1 / n1 - k2 / n2

    def at(level: float) -> tuple[float, float, str]:
        return (*_clamp(value, *newcombe_unpaired_limits(k1, n1, k2, n2, level)), "newcombe-unpaired")

    return _estimate(value * factor, min(n1, n2), _scaled(at, factor), alpha)


def est_rates_paired(x: np.ndarray, y: np.ndarray, alpha: float, factor: float = 100.0) -> Est:
    """mean(x) - mean(y) for 0/1 outcomes of the same images."""
    x, y = np.asarray(x, dtype=int), np.asarray(y, dtype=int)
    if x.shape != y.shape or not (np.isin(x, (0, 1)).all() and np.isin(y, (0, 1)).all()):
        raise RecomputeError("paired rates need two 0/1 arrays of one length")
    a = int(np.sum((x == 1) & (y == 1)))
    b = int(np.sum((x == 1) & (y == 0)))
    c = int(np.sum((x == 0) & (y == 1)))
    d = int(np.sum((x == 0) & (y == 0)))
    n = a + b + c + d
    value = (b - c) / n

    def at(level: float) -> tuple[float, float, str]:
        return (*_clamp(value, *newcombe_paired_limits(a, b, c, d, level)), "newcombe-paired")

    return _estimate(value * factor, n, _scaled(at, factor), alpha)


@dataclass(frozen=True)
class BootSettings:
    seed: int = 1
    resamples: int = RESAMPLES


def _boot_estimate(
    samples: Sequence[np.ndarray],
    g: Callable[..., np.ndarray],
    value: float,
    sd: float,
    alpha: float,
    boot: BootSettings,
) -> Est:
    n = len(samples[0])
    if all(np.all(s == s[0]) for s in samples):
        return Est(value, n, "constant", value, value, lambda level: (value, value, "constant"))
    main = Bootstrap(samples, g, boot.seed, boot.resamples)

    def interval(b: Bootstrap, level: float) -> tuple[float, float, str]:
        low, high = b.limits(level)
        method = "bca"
        if not (math.isfinite(low) and math.isfinite(high)) or low >= value or high <= value:
            low, high = t_limits(value, sd, n, level)
            method = "t"
        elif n < SMALL_SAMPLE_BOOTSTRAP:
            # Few images: the union with Student's t, where t is wider (bootstrap under-covers).
            t_low, t_high = t_limits(value, sd, n, level)
            if t_low < low or t_high > high:
                low, high, method = min(low, t_low), max(high, t_high), "bca+t"
        return (*_clamp(value, low, high), method)

    def replicate(seed: int, level: float) -> tuple[float, float]:
        return interval(Bootstrap(samples, g, seed, boot.resamples), level)[:2]

    return _estimate(value, n, lambda level: interval(main, level), alpha, replicate)


def _mean_g(m: np.ndarray) -> np.ndarray:
    return m


def est_mean(values: np.ndarray, alpha: float, boot: BootSettings) -> Est:
    """The mean of per-image values, paired BCa over images."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or len(values) == 0:
        raise RecomputeError("a mean needs a non-empty 1-D array")
    sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return _boot_estimate((values,), _mean_g, float(values.mean()), sd, alpha, boot)


def est_mean_difference(x: np.ndarray, y: np.ndarray, alpha: float, boot: BootSettings) -> Est:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise RecomputeError(f"paired values of different lengths: {x.shape} and {y.shape}")
    return est_mean(x - y, alpha, boot)


def _ratio_g(mb: np.ndarray, mn: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return 100.0 * (mb - mn) / np.where(mb > 0, mb, np.nan)


def est_relative_reduction(
    base: np.ndarray, new: np.ndarray, alpha: float, boot: BootSettings, sign: float = 1.0
) -> Est:
    """sign x 100 (mean(base) - mean(new)) / mean(base), paired BCa on the ratio; the t fallback's
    per-image sd is the delta method's (each image's influence on the ratio)."""
    base, new = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    if base.shape != new.shape or base.ndim != 1 or len(base) == 0:
        raise RecomputeError("a relative reduction needs two equal, non-empty 1-D arrays")
    mb, mn = float(base.mean()), float(new.mean())
    if mb <= 0:
        raise RecomputeError("a relative reduction needs a positive base mean")
    value = 100.0 * (mb - mn) / mb
    influence = 100.0 * (-(new - mn) / mb + mn * (base - mb) / mb**2)
    sd = float(influence.std(ddof=1)) if len(base) > 1 else 0.0
    est = _boot_estimate((base, new), _ratio_g, value, sd, alpha, boot)
    if sign > 0:
        return est
    rep = est.replicate
    return Est(
        -est.value,
        est.n,
        est.method,
        -est.high,
        -est.low,
        _scaled(est.at, -1.0),
        None if rep is None else (lambda seed, level: tuple(sorted(-v for v in rep(seed, level)))),  # type: ignore[misc]
    )


def est_none(value: float, n: int) -> Est:
    return Est(value, n, "none", value, value, lambda level: (value, value, "none"))


# --- the outcome rule, its p-value and Holm ------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    kind: str  # above | below | within
    bound: float

    def __call__(self, low: float, high: float) -> str:
        b = self.bound
        if self.kind == "above":
            return HOLDS if low > b else FAILS if high < b else INCONCLUSIVE
        if self.kind == "below":
            return HOLDS if high < b else FAILS if low > b else INCONCLUSIVE
        if -b <= low and high <= b:
            return HOLDS
        return FAILS if low > b or high < -b else INCONCLUSIVE

    def boundaries(self) -> tuple[float, ...]:
        return (-self.bound, self.bound) if self.kind == "within" else (self.bound,)

    def distance(self, low: float, high: float) -> float:
        """How far the interval's nearest end lies from the nearest boundary."""
        return min(abs(e - b) for e in (low, high) for b in self.boundaries())

    def text(self) -> str:
        return f"within ±{self.bound:g}" if self.kind == "within" else f"{self.kind} {self.bound:g}"


def sign_test_p(n: int) -> float:
    return min(1.0, 2.0 ** (1 - n))


def rule_p(est: Est, rule: Rule, resamples: int) -> float | None:
    """The smallest level at which the rule's interval decides."""
    if est.method == "none":
        return None
    if est.method == "constant":
        return sign_test_p(est.n) if rule(est.value, est.value) in DECIDED else 1.0
    floor = 2.0 / (resamples + 1) if est.method in ("bca", "bca+t") else P_FLOOR

    def decided(level: float) -> bool:
        low, high, _ = est.at(level)
        return rule(low, high) in DECIDED

    top = 1.0 - 1e-9
    if not decided(top):
        return 1.0
    if decided(floor):
        return floor
    lo, hi = math.log(floor), math.log(top)
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if decided(math.exp(mid)) else (mid, hi)
    return float(math.exp(hi))


def holm_adjust(p: Sequence[float]) -> tuple[list[float], list[int]]:
    """Holm's step-down adjusted p-values in input order, and each one's binding index (the test
    whose step sets its adjusted value)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [0.0] * m
    binding = [0] * m
    best, best_i = 0.0, -1
    for rank, i in enumerate(order):
        step = min(1.0, (m - rank) * p[i])
        if step > best or best_i < 0:
            best, best_i = step, i
        adjusted[i], binding[i] = best, best_i
    return adjusted, binding


def combine(outcomes: Sequence[str]) -> str:
    tested = [o for o in outcomes if o != NOT_TESTED]
    if not tested:
        return NOT_TESTED
    if DEGENERATE in tested:
        return DEGENERATE
    if FAILS in tested:
        return FAILS
    if all(o == HOLDS for o in tested):
        return HOLDS
    return INCONCLUSIVE


# --- reading the inputs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    alpha: float = 0.05
    comparable_margin: float = 5.0
    no_cost_margin: float = 2.0
    moderate_lambda_margin: float = 2.0
    confidence_margin: float = 10.0


class Evals:
    """``<root>/<model>/<attack>.json``, read once each."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._cache: dict[tuple[str, str], dict[str, Any] | None] = {}

    def key(self, model: str, attack: str) -> str:
        return f"{model}/{attack}.json"

    def find(self, model: str, attack: str) -> dict[str, Any] | None:
        if (model, attack) not in self._cache:
            path = self.root / model / f"{attack}.json"
            self._cache[(model, attack)] = (
                json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
            )
        return self._cache[(model, attack)]

    def get(self, model: str, attack: str) -> dict[str, Any]:
        record = self.find(model, attack)
        if record is None:
            raise RecomputeError(f"{self.root / model / attack}.json missing")
        return record

    def n(self, model: str, attack: str) -> int:
        return int(self.get(model, attack)["samples"])

    def per_image(self, model: str, attack: str) -> dict[str, Any] | None:
        return self.get(model, attack).get("per_image")

    def values(self, model: str, attack: str, key: str) -> np.ndarray | None:
        """``per_image.<key>`` (None for an evaluation without per-image data)."""
        per_image = self.per_image(model, attack)
        if per_image is None:
            return None
        values = per_image.get(key)
        n = self.n(model, attack)
        if values is None or len(values) != n:
            raise RecomputeError(f"{self.key(model, attack)}: per_image.{key} missing or not {n} long")
        return np.asarray(values, dtype=float)

    def pair(self, x: tuple[str, str], y: tuple[str, str]) -> bool:
        """Whether two evaluations compare paired; raise where they cannot be compared."""
        if self.n(*x) != self.n(*y):
            raise RecomputeError(f"{self.key(*x)} and {self.key(*y)} hold different sample counts")
        px, py = self.per_image(*x), self.per_image(*y)
        if (px is None) != (py is None):
            raise RecomputeError(f"{self.key(*x)} and {self.key(*y)}: only one keeps per-image data")
        if px is not None and px.get("ids_sha256") != py.get("ids_sha256"):  # type: ignore[union-attr]
            raise RecomputeError(f"{self.key(*x)} and {self.key(*y)} are on different images")
        return px is not None

    def correct_count(self, model: str, attack: str) -> int:
        correct = self.values(model, attack, "correct")
        if correct is not None:
            return int(correct.sum())
        record = self.get(model, attack)
        return int(round(float(record["accuracy"]) * int(record["samples"])))

    def accuracy_difference(self, x: tuple[str, str], y: tuple[str, str], alpha: float) -> Est:
        """accuracy(x) - accuracy(y) in points."""
        if self.pair(x, y):
            return est_rates_paired(
                self.values(*x, "correct"),  # type: ignore[arg-type]
                self.values(*y, "correct"),  # type: ignore[arg-type]
                alpha,
            )
        return est_rates_unpaired(
            self.correct_count(*x), self.n(*x), self.correct_count(*y), self.n(*y), alpha
        )


@dataclass(frozen=True)
class Facts:
    """A dataset's class shares by label (None when the file does not map names to labels), its
    majority share and mean foreground fraction."""

    shares: tuple[float, ...] | None
    majority: float | None
    classes: int
    foreground_fraction: float | None


def read_facts(datasets: Path, name: str) -> Facts:
    path = Path(datasets) / f"{name}.json"
    if not path.is_file():
        raise RecomputeError(f"{path} missing")
    data = json.loads(path.read_text(encoding="utf-8"))
    summary = data["test_summary"]
    counts = {str(k): int(v) for k, v in summary["per_class"].items()}
    total = sum(counts.values())
    classes = data.get("classes")
    if isinstance(classes, list) and classes:
        names = {int(c["label"]): str(c["name"]) for c in classes}
    elif all(k.isdigit() for k in counts):
        names = {int(k): k for k in counts}
    else:
        names = None
    shares = None
    if names and total:
        shares = tuple(counts.get(names.get(label, ""), 0) / total for label in range(max(names) + 1))
    return Facts(
        shares,
        max(counts.values()) / total if total else None,
        len(counts),
        summary.get("mean_foreground_fraction"),
    )


def health_tests(evals: Evals, model: str, attack: str, facts: Facts, alpha: float) -> tuple[str, ...]:
    """The two degeneracy tests of a model's clean evaluation: ``constant`` (the modal predicted
    class's Wilson lower bound above both 1/2 and that class's share of the test split) and
    ``majority`` (clean accuracy's Wilson lower bound at or below the majority share)."""
    record = evals.get(model, attack)
    n = int(record["samples"])
    majority = facts.majority if facts.majority is not None else 1.0 / facts.classes
    tests = []
    predictions = evals.values(model, attack, "prediction")
    if predictions is not None and len(predictions):
        labels, counts = np.unique(predictions.astype(int), return_counts=True)
        modal, count = int(labels[np.argmax(counts)]), int(counts.max())
        share = facts.shares[modal] if facts.shares is not None and modal < len(facts.shares) else majority
        if wilson_limits(count, n, alpha)[0] > max(0.5, share):
            tests.append("constant")
    if wilson_limits(evals.correct_count(model, attack), n, alpha)[0] <= majority:
        tests.append("majority")
    return tuple(tests)


def resolve(value: Any, scale: str) -> Any:
    if isinstance(value, dict) and scale in value and set(value) <= {"tiny", "reduced", "paper"}:
        return value[scale]
    return value


# --- the design: which leaves, on which values, under which rule -----------------------------------


@dataclass
class Item:
    """One claim as this script derives it: a leaf (``rule``, ``est``), a composite (``parts``)
    or a claim not tested (``constraint``)."""

    claim_id: str
    kind: str  # leaf | composite | not_tested
    family: str
    rule: Rule | None = None
    est: Est | None = None
    models: tuple[str, ...] = ()
    precondition: str | None = None  # why the leaf cannot be scored although its models are sound
    parts: tuple[str, ...] = ()
    constraint: str | None = None
    sources: tuple[str, ...] = ()
    error: str | None = None
    # results
    unadjusted: str | None = None
    outcome: str | None = None
    p: float | None = None
    holm_p: float | None = None
    holm_level: float | None = None
    holm_binding: str | None = None
    degenerate_models: tuple[str, ...] = ()


@dataclass
class Design:
    paper: str
    settings: Settings
    evals: Evals
    boot: BootSettings
    items: list[Item] = field(default_factory=list)
    health: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def alpha(self) -> float:
        return self.settings.alpha

    def check(self, model: str, attack: str, facts: Facts) -> None:
        self.health[model] = health_tests(self.evals, model, attack, facts, self.alpha)

    def leaf(
        self,
        claim_id: str,
        rule: Rule,
        compute: Callable[[], Est],
        models: Sequence[str],
        sources: Sequence[tuple[str, str]],
        ours: bool = False,
        precondition: str | None = None,
    ) -> Item:
        item = Item(
            claim_id,
            "leaf",
            "ours" if ours else self.paper,
            rule=rule,
            models=tuple(dict.fromkeys(models)),
            precondition=precondition,
            sources=tuple(self.evals.key(*s) for s in sources),
        )
        try:
            item.est = compute()
        except RecomputeError as exc:
            item.error = str(exc)
        self.items.append(item)
        self.decide(item)
        return item

    def decide(self, item: Item) -> None:
        """The outcome at the claims' own level (before Holm)."""
        degenerate = tuple(m for m in item.models if self.health.get(m))
        item.degenerate_models = degenerate
        if degenerate:
            item.unadjusted = DEGENERATE
        elif item.est is None:
            item.unadjusted = None
        elif item.est.method == "none":
            item.unadjusted = INCONCLUSIVE
        else:
            outcome = item.rule(item.est.low, item.est.high)  # type: ignore[misc]
            if item.est.method == "constant" and outcome in DECIDED and sign_test_p(item.est.n) >= self.alpha:
                outcome = INCONCLUSIVE
            item.unadjusted = outcome
        if item.precondition and item.unadjusted not in (DEGENERATE, None):
            item.unadjusted = DEGENERATE

    def composite(self, claim_id: str, parts: Sequence[Item], ours: bool = False) -> Item:
        item = Item(
            claim_id, "composite", "ours" if ours else self.paper, parts=tuple(p.claim_id for p in parts)
        )
        item.unadjusted = combine([p.unadjusted or INCONCLUSIVE for p in parts])
        self.items.append(item)
        return item

    def not_tested(self, claim_id: str, constraint: str, ours: bool = False) -> Item:
        item = Item(claim_id, "not_tested", "ours" if ours else self.paper, constraint=constraint)
        item.unadjusted = NOT_TESTED
        self.items.append(item)
        return item

    def finish(self) -> None:
        """Rule p-values, Holm per family, the adjusted outcomes, the composites again."""
        families: dict[str, list[Item]] = {}
        for item in self.items:
            if item.kind != "leaf" or item.est is None:
                continue
            if item.unadjusted not in (*DECIDED, INCONCLUSIVE) or item.est.method == "none":
                continue
            item.p = rule_p(item.est, item.rule, self.boot.resamples)  # type: ignore[arg-type]
            if item.p is not None:
                families.setdefault(item.family, []).append(item)
        for members in families.values():
            ps = [m.p for m in members]
            adjusted, binding = holm_adjust(ps)  # type: ignore[arg-type]
            order = sorted(range(len(members)), key=lambda i: ps[i])  # type: ignore[arg-type, return-value]
            for rank, i in enumerate(order):
                members[i].holm_level = self.alpha / (len(members) - rank)
            for i, member in enumerate(members):
                member.holm_p = adjusted[i]
                member.holm_binding = members[binding[i]].claim_id
        by_id: dict[str, Item] = {}
        for item in self.items:
            if item.kind == "composite":
                item.unadjusted = combine([by_id[p].unadjusted or INCONCLUSIVE for p in item.parts])
                item.outcome = combine([by_id[p].outcome or INCONCLUSIVE for p in item.parts])
            elif item.unadjusted in DECIDED and item.holm_p is not None and item.holm_p >= self.alpha:
                item.outcome = INCONCLUSIVE
            else:
                item.outcome = item.unadjusted
            by_id[item.claim_id] = item


def _settings(params: Mapping[str, Any]) -> Settings:
    raw = params.get("claims") or {}
    names = Settings.__dataclass_fields__
    return Settings(**{k: float(v) for k, v in raw.items() if k in names})


# LAT (Rothberg et al. 2019) -------------------------------------------------------------------------


def design_lat(d: Design, spec: Mapping[str, Any], facts: Callable[[str], Facts]) -> None:
    rows = [(key, key, dict(models), dict(spec["inputs"]), False) for key, models in spec["datasets"].items()]
    for key, ext in (spec.get("extensions") or {}).items():
        rows.append((key, ext["dataset"], dict(ext["models"]), dict(ext["inputs"]), True))
    for _, dataset, models, inputs, _ in rows:
        for role in ("natural", "standard", "background"):
            d.check(models[role], inputs["natural"], facts(dataset))
    for key, _, models, inputs, ours in rows:
        _lat_row(d, key, models, inputs, ours)
    d.not_tested("imagenet.L4", "weights")


def _lat_row(d: Design, key: str, models: Mapping[str, str], inputs: Mapping[str, str], ours: bool) -> None:
    ev = d.evals

    def versus(claim_id: str, other: str, kind: str, less: bool, base: str = "natural") -> Item:
        attack = inputs[kind]
        ref, oth = (models[base], attack), (models[other], attack)

        def compute() -> Est:
            if ev.pair(ref, oth) and ev.values(*ref, "loss") is not None:
                return est_relative_reduction(
                    ev.values(*ref, "loss"),  # type: ignore[arg-type]
                    ev.values(*oth, "loss"),  # type: ignore[arg-type]
                    d.alpha,
                    d.boot,
                    1.0 if less else -1.0,
                )
            est = ev.accuracy_difference(oth, ref, d.alpha)
            if less:
                return est
            return Est(-est.value, est.n, est.method, -est.high, -est.low, _scaled(est.at, -1.0))

        return d.leaf(claim_id, Rule("above", 0.0), compute, [models[base], models[other]], [ref, oth], ours)

    parts = [
        versus(f"{key}.L1.{kind}", "background", kind, True)
        for kind in ("natural", "standard_attack", "background_attack")
    ]
    d.composite(f"{key}.L1", parts, ours)
    cost = versus(f"{key}.L2.cost", "standard", "natural", False)
    gain = versus(f"{key}.L2.robustness", "standard", "standard_attack", True)
    d.composite(f"{key}.L2", [cost, gain], ours)
    nat = models["natural"]
    clean, attacked = (nat, inputs["natural"]), (nat, inputs["background_attack"])
    d.leaf(
        f"{key}.L3",
        Rule("above", 0.0),
        lambda clean=clean, attacked=attacked: ev.accuracy_difference(clean, attacked, d.alpha),
        [nat],
        [clean, attacked],
        ours,
    )
    versus(f"{key}.L5", "background", "natural", True, base="standard")


# Attention masks (Vaishnavi et al. 2020) ------------------------------------------------------------

ATTENTION_ROLES = ("natural", "fg_natural", "adversarial", "fg_adversarial")
ATTENTION_FOREGROUND = {"coco_ic": 56.0, "gtsrb_ic": 25.0}


def design_attention(d: Design, spec: Mapping[str, Any], facts: Callable[[str], Facts]) -> None:
    inputs = dict(spec["inputs"])
    for dataset, roles in spec["datasets"].items():
        for role in ATTENTION_ROLES:
            d.check(roles[role], inputs["natural"], facts(dataset))
    for dataset, roles in spec["datasets"].items():
        _attention_dataset(d, dataset, roles, inputs, facts)


def _attention_dataset(
    d: Design,
    dataset: str,
    roles: Mapping[str, str],
    inputs: Mapping[str, str],
    facts: Callable[[str], Facts],
) -> None:
    ev, s = d.evals, d.settings

    def compare(claim_id: str, better: str, worse: str, kind: str, rule: Rule, roles: Any = roles) -> Item:
        x, y = (roles[better], inputs[kind]), (roles[worse], inputs[kind])
        return d.leaf(
            claim_id,
            rule,
            lambda: ev.accuracy_difference(x, y, d.alpha),
            [roles[better], roles[worse]],
            [x, y],
        )

    parts = [
        compare(f"{dataset}.A1.{kind}", "fg_adversarial", "adversarial", kind, Rule("above", 0.0))
        for kind in ("natural", "pgd")
    ]
    d.composite(f"{dataset}.A1", parts)
    a2 = Rule("within", s.comparable_margin) if dataset == "coco_ic" else Rule("above", 0.0)
    compare(f"{dataset}.A2", "fg_natural", "natural", "pgd", a2)
    parts = [
        compare(f"{dataset}.A3.{t}", f"fg_{t}", t, "natural", Rule("above", -s.no_cost_margin))
        for t in ("natural", "adversarial")
    ]
    d.composite(f"{dataset}.A3", parts)
    paper = ATTENTION_FOREGROUND.get(dataset)
    if paper is None:
        return
    main = [(roles[role], attack) for role in ATTENTION_ROLES for attack in inputs.values()]
    source = next(
        (m for m in main if ev.find(*m) is not None and "foreground_fraction" in (ev.per_image(*m) or {})),
        None,
    )
    fact = facts(dataset)
    rule = Rule("within", s.comparable_margin)
    if source is not None:
        fractions = ev.values(*source, "foreground_fraction")
        d.leaf(
            f"{dataset}.A4",
            rule,
            lambda fractions=fractions: est_mean(100.0 * fractions - paper, d.alpha, d.boot),
            (),
            [source],
        )
    elif fact.foreground_fraction is not None:
        n = ev.n(*main[0])
        diff = 100.0 * float(fact.foreground_fraction) - paper
        d.leaf(f"{dataset}.A4", rule, lambda diff=diff, n=n: est_none(diff, n), (), [])
    else:
        d.not_tested(f"{dataset}.A4", "data")


# Dual perturbation (ICLR 2021 submission) --------------------------------------------------------


@dataclass(frozen=True)
class Sweep:
    parameter: str
    norm: str
    dual: bool
    attacks: tuple[str, ...]
    x: tuple[float, ...]


def sweeps_of(spec: Mapping[str, Any], attacks: Mapping[str, Any], scale: str) -> list[Sweep]:
    out = []
    for sweep in (spec.get("sweeps") or {}).values():
        parameter = str(sweep["parameter"])
        specs = [attacks[a] for a in sweep["attacks"]]
        points = sorted(
            (
                (float(resolve(a.get(parameter, 0.0), scale)), name)
                for a, name in zip(specs, sweep["attacks"], strict=True)
            ),
            key=lambda p: p[0],
        )
        out.append(
            Sweep(
                parameter,
                str(specs[0].get("norm")),
                specs[0].get("kind") == "dual",
                tuple(n for _, n in points),
                tuple(x for x, _ in points),
            )
        )
    return out


DUAL_ROLES = ("clean", "at_pgd", "at_dual")


def design_dual(
    d: Design, spec: Mapping[str, Any], facts: Callable[[str], Facts], attacks: Mapping[str, Any], scale: str
) -> None:
    inputs = dict(spec["inputs"])
    sweeps = sweeps_of(spec, attacks, scale)

    def sweep(norm: str, dual: bool, parameter: str) -> Sweep | None:
        return next(
            (w for w in sweeps if w.norm == norm and w.dual == dual and w.parameter == parameter), None
        )

    lam = next((w for w in sweeps if w.dual and w.parameter == "salience_weight"), None)
    for dataset, roles in spec["datasets"].items():
        for role in DUAL_ROLES:
            d.check(roles[role], inputs["natural"], facts(dataset))
    for dataset, roles in spec["datasets"].items():
        _dual_dataset(d, dataset, roles, inputs, facts(dataset), sweep, lam)
    d.not_tested("D9", "code")
    d.not_tested("D10", "data")


def _dual_dataset(
    d: Design,
    dataset: str,
    roles: Mapping[str, str],
    inputs: Mapping[str, str],
    fact: Facts,
    sweep: Callable[[str, bool, str], Sweep | None],
    lam: Sweep | None,
) -> None:
    ev, s = d.evals, d.settings

    def diff(claim_id: str, a: tuple[str, str], b: tuple[str, str], rule: Rule, roles: Any = roles) -> Item:
        x, y = (roles[a[0]], a[1]), (roles[b[0]], b[1])
        return d.leaf(
            f"{dataset}.{claim_id}",
            rule,
            lambda: ev.accuracy_difference(x, y, d.alpha),
            [roles[a[0]], roles[b[0]]],
            [x, y],
        )

    above0 = Rule("above", 0.0)
    dual = inputs["dual"]
    diff("D1", ("at_dual", dual), ("at_pgd", dual), above0)
    at_pgd = (roles["at_pgd"], dual)
    d.leaf(
        f"{dataset}.D1.ceiling",
        Rule("below", 10.0),
        lambda at_pgd=at_pgd: est_wilson(ev.correct_count(*at_pgd), ev.n(*at_pgd), d.alpha),
        [roles["at_pgd"]],
        [at_pgd],
    )
    diff("D2", ("at_dual", inputs["pgd_strong"]), ("at_pgd", inputs["pgd_strong"]), above0)
    diff(
        "D5",
        ("at_dual", inputs["natural"]),
        ("at_pgd", inputs["natural"]),
        Rule("above", -s.no_cost_margin),
    )
    for claim_id, w in (
        ("D6", sweep("linf", False, "eps")),
        ("D7", sweep("linf", True, "eps_background")),
    ):
        if w is None:
            d.not_tested(f"{dataset}.{claim_id}", "compute")
        else:
            diff(claim_id, ("at_dual", w.attacks[-1]), ("at_pgd", w.attacks[-1]), above0)
    # D0: the salience model's sanity check, the precondition of every FS claim.
    clean = (roles["clean"], dual)
    sanity: str | None = None
    fs_nat = ev.values(*clean, "foreground_score_natural") if ev.per_image(*clean) is not None else None
    if fs_nat is not None:
        fraction = ev.values(*clean, "foreground_fraction")
        d0 = d.leaf(
            f"{dataset}.D0",
            above0,
            lambda fs_nat=fs_nat, fraction=fraction: est_mean(fs_nat - fraction, d.alpha, d.boot),
            (),
            [clean],
        )
    elif fact.foreground_fraction is not None:
        value = float(ev.get(*clean)["foreground_score_natural"]) - float(fact.foreground_fraction)
        d0 = d.leaf(f"{dataset}.D0", above0, lambda v=value: est_none(v, ev.n(*clean)), (), [clean])
    else:
        d0 = d.not_tested(f"{dataset}.D0", "data")
    if d0.kind == "leaf" and d0.unadjusted != HOLDS:
        sanity = f"{dataset}.D0 {d0.unadjusted}"

    def fs(
        claim_id: str, role: str, high: str, low: str | None, threshold: float, roles: Any = roles
    ) -> Item:
        model = roles[role]

        def compute() -> Est:
            if low is not None:
                ev.pair((model, low), (model, high))
            values = ev.values(model, high, "foreground_score")
            if values is None:
                summary = float(ev.get(model, high)["foreground_score"])
                if low is not None:
                    return est_none(
                        summary - float(ev.get(model, low)["foreground_score"]), ev.n(model, high)
                    )
                return est_none(summary - threshold, ev.n(model, high))
            if low is not None:
                return est_mean_difference(
                    values,
                    ev.values(model, low, "foreground_score"),  # type: ignore[arg-type]
                    d.alpha,
                    d.boot,
                )
            return est_mean(values - threshold, d.alpha, d.boot)

        sources = [(model, a) for a in (low, high) if a is not None]
        return d.leaf(f"{dataset}.{claim_id}", above0, compute, [model], sources, precondition=sanity)

    parts = []
    for role in DUAL_ROLES:
        if lam is None or len(lam.attacks) < 2:
            d.not_tested(f"{dataset}.D3.{role}", "compute")
            continue
        parts.append(fs(f"D3.{role}", role, lam.attacks[-1], lam.attacks[0], 0.0))
    if parts:
        d.composite(f"{dataset}.D3", parts)
    d.composite(f"{dataset}.D4", [fs(f"D4.{role}", role, dual, None, 0.5) for role in DUAL_ROLES])
    # D8: a moderate λ (0 < λ <= 10) against λ = 0.
    if lam is None or 0.0 not in lam.x:
        d.not_tested(f"{dataset}.D8", "compute")
    else:
        zero = lam.attacks[lam.x.index(0.0)]
        moderate = [(x, a) for x, a in zip(lam.x, lam.attacks, strict=True) if 0 < x <= 10.0]
        parts = [
            diff(f"D8.{role}.lambda{x:g}", (role, a), (role, zero), Rule("below", s.moderate_lambda_margin))
            for role in DUAL_ROLES
            for x, a in moderate
        ]
        d.composite(f"{dataset}.D8", parts)
    w = sweep("linf", True, "eps_background")
    if w is None:
        d.not_tested(f"{dataset}.D11", "compute")
    else:
        diff("D11", ("at_pgd", w.attacks[-1]), ("clean", w.attacks[-1]), Rule("below", s.comparable_margin))
    # D12: PGD at the dual attack's foreground budget against the dual attack.
    pgd = inputs["pgd"]
    fg, l2 = sweep("l2", True, "eps_foreground"), sweep("l2", False, "eps")
    if fg is not None and l2 is not None and dual in fg.attacks:
        eps = fg.x[fg.attacks.index(dual)]
        match = [a for a, x in zip(l2.attacks, l2.x, strict=True) if np.isclose(x, eps)]
        pgd = match[0] if match else pgd
    parts = [diff(f"D12.{role}", (role, pgd), (role, dual), above0) for role in ("at_pgd", "at_dual")]
    d.composite(f"{dataset}.D12", parts)
    diff(
        "D13",
        ("at_dual", inputs["natural"]),
        ("clean", inputs["natural"]),
        Rule("above", -s.comparable_margin),
    )


# Pixel space (Wang et al.) --------------------------------------------------------------------------

REGIONS = ("original", "foreground", "background")


@dataclass(frozen=True)
class Region:
    """One (model, region, pixels) DE evaluation, per attacked image in index order."""

    key: str
    index: np.ndarray
    success: np.ndarray
    generations: np.ndarray
    confidence: np.ndarray
    t_index: np.ndarray
    t_success: np.ndarray
    t_reached: np.ndarray
    fitness: tuple[np.ndarray, ...]
    horizon: int


def read_region(record: Mapping[str, Any], key: str, search: str | None) -> Region:
    block = record.get("pixel_attack")
    if not isinstance(block, dict):
        raise RecomputeError(f"{key}: no pixel_attack block")
    if search is not None and block.get("search", "indexed") != search:
        raise RecomputeError(f"{key}: ran the {block.get('search')!r} search, not {search!r}")
    images = sorted(block["untargeted"]["images"], key=lambda r: int(r["index"]))
    per: dict[int, list[int]] = {}
    for pair in (block.get("targeted") or {}).get("pairs_list") or []:
        per.setdefault(int(pair["index"]), []).append(int(bool(pair["success"])))
    t_index = np.array(sorted(per), dtype=int)
    fitness = tuple(np.asarray(r.get("fitness") or [], dtype=float) for r in images)
    longest = max((len(f) - 1 for f in fitness), default=0)
    return Region(
        key,
        np.array([int(r["index"]) for r in images], dtype=int),
        np.array([int(bool(r["success"])) for r in images], dtype=int),
        np.array([float(r["generations"]) for r in images]),
        np.array([float(r.get("adversarial_confidence") or 0.0) for r in images]),
        t_index,
        np.array([np.mean(per[i]) for i in t_index]),
        np.array([sum(per[i]) for i in t_index], dtype=float),
        fitness,
        int(block.get("max_generations") or longest),
    )


def fitness_area(curve: np.ndarray, horizon: int) -> float:
    """The mean of a fitness curve over generations 0..horizon, carried forward at its last value."""
    length = max(horizon + 1, len(curve))
    return float(np.concatenate([curve, np.full(length - len(curve), curve[-1])]).mean())


def design_pixel(d: Design, spec: Mapping[str, Any], facts: Callable[[str], Facts]) -> None:
    (dataset, roles), *_ = spec["datasets"].items()
    ev, s, above0 = d.evals, d.settings, Rule("above", 0.0)
    natural = None
    main: dict[tuple[str, int], str] = {}
    for column, attack in spec["inputs"].items():
        if column == "natural":
            natural = attack
        else:
            region, k = column.rsplit("_", 1)
            main[(region, int(k))] = attack
    pixels = sorted({k for _, k in main})
    k0, lo, hi = min(pixels), min(pixels), max(pixels)
    searches = {
        search: {(c.rsplit("_", 1)[0], int(c.rsplit("_", 1)[1])): a for c, a in cols.items()}
        for search, cols in (spec.get("searches") or {}).items()
    }

    def load(model: str, attack: str, search: str | None = None) -> Region | None:
        record = ev.find(model, attack)
        return None if record is None else read_region(record, ev.key(model, attack), search)

    blocks = {
        role: {key: load(model, attack) for key, attack in main.items()} for role, model in roles.items()
    }
    for role, model in roles.items():
        if natural is not None and ev.find(model, natural) is not None and any(blocks[role].values()):
            d.check(model, natural, facts(dataset))

    def same_images(regions: Sequence[Region]) -> None:
        for r in regions[1:]:
            if not np.array_equal(r.index, regions[0].index):
                raise RecomputeError(f"{regions[0].key} and {r.key} attacked different images")

    def success(out: Mapping[tuple[str, int], Region], region: str) -> np.ndarray:
        return np.mean([out[(region, k)].success for k in pixels], axis=0)

    def files(
        out: Mapping[tuple[str, int], Region], keys: Sequence[tuple[str, int]]
    ) -> list[tuple[str, str]]:
        return [tuple(out[k].key.removesuffix(".json").split("/", 1)) for k in keys]  # type: ignore[misc]

    def regions_claims(prefix: str, role: str, model: str, out: Mapping, ours: bool) -> Item:
        succ = {r: success(out, r) for r in REGIONS}
        if len(succ["original"]) == 0:
            return d.not_tested(f"{prefix}.{role}", "model", ours)
        every = files(out, [(r, k) for k in pixels for r in REGIONS])
        below = d.leaf(
            f"{prefix}.below.{role}",
            above0,
            lambda: est_mean(100.0 * (succ["foreground"] - succ["background"]), d.alpha, d.boot),
            [model],
            every,
            ours,
        )
        far = d.leaf(
            f"{prefix}.far.{role}",
            above0,
            lambda: est_mean(
                100.0 * (2 * succ["foreground"] - succ["original"] - succ["background"]), d.alpha, d.boot
            ),
            [model],
            every,
            ours,
        )
        return d.composite(f"{prefix}.{role}", [below, far], ours)

    per_model: list[Item] = []
    for role, model in roles.items():
        out = blocks[role]
        if any(out.get((r, k)) is None for k in pixels for r in REGIONS):
            per_model.append(d.not_tested(f"P1.{role}", "compute"))
            continue
        same_images([out[(r, k)] for k in pixels for r in REGIONS])
        per_model.append(regions_claims("P1", role, model, out, False))
        whole, fg, bg = (out[(r, k0)] for r in REGIONS)
        # P2, P2.whole: targeted success per image over its targets.
        for claim_id, name, constraint in (
            ("P2", "foreground", "images"),
            ("P2.whole", "original", "compute"),
        ):
            a = out[(name, k0)]
            if len(a.t_index) == 0 or not np.array_equal(a.t_index, bg.t_index):
                d.not_tested(f"{claim_id}.{role}", constraint)
            else:
                d.leaf(
                    f"{claim_id}.{role}",
                    above0,
                    lambda a=a, bg=bg: est_mean(100.0 * (a.t_success - bg.t_success), d.alpha, d.boot),
                    [model],
                    files(out, [(name, k0), ("background", k0)]),
                )
        # P3, P3.whole: generations on the images fooled in both.
        for claim_id, name in (("P3", "foreground"), ("P3.whole", "original")):
            a = out[(name, k0)]
            both = (a.success == 1) & (bg.success == 1)
            if not both.any():
                d.not_tested(f"{claim_id}.{role}", "images")
            else:
                d.leaf(
                    f"{claim_id}.{role}",
                    above0,
                    lambda a=a, bg=bg, both=both: est_mean_difference(
                        bg.generations[both], a.generations[both], d.alpha, d.boot
                    ),
                    [model],
                    files(out, [(name, k0), ("background", k0)]),
                )
        # P4: the adversarial class's confidence on a region against the whole image.
        parts = []
        for region in ("foreground", "background"):
            other = out[(region, k0)]
            both = (whole.success == 1) & (other.success == 1)
            if not both.any():
                parts.append(d.not_tested(f"P4.{region}.{role}", "images"))
                continue
            parts.append(
                d.leaf(
                    f"P4.{region}.{role}",
                    Rule("within", s.confidence_margin),
                    lambda other=other, whole=whole, both=both: est_mean_difference(
                        100.0 * other.confidence[both], 100.0 * whole.confidence[both], d.alpha, d.boot
                    ),
                    [model],
                    files(out, [("original", k0), (region, k0)]),
                )
            )
        d.composite(f"P4.{role}", parts)
        # P8: the foreground about as vulnerable as the whole image.
        fg_all, whole_all = success(out, "foreground"), success(out, "original")
        if len(whole_all) == 0:
            d.not_tested(f"P8.{role}", "images")
        else:
            d.leaf(
                f"P8.{role}",
                Rule("within", s.comparable_margin),
                lambda fg_all=fg_all, whole_all=whole_all: est_mean(
                    100.0 * (fg_all - whole_all), d.alpha, d.boot
                ),
                [model],
                files(out, [(r, k) for k in pixels for r in ("original", "foreground")]),
            )
        # P9, P10: the most pixels against the fewest, per region.
        if lo == hi:
            d.not_tested(f"P9.{role}", "compute")
            d.not_tested(f"P10.{role}", "compute")
        else:
            parts = []
            for region in REGIONS:
                many, few = out[(region, hi)], out[(region, lo)]
                if len(many.success) == 0:
                    parts.append(d.not_tested(f"P9.{region}.{role}", "images"))
                    continue
                parts.append(
                    d.leaf(
                        f"P9.{region}.{role}",
                        above0,
                        lambda many=many, few=few: est_rates_paired(many.success, few.success, d.alpha),
                        [model],
                        files(out, [(region, hi), (region, lo)]),
                    )
                )
            d.composite(f"P9.{role}", parts)
            parts = []
            for region in REGIONS:
                many, few = out[(region, hi)], out[(region, lo)]
                both = (many.success == 1) & (few.success == 1)
                if not both.any():
                    parts.append(d.not_tested(f"P10.{region}.{role}", "images"))
                    continue
                parts.append(
                    d.leaf(
                        f"P10.{region}.{role}",
                        Rule("within", s.confidence_margin),
                        lambda many=many, few=few, both=both: est_mean_difference(
                            100.0 * many.confidence[both], 100.0 * few.confidence[both], d.alpha, d.boot
                        ),
                        [model],
                        files(out, [(region, hi), (region, lo)]),
                    )
                )
            d.composite(f"P10.{role}", parts)
        # P11: target classes reached, foreground against background, over the pixel counts whose
        # targeted runs share their images.
        ks: list[int] = []
        for k in pixels:
            f, b = out[("foreground", k)], out[("background", k)]
            same = len(f.t_index) > 0 and np.array_equal(f.t_index, b.t_index)
            first = out[("foreground", ks[0])].t_index if ks else f.t_index
            if same and np.array_equal(f.t_index, first):
                ks.append(k)
        if not ks:
            d.not_tested(f"P11.{role}", "compute")
        else:
            reached = {
                r: np.mean([out[(r, k)].t_reached for k in ks], axis=0) for r in ("foreground", "background")
            }
            d.leaf(
                f"P11.{role}",
                above0,
                lambda reached=reached: est_mean(
                    reached["foreground"] - reached["background"], d.alpha, d.boot
                ),
                [model],
                files(out, [(r, k) for k in ks for r in ("foreground", "background")]),
            )
        # P12: the mean fitness over the generations, on the images fooled in every region.
        fooled = (whole.success == 1) & (fg.success == 1) & (bg.success == 1)
        chosen = np.flatnonzero(fooled)
        if not fooled.any():
            d.not_tested(f"P12.{role}", "images")
        elif any(len(o.fitness[i]) == 0 for o in (whole, fg, bg) for i in chosen):
            d.not_tested(f"P12.{role}", "compute")
        else:
            horizon = max(o.horizon for o in (whole, fg, bg))
            area = {
                r: np.array([100.0 * fitness_area(o.fitness[i], horizon) for i in chosen])
                for r, o in zip(REGIONS, (whole, fg, bg), strict=True)
            }
            parts = [
                d.leaf(
                    f"P12.{region}.{role}",
                    rule,
                    lambda region=region, area=area: est_mean_difference(
                        area[region], area["original"], d.alpha, d.boot
                    ),
                    [model],
                    files(out, [("original", k0), (region, k0)]),
                )
                for region, rule in (
                    ("background", above0),
                    ("foreground", Rule("within", s.comparable_margin)),
                )
            ]
            d.composite(f"P12.{role}", parts)
    d.composite("P1", per_model)
    # P6, P7 (ours): the regions again under another search.
    for search, columns in searches.items():
        p6_parts: list[Item] = []
        p7_parts: list[Item] = []
        for role, model in roles.items():
            chosen_out: dict[tuple[str, int], Region | None] = {}
            for k in pixels:
                for r in ("foreground", "background"):
                    a = columns.get((r, k))
                    chosen_out[(r, k)] = None if a is None else load(model, a, search)
                a = columns.get(("original", k))
                chosen_out[("original", k)] = (
                    load(model, a, search) if a is not None else blocks[role].get(("original", k))
                )
            ran = {(r, k): blocks[role].get((r, k)) for k in pixels for r in ("foreground", "background")}
            lack6 = any(v is None for v in chosen_out.values())
            lack7 = any(
                v is None for part in (ran, chosen_out) for (r, _), v in part.items() if r != "original"
            )
            if lack6:
                p6_parts.append(d.not_tested(f"P6.{search}.{role}", "compute", True))
            if lack7:
                p7_parts.append(d.not_tested(f"P7.{search}.{role}", "compute", True))
            out = {key: v for key, v in chosen_out.items() if v is not None}
            if not out:
                continue
            same_images(list(out.values()))
            if not lack6:
                p6_parts.append(regions_claims(f"P6.{search}", role, model, out, True))
            if not lack7:
                same_images([*out.values(), *ran.values()])  # type: ignore[list-item]
                gain = {r: success(out, r) - success(ran, r) for r in ("foreground", "background")}  # type: ignore[arg-type]
                if len(gain["background"]) == 0:
                    p7_parts.append(d.not_tested(f"P7.{search}.{role}", "images", True))
                    continue
                p7_parts.append(
                    d.leaf(
                        f"P7.{search}.{role}",
                        above0,
                        lambda gain=gain: est_mean(
                            100.0 * (gain["background"] - gain["foreground"]), d.alpha, d.boot
                        ),
                        [model],
                        files(out, [(r, k) for k in pixels for r in ("foreground", "background")])
                        + files(ran, [(r, k) for k in pixels for r in ("foreground", "background")]),  # type: ignore[arg-type]
                        ours=True,
                    )
                )
        d.composite(f"P6.{search}", p6_parts, True)
        d.composite(f"P7.{search}", p7_parts, True)
    d.not_tested("P5", "weights")


# --- comparing with the records ----------------------------------------------------------------------


def _unwrap_mc(design: Design, item: Item, level: float, replicates: int) -> dict[str, Any] | None:
    """The interval's distance to the rule's boundary at ``level`` and the standard deviation of
    the nearest interval end over independent bootstrap runs (None for an exact interval)."""
    est = item.est
    if est is None or est.replicate is None or item.rule is None:
        return None
    low, high, method = est.at(level)
    distance = item.rule.distance(low, high)
    ends = [(abs(e - b), j) for j, e in enumerate((low, high)) for b in item.rule.boundaries()]
    nearest = min(ends)[1]
    values = [est.replicate(design.boot.seed + 1000 + i, level)[nearest] for i in range(replicates)]
    sd = float(np.std(values, ddof=1)) if replicates > 1 else float("nan")
    return {
        "claim_id": item.claim_id,
        "level": level,
        "interval": [low, high],
        "method": method,
        "distance": distance,
        "mc_sd": sd,
        "within": bool(math.isfinite(sd) and distance <= MC_SDS * sd),
    }


def _fmt_interval(low: Any, high: Any) -> str:
    if low is None or high is None:
        return "–"
    return f"[{low:.4g}, {high:.4g}]"


def _short(outcome: str | None) -> str:
    return {
        HOLDS: "holds",
        FAILS: "fails",
        INCONCLUSIVE: "inconcl.",
        DEGENERATE: "degen.",
        NOT_TESTED: "not tested",
        None: "?",
    }[outcome]


def _pair_text(outcome: str | None, unadjusted: str | None) -> str:
    text = _short(outcome)
    return text if unadjusted in (None, outcome) else f"{text} ({_short(unadjusted)} pre-Holm)"


def _close(a: float | None, b: float | None, tol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def compare_paper(
    design: Design, data: Mapping[str, Any], mc_replicates: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per record (and per designed claim the records lack), and the problems found."""
    records = {c["claim_id"]: c for c in data["claims"]}
    items = {i.claim_id: i for i in design.items}
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    health = {m["model"]: tuple(m.get("tests") or ()) for m in data.get("models", [])}
    for model, tests in design.health.items():
        if model not in health:
            problems.append(f"model {model}: not in the record's models list")
        elif set(health[model]) != set(tests):
            problems.append(
                f"model {model}: record's health tests {list(health[model])}, recomputed {list(tests)}"
            )
    for claim_id in [*records, *(i for i in items if i not in records)]:
        rec, item = records.get(claim_id), items.get(claim_id)
        row: dict[str, Any] = {"claim_id": claim_id, "notes": []}
        rows.append(row)
        if item is None:
            row.update(kind="?", status="unknown", agree=False)
            row["notes"].append("not in the design derived from params.yaml")
            continue
        if rec is None:
            row.update(kind=item.kind, status="missing", agree=False, recomputed=item.outcome)
            if item.error:
                row["status"] = "error"
                row["notes"].append(f"cannot recompute: {item.error}")
            else:
                row["notes"].append("designed but absent from the records")
            continue
        effect = rec.get("effect") or {}
        row.update(
            kind=item.kind,
            family=item.family,
            record_outcome=rec["outcome"],
            record_unadjusted=rec.get("outcome_unadjusted") or rec["outcome"],
            recomputed=item.outcome,
            recomputed_unadjusted=item.unadjusted,
            record_interval=[effect.get("low"), effect.get("high")] if effect else None,
            record_value=effect.get("value"),
            record_method=record_method(effect.get("method")) if effect else None,
            record_rule_p=effect.get("rule_p"),
            record_holm_p=effect.get("holm_p"),
        )
        if rec.get("family") and rec["family"] != item.family:
            row["notes"].append(f"family {rec['family']!r}, recomputed {item.family!r}")
        if item.error:
            row.update(status="error", agree=False)
            row["notes"].append(f"cannot recompute: {item.error}")
            continue
        if item.kind == "composite":
            if tuple(rec.get("parts") or ()) != item.parts:
                row["notes"].append(f"parts {rec.get('parts')} against recomputed {list(item.parts)}")
        rule_ok = True
        if item.kind == "leaf" and item.est is not None:
            est = item.est
            row.update(
                value=est.value,
                interval=[est.low, est.high],
                method=est.method,
                rule=item.rule.text(),  # type: ignore[union-attr]
                rule_p=item.p,
                holm_p=item.holm_p,
                holm_binding=item.holm_binding,
                sources=list(item.sources),
            )
            if effect:
                if effect.get("rule_kind") is not None and (
                    effect["rule_kind"] != item.rule.kind  # type: ignore[union-attr]
                    or not _close(effect.get("rule_bound"), item.rule.bound, 1e-12)  # type: ignore[union-attr]
                ):
                    rule_ok = False
                    row["notes"].append(
                        f"record's rule {effect['rule_kind']} {effect.get('rule_bound')}, "
                        f"design's {item.rule.text()}"  # type: ignore[union-attr]
                    )
                elif effect.get("rule_kind") is None:
                    row["rule_from"] = "design (the record has no rule_kind)"
                if not _close(effect.get("value"), est.value, 1e-9):
                    row["notes"].append(f"value {effect.get('value')!r}, recomputed {est.value!r}")
                exact = est.method in ("wilson", "newcombe-paired", "newcombe-unpaired", "constant", "none")
                if exact and not (
                    _close(effect.get("low"), est.low, 1e-9) and _close(effect.get("high"), est.high, 1e-9)
                ):
                    row["notes"].append(
                        f"exact interval {_fmt_interval(effect.get('low'), effect.get('high'))}, "
                        f"recomputed {_fmt_interval(est.low, est.high)}"
                    )
                if row["record_method"] != est.method and item.unadjusted != DEGENERATE:
                    row["notes"].append(f"method {row['record_method']}, recomputed {est.method}")
                recorded_p = effect.get("rule_p")
                if exact and None not in (item.p, recorded_p) and not _close(recorded_p, item.p, 1e-6):
                    row["notes"].append(f"rule p {effect.get('rule_p')}, recomputed {item.p}")
            known = {
                src.split("/evals/")[-1]
                for q in rec.get("quantities", [])
                if "/evals/" in (src := q["source"])
            }
            stray = sorted(k for k in known if k not in item.sources)
            if stray:
                row["notes"].append(f"record reads {stray}, not among the recomputed sources")
        # The outcomes.
        unadj_ok = row["record_unadjusted"] == item.unadjusted
        final_ok = row["record_outcome"] == item.outcome
        if item.unadjusted == DEGENERATE and item.kind == "leaf":
            reason = rec.get("reason", "")
            if item.degenerate_models:
                missing = [m for m in item.degenerate_models if f"`{m}`" not in reason]
                if missing:
                    row["notes"].append(f"degenerate, but the reason does not name {missing}")
                    unadj_ok = final_ok = False
            elif "sanity check" not in reason:
                row["notes"].append("degenerate by the salience check, but the reason does not say so")
                unadj_ok = final_ok = False
        if item.kind == "not_tested" and rec["outcome"] == NOT_TESTED:
            constraint = (rec.get("needs") or {}).get("constraint")
            if constraint != item.constraint:
                row["notes"].append(f"not tested for {constraint!r}, recomputed {item.constraint!r}")
                unadj_ok = final_ok = False
        if not (unadj_ok and final_ok):
            row["notes"].insert(
                0,
                f"record {_pair_text(row['record_outcome'], row['record_unadjusted'])}, "
                f"recomputed {_pair_text(item.outcome, item.unadjusted)}",
            )
        row["agree"] = unadj_ok and final_ok and rule_ok
        row["status"] = "agree" if row["agree"] else "disagree"
        if not row["agree"] and rule_ok and item.kind == "leaf" and item.est is not None:
            level = design.alpha if not unadj_ok else item.holm_level
            subject = item
            if unadj_ok and item.holm_binding and item.holm_binding != item.claim_id:
                subject = items[item.holm_binding]
                level = subject.holm_level
            mc = _unwrap_mc(design, subject, level or design.alpha, mc_replicates) if level else None
            row["monte_carlo"] = mc
            if mc is not None and mc["within"]:
                row["status"] = "within Monte-Carlo error"
        for note in row["notes"]:
            problems.append(f"{claim_id}: {note}")
    # Composites whose parts disagree only within Monte-Carlo error inherit that status.
    by_id = {r["claim_id"]: r for r in rows}
    for row in rows:
        item = items.get(row["claim_id"])
        if row["status"] == "disagree" and item is not None and item.kind == "composite":
            statuses = {by_id[p]["status"] for p in item.parts if p in by_id}
            if "within Monte-Carlo error" in statuses and statuses <= {"agree", "within Monte-Carlo error"}:
                row["status"] = "within Monte-Carlo error"
    return rows, problems


def render(paper: str, rows: Sequence[dict[str, Any]]) -> str:
    header = ("claim", "record", "recomputed", "record interval", "recomputed interval", "agree")
    lines = []
    for r in rows:
        mark = {"agree": "yes", "within Monte-Carlo error": "MC", "error": "ERROR"}.get(r["status"], "NO")
        if r["status"] == "agree" and r.get("notes"):
            mark = "yes*"
        interval = r.get("interval")
        lines.append(
            (
                r["claim_id"],
                _pair_text(r.get("record_outcome"), r.get("record_unadjusted")),
                _pair_text(r.get("recomputed"), r.get("recomputed_unadjusted")),
                _fmt_interval(*(r.get("record_interval") or [None, None])) if r.get("kind") == "leaf" else "",
                (_fmt_interval(*interval) + f" {r.get('method')}") if interval else "",
                mark,
            )
        )
    widths = [max(len(str(x[i])) for x in [header, *lines]) for i in range(len(header))]
    out = [f"## {paper}", "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(out)


def run(
    claims_dir: Path,
    evals_dir: Path,
    datasets_dir: Path,
    params_path: Path,
    boot: BootSettings,
    mc_replicates: int,
    papers: Sequence[str] = PAPERS,
) -> dict[str, Any]:
    params = yaml.safe_load(Path(params_path).read_text(encoding="utf-8"))
    settings = _settings(params)
    evals = Evals(evals_dir)
    facts_cache: dict[str, Facts] = {}

    def facts(name: str) -> Facts:
        if name not in facts_cache:
            facts_cache[name] = read_facts(datasets_dir, name)
        return facts_cache[name]

    summary: dict[str, Any] = {
        "claims": str(claims_dir),
        "evals": str(evals_dir),
        "datasets": str(datasets_dir),
        "params": str(params_path),
        "seed": boot.seed,
        "resamples": boot.resamples,
        "alpha": settings.alpha,
        "papers": {},
    }
    for paper in papers:
        path = Path(claims_dir) / f"{paper}.json"
        if not path.is_file():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        scale = str(data.get("scale") or params.get("scale") or "reduced")
        spec = (params.get("tables") or {}).get(paper)
        design = Design(paper, settings, evals, boot)
        if spec is None:
            raise SystemExit(f"{params_path}: no tables.{paper}, so the design of {path} is unknown")
        try:
            if paper == "lat":
                design_lat(design, spec, facts)
            elif paper == "attention_masks":
                design_attention(design, spec, facts)
            elif paper == "dual_perturbation":
                attacks = {
                    name: {k: resolve(v, scale) for k, v in (a or {}).items()}
                    for name, a in (params.get("attacks") or {}).items()
                }
                design_dual(design, spec, facts, attacks, scale)
            else:
                design_pixel(design, spec, facts)
        except (RecomputeError, KeyError) as exc:
            # The design itself cannot be derived (a file or field it needs is missing): the paper's
            # claims after this point are not checked, which fails the run.
            design.items.append(
                Item(f"(design of {paper})", "leaf", paper, error=f"{type(exc).__name__}: {exc}")
            )
        design.finish()
        rows, problems = compare_paper(design, data, mc_replicates)
        leaves = [i for i in design.items if i.kind == "leaf"]
        methods: dict[str, int] = {}
        for i in leaves:
            if i.unadjusted == DEGENERATE:
                key = "degenerate (health/precondition check)"
            else:
                key = i.est.method if i.est is not None else "error"
            methods[key] = methods.get(key, 0) + 1
        methods["not tested (category check)"] = sum(i.kind == "not_tested" for i in design.items)
        summary["papers"][paper] = {
            "rows": rows,
            "problems": problems,
            "health": {m: list(t) for m, t in design.health.items()},
            "counts": {
                "records": len(data["claims"]),
                "leaves": len(leaves),
                "composites": sum(i.kind == "composite" for i in design.items),
                "not_tested": methods["not tested (category check)"],
                "by_method": methods,
                "agree": sum(r["status"] == "agree" for r in rows),
                "within_monte_carlo": sum(r["status"] == "within Monte-Carlo error" for r in rows),
                "disagree": sum(r["status"] not in ("agree", "within Monte-Carlo error") for r in rows),
            },
        }
    failures = [
        {"paper": p, **{k: r.get(k) for k in ("claim_id", "status", "notes", "monte_carlo")}}
        for p, part in summary["papers"].items()
        for r in part["rows"]
        if r["status"] not in ("agree", "within Monte-Carlo error")
    ]
    summary["disagreements"] = failures
    summary["within_monte_carlo"] = [
        {"paper": p, "claim_id": r["claim_id"], **(r.get("monte_carlo") or {})}
        for p, part in summary["papers"].items()
        for r in part["rows"]
        if r["status"] == "within Monte-Carlo error"
    ]
    summary["discrepancies"] = [
        {"paper": p, "claim_id": r["claim_id"], "notes": r["notes"]}
        for p, part in summary["papers"].items()
        for r in part["rows"]
        if r["status"] == "agree" and r["notes"]
    ]
    summary["ok"] = not failures
    return summary


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--claims", type=Path, default=REPO_ROOT / "results/reduced/claims")
    p.add_argument("--evals", type=Path, default=REPO_ROOT / "results/reduced/evals")
    p.add_argument("--datasets", type=Path, default=REPO_ROOT / "results/reduced/datasets")
    p.add_argument(
        "--params", type=Path, default=REPO_ROOT / "params.yaml", help="the design: tables, claims, attacks"
    )
    p.add_argument("--papers", nargs="*", default=list(PAPERS), choices=PAPERS)
    p.add_argument("--seed", type=int, default=1, help="the bootstrap's seed (the records use their own)")
    p.add_argument("--resamples", type=int, default=RESAMPLES)
    p.add_argument(
        "--mc-replicates",
        type=int,
        default=20,
        help="independent bootstraps that size a disagreement's MC error",
    )
    p.add_argument("--out", type=Path, help="write the JSON summary here")
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail also on discrepancies that leave the outcome alone (a value, an exact interval or p)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    summary = run(
        args.claims,
        args.evals,
        args.datasets,
        args.params,
        BootSettings(args.seed, args.resamples),
        args.mc_replicates,
        args.papers,
    )
    for paper, part in summary["papers"].items():
        print(render(paper, part["rows"]))
        c = part["counts"]
        print(
            f"{paper}: {c['records']} records, {c['leaves']} leaves ({c['by_method']}), "
            f"{c['composites']} composites; agree {c['agree']}, "
            f"within Monte-Carlo error {c['within_monte_carlo']}, disagree {c['disagree']}"
        )
        for problem in part["problems"]:
            print(f"  note: {problem}")
        print()
    for entry in summary["within_monte_carlo"]:
        print(
            f"within Monte-Carlo error: {entry['paper']} {entry['claim_id']}: interval "
            f"{_fmt_interval(*entry.get('interval', [None, None]))} at level {entry.get('level', 0):.3g}, "
            f"{entry.get('distance', float('nan')):.3g} from the boundary, "
            f"MC sd {entry.get('mc_sd', float('nan')):.3g}"
        )
    for entry in summary["disagreements"]:
        print(
            f"DISAGREE: {entry['paper']} {entry['claim_id']} ({entry['status']}): {'; '.join(entry['notes'])}"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
    ok = summary["ok"] and not (args.strict and summary["discrepancies"])
    print(
        f"{len(summary['disagreements'])} disagreement(s), {len(summary['within_monte_carlo'])} within "
        f"Monte-Carlo error, {len(summary['discrepancies'])} other discrepancy(ies)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
