"""From evaluation records to the numbers a claim compares.

An evaluation (``results/<scale>/evals/<model>/<attack>.json``) made by the current evaluate stage
holds ``per_image`` outcomes and losses, so two evaluations on the same images are compared
paired. Older evaluations hold only accuracy, mean loss and the sample count; they are compared
unpaired from those counts, and the record says so. Mixing the two in one comparison, or
comparing evaluations of different sample counts, is an error naming the file and field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stages.claims.evals import eval_path, load_evals
from stages.claims.record import ModelHealth, Quantity
from stages.claims.stats import (
    Estimate,
    mean_difference_paired,
    rate_difference_paired,
    rate_difference_unpaired,
    wilson,
)
from stages.utils.errors import DataError

PER_IMAGE = "per_image"
RERUN = "delete it and re-run the evaluate stage for it"


@dataclass(frozen=True)
class Evaluation:
    """One (model, attack) evaluation as the claims read it."""

    model: str
    attack: str
    source: str  # the file, as the report links it
    n: int
    accuracy: float
    loss: float
    correct: np.ndarray | None = None  # 0/1 per image, in the split's order
    losses: np.ndarray | None = None
    predictions: np.ndarray | None = None
    ids_sha256: str | None = None
    record: Mapping[str, Any] = field(default_factory=dict, repr=False)  # the whole JSON

    @property
    def paired(self) -> bool:
        return self.correct is not None

    @property
    def pairing_note(self) -> str:
        """What a claim's record says when this evaluation could only be compared unpaired."""
        return "" if self.paired else "unpaired: these evaluations keep only summary counts"

    @property
    def k(self) -> int:
        """Correct images: exact from per-image data, else from the summary accuracy."""
        if self.correct is not None:
            return int(self.correct.sum())
        return int(round(self.accuracy * self.n))

    def accuracy_estimate(self, alpha: float) -> Estimate:
        return wilson(self.k, self.n, alpha)

    def quantity(self, label: str, alpha: float) -> Quantity:
        """The accuracy in % with its Wilson interval."""
        est = self.accuracy_estimate(alpha).scaled(100.0)
        return Quantity(label, est.value, "%", self.n, self.source, est.low, est.high)

    def loss_quantity(self, label: str) -> Quantity:
        return Quantity(label, self.loss, "loss", self.n, self.source)

    def summary(self, key: str) -> float:
        """A summary number of the record (e.g. the mean foreground score); a DataError when absent."""
        value = self.record.get(key)
        if value is None:
            raise DataError(f"{self.source}: evaluation without field {key!r}; {RERUN}")
        return float(value)

    def image_values(self, key: str) -> np.ndarray | None:
        """``per_image.<key>`` as floats (None for a summary-only evaluation)."""
        if self.correct is None:
            return None
        values = self.record[PER_IMAGE].get(key)
        if values is None or len(values) != self.n:
            found = "missing" if values is None else f"{len(values)} entries for {self.n} samples"
            raise DataError(f"{self.source}: field '{PER_IMAGE}.{key}' {found}; {RERUN}")
        return np.asarray(values, dtype=float)


def evaluation(record: dict[str, Any], source: str | Path, model: str, attack: str) -> Evaluation:
    """``record`` (an evaluation JSON) checked: a sample count, and per-image arrays of that
    length where present."""
    where = str(source)
    for key in ("samples", "accuracy", "loss"):
        if key not in record:
            raise DataError(f"{where}: evaluation without field {key!r}; {RERUN}")
    n = int(record["samples"])
    if n <= 0:
        raise DataError(f"{where}: field 'samples' is {n}; an evaluation needs at least one image; {RERUN}")
    per_image = record.get(PER_IMAGE)
    arrays: dict[str, np.ndarray | None] = {"correct": None, "loss": None, "prediction": None}
    digest = None
    if per_image is not None:
        for key in arrays:
            values = per_image.get(key) if isinstance(per_image, dict) else None
            if values is None:
                raise DataError(f"{where}: field '{PER_IMAGE}.{key}' missing; {RERUN}")
            if len(values) != n:
                raise DataError(
                    f"{where}: field '{PER_IMAGE}.{key}' has {len(values)} entries for {n} samples; {RERUN}"
                )
            arrays[key] = np.asarray(values, dtype=float if key == "loss" else int)
        digest = per_image.get("ids_sha256")
        if not digest:
            raise DataError(f"{where}: field '{PER_IMAGE}.ids_sha256' missing; {RERUN}")
    return Evaluation(
        model=model,
        attack=attack,
        source=where,
        n=n,
        accuracy=float(record["accuracy"]),
        loss=float(record["loss"]),
        correct=arrays["correct"],
        losses=arrays["loss"],
        predictions=arrays["prediction"],
        ids_sha256=digest,
        record=record,
    )


def check_pair(a: Evaluation, b: Evaluation) -> None:
    """Two evaluations a claim compares must be on as many images, and either both or neither
    keep per-image data (a mix means they come from different code versions); paired ones must
    be on the same images."""
    if a.n != b.n:
        raise DataError(
            f"{a.source} (field 'samples' = {a.n}) and {b.source} ('samples' = {b.n}) are compared by a "
            "claim but hold different sample counts; re-run the evaluate stage for the older one"
        )
    if a.paired != b.paired:
        old = b if a.paired else a
        raise DataError(
            f"{old.source}: no field '{PER_IMAGE}', while {(a if a.paired else b).source}, which a claim "
            f"compares with it, has one; {RERUN}"
        )
    if a.paired and a.ids_sha256 != b.ids_sha256:
        raise DataError(
            f"{a.source} and {b.source}: field '{PER_IMAGE}.ids_sha256' differs, so they were made on "
            "different test images; re-run the evaluate stage for the older one"
        )


def accuracy_difference(a: Evaluation, b: Evaluation, alpha: float) -> Estimate:
    """accuracy(a) - accuracy(b) as a fraction: paired on the same images where both keep
    per-image outcomes, else unpaired from the summary counts."""
    check_pair(a, b)
    if a.correct is not None and b.correct is not None:
        return rate_difference_paired(a.correct, b.correct, alpha)
    return rate_difference_unpaired(a.k, a.n, b.k, b.n, alpha)


def loss_difference(a: Evaluation, b: Evaluation, alpha: float) -> Estimate | None:
    """mean loss(a) - mean loss(b), paired; None when the evaluations keep no per-image losses
    (a mean loss alone has no interval)."""
    check_pair(a, b)
    if a.losses is None or b.losses is None:
        return None
    return mean_difference_paired(a.losses, b.losses, alpha)


def model_health(
    clean: Evaluation,
    num_classes: int,
    alpha: float,
    *,
    majority_share: float | None = None,
    class_shares: Sequence[float] | None = None,
) -> ModelHealth:
    """Whether a model can serve as evidence, from its clean evaluation. Two tests, each named
    where it fires:

    - ``constant``: one class takes most predictions — the Wilson lower bound of the modal
      class's share of predictions exceeds both 1/2 and that class's share of the test split
      (a model that learned the data predicts each class about as often as it occurs);
    - ``majority``: the clean accuracy's Wilson interval reaches or lies below what always
      predicting the majority class scores (1/classes where the class counts are unknown).

    A clean loss above ln(classes) alone is not degenerate: with accuracy above the majority
    share it means confident errors (overfitting), and the text says so."""
    est = clean.accuracy_estimate(alpha)
    majority = majority_share if majority_share is not None else 1.0 / num_classes
    log_classes = math.log(num_classes)
    tests: list[str] = []
    words: list[str] = []
    modal_class = modal_share = None
    if clean.predictions is not None and len(clean.predictions):
        labels, counts = np.unique(clean.predictions, return_counts=True)
        modal_class, modal_count = int(labels[np.argmax(counts)]), int(counts.max())
        modal_share = modal_count / clean.n
        modal_low = wilson(modal_count, clean.n, alpha).low
        share = (
            class_shares[modal_class]
            if class_shares is not None and modal_class < len(class_shares)
            else majority
        )
        if modal_low > max(0.5, share):
            tests.append("constant")
            words.append(
                f"predicts class {modal_class} for {modal_count} of its {clean.n} clean test images "
                f"({100 * modal_share:.1f} %, Wilson lower bound {100 * modal_low:.1f} %), above both one "
                f"half and that class's {100 * share:.1f} % share of the test split: near-constant"
            )
    if est.low <= majority:
        tests.append("majority")
        what = "the majority class's share" if majority_share is not None else f"chance (1/{num_classes})"
        words.append(
            f"its clean accuracy {100 * est.value:.1f} % [{100 * est.low:.1f}, {100 * est.high:.1f}] on "
            f"{clean.n} images is not above {what}, {100 * majority:.1f} %"
        )
    if tests:
        loss = f"; clean loss {clean.loss:.3g} against ln {num_classes} = {log_classes:.3g}"
        text = f"`{clean.model}`: " + "; and ".join(words) + loss + f" ({clean.source})"
    elif clean.loss > log_classes:
        text = (
            f"`{clean.model}` is accurate ({100 * est.value:.1f} % against a majority share of "
            f"{100 * majority:.1f} %) but its clean loss {clean.loss:.3g} exceeds ln {num_classes} = "
            f"{log_classes:.3g}: confident errors "
            "(overfitting), not a constant predictor; it serves as evidence"
        )
    else:
        text = ""
    return ModelHealth(
        model=clean.model,
        source=clean.source,
        n=clean.n,
        accuracy=est.value,
        majority_share=majority_share,
        modal_class=modal_class,
        modal_share=modal_share,
        loss=clean.loss,
        log_classes=log_classes,
        tests=tuple(tests),
        text=text,
    )


def load_evaluations(evals_dir: Path, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Evaluation]:
    """Every (model, attack) of ``pairs`` from ``<evals_dir>/<model>/<attack>.json``, checked."""
    raw = load_evals(evals_dir, pairs)
    return {
        (model, attack): evaluation(record, eval_path(evals_dir, model, attack), model, attack)
        for (model, attack), record in raw.items()
    }
