"""What it would take to decide a claim left undecided: the constraint that binds (images we
could add, data the mirror lacks, weights, code, a model that learns), the images that give 80 %
power at the observed effect (or at the paper's, where ours is about nothing), the pool this
scale holds, and the CPU hours to evaluate them, all from records committed with the results."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.claims.budget import Pool, cpu_hours, pool, seconds_per_image
from stages.claims.record import CONSTRAINTS, ClaimRecord, ModelHealth, Needs
from stages.claims.stats import Estimate, Method, Outcome, Rule, images_for_power
from stages.utils.errors import DataError

POWER = 0.8
# Below this standardized distance from the boundary (n beyond about 3,000 images) our effect is
# "about nothing", and the power is computed at the paper's effect where it gives one.
ABOUT_NOTHING = 0.05
# When parts of a composite claim are undecided for different reasons, the one that is hardest
# to remove binds.
PRIORITY = ("data", "weights", "code", "model", "compute", "not computable", "images")


@dataclass(frozen=True)
class UnitCost:
    """What one more unit of an effect's n costs, where it is not one image of its evaluations
    (e.g. a targeted image, whose targets are attacked one by one): ``images`` images to evaluate
    per unit, ``seconds`` measured seconds per unit (None: unknown)."""

    images: float = 1.0
    seconds: float | None = None


@dataclass(frozen=True)
class EvaluationFacts:
    """An evaluation file's images, dataset and measured seconds per image (None: no timing)."""

    samples: int
    dataset: str | None
    seconds_per_image: float | None


@dataclass
class Feasibility:
    """Where the committed records are: ``evals_dir`` (evaluations and their throughput
    records) and ``datasets_dir`` (the prepare stage's statistics); ``params`` as loaded."""

    evals_dir: Path
    datasets_dir: Path
    alpha: float
    params: Mapping[str, Any] | None = None
    _pools: dict[str, Pool | None] = field(default_factory=dict)
    _evaluations: dict[str, EvaluationFacts | None] = field(default_factory=dict)

    def pool(self, dataset: str) -> Pool | None:
        if dataset not in self._pools:
            try:
                self._pools[dataset] = pool(self.datasets_dir, dataset, self.params)
            except DataError:
                self._pools[dataset] = None  # the needs text then says the pool is unknown
        return self._pools[dataset]

    def evaluation(self, source: str) -> EvaluationFacts | None:
        """What the cost of an evaluation file a claim cites rests on, read once per file (a
        family's claims cite the same files many times, and a DE record runs to megabytes)."""
        if source not in self._evaluations:
            self._evaluations[source] = self._read_evaluation(Path(source))
        return self._evaluations[source]

    def _read_evaluation(self, path: Path) -> EvaluationFacts | None:
        if path.parent.parent.resolve() != Path(self.evals_dir).resolve() or not path.is_file():
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
        model, attack = path.parent.name, path.stem
        return EvaluationFacts(
            int(record.get("samples", 0)),
            record.get("dataset"),
            seconds_per_image(self.evals_dir, model, attack),
        )


def needs_for(
    record: ClaimRecord,
    estimate: Estimate | None,
    rule: Rule | None,
    feasibility: Feasibility | None,
    health: Mapping[str, ModelHealth],
    constraint: str | None = None,
    *,
    parts: Sequence[ClaimRecord] = (),
    sources: Sequence[str] = (),
    level: float | None = None,
    unit_cost: UnitCost | None = None,
) -> Needs:
    """What would decide ``record`` (an undecided claim)."""
    if constraint is not None:
        if constraint not in CONSTRAINTS:
            raise ValueError(f"constraint {constraint!r} unknown; use one of {', '.join(CONSTRAINTS)}")
        return Needs(constraint, CONSTRAINTS[constraint])  # the record's reason says the rest
    if record.parts:
        return _composite(record, parts)
    if record.outcome == Outcome.DEGENERATE:
        sick = [health[m] for m in record.models if m in health and health[m].degenerate]
        tests = sorted({t for h in sick for t in h.tests})
        what = (
            f"models that learn ({', '.join(f'`{h.model}`' for h in sick)}: {', '.join(tests)})"
            if sick
            else ""
        )
        return Needs("model", f"{CONSTRAINTS['model']}: " + (what or record.reason))
    if estimate is None or rule is None or estimate.method == Method.NONE:
        return Needs("not computable", "no interval from per-image data, so no power calculation")
    return _power(record, estimate, rule, feasibility, sources, level, unit_cost)


def _power(
    record: ClaimRecord,
    estimate: Estimate,
    rule: Rule,
    feasibility: Feasibility | None,
    sources: Sequence[str],
    level: float | None,
    unit_cost: UnitCost | None,
) -> Needs:
    """``level``: the level the test must pass, Holm's step for this claim in its family (the
    family's alpha where it was not adjusted)."""
    alpha = level if level is not None else (feasibility.alpha if feasibility is not None else 0.05)
    distance, basis = rule.distance(estimate.value), "the observed effect"
    paper = record.effect.paper if record.effect is not None else None
    sd = estimate.sd or 0.0
    if sd > 0 and distance / sd < ABOUT_NOTHING and paper is not None and rule.distance(paper) > distance:
        distance, basis = rule.distance(paper), "the paper's effect"
    n_needed = images_for_power(estimate, distance, alpha, POWER)
    if n_needed is None:
        why = "no spread between images" if not sd else "the effect sits exactly on the rule's boundary"
        return Needs("not computable", f"no power calculation: {why}", n_now=estimate.n, basis=basis)
    n_needed_int = math.ceil(n_needed)
    evaluations = [e for s in dict.fromkeys(sources) if feasibility and (e := feasibility.evaluation(s))]
    # The effect may rest on a subset of the evaluated images (e.g. those fooled in both
    # regions): scale the images to evaluate by the share that entered the estimate.
    samples = max((e.samples for e in evaluations), default=estimate.n)
    if unit_cost is not None:
        # n counts units of their own (e.g. targeted images), not the evaluations' images.
        images, samples = math.ceil(n_needed_int * unit_cost.images), estimate.n
    else:
        images = math.ceil(n_needed_int * samples / estimate.n) if estimate.n else n_needed_int
    datasets = {e.dataset for e in evaluations if e.dataset}
    found = feasibility.pool(sorted(datasets)[0]) if feasibility and len(datasets) == 1 else None
    capacity = None if found is None else (found.available or found.prepared)
    if unit_cost is not None:
        costs = [unit_cost.seconds] if unit_cost.seconds is not None else []
    else:
        costs = [e.seconds_per_image for e in evaluations]
    hours = cpu_hours(max(images - samples, 0), [c for c in costs if c]) if costs and all(costs) else None
    subset = (
        f" ({images:,} to evaluate, as {estimate.n} of {samples} entered the estimate)"
        if images != n_needed_int
        else ""
    )
    power = (
        f"{n_needed_int:,} images give {100 * POWER:g} % power at {basis} (level {alpha:.2g}, Holm's step)"
        f"{subset}"
    )
    if capacity is not None and images > capacity:
        text = f"{CONSTRAINTS['data']}: {power}, but the pool holds {capacity:,} ({found.limit})"  # type: ignore[union-attr]
        constraint, hours = "data", None  # no cost of images that do not exist
    else:
        pool_text = f"; the pool holds {capacity:,}" if capacity is not None else "; the pool is unknown"
        cost = f", about {hours:.2g} CPU hours" if hours is not None else ""
        text = f"{CONSTRAINTS['images']}: {power}{pool_text}{cost}"
        constraint = "images"
    return Needs(
        constraint,
        text,
        n_now=estimate.n,
        n_needed=n_needed_int,
        basis=basis,
        pool=capacity,
        pool_limit=found.limit if found else "",
        cpu_hours=None if hours is None else float(f"{hours:.3g}"),
    )


def _composite(record: ClaimRecord, parts: Sequence[ClaimRecord]) -> Needs:
    pending = [p for p in parts if p.outcome not in (Outcome.HOLDS, Outcome.FAILS) and p.needs is not None]
    if not pending:
        return Needs("not computable", "no undecided part")
    binding = min(pending, key=lambda p: PRIORITY.index(p.needs.constraint))  # type: ignore[union-attr]
    needs = binding.needs
    assert needs is not None
    hours = [p.needs.cpu_hours for p in pending if p.needs and p.needs.cpu_hours is not None]
    n = [p.needs.n_needed for p in pending if p.needs and p.needs.n_needed is not None]
    summed = " (CPU hours summed over the undecided parts: at most that where parts share images)"
    return Needs(
        needs.constraint,
        f"binding part {binding.claim_id}: {needs.text}" + (summed if len(hours) > 1 else ""),
        n_needed=max(n) if n else None,
        basis=needs.basis,
        pool=needs.pool,
        pool_limit=needs.pool_limit,
        cpu_hours=float(f"{sum(hours):.3g}") if hours else None,
    )
