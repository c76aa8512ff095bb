"""Stage: the LAT table from the evaluations that params.yaml's `tables.lat` names.

    python -m stages.lat_table --evals results/evals --out results/tables/lat

Writes ``lat.csv`` and ``lat.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.config import Params
from stages.report.evals import load_evals
from stages.report.lat_table import build_lat_table, to_markdown
from stages.report.markdown import write_table
from stages.utils.cli import params_parser, run_stage


def main(args: argparse.Namespace) -> None:
    params = Params.load(args.params, args.scale)
    spec = params.raw["tables"]["lat"]
    pairs = [
        (model, attack)
        for roles in spec["datasets"].values()
        for model in roles.values()
        for attack in spec["inputs"].values()
    ]
    evals = load_evals(Path(args.evals), pairs)
    table = build_lat_table(evals, spec["datasets"], spec["inputs"])
    write_table(Path(args.out), table.frame, to_markdown(table, scale=params.scale))


def parser() -> argparse.ArgumentParser:
    p = params_parser("Build the LAT table (csv and md).")
    p.add_argument("--evals", required=True, help="the evaluations folder (results/evals)")
    p.add_argument("--out", required=True, help="output path without suffix (results/tables/lat)")
    return p


if __name__ == "__main__":
    run_stage(parser(), main)
