"""The processed-dataset builders by the name params.yaml uses (`datasets.<name>.builder`).

Each builder reads one raw dataset and returns its processed splits and statistics; its
settings are a frozen dataclass filled from `datasets.<name>.options`. Modules are imported
lazily so that validating params.yaml does not pull in OpenCV or pycocotools.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.data.processed import ProcessedSplit
from stages.utils.errors import ConfigError
from stages.utils.options import dataclass_from_dict

BuildResult = tuple[dict[str, ProcessedSplit], dict[str, Any]]


@dataclass(frozen=True)
class Builder:
    name: str
    source: str  # the raw dataset it reads
    module: str
    function: str
    config: str  # the options dataclass, in the same module
    has_masks: Callable[[Any], bool]  # whether the built dataset carries foreground masks


BUILDERS: dict[str, Builder] = {
    "mnist": Builder(
        "mnist",
        "mnist",
        "stages.data.classic",
        "build_mnist",
        "MnistConfig",
        lambda cfg: cfg.foreground_threshold is not None,
    ),
    "cifar10": Builder(
        "cifar10",
        "cifar10",
        "stages.data.classic",
        "build_cifar10",
        "Cifar10Config",
        lambda cfg: cfg.grabcut is not None,
    ),
    "coco_ic": Builder(
        "coco_ic", "coco", "stages.data.coco_ic", "build_coco_ic", "CocoIcConfig", lambda cfg: True
    ),
    "gtsrb_ic": Builder(
        "gtsrb_ic", "gtsrb", "stages.data.gtsrb_ic", "build_gtsrb_ic", "GtsrbIcConfig", lambda cfg: True
    ),
}


def get_builder(name: str, where: str) -> Builder:
    try:
        return BUILDERS[name]
    except KeyError:
        raise ConfigError(
            f"{where}: unknown builder {name!r} (known: {', '.join(sorted(BUILDERS))})"
        ) from None


def config_class(builder: Builder) -> type:
    return getattr(importlib.import_module(builder.module), builder.config)


def make_config(builder: Builder, options: dict[str, Any], where: str) -> Any:
    """The builder's options dataclass from params (unknown keys are errors naming the key).

    A value the dataclass itself rejects is reported under ``where`` too, so the message
    names the params path (``datasets.<name>.options``) and not only the option."""
    try:
        return dataclass_from_dict(config_class(builder), options, where)
    except ConfigError as exc:
        if str(exc).startswith(where):
            raise
        raise ConfigError(f"{where}: {exc}") from None


def build(builder: Builder, raw_root: Path, cfg: Any, *, progress: bool) -> BuildResult:
    fn = getattr(importlib.import_module(builder.module), builder.function)
    return fn(raw_root, cfg, progress=progress)
