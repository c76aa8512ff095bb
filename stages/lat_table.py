"""Stage: the LAT table and its claims from the evaluations that params.yaml's `tables.lat` names.

    python -m stages.lat_table --evals results/reduced/evals --datasets results/reduced/datasets \
        --out results/reduced/tables/lat --claims results/reduced/claims/lat.json

Writes ``lat.csv``, ``lat.md`` and the claim records (stages/claims/lat.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.claims.evidence import load_evaluations
from stages.claims.feasibility import Feasibility
from stages.claims.lat import PAPER, TITLE, lat_claims
from stages.claims.record import ClaimsFile, write_claims
from stages.claims.settings import ClaimSettings, dataset_facts
from stages.report.lat_table import build_lat_table, lat_rows, required_pairs, to_markdown
from stages.report.markdown import write_table
from stages.utils.cli import load_params, params_parser, run_stage


def main(args: argparse.Namespace) -> None:
    params = load_params(args)
    settings = ClaimSettings.from_params(params.raw)
    rows = lat_rows(params.raw["tables"]["lat"])
    evals = load_evaluations(Path(args.evals), required_pairs(rows))
    facts = {row.dataset: dataset_facts(Path(args.datasets), row.dataset) for row in rows}
    feasibility = Feasibility(Path(args.evals), Path(args.datasets), settings.alpha)
    claims = lat_claims(rows, evals, facts, settings, feasibility)
    table = build_lat_table(evals, rows, claims)
    # Everything is computed before anything is written: a bad input replaces no output.
    write_claims(Path(args.claims), ClaimsFile.of(PAPER, TITLE, params.scale, claims))
    write_table(
        Path(args.out),
        table.frame,
        to_markdown(table, scale=params.scale, level=settings.level, claims_path=Path(args.claims)),
    )


def parser() -> argparse.ArgumentParser:
    p = params_parser("Build the LAT table (csv and md) and its claim records.")
    p.add_argument("--evals", required=True, help="the evaluations folder (results/<scale>/evals)")
    p.add_argument(
        "--datasets", required=True, help="the dataset statistics folder (results/<scale>/datasets)"
    )
    p.add_argument("--out", required=True, help="output path without suffix (results/<scale>/tables/lat)")
    p.add_argument("--claims", required=True, help="the claim records (results/<scale>/claims/lat.json)")
    return p


if __name__ == "__main__":
    run_stage(parser(), main)
