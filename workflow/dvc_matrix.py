"""The robustness-matrix evaluations for DVC: ``workflow/dvc_matrix.yaml``.

Snakemake derives the matrix cells from params.yaml on every run (model x attack, filtered by
what fits: stages.config.Params.robustness_matrices). dvc.yaml cannot filter a product, so the
fitting cells that no evaluation group runs are listed in ``workflow/dvc_matrix.yaml``, which
dvc.yaml loads as template variables (``vars``) for its ``evaluate_matrix`` stage; so are the
replica models of ``replicates`` and their evaluations (``train_replica``, ``evaluate_replica``). This module
writes that file from params.yaml, at the scale params.yaml names::

    uv run python -m workflow.dvc_matrix          # after editing models, attacks or matrices
    uv run python -m workflow.dvc_matrix --check  # exit 1 when the file is stale

tests/test_robustness_matrix.py fails when the committed file is stale, and Snakemake warns.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
DVC_MATRIX = Path("workflow") / "dvc_matrix.yaml"
HEADER = (
    "# Written by `uv run python -m workflow.dvc_matrix` from params.yaml (scale: {scale}); do not\n"
    "# edit. The robustness-matrix cells that fit and that no evaluation group runs (dvc.yaml's\n"
    "# evaluate_matrix), the replicas of `replicates` (train_replica, evaluate_replica), and the\n"
    "# definitions the dual and matrix tables read (their `params`); Snakemake derives the same.\n"
)


def matrix_evaluations(params: Any) -> dict[str, dict[str, str]]:
    """``<model>-<attack>`` -> model, attack and the dataset whose test images it runs on."""
    return {
        f"{model}-{attack}": {
            "model": model,
            "attack": attack,
            "dataset": params.evaluation_dataset(model).name,
        }
        for model, attack in params.matrix_only_pairs()
        if params.base_model(model) == model
    }


def replica_models(params: Any) -> dict[str, dict[str, str]]:
    """``<model>_seed<N>`` -> its params.yaml model and what that trains on (``replicates``)."""
    models = {}
    for name in params.model_names():
        base = params.base_model(name)
        if base != name:
            entry = params.raw["models"][base]
            models[name] = {
                "base": base,
                **{k: entry[k] for k in ("dataset", "training", "train_attack", "arch")},
            }
    return models


def replica_evaluations(params: Any) -> dict[str, dict[str, str]]:
    """Every evaluation of a replica, with the folder its model's evaluation lives in."""
    groups = set(params.group_pairs())
    return {
        f"{model}-{attack}": {
            "model": model,
            "attack": attack,
            "dataset": params.evaluation_dataset(model).name,
            "folder": "evals" if (model, attack) in groups else "matrix",
        }
        for model, attack in params.evaluations()
        if params.base_model(model) != model
    }


def table_params(params: Any) -> dict[str, dict[str, Any]]:
    """The resolved definitions a table reads beyond its input files: the dual table, the
    attacks of its columns and sweeps (their eps are its x values); the matrix table, the
    attacks of its columns and the models of its rows (what fits and why not). Both DAGs key the
    tables on exactly these (Snakemake: rule params; DVC: params from this file), so changing
    an attack no table describes reruns no table."""
    from stages.config import resolve_tree

    def entries(section: str, names: list[str]) -> dict[str, Any]:
        return {n: resolve_tree(params.raw[section][n], params.scale) for n in dict.fromkeys(names)}

    dual = params.raw["tables"]["dual_perturbation"]
    dual_attacks = [*dual["inputs"].values(), *(a for s in dual["sweeps"].values() for a in s["attacks"])]
    matrices = params.robustness_matrices()
    matrix_attacks = [a for m in matrices for a in (*m.attacks, *m.references.values())]
    matrix_models = [model for m in matrices for model in m.models]
    return {
        "dual_perturbation": {"attacks": entries("attacks", dual_attacks)},
        "robustness_matrix": {
            "attacks": entries("attacks", matrix_attacks),
            "models": entries("models", matrix_models),
        },
    }


def render(params_path: Path) -> str:
    from stages.config import Params

    params = Params.load(params_path)
    lists = {
        "matrix_evaluations": matrix_evaluations(params),
        "replica_models": replica_models(params),
        "replica_evaluations": replica_evaluations(params),
        "table_params": table_params(params),
    }
    return HEADER.format(scale=params.scale) + yaml.safe_dump(lists, sort_keys=False, width=120)


def _differs(out: Path, text: str) -> bool:
    return not out.is_file() or out.read_text(encoding="utf-8") != text


def is_stale(root: Path) -> bool:
    return _differs(root / DVC_MATRIX, render(root / "params.yaml"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write workflow/dvc_matrix.yaml from params.yaml.")
    parser.add_argument("--root", default=".", help="the project folder (holding params.yaml)")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when the file is stale")
    args = parser.parse_args(argv)
    root = Path(args.root)
    sys.path.insert(0, str(root.resolve()))
    from stages.utils.errors import ConfigError
    from stages.utils.io import atomic_open

    try:
        text = render(root / "params.yaml")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = root / DVC_MATRIX
    if args.check:
        stale = _differs(out, text)
        if stale:
            print(f"{out}: stale; run `uv run python -m workflow.dvc_matrix`", file=sys.stderr)
        return int(stale)
    with atomic_open(out) as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
