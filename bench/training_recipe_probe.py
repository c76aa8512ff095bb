"""Probe a training recipe before committing it to params.yaml: train one model of params.yaml
for a few epochs with some recipe fields replaced, and print the training loss and accuracy of
each epoch. Nothing is written to results/; the checkpoint goes to a temporary folder.

    uv run python -m bench.training_recipe_probe --model gtsrb_ic_natural --epochs 6 --lr 0.005 \
        --crop-padding 0

(docs/reproduction.md records the probes behind the attention-mask recipes.)
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

from stages.config import Params
from stages.data.processed import load_split
from stages.training.trainer import train
from stages.utils.runtime import select_device


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--scale", default="reduced")
    p.add_argument("--model", required=True, help="a key of params.yaml's models")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--lr", type=float, help="replace the recipe's learning rate")
    p.add_argument("--optimizer", choices=["sgd", "adam"], help="replace the recipe's optimizer")
    p.add_argument("--crop-padding", type=int, help="replace the recipe's augment.crop_padding")
    p.add_argument("--eps-ramp-epochs", type=int, help="replace the recipe's eps_ramp_epochs")
    args = p.parse_args()

    params = Params.load(args.params, args.scale)
    spec = params.model(args.model)
    recipe = spec.training
    changes = {
        "epochs": args.epochs,
        "steps": None,  # the probe runs whole epochs, even of a steps recipe
        "lr": args.lr if args.lr is not None else recipe.lr,
        "optimizer": args.optimizer or recipe.optimizer,
        "eps_ramp_epochs": recipe.eps_ramp_epochs if args.eps_ramp_epochs is None else args.eps_ramp_epochs,
    }
    if args.crop_padding is not None:
        changes["augment"] = dataclasses.replace(recipe.augment, crop_padding=args.crop_padding)
    spec = dataclasses.replace(spec, training=dataclasses.replace(recipe, **changes))
    split = load_split(f"data/processed/{spec.dataset.name}/train.npz").head(spec.dataset.train_samples)
    print(f"{spec.name}: {spec.training}")
    with tempfile.TemporaryDirectory() as tmp:
        outcome = train(
            spec,
            split,
            seed=params.seed,
            box_fraction=params.box_fraction,
            device=select_device(params.device),
            checkpoint=Path(tmp) / "probe.pt",
            progress=False,
        )
    for record in outcome.history:
        print(f"epoch {record.epoch}: loss {record.loss:.4f}, train accuracy {record.accuracy:.4f}")


if __name__ == "__main__":
    main()
