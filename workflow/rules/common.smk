# Config validation and the helpers every rule file uses.
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)

from stages.config import Params, load_yaml, plain, resolve_tree  # noqa: E402
from stages.utils.errors import ConfigError  # noqa: E402
from workflow.dvc_matrix import is_stale, table_params  # noqa: E402
from workflow.stage_code import code_digest  # noqa: E402

# Only these keys reach the stages from the command line; every other value is read from
# params.yaml itself, so overriding it with --config would silently not take effect.
CLI_KEYS = {"scale": None, "raw": {"mirror", "download"}}


def _check_overrides(config, on_disk):
    for key in set(config) | set(on_disk):
        if config.get(key) == on_disk.get(key):
            continue
        allowed = CLI_KEYS.get(key, False)
        if allowed is None:
            continue
        if isinstance(allowed, set) and isinstance(config.get(key), dict):
            changed = {k for k in config[key] if config[key].get(k) != on_disk[key].get(k)}
            if changed <= allowed:
                continue
        raise ConfigError(
            f"--config changes {key!r}, which the stages read from params.yaml; edit params.yaml "
            f"instead (only scale, raw.mirror and raw.download may be overridden)"
        )


try:
    PARAMS = Params(config, source="params.yaml (+ --config)")
    _check_overrides(config, load_yaml("params.yaml"))
    for _dataset in config["datasets"]:
        PARAMS.dataset(_dataset)  # builder options, checked key by key
    PARAMS.evaluations()  # every model/attack pair fits its dataset
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

SCALE = PARAMS.scale
GROUP_PAIRS = set(PARAMS.group_pairs())
# What the dual and matrix tables read from params besides their inputs (DVC: the same, from
# workflow/dvc_matrix.yaml's table_params).
TABLE_PARAMS = table_params(PARAMS)

if SCALE == load_yaml("params.yaml")["scale"] and is_stale(Path(workflow.basedir)):
    logger.warning(
        "workflow/dvc_matrix.yaml does not match params.yaml: `dvc repro` would miss robustness-matrix "
        "cells; run `uv run python -m workflow.dvc_matrix` (Snakemake itself is not affected)"
    )


def code(stage):
    return code_digest(stage, workflow.basedir)


def dataset_of_model(model):
    return PARAMS.model(model).dataset.name


def evaluation_file(model, attack):
    """Where a pair's evaluation lives: results/evals/ for a group's pair, else results/matrix/."""
    folder = "results/evals" if (model, attack) in GROUP_PAIRS else "results/matrix"
    return f"{folder}/{model}/{attack}.json"


def evaluation_outputs():
    return [evaluation_file(m, a) for m, a in PARAMS.evaluations()]


def matrix_inputs():
    """Every fitting cell of every matrix, for each seed (the table shows mean ± std)."""
    return [
        evaluation_file(model, cell.attack)
        for matrix in PARAMS.robustness_matrices()
        for cell in matrix.cells
        if cell.fits
        for model in (cell.model, *PARAMS.replicas(cell.model))
    ]


def resources_of(kind, key, default):
    return config.get("resources", {}).get(kind, {}).get(key, default)


def table_models(table):
    spec = config["tables"][table]
    models = [model for roles in spec["datasets"].values() for model in roles.values()]
    # Our own rows beside a paper's (tables.lat.extensions).
    models += [model for ext in spec.get("extensions", {}).values() for model in ext["models"].values()]
    return list(dict.fromkeys(models))


# The papers whose table stages write claim records (results/claims/<paper>.json).
CLAIM_PAPERS = ["lat", "attention_masks", "dual_perturbation", "pixel_space"]


def table_stats(table):
    """The dataset statistics a table's claims read (classes for the chance level, the
    foreground fraction for the salience check)."""
    spec = config["tables"][table]
    datasets = [*spec["datasets"], *(ext["dataset"] for ext in spec.get("extensions", {}).values())]
    return [f"results/datasets/{dataset}.json" for dataset in dict.fromkeys(datasets)]


def table_inputs(table):
    """Every group evaluation of the table's models: a table reads its own columns and lists
    the other attacks of its models (DVC: one folder dep per model, results/evals/<model>)."""
    models = set(table_models(table))
    return [f"results/evals/{m}/{a}.json" for m, a in PARAMS.group_pairs() if m in models]
