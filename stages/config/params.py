"""Params: params.yaml at one scale, read through accessors that build the specs.

Every stage reads its settings here (``Params.load``), so a value means the same thing wherever
it is read. ``Params(raw)`` validates the whole tree first (stages/config/loading.py);
``Params.for_job`` takes a job's pruned, already resolved tree and trusts it (the whole
params.yaml was validated when the plan was made). Either way an accessor asked for something
absent raises a ConfigError naming the section or entry. The experiment plan's methods
(group_pairs, evaluations, robustness_matrices, check_pair) delegate to
stages/config/experiments.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages.config import experiments
from stages.config.experiments import REPLICA_MARK, RobustnessMatrix, group_datasets
from stages.config.loading import load_yaml, validate
from stages.config.scales import SCALES, resolve_scaled, resolve_tree
from stages.config.specs import (
    AttackSpec,
    AugmentSpec,
    DatasetSpec,
    ModelSpec,
    TrainingPrecision,
    TrainingSpec,
)
from stages.utils.errors import ConfigError, MissingParamsError

if TYPE_CHECKING:
    from stages.models.registry import ArchSpec

ALL = "all"


def _count(value: int | str) -> int | None:
    return None if value == ALL else int(value)


def _absolute_steps(entry: dict[str, Any]) -> dict[str, Any]:
    """Turn ``relative_step`` r into step lengths r * eps / steps (per part for dual); with no
    steps there is nothing to step, and the length is 0."""
    entry = dict(entry)
    relative = entry.pop("relative_step", None)
    if relative is None:
        return entry
    steps = int(entry.get("steps", 0))

    def length(eps: float) -> float:
        return relative * eps / steps if steps else 0.0

    if entry["kind"] == "dual":
        entry["step_size_foreground"] = length(entry["eps_foreground"])
        entry["step_size_background"] = length(entry["eps_background"])
    else:
        entry["step_size"] = length(entry["eps"])
    return entry


class Params:
    """Validated params.yaml at one scale (or, from ``for_job``, a job's pruned part of it)."""

    def __init__(self, raw: dict[str, Any], scale: str | None = None, source: str = "params.yaml"):
        validate(raw, source)
        self._setup(raw, scale or raw["scale"], source, job=False)

    @classmethod
    def load(cls, path: str | Path = "params.yaml", scale: str | None = None) -> Params:
        return cls(load_yaml(path), scale=scale, source=str(path))

    @classmethod
    def for_job(cls, tree: dict[str, Any], scale: str, source: str) -> Params:
        """Params over a job's pruned params tree: some of params.yaml's sections and entries,
        every value already resolved at ``scale``; ``source`` names the file it came from.

        No schema or cross-reference checks run (the whole params.yaml passed them when the plan
        was made), so a stage loads only what its job reads. Accessors work on the entries
        present; one asked for an absent section or entry raises a MissingParamsError (a
        ConfigError) naming it. Keep the top-level ``seed``, ``device`` and ``replicates`` a job
        reads: an absent ``replicates`` means 1, as in params.yaml.
        """
        params = cls.__new__(cls)
        params._setup(tree, scale, source, job=True)
        return params

    def _setup(self, raw: dict[str, Any], scale: str, source: str, job: bool) -> None:
        self.raw = raw
        self.source = source
        self.job = job  # a pruned tree from for_job, not a whole validated params.yaml
        self.scale: str = scale
        if self.scale not in SCALES:
            raise ConfigError(f"scale: {self.scale!r} is not one of {', '.join(SCALES)}")
        self._evaluations: list[tuple[str, str]] | None = None
        # Specs are immutable: build each once (the DAG asks for hundreds of pairs).
        self._specs: dict[tuple[str, str], Any] = {}
        self._matrices: list[RobustnessMatrix] | None = None

    # --- reading the tree ------------------------------------------------------------------

    def section(self, *keys: str) -> Any:
        """The (unresolved) value at ``keys`` in the tree, e.g. ``section("evaluation",
        "groups")``; a ConfigError naming the first key that is absent."""
        node: Any = self.raw
        for depth, key in enumerate(keys):
            if not isinstance(node, dict) or key not in node:
                where = ".".join(keys[: depth + 1])
                holds = ", ".join(sorted(node)) if isinstance(node, dict) else "no keys"
                if self.job:
                    raise MissingParamsError(
                        f"{where}: no such section in {self.source}; the job's params file lacks it "
                        f"(it holds: {holds}), so the plan left out something this job reads"
                    )
                raise ConfigError(f"{where}: no such section in {self.source} (it holds: {holds})")
            node = node[key]
        return node

    def _entry(self, section: str, name: str) -> dict[str, Any]:
        entries = self.section(section)
        try:
            entry = entries[name]
        except KeyError:
            known = ", ".join(sorted(entries))
            if self.job:
                raise MissingParamsError(
                    f"{section}.{name}: no such entry in {self.source}, the job's params file "
                    f"(known: {known}); the plan left it out of this job's params"
                ) from None
            raise ConfigError(f"{section}.{name}: no such entry in params.yaml (known: {known})") from None
        return resolve_tree(entry, self.scale)

    @property
    def seed(self) -> int:
        return self.section("seed")

    @property
    def replicates(self) -> int:
        return int(resolve_scaled(self.raw.get("replicates", 1), self.scale))

    @property
    def device(self) -> str:
        return self.section("device")

    @property
    def box_fraction(self) -> float:
        return self.section("regions", "box_fraction")

    # --- specs -----------------------------------------------------------------------------

    def attack(self, name: str) -> AttackSpec:
        key = ("attack", name)
        if key not in self._specs:
            self._specs[key] = self._build_attack(name)
        return self._specs[key]

    def _build_attack(self, name: str) -> AttackSpec:
        entry = _absolute_steps(self._entry("attacks", name))
        if "mutation" in entry:
            entry["mutation"] = tuple(entry["mutation"])
        if "ensemble" in entry:
            entry["ensemble"] = tuple(entry["ensemble"])
        if "images" in entry:
            entry["images"] = _count(entry["images"])
        return AttackSpec(name=name, **entry)

    def training(self, name: str) -> TrainingSpec:
        key = ("training", name)
        if key not in self._specs:
            self._specs[key] = self._build_training(name)
        return self._specs[key]

    def _build_training(self, name: str) -> TrainingSpec:
        entry = self._entry("training", name)
        augment = AugmentSpec(**entry.pop("augment", {}))
        return TrainingSpec(name=name, augment=augment, **entry)

    def training_precision(self, model: str, device_type: str) -> TrainingPrecision:
        """How ``model`` trains on a ``device_type`` ("cpu", "cuda") device: params.yaml's
        ``precision.training.<device>`` and, for an adversarially trained model, the precision
        of its training attack, ``precision.training_attack.<device>`` (a naturally trained one
        runs no attack: None), each value resolved at the scale. A device type without an entry
        trains in fp32, contiguous."""
        adversarial = self.model(model).adversarial
        by_device = self.section("precision", "training")
        attack: str | None = None
        if adversarial:
            attacks = self.section("precision", "training_attack")
            attack = resolve_tree(attacks.get(device_type, {}), self.scale).get("precision", "fp32")
        if device_type not in by_device:
            return TrainingPrecision(attack_precision=attack)
        entry = resolve_tree(by_device[device_type], self.scale)
        return TrainingPrecision(
            precision=entry["precision"],
            memory_format=entry["memory_format"],
            tf32=bool(entry.get("tf32", False)),
            attack_precision=attack,
        )

    def architecture(self, name: str) -> ArchSpec:
        key = ("architecture", name)
        if key not in self._specs:
            self._specs[key] = self._build_architecture(name)
        return self._specs[key]

    def _build_architecture(self, name: str) -> ArchSpec:
        from stages.models.registry import make_arch  # torch: only when a model is needed

        entry = self._entry("architectures", name)
        return make_arch(name, entry["family"], entry.get("options", {}), f"architectures.{name}")

    def dataset(self, name: str) -> DatasetSpec:
        key = ("dataset", name)
        if key not in self._specs:
            self._specs[key] = self._build_dataset(name)
        return self._specs[key]

    def _build_dataset(self, name: str) -> DatasetSpec:
        from stages.data.builders import get_builder, make_config

        entry = self._entry("datasets", name)
        # Sample counts matter only to datasets models use (checked in check_references).
        samples = self.section("samples")
        sizes = self._entry("samples", name) if name in samples else {"train": ALL, "test": ALL}
        where = f"datasets.{name}"
        builder = get_builder(entry["builder"], f"{where}.builder")
        if builder.source != entry["source"]:
            raise ConfigError(
                f"{where}.source: builder {builder.name!r} reads raw dataset {builder.source!r}, "
                f"not {entry['source']!r}"
            )
        return DatasetSpec(
            name=name,
            source=entry["source"],
            train_samples=_count(sizes["train"]),
            test_samples=_count(sizes["test"]),
            builder=builder,
            options=make_config(builder, entry.get("options", {}), f"{where}.options"),
        )

    def model(self, name: str) -> ModelSpec:
        key = ("model", name)
        if key not in self._specs:
            self._specs[key] = self._build_model(name)
        return self._specs[key]

    def _build_model(self, name: str) -> ModelSpec:
        base = self.base_model(name)
        if base != name:
            return dataclasses.replace(self.model(base), name=name)
        entry = self._entry("models", name)
        spec = ModelSpec(
            name=name,
            dataset=self.dataset(entry["dataset"]),
            arch=self.architecture(entry["arch"]),
            training=self.training(entry["training"]),
            train_attack=self.attack(entry["train_attack"]),
            input=entry.get("input", "natural"),
        )
        if spec.input == "foreground" and not spec.dataset.has_masks:
            raise ConfigError(
                f"models.{name}.input: 'foreground' feeds x∘F, but dataset {spec.dataset.name!r} has no "
                f"foreground masks; use a masked dataset or input: natural"
            )
        return spec

    def evaluation_dataset(self, model: str) -> DatasetSpec:
        """The dataset whose test images every evaluation of ``model`` runs on: its evaluation
        groups' (one per model, checked), else its own."""
        model = self.base_model(model)
        models = self.section("models")
        if model not in models:
            self._entry("models", model)  # the ConfigError naming the known models
        self.section("evaluation", "groups")  # a job's params lacking them: the error naming them
        return self.dataset(group_datasets(self.raw).get(model, models[model]["dataset"]))

    # Seeds. With `replicates` R > 1 every model is trained (and evaluated) R times, with seeds
    # seed, seed + 1, ...; the copies after the first are models "<model>_seed<N>", so the
    # first keeps its paths and results. Tables aggregate a model over its replicas.
    def replicas(self, model: str) -> list[str]:
        """The other trainings of ``model`` (not ``model`` itself), in seed order."""
        return [f"{model}{REPLICA_MARK}{self.seed + k}" for k in range(1, self.replicates)]

    def model_names(self) -> list[str]:
        """Every model to train: each of params.yaml's, followed by its replicas."""
        return [name for model in self.section("models") for name in (model, *self.replicas(model))]

    def base_model(self, name: str) -> str:
        """The params.yaml model a replica name stands for (a model's own name is its base)."""
        base, mark, seed = name.rpartition(REPLICA_MARK)
        if mark and base in self.section("models") and seed.isdigit() and name in self.replicas(base):
            return base
        return name

    def model_seed(self, name: str) -> int:
        """The training seed of a model or replica."""
        base = self.base_model(name)
        return self.seed if base == name else int(name.rpartition(REPLICA_MARK)[2])

    # --- evaluation settings ---------------------------------------------------------------

    @property
    def eval_batch_size(self) -> int:
        return int(resolve_scaled(self.section("evaluation", "batch_size"), self.scale))

    def de_forward(self, device_type: str) -> dict[str, Any]:
        """How the DE attack scores candidates on a ``device_type`` ("cpu", "cuda") device:
        ``batch``, ``precision`` and ``memory_format`` (the fields of
        stages.attacks.differential_evolution.DEForward); {} (the attack's defaults) when
        params.yaml names none for it."""
        by_device = self.section("evaluation").get("de_forward", {})
        return dict(by_device.get(device_type, {}))

    # --- the experiment plan (stages/config/experiments.py) --------------------------------

    def check_pair(self, model: str, attack: str, dataset: str | None = None) -> None:
        """A model/attack pair fits when the attack's region exists on the dataset it runs on
        (``dataset``, by default the model's own); else a ConfigError says why."""
        experiments.check_pair(self, model, attack, dataset)

    def group_pairs(self) -> list[tuple[str, str]]:
        """The (model, attack) pairs the evaluation groups list, in params order (their results
        in results/<scale>/evals/<model>/)."""
        return experiments.group_pairs(self)

    def matrix_only_pairs(self) -> list[tuple[str, str]]:
        """The fitting robustness-matrix cells no evaluation group lists (results/<scale>/matrix/)."""
        return experiments.matrix_only_pairs(self)

    def evaluations(self) -> list[tuple[str, str]]:
        """Every (model, attack) pair to evaluate: the groups' pairs, then the robustness
        matrices' fitting cells (a group pair that does not fit is a ConfigError)."""
        if self._evaluations is None:
            self._evaluations = experiments.evaluations(self)
        return list(self._evaluations)

    def robustness_matrices(self) -> list[RobustnessMatrix]:
        """One matrix per ``robustness_matrix.datasets`` entry, each cell fitting or not (with
        the reason)."""
        if self._matrices is None:
            self._matrices = experiments.robustness_matrices(self)
        return list(self._matrices)
