"""Specs as plain data, and a stable hash of them.

A checkpoint, a Snakemake param and a DVC param must say the same thing in every process, so
the specs (dataclasses holding builders and options dataclasses) are turned into JSON-able
data one way only, here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any


def plain(obj: Any) -> Any:
    """``obj`` as plain JSON-able data: dataclasses become dicts, a builder its name. Stable
    across processes, so it can key checkpoints and Snakemake's params."""
    from stages.data.builders import Builder

    if isinstance(obj, Builder):
        return obj.name
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def digest(obj: Any) -> str:
    """A short stable hash of a JSON-able object (dataclasses included)."""
    text = json.dumps(plain(obj), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
