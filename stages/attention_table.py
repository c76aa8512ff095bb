"""Stage: the attention-mask table (Vaishnavi et al. 2020, Table 4) from the evaluations that
params.yaml's `tables.attention_masks` names.

    python -m stages.attention_table --evals results/reduced/evals --datasets results/reduced/datasets \
        --out results/reduced/tables/attention_masks --claims results/reduced/claims/attention_masks.json

Writes ``attention_masks.csv`` (the main table), ``attention_masks.md`` (main table, claims
and every other evaluation of the same models) and the claim records
(stages/claims/attention_masks.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from stages.claims.attention_masks import PAPER, TITLE, attention_claims
from stages.claims.evals import find_evals, load_evals
from stages.claims.evidence import load_evaluations
from stages.claims.feasibility import Feasibility
from stages.claims.record import ClaimsFile, write_claims
from stages.claims.settings import ClaimSettings, dataset_facts
from stages.report.attention_table import INPUTS, ROWS, AttentionTable, build_attention_table, to_markdown
from stages.report.markdown import write_table
from stages.utils.cli import load_params, params_parser, run_stage


def write_attention_table(
    spec: dict[str, Any],
    evals_dir: Path,
    out: Path,
    scale: str,
    *,
    datasets_dir: Path,
    claims_path: Path,
    settings: ClaimSettings,
) -> AttentionTable:
    """Build the table and its claims from ``spec`` (params' ``tables.attention_masks``) and
    write ``out``.csv, ``out``.md and ``claims_path``; a missing natural or PGD evaluation is a
    DataError, raised before anything is written."""
    models = [roles[role] for roles in spec["datasets"].values() for role in ROWS]
    main_pairs = [(model, spec["inputs"][kind]) for model in models for kind in INPUTS]
    # The named evaluations win over whatever find_evals saw, and they must exist.
    named = load_evals(evals_dir, main_pairs)
    evals = {**find_evals(evals_dir, models), **named}
    facts = {dataset: dataset_facts(datasets_dir, dataset) for dataset in spec["datasets"]}
    claims = attention_claims(
        spec["datasets"],
        spec["inputs"],
        load_evaluations(evals_dir, main_pairs),
        facts,
        settings,
        Feasibility(evals_dir, datasets_dir, settings.alpha),
    )
    table = build_attention_table(evals, spec["datasets"], spec["inputs"], claims)
    write_claims(claims_path, ClaimsFile.of(PAPER, TITLE, scale, claims))
    write_table(
        out, table.frame, to_markdown(table, scale=scale, level=settings.level, claims_path=claims_path)
    )
    return table


def main(args: argparse.Namespace) -> None:
    params = load_params(args)
    spec = params.raw["tables"]["attention_masks"]
    write_attention_table(
        spec,
        Path(args.evals),
        Path(args.out),
        params.scale,
        datasets_dir=Path(args.datasets),
        claims_path=Path(args.claims),
        settings=ClaimSettings.from_params(params.raw),
    )


def parser() -> argparse.ArgumentParser:
    p = params_parser("Build the attention-mask table (csv and md) and its claim records.")
    p.add_argument("--evals", required=True, help="the evaluations folder (results/<scale>/evals)")
    p.add_argument(
        "--datasets", required=True, help="the dataset statistics folder (results/<scale>/datasets)"
    )
    p.add_argument(
        "--out", required=True, help="output path without suffix (results/<scale>/tables/attention_masks)"
    )
    p.add_argument(
        "--claims", required=True, help="the claim records (results/<scale>/claims/attention_masks.json)"
    )
    return p


if __name__ == "__main__":
    run_stage(parser(), main)
