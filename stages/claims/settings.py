"""The rules that turn numbers into verdicts (params.yaml's ``claims``), and the dataset facts a
verdict needs (classes for the chance level, the foreground fraction for the salience check)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.claims.stats import Estimate
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
        """A flag shown beside the outcome, never an override: the intervals are valid at small
        n (score and exact methods), but a reader should know the verdict rests on few images."""
        return estimate.n < self.min_samples


@dataclass(frozen=True)
class DatasetFacts:
    name: str
    num_classes: int
    foreground_fraction: float | None  # mean over the test split; None without masks
    source: str
    # Each class's share of the test split, by label (None where the file does not map names
    # to labels), and the largest share (what always predicting the majority class scores).
    class_shares: tuple[float, ...] | None = None
    majority_share: float | None = None


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
    counts = summary["per_class"]
    try:
        total = sum(int(v) for v in counts.values())
        majority = max(int(v) for v in counts.values()) / total if total else None
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: 'test_summary.per_class' holds a non-count ({exc})") from None
    return DatasetFacts(
        name,
        classes,
        summary.get("mean_foreground_fraction"),
        str(path),
        _class_shares(data, counts, total, path),
        majority,
    )


def _class_shares(
    data: dict[str, Any], counts: dict[str, Any], total: int, path: Path
) -> tuple[float, ...] | None:
    """Shares by label: ``classes`` maps labels to names, or the class names are the labels
    themselves (MNIST, GTSRB); None when neither (the label order is not in the file)."""
    classes = data.get("classes")
    try:
        if isinstance(classes, list) and classes:
            by_label = {int(c["label"]): str(c["name"]) for c in classes}
        elif all(str(k).isdigit() for k in counts):
            by_label = {int(k): str(k) for k in counts}
        else:
            return None
        if not total:
            return None
        return tuple(
            int(counts.get(by_label.get(label, ""), 0)) / total for label in range(max(by_label) + 1)
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: 'classes' and 'test_summary.per_class' do not match ({exc})") from None
