"""Network in Network (Lin, Chen & Yan, ICLR 2014), CIFAR-10 variant.

Wang et al. (pixel space, §IV-A: "NiN", 86.55 % on CIFAR-10) and Su et al.'s one-pixel attack
attack this network. The paper (§4.1) describes three stacked mlpconv layers, each but the last
followed by spatial max pooling that halves the resolution and by dropout, and global average
pooling instead of fully connected layers; the channel counts are those of the authors' released
CIFAR-10 definition (cuda-convnet ``NIN/`` and the Caffe model-zoo model, gist e56253735ef32c3c296d):

=======================================  ======================================
mlpconv 1: 5x5 conv 192 (padding 2)      1x1 conv 160, 1x1 conv 96
3x3 max pool, stride 2                   dropout 50 %
mlpconv 2: 5x5 conv 192 (padding 2)      1x1 conv 192, 1x1 conv 192
3x3 max pool, stride 2                   dropout 50 %
mlpconv 3: 3x3 conv 192 (padding 1)      1x1 conv 192, 1x1 conv 10
global average pool (8x8 for 32x32)      softmax
=======================================  ======================================

Every convolution is followed by a ReLU. Pooling rounds up (Caffe's and cuda-convnet's
convention, ``ceil_mode=True``), so 32 -> 16 -> 8 as in the released model. (Ports differ on
the second pooling's type; we follow the paper's text, max pooling.)

Deviations, both switchable: the ReLU on the class maps is dropped by default
(``final_relu=False``), for the reason given in :mod:`stages.models.allconv`; weights use He
(Kaiming) normal initialisation (the released model used small Gaussians tuned for its own
training schedule). ``width`` scales every hidden channel count for CPU-sized runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stages.models.allconv import he_init, scaled
from stages.utils.layouts import require_images

# Per mlpconv block: (kernel, padding, channels of the k x k conv and of the two 1x1 convs).
# The last block's final 1x1 conv has num_classes channels instead of the placeholder 0.
_BLOCKS: tuple[tuple[int, int, tuple[int, int, int]], ...] = (
    (5, 2, (192, 160, 96)),
    (5, 2, (192, 192, 192)),
    (3, 1, (192, 192, 0)),
)
_POOL_KERNEL, _POOL_STRIDE = 3, 2  # Lin et al.'s released CIFAR-10 model
_DROPOUT = 0.5  # Lin et al. 2014, §4.1: dropout on the outputs of all but the last mlpconv layer


@dataclass(frozen=True)
class NinConfig:
    """params.yaml options of family ``nin`` (see :class:`NetworkInNetwork`)."""

    width: float = 1.0
    dropout: bool = True
    final_relu: bool = False


def _pooled(size: int) -> int:
    """Output side of a 3x3 stride-2 max pool rounding up."""
    return -(-(size - _POOL_KERNEL) // _POOL_STRIDE) + 1


class NetworkInNetwork(nn.Module):
    """NiN (CIFAR-10 layout) for (in_channels, image_size, image_size) inputs; returns logits.

    Args:
        in_channels: image channels (3 for CIFAR-10).
        image_size: side of the square input; at least 6, so both poolings see a 3x3 input.
        num_classes: output classes.
        width: multiplier of every hidden channel count (1.0: the released model's).
        dropout: the paper's dropout after the first two mlpconv blocks.
        final_relu: keep the released model's ReLU on the class maps.

    :meth:`forward` takes float (N, in_channels, H, W) images with H, W >= 6.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        num_classes: int,
        width: float = 1.0,
        *,
        dropout: bool = True,
        final_relu: bool = False,
    ) -> None:
        super().__init__()
        if image_size < _POOL_KERNEL or _pooled(image_size) < _POOL_KERNEL:
            raise ValueError(f"NetworkInNetwork needs image_size >= 6, got {image_size}")
        self.in_channels = in_channels
        layers: list[nn.Module] = []
        channels = in_channels
        for b, (kernel, padding, widths) in enumerate(_BLOCKS):
            last_block = b == len(_BLOCKS) - 1
            for i, out in enumerate(widths):
                last_layer = last_block and i == len(widths) - 1
                out = num_classes if last_layer else scaled(out, width)
                k, p = (kernel, padding) if i == 0 else (1, 0)
                layers.append(nn.Conv2d(channels, out, k, padding=p))
                if not last_layer or final_relu:
                    layers.append(nn.ReLU(inplace=True))
                channels = out
            if not last_block:
                layers.append(nn.MaxPool2d(_POOL_KERNEL, _POOL_STRIDE, ceil_mode=True))
                if dropout:
                    layers.append(nn.Dropout(_DROPOUT))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self.apply(he_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) of float (N, in_channels, H, W) images, H, W >= 6."""
        require_images(x, "x", "NetworkInNetwork.forward", channels=self.in_channels, min_size=6)
        return self.net(x)


def from_options(in_channels: int, image_size: int, num_classes: int, options: NinConfig) -> nn.Module:
    """The family's model for params.yaml's options (stages.models.registry.FAMILIES)."""
    return NetworkInNetwork(
        in_channels,
        image_size,
        num_classes,
        options.width,
        dropout=options.dropout,
        final_relu=options.final_relu,
    )
