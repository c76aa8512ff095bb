"""Stage: the attention-mask table (Vaishnavi et al. 2020, Table 4) from the evaluations that
params.yaml's `tables.attention_masks` names.

    python -m stages.attention_table --evals results/evals --out results/tables/attention_masks

Writes ``attention_masks.csv`` (the main table) and ``attention_masks.md`` (main table, claims
and every other evaluation of the same models).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from stages.config import Params
from stages.report.attention_table import INPUTS, ROWS, AttentionTable, build_attention_table, to_markdown
from stages.report.evals import find_evals, load_evals
from stages.report.markdown import write_table
from stages.utils.cli import params_parser, run_stage


def write_attention_table(spec: dict[str, Any], evals_dir: Path, out: Path, scale: str) -> AttentionTable:
    """Build the table from ``spec`` (params' ``tables.attention_masks``) and write ``out``.csv
    and ``out``.md; a missing natural or PGD evaluation is a DataError."""
    models = [roles[role] for roles in spec["datasets"].values() for role in ROWS]
    main_pairs = [(model, spec["inputs"][kind]) for model in models for kind in INPUTS]
    # The named evaluations win over whatever find_evals saw, and they must exist.
    named = load_evals(evals_dir, main_pairs)
    evals = {**find_evals(evals_dir, models), **named}
    table = build_attention_table(evals, spec["datasets"], spec["inputs"])
    write_table(out, table.frame, to_markdown(table, scale=scale))
    return table


def main(args: argparse.Namespace) -> None:
    params = Params.load(args.params, args.scale)
    spec = params.raw["tables"]["attention_masks"]
    write_attention_table(spec, Path(args.evals), Path(args.out), params.scale)


def parser() -> argparse.ArgumentParser:
    p = params_parser("Build the attention-mask table (csv and md).")
    p.add_argument("--evals", required=True, help="the evaluations folder (results/evals)")
    p.add_argument("--out", required=True, help="output path without suffix (results/tables/attention_masks)")
    return p


if __name__ == "__main__":
    run_stage(parser(), main)
