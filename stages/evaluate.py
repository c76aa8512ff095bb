"""Stage: evaluate one trained model under one attack of params.yaml.

    python -m stages.evaluate --model mnist_lat --attack lat_background \
        --data data/reduced/processed/mnist/test.npz --weights results/reduced/models/mnist_lat/model.pt \
        --out results/reduced/evals/mnist_lat/lat_background.json

The output holds accuracy and mean cross-entropy on the dataset's first `test_samples` test
images, and per image (``per_image``: whether it was right, its loss and prediction, a digest of
the images' ids; for dual attacks its foreground scores) so that claims can be paired tests
(stages/claims); timings go to a ``.throughput.json`` beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.attack_kinds import attack_kind
from stages.attack_kinds.evaluate import evaluate
from stages.attacks.de_forward import DEForward
from stages.data.processed import load_split, require_images
from stages.models.checkpoint import load_trained
from stages.utils.cli import load_params, params_parser, run_stage
from stages.utils.io import write_json
from stages.utils.runtime import seed_everything, select_device

# The key a DE kind declares it reads (AttackKind.evaluation_reads).
DE_FORWARD = "evaluation.de_forward"


def main(args: argparse.Namespace) -> None:
    params = load_params(args)
    spec = params.model(args.model)
    attack = params.attack(args.attack)
    # The evaluation group's dataset: the model's own, or the same images with other
    # annotations (e.g. CIFAR-10 models attacked on the GrabCut-masked test images).
    dataset = params.evaluation_dataset(args.model)
    split = require_images(load_split(args.data).head(dataset.test_samples), args.data, "evaluate on")
    kind = attack_kind(attack)
    device = select_device(params.device)
    # Only a kind that declares it reads how DE scores candidates (its job file holds it).
    de_forward = DEForward(**params.de_forward(device.type)) if DE_FORWARD in kind.evaluation_reads else None
    seed_everything(params.seed)
    model = load_trained(args.weights, device)
    metrics, throughput = evaluate(
        model,
        split,
        attack,
        box_fraction=params.box_fraction,
        batch_size=params.eval_batch_size,
        seed=params.seed,
        device=device,
        model_input=spec.input,
        progress=not args.no_progress,
        de_forward=de_forward,
    )
    out = Path(args.out)
    write_json(out, {"model": spec.name, "dataset": dataset.name, "scale": params.scale, **metrics})
    write_json(out.with_suffix(".throughput.json"), {"device": str(device), **throughput})


def parser() -> argparse.ArgumentParser:
    p = params_parser("Evaluate one trained model under one attack.")
    p.add_argument("--model", required=True, help="a key of params.yaml's `models`")
    p.add_argument("--attack", required=True, help="a key of params.yaml's `attacks`")
    p.add_argument("--data", required=True, help="the processed test split (.npz)")
    p.add_argument("--weights", required=True, help="the model's model.pt")
    p.add_argument("--out", required=True, help="the evaluation's JSON file")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


if __name__ == "__main__":
    run_stage(parser(), main)
