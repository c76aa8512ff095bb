"""Stage: build one processed dataset (train and test splits, with foreground masks where the
dataset has them) from its raw official files.

    python -m stages.prepare --dataset mnist --raw data/raw/mnist --out data/processed/mnist \
        --stats results/datasets/mnist.json
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from stages.config import Params
from stages.data.classic import BUILDERS, SPLITS, split_stats
from stages.data.processed import save_split
from stages.utils.cli import params_parser, run_stage
from stages.utils.errors import ConfigError
from stages.utils.io import write_json

log = logging.getLogger("stages.prepare")


def main(args: argparse.Namespace) -> None:
    params = Params.load(args.params, args.scale)
    spec = params.dataset(args.dataset)
    try:
        build = BUILDERS[spec.source]
    except KeyError:
        raise ConfigError(
            f"datasets.{spec.name}.source: no builder for {spec.source!r} in stages.prepare "
            f"(known: {', '.join(sorted(BUILDERS))})"
        ) from None
    stats: dict[str, object] = {"dataset": spec.name}
    for split in SPLITS:
        started = time.perf_counter()
        processed = build(Path(args.raw), spec, split)
        save_split(Path(args.out) / f"{split}.npz", processed)
        seconds = time.perf_counter() - started
        log.info(
            "%s/%s: %d samples in %.1f s (%.0f images/s)",
            spec.name,
            split,
            len(processed),
            seconds,
            len(processed) / max(seconds, 1e-9),
        )
        stats[split] = split_stats(processed)
    write_json(args.stats, stats)


def parser() -> argparse.ArgumentParser:
    p = params_parser("Build a processed dataset from its raw official files.")
    p.add_argument("--dataset", required=True, help="a key of params.yaml's `datasets`")
    p.add_argument("--raw", required=True, help="the raw dataset folder written by stages.fetch_raw")
    p.add_argument("--out", required=True, help="output folder for train.npz and test.npz")
    p.add_argument("--stats", required=True, help="the dataset statistics JSON")
    return p


if __name__ == "__main__":
    run_stage(parser(), main)
