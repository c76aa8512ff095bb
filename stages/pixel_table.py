"""Stage: the pixel-space report (Wang et al., "Analyzing Adversarial Robustness of Deep Neural
Networks in Pixel Space: a Semantic Perspective", Tables I, II, IV and Figs. 3-6) from the
evaluations that params.yaml's `tables.pixel_space` names.

    python -m stages.pixel_table --params params.yaml --scale reduced --evals results/reduced/evals \
        --out results/reduced/tables/pixel_space --figures results/reduced/figures/pixel_space \
        --claims results/reduced/claims/pixel_space.json

Writes ``pixel_space.csv`` (a row per model x region x pixels, ours beside the paper's),
``pixel_space.md`` (Tables I, II and IV, the claims with our verdicts, the missing evaluations),
the claim records and ``<figures>/{targets_reached,untargeted_heatmap,targeted_heatmap,fitness}.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.claims.settings import ClaimSettings
from stages.report.pixel_report import write_pixel_report
from stages.utils.cli import load_params, params_parser, run_stage


def main(args: argparse.Namespace) -> None:
    params = load_params(args)
    spec = params.raw["tables"]["pixel_space"]
    write_pixel_report(
        spec,
        Path(args.evals),
        Path(args.out),
        Path(args.figures),
        params.scale,
        claims_path=Path(args.claims),
        settings=ClaimSettings.from_params(params.raw),
        datasets_dir=Path(args.datasets),
    )


def parser() -> argparse.ArgumentParser:
    p = params_parser("Build the pixel-space report (csv, md and figures).")
    p.add_argument("--evals", required=True, help="the evaluations folder (results/<scale>/evals)")
    p.add_argument(
        "--datasets",
        required=True,
        help="the prepare stage's statistics (results/<scale>/datasets): the pools for what it would take",
    )
    p.add_argument(
        "--out", required=True, help="output path without suffix (results/<scale>/tables/pixel_space)"
    )
    p.add_argument(
        "--claims", required=True, help="the claim records (results/<scale>/claims/pixel_space.json)"
    )
    p.add_argument(
        "--figures",
        required=True,
        help="folder of the four PNG figures (results/<scale>/figures/pixel_space)",
    )
    return p


if __name__ == "__main__":
    run_stage(parser(), main)
