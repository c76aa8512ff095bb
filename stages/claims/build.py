"""What every paper's claims share: the models' health (a degenerate model is no evidence),
deciding one effect by the one outcome rule, combining parts into one claim, Holm's adjustment
over each family of claims, and what it would take to decide the claims left undecided."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from stages.claims.evidence import Evaluation, model_health
from stages.claims.feasibility import Feasibility, UnitCost, needs_for
from stages.claims.record import ClaimList, ClaimRecord, Effect, ModelHealth, Quantity
from stages.claims.settings import ClaimSettings, DatasetFacts
from stages.claims.stats import DECIDED, Estimate, Method, Outcome, Rule, combine, holm, sign_test_p

COMPOSITE_RULE = "holds when every part holds; degenerate or does not hold when a part is"
# Claims of ours (extensions the papers do not make) are a family of their own, so that adding
# one never changes the adjustment of the papers' claims.
OURS_FAMILY = "ours"


@dataclass
class ClaimBook:
    """The claims of one paper as they are made, with the models' health."""

    paper: str
    settings: ClaimSettings
    health: dict[str, ModelHealth] = field(default_factory=dict)
    records: list[ClaimRecord] = field(default_factory=list)
    # claim id -> (estimate, rule, evaluation files) of every effect, for the rule's p-value,
    # the power and the cost of more images.
    _tests: dict[str, tuple[Estimate, Rule, tuple[str, ...], UnitCost | None]] = field(default_factory=dict)

    @property
    def degenerate(self) -> dict[str, str]:
        """model -> why it is degenerate (absent when it is not)."""
        return {m: h.text for m, h in self.health.items() if h.degenerate}

    def check_model(self, clean: Evaluation, facts: DatasetFacts | int) -> ModelHealth:
        if isinstance(facts, DatasetFacts):
            health = model_health(
                clean,
                facts.num_classes,
                self.settings.alpha,
                majority_share=facts.majority_share,
                class_shares=facts.class_shares,
            )
        else:
            health = model_health(clean, facts, self.settings.alpha)
        self.health[clean.model] = health
        return health

    def add(self, record: ClaimRecord) -> ClaimRecord:
        self.records.append(record)
        return record

    def family(self, ours: bool) -> str:
        return OURS_FAMILY if ours else self.paper

    def decide(
        self, estimate: Estimate, rule: Rule, models: Iterable[str], unit: str = ""
    ) -> tuple[Outcome, str]:
        """The outcome of one effect: degenerate when a model it rests on is, inconclusive when
        the effect has no interval, else the rule on the interval; the reason comes from the
        numbers."""
        if not isinstance(rule, Rule):
            raise TypeError(f"a claim's rule must be a stats.Rule (above/below/within), not {rule!r}")
        reasons = [self.degenerate[m] for m in dict.fromkeys(models) if m in self.degenerate]
        if reasons:
            return Outcome.DEGENERATE, "; ".join(reasons)
        if estimate.method == Method.NONE:
            return Outcome.INCONCLUSIVE, "only summary numbers: no interval"
        outcome = rule(estimate)
        if estimate.method == Method.CONSTANT and outcome in DECIDED:
            p = sign_test_p(estimate.n)
            if p >= self.settings.alpha:
                return Outcome.INCONCLUSIVE, (
                    f"every one of the {estimate.n} images gives {estimate.value:.3g}: no spread, and a "
                    f"sign test on {estimate.n} images reaches p = {p:.2g} at best, not below "
                    f"{self.settings.alpha:g}"
                )
        return outcome, rule.explain(estimate, self.settings.level, unit)

    def effect_claim(
        self,
        *,
        claim_id: str,
        claim: str,
        quote: str,
        section: str,
        dataset: str,
        rule_text: str,
        rule: Rule,
        effect: Effect,
        estimate: Estimate,
        quantities: Sequence[Quantity],
        models: Sequence[str],
        ours: bool = False,
        note: str = "",
        precondition: str | None = None,
        sources: Sequence[str] = (),
        unit_cost: UnitCost | None = None,
    ) -> ClaimRecord:
        """One effect decided by ``rule``; ``precondition``: why the claim cannot be scored at
        all although its models are sound (e.g. a salience model that fails its sanity check),
        which makes it degenerate; ``sources``: the evaluation files the effect reads, where the
        quantities do not name them all; ``unit_cost``: what one more unit of n costs, where it is
        not one image of those evaluations."""
        outcome, reason = self.decide(estimate, rule, models, effect.unit)
        if precondition and outcome != Outcome.DEGENERATE:
            outcome, reason = Outcome.DEGENERATE, precondition
        files = tuple(dict.fromkeys([*sources, *(q.source for q in quantities)]))
        self._tests[claim_id] = (estimate, rule, files, unit_cost)
        effect = dataclasses.replace(effect, rule_kind=rule.kind, rule_bound=rule.bound)
        return self.add(
            ClaimRecord(
                paper=self.paper,
                claim_id=claim_id,
                claim=claim,
                quote=quote,
                section=section,
                dataset=dataset,
                rule=rule_text,
                outcome=outcome,
                reason=reason,
                note=note,
                quantities=tuple(quantities),
                effect=effect,
                ours=ours,
                models=tuple(dict.fromkeys(models)),
                family=self.family(ours),
                small_sample=self.settings.too_small(estimate),
            )
        )

    def composite(
        self,
        *,
        claim_id: str,
        claim: str,
        quote: str,
        section: str,
        dataset: str,
        parts: Sequence[ClaimRecord],
        ours: bool = False,
        note: str = "",
    ) -> ClaimRecord:
        """A claim that holds only when every part does (see stats.combine)."""
        outcome, reason = _combined(parts)
        return self.add(
            ClaimRecord(
                paper=self.paper,
                claim_id=claim_id,
                claim=claim,
                quote=quote,
                section=section,
                dataset=dataset,
                rule=COMPOSITE_RULE,
                outcome=outcome,
                reason=reason,
                parts=tuple(p.claim_id for p in parts),
                ours=ours,
                note=note,
                models=tuple(dict.fromkeys(m for p in parts for m in p.models)),
                family=self.family(ours),
                small_sample=any(p.small_sample for p in parts),
            )
        )

    def not_tested(
        self,
        *,
        claim_id: str,
        claim: str,
        quote: str,
        section: str,
        dataset: str,
        reason: str,
        constraint: str,
        ours: bool = False,
    ) -> ClaimRecord:
        """A claim we cannot test; ``constraint`` says what binds (stages.claims.record.CONSTRAINTS)."""
        record = ClaimRecord(
            paper=self.paper,
            claim_id=claim_id,
            claim=claim,
            quote=quote,
            section=section,
            dataset=dataset,
            rule="–",
            outcome=Outcome.NOT_TESTED,
            reason=reason,
            ours=ours,
            family=self.family(ours),
        )
        return self.add(
            dataclasses.replace(record, needs=needs_for(record, None, None, None, {}, constraint))
        )

    def finish(self, feasibility: Feasibility | None = None) -> ClaimList:
        """The records with Holm's adjustment applied per family and, for every undecided
        claim, what it would take to decide it."""
        alpha = self.settings.alpha
        by_id = {r.claim_id: r for r in self.records}
        families: dict[str, list[str]] = {}
        raw: dict[str, float] = {}
        for claim_id, (estimate, rule, _, _) in self._tests.items():
            record = by_id[claim_id]
            if record.outcome not in (*DECIDED, Outcome.INCONCLUSIVE) or estimate.method == Method.NONE:
                continue
            p = rule.p_value(estimate)
            if p is None:
                continue
            raw[claim_id] = p
            families.setdefault(record.family, []).append(claim_id)
        adjusted: dict[str, float] = {}
        # The level Holm's step-down asks of each test: alpha / (tests not yet passed), by rank of
        # its p. What would decide an undecided claim is sized at that level.
        holm_level: dict[str, float] = {}
        for ids in families.values():
            adjusted.update(zip(ids, holm([raw[i] for i in ids], alpha), strict=True))
            for rank, i in enumerate(sorted(ids, key=lambda i: raw[i])):
                holm_level[i] = alpha / (len(ids) - rank)
        sizes = {i: len(ids) for ids in families.values() for i in ids}
        done: dict[str, ClaimRecord] = {}
        for record in self.records:
            if record.parts:
                outcome, reason = _combined([done[p] for p in record.parts])
                record = dataclasses.replace(
                    record,
                    outcome=outcome,
                    reason=reason,
                    outcome_unadjusted=_combined_unadjusted([done[p] for p in record.parts]),
                )
            elif record.claim_id in raw and record.effect is not None:
                record = _adjusted(
                    record, raw[record.claim_id], adjusted[record.claim_id], sizes[record.claim_id], alpha
                )
            else:
                record = dataclasses.replace(record, outcome_unadjusted=record.outcome)
            done[record.claim_id] = record
        finished = []
        for record in done.values():
            if record.outcome not in DECIDED and record.needs is None:
                estimate, rule, files, unit_cost = self._tests.get(record.claim_id, (None, None, (), None))
                parts = [done[p] for p in record.parts]
                needs = needs_for(
                    record,
                    estimate,
                    rule,
                    feasibility,
                    self.health,
                    parts=parts,
                    sources=files,
                    level=holm_level.get(record.claim_id, alpha),
                    unit_cost=unit_cost,
                )
                record = dataclasses.replace(record, needs=needs)
                done[record.claim_id] = record
            finished.append(record)
        return ClaimList(finished, self.health.values())


def _adjusted(record: ClaimRecord, p: float, p_holm: float, family_size: int, alpha: float) -> ClaimRecord:
    """A leaf with its rule's p and Holm's adjusted p; a claim decided at its own level but not
    after the adjustment becomes inconclusive, and its reason says so."""
    effect = dataclasses.replace(record.effect, rule_p=p, holm_p=p_holm)  # type: ignore[arg-type]
    outcome, reason = record.outcome, record.reason
    if outcome in DECIDED and p_holm >= alpha:
        outcome = Outcome.INCONCLUSIVE
        reason = (
            f"{record.outcome} at its own level ({reason}; p = {p:.3g}), but not after Holm's adjustment "
            f"over the {family_size} tests of its family (adjusted p = {p_holm:.3g} ≥ {alpha:g})"
        )
    return dataclasses.replace(
        record, effect=effect, outcome=outcome, reason=reason, outcome_unadjusted=record.outcome
    )


def _combined(parts: Sequence[ClaimRecord]) -> tuple[Outcome, str]:
    outcome = combine([p.outcome for p in parts])
    pending = [p for p in parts if p.outcome != Outcome.HOLDS]
    why = "parts not holding: " + ", ".join(f"{p.claim_id} ({p.outcome})" for p in pending) if pending else ""
    degenerate = sorted({p.reason for p in parts if p.outcome == Outcome.DEGENERATE})
    return outcome, "; ".join(x for x in (why, *degenerate) if x)


def _combined_unadjusted(parts: Sequence[ClaimRecord]) -> Outcome:
    return combine([p.outcome_unadjusted or p.outcome for p in parts])
