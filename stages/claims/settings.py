"""The rules that turn numbers into verdicts (params.yaml's ``claims``), and the dataset facts a
verdict needs (classes for the chance level, the foreground fraction for the salience check)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.claims.stats import Estimate, Outcome
from stages.utils.errors import DataError


@dataclass(frozen=True)
class ClaimSettings:
    """See params.yaml's ``claims`` for what each value means and why it was chosen."""

    alpha: float = 0.05
    min_samples: int = 30
    comparable_margin: float = 5.0  # percentage points
    no_cost_margin: float = 2.0  # percentage points
    moderate_lambda_margin: float = 2.0  # percentage points
    confidence_margin: float = 10.0  # percentage points

    @classmethod
    def from_params(cls, raw: dict[str, Any]) -> ClaimSettings:
        return cls(**raw.get("claims", {}))

    @property
    def level(self) -> str:
        return f"{100 * (1 - self.alpha):g} %"

    def too_small(self, estimate: Estimate) -> bool:
        return estimate.n < self.min_samples

    def gate(self, estimate: Estimate, outcome: Outcome) -> tuple[Outcome, str]:
        """``outcome``, unless the sample is too small to tell (then inconclusive, with why)."""
        if self.too_small(estimate):
            return Outcome.INCONCLUSIVE, (
                f"only {estimate.n} images, fewer than the {self.min_samples} a verdict needs "
                "(params.yaml claims.min_samples)"
            )
        if outcome == Outcome.INCONCLUSIVE:
            return outcome, (
                f"the {self.level} interval [{estimate.low:.3g}, {estimate.high:.3g}] straddles the rule's "
                "boundary, so these images cannot tell"
            )
        return outcome, ""


@dataclass(frozen=True)
class DatasetFacts:
    name: str
    num_classes: int
    foreground_fraction: float | None  # mean over the test split; None without masks
    source: str


def dataset_facts(datasets_dir: Path, name: str) -> DatasetFacts:
    """From the prepare stage's ``results/<scale>/datasets/<name>.json``."""
    path = Path(datasets_dir) / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        summary = data["test_summary"]
        classes = len(summary["per_class"])
    except FileNotFoundError:
        raise DataError(f"{path}: dataset statistics missing; run the prepare stage for {name}") from None
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise DataError(
            f"{path}: no readable 'test_summary.per_class' ({exc}); re-run the prepare stage for {name}"
        ) from None
    return DatasetFacts(name, classes, summary.get("mean_foreground_fraction"), str(path))
