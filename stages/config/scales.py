"""Scales: one params.yaml, three sizes of every experiment.

A value in params.yaml is either plain or a ``{tiny: .., reduced: .., paper: ..}`` mapping; a
Params object is bound to one scale and reads every value through :func:`resolve_scaled`. Kept
apart from loading and the accessors because the checks, the accessors, the report and the DVC
matrix all resolve values the same way, and none of them should need more than this.
"""

from __future__ import annotations

from typing import Any, Literal

SCALES = ("tiny", "reduced", "paper")

Scale = Literal["tiny", "reduced", "paper"]


def resolve_scaled(value: Any, scale: str) -> Any:
    """Pick the active scale's entry of a ``{tiny, reduced, paper}`` mapping; else ``value``
    (so an already resolved value resolves to itself)."""
    if isinstance(value, dict) and set(value) == set(SCALES):
        return value[scale]
    return value


def resolve_tree(value: Any, scale: str) -> Any:
    """Resolve every scaled value inside a nested structure."""
    value = resolve_scaled(value, scale)
    if isinstance(value, dict):
        return {k: resolve_tree(v, scale) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_tree(v, scale) for v in value]
    return value
