"""A claim of a paper as a record: what the paper says, what we compared, the effect with its
interval and sample size, and the outcome. Table stages write one JSON file per paper
(``results/<scale>/claims/<paper>.json``); the tables' markdown and the full report are rendered from
these records and never read back from prose.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages.claims.stats import Estimate, Outcome, includes
from stages.utils.errors import DataError
from stages.utils.io import write_json

CLAIMS_VERSION = 1


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
    p_value: float | None = None
    paper: float | None = None
    paper_in_interval: bool | None = None

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
        )


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

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["outcome"] = str(self.outcome)
        return data


REQUIRED = [f.name for f in dataclasses.fields(ClaimRecord) if f.default is dataclasses.MISSING]
QUANTITY_REQUIRED = [f.name for f in dataclasses.fields(Quantity) if f.default is dataclasses.MISSING]
EFFECT_REQUIRED = [f.name for f in dataclasses.fields(Effect) if f.default is dataclasses.MISSING]


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


def _from_dict(data: dict[str, Any], where: str) -> ClaimRecord:
    _require(data, REQUIRED, where, _fields(ClaimRecord))
    try:
        outcome = Outcome(data["outcome"])
    except ValueError:
        allowed = ", ".join(repr(str(o)) for o in Outcome)
        raise DataError(f"{where}: field 'outcome' is {data['outcome']!r}, not one of {allowed}") from None
    quantities = []
    for i, q in enumerate(data.get("quantities", [])):
        _require(q, QUANTITY_REQUIRED, f"{where}, quantities[{i}]", _fields(Quantity))
        quantities.append(Quantity(**q))
    effect = data.get("effect")
    if effect is not None:
        _require(effect, EFFECT_REQUIRED, f"{where}, effect", _fields(Effect))
        effect = Effect(**effect)
    return ClaimRecord(
        **{
            **data,
            "outcome": outcome,
            "quantities": tuple(quantities),
            "effect": effect,
            "parts": tuple(data.get("parts", ())),
            "models": tuple(data.get("models", ())),
        }
    )


@dataclass(frozen=True)
class ClaimsFile:
    """One paper's claims as one table stage wrote them."""

    paper: str
    title: str
    scale: str
    claims: tuple[ClaimRecord, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": CLAIMS_VERSION,
            "paper": self.paper,
            "title": self.title,
            "scale": self.scale,
            "claims": [c.to_dict() for c in self.claims],
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
    except DataError as exc:
        raise DataError(f"{exc}; {fix}") from None
    return ClaimsFile(paper=data["paper"], title=data["title"], scale=data["scale"], claims=tuple(records))
