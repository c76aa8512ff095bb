"""params.yaml: loading, schema validation, cross-reference checks and scale resolution.

Snakemake and DVC both read params.yaml; every stage resolves the settings it needs through
this module, so a value means the same thing wherever it is read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import jsonschema
import yaml

from stages.utils.errors import ConfigError

if TYPE_CHECKING:
    from stages.models.registry import ArchSpec

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "params.schema.yaml"
SCALES = ("tiny", "reduced", "paper")
ALL = "all"

Scale = Literal["tiny", "reduced", "paper"]


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found; pass --params with the path of params.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}); fix the syntax at the line shown") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "<top level>"


def _best_message(error: jsonschema.ValidationError) -> str:
    # A oneOf failure (a scaled value) hides the useful sub-error; report the closest one.
    # The branch that got furthest into the value (deepest path, then not a mere type
    # mismatch) is the one the user meant.
    if error.context:
        error = max(error.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
    value = repr(error.instance)
    value = value if len(value) <= 80 else value[:77] + "..."
    return f"{_key_path(error)}: {error.message} (value: {value})"


def validate(params: dict[str, Any], source: str = "params.yaml") -> None:
    """Check ``params`` against the JSON schema and its cross-references.

    Raises :class:`ConfigError` naming the offending key and value.
    """
    schema = yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = [f"  - {_best_message(e)}" for e in errors[:10]]
        raise ConfigError(
            f"{source}: {len(errors)} invalid value(s):\n"
            + "\n".join(lines)
            + f"\nThe allowed keys and values are in {SCHEMA_PATH.relative_to(SCHEMA_PATH.parents[2])}."
        )
    _check_references(params, source)


def _check_references(params: dict[str, Any], source: str) -> None:
    problems: list[str] = []
    raw_sources = set(params["raw"]["datasets"])
    for name, ds in params["datasets"].items():
        if ds["source"] not in raw_sources:
            problems.append(
                f"datasets.{name}.source: {ds['source']!r} is not in raw.datasets {sorted(raw_sources)}"
            )
    for name in {m["dataset"] for m in params["models"].values()}:
        if name not in params["samples"]:
            problems.append(f"samples.{name}: missing; give the train and test sample counts")
    for name in params["models"]:
        base, mark, seed = name.rpartition(REPLICA_MARK)
        if mark and base in params["models"] and seed.isdigit():
            problems.append(
                f"models.{name}: the name of a replica of {base!r} (replicates trains "
                f"'<model>{REPLICA_MARK}<seed>' copies); rename the model"
            )
    for name, model in params["models"].items():
        if model["dataset"] not in params["datasets"]:
            problems.append(f"models.{name}.dataset: unknown dataset {model['dataset']!r}")
        if model["training"] not in params["training"]:
            problems.append(f"models.{name}.training: unknown training recipe {model['training']!r}")
        if model["train_attack"] not in params["attacks"]:
            problems.append(f"models.{name}.train_attack: unknown attack {model['train_attack']!r}")
        if model["arch"] not in params["architectures"]:
            problems.append(f"models.{name}.arch: unknown architecture {model['arch']!r}")
    for group, spec in params["evaluation"]["groups"].items():
        if spec["dataset"] not in params["datasets"]:
            problems.append(f"evaluation.groups.{group}.dataset: unknown dataset {spec['dataset']!r}")
        for model in spec["models"]:
            if model not in params["models"]:
                problems.append(f"evaluation.groups.{group}.models: unknown model {model!r}")
        for attack in spec["attacks"]:
            if attack not in params["attacks"]:
                problems.append(f"evaluation.groups.{group}.attacks: unknown attack {attack!r}")
    problems += _check_evaluation_datasets(params)
    for name, model in params["models"].items():
        attack = params["attacks"].get(model["train_attack"], {})
        if attack.get("kind") == "de":
            problems.append(
                f"models.{name}.train_attack: {model['train_attack']!r} is a differential-evolution "
                f"attack, which is black-box and far too slow to train on; use a pgd or dual attack"
            )
        if attack.get("kind") == "autoattack":
            problems.append(
                f"models.{name}.train_attack: {model['train_attack']!r} is the AutoAttack ensemble, an "
                f"evaluation reference; train on a pgd or dual attack"
            )
    for key in ("ground_truth", "routine"):
        name = params.get("mask_quality", {}).get(key)
        if name is not None and name not in params["datasets"]:
            problems.append(f"mask_quality.{key}: unknown dataset {name!r}")
    evaluated = {
        pair
        for g in params["evaluation"]["groups"].values()
        for pair in ((m, a) for m in g["models"] for a in g["attacks"])
    }
    problems += _check_matrix(params)
    problems += _check_training_lengths(params)
    # Tables laid out as datasets -> {role: model} x inputs -> {column: attack}.
    for table, spec in params["tables"].items():
        for ds, roles in spec["datasets"].items():
            for role, model in roles.items():
                if model not in params["models"]:
                    problems.append(f"tables.{table}.datasets.{ds}.{role}: unknown model {model!r}")
                    continue
                for column, attack in spec["inputs"].items():
                    if (model, attack) not in evaluated:
                        problems.append(
                            f"tables.{table}.datasets.{ds}.{role}: model {model!r} is not evaluated "
                            f"under {column} attack {attack!r}; add both to one evaluation.groups entry"
                        )
    problems += _check_table_searches(params, evaluated)
    # Sweeps (tables.dual_perturbation): every curve point evaluated for every model.
    for table, spec in params["tables"].items():
        for sweep, curve in spec.get("sweeps", {}).items():
            for attack in curve["attacks"]:
                if attack not in params["attacks"]:
                    problems.append(f"tables.{table}.sweeps.{sweep}.attacks: unknown attack {attack!r}")
                    continue
                if curve["parameter"] not in params["attacks"][attack]:
                    problems.append(
                        f"tables.{table}.sweeps.{sweep}: attack {attack!r} has no "
                        f"{curve['parameter']!r} to sweep"
                    )
                problems += [
                    f"tables.{table}.sweeps.{sweep}: model {model!r} is not evaluated "
                    f"under {attack!r}; add both to one evaluation.groups entry"
                    for model in _unevaluated_models(params, spec, attack, evaluated)
                ]
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))


def _check_training_lengths(params: dict[str, Any]) -> list[str]:
    """Every recipe gives exactly one length, epochs or steps, at every scale (not only the
    active one, so a recipe is whole before any job starts)."""
    problems: list[str] = []
    for name, recipe in params["training"].items():
        for scale in SCALES:
            given = {key: resolve_scaled(recipe.get(key), scale) for key in ("epochs", "steps")}
            if (given["epochs"] is None) != (given["steps"] is None):
                continue
            if given["epochs"] is None:
                problems.append(
                    f"training.{name}: neither epochs nor steps at scale {scale!r}; give one: "
                    f"epochs (passes over the training split) or steps (optimizer steps), a positive "
                    f"integer or {{tiny: .., reduced: .., paper: ..}} with null where the other applies"
                )
            else:
                problems.append(
                    f"training.{name}: both epochs ({given['epochs']}) and steps ({given['steps']}) at "
                    f"scale {scale!r}; give exactly one, and null the other at that scale"
                )
    return problems


def _unevaluated_models(
    params: dict[str, Any], table: dict[str, Any], attack: str, evaluated: set[tuple[str, str]]
) -> list[str]:
    """The models of a table (``datasets.<ds>.<role>``) that no evaluation group runs under
    ``attack``; models unknown to params are reported by the table's own check."""
    return [
        model
        for roles in table["datasets"].values()
        for model in roles.values()
        if model in params["models"] and (model, attack) not in evaluated
    ]


def _check_table_searches(params: dict[str, Any], evaluated: set[tuple[str, str]]) -> list[str]:
    """``tables.<table>.searches`` (the pixel-space report's comparison of DE searches, ours):
    each column a kind de attack run with the search it is listed under, evaluated for every
    model of the table, so the comparison never mixes searches."""
    problems: list[str] = []
    for table, spec in params["tables"].items():
        for search, columns in (spec.get("searches") or {}).items():
            for column, attack in columns.items():
                where = f"tables.{table}.searches.{search}.{column}"
                entry = params["attacks"].get(attack)
                if entry is None:
                    problems.append(f"{where}: unknown attack {attack!r}")
                    continue
                ran = entry.get("search", AttackSpec.search) if entry["kind"] == "de" else None
                if ran != search:
                    problems.append(
                        f"{where}: attack {attack!r} does not run the {search!r} search (kind "
                        f"{entry['kind']}, search {ran}); list it under its own search"
                    )
                problems += [
                    f"{where}: model {model!r} is not evaluated under {attack!r}; add "
                    f"both to one evaluation.groups entry"
                    for model in _unevaluated_models(params, spec, attack, evaluated)
                ]
    return problems


def group_datasets(params: dict[str, Any]) -> dict[str, str]:
    """model -> the dataset its evaluation groups run it on (models in no group are absent)."""
    datasets: dict[str, str] = {}
    for spec in params["evaluation"]["groups"].values():
        for model in spec["models"]:
            datasets.setdefault(model, spec["dataset"])
    return datasets


def _check_evaluation_datasets(params: dict[str, Any]) -> list[str]:
    """Each model is evaluated on one dataset (so each pair has one result file), holding the
    images and classes it was trained on."""
    problems: list[str] = []
    first = group_datasets(params)
    for group, spec in params["evaluation"]["groups"].items():
        for model in spec["models"]:
            if model not in params["models"] or spec["dataset"] not in params["datasets"]:
                continue
            trained_on = params["models"][model]["dataset"]
            if trained_on in params["datasets"] and not _same_images(
                params["datasets"], trained_on, spec["dataset"]
            ):
                problems.append(
                    f"evaluation.groups.{group}.models: {model!r} is a model of dataset "
                    f"{trained_on!r}, whose images and classes differ from the group's "
                    f"{spec['dataset']!r} (another raw source or builder)"
                )
            elif first[model] != spec["dataset"]:
                problems.append(
                    f"evaluation.groups.{group}: model {model!r} is evaluated on {first[model]!r} by "
                    f"another group; a model's evaluations share one dataset (one result file per "
                    f"model and attack), so list it in groups of one dataset"
                )
    return problems


def _check_matrix(params: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    attacks = params["attacks"]
    for dataset, spec in params["robustness_matrix"]["datasets"].items():
        where = f"robustness_matrix.datasets.{dataset}"
        if dataset not in params["datasets"]:
            problems.append(f"{where}: unknown dataset {dataset!r}")
        columns = spec["attacks"]
        per_scale = columns.values() if isinstance(columns, dict) else [columns]
        names = {name for scale_columns in per_scale for name in scale_columns}
        for name in sorted(names - set(attacks)):
            problems.append(f"{where}.attacks: unknown attack {name!r}")
        for column, reference in (spec.get("references") or {}).items():
            if column not in names:
                problems.append(f"{where}.references.{column}: not one of the matrix's attacks")
                continue
            if reference not in attacks:
                problems.append(f"{where}.references.{column}: unknown attack {reference!r}")
                continue
            col, ref = attacks.get(column, {}), attacks[reference]
            if ref["kind"] != "autoattack":
                problems.append(
                    f"{where}.references.{column}: {reference!r} is a {ref['kind']} attack; a reference "
                    f"is a kind autoattack attack"
                )
            elif col.get("kind") != "pgd" or col.get("region") != "full":
                problems.append(
                    f"{where}.references.{column}: a reference checks a full-image pgd column, and "
                    f"{column!r} is not one"
                )
            elif (col["norm"], col["eps"]) != (ref["norm"], ref["eps"]):
                problems.append(
                    f"{where}.references.{column}: {reference!r} has norm {ref['norm']} eps {ref['eps']}, "
                    f"the column {col['norm']} eps {col['eps']}; a reference must have the same budget"
                )
    return problems


# Replica models are named "<model>_seed<N>" (see Params.replicas).
REPLICA_MARK = "_seed"


# Builder options that only add foreground masks (and so keep only the masked images); two
# datasets differing in nothing else hold the same images and classes.
MASK_ONLY_OPTIONS = frozenset({"grabcut"})


def _same_images(datasets: dict[str, Any], a: str, b: str) -> bool:
    """Whether a model trained on dataset ``a`` can be evaluated on ``b``: one builder made both
    from one raw source with the same options but for masks (e.g. CIFAR-10 with and without
    GrabCut masks)."""

    def identity(name: str) -> tuple[Any, ...]:
        ds = datasets[name]
        options = {k: v for k, v in (ds.get("options") or {}).items() if k not in MASK_ONLY_OPTIONS}
        return ds["source"], ds["builder"], json.dumps(options, sort_keys=True)

    return identity(a) == identity(b)


def resolve_scaled(value: Any, scale: str) -> Any:
    """Pick the active scale's entry of a ``{tiny, reduced, paper}`` mapping; else ``value``."""
    if isinstance(value, dict) and set(value) == set(SCALES):
        return value[scale]
    return value


def resolve_tree(value: Any, scale: str) -> Any:
    """Resolve every scaled value inside a nested structure."""
    value = resolve_scaled(value, scale)
    if isinstance(value, dict):
        return {k: resolve_tree(v, scale) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_tree(v, scale) for v in value]
    return value


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


def _count(value: int | str) -> int | None:
    return None if value == ALL else int(value)


class Params:
    """Validated params.yaml at one scale."""

    def __init__(self, raw: dict[str, Any], scale: str | None = None, source: str = "params.yaml"):
        validate(raw, source)
        self.raw = raw
        self.scale: str = scale or raw["scale"]
        if self.scale not in SCALES:
            raise ConfigError(f"scale: {self.scale!r} is not one of {', '.join(SCALES)}")
        self.seed: int = raw["seed"]
        self.replicates: int = int(resolve_scaled(raw.get("replicates", 1), self.scale))
        self.device: str = raw["device"]
        self.box_fraction: float = raw["regions"]["box_fraction"]
        self._evaluations: list[tuple[str, str]] | None = None
        # Specs are immutable: build each once (the DAG asks for hundreds of pairs).
        self._specs: dict[tuple[str, str], Any] = {}
        self._matrices: list[RobustnessMatrix] | None = None

    @classmethod
    def load(cls, path: str | Path = "params.yaml", scale: str | None = None) -> Params:
        return cls(load_yaml(path), scale=scale, source=str(path))

    def _entry(self, section: str, name: str) -> dict[str, Any]:
        try:
            entry = self.raw[section][name]
        except KeyError:
            known = ", ".join(sorted(self.raw[section]))
            raise ConfigError(f"{section}.{name}: no such entry in params.yaml (known: {known})") from None
        return resolve_tree(entry, self.scale)

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
        # Sample counts matter only to datasets models use (checked in _check_references).
        sizes = self._entry("samples", name) if name in self.raw["samples"] else {"train": ALL, "test": ALL}
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

    def check_pair(self, model: str, attack: str, dataset: str | None = None) -> None:
        """A model/attack pair fits when the attack's region exists on the dataset it runs on
        (``dataset``, by default the model's own)."""
        from stages.masks.regions import REGIONS_NEEDING_FOREGROUND

        spec = self.model(model)
        if dataset is not None and dataset != spec.dataset.name:
            spec = dataclasses.replace(spec, dataset=self.dataset(dataset))
        attack_spec = self.attack(attack)
        if attack_spec.kind == "dual":
            self._check_dual_pair(spec, attack_spec)
            return
        if attack_spec.kind == "autoattack" and spec.input == "foreground":
            raise ConfigError(
                f"{model} x {attack}: AutoAttack changes every pixel, and model {model!r} sees only "
                f"x∘F (models.{model}.input: foreground); its PGD columns are foreground attacks"
            )
        if attack_spec.kind == "de" and spec.input == "foreground":
            raise ConfigError(
                f"{model} x {attack}: a differential-evolution attack writes whole pixels, and model "
                f"{model!r} sees only x∘F (models.{model}.input: foreground); evaluate it with a pgd attack"
            )
        region = attack_spec.region
        if attack_spec.kind != "none" and region in REGIONS_NEEDING_FOREGROUND:
            if not spec.dataset.has_masks:
                raise ConfigError(
                    f"{model} x {attack}: attack region {region!r} needs foreground masks, but "
                    f"dataset {spec.dataset.name!r} has none (datasets.{spec.dataset.name}.options); "
                    f"use a masked dataset or a region that needs no mask (full, box, outside_box)"
                )

    def evaluation_dataset(self, model: str) -> DatasetSpec:
        """The dataset whose test images every evaluation of ``model`` runs on: its evaluation
        groups' (one per model, checked), else its own."""
        model = self.base_model(model)
        if model not in self.raw["models"]:
            self._entry("models", model)  # the ConfigError naming the known models
        return self.dataset(group_datasets(self.raw).get(model, self.raw["models"][model]["dataset"]))

    # Seeds. With `replicates` R > 1 every model is trained (and evaluated) R times, with seeds
    # seed, seed + 1, ...; the copies after the first are models "<model>_seed<N>", so the
    # first keeps its paths and results. Tables aggregate a model over its replicas.
    def replicas(self, model: str) -> list[str]:
        """The other trainings of ``model`` (not ``model`` itself), in seed order."""
        return [f"{model}{REPLICA_MARK}{self.seed + k}" for k in range(1, self.replicates)]

    def model_names(self) -> list[str]:
        """Every model to train: each of params.yaml's, followed by its replicas."""
        return [name for model in self.raw["models"] for name in (model, *self.replicas(model))]

    def base_model(self, name: str) -> str:
        """The params.yaml model a replica name stands for (a model's own name is its base)."""
        base, mark, seed = name.rpartition(REPLICA_MARK)
        if mark and base in self.raw["models"] and seed.isdigit() and name in self.replicas(base):
            return base
        return name

    def model_seed(self, name: str) -> int:
        """The training seed of a model or replica."""
        base = self.base_model(name)
        return self.seed if base == name else int(name.rpartition(REPLICA_MARK)[2])

    @staticmethod
    def _check_dual_pair(model: ModelSpec, attack: AttackSpec) -> None:
        if model.input == "foreground":
            raise ConfigError(
                f"{model.name} x {attack.name}: a dual attack perturbs the background, which model "
                f"{model.name!r} never sees (models.{model.name}.input: foreground); evaluate it "
                f"with a pgd attack instead"
            )
        if attack.foreground == "segmentation" and not model.dataset.has_masks:
            raise ConfigError(
                f"{model.name} x {attack.name}: attacks.{attack.name}.foreground is 'segmentation', "
                f"but dataset {model.dataset.name!r} has no foreground masks; set foreground: "
                f"saliency (the salience-threshold mask) or use a masked dataset"
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

    @property
    def eval_batch_size(self) -> int:
        return int(resolve_scaled(self.raw["evaluation"]["batch_size"], self.scale))

    def de_forward_batch(self, device_type: str) -> int | None:
        """Candidates per forward pass of the DE attack on a ``device_type`` ("cpu", "cuda")
        device; None (the attack's default) when params.yaml names none for it."""
        by_device = self.raw["evaluation"].get("de_forward_batch", {})
        return None if device_type not in by_device else int(by_device[device_type])

    def group_pairs(self) -> list[tuple[str, str]]:
        """The (model, attack) pairs the evaluation groups list, in params order. Their results
        are in results/evals/<model>/; the robustness matrices' other cells in results/matrix/,
        so that a matrix column reruns no paper table."""
        pairs: dict[tuple[str, str], None] = {}
        for group in self.raw["evaluation"]["groups"].values():
            for model in group["models"]:
                for attack in group["attacks"]:
                    for name in (model, *self.replicas(model)):
                        pairs.setdefault((name, attack))
        return list(pairs)

    def matrix_only_pairs(self) -> list[tuple[str, str]]:
        """The fitting robustness-matrix cells no evaluation group lists (results/matrix/)."""
        groups = set(self.group_pairs())
        return [pair for pair in self.evaluations() if pair not in groups]

    def evaluations(self) -> list[tuple[str, str]]:
        """Every (model, attack) pair to evaluate: the evaluation groups' pairs in params order,
        then the robustness matrices' fitting cells, without repeats. A group pair that does
        not fit is a ConfigError here, when the DAG is built; a matrix cell that does not fit
        is left out (the matrix shows it as n/a)."""
        if self._evaluations is None:
            pairs = dict.fromkeys(self.group_pairs())
            for model in self.raw["models"]:
                self.check_pair(model, self.raw["models"][model]["train_attack"])
            for model, attack in pairs:
                if self.base_model(model) == model:
                    self.check_pair(model, attack, self.evaluation_dataset(model).name)
            for matrix in self.robustness_matrices():
                for cell in matrix.cells:
                    if cell.fits:
                        for name in (cell.model, *self.replicas(cell.model)):
                            pairs.setdefault((name, cell.attack))
            self._evaluations = list(pairs)
        return list(self._evaluations)

    def robustness_matrices(self) -> list[RobustnessMatrix]:
        """One matrix per ``robustness_matrix.datasets`` entry: every model evaluated on that
        dataset x the entry's attacks and their references, each cell fitting or not (with the
        reason)."""
        if self._matrices is None:
            matrices = []
            for dataset, spec in self.raw["robustness_matrix"]["datasets"].items():
                columns = tuple(resolve_scaled(spec["attacks"], self.scale))
                references = {c: r for c, r in (spec.get("references") or {}).items() if c in columns}
                models = tuple(m for m in self.raw["models"] if self.evaluation_dataset(m).name == dataset)
                # A reference shared by two columns (or listed as a column) is one cell.
                pairs = dict.fromkeys(
                    (model, attack)
                    for model in models
                    for column in columns
                    for attack in (column, references.get(column))
                    if attack is not None
                )
                cells = tuple(self._matrix_cell(model, attack) for model, attack in pairs)
                matrices.append(RobustnessMatrix(dataset, models, columns, references, cells))
            self._matrices = matrices
        return list(self._matrices)

    def _matrix_cell(self, model: str, attack: str) -> MatrixCell:
        try:
            self.check_pair(model, attack, self.evaluation_dataset(model).name)
        except ConfigError as exc:
            return MatrixCell(model, attack, reason=str(exc))
        return MatrixCell(model, attack)


@dataclass(frozen=True)
class MatrixCell:
    """One (model, attack) of a robustness matrix; ``reason`` says why it does not fit."""

    model: str
    attack: str
    reason: str | None = None

    @property
    def fits(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class RobustnessMatrix:
    """The models evaluated on ``dataset`` (rows) x ``attacks`` (columns); ``references`` maps a
    full-image PGD column to its strong reference attack, evaluated as a cell of its own."""

    dataset: str
    models: tuple[str, ...]
    attacks: tuple[str, ...]
    references: dict[str, str]
    cells: tuple[MatrixCell, ...]

    def cell(self, model: str, attack: str) -> MatrixCell:
        for cell in self.cells:
            if (cell.model, cell.attack) == (model, attack):
                return cell
        raise KeyError((model, attack))


def plain(obj: Any) -> Any:
    """``obj`` as plain JSON-able data: dataclasses become dicts, a builder its name. Stable
    across processes, so it can key checkpoints and Snakemake's params."""
    from stages.data.builders import Builder

    if isinstance(obj, Builder):
        return obj.name
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def digest(obj: Any) -> str:
    """A short stable hash of a JSON-able object (dataclasses included)."""
    text = json.dumps(plain(obj), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
