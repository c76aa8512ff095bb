"""The LAT paper's classifier: two convolutional layers, one hidden fully connected layer and
an output layer (Rothberg et al. 2019, §5). The paper adapts Madry et al.'s code, whose MNIST
model has exactly this shape: 5x5 convolutions with 32 and 64 filters, each followed by 2x2
max pooling, and 1024 hidden units (Madry et al. 2018, §5 / their mnist_challenge model).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stages.utils.layouts import require_images


@dataclass(frozen=True)
class LatCnnConfig:
    conv_channels: tuple[int, int] = (32, 64)
    kernel_size: int = 5
    hidden: int = 1024


class LatCNN(nn.Module):
    """The LAT classifier for float (N, in_channels, image_size, image_size) images: the fully
    connected layer fixes the input size, so :meth:`forward` takes exactly that layout."""

    def __init__(
        self, in_channels: int, image_size: int, num_classes: int, config: LatCnnConfig = LatCnnConfig()
    ) -> None:
        super().__init__()
        self.in_channels, self.image_size = in_channels, image_size
        c1, c2 = config.conv_channels
        kernel_size, hidden = config.kernel_size, config.hidden
        pad = kernel_size // 2
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size, padding=pad),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, kernel_size, padding=pad),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * side * side, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) of float (N, in_channels, image_size, image_size) images."""
        require_images(x, "x", "LatCNN.forward", channels=self.in_channels, size=self.image_size)
        return self.classifier(self.features(x))


def from_options(in_channels: int, image_size: int, num_classes: int, options: LatCnnConfig) -> nn.Module:
    """The family's model for params.yaml's options (stages.models.registry.FAMILIES)."""
    return LatCNN(in_channels, image_size, num_classes, options)
