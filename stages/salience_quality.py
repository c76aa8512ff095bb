"""Stage: how well each salience model (stages/saliency, the stand-ins for the dual-perturbation
paper's DeepGaze II) agrees with ground-truth foreground masks on clean test images: mean
foreground score (FS, paper §3.2) against the mean foreground fraction (a uniform map's FS),
and the per-image AUC of salience vs mask (stages/saliency/quality.py). params.yaml picks the
dual attacks' `salience` model by this record; the dual-perturbation report shows it.

    python -m stages.salience_quality --params params.yaml --scale reduced \
        --data data/reduced/processed/segment6/test.npz data/reduced/processed/coco_ic/test.npz \
        data/reduced/processed/cifar10_grabcut/test.npz --out results/reduced/metrics/salience_quality.json

Each split is measured on the first `samples.<dataset>.test` images, the ones every evaluation
(and so claim D0) sees.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from stages.data.processed import load_split, require_images
from stages.saliency import SALIENCE_MODELS
from stages.saliency.quality import preferred_model, salience_quality
from stages.utils.cli import load_params, params_parser, run_stage
from stages.utils.errors import DataError
from stages.utils.io import write_json

log = logging.getLogger("stages.salience_quality")


def main(args: argparse.Namespace) -> None:
    params = load_params(args)
    models = {name: factory() for name, factory in sorted(SALIENCE_MODELS.items())}
    datasets: dict[str, dict[str, Any]] = {}
    records: dict[str, dict[str, dict[str, Any]]] = {}
    for path in args.data:
        split = load_split(path)
        name = split.meta.get("dataset")
        if not isinstance(name, str):
            raise DataError(f"{path}: its meta names no dataset; rerun the prepare stage that writes it")
        if name in records:
            raise DataError(f"{path}: dataset {name!r} is given twice (--data)")
        if split.masks is None:
            raise DataError(f"{path}: dataset {name!r} has no ground-truth masks to measure salience against")
        split = require_images(split.head(params.dataset(name).test_samples), path, "measure salience on")
        x, _, masks = split.tensors()
        assert masks is not None  # checked above
        record = records[name] = salience_quality(models, x, masks)
        datasets[name] = {"source": str(path), "split": "test", "images": len(split), "models": record}
        for model, r in record.items():
            log.info(
                "%s/%s: FS %.3f vs foreground fraction %.3f, AUC %s on %d images",
                name,
                model,
                r["mean_foreground_score"],
                r["mean_foreground_fraction"],
                "n/a" if r["auc"]["mean"] is None else f"{r['auc']['mean']:.3f}",
                r["images"],
            )
    preferred = preferred_model(records)
    log.info("preferred salience model: %s (%s)", preferred["model"], preferred["criterion"])
    write_json(
        args.out,
        {
            "scale": params.scale,
            "models": {name: f"{type(m).__name__}({m.extra_repr()})" for name, m in models.items()},
            "datasets": datasets,
            "preferred": preferred,
        },
    )


def parser() -> argparse.ArgumentParser:
    p = params_parser("Agreement of each salience model with ground-truth masks on clean images.")
    p.add_argument(
        "--data", required=True, nargs="+", help="processed test splits with ground-truth masks (.npz)"
    )
    p.add_argument("--out", required=True, help="the metrics JSON")
    return p


if __name__ == "__main__":
    run_stage(parser(), main)
