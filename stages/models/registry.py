"""Architectures: params.yaml's `architectures.<name>` names a `family` and its `options`.

A family is a model class plus the frozen dataclass of its options, so one definition serves
every depth and width (VGG-16 and VGG-19 are two entries of family ``vgg``). ``model.pt``
stores the family and options, so a trained model rebuilds without params.yaml.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stages.utils.errors import ConfigError
from stages.utils.options import dataclass_from_dict

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Family:
    """A model family: the module holding its options dataclass and ``from_options``
    (in_channels, image_size, num_classes, options) -> a freshly initialised model."""

    module: str
    options: str

    def load(self) -> Any:
        return importlib.import_module(self.module)

    def options_class(self) -> type:
        return getattr(self.load(), self.options)


# Each family's module is imported only when a model of it is built or parsed, so a job's code
# is the families it names (workflow.code_deps reads this table for the job's code digest).
FAMILIES: dict[str, Family] = {
    "lat_cnn": Family("stages.models.lat_cnn", "LatCnnConfig"),
    "vgg": Family("stages.models.vgg", "VggConfig"),
    "resnet": Family("stages.models.resnet", "ResNetConfig"),
    # Wang et al.'s CIFAR-10 models (pixel space, §IV-A) beside VGG-16 (family vgg, depth 16).
    "allconv": Family("stages.models.allconv", "AllConvConfig"),
    "nin": Family("stages.models.nin", "NinConfig"),
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
    parsed = dataclass_from_dict(FAMILIES[family].options_class(), options, f"{where}.options")
    return ArchSpec(name=name, family=family, options=parsed)


def arch_record(arch: ArchSpec) -> dict[str, Any]:
    """What model.pt stores to rebuild the architecture."""
    return {"name": arch.name, "family": arch.family, "options": dataclasses.asdict(arch.options)}


def arch_from_record(record: dict[str, Any]) -> ArchSpec:
    return make_arch(record["name"], record["family"], record["options"], f"model.pt arch {record['name']}")


def build_model(arch: ArchSpec, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """A freshly initialised model for inputs of shape (in_channels, image_size, image_size)."""
    return FAMILIES[arch.family].load().from_options(in_channels, image_size, num_classes, arch.options)
