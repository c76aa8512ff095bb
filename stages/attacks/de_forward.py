"""How one device scores DE candidates: params.yaml's ``evaluation.de_forward.<device>``.

Apart from the DE search (stages/attacks/differential_evolution.py) because the evaluate stage
reads it for every evaluation while only DE evaluations run the search: the search's code is
then no part of a PGD evaluation's code (workflow.code_deps).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from stages.utils.precision import MemoryFormat, Precision

if TYPE_CHECKING:
    from stages.attacks.differential_evolution import DEConfig


@dataclass(frozen=True)
class DEForward:
    """How one device scores DE candidates (params.yaml ``evaluation.de_forward.<device>``):
    :attr:`DEConfig.max_batch` (None: DEConfig's default), :attr:`DEConfig.precision` and
    :attr:`DEConfig.memory_format` (and :attr:`DEConfig.skip_repeats`). The caller stores the
    model in ``memory_format`` too."""

    batch: int | None = None
    precision: Precision = "fp32"
    memory_format: MemoryFormat = "contiguous"
    skip_repeats: bool = True  # not in params.yaml: off only to measure what it saves

    def apply(self, config: DEConfig) -> DEConfig:
        batch = {} if self.batch is None else {"max_batch": self.batch}
        return replace(
            config,
            precision=self.precision,
            memory_format=self.memory_format,
            skip_repeats=self.skip_repeats,
            **batch,
        )

    def record(self) -> dict[str, object]:
        return {"batch": self.batch, "precision": self.precision, "memory_format": self.memory_format}
