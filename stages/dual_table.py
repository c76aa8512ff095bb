"""Stage: the dual-perturbation report ("Towards Robustness against Unsuspicious Adversarial
Examples", ICLR 2021 submission, §5.2-5.4) from the evaluations that params.yaml's
`tables.dual_perturbation` names.

    python -m stages.dual_table --params params.yaml --scale reduced --evals results/reduced/evals \
        --datasets results/reduced/datasets --claims results/reduced/claims/dual_perturbation.json \
        --salience results/reduced/metrics/salience_quality.json \
        --out results/reduced/tables/dual_perturbation --figures results/reduced/figures/dual_perturbation \
        --plots results/reduced/plots/dual_perturbation

Writes ``dual_perturbation.csv`` (the main table), ``dual_perturbation.md`` (main table, the
paper's claims with our verdicts, the salience models' agreement with the masks from
``--salience``, every sweep), the claim records (stages/claims/dual_perturbation.py),
``<figures>/<dataset>.png`` (the curves of the
paper's Figs. 3-5) and ``<plots>/<dataset>__<sweep>[__foreground_score].csv`` for ``dvc plots``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.report.dual_table import write_dual_report
from stages.utils.cli import load_params, params_parser, run_stage


def main(args: argparse.Namespace) -> None:
    params = load_params(args)
    spec = params.raw["tables"]["dual_perturbation"]
    write_dual_report(
        spec,
        params,
        Path(args.evals),
        Path(args.out),
        Path(args.figures),
        Path(args.plots),
        params.scale,
        datasets_dir=Path(args.datasets),
        claims_path=Path(args.claims),
        salience_path=Path(args.salience),
    )


def parser() -> argparse.ArgumentParser:
    p = params_parser("Build the dual-perturbation report (csv, md, figures and plot data).")
    p.add_argument("--evals", required=True, help="the evaluations folder (results/<scale>/evals)")
    p.add_argument(
        "--datasets", required=True, help="the dataset statistics folder (results/<scale>/datasets)"
    )
    p.add_argument(
        "--claims", required=True, help="the claim records (results/<scale>/claims/dual_perturbation.json)"
    )
    p.add_argument(
        "--salience",
        required=True,
        help="the salience models' agreement with the masks (results/<scale>/metrics/salience_quality.json)",
    )
    p.add_argument(
        "--out", required=True, help="output path without suffix (results/<scale>/tables/dual_perturbation)"
    )
    p.add_argument(
        "--figures",
        required=True,
        help="folder of one PNG per dataset (results/<scale>/figures/dual_perturbation)",
    )
    p.add_argument(
        "--plots",
        required=True,
        help="folder of the curves' CSV files (results/<scale>/plots/dual_perturbation)",
    )
    return p


if __name__ == "__main__":
    run_stage(parser(), main)
