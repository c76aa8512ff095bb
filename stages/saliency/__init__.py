"""Salience models and the quantities the dual-perturbation paper derives from them.

:class:`SalienceModel` is the interface (images -> per-image fixation density);
:class:`SpectralResidualSaliency` and :class:`FrequencyTunedSaliency` the weight-free models
used in place of DeepGaze II (:mod:`stages.saliency.quality` measures how well each agrees
with ground-truth masks, which is how params.yaml picks one);
:func:`foreground_score` the paper's FS; :func:`threshold_mask` its mask for datasets
without segmentation.
"""

from torch import nn

from stages.saliency.base import SalienceModel, foreground_score, normalize_density, threshold_mask
from stages.saliency.frequency_tuned import FrequencyTunedSaliency
from stages.saliency.spectral_residual import SpectralResidualSaliency

# Salience models by the name params.yaml gives them (attacks.<name>.salience). A learned
# fixation model (DeepGaze II) goes here where its weights are available. Each is an
# nn.Module built without arguments (stages.attacks.spec.salience_model).
SALIENCE_MODELS: dict[str, type[nn.Module]] = {
    "spectral_residual": SpectralResidualSaliency,
    "frequency_tuned": FrequencyTunedSaliency,
}

__all__ = [
    "SALIENCE_MODELS",
    "FrequencyTunedSaliency",
    "SalienceModel",
    "SpectralResidualSaliency",
    "foreground_score",
    "normalize_density",
    "threshold_mask",
]
