"""Stage: the full report, results/report.md and beside it results/report.html, from the
tables, claim records, figures and dataset statistics the other stages wrote.

    python -m stages.build_report --params params.yaml --scale tiny --tables results/tables \
        --figures results/figures --datasets results/datasets --claims results/claims \
        --out results/report.md

The claims come from the table stages' records (results/claims/<paper>.json), never from their
markdown. A table or figure not generated yet is listed in the report's "Missing" section with the command
that makes it; only a tables folder that does not exist at all stops the stage.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.report.full_report import ReportInputs, build_report, render_html
from stages.utils.cli import load_params, params_parser, run_stage
from stages.utils.errors import ConfigError, DataError
from stages.utils.io import atomic_open

TITLE = "Backdrop report"


def main(args: argparse.Namespace) -> None:
    out = Path(args.out)
    if out.suffix != ".md":
        raise ConfigError(
            f"--out {out}: give the markdown path (e.g. results/report.md); the HTML goes beside it"
        )
    tables = Path(args.tables)
    if not tables.is_dir():
        raise DataError(
            f"{tables}: tables folder not found; run the pipeline first "
            "(`uv run snakemake --profile workflow/profiles/default`) or pass --tables with the folder "
            "the table stages wrote (results/tables)"
        )
    params = load_params(args)
    inputs = ReportInputs(
        tables_dir=tables,
        figures_dir=Path(args.figures),
        datasets_dir=Path(args.datasets),
        repo_root=Path(args.repo_root),
        params_path=Path(args.params),
        scale=params.scale,
        params=params.raw,
        report_dir=out.parent,
        claims_dir=Path(args.claims),
        benchmarks_dir=Path(args.benchmarks) if args.benchmarks else None,
    )
    text = build_report(inputs)
    page = render_html(text, TITLE)
    with atomic_open(out) as fh:
        fh.write(text)
    with atomic_open(out.with_suffix(".html")) as fh:
        fh.write(page)


def parser() -> argparse.ArgumentParser:
    p = params_parser("Build the full report (report.md and report.html).")
    p.add_argument("--tables", required=True, help="the tables folder (results/tables)")
    p.add_argument("--figures", required=True, help="the figures folder (results/figures)")
    p.add_argument("--datasets", required=True, help="the per-dataset statistics folder (results/datasets)")
    p.add_argument("--claims", required=True, help="the claim records folder (results/claims)")
    p.add_argument(
        "--out", required=True, help="the markdown report (results/report.md); .html goes beside it"
    )
    p.add_argument(
        "--benchmarks",
        default="",
        help="Snakemake's per-job benchmark files (benchmarks/), summarised under provenance",
    )
    p.add_argument(
        "--repo-root", default=".", help="the checkout whose commit and dvc.lock are recorded (default: .)"
    )
    return p


if __name__ == "__main__":
    run_stage(parser(), main)
