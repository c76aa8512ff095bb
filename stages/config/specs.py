"""The specs: params.yaml entries as typed, frozen values (an attack, a training recipe, a
dataset, a model).

Library code (attacks, training, evaluation) takes these, never params.yaml's dicts, so it
neither reads YAML nor resolves scales; Params builds them (stages/config/params.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from stages.utils.errors import ConfigError

if TYPE_CHECKING:
    from stages.models.registry import ArchSpec


@dataclass(frozen=True)
class AttackSpec:
    """One attack of params.yaml, steps resolved to absolute lengths.

    ``kind: pgd`` uses ``eps``/``step_size``/``region``/``localization``; ``kind: dual`` (the
    dual-perturbation attack) uses the ``*_foreground``/``*_background`` budgets and steps,
    ``salience_weight`` (λ), the ``salience`` model and where its ``foreground`` comes from;
    ``kind: de`` (Wang et al.'s few-pixel differential evolution, evaluation only) uses
    ``region``, ``pixels``, the ``search`` and the DE settings, on the first ``images`` test
    images (``attacked``: all of them or the correctly classified ones), the first
    ``targeted_images`` of the attacked ones also towards every other class; ``kind:
    autoattack`` (the strong reference of a robustness-matrix column, evaluation only) runs the
    ``ensemble`` at ``norm``/``eps`` with ``steps``, ``n_queries`` and ``target_classes``.
    """

    name: str
    kind: Literal["none", "pgd", "dual", "de", "autoattack"]
    norm: Literal["linf", "l2"] | None = None
    eps: float = 0.0
    step_size: float = 0.0
    steps: int = 0
    random_start: bool = False
    restarts: int = 1
    region: str = "full"
    localization: Literal["project", "post_clip"] = "project"
    eps_foreground: float = 0.0
    eps_background: float = 0.0
    step_size_foreground: float = 0.0
    step_size_background: float = 0.0
    salience_weight: float = 0.0
    salience: str = "spectral_residual"
    foreground: Literal["segmentation", "saliency"] = "segmentation"
    pixels: int = 1
    population: int = 400
    max_generations: int = 100
    mutation: tuple[float, float] = (0.5, 1.0)
    crossover_rate: float = 0.7
    strategy: Literal["best1", "rand1"] = "rand1"
    # Wang et al.'s §III-D composite search vs ours (stages/attacks/differential_evolution.py);
    # `attacked`: every image with y = the model's clean prediction (the paper, §III-A and
    # §IV-B) or only the correctly classified ones with their true labels (ours).
    search: Literal["composite", "indexed"] = "composite"
    attacked: Literal["all", "correct"] = "all"
    init: Literal["latin_hypercube", "random"] = "latin_hypercube"
    color_levels: int | None = 256
    images: int | None = None  # None: every evaluated image
    targeted_images: int = 0
    ensemble: tuple[str, ...] = ("apgd-ce", "apgd-t", "fab-t", "square")
    n_queries: int = 5000
    target_classes: int = 9


@dataclass(frozen=True)
class AugmentSpec:
    """Random crops after zero padding and horizontal flips, applied alike to an image and its
    foreground mask. None of the four papers states its augmentation; these are the usual
    32x32 ones (4-pixel crops and flips, e.g. Madry et al. 2018's CIFAR-10 training)."""

    crop_padding: int = 0
    horizontal_flip: bool = False


@dataclass(frozen=True)
class TrainingSpec:
    """A training recipe. Its length is exactly one of ``epochs`` (passes over the training
    split) or ``steps`` (optimizer steps, as Rothberg et al. 2019, §5 give it: 100,000); a
    steps recipe spans ceil(steps / steps_per_epoch) epochs, the last one partial."""

    name: str
    optimizer: Literal["adam", "sgd"]
    lr: float
    batch_size: int
    epochs: int | None = None
    steps: int | None = None
    momentum: float = 0.9
    weight_decay: float = 0.0
    eps_ramp_epochs: int = 0
    lr_schedule: Literal["constant", "cosine"] = "constant"
    augment: AugmentSpec = AugmentSpec()

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            given = "both" if self.epochs is not None else "neither"
            raise ConfigError(
                f"training.{self.name}: gives {given} of epochs and steps; give exactly one, "
                f"epochs (passes over the training split) or steps (optimizer steps)"
            )
        length = self.epochs if self.epochs is not None else self.steps
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            key = "epochs" if self.epochs is not None else "steps"
            raise ConfigError(f"training.{self.name}.{key}: {length!r}; give a positive integer")

    def steps_per_epoch(self, n: int) -> int:
        """Optimizer steps in one full pass over ``n`` images (the last batch may be short)."""
        return math.ceil(n / self.batch_size)

    def total_steps(self, n: int) -> int:
        """Optimizer steps of the whole run on ``n`` training images."""
        if self.steps is not None:
            return self.steps
        assert self.epochs is not None  # exactly one is set (__post_init__)
        return self.epochs * self.steps_per_epoch(n)

    def total_epochs(self, n: int) -> int:
        """Epochs the run spans on ``n`` images; a steps recipe's last epoch may be partial."""
        if self.epochs is not None:
            return self.epochs
        return math.ceil(self.total_steps(n) / self.steps_per_epoch(n))

    def images_seen(self, n: int) -> int:
        """Training images the run passes through (counting repeats): what its cost scales with."""
        full, rest = divmod(self.total_steps(n), self.steps_per_epoch(n))
        return full * n + min(rest * self.batch_size, n)


@dataclass(frozen=True)
class TrainingPrecision:
    """How training runs on one device (params.yaml's ``precision``, resolved at the scale;
    stages/utils/precision.py): the forward pass and loss at ``precision`` (fp32: no autocast;
    the weights and optimizer state are fp32 always), the model and its batches in
    ``memory_format``, TF32 on or off for fp32 operations (CUDA only), and the precision of the
    attack that makes adversarial training's examples (None for a naturally trained model,
    which runs none)."""

    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    memory_format: Literal["contiguous", "channels_last"] = "contiguous"
    tf32: bool = False
    attack_precision: Literal["fp32", "bf16", "fp16"] | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    source: str
    train_samples: int | None  # None: the whole split
    test_samples: int | None
    builder: Any = None  # stages.data.builders.Builder
    options: Any = None  # the builder's options dataclass

    @property
    def has_masks(self) -> bool:
        return bool(self.builder.has_masks(self.options))


ModelInput = Literal["natural", "foreground"]
"""What a model sees: ``natural`` images x, or ``foreground`` images x∘F (background zeroed,
Vaishnavi et al.'s X_FG models), at training and test time alike."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    dataset: DatasetSpec
    arch: ArchSpec
    training: TrainingSpec
    train_attack: AttackSpec
    input: ModelInput = "natural"

    @property
    def adversarial(self) -> bool:
        return self.train_attack.kind != "none"
