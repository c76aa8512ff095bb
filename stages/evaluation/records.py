"""The per-image part of an evaluation record (``per_image`` in ``<model>/<attack>.json``).

A verdict on a paper's claim compares two evaluations; with each image's outcome and loss kept,
the comparison can be paired (McNemar, a paired bootstrap) and recomputed at any time without
rerunning the attack (stages/claims).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

# Per-image losses keep this many significant digits: enough for any paired test, and the file
# stays a few kilobytes per hundred images.
LOSS_DIGITS = 6


def ids_digest(ids: Sequence[str] | np.ndarray) -> str:
    """One sha256 over the test images' ids in order: two evaluations with the same digest
    were made on the same images, so their per-image records can be paired."""
    joined = "\n".join(str(i) for i in ids)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def round_values(values: Sequence[float]) -> list[float]:
    """Per-image floats (losses, foreground scores) to LOSS_DIGITS significant digits."""
    return [float(f"{v:.{LOSS_DIGITS}g}") for v in values]


def per_image_record(
    ids: Sequence[str] | np.ndarray, correct: Sequence[int], loss: Sequence[float], prediction: Sequence[int]
) -> dict[str, Any]:
    """What the claims need per test image, in the split's order: whether the model was right
    under the attack (0/1), its cross-entropy, and the predicted class."""
    if not len(ids) == len(correct) == len(loss) == len(prediction):
        raise ValueError(
            f"per-image record: {len(ids)} ids, {len(correct)} outcomes, {len(loss)} losses and "
            f"{len(prediction)} predictions; they must be equal"
        )
    return {
        "ids_sha256": ids_digest(ids),
        "correct": [int(c) for c in correct],
        "loss": round_values(loss),
        "prediction": [int(p) for p in prediction],
    }
