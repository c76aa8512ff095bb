"""Stage: build one processed dataset (train and test splits, with foreground masks where the
dataset has them) from its raw official files.

    python -m stages.prepare --dataset coco_ic --raw data/reduced/raw/coco \
        --out data/reduced/processed/coco_ic --stats results/reduced/datasets/coco_ic.json \
        --grid results/reduced/figures/datasets/coco_ic.png

The builder and its options come from params.yaml's `datasets.<name>`; see
stages/data/builders.py for the builders.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from stages.data.builders import build
from stages.data.processed import save_split, split_stats
from stages.report.grids import save_mask_grid
from stages.utils.cli import load_params, params_parser, run_stage
from stages.utils.io import write_json

log = logging.getLogger("stages.prepare")


def main(args: argparse.Namespace) -> None:
    params = load_params(args)
    spec = params.dataset(args.dataset)
    started = time.perf_counter()
    splits, builder_stats = build(spec.builder, Path(args.raw), spec.options, progress=not args.no_progress)
    seconds = time.perf_counter() - started
    throughput = builder_stats.pop("throughput", {})
    stats: dict[str, object] = {"dataset": spec.name, "builder": spec.builder.name, **builder_stats}
    for split, processed in splits.items():
        processed.meta["dataset"] = spec.name
        save_split(Path(args.out) / f"{split}.npz", processed)
        stats[f"{split}_summary"] = split_stats(processed)
        log.info("%s/%s: %d samples", spec.name, split, len(processed))
    log.info("%s: built in %.1f s (%s)", spec.name, seconds, throughput)
    save_mask_grid(args.grid, splits["train"], title=f"{spec.name} (train)")
    write_json(args.stats, stats)


def parser() -> argparse.ArgumentParser:
    p = params_parser("Build a processed dataset from its raw official files.")
    p.add_argument("--dataset", required=True, help="a key of params.yaml's `datasets`")
    p.add_argument("--raw", required=True, help="the raw dataset folder written by stages.fetch_raw")
    p.add_argument("--out", required=True, help="output folder for train.npz and test.npz")
    p.add_argument("--stats", required=True, help="the dataset statistics JSON")
    p.add_argument("--grid", required=True, help="the PNG of example images (and masks)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


if __name__ == "__main__":
    run_stage(parser(), main)
