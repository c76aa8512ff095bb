"""The pixel-space report as the pixel_table stage writes it: the table, its claims
(stages/claims/pixel_space.py), its markdown and its figures, everything computed before anything
is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.claims.evals import eval_path
from stages.claims.evidence import evaluation as claim_evaluation
from stages.claims.feasibility import Feasibility
from stages.claims.pixel_space import PAPER as PAPER_KEY
from stages.claims.pixel_space import TITLE as PAPER_TITLE
from stages.claims.pixel_space import pixel_claims
from stages.claims.record import ClaimRecord, ClaimsFile, write_claims
from stages.claims.settings import ClaimSettings
from stages.report.markdown import write_table
from stages.report.pixel_figures import save_figures
from stages.report.pixel_markdown import to_markdown
from stages.report.pixel_paper import paper_generations, paper_value
from stages.report.pixel_table import ROLE_TITLES, PixelTable, build_pixel_table


def pixel_space_claims(
    table: PixelTable, evals_dir: Path, settings: ClaimSettings, datasets_dir: Path | None = None
) -> list[ClaimRecord]:
    """The paper's claims judged on the table's evaluations (stages/claims/pixel_space.py)."""
    blocks = {
        (role, p.region, p.pixels): (
            table.attacks[(role, p.region, p.pixels)],
            str(eval_path(evals_dir, model, p.attack)),
        )
        for role, model in table.roles.items()
        for p in table.inputs
        if (role, p.region, p.pixels) in table.attacks
    }
    # The degenerate-model check: each model's clean evaluation and its number of classes.
    classes = {role: int(block["num_classes"]) for (role, _, _), block in table.attacks.items()}
    clean = {}
    for role, record in table.natural_evals.items():
        if role in classes and table.natural is not None:
            model = table.roles[role]
            path = eval_path(evals_dir, model, table.natural)
            clean[role] = (claim_evaluation(record, path, model, table.natural), classes[role])
    searches = {
        search: {
            (role, p.region, p.pixels): (
                table.search_attacks[search][(role, p.region, p.pixels)],
                str(eval_path(evals_dir, model, p.attack)),
            )
            for role, model in table.roles.items()
            for p in columns
            if (role, p.region, p.pixels) in table.search_attacks[search]
        }
        for search, columns in table.searches.items()
    }
    return pixel_claims(
        table.roles,
        ROLE_TITLES,
        blocks,
        table.pixels,
        paper_value,
        paper_generations,
        settings,
        table.dataset,
        clean,
        searches,
        None if datasets_dir is None else Feasibility(evals_dir, datasets_dir, settings.alpha),
    )


def write_pixel_report(
    spec: dict[str, Any],
    evals_dir: Path,
    out: Path,
    figures_dir: Path,
    scale: str,
    *,
    claims_path: Path,
    settings: ClaimSettings,
    datasets_dir: Path | None = None,
) -> None:
    """Build the report from ``spec`` (params' ``tables.pixel_space``) and write ``out``.csv,
    ``out``.md, the four figures under ``figures_dir`` and the claim records. A missing
    evaluation is listed in the report (its model's claims "not tested"), not raised; an
    unreadable or mismatched one is a DataError naming its file, raised before any output."""
    table = build_pixel_table(spec, evals_dir)
    claims = pixel_space_claims(table, evals_dir, settings, datasets_dir)
    figures = save_figures(table, figures_dir)
    write_claims(claims_path, ClaimsFile.of(PAPER_KEY, PAPER_TITLE, scale, claims))
    markdown = to_markdown(
        table, claims, scale=scale, level=settings.level, figures=figures, claims_path=claims_path
    )
    write_table(out, table.csv_frame, markdown)
