"""Shape, size and configuration of the small-image ResNet (stages.models.resnet)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stages.models.resnet import ResNet, ResNetConfig
from stages.utils.errors import ConfigError


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize(
    "in_channels,image_size,depth,width",
    [(3, 32, 34, 0.125), (1, 28, 18, 0.25), (3, 16, 18, 0.0625), (3, 64, 34, 0.0625)],
)
def test_output_shape(in_channels, image_size, depth, width) -> None:
    torch.manual_seed(0)
    net = ResNet(in_channels, image_size, 6, depth=depth, width=width).eval()
    with torch.no_grad():
        out = net(torch.rand(2, in_channels, image_size, image_size))
    assert out.shape == (2, 6)
    assert bool(torch.isfinite(out).all())


def test_resnet34_has_the_standard_parameter_count() -> None:
    # The CIFAR-stem ResNet-34 with 10 classes has 21.28M parameters (ResNet-18: 11.17M).
    assert _params(ResNet(3, 32, 10)) == 21_282_122
    assert _params(ResNet(3, 32, 10, depth=18)) == 11_173_962


def test_layout_is_the_cifar_resnet34() -> None:
    net = ResNet(3, 32, 10)
    first = net.stem[0]
    assert isinstance(first, nn.Conv2d)
    assert first.kernel_size == (3, 3) and first.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())
    assert [len(stage) for stage in net.stages] == [3, 4, 6, 3]
    # 1 stem conv + 2 per block + 3 projection shortcuts = 36 convolutions, 33 + 1 fc = 34 layers.
    assert len(_convs(net)) == 36
    # Spatial size through the stages: 32 -> 32, 16, 8, 4.
    sizes = []
    h = net.stem(torch.rand(1, 3, 32, 32))
    for stage in net.stages:
        h = stage(h)
        sizes.append(h.shape[-1])
    assert sizes == [32, 16, 8, 4]


def test_width_scales_channels_and_roughly_the_square_of_the_size() -> None:
    full, half = ResNet(3, 32, 10, width=1.0), ResNet(3, 32, 10, width=0.5)
    assert half.fc.in_features == 256 and full.fc.in_features == 512
    assert half.stem[0].out_channels == 32
    ratio = _params(half) / _params(full)
    assert 0.24 < ratio < 0.26, ratio  # convolutions dominate and scale with width^2
    assert ResNetConfig(width=0.5).channels == (32, 64, 128, 256)


def test_tiny_width_keeps_at_least_one_channel() -> None:
    assert ResNetConfig(width=1e-3).channels == (1, 1, 1, 1)
    net = ResNet(3, 32, 4, depth=18, width=1e-3).eval()
    with torch.no_grad():
        assert net(torch.rand(2, 3, 32, 32)).shape == (2, 4)


def test_train_mode_backward_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    net = ResNet(3, 16, 5, depth=18, width=0.125).train()
    loss = nn.functional.cross_entropy(net(torch.rand(4, 3, 16, 16)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in net.parameters())


@pytest.mark.parametrize("depth", [50, 0, 34.0, "34", True])
def test_bad_depth_is_a_config_error_naming_the_value(depth) -> None:
    with pytest.raises(ConfigError, match=f"depth: {depth!r}"):
        ResNetConfig(depth=depth)
    with pytest.raises(ConfigError, match="18, 34"):
        ResNet(3, 32, 10, depth=depth)


@pytest.mark.parametrize("width", [0, -1.0, float("nan"), float("inf"), "1", True])
def test_bad_width_is_a_config_error_naming_the_value(width) -> None:
    with pytest.raises(ConfigError, match="width: "):
        ResNetConfig(width=width)


def test_bad_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        ResNet(3, 32, 0)


def test_resnet_is_a_family_params_can_name() -> None:
    from stages.models.registry import build_model, make_arch

    arch = make_arch("resnet34", "resnet", {"depth": 18, "width": 0.25}, "architectures.resnet34")
    assert build_model(arch, 3, 32, 6)(torch.rand(2, 3, 32, 32)).shape == (2, 6)
