"""ResNet-18/34 (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016) for
small images, the dual-perturbation paper's architecture.

The paper (§5.1) fine-tunes an ImageNet-pretrained ResNet34 on 224-px ImageNet-10 and uses
the same family on 32-px Segment-6. For 32-px inputs the ImageNet stem (7x7 stride-2 conv
and max-pool, a 4x reduction before the first block) would leave 1x1 feature maps by the
last stage, so the stem here is the usual CIFAR one: a single 3x3 stride-1 convolution and
no pooling, keeping 32x32 through the first stage (then 16, 8, 4). Blocks are He et al.'s
BasicBlock (two 3x3 convolutions, batch norm, identity shortcut or a 1x1 projection when the
shape changes, their option B); [2, 2, 2, 2] blocks give depth 18, [3, 4, 6, 3] depth 34.
Global average pooling and one linear layer make the head, so any input size works.

``width`` scales every stage's channels (64, 128, 256, 512 at width 1) so a reduced-scale
run on CPU can keep the architecture's shape at a fraction of its cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from stages.utils.errors import ConfigError
from stages.utils.layouts import require_images

RESNET_BLOCKS: dict[int, tuple[int, int, int, int]] = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
"""BasicBlocks per stage for each supported depth (He et al. 2016, Table 1)."""

BASE_CHANNELS: tuple[int, int, int, int] = (64, 128, 256, 512)
"""Channels of the four stages at width 1 (He et al. 2016, Table 1)."""


@dataclass(frozen=True)
class ResNetConfig:
    """Depth and width of a :class:`ResNet`; validated on construction.

    Args:
        depth: 18 or 34 (the paper uses 34).
        width: multiplier of the stage channels (64 * width in the first stage, at least 1
            channel each); 1.0 is the standard network.
    """

    depth: int = 34
    width: float = 1.0

    def __post_init__(self) -> None:
        depths = ", ".join(str(d) for d in RESNET_BLOCKS)
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth not in RESNET_BLOCKS:
            raise ConfigError(
                f"depth: {self.depth!r} is not a supported ResNet depth (choose one of {depths})"
            )
        if (
            isinstance(self.width, bool)
            or not isinstance(self.width, int | float)
            or not math.isfinite(self.width)
            or self.width <= 0
        ):
            raise ConfigError(f"width: {self.width!r} must be a positive, finite channel multiplier")

    @property
    def blocks(self) -> tuple[int, int, int, int]:
        return RESNET_BLOCKS[self.depth]

    @property
    def channels(self) -> tuple[int, ...]:
        """Channels of the four stages: base x width, rounded, at least 1."""
        return tuple(max(1, round(c * self.width)) for c in BASE_CHANNELS)


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    # No bias: every convolution is followed by batch norm, whose shift replaces it.
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, plus the input (projected when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with a CIFAR-style stem for small (e.g. 32x32) images; outputs logits.

    The signature's first three arguments are the model registry's
    ``(in_channels, image_size, num_classes)``. ``image_size`` is only validated: the global
    average pool makes the network size-agnostic. :meth:`forward` takes float
    (N, in_channels, H, W) images, any H, W >= 1.

    Args:
        in_channels: image channels (3 for RGB).
        image_size: side of the (square) inputs, >= 1.
        num_classes: number of logits.
        depth: 18 or 34 (see :class:`ResNetConfig`).
        width: channel multiplier (see :class:`ResNetConfig`).
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        num_classes: int,
        depth: int = 34,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("image_size", image_size),
            ("num_classes", num_classes),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.in_channels = in_channels
        self.config = ResNetConfig(depth=depth, width=width)
        channels = self.config.channels
        self.stem = nn.Sequential(
            _conv3x3(in_channels, channels[0]), nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True)
        )
        stages: list[nn.Module] = []
        previous = channels[0]
        for index, (count, out_channels) in enumerate(zip(self.config.blocks, channels, strict=True)):
            stride = 1 if index == 0 else 2
            blocks = [BasicBlock(previous, out_channels, stride)]
            blocks += [BasicBlock(out_channels, out_channels, 1) for _ in range(count - 1)]
            stages.append(nn.Sequential(*blocks))
            previous = out_channels
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(previous, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """He initialisation for convolutions (the ReLU-aware scale He et al. also introduced),
        unit-scale zero-shift batch norm; the linear head keeps PyTorch's default."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) of float (N, in_channels, H, W) images."""
        require_images(x, "x", "ResNet.forward", channels=self.in_channels)
        features = self.pool(self.stages(self.stem(x)))
        return self.fc(torch.flatten(features, 1))


def from_options(in_channels: int, image_size: int, num_classes: int, options: ResNetConfig) -> nn.Module:
    """The family's model for params.yaml's options (stages.models.registry.FAMILIES)."""
    return ResNet(in_channels, image_size, num_classes, depth=options.depth, width=options.width)
