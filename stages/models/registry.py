"""Architectures by the name params.yaml uses for them."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from stages.models.lat_cnn import LatCNN
from stages.utils.errors import ConfigError

ModelFactory = Callable[[int, int, int], nn.Module]

ARCHITECTURES: dict[str, ModelFactory] = {
    "lat_cnn": lambda in_channels, image_size, num_classes: LatCNN(in_channels, image_size, num_classes),
}


def build_model(arch: str, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """A freshly initialised model for inputs of shape (in_channels, image_size, image_size)."""
    try:
        factory = ARCHITECTURES[arch]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ConfigError(f"arch: unknown architecture {arch!r} (known: {known})") from None
    return factory(in_channels, image_size, num_classes)
