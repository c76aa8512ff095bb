"""How well a salience model agrees with ground-truth foreground masks on clean images.

The dual-perturbation paper's salience term only means what it says (§3.2: FS "significantly
higher than 0.5 indicates that predicted human fixation is relatively localized to the
foreground") if the salience model puts more of its density on the object than on the rest.
DeepGaze II, the paper's model, cannot be loaded here, so the stand-ins are measured against
the masks of the datasets that have them, two ways:

* **FS against the foreground fraction.** FS (:func:`~stages.saliency.base.foreground_score`)
  is the density's share on the foreground; a uniform map scores exactly the foreground's
  area fraction, so FS - fraction > 0 is what "ranks the foreground above the background"
  means for the paper's own measure (the check claim D0 applies to evaluations,
  stages/claims/dual_perturbation.py).
* **AUC of salience vs mask**, per image: the probability that a random foreground pixel is
  more salient than a random background pixel (ties count 1/2), i.e. Mann-Whitney's U over
  n_fg * n_bg. It depends only on the ranking of pixels, not on how peaked the map is, so it
  separates "points at the object" from "is sharp". Undefined for an image whose mask is all
  foreground or all background; those are left out of the AUC and counted.

:data:`CRITERION` is the rule by which params.yaml picks the default model from the record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from stages.saliency.base import foreground_score

# What params.yaml's `attacks.<dual>.salience` is chosen by (the record's `preferred`): the
# paper's own sanity measure, the FS margin over a uniform map, averaged over the masked
# datasets with each dataset weighted equally (they differ in size by an order of magnitude).
CRITERION = (
    "largest mean over datasets of (mean FS - mean foreground fraction) on clean test images; "
    "ties broken by mean AUC"
)
BATCH_SIZE = 256  # images per salience call; speed only, every map is per image


def mask_auc(saliency: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per-image AUC of salience as a score for the mask: U / (n_fg n_bg), ties counted 1/2.

    Args:
        saliency: (N, P) salience of each image's P pixels.
        masks: bool (N, P), True on the foreground.

    Returns:
        (N,) AUC in [0, 1]; NaN for an image whose mask is all foreground or all background.
    """
    if saliency.shape != masks.shape or saliency.ndim != 2:
        raise ValueError(
            f"mask_auc expects saliency and masks of the same shape (N, P), got {saliency.shape} "
            f"and {masks.shape}"
        )
    if masks.dtype != np.bool_:
        raise ValueError(f"masks must be bool, got dtype {masks.dtype}")
    # Mann-Whitney via midranks over each image's pixels: U_fg = R_fg - n_fg (n_fg + 1) / 2.
    ranks = rankdata(saliency, method="average", axis=1)
    n_fg = masks.sum(axis=1).astype(float)
    n_bg = masks.shape[1] - n_fg
    u = (ranks * masks).sum(axis=1) - n_fg * (n_fg + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = u / (n_fg * n_bg)
    return np.where((n_fg > 0) & (n_bg > 0), auc, np.nan)


def per_image_agreement(
    model: nn.Module, images: torch.Tensor, masks: torch.Tensor, batch_size: int = BATCH_SIZE
) -> dict[str, np.ndarray]:
    """FS, foreground fraction and AUC of each clean image, as arrays of shape (N,).

    Args:
        model: a :class:`~stages.saliency.base.SalienceModel` (an ``nn.Module``).
        images: (N, C, H, W) in [0, 1].
        masks: bool (N, 1, H, W), True on the foreground.
    """
    if masks.dtype != torch.bool or masks.shape != (images.shape[0], 1, *images.shape[2:]):
        raise ValueError(
            f"masks must be bool (N, 1, H, W) matching images {tuple(images.shape)}, got "
            f"{masks.dtype} {tuple(masks.shape)}"
        )
    fs, fraction, auc = [], [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            x, m = images[start : start + batch_size], masks[start : start + batch_size]
            density = model(x)
            fs.append(foreground_score(density, m).double().numpy())
            fraction.append(m.flatten(1).double().mean(1).numpy())
            auc.append(mask_auc(density.flatten(1).double().numpy(), m.flatten(1).numpy()))
    return {
        "foreground_score": np.concatenate(fs),
        "foreground_fraction": np.concatenate(fraction),
        "auc": np.concatenate(auc),
    }


def _mean_and_se(values: np.ndarray) -> tuple[float | None, float | None]:
    if len(values) == 0:
        return None, None
    se = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
    return float(values.mean()), se


def summarize(values: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The record of one model on one dataset from :func:`per_image_agreement`'s arrays:
    means with their standard errors over images, and the sample sizes behind each."""
    fs, fraction, auc = values["foreground_score"], values["foreground_fraction"], values["auc"]
    margin = fs - fraction
    defined = auc[~np.isnan(auc)]
    margin_mean, margin_se = _mean_and_se(margin)
    auc_mean, auc_se = _mean_and_se(defined)
    return {
        "images": len(fs),
        "mean_foreground_score": float(fs.mean()),
        "mean_foreground_fraction": float(fraction.mean()),
        "mean_fs_minus_fraction": margin_mean,
        "se_fs_minus_fraction": margin_se,
        "images_fs_above_fraction": int((margin > 0).sum()),
        "auc": {
            "mean": auc_mean,
            "se": auc_se,
            "median": float(np.median(defined)) if len(defined) else None,
            "images": len(defined),
            "images_above_chance": int((defined > 0.5).sum()),
            "excluded_all_foreground": int((fraction == 1.0).sum()),
            "excluded_all_background": int((fraction == 0.0).sum()),
        },
    }


def salience_quality(
    models: Mapping[str, nn.Module],
    images: torch.Tensor,
    masks: torch.Tensor,
    batch_size: int = BATCH_SIZE,
) -> dict[str, dict[str, Any]]:
    """:func:`summarize` of every model (by name) on one dataset's clean images and masks."""
    if len(images) == 0:
        raise ValueError("salience quality needs at least one image")
    return {
        name: summarize(per_image_agreement(model, images, masks, batch_size))
        for name, model in models.items()
    }


def preferred_model(datasets: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """The model :data:`CRITERION` picks, with the averages it compared.

    Args:
        datasets: dataset -> model -> :func:`summarize` record; every dataset must hold the
            same models.

    Returns:
        ``{"model": name, "criterion": CRITERION, "scores": {model: {"mean_fs_minus_fraction",
        "mean_auc"}}}`` (``mean_auc`` over the datasets where it is defined).
    """
    names = [set(models) for models in datasets.values()]
    if not names or any(n != names[0] for n in names):
        raise ValueError(
            f"every dataset must hold the same salience models, got {[sorted(n) for n in names]}"
        )
    scores: dict[str, dict[str, Any]] = {}
    for model in sorted(names[0]):
        margins = [float(d[model]["mean_fs_minus_fraction"]) for d in datasets.values()]
        aucs = [d[model]["auc"]["mean"] for d in datasets.values() if d[model]["auc"]["mean"] is not None]
        scores[model] = {
            "mean_fs_minus_fraction": float(np.mean(margins)),
            "mean_auc": float(np.mean(aucs)) if aucs else None,
        }

    def key(model: str) -> tuple[float, float]:
        auc = scores[model]["mean_auc"]
        return (scores[model]["mean_fs_minus_fraction"], -math.inf if auc is None else auc)

    return {"model": max(scores, key=key), "criterion": CRITERION, "scores": scores}
