"""Architectures: params.yaml's `architectures.<name>` names a `family` and its `options`.

A family is a model class plus the frozen dataclass of its options, so one definition serves
every depth and width (VGG-16 and VGG-19 are two entries of family ``vgg``). ``model.pt``
stores the family and options, so a trained model rebuilds without params.yaml.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from stages.models.allconv import AllConvConfig, AllConvNet
from stages.models.lat_cnn import LatCNN, LatCnnConfig
from stages.models.nin import NetworkInNetwork, NinConfig
from stages.models.resnet import ResNet, ResNetConfig
from stages.models.vgg import VGG, VggConfig
from stages.utils.errors import ConfigError
from stages.utils.options import dataclass_from_dict

# (in_channels, image_size, num_classes, options) -> a freshly initialised model
ModelFactory = Callable[[int, int, int, Any], nn.Module]


@dataclass(frozen=True)
class Family:
    options: type
    factory: ModelFactory


FAMILIES: dict[str, Family] = {
    "lat_cnn": Family(LatCnnConfig, LatCNN),
    "vgg": Family(VggConfig, VGG),
    "resnet": Family(ResNetConfig, lambda c, s, n, o: ResNet(c, s, n, depth=o.depth, width=o.width)),
    # Wang et al.'s CIFAR-10 models (pixel space, §IV-A) beside VGG-16 (family vgg, depth 16).
    "allconv": Family(
        AllConvConfig,
        lambda c, s, n, o: AllConvNet(c, s, n, o.width, dropout=o.dropout, final_relu=o.final_relu),
    ),
    "nin": Family(
        NinConfig,
        lambda c, s, n, o: NetworkInNetwork(c, s, n, o.width, dropout=o.dropout, final_relu=o.final_relu),
    ),
}


@dataclass(frozen=True)
class ArchSpec:
    """One entry of params.yaml's `architectures`: a family and its parsed options."""

    name: str
    family: str
    options: Any


def make_arch(name: str, family: str, options: dict[str, Any], where: str) -> ArchSpec:
    """Parse an architecture entry; unknown families or options are errors naming ``where``."""
    if family not in FAMILIES:
        known = ", ".join(sorted(FAMILIES))
        raise ConfigError(f"{where}.family: unknown model family {family!r} (known: {known})")
    parsed = dataclass_from_dict(FAMILIES[family].options, options, f"{where}.options")
    return ArchSpec(name=name, family=family, options=parsed)


def arch_record(arch: ArchSpec) -> dict[str, Any]:
    """What model.pt stores to rebuild the architecture."""
    return {"name": arch.name, "family": arch.family, "options": dataclasses.asdict(arch.options)}


def arch_from_record(record: dict[str, Any]) -> ArchSpec:
    return make_arch(record["name"], record["family"], record["options"], f"model.pt arch {record['name']}")


def build_model(arch: ArchSpec, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """A freshly initialised model for inputs of shape (in_channels, image_size, image_size)."""
    return FAMILIES[arch.family].factory(in_channels, image_size, num_classes, arch.options)
