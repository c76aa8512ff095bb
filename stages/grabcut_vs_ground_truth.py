"""Stage: how well the automatic GrabCut routine (the one that makes CIFAR-10's masks, which
have no ground truth) recovers ground-truth masks: run it on a dataset that has them
(MS-COCO-IC crops) and report the IoU per class and overall.

    python -m stages.grabcut_vs_ground_truth --data data/reduced/processed/coco_ic/test.npz \
        --out results/reduced/metrics/grabcut_vs_ground_truth.json
"""

from __future__ import annotations

import argparse

from stages.data.cifar_grabcut import grabcut_vs_ground_truth
from stages.data.processed import load_split
from stages.utils.cli import load_params, params_parser, run_stage
from stages.utils.errors import ConfigError, DataError
from stages.utils.io import write_json


def main(args: argparse.Namespace) -> None:
    params = load_params(args)
    quality = params.raw["mask_quality"]
    routine = params.dataset(quality["routine"])
    grabcut = getattr(routine.options, "grabcut", None)
    if grabcut is None:
        raise ConfigError(
            f"mask_quality.routine: dataset {routine.name!r} makes no GrabCut masks "
            f"(datasets.{routine.name}.options.grabcut is not set)"
        )
    split = load_split(args.data)
    if split.masks is None:
        raise DataError(f"{args.data}: has no ground-truth masks to compare against")
    report = grabcut_vs_ground_truth(
        split.images,
        split.masks,
        split.labels,
        split.meta["classes"],
        grabcut.grabcut,
        progress=not args.no_progress,
    )
    write_json(args.out, {"dataset": quality["ground_truth"], "routine": routine.name, **report})


def parser() -> argparse.ArgumentParser:
    p = params_parser("IoU of the automatic GrabCut against ground-truth masks.")
    p.add_argument("--data", required=True, help="a processed split with ground-truth masks (.npz)")
    p.add_argument("--out", required=True, help="the metrics JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


if __name__ == "__main__":
    run_stage(parser(), main)
