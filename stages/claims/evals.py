"""Reading the evaluate stage's JSON files (``<evals>/<model>/<attack>.json``), for the claims and
the tables alike. It lives with the claims so that they never import the report: the report
renders claims, not the other way round."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from stages.utils.errors import DataError

# The evaluate stage writes its timings beside each evaluation as ``<attack>.throughput.json``;
# those are not evaluations, and no attack name holds a dot (params schema: ^[a-z][a-z0-9_]*$).
EVAL_SUFFIXES = [".json"]


def eval_path(evals_dir: Path, model: str, attack: str) -> Path:
    return evals_dir / model / f"{attack}.json"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); delete it and re-run the evaluate stage") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of metrics; delete it and re-run the evaluate stage")
    return data


def load_evals(evals_dir: Path, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The evaluation of every (model, attack) in ``pairs``; a missing one is a DataError."""
    evals: dict[tuple[str, str], dict[str, Any]] = {}
    for model, attack in pairs:
        path = eval_path(evals_dir, model, attack)
        if not path.is_file():
            raise DataError(f"{path}: evaluation missing; run the evaluate stage for it")
        evals[(model, attack)] = _read(path)
    return evals


def find_evals(evals_dir: Path, models: Iterable[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every evaluation present for ``models``, whatever the attack; absent folders give nothing."""
    evals: dict[tuple[str, str], dict[str, Any]] = {}
    for model in models:
        folder = evals_dir / model
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            if path.suffixes != EVAL_SUFFIXES:
                continue
            data = _read(path)
            # Only files with an accuracy are evaluations; anything else is not ours to list.
            if "accuracy" in data:
                evals[(model, path.stem)] = data
    return evals
