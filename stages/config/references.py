"""Cross-reference checks: what the JSON schema cannot say about params.yaml.

The schema (stages/config/params.schema.yaml) checks each value on its own; these checks
relate entries: a model naming an unknown attack, an evaluation group mixing datasets, a table
column no evaluation group runs, a training recipe without exactly one length at some scale.
They run once on the whole params.yaml (stages.config.loading.validate), before any job.
"""

from __future__ import annotations

import json
from typing import Any

from stages.config.experiments import REPLICA_MARK, group_datasets
from stages.config.scales import SCALES, resolve_scaled
from stages.config.specs import AttackSpec
from stages.utils.errors import ConfigError

# Builder options that only add foreground masks (and so keep only the masked images); two
# datasets differing in nothing else hold the same images and classes.
MASK_ONLY_OPTIONS = frozenset({"grabcut"})


def check_references(params: dict[str, Any], source: str) -> None:
    """Every cross-reference problem of a schema-valid params tree, in one ConfigError."""
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
    problems += _check_linf_budgets(params)
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


# The budgets of an l_inf attack, in the units of the images (floats in [0, 1]).
LINF_BUDGETS = ("eps", "eps_foreground", "eps_background")


def _check_linf_budgets(params: dict[str, Any]) -> list[str]:
    """An l_inf budget above 1 moves every pixel anywhere in [0, 1]: almost surely a budget in
    8-bit steps (4 for 4/255), which would silently make the attack unbounded."""
    problems = []
    for name, attack in params["attacks"].items():
        if attack.get("norm") != "linf":
            continue
        for key in LINF_BUDGETS:
            value = attack.get(key)
            values = value.values() if isinstance(value, dict) else [value]
            for eps in values:
                if isinstance(eps, int | float) and eps > 1:
                    problems.append(
                        f"attacks.{name}.{key}: {eps:g} exceeds the whole pixel range [0, 1] of an "
                        f"l_inf attack; images are floats in [0, 1], so write {eps:g}/255 = "
                        f"{eps / 255:.6f} if you meant {eps:g} steps of 8 bits"
                    )
    return problems


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


def _same_images(datasets: dict[str, Any], a: str, b: str) -> bool:
    """Whether a model trained on dataset ``a`` can be evaluated on ``b``: one builder made both
    from one raw source with the same options but for masks (e.g. CIFAR-10 with and without
    GrabCut masks)."""

    def identity(name: str) -> tuple[Any, ...]:
        ds = datasets[name]
        options = {k: v for k, v in (ds.get("options") or {}).items() if k not in MASK_ONLY_OPTIONS}
        return ds["source"], ds["builder"], json.dumps(options, sort_keys=True)

    return identity(a) == identity(b)
