"""What every paper's claims share: the models' health (a degenerate model is no evidence),
deciding one effect, and combining parts into one claim."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from stages.claims.evidence import Evaluation, degenerate_reason
from stages.claims.record import ClaimRecord, Effect, Quantity
from stages.claims.settings import ClaimSettings
from stages.claims.stats import Estimate, Outcome, combine


@dataclass
class ClaimBook:
    """The claims of one paper as they are made, with the models' health: model -> why it is
    degenerate (absent when it is not)."""

    paper: str
    settings: ClaimSettings
    degenerate: dict[str, str] = field(default_factory=dict)
    records: list[ClaimRecord] = field(default_factory=list)

    def check_model(self, clean: Evaluation, num_classes: int) -> None:
        reason = degenerate_reason(clean, num_classes, self.settings.alpha)
        if reason:
            self.degenerate[clean.model] = reason

    def add(self, record: ClaimRecord) -> ClaimRecord:
        self.records.append(record)
        return record

    def decide(
        self, estimate: Estimate, rule: Callable[[Estimate], Outcome], models: Iterable[str]
    ) -> tuple[Outcome, str]:
        """The outcome of one effect: degenerate when a model it rests on is, else ``rule`` on
        the interval, gated by the minimum sample size."""
        reasons = [self.degenerate[m] for m in dict.fromkeys(models) if m in self.degenerate]
        if reasons:
            return Outcome.DEGENERATE, "; ".join(reasons)
        return self.settings.gate(estimate, rule(estimate))

    def effect_claim(
        self,
        *,
        claim_id: str,
        claim: str,
        quote: str,
        section: str,
        dataset: str,
        rule_text: str,
        rule: Callable[[Estimate], Outcome],
        effect: Effect,
        estimate: Estimate,
        quantities: Sequence[Quantity],
        models: Sequence[str],
        ours: bool = False,
        note: str = "",
    ) -> ClaimRecord:
        outcome, reason = self.decide(estimate, rule, models)
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
        outcome = combine([p.outcome for p in parts])
        pending = [p for p in parts if p.outcome != Outcome.HOLDS]
        why = (
            "parts not holding: " + ", ".join(f"{p.claim_id} ({p.outcome})" for p in pending)
            if pending
            else ""
        )
        degenerate = sorted({p.reason for p in parts if p.outcome == Outcome.DEGENERATE})
        reason = "; ".join(x for x in (why, *degenerate) if x)
        return self.add(
            ClaimRecord(
                paper=self.paper,
                claim_id=claim_id,
                claim=claim,
                quote=quote,
                section=section,
                dataset=dataset,
                rule="holds when every part holds; degenerate or does not hold when a part is",
                outcome=outcome,
                reason=reason,
                parts=tuple(p.claim_id for p in parts),
                ours=ours,
                note=note,
                models=tuple(dict.fromkeys(m for p in parts for m in p.models)),
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
        ours: bool = False,
    ) -> ClaimRecord:
        return self.add(
            ClaimRecord(
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
            )
        )
