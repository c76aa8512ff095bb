"""Stage: the dataset statistics table, from every prepared dataset's stats and the GrabCut
ground-truth check.

    python -m stages.dataset_table --stats results/reduced/datasets \
        --iou results/reduced/metrics/grabcut_vs_ground_truth.json --out results/reduced/tables/datasets
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stages.report.dataset_table import summary_frame, to_markdown
from stages.report.markdown import write_table
from stages.utils.cli import load_params, params_parser, run_stage
from stages.utils.errors import DataError


def main(args: argparse.Namespace) -> None:
    params = load_params(args)
    stats = {}
    for name in params.raw["datasets"]:
        path = Path(args.stats) / f"{name}.json"
        if not path.is_file():
            raise DataError(f"{path}: dataset statistics missing; run the prepare stage for {name}")
        stats[name] = json.loads(path.read_text())
    iou = json.loads(Path(args.iou).read_text()) if args.iou else None
    # The plan writes the fetch reports beside the statistics: results/<scale>/{raw,datasets}.
    fetch_reports = Path(args.stats).parent / "raw"
    markdown = to_markdown(stats, iou, scale=params.scale, fetch_reports=fetch_reports)
    write_table(Path(args.out), summary_frame(stats), markdown)


def parser() -> argparse.ArgumentParser:
    p = params_parser("Build the dataset statistics table (csv and md).")
    p.add_argument("--stats", required=True, help="folder of per-dataset stats (results/<scale>/datasets)")
    p.add_argument("--iou", default="", help="the GrabCut-vs-ground-truth metrics JSON")
    p.add_argument(
        "--out", required=True, help="output path without suffix (results/<scale>/tables/datasets)"
    )
    return p


if __name__ == "__main__":
    run_stage(parser(), main)
