"""The robustness matrices are derived from params.yaml: rows are the models evaluated on a
dataset, columns the listed attacks, cells every pair that fits; adding an attack adds one
column and only its cells. Also: the plan runs the cells no group lists, and best-of-R
restarts count an image as robust only when every start fails."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from stages.attack_kinds import attack_kind
from stages.config import AttackSpec, Params, load_yaml
from stages.evaluation import robustness
from stages.utils.errors import ConfigError
from workflow.plan import Plan

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def raw() -> dict:
    return load_yaml(REPO / "params.yaml")


def matrices(raw: dict, scale: str = "reduced") -> dict:
    return {m.dataset: m for m in Params(copy.deepcopy(raw), scale=scale).robustness_matrices()}


def test_rows_are_the_models_evaluated_on_the_dataset(raw: dict) -> None:
    by_dataset = matrices(raw)
    params = Params(copy.deepcopy(raw), scale="reduced")
    for dataset, matrix in by_dataset.items():
        assert matrix.models, dataset
        assert all(params.evaluation_dataset(m).name == dataset for m in matrix.models)
    every_row = [m for matrix in by_dataset.values() for m in matrix.models]
    assert sorted(every_row) == sorted(raw["models"]), "each model is a row of exactly one matrix"
    # Wang et al.'s CIFAR-10 models are attacked on the GrabCut images, the LAT ones on CIFAR-10.
    assert "cifar10_vgg16" in by_dataset["cifar10_grabcut"].models
    # The LAT models of the paper's eps 0.3, then our eps 8/255 extension (tables.lat.extensions).
    assert by_dataset["cifar10"].models == (
        "cifar10_natural",
        "cifar10_standard",
        "cifar10_lat",
        "cifar10_standard_eps8",
        "cifar10_lat_eps8",
    )


def test_columns_follow_the_scale(raw: dict) -> None:
    tiny, reduced = matrices(raw, "tiny")["coco_ic"], matrices(raw, "reduced")["coco_ic"]
    assert set(tiny.attacks) < set(reduced.attacks)
    assert reduced.attacks == tuple(raw["robustness_matrix"]["datasets"]["coco_ic"]["attacks"]["reduced"])


def test_pairs_that_do_not_fit_are_cells_with_a_reason(raw: dict) -> None:
    m = matrices(raw)
    # CIFAR-10 has no masks: no foreground/background attack, no DE on a region.
    cell = m["cifar10"].cell("cifar10_lat", "am_pgd_foreground")
    assert not cell.fits and "needs foreground masks" in cell.reason
    assert m["cifar10"].cell("cifar10_lat", "am_pgd_box").fits
    # An X_FG model sees only x∘F: no dual attack, no DE, no whole-image AutoAttack.
    for attack in ("dual_linf_f4_b20", "matrix_de_background_1px", "aa_linf_8"):
        cell = m["coco_ic"].cell("coco_ic_fg_natural", attack)
        assert not cell.fits and "input: foreground" in cell.reason, attack
    assert m["coco_ic"].cell("coco_ic_fg_natural", "am_pgd").fits


def test_a_reason_is_data_worded_for_its_pair_or_for_every_pair_it_covers(raw: dict) -> None:
    """The report lists a reason once for all the cells it covers from the reason's data, never by
    taking names back out of a message."""
    m = matrices(raw)
    first = m["coco_ic"].cell("coco_ic_fg_natural", "aa_linf_8").misfit
    other = m["gtsrb_ic"].cell("gtsrb_ic_fg_natural", "aa_linf_8").misfit
    assert first is not None and other is not None
    assert first.text().startswith("coco_ic_fg_natural x aa_linf_8: ")
    assert "model 'coco_ic_fg_natural' sees only" in first.text()
    assert "models.coco_ic_fg_natural.input" in first.text()
    general = first.general()
    assert general == other.general()
    assert "model MODEL sees only" in general and "models.MODEL.input" in general
    assert "coco_ic" not in general


def test_every_fitting_cell_is_evaluated_once(raw: dict) -> None:
    params = Params(copy.deepcopy(raw), scale="reduced")
    evaluations = params.evaluations()
    assert len(evaluations) == len(set(evaluations))
    fitting = {(c.model, c.attack) for m in params.robustness_matrices() for c in m.cells if c.fits}
    assert fitting <= set(evaluations)
    unfit = {(c.model, c.attack) for m in params.robustness_matrices() for c in m.cells if not c.fits}
    assert not unfit & set(evaluations)
    assert set(params.matrix_only_pairs()) == set(evaluations) - set(params.group_pairs())


def test_references_sit_beside_their_column(raw: dict) -> None:
    m = matrices(raw)["gtsrb_ic"]
    assert m.references == {"am_pgd": "aa_linf_8", "am_pgd_l2": "aa_l2_05"}
    assert m.cell("gtsrb_ic_natural", "aa_linf_8").fits


def test_adding_an_attack_adds_one_column_and_only_its_cells(raw: dict) -> None:
    before = Params(copy.deepcopy(raw), scale="tiny")
    changed = copy.deepcopy(raw)
    # The rgb32 datasets share one YAML node; give gtsrb_ic a column of its own.
    spec = copy.deepcopy(changed["robustness_matrix"]["datasets"]["gtsrb_ic"])
    spec["attacks"]["tiny"] = [*spec["attacks"]["tiny"], "am_pgd_l2"]
    changed["robustness_matrix"]["datasets"]["gtsrb_ic"] = spec
    after = Params(changed, scale="tiny")
    new = set(after.evaluations()) - set(before.evaluations())
    gtsrb = {m.dataset: m for m in after.robustness_matrices()}["gtsrb_ic"]
    # am_pgd_l2 brings its reference, aa_l2_05, except where a group already runs am_pgd_l2.
    expected = {
        (model, attack)
        for model in gtsrb.models
        for attack in ("am_pgd_l2", "aa_l2_05")
        if gtsrb.cell(model, attack).fits
    } - set(before.group_pairs())
    assert new == expected and new
    assert set(before.evaluations()) <= set(after.evaluations())
    assert gtsrb.attacks[-1] == "am_pgd_l2"
    others = {m.dataset: m.attacks for m in after.robustness_matrices() if m.dataset != "gtsrb_ic"}
    assert others == {m.dataset: m.attacks for m in before.robustness_matrices() if m.dataset != "gtsrb_ic"}


@pytest.mark.parametrize(
    "edit,expected",
    [
        (
            lambda r: r["robustness_matrix"]["datasets"]["mnist"].update(attacks=["nope"]),
            "unknown attack 'nope'",
        ),
        (
            lambda r: r["robustness_matrix"]["datasets"]["mnist"].update(
                references={"lat_standard": "aa_linf_8"}
            ),
            "must have the same budget",
        ),
        (
            lambda r: r["robustness_matrix"]["datasets"]["mnist"].update(
                references={"lat_standard": "am_pgd"}
            ),
            "is a pgd attack; a reference is a kind autoattack attack",
        ),
        (
            lambda r: r["robustness_matrix"]["datasets"]["mnist"].update(
                references={"lat_background": "aa_mnist_linf"}
            ),
            "a reference checks a full-image pgd column",
        ),
        (lambda r: r["models"]["mnist_lat"].update(train_attack="aa_mnist_linf"), "evaluation reference"),
        (
            lambda r: r["evaluation"]["groups"]["dual_cifar10_grabcut"]["models"].append("cifar10_natural"),
            "'cifar10_natural' is evaluated on 'cifar10' by another group",
        ),
    ],
)
def test_matrix_and_evaluation_mistakes_are_named(raw: dict, edit, expected: str) -> None:
    changed = copy.deepcopy(raw)
    for dataset in changed["robustness_matrix"]["datasets"]:
        changed["robustness_matrix"]["datasets"][dataset] = copy.deepcopy(
            changed["robustness_matrix"]["datasets"][dataset]
        )
    edit(changed)
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(")):
        Params(changed, scale="tiny").evaluations()


def test_the_plan_runs_every_fitting_matrix_cell_no_group_lists_as_a_matrix_job() -> None:
    plan = Plan(load_yaml(REPO / "params.yaml"))
    jobs = {(j.wildcards["model"], j.wildcards["attack"]) for j in plan.jobs_of("evaluate_matrix")}
    assert jobs == set(plan.params.matrix_only_pairs())


def test_best_of_restarts_keeps_a_misclassifying_start(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two images of class 0. Start 1: both still class 0, image 0 with a high loss. Start 2:
    # image 0 misclassified with a lower loss, image 1 unchanged. Image 0 must count as broken.
    x = torch.zeros(2, 1, 1, 2)
    y = torch.zeros(2, dtype=torch.long)
    starts = iter(
        [torch.tensor([[[[0.9, 0.0]]], [[[0.1, 0.0]]]]), torch.tensor([[[[0.0, 0.3]]], [[[0.1, 0.0]]]])]
    )

    class TwoLogits(torch.nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            # logit_0 = 0.5 - z[0] (lower = higher loss), logit_1 = z[1] * 4
            flat = z.flatten(1)
            return torch.stack([0.5 - flat[:, 0], flat[:, 1] * 4], dim=1)

    attack = AttackSpec(name="a", kind="pgd", norm="linf", eps=1.0, restarts=2)
    kind = attack_kind(attack)
    monkeypatch.setattr(kind, "perturb", lambda *a, **k: next(starts))
    x_adv, _ = robustness._worst_of_restarts(
        kind, TwoLogits(), x, y, None, attack, 0.5, torch.Generator(), "natural"
    )
    predicted = TwoLogits()(x_adv).argmax(1)
    assert predicted.tolist() == [1, 0]


def test_replicates_train_and_evaluate_every_model_again_with_the_next_seeds(raw: dict) -> None:
    one = Params(copy.deepcopy(raw), scale="tiny")
    three = Params(dict(copy.deepcopy(raw), replicates=3), scale="tiny")
    assert one.replicas("mnist_lat") == [] and one.model_names() == list(raw["models"])
    assert three.replicas("mnist_lat") == ["mnist_lat_seed1", "mnist_lat_seed2"]
    assert [three.model_seed(m) for m in ("mnist_lat", "mnist_lat_seed1", "mnist_lat_seed2")] == [0, 1, 2]
    replica = three.model("mnist_lat_seed2")
    assert replica.name == "mnist_lat_seed2"
    assert (replica.arch, replica.training, replica.train_attack) == (
        three.model("mnist_lat").arch,
        three.model("mnist_lat").training,
        three.model("mnist_lat").train_attack,
    )
    assert three.evaluation_dataset("cifar10_vgg16_seed1").name == "cifar10_grabcut"
    # Every evaluation of a model is repeated for each replica, in the same kind of folder.
    base = set(one.evaluations())
    assert set(three.evaluations()) == {
        (name, a) for m, a in base for name in (m, f"{m}_seed1", f"{m}_seed2")
    }
    assert ("mnist_lat_seed1", "lat_background") in three.group_pairs()
    # Matrix rows stay the params.yaml models; the table aggregates their replicas.
    assert all("_seed" not in m for matrix in three.robustness_matrices() for m in matrix.models)


def test_a_model_named_like_a_replica_is_refused(raw: dict) -> None:
    changed = copy.deepcopy(raw)
    changed["models"]["mnist_lat_seed1"] = dict(changed["models"]["mnist_lat"])
    with pytest.raises(ConfigError, match=r"models\.mnist_lat_seed1: the name of a replica of 'mnist_lat'"):
        Params(changed, scale="tiny")
