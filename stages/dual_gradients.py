"""Stage: the loss-gradient images of the dual-perturbation paper (§5.5, Fig. 6) for one dataset.

    python -m stages.dual_gradients --params params.yaml --scale reduced --dataset segment6 \
        --data data/reduced/processed/segment6/test.npz --models results/reduced/models \
        --out results/reduced/figures/dual_gradients/segment6.png

params.yaml's ``tables.dual_perturbation.datasets.<dataset>`` names the Clean, AT-PGD and
AT-Dual models (their weights: ``<models>/<model>/model.pt``); the grid shows ∇_x of each
model's loss on the first ``tables.dual_perturbation.gradient_images`` test images (of the
dataset's first `samples.<dataset>.test`, the images every evaluation uses).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from stages.data.processed import load_split, require_images
from stages.models.checkpoint import load_trained
from stages.report.gradients import gradient_image, input_gradients, save_gradient_grid
from stages.utils.cli import load_params, params_parser, run_stage
from stages.utils.errors import ConfigError, DataError
from stages.utils.runtime import seed_everything, select_device

TABLE = "dual_perturbation"
WEIGHTS_FILE = "model.pt"
# The paper's row titles (Fig. 6), by role of tables.dual_perturbation.datasets.<dataset>.
ROLE_TITLES = {"clean": "Clean", "at_pgd": "AT-PGD", "at_dual": "AT-Dual"}


def dataset_roles(spec: dict[str, Any], dataset: str) -> dict[str, str]:
    """Role -> model name for ``dataset``; an unknown dataset or a missing role is a ConfigError."""
    where = f"tables.{TABLE}.datasets"
    datasets = spec.get("datasets", {})
    if dataset not in datasets:
        known = ", ".join(sorted(datasets)) or "none"
        raise ConfigError(f"{where}: no dataset {dataset!r} (known: {known})")
    roles = datasets[dataset]
    missing = [role for role in ROLE_TITLES if role not in roles]
    if missing:
        raise ConfigError(
            f"{where}.{dataset}: missing role(s) {', '.join(missing)} (needs {', '.join(ROLE_TITLES)})"
        )
    return {role: roles[role] for role in ROLE_TITLES}


def weights_path(models_dir: Path, model: str) -> Path:
    """``<models>/<model>/model.pt``, or a DataError saying to train the model first."""
    path = models_dir / model / WEIGHTS_FILE
    if not path.is_file():
        raise DataError(f"{path}: trained model not found; run the train stage for {model} first")
    return path


def main(args: argparse.Namespace) -> None:
    params = load_params(args)
    spec = params.raw["tables"][TABLE]
    roles = dataset_roles(spec, args.dataset)
    specs = {role: params.model(model) for role, model in roles.items()}
    split = load_split(args.data)
    dataset = specs["clean"].dataset
    if split.meta.get("dataset") not in (None, dataset.name):
        raise DataError(
            f"{args.data}: holds dataset {split.meta.get('dataset')!r}, but the models of "
            f"tables.{TABLE}.datasets.{args.dataset} are trained on {dataset.name!r}"
        )
    # The evaluations' test images (the dataset's first `test` samples), then the first few.
    count = int(spec["gradient_images"])
    split = require_images(split.head(dataset.test_samples).head(count), args.data, "draw loss gradients of")
    paths = {role: weights_path(Path(args.models), model) for role, model in roles.items()}
    device = select_device(params.device)
    seed_everything(params.seed)
    x, y, masks = split.tensors()
    x, y = x.to(device), y.to(device)
    masks = None if masks is None else masks.to(device)
    rows: dict[str, torch.Tensor] = {}
    for role, model_spec in specs.items():
        model = load_trained(paths[role], device)
        grad = input_gradients(model, x, y, masks=masks, model_input=model_spec.input)
        rows[ROLE_TITLES[role]] = gradient_image(grad).cpu()
    save_gradient_grid(
        args.out,
        x.cpu(),
        rows,
        labels=y.cpu(),
        class_names=split.meta.get("classes"),
        title=f"{args.dataset}: loss gradients on clean test images (scale {params.scale})",
    )


def parser() -> argparse.ArgumentParser:
    p = params_parser("Draw the loss-gradient images of the Clean, AT-PGD and AT-Dual models (Fig. 6).")
    p.add_argument("--dataset", required=True, help=f"a key of params.yaml's `tables.{TABLE}.datasets`")
    p.add_argument("--data", required=True, help="the processed test split (.npz)")
    p.add_argument("--models", required=True, help="the trained models' folder (results/<scale>/models)")
    p.add_argument("--out", required=True, help="the PNG to write")
    return p


if __name__ == "__main__":
    run_stage(parser(), main)
