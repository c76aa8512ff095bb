"""Stage: train one model of params.yaml's `models`.

    python -m stages.train --model mnist_lat --data data/reduced/processed/mnist/train.npz \
        --out results/reduced/models/mnist_lat

Writes ``model.pt`` (weights and what is needed to rebuild the model), ``metrics.json``
(deterministic; with the precision and memory format it trained in, params.yaml's
``precision`` for the device) and ``throughput.json`` (timings). Resumes from
``<checkpoint-dir>/<model>.pt`` after an interruption (the plan passes
``--checkpoint-dir results/<scale>/checkpoints``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from stages.config import digest
from stages.data.processed import load_split, require_images
from stages.models.registry import arch_record
from stages.training.trainer import train
from stages.utils.cli import load_params, params_parser, run_stage
from stages.utils.errors import DataError
from stages.utils.io import save_torch, write_json
from stages.utils.runtime import seed_everything, select_device

log = logging.getLogger("stages.train")
# For a stage run by hand; the plan always passes its scale's folder, results/<scale>/checkpoints.
CHECKPOINT_DIR = Path("results/checkpoints")


def main(args: argparse.Namespace) -> None:
    params = load_params(args)
    spec = params.model(args.model)
    split = load_split(args.data)
    if split.meta.get("dataset") not in (None, spec.dataset.name):
        raise DataError(
            f"{args.data}: holds dataset {split.meta.get('dataset')!r}, "
            f"but model {spec.name} trains on {spec.dataset.name!r}"
        )
    split = require_images(split.head(spec.dataset.train_samples), args.data, f"train {spec.name} on")
    device = select_device(params.device)
    seed = params.model_seed(spec.name)  # a replica (models.<m>_seed<N>) trains with its own
    seed_everything(seed)
    precision = params.training_precision(spec.name, device.type)
    log.info(
        "%s: %d training images on %s, scale %s, %s",
        spec.name,
        len(split),
        device,
        params.scale,
        precision,
    )
    outcome = train(
        spec,
        split,
        seed=seed,
        box_fraction=params.box_fraction,
        device=device,
        checkpoint=Path(args.checkpoint_dir) / f"{spec.name}.pt",
        progress=not args.no_progress,
        precision=precision,
    )
    out = Path(args.out)
    save_torch(
        out / "model.pt",
        {
            "arch": arch_record(spec.arch),
            "input": spec.input,
            # In torch's default layout whatever the training's memory_format (the same values).
            "state_dict": {k: v.cpu().contiguous() for k, v in outcome.model.state_dict().items()},
            "input_shape": list(split.images.shape[1:]),
            "num_classes": int(split.meta.get("num_classes", int(split.labels.max()) + 1)),
            "spec_digest": digest(spec),
            "scale": params.scale,
        },
    )
    write_json(out / "metrics.json", {"model": spec.name, "scale": params.scale, **outcome.metrics()})
    write_json(out / "throughput.json", {"device": str(device), **outcome.throughput()})
    log.info("%s: %s", spec.name, json.dumps(outcome.metrics()["final_train_accuracy"]))


def parser() -> argparse.ArgumentParser:
    p = params_parser("Train one model of params.yaml's `models`.")
    p.add_argument("--model", required=True, help="a key of params.yaml's `models`")
    p.add_argument("--data", required=True, help="the processed training split (.npz)")
    p.add_argument("--out", required=True, help="output folder: model.pt, metrics.json, throughput.json")
    p.add_argument(
        "--checkpoint-dir",
        default=str(CHECKPOINT_DIR),
        help=(
            f"where resumable checkpoints live (default: {CHECKPOINT_DIR}; the plan passes its "
            "scale's folder, results/<scale>/checkpoints)"
        ),
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


if __name__ == "__main__":
    run_stage(parser(), main)
