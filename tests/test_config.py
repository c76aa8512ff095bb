"""params.yaml: schema errors name the key and value, cross-references are checked, scaled
values resolve per scale, and the Snakefile refuses overrides the stages would not see."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from stages.attacks.differential_evolution import DEConfig
from stages.attacks.spec import de_config
from stages.config import Params, resolve_tree
from stages.utils.errors import ConfigError
from tests.dag_tools import REPO, edit_params, make_project, run

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def params_with(**changes: object) -> dict:
    raw = copy.deepcopy(PARAMS)
    for dotted, value in changes.items():
        node = raw
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    return raw


def test_the_committed_params_are_valid_at_every_scale() -> None:
    for scale in ("tiny", "reduced", "paper"):
        params = Params(PARAMS, scale=scale)
        for model in PARAMS["models"]:
            params.model(model)
        for attack in PARAMS["attacks"]:
            params.attack(attack)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "attacks.lat_standard.eps",
            -1,
            r"attacks\.lat_standard\.eps: -1 is less than the minimum",
        ),
        ("attacks.lat_standard.norm", "l3", r"attacks\.lat_standard\.norm: 'l3' is not one of"),
        ("scale", "huge", r"scale: 'huge' is not one of"),
        (
            "training.lat_mnist.epochs",
            {"tiny": 1, "reduced": "x", "paper": 3},
            r"training\.lat_mnist\.epochs\.reduced: 'x' is not of type 'integer'",
        ),
        ("models.mnist_lat.colour", "red", r"models\.mnist_lat: .*'colour' was unexpected"),
        ("attacks.lat_background.region", "corner", r"attacks\.lat_background\.region: 'corner'"),
        (
            "evaluation.de_forward_batch",
            {"cpu": 0, "cuda": 4096},
            r"evaluation\.de_forward_batch\.cpu: 0 is less than the minimum",
        ),
    ],
)
def test_schema_errors_name_the_key_and_value(key: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        Params(params_with(**{key: value}))


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "models.mnist_lat.train_attack",
            "nope",
            r"models\.mnist_lat\.train_attack: unknown attack 'nope'",
        ),
        ("models.mnist_lat.dataset", "svhn", r"models\.mnist_lat\.dataset: unknown dataset 'svhn'"),
        (
            "evaluation.groups.lat_mnist.models",
            ["cifar10_lat"],
            r"'cifar10_lat' is a model of dataset 'cifar10'",
        ),
        (
            "raw.datasets",
            ["mnist"],
            r"datasets\.cifar10\.source: 'cifar10' is not in raw\.datasets",
        ),
        (
            "tables.attention_masks.datasets.gtsrb_ic.fg_adversarial",
            "gtsrb_ic_fg_adv",
            r"tables\.attention_masks\.datasets\.gtsrb_ic\.fg_adversarial: unknown model 'gtsrb_ic_fg_adv'",
        ),
        (
            "tables.attention_masks.inputs.pgd",
            "lat_standard",
            r"tables\.attention_masks\.datasets\.coco_ic\.natural: model 'coco_ic_natural' is not "
            r"evaluated under pgd attack 'lat_standard'",
        ),
    ],
)
def test_cross_references_are_checked(key: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        Params(params_with(**{key: value}))


def test_de_forward_batch_is_per_device_and_reaches_the_de_config() -> None:
    params = Params(PARAMS)
    by_device = PARAMS["evaluation"]["de_forward_batch"]
    assert params.de_forward_batch("cpu") == by_device["cpu"]
    assert params.de_forward_batch("cuda") == by_device["cuda"]
    assert params.de_forward_batch("mps") is None  # not listed: the attack's own default
    attack = params.attack(next(name for name, a in PARAMS["attacks"].items() if a["kind"] == "de"))
    assert de_config(attack, max_batch=by_device["cpu"]).max_batch == by_device["cpu"]
    assert de_config(attack).max_batch == DEConfig().max_batch


def test_scaled_values_resolve_per_scale() -> None:
    value = {"tiny": 1, "reduced": 2, "paper": 3}
    assert [resolve_tree({"a": [value]}, s) for s in ("tiny", "reduced", "paper")] == [
        {"a": [1]},
        {"a": [2]},
        {"a": [3]},
    ]
    assert (
        Params(PARAMS, scale="tiny").model("mnist_lat").train_attack.steps
        == (PARAMS["attacks"][PARAMS["models"]["mnist_lat"]["train_attack"]]["steps"]["tiny"])
    )
    assert Params(PARAMS, scale="paper").dataset("mnist").train_samples is None  # "all"


def test_snakemake_stops_on_an_invalid_value_naming_it(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", Path("/nonexistent"))
    edit_params(project, **{"attacks.lat_standard.steps": -3})
    proc = run(["snakemake", "-n", "--cores", "1"], project, check=False)
    assert proc.returncode != 0
    assert "attacks.lat_standard.steps" in proc.stdout + proc.stderr


def test_snakemake_refuses_an_override_the_stages_would_not_see(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", Path("/nonexistent"))
    proc = run(["snakemake", "-n", "--cores", "1", "--config", "seed=7"], project, check=False)
    assert proc.returncode != 0
    assert "edit params.yaml instead" in proc.stdout + proc.stderr
    ok = run(["snakemake", "-n", "--cores", "1", "--config", "scale=paper"], project, check=False)
    assert ok.returncode == 0, ok.stderr


def test_an_unknown_builder_option_is_named() -> None:
    raw = params_with(**{"datasets.coco_ic.options": {"min_aera": 5}})
    with pytest.raises(ConfigError, match=r"datasets\.coco_ic\.options: unknown option\(s\) min_aera"):
        Params(raw).dataset("coco_ic")


def test_a_nested_builder_option_is_checked_too() -> None:
    raw = params_with(**{"datasets.cifar10_grabcut.options.grabcut": {"iterationz": 3}})
    with pytest.raises(ConfigError, match=r"datasets\.cifar10_grabcut\.options\.grabcut: unknown option"):
        Params(raw).dataset("cifar10_grabcut")


def test_builder_must_read_its_source() -> None:
    raw = params_with(**{"datasets.coco_ic.source": "gtsrb"})
    with pytest.raises(
        ConfigError, match=r"datasets\.coco_ic\.source: builder 'coco_ic' reads raw dataset 'coco'"
    ):
        Params(raw).dataset("coco_ic")


def test_a_pair_that_does_not_fit_is_an_error_when_the_dag_is_built() -> None:
    # CIFAR-10 without masks has no foreground, so a background attack cannot run on it.
    raw = params_with(**{"attacks.lat_background.region": "background"})
    with pytest.raises(
        ConfigError, match=r"cifar10_natural x lat_background: attack region 'background' needs"
    ):
        Params(raw).evaluations()


def test_a_pair_that_does_not_fit_stops_both_dags_before_any_job(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", Path("/nonexistent"))
    edit_params(project, **{"attacks.lat_background.region": "background"})
    snakemake = run(["snakemake", "-n", "--cores", "1"], project, check=False)
    said = snakemake.stdout + snakemake.stderr
    assert snakemake.returncode != 0
    assert "cifar10_natural x lat_background: attack region 'background' needs" in said
    assert "Traceback" not in said
    # DVC's list of matrix cells is written from the same checks.
    dvc_list = run(["python", "-m", "workflow.dvc_matrix"], project, check=False)
    assert dvc_list.returncode == 2 and "cifar10_natural x lat_background" in dvc_list.stderr
