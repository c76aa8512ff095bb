"""The experiment plan: which (model, attack) pairs are evaluated, and on which dataset.

Two lists in params.yaml make it: the evaluation groups (each a dataset, models and attacks,
the paper tables' pairs) and the robustness matrices (every model of a dataset x a set of
attacks; a cell that does not fit is shown as n/a with the reason instead of stopping the
run). The DAG's planner (workflow/plan.py, for both tools) and the report read the plan
through Params (group_pairs, evaluations, robustness_matrices), whose methods call the functions
here; they live apart from the accessors because they decide what runs, not what a value is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stages.config.scales import resolve_scaled
from stages.config.specs import AttackSpec, ModelSpec
from stages.utils.errors import ConfigError, MissingParamsError

if TYPE_CHECKING:
    from stages.config.params import Params

# Replica models are named "<model>_seed<N>" (see Params.replicas): with `replicates` R > 1
# every model is trained (and evaluated) R times.
REPLICA_MARK = "_seed"


# What a reason written for many cells puts where one cell's model and attack names stand.
MODEL_PLACEHOLDER, ATTACK_PLACEHOLDER = "MODEL", "ATTACK"


@dataclass(frozen=True)
class Misfit:
    """Why a (model, attack) pair does not fit, as data: a sentence with ``{model}`` and
    ``{attack}`` fields (a name inside a params key, ``models.{model}.input``) and ``{model_q}``,
    ``{attack_q}`` (a name on its own, quoted), and the pair. :meth:`text` words it for this pair;
    :meth:`general` for every pair it covers (names as MODEL and ATTACK), so a report lists one
    reason once without parsing a message back."""

    sentence: str
    model: str
    attack: str

    def text(self) -> str:
        body = self.sentence.format(
            model=self.model, attack=self.attack, model_q=repr(self.model), attack_q=repr(self.attack)
        )
        return f"{self.model} x {self.attack}: {body}"

    def general(self) -> str:
        m, a = MODEL_PLACEHOLDER, ATTACK_PLACEHOLDER
        return self.sentence.format(model=m, attack=a, model_q=m, attack_q=a)


class PairMisfit(ConfigError):
    """A ConfigError whose pair does not fit; ``misfit`` says why, as data."""

    def __init__(self, misfit: Misfit):
        super().__init__(misfit.text())
        self.misfit = misfit


@dataclass(frozen=True)
class MatrixCell:
    """One (model, attack) of a robustness matrix; ``misfit`` says why it does not fit."""

    model: str
    attack: str
    misfit: Misfit | None = None

    @property
    def fits(self) -> bool:
        return self.misfit is None

    @property
    def reason(self) -> str | None:
        """Why it does not fit, worded for this pair; None when it fits."""
        return None if self.misfit is None else self.misfit.text()


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


def group_datasets(params: dict[str, Any]) -> dict[str, str]:
    """model -> the dataset its evaluation groups run it on (models in no group are absent);
    ``params`` is params.yaml's tree."""
    datasets: dict[str, str] = {}
    for spec in params["evaluation"]["groups"].values():
        for model in spec["models"]:
            datasets.setdefault(model, spec["dataset"])
    return datasets


def check_pair(params: Params, model: str, attack: str, dataset: str | None = None) -> None:
    """A model/attack pair fits when the attack's region exists on the dataset it runs on
    (``dataset``, by default the model's own); else a ConfigError says why."""
    from stages.masks.regions import REGIONS_NEEDING_FOREGROUND

    spec = params.model(model)
    if dataset is not None and dataset != spec.dataset.name:
        spec = dataclasses.replace(spec, dataset=params.dataset(dataset))
    attack_spec = params.attack(attack)
    if attack_spec.kind == "dual":
        _check_dual_pair(spec, attack_spec)
        return
    if attack_spec.kind == "autoattack" and spec.input == "foreground":
        raise PairMisfit(
            Misfit(
                "AutoAttack changes every pixel, and model {model_q} sees only x∘F "
                "(models.{model}.input: foreground); its PGD columns are foreground attacks",
                model,
                attack,
            )
        )
    if attack_spec.kind == "de" and spec.input == "foreground":
        raise PairMisfit(
            Misfit(
                "a differential-evolution attack writes whole pixels, and model {model_q} sees only "
                "x∘F (models.{model}.input: foreground); evaluate it with a pgd attack",
                model,
                attack,
            )
        )
    region = attack_spec.region
    if attack_spec.kind != "none" and region in REGIONS_NEEDING_FOREGROUND:
        if not spec.dataset.has_masks:
            name = spec.dataset.name
            raise PairMisfit(
                Misfit(
                    f"attack region {region!r} needs foreground masks, but dataset {name!r} has none "
                    f"(datasets.{name}.options); use a masked dataset or a region that needs no mask "
                    f"(full, box, outside_box)",
                    model,
                    attack,
                )
            )


def _check_dual_pair(model: ModelSpec, attack: AttackSpec) -> None:
    if model.input == "foreground":
        raise PairMisfit(
            Misfit(
                "a dual attack perturbs the background, which model {model_q} never sees "
                "(models.{model}.input: foreground); evaluate it with a pgd attack instead",
                model.name,
                attack.name,
            )
        )
    if attack.foreground == "segmentation" and not model.dataset.has_masks:
        name = model.dataset.name
        raise PairMisfit(
            Misfit(
                f"attacks.{{attack}}.foreground is 'segmentation', but dataset {name!r} has no "
                f"foreground masks; set foreground: saliency (the salience-threshold mask) or use "
                f"a masked dataset",
                model.name,
                attack.name,
            )
        )


def group_pairs(params: Params) -> list[tuple[str, str]]:
    """The (model, attack) pairs the evaluation groups list, in params order. Their results
    are in results/<scale>/evals/<model>/; the robustness matrices' other cells in results/<scale>/matrix/,
    so that a matrix column reruns no paper table."""
    pairs: dict[tuple[str, str], None] = {}
    for name in params.section("evaluation", "groups"):
        # Through section(): a job's pruned group may hold only its models and dataset.
        models, attacks = (params.section("evaluation", "groups", name, key) for key in ("models", "attacks"))
        for model in models:
            for attack in attacks:
                for copy in (model, *params.replicas(model)):
                    pairs.setdefault((copy, attack))
    return list(pairs)


def matrix_only_pairs(params: Params) -> list[tuple[str, str]]:
    """The fitting robustness-matrix cells no evaluation group lists (results/<scale>/matrix/)."""
    groups = set(params.group_pairs())
    return [pair for pair in params.evaluations() if pair not in groups]


def evaluations(params: Params) -> list[tuple[str, str]]:
    """Every (model, attack) pair to evaluate: the evaluation groups' pairs in params order,
    then the robustness matrices' fitting cells, without repeats. A group pair that does
    not fit is a ConfigError here, when the DAG is built; a matrix cell that does not fit
    is left out (the matrix shows it as n/a)."""
    pairs = dict.fromkeys(params.group_pairs())
    models = params.section("models")
    for model in models:
        params.check_pair(model, models[model]["train_attack"])
    for model, attack in pairs:
        if params.base_model(model) == model:
            params.check_pair(model, attack, params.evaluation_dataset(model).name)
    for matrix in params.robustness_matrices():
        for cell in matrix.cells:
            if cell.fits:
                for name in (cell.model, *params.replicas(cell.model)):
                    pairs.setdefault((name, cell.attack))
    return list(pairs)


def robustness_matrices(params: Params) -> list[RobustnessMatrix]:
    """One matrix per ``robustness_matrix.datasets`` entry: every model evaluated on that
    dataset x the entry's attacks and their references, each cell fitting or not (with the
    reason)."""
    matrices = []
    for dataset, spec in params.section("robustness_matrix", "datasets").items():
        columns = tuple(resolve_scaled(spec["attacks"], params.scale))
        references = {c: r for c, r in (spec.get("references") or {}).items() if c in columns}
        models = tuple(m for m in params.section("models") if params.evaluation_dataset(m).name == dataset)
        # A reference shared by two columns (or listed as a column) is one cell.
        pairs = dict.fromkeys(
            (model, attack)
            for model in models
            for column in columns
            for attack in (column, references.get(column))
            if attack is not None
        )
        cells = tuple(_matrix_cell(params, model, attack) for model, attack in pairs)
        matrices.append(RobustnessMatrix(dataset, models, columns, references, cells))
    return matrices


def _matrix_cell(params: Params, model: str, attack: str) -> MatrixCell:
    try:
        params.check_pair(model, attack, params.evaluation_dataset(model).name)
    except MissingParamsError:
        raise  # a job's params lack what the cell needs: not a cell that does not fit
    except PairMisfit as exc:
        return MatrixCell(model, attack, misfit=exc.misfit)
    return MatrixCell(model, attack)
