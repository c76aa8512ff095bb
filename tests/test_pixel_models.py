"""Shapes, width scaling and gradient flow of the pixel-space paper's CIFAR-10 models
(All-CNN-C, Network in Network), at reduced width so the file runs in seconds on a CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stages.models.allconv import AllConvNet, scaled
from stages.models.nin import NetworkInNetwork

MODELS = [AllConvNet, NetworkInNetwork]


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("channels,size", [(3, 32), (1, 28)])
def test_logits_have_one_row_per_image_and_one_column_per_class(cls, channels, size) -> None:
    torch.manual_seed(0)
    model = cls(channels, size, 10, width=0.25).eval()
    with torch.no_grad():
        out = model(torch.rand(5, channels, size, size))
    assert out.shape == (5, 10) and bool(out.isfinite().all())


@pytest.mark.parametrize("cls,side", [(AllConvNet, 6), (NetworkInNetwork, 8)])
def test_class_maps_before_global_pooling_have_the_published_size(cls, side) -> None:
    # All-CNN-C averages over 6x6 (Springenberg et al., Table 2); NiN over 8x8 (Lin et al.'s model).
    model = cls(3, 32, 10, width=0.25).eval()
    with torch.no_grad():
        maps = model.net[:-2](torch.rand(1, 3, 32, 32))
    assert maps.shape == (1, 10, side, side)


@pytest.mark.parametrize("cls,full", [(AllConvNet, 1_369_738), (NetworkInNetwork, 966_986)])
def test_width_scales_parameters_and_full_width_is_the_published_size(cls, full) -> None:
    # Full width: All-CNN-C has ~1.3 M parameters (Springenberg et al., Table 3); NiN's released
    # CIFAR-10 layout counts ~0.97 M. Pinned exactly so an accidental layout change is caught.
    counts = [_params(cls(3, 32, 10, width=w)) for w in (1.0, 0.5, 0.25)]
    assert counts[0] == full
    assert counts[0] > counts[1] > counts[2]
    assert counts[2] < counts[0] / 8  # conv parameters scale ~ width^2


@pytest.mark.parametrize("cls", MODELS)
def test_gradients_reach_every_parameter(cls) -> None:
    torch.manual_seed(0)
    model = cls(3, 32, 10, width=0.25).train()
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    nn.functional.cross_entropy(model(x), y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.isfinite().all()), name
        assert float(p.grad.abs().sum()) > 0, name


@pytest.mark.parametrize("cls", MODELS)
def test_dropout_only_in_training_and_switchable(cls) -> None:
    model = cls(3, 32, 10, width=0.25)
    assert any(isinstance(m, nn.Dropout) for m in model.modules())
    assert not any(isinstance(m, nn.Dropout) for m in cls(3, 32, 10, width=0.25, dropout=False).modules())
    model.eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("cls", MODELS)
def test_final_relu_option_makes_logits_non_negative(cls) -> None:
    torch.manual_seed(0)
    model = cls(3, 32, 10, width=0.25, final_relu=True).eval()
    with torch.no_grad():
        assert bool((model(torch.rand(3, 3, 32, 32)) >= 0).all())


def test_bad_sizes_and_widths_are_rejected() -> None:
    with pytest.raises(ValueError, match="image_size"):
        AllConvNet(3, 8, 10)
    with pytest.raises(ValueError, match="image_size"):
        NetworkInNetwork(3, 5, 10)
    with pytest.raises(ValueError, match="width"):
        AllConvNet(3, 32, 10, width=0.0)
    assert scaled(96, 0.001) == 1
