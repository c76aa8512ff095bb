"""VGG (Simonyan & Zisserman 2015, Table 1 configurations A/B/D/E = depths 11/13/16/19) in the
form common for 32x32 inputs: 3x3 convolutions with batch norm, five 2x2 max-pools that take
32x32 to 1x1, and a single linear classifier on the 512 features instead of ImageNet's
4096-4096 head. Vaishnavi et al. use VGG-19 on 32x32 MS-COCO-IC / GTSRB-IC; Wang et al.
VGG-16 on CIFAR-10: both are this one class at different depths.

``width`` scales every convolution's channel count, so the same network can train on a CPU
at a reduced scale (width 0.25 has 1/16 of the multiply-adds); 1.0 is the published network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stages.utils.errors import ConfigError
from stages.utils.layouts import require_images

POOL = "M"
# Simonyan & Zisserman 2015, Table 1: output channels of each 3x3 convolution, "M" a max-pool.
VGG_LAYERS: dict[int, list[int | str]] = {
    11: [64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL],
    13: [64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL],
    16: [64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512, POOL],
    19: [
        64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL,
        512, 512, 512, 512, POOL, 512, 512, 512, 512, POOL,
    ],
}
# Five halvings: the smallest input that still has one pixel after the last pool.
MIN_IMAGE_SIZE = 2 ** sum(1 for layer in VGG_LAYERS[11] if layer == POOL)


@dataclass(frozen=True)
class VggConfig:
    """``depth``: 11, 13, 16 or 19. ``width``: channel multiplier (1.0 = the paper's).
    ``batch_norm``: a BatchNorm after every convolution (the "_bn" variants)."""

    depth: int = 19
    width: float = 1.0
    batch_norm: bool = True

    def __post_init__(self) -> None:
        if self.depth not in VGG_LAYERS:
            known = ", ".join(map(str, sorted(VGG_LAYERS)))
            raise ConfigError(f"vgg depth: {self.depth!r} is not one of {known}")
        if not self.width > 0:
            raise ConfigError(f"vgg width: must be > 0, got {self.width!r}")


class VGG(nn.Module):
    """VGG for square inputs of side ``image_size`` (>= 32); :meth:`forward` takes float
    (N, in_channels, H, W) images with H, W >= 32 (larger ones are pooled down)."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int, config: VggConfig) -> None:
        super().__init__()
        self.in_channels = in_channels
        if image_size < MIN_IMAGE_SIZE:
            raise ConfigError(
                f"vgg: needs images of at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} (five 2x2 pools), "
                f"got {image_size}x{image_size}; use another arch for this dataset"
            )
        layers: list[nn.Module] = []
        channels = in_channels
        for layer in VGG_LAYERS[config.depth]:
            if layer == POOL:
                layers.append(nn.MaxPool2d(2))
                continue
            out = max(1, round(int(layer) * config.width))
            layers.append(nn.Conv2d(channels, out, 3, padding=1, bias=not config.batch_norm))
            if config.batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU(inplace=True))
            channels = out
        self.features = nn.Sequential(*layers)
        # 1x1 for 32x32 inputs; larger inputs are averaged down to it.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) of float (N, in_channels, H, W) images, H, W >= 32."""
        require_images(x, "x", "VGG.forward", channels=self.in_channels, min_size=MIN_IMAGE_SIZE)
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def from_options(in_channels: int, image_size: int, num_classes: int, options: VggConfig) -> nn.Module:
    """The family's model for params.yaml's options (stages.models.registry.FAMILIES)."""
    return VGG(in_channels, image_size, num_classes, options)
