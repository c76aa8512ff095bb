"""Salience models and the quantities the dual-perturbation paper derives from them.

:class:`SalienceModel` is the interface (images -> per-image fixation density);
:class:`SpectralResidualSaliency` the weight-free model used in place of DeepGaze II;
:func:`foreground_score` the paper's FS; :func:`threshold_mask` its mask for datasets
without segmentation.
"""

from stages.saliency.base import SalienceModel, foreground_score, normalize_density, threshold_mask
from stages.saliency.spectral_residual import SpectralResidualSaliency

# Salience models by the name params.yaml gives them (attacks.<name>.salience). A learned
# fixation model (DeepGaze II) goes here where its weights are available.
SALIENCE_MODELS = {"spectral_residual": SpectralResidualSaliency}

__all__ = [
    "SALIENCE_MODELS",
    "SalienceModel",
    "SpectralResidualSaliency",
    "foreground_score",
    "normalize_density",
    "threshold_mask",
]
