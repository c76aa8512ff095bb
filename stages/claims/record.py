"""A claim of a paper as a record: what the paper says, what we compared, the effect with its
interval and sample size, and the outcome. Table stages write one JSON file per paper
(``results/<scale>/claims/<paper>.json``); the tables' markdown and the full report are rendered from
these records and never read back from prose.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.claims.stats import Estimate, Outcome, includes
from stages.utils.errors import DataError
from stages.utils.io import write_json

# 2: Newcombe paired score intervals, the rule's p with Holm's adjustment per family, the
# small-sample flag, the model-health list and what it would take to decide a claim.
CLAIMS_VERSION = 2


@dataclass(frozen=True)
class Quantity:
    """One number a claim compares, in the unit the table shows (``%`` for rates), with its
    sample size, its own interval where it is a rate, and the file it comes from."""

    label: str
    value: float
    unit: str
    n: int
    source: str
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Effect:
    """The effect the outcome is decided on (e.g. a difference in points), with its interval,
    how the interval was computed, and the paper's effect in the same units where it gives one."""

    label: str
    unit: str
    value: float
    low: float
    high: float
    n: int
    method: str
    paired: bool
    p_value: float | None = None  # McNemar's exact p (paired rates only)
    paper: float | None = None
    paper_in_interval: bool | None = None
    # (a only, b only): for paired 0/1 outcomes the information is in these, not in n.
    discordant: tuple[int, int] | None = None
    sd: float | None = None  # one image's spread in the effect's units (for power)
    # The outcome rule as data (stats.Rule): "above" / "below" a bound, or "within" ±bound.
    rule_kind: str | None = None
    rule_bound: float | None = None
    rule_p: float | None = None  # the smallest level at which the rule's interval decides
    holm_p: float | None = None  # rule_p adjusted by Holm over the claim's family

    @classmethod
    def of(cls, label: str, unit: str, estimate: Estimate, paper: float | None = None) -> Effect:
        return cls(
            label=label,
            unit=unit,
            value=estimate.value,
            low=estimate.low,
            high=estimate.high,
            n=estimate.n,
            method=str(estimate.method),
            paired=estimate.paired,
            p_value=estimate.p_value,
            paper=paper,
            paper_in_interval=includes(estimate, paper),
            discordant=estimate.discordant,
            sd=estimate.sd,
        )


@dataclass(frozen=True)
class Needs:
    """What it would take to decide an undecided claim. ``constraint``: what binds, one of
    CONSTRAINTS; ``n_needed``: images for 80 % power at ``basis`` (the observed effect, or the
    paper's where ours is about 0); ``pool``: test images this scale could supply; the cost of
    evaluating ``n_needed`` images in CPU hours on the machine that made the records."""

    constraint: str
    text: str
    n_now: int | None = None
    n_needed: int | None = None
    basis: str = ""
    pool: int | None = None
    pool_limit: str = ""
    cpu_hours: float | None = None
    gpu_minutes: float | None = None


CONSTRAINTS = {
    "images": "more images from the pool this scale already has",
    "data": "more data than the mirror or the scale holds",
    "weights": "pretrained weights that cannot be loaded here",
    "code": "an attack or method Backdrop lacks",
    "model": "a model that learns (more training, a better recipe)",
    "compute": "evaluations not run at this scale",
    "not computable": "no power calculation is possible from these numbers",
}


@dataclass(frozen=True)
class ClaimRecord:
    """``claim_id`` is unique within its paper's file. ``parts`` names the records a composite
    claim combines (its own ``effect`` is then None). ``ours``: a claim of our extension, not
    the paper's. ``rule``: how the interval became the outcome; ``reason``: why this outcome,
    in words (always set for degenerate, inconclusive and not-tested outcomes); ``note``: how
    it was measured where that limits the reading."""

    paper: str
    claim_id: str
    claim: str
    quote: str
    section: str
    dataset: str
    rule: str
    outcome: Outcome
    reason: str
    quantities: tuple[Quantity, ...] = ()
    effect: Effect | None = None
    parts: tuple[str, ...] = ()
    ours: bool = False
    models: tuple[str, ...] = field(default=())
    note: str = ""  # how it was measured, where that limits the reading (e.g. unpaired counts)
    # The outcome at the claim's own level, before Holm's adjustment over its family; equal to
    # ``outcome`` unless the adjustment made a decided claim inconclusive.
    outcome_unadjusted: Outcome | None = None
    family: str = ""  # the multiplicity family: the paper's claims, or ours
    small_sample: bool = False  # fewer images than params.yaml claims.min_samples (a flag only)
    needs: Needs | None = None  # for an undecided claim: what it would take to decide it

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["outcome"] = str(self.outcome)
        if self.outcome_unadjusted is not None:
            data["outcome_unadjusted"] = str(self.outcome_unadjusted)
        return data


REQUIRED = [f.name for f in dataclasses.fields(ClaimRecord) if f.default is dataclasses.MISSING]
QUANTITY_REQUIRED = [f.name for f in dataclasses.fields(Quantity) if f.default is dataclasses.MISSING]
EFFECT_REQUIRED = [f.name for f in dataclasses.fields(Effect) if f.default is dataclasses.MISSING]
NEEDS_REQUIRED = [f.name for f in dataclasses.fields(Needs) if f.default is dataclasses.MISSING]


def _require(data: Any, names: list[str], where: str, known: list[str] | None = None) -> None:
    """``data`` is an object holding every field of ``names`` and, when ``known`` is given, no other."""
    if not isinstance(data, dict):
        raise DataError(f"{where}: expected an object, got {type(data).__name__}")
    for name in names:
        if name not in data:
            raise DataError(f"{where}: missing field {name!r}")
    extra = sorted(set(data) - set(known)) if known is not None else []
    if extra:
        raise DataError(f"{where}: unknown field(s) {', '.join(map(repr, extra))}")


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _outcome(value: Any, where: str, name: str) -> Outcome:
    try:
        return Outcome(value)
    except ValueError:
        allowed = ", ".join(repr(str(o)) for o in Outcome)
        raise DataError(f"{where}: field {name!r} is {value!r}, not one of {allowed}") from None


def _from_dict(data: dict[str, Any], where: str) -> ClaimRecord:
    _require(data, REQUIRED, where, _fields(ClaimRecord))
    outcome = _outcome(data["outcome"], where, "outcome")
    unadjusted = data.get("outcome_unadjusted")
    if unadjusted is not None:
        unadjusted = _outcome(unadjusted, where, "outcome_unadjusted")
    needs = data.get("needs")
    if needs is not None:
        _require(needs, NEEDS_REQUIRED, f"{where}, needs", _fields(Needs))
        if needs["constraint"] not in CONSTRAINTS:
            raise DataError(
                f"{where}: field 'needs.constraint' is {needs['constraint']!r}, not one of "
                + ", ".join(map(repr, CONSTRAINTS))
            )
        needs = Needs(**needs)
    quantities = []
    for i, q in enumerate(data.get("quantities", [])):
        _require(q, QUANTITY_REQUIRED, f"{where}, quantities[{i}]", _fields(Quantity))
        quantities.append(Quantity(**q))
    effect = data.get("effect")
    if effect is not None:
        _require(effect, EFFECT_REQUIRED, f"{where}, effect", _fields(Effect))
        discordant = effect.get("discordant")
        effect = Effect(**{**effect, "discordant": None if discordant is None else tuple(discordant)})
    return ClaimRecord(
        **{
            **data,
            "outcome": outcome,
            "outcome_unadjusted": unadjusted,
            "needs": needs,
            "quantities": tuple(quantities),
            "effect": effect,
            "parts": tuple(data.get("parts", ())),
            "models": tuple(data.get("models", ())),
        }
    )


@dataclass(frozen=True)
class ModelHealth:
    """Whether a model can serve as evidence, from its clean evaluation. ``tests`` names each
    degeneracy test that fired (empty: healthy); ``text`` says it in words, telling a constant
    predictor from an overconfident (overfit) one."""

    model: str
    source: str
    n: int
    accuracy: float
    majority_share: float | None
    modal_class: int | None
    modal_share: float | None
    loss: float
    log_classes: float
    tests: tuple[str, ...]
    text: str

    @property
    def degenerate(self) -> bool:
        return bool(self.tests)


class ClaimList(list[ClaimRecord]):
    """A paper's records, in order, with the health of every model they rest on."""

    def __init__(self, records: Iterable[ClaimRecord] = (), health: Iterable[ModelHealth] = ()) -> None:
        super().__init__(records)
        self.health = tuple(health)


@dataclass(frozen=True)
class ClaimsFile:
    """One paper's claims as one table stage wrote them."""

    paper: str
    title: str
    scale: str
    claims: tuple[ClaimRecord, ...]
    models: tuple[ModelHealth, ...] = ()

    @classmethod
    def of(cls, paper: str, title: str, scale: str, claims: Iterable[ClaimRecord]) -> ClaimsFile:
        return cls(paper, title, scale, tuple(claims), tuple(getattr(claims, "health", ())))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CLAIMS_VERSION,
            "paper": self.paper,
            "title": self.title,
            "scale": self.scale,
            "claims": [c.to_dict() for c in self.claims],
            "models": [dataclasses.asdict(m) for m in self.models],
        }


def write_claims(path: Path, claims: ClaimsFile) -> None:
    ids = [c.claim_id for c in claims.claims]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"{path}: claim ids must be unique; repeated: {', '.join(duplicates)}")
    write_json(path, claims.to_dict())


def read_claims(path: Path) -> ClaimsFile:
    """A claims file, checked field by field: a missing or unknown field is a DataError that
    names the file, the claim and the field."""
    fix = "rerun the table stage that writes it (see the README's Results section)"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: claims file missing; {fix}") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); {fix}") from None
    try:
        _require(data, ["paper", "title", "scale", "claims"], str(path))
        if not isinstance(data["claims"], list):
            raise DataError(f"{path}: field 'claims' must be a list")
        records = []
        for i, item in enumerate(data["claims"]):
            name = item.get("claim_id", "?") if isinstance(item, dict) else "?"
            records.append(_from_dict(item, f"{path}: claims[{i}] ({name})"))
        models = []
        for i, item in enumerate(data.get("models", [])):
            _require(item, _fields(ModelHealth), f"{path}: models[{i}]", _fields(ModelHealth))
            models.append(ModelHealth(**{**item, "tests": tuple(item["tests"])}))
    except DataError as exc:
        raise DataError(f"{exc}; {fix}") from None
    return ClaimsFile(
        paper=data["paper"],
        title=data["title"],
        scale=data["scale"],
        claims=tuple(records),
        models=tuple(models),
    )
