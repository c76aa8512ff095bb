"""params.yaml: the one source of truth of every stage, read through this package.

- loading.py     load_yaml, and validate: the JSON schema (params.schema.yaml, beside it), then
                 the cross-references
- references.py  the cross-reference checks the schema cannot express
- scales.py      SCALES and resolve_scaled / resolve_tree: a value per tiny/reduced/paper scale
- specs.py       the frozen specs library code takes (AttackSpec, TrainingSpec, DatasetSpec,
                 ModelSpec, AugmentSpec, TrainingPrecision)
- params.py      Params: params.yaml at one scale, its accessors building the specs;
                 Params.for_job: a job's pruned, resolved part of it, not re-validated
- experiments.py the experiment plan: which (model, attack) pairs are evaluated, the robustness
                 matrices and whether a pair fits
- serialize.py   plain / digest: specs as JSON-able data and a stable hash of them

Snakemake and DVC both read params.yaml; every stage resolves the settings it needs through
this package, so a value means the same thing wherever it is read. The names below (those the
single module stages/config.py had, which callers import) are the package's interface, so
``from stages.config import Params`` works as before; the modules are its layout.
"""

from stages.config.experiments import REPLICA_MARK, MatrixCell, RobustnessMatrix, group_datasets
from stages.config.loading import SCHEMA_PATH, load_yaml, validate
from stages.config.params import ALL, Params
from stages.config.references import MASK_ONLY_OPTIONS
from stages.config.scales import SCALES, Scale, resolve_scaled, resolve_tree
from stages.config.serialize import digest, plain
from stages.config.specs import (
    AttackSpec,
    AugmentSpec,
    DatasetSpec,
    ModelInput,
    ModelSpec,
    TrainingPrecision,
    TrainingSpec,
)
from stages.utils.errors import ConfigError, MissingParamsError

__all__ = [
    "ALL",
    "MASK_ONLY_OPTIONS",
    "REPLICA_MARK",
    "SCALES",
    "SCHEMA_PATH",
    "AttackSpec",
    "AugmentSpec",
    "ConfigError",
    "DatasetSpec",
    "MatrixCell",
    "MissingParamsError",
    "ModelInput",
    "ModelSpec",
    "Params",
    "RobustnessMatrix",
    "Scale",
    "TrainingPrecision",
    "TrainingSpec",
    "digest",
    "group_datasets",
    "load_yaml",
    "plain",
    "resolve_scaled",
    "resolve_tree",
    "validate",
]
