"""All-CNN-C, the All-Convolutional Net of Springenberg, Dosovitskiy, Brox & Riedmiller,
*Striving for Simplicity: The All Convolutional Net* (ICLR workshop 2015).

Su et al.'s one-pixel attack and Wang et al. (pixel space, §IV-A: "AllConv", 85.71 % on
CIFAR-10) attack this network. Layer layout: the paper's Table 2, model All-CNN-C (CIFAR-10):

====================================  =========================================
input 32x32 RGB
3x3 conv 96, ReLU                     3x3 conv 96, ReLU
3x3 conv 96, ReLU, stride 2           (replaces Model C's 3x3 max-pooling)
3x3 conv 192, ReLU                    3x3 conv 192, ReLU
3x3 conv 192, ReLU, stride 2          (replaces the second max-pooling)
3x3 conv 192, ReLU                    1x1 conv 192, ReLU
1x1 conv 10 (ReLU in the table)       global average over 6x6, softmax
====================================  =========================================

The table gives no padding; "global averaging over 6 x 6" on 32x32 inputs fixes it: padding 1
on every 3x3 convolution (32 -> 16 -> 8) except the one after the second reduction, which is
unpadded (8 -> 6). Dropout follows the paper's training setup: 20 % on the input and 50 % after
each layer that replaces a pooling layer.

Deviations, both switchable: the table's ReLU on the 10 class maps is dropped by default
(``final_relu=False``): it makes every logit non-negative and a class whose map is all negative
at initialisation never receives a gradient. Weights use He (Kaiming) normal initialisation
(He et al. 2015, for deep plain ReLU stacks; the paper does not state its initialisation).
``width`` scales every hidden channel count (not the class count) for CPU-sized runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stages.utils.layouts import require_images

# (out channels, kernel, stride, padding) of the convolutions before the class layer, Table 2.
_LAYOUT: tuple[tuple[int, int, int, int], ...] = (
    (96, 3, 1, 1),
    (96, 3, 1, 1),
    (96, 3, 2, 1),
    (192, 3, 1, 1),
    (192, 3, 1, 1),
    (192, 3, 2, 1),
    (192, 3, 1, 0),
    (192, 1, 1, 0),
)
_STRIDED = frozenset({2, 5})  # indices of the layers replacing max-pooling (dropout after them)
_INPUT_DROPOUT = 0.2  # Springenberg et al. 2015, training setup: 20 % on the input
_HIDDEN_DROPOUT = 0.5  # ... and 50 % after each pooling-replacing layer
_MIN_IMAGE_SIZE = 9  # the unpadded 3x3 convolution after the two reductions needs a 3x3 input


@dataclass(frozen=True)
class AllConvConfig:
    """params.yaml options of family ``allconv`` (see :class:`AllConvNet`)."""

    width: float = 1.0
    dropout: bool = True
    final_relu: bool = False


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1: the channel count at a width multiplier."""
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    return max(1, round(channels * width))


def he_init(module: nn.Module) -> None:
    """He (Kaiming) normal weights and zero biases for convolutions (keeps ReLU activations'
    variance steady through a deep plain stack, He et al. 2015)."""
    if isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class AllConvNet(nn.Module):
    """All-CNN-C for (in_channels, image_size, image_size) inputs; returns logits.

    Args:
        in_channels: image channels (3 for CIFAR-10).
        image_size: side of the square input; at least 9, so the unpadded 3x3 convolution after
            the two stride-2 reductions still has a 3x3 input.
        num_classes: output classes.
        width: multiplier of every hidden channel count (1.0: the paper's 96/192).
        dropout: the paper's dropout (input 20 %, after the stride-2 layers 50 %).
        final_relu: keep the table's ReLU on the class maps (see the module docstring).

    :meth:`forward` takes float (N, in_channels, H, W) images with H, W >= 9.
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
        if image_size < _MIN_IMAGE_SIZE:
            raise ValueError(f"AllConvNet needs image_size >= {_MIN_IMAGE_SIZE}, got {image_size}")
        self.in_channels = in_channels
        layers: list[nn.Module] = [nn.Dropout(_INPUT_DROPOUT)] if dropout else []
        channels = in_channels
        for i, (out, kernel, stride, padding) in enumerate(_LAYOUT):
            out = scaled(out, width)
            layers += [
                nn.Conv2d(channels, out, kernel, stride=stride, padding=padding),
                nn.ReLU(inplace=True),
            ]
            if dropout and i in _STRIDED:
                layers.append(nn.Dropout(_HIDDEN_DROPOUT))
            channels = out
        layers.append(nn.Conv2d(channels, num_classes, 1))
        if final_relu:
            layers.append(nn.ReLU(inplace=True))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self.apply(he_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) of float (N, in_channels, H, W) images, H, W >= 9."""
        require_images(x, "x", "AllConvNet.forward", channels=self.in_channels, min_size=_MIN_IMAGE_SIZE)
        return self.net(x)


def from_options(in_channels: int, image_size: int, num_classes: int, options: AllConvConfig) -> nn.Module:
    """The family's model for params.yaml's options (stages.models.registry.FAMILIES)."""
    return AllConvNet(
        in_channels,
        image_size,
        num_classes,
        options.width,
        dropout=options.dropout,
        final_relu=options.final_relu,
    )
