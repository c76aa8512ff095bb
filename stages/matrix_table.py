"""Stage: the robustness matrices, every model evaluated on a dataset x the attacks params.yaml's
`robustness_matrix` lists, with each PGD column's AutoAttack reference and gap.

    python -m stages.matrix_table --params params.yaml --scale tiny --evals results/tiny/evals \
        --matrix results/tiny/matrix --out results/tiny/tables/robustness_matrix \
        --metrics results/tiny/metrics/robustness_matrix.json

Writes ``robustness_matrix.csv`` (one row per cell), ``robustness_matrix.md`` (a table per
dataset, the reasons for n/a cells, the missing evaluations with their commands, PGD vs
AutoAttack) and the metrics JSON (accuracy per dataset, model and attack; the largest PGD vs
AutoAttack gap) for `dvc metrics show`. Missing evaluations are listed, not an error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.report.matrix_table import build_matrix_report, write_matrix_report
from stages.utils.cli import load_params, params_parser, run_stage


def main(args: argparse.Namespace) -> None:
    params = load_params(args)
    matrix_dir = Path(args.matrix) if args.matrix else None
    report = build_matrix_report(params, Path(args.evals), matrix_dir, out=Path(args.out))
    write_matrix_report(report, Path(args.out), Path(args.metrics))


def parser() -> argparse.ArgumentParser:
    p = params_parser("Build the robustness matrices (csv, md and metrics JSON).")
    p.add_argument("--evals", required=True, help="the evaluation groups' results (results/<scale>/evals)")
    p.add_argument(
        "--matrix",
        default="",
        help="the matrix-only cells' results (results/<scale>/matrix; default: the --evals folder)",
    )
    p.add_argument(
        "--out", required=True, help="output path without suffix (results/<scale>/tables/robustness_matrix)"
    )
    p.add_argument(
        "--metrics", required=True, help="the metrics JSON (results/<scale>/metrics/robustness_matrix.json)"
    )
    return p


if __name__ == "__main__":
    run_stage(parser(), main)
