"""The pixel-space report's markdown: Tables I, II and IV beside the paper's, the search
comparison, how the evaluations ran, and the claims' section (rendered from the records)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from stages.claims.pixel_space_base import BACKGROUND, FOREGROUND, ORIGINAL
from stages.claims.record import ClaimRecord
from stages.claims.render import claim_section_lines
from stages.claims.stats import Outcome
from stages.report.markdown import MISSING, text_table
from stages.report.pixel_figures import FIGURE_CAPTIONS
from stages.report.pixel_paper import (
    PAPER,
    PAPER_GENERATION_PIXELS,
    PAPER_IMAGES,
    PAPER_QUOTED_DROPS,
    paper_generations,
    paper_value,
)
from stages.report.pixel_table import (
    ATTACKED_SET_TEXT,
    DATASET_TITLES,
    MAIN_SET,
    METRICS,
    PixelTable,
    column_title,
    counts_text,
    fmt,
    ours_lookup,
    paper_lookup,
    percent,
    region_title,
    relative_drops,
    role_title,
)

# --- markdown ----------------------------------------------------------------------------------


def _ours_paper(ours: Any, paper: Any) -> str:
    return f"{fmt(ours)} ({fmt(paper)})"


def sample_sizes(table: PixelTable) -> str:
    """The sample sizes every section quotes: few images make every rate here coarse."""
    frame = table.csv_frame

    def per_role(column: str) -> str:
        return "; ".join(
            f"{role_title(r)} {counts_text(frame.loc[frame['role'] == r, column].tolist())}"
            for r in table.roles
        )

    return (
        f"Sample sizes: the first {counts_text(frame['samples'].tolist())} test images per evaluation "
        f"(paper: {PAPER_IMAGES} random ones); attacked images: {per_role('attacked')}; of them classified "
        f"correctly: {per_role('correct_attacked')}; targeted images (each attacked towards every other "
        f"class): {per_role('targeted_images')}."
    )


def _distinct(frame: pd.DataFrame, column: str) -> str:
    values = sorted({str(v) for v in frame[column].tolist() if isinstance(v, str)})
    return "/".join(values) or MISSING


def method_text(table: PixelTable) -> str:
    """How each set of columns ran, as its evaluations recorded it: search, DE strategy and the
    attacked set, with what Untargeted1's denominator then is."""
    parts = []
    for spec_set, frame in table.csv_frame.groupby("spec_set", sort=False):
        sets = sorted({str(v) for v in frame["attacked_set"].tolist() if isinstance(v, str)})
        attacked = "; ".join(f"{v}: {ATTACKED_SET_TEXT.get(v, v)}" for v in sets) or MISSING
        parts.append(
            f"`{spec_set}`: search {_distinct(frame, 'search')}, strategy {_distinct(frame, 'strategy')}, "
            f"attacked {attacked}"
        )
    return (
        "Method, as the evaluations recorded it (the paper's: search composite, §III-D; strategy rand1, "
        "Eq. 11; attacked all, §IV-B): "
        + ("; ".join(parts) or MISSING)
        + ". Untargeted1 is over every attacked image (under attacked all, the paper's denominator); "
        "Untargeted1 over correct is over the attacked images the model classifies correctly (ours)."
    )


def table_i(table: PixelTable) -> pd.DataFrame:
    rows = []
    for role, model in table.roles.items():
        clean = table.natural_evals.get(role)
        paper = PAPER.get(role)
        rows.append(
            {
                "network": role_title(role),
                "model": model,
                "test images": MISSING if clean is None else str(int(clean["samples"])),
                "accuracy %: ours (paper)": _ours_paper(
                    None if clean is None else percent(float(clean["accuracy"])),
                    None if paper is None else paper.accuracy,
                ),
            }
        )
    return pd.DataFrame(rows)


# Our rows of Table II, each after the paper's metric it differs from: Untargeted1's successes
# over our denominator, and Untargeted2 under our definition (any label change).
OURS_METRICS = {
    "untargeted1": {"untargeted1_correct": "Untargeted1 over correct (ours)"},
    "untargeted2": {"untargeted2_label_change": "Untargeted2, any label change (ours)"},
}


def table_ii(table: PixelTable) -> pd.DataFrame:
    """Table II as the paper lays it out: a row per model x metric, a column per region x pixels,
    each cell "ours (paper)"; our rows (ours alone) follow the paper's metric they differ from."""
    indexed = table.frame.set_index(["role", "region", "pixels"])
    metrics = {}
    for metric, title in METRICS.items():
        metrics[metric] = title
        metrics.update(OURS_METRICS.get(metric, {}))
    rows = []
    for role in table.roles:
        for metric, title in metrics.items():
            row = {"network": role_title(role), "metric": f"{title} %"}
            for p in table.inputs:
                ours = indexed.loc[(role, p.region, p.pixels), metric]
                row[column_title(p.region, p.pixels)] = _ours_paper(
                    ours, paper_value(role, metric, p.region, p.pixels)
                )
            rows.append(row)
    return pd.DataFrame(rows)


def search_comparison(table: PixelTable, metric: str) -> pd.DataFrame:
    """Ours: ``metric`` by region for each search, a row per model x pixels; the whole image's
    column serves every search (they coincide there), the foreground and background have one
    column per search."""
    main = table.frame.set_index(["role", "region", "pixels"])[metric]
    other = {
        search: table.comparison[table.comparison["spec_set"] == f"searches.{search}"].set_index(
            ["role", "region", "pixels"]
        )[metric]
        for search in table.searches
    }
    rows = []
    for role in table.roles:
        for k in table.pixels:
            row: dict[str, str] = {"network": role_title(role), "pixels": str(k)}
            for region in (ORIGINAL, FOREGROUND, BACKGROUND):
                key = (role, region, k)
                if region == ORIGINAL:
                    row[f"{region_title(region)} (every search)"] = fmt(
                        main.get(key) if key in main.index else None
                    )
                    continue
                row[f"{region_title(region)} ({table.main_search})"] = fmt(
                    main.get(key) if key in main.index else None
                )
                for search, values in other.items():
                    row[f"{region_title(region)} ({search})"] = fmt(
                        values.get(key) if key in values.index else None
                    )
            rows.append(row)
    return pd.DataFrame(rows)


# Table IV's rows per network: csv column -> how it counts generations. The paper's count first,
# since the paper's numbers (in parentheses) compare with it.
GENERATION_COUNTS = {
    "mean_generations_from_1": "from 1, the paper's count",
    "mean_generations": "from 0, ours",
}


def table_iv(table: PixelTable) -> pd.DataFrame:
    """Table IV: mean generations to a successful untargeted attack, a row per network and way of
    counting; the paper's values (1 pixel only) sit beside ours counted as it counts."""
    indexed = table.frame.set_index(["role", "region", "pixels"])
    rows = []
    for role in table.roles:
        for column, counted in GENERATION_COUNTS.items():
            row = {"network": role_title(role), "generations counted": counted}
            for p in sorted(table.inputs, key=lambda p: p.pixels):
                ours = indexed.loc[(role, p.region, p.pixels), column]
                paper = paper_generations(role, p.region, p.pixels) if column != "mean_generations" else None
                row[column_title(p.region, p.pixels)] = (
                    fmt(ours) if paper is None else _ours_paper(ours, paper)
                )
            rows.append(row)
    return pd.DataFrame(rows)


def _drops_frame(table: PixelTable, k: int) -> pd.DataFrame:
    rows = []
    for metric in PAPER_QUOTED_DROPS:
        ours = relative_drops(list(table.roles), k, ours_lookup(table, metric))
        paper = relative_drops(list(PAPER), PAPER_GENERATION_PIXELS, paper_lookup(metric))
        for region in (FOREGROUND, BACKGROUND):
            value, models = ours[region]
            rows.append(
                {
                    "metric": METRICS[metric],
                    "region": region,
                    "ours: mean relative drop %": fmt(value),
                    "ours: models": str(models),
                    "paper (quoted) %": fmt(PAPER_QUOTED_DROPS[metric][region]),
                    "paper (from Table II) %": fmt(paper[region][0]),
                }
            )
    return pd.DataFrame(rows)


def claim_section(
    table: PixelTable, claims: Sequence[ClaimRecord], level: str, claims_path: Path
) -> list[str]:
    k = min(table.pixels) if table.pixels else PAPER_GENERATION_PIXELS
    return [
        "## The paper's claims and our verdicts",
        "",
        f"Each outcome comes from a {level} interval (`{claims_path.as_posix()}` holds the records). "
        "Every region of a model attacks the same images, so regions are compared paired over images, and a "
        "model's verdict pools its pixel counts per image (each image's mean outcome over k) rather than "
        "turning on one cell. `P1`: background vs foreground success (`P1.below`: background below "
        "foreground; `P1.far`: the background's gap below the whole image more than twice the foreground's); "
        "`P2`: targeted success; `P3`: generations to success (Table IV), each against the foreground and "
        "(`.whole`) the whole image; `P4`: the adversarial class's confidence across regions; `P8`: the "
        "foreground about as vulnerable as the whole image; `P9`: more pixels, more success; `P10`: the "
        "confidence the same at every pixel count; `P11`: fewer target classes from the background (Fig. 3); "
        "`P12`: the fitness curves (Fig. 6). Ours: `P6.<search>`, P1's rules with the foreground and "
        "background attacked by another search (the whole image shared); `P7.<search>`: that search raises "
        "background success more than foreground success, i.e. part of the paper's gap comes from its "
        "search. Success here is over every attacked image.",
        "",
        sample_sizes(table),
        "",
        method_text(table),
        "",
        *survival_lines(table, claims),
        *claim_section_lines(claims),
        f"Average relative drop at {k} pixel(s) from the whole image to each region, (original − region) "
        "/ original over the models with a success on the whole image (the paper quotes its 1-pixel "
        "drops; the last column recomputes them from its Table II):",
        "",
        text_table(_drops_frame(table, k)),
        "",
    ]


SURVIVAL = {
    Outcome.HOLDS: "yes",
    Outcome.FAILS: "no",
    Outcome.INCONCLUSIVE: "undecided",
    Outcome.DEGENERATE: "undecided (a model is degenerate)",
    Outcome.NOT_TESTED: "not tested",
}


def survival_lines(table: PixelTable, claims: Sequence[ClaimRecord]) -> list[str]:
    """Whether the paper's claim (P1, its composite search) survives each stronger search (P6),
    read from the records' outcomes."""
    by_id = {c.claim_id: c for c in claims}
    p1, lines = by_id.get("P1"), []
    for search in table.searches:
        p6, p7 = by_id.get(f"P6.{search}"), by_id.get(f"P7.{search}")
        if p1 is None or p6 is None:
            continue
        gap = f"; `P7.{search}` (the {search} search narrows the gap): **{p7.outcome}**" if p7 else ""
        lines += [
            f"Does the paper's claim (background much less vulnerable) survive the {search} search? "
            f"**{SURVIVAL[Outcome(p6.outcome)]}**: `P1` ({table.main_search} search): **{p1.outcome}**; "
            f"`P6.{search}`: **{p6.outcome}**{gap}.",
            "",
        ]
    return lines[:-1]  # the claim bullets open with a blank line of their own


def searches_section(table: PixelTable) -> list[str]:
    """Ours: success by region under each search, both denominators, and the composite search's
    idle evaluations."""
    if not table.searches:
        return []
    searches = ", ".join(
        f"`{s}`: " + "; ".join(f"{p.column}: `{p.attack}`" for p in c) for s, c in table.searches.items()
    )
    return [
        "## Searches compared (ours; no paper has this comparison)",
        "",
        f"The paper's search (composite, §III-D, Eqs. 17-18) draws a candidate's pixels over the whole image "
        "and leaves those outside the region clean, so a candidate wholly outside is the clean image; the "
        "indexed search draws them among the region's own pixels. On the whole image the two are one search, "
        "so its column serves both. Columns of `searches` "
        f"({searches}) against Table II's (`{MAIN_SET}`, the {table.main_search} search). "
        + method_text(table),
        "",
        sample_sizes(table),
        "",
        "Untargeted success over every attacked image (%; the paper's denominator under attacked all):",
        "",
        text_table(search_comparison(table, "untargeted1")),
        "",
        "Untargeted success over the attacked images the model classifies correctly (%; ours):",
        "",
        text_table(search_comparison(table, "untargeted1_correct")),
        "",
        "Share of model evaluations spent on candidates with no pixel in the region, i.e. on the clean image "
        "(%; 0 for the indexed search and on the whole image):",
        "",
        text_table(search_comparison(table, "idle_query_share")),
        "",
    ]


def to_markdown(
    table: PixelTable,
    claims: Sequence[ClaimRecord],
    *,
    scale: str,
    level: str,
    figures: Sequence[Path],
    claims_path: Path,
) -> str:
    """The report's markdown; ``claims_path``: the claim records the stage writes (its ``--claims``)."""
    sizes = sample_sizes(table)
    dataset = DATASET_TITLES.get(table.dataset, table.dataset)
    columns = "; ".join(f"{p.column}: `{p.attack}`" for p in table.inputs)
    lines = [
        "# Pixel-space attacks on the whole image, its foreground and its background",
        "",
        f"Scale: **{scale}**. Paper: Wang et al., “Analyzing Adversarial Robustness of Deep Neural "
        "Networks in Pixel Space: a Semantic Perspective”, Tables I, II, IV and Figs. 3-6 (CIFAR-10, "
        f"{PAPER_IMAGES} test images per model, GrabCut masks refined by hand; ours are automatic). "
        f"Dataset: `{table.dataset}` ({dataset}). Cells are “ours (paper)”, {MISSING} where absent.",
        "",
        sizes,
        "",
        f"Attacks (`<region>_<pixels>`): {columns}. Clean evaluation: `{table.natural or MISSING}`.",
        "",
        "## Table I: test accuracy",
        "",
        "Ours on the clean evaluation's test images; the paper's on the CIFAR-10 test set. " + sizes,
        "",
        text_table(table_i(table)),
        "",
        "## Table II: success rates and confidences (%)",
        "",
        method_text(table),
        "",
        "Untargeted1: untargeted successes / attacked images. Untargeted1 over correct (ours): the "
        "successes among the attacked images the model classifies correctly / those images. "
        "Confidence_u: mean probability of the "
        "adversarial class over untargeted successes. Untargeted2, as the paper defines it (§IV-C): "
        "targeted images on which the targeted attack succeeded “at least for one target class”, beside the "
        "paper's value; Untargeted2, any label change (ours): targeted images whose label some targeted run "
        "changed, to its target or not (never below the paper's). No claim uses Untargeted2. "
        "Targeted: targeted successes / (image, target) pairs. Confidence_t: "
        "mean target probability over targeted successes. " + sizes,
        "",
        text_table(table_ii(table)),
        "",
        "## Table IV: mean generations to a successful untargeted attack",
        "",
        "We count the initial population as generation 0; the paper's smallest means (1.36 for NiN on "
        "CIFAR-10, 1.00 for ResNet-50 on ImageNet) say it counts it as 1, so its values (in parentheses) "
        "sit beside ours + 1, and ours as counted follow. Differences between regions (claims P3, "
        f"P3.whole) do not depend on the count. The paper reports {PAPER_GENERATION_PIXELS} pixel only; "
        "other pixel counts show ours alone. " + method_text(table) + " " + sizes,
        "",
        text_table(table_iv(table)),
        "",
        *searches_section(table),
        *claim_section(table, claims, level, claims_path),
        "## Figures",
        "",
        sizes,
        "",
        *[f"- `{path}`: {FIGURE_CAPTIONS[path.name]}" for path in figures],
        "",
        "## Missing",
        "",
    ]
    if table.missing:
        lines += [f"- {role_title(m.role)} `{m.column}` (`{m.attack}`): {m.reason}" for m in table.missing]
    else:
        lines += ["None: every evaluation the spec names was found."]
    lines += [""]
    return "\n".join(lines)
