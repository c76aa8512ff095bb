"""Markdown from claim records: the bullets under a table's "Claims" heading and the one-table
summary that opens the report. Rendering only: no number is computed here."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from stages.claims.record import ClaimRecord, Effect, Needs, Quantity
from stages.claims.stats import P_FLOOR, Method, Outcome

# A path -> the markdown link target for it (the report links relative to itself). Without
# one (a table's own markdown, embedded elsewhere too) sources are shown as plain paths.
Linker = Callable[[str], str]


def number(value: float, unit: str) -> str:
    if unit in ("points", "%"):
        return f"{value:.1f}" if unit == "%" else f"{value:+.1f}"
    return f"{value:.4g}" if unit != "loss difference" else f"{value:+.4g}"


def effect_text(effect: Effect | None) -> str:
    """``+12.3 points [8.1, 16.0]`` (– for a composite claim)."""
    if effect is None:
        return "–"
    if effect.method == str(Method.NONE):
        return f"{number(effect.value, effect.unit)} {effect.unit} (no interval: means only)"
    unit = "" if effect.unit in ("loss", "loss difference", "FS", "generations") else f" {effect.unit}"
    low, high = number(effect.low, effect.unit), number(effect.high, effect.unit)
    return f"{number(effect.value, effect.unit)}{unit} [{low}, {high}]"


def paper_effect_text(effect: Effect | None) -> str:
    if effect is None or effect.paper is None:
        return "–"
    inside = {True: " (inside ours)", False: " (outside ours)", None: ""}[effect.paper_in_interval]
    return f"{number(effect.paper, effect.unit)}{inside}"


def quantity_text(q: Quantity, link: Linker | None = None) -> str:
    """``label: [12.3 %](its file) (CI 10.1–14.9, n = 500)``, or the file as a plain path."""
    interval = "" if q.low is None or q.high is None else f"CI {q.low:.1f}–{q.high:.1f}, "
    unit = " %" if q.unit == "%" else ""
    value = f"{q.value:.1f}" if q.unit == "%" else f"{q.value:.4g}"
    if link is None:
        return f"{q.label}: {value}{unit} ({interval}n = {q.n}; `{q.source}`)"
    return f"{q.label}: [{value}{unit}]({link(q.source)}) ({interval}n = {q.n})"


def p_text(p: float | None) -> str:
    """A p-value as the report prints it; the rule's search stops at P_FLOOR."""
    if p is None:
        return "–"
    return f"< {P_FLOOR:.0e}" if p <= P_FLOOR else f"{p:.2g}"


def n_text(effect: Effect | None) -> str:
    """n, and for paired 0/1 outcomes the discordant pairs that carry the information."""
    if effect is None:
        return "–"
    if effect.discordant is not None:
        return f"{effect.n} ({effect.discordant[0]}:{effect.discordant[1]} discordant)"
    return str(effect.n)


def outcome_text(record: ClaimRecord) -> str:
    """The outcome, with the small-sample flag and the unadjusted outcome where Holm changed it."""
    flags = []
    if record.outcome_unadjusted is not None and record.outcome_unadjusted != record.outcome:
        flags.append(f"{record.outcome_unadjusted} before Holm")
    if record.small_sample:
        flags.append("small sample")
    return f"**{record.outcome}**" + (f" ({'; '.join(flags)})" if flags else "")


def needs_text(needs: Needs | None) -> str:
    """What would decide an undecided claim, in one cell."""
    if needs is None:
        return "–"
    bits = [needs.constraint]
    if needs.n_needed is not None:
        pool = f" of {needs.pool:,} in the pool" if needs.pool is not None else ""
        bits.append(f"n ≈ {needs.n_needed:,}{pool}")
    if needs.cpu_hours is not None:
        bits.append(f"{needs.cpu_hours:.2g} CPU h")
    return bits[0] + ("; " + ", ".join(bits[1:]) if len(bits) > 1 else "")


def claim_bullet(record: ClaimRecord, link: Linker | None = None) -> str:
    """One claim as a bullet: id, what is claimed, outcome, effect with interval, the numbers
    compared (each linked to its file), why, and what would decide it."""
    ours = " *(our extension, not the paper's)*" if record.ours else ""
    head = f"**{record.claim_id}** ({record.dataset}){ours}: {record.claim} — {outcome_text(record)}"
    parts = [head]
    if record.effect is not None:
        e = record.effect
        tests = []
        if e.p_value is not None:
            tests.append(f"McNemar exact p = {e.p_value:.3g}")
        if e.rule_p is not None:
            tests.append(f"rule's p = {p_text(e.rule_p)}, Holm-adjusted {p_text(e.holm_p)}")
        paper = f"; paper: {number(e.paper, e.unit)}" if e.paper is not None else ""
        detail = "; ".join([f"n = {n_text(e)}", e.method, *tests])
        parts.append(f"{e.label}: {effect_text(e)}{paper} ({detail})")
    if record.parts:
        parts.append("parts: " + ", ".join(record.parts))
    if record.quantities:
        parts.append("; ".join(quantity_text(q, link) for q in record.quantities))
    if record.reason:
        parts.append(f"Why: {record.reason}")
    if record.needs is not None and record.outcome not in (Outcome.HOLDS, Outcome.FAILS):
        parts.append(f"What would decide it: {record.needs.text}")
    if record.note:
        parts.append(f"Note: {record.note}")
    # Sentences end in one period: a part that ends in one (a quoted reason) gets no second.
    return "- " + " ".join(p if p.endswith(".") else f"{p}." for p in parts)


def claim_section_lines(records: Sequence[ClaimRecord], link: Linker | None = None) -> list[str]:
    """The paper's wording once per claim group, then our verdict bullets."""
    lines: list[str] = []
    quoted: set[str] = set()
    for record in records:
        key = f"{record.section}|{record.quote}"
        if key not in quoted:
            quoted.add(key)
            lines += ["", f"> {record.section}: “{record.quote}”", ""]
        lines.append(claim_bullet(record, link))
    return [*lines, ""]


SUMMARY_COLUMNS = (
    "paper",
    "claim",
    "dataset",
    "outcome",
    "our effect [95 % CI]",
    "paper's effect",
    "n",
    "what would decide it",
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary_table(
    rows: Sequence[tuple[str, ClaimRecord]],
    link: Linker | None = None,
    sources: dict[str, str] | None = None,
    parts: Mapping[tuple[str, str], ClaimRecord] | None = None,
) -> str:
    """paper x claim x outcome x our effect [CI] x the paper's effect x n, one row per record;
    ``rows`` pairs each record with its paper's title, ``sources`` maps a paper key to its
    claims file (the effect links to it), ``parts`` maps (paper, claim id) to every record, so a
    composite claim's row counts its parts' outcomes."""
    lines = [
        "| " + " | ".join(SUMMARY_COLUMNS) + " |",
        "|" + "|".join("--:" if name in ("paper's effect", "n") else ":--" for name in SUMMARY_COLUMNS) + "|",
    ]
    for title, r in rows:
        effect = effect_text(r.effect)
        if r.effect is None and r.parts and parts is not None:
            effect = "parts: " + outcome_counts(
                [parts[(r.paper, p)] for p in r.parts if (r.paper, p) in parts]
            )
        if link is not None and sources and r.paper in sources:
            effect = f"[{effect}]({link(sources[r.paper])})"
        claim = f"{r.claim_id}: {r.claim}" + (" *(ours)*" if r.ours else "")
        decided = r.outcome in (Outcome.HOLDS, Outcome.FAILS)
        cells = [
            title,
            claim,
            r.dataset,
            outcome_text(r),
            effect,
            paper_effect_text(r.effect),
            n_text(r.effect),
            "–" if decided else needs_text(r.needs),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def outcome_counts(records: Sequence[ClaimRecord]) -> str:
    """``3 holds, 1 does not hold, 2 inconclusive`` in a fixed order."""
    counts = [(o, sum(1 for r in records if r.outcome == o)) for o in Outcome]
    return ", ".join(f"{n} {o}" for o, n in counts if n)
