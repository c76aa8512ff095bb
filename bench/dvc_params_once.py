"""An experiment, never used by the pipeline: DVC with its params handling made to parse each
params file once per command and look keys up directly, to measure how much of `dvc status`
that handling costs (bench/dag_overhead.py runs it beside the real `dvc status`).

    uv run python bench/dvc_params_once.py status -q      # in a DVC project: same as `dvc status -q`

DVC (3.x) parses params.yaml again for every stage that lists params (``load_path`` in
``dvc.dependency.param.read_param_file``) and finds each key with ``dpath.search``, which walks
the whole parsed tree per key. With the ~440 stages of the tiny project that is ~440 parses and
~3000 tree walks. This script replaces that one function for the duration of the command: a
parse per (file, file system) cached for the command's lifetime (a status run never edits the
file), and a key looked up by walking its dotted path. The values handed back are the same, so
the status is the same; only the time differs.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

import dvc.dependency.param as dvc_param
from dvc.cli import main

_parsed: dict[tuple[str, int], Any] = {}


def _load_once(fs: Any, path: str, **load_kwargs: Any) -> Any:
    key = (path, id(fs))
    if key not in _parsed:
        _parsed[key] = dvc_param.load_path(path, fs, **load_kwargs)
    return _parsed[key]


def read_param_file(
    fs: Any, path: str, key_paths: list[str] | None = None, flatten: bool = False, **load_kwargs: Any
) -> Any:
    """``dvc.dependency.param.read_param_file`` with one parse per file and direct key lookups."""
    config = _load_once(fs, path, **load_kwargs)
    if not key_paths:
        return copy.deepcopy(config)
    found: dict[str, Any] = {}
    for key_path in dict.fromkeys(key_paths):
        node = config
        parts = key_path.split(".")
        try:
            for part in parts:
                node = node[part]
        except (KeyError, TypeError, IndexError):
            continue  # DVC reports a missing key as missing, not as an error here
        if flatten:
            found[key_path] = node
            continue
        branch = found
        for part in parts[:-1]:
            branch = branch.setdefault(part, {})
        branch[parts[-1]] = copy.deepcopy(node)
    return found


if __name__ == "__main__":
    dvc_param.read_param_file = read_param_file
    sys.exit(main(sys.argv[1:]))
