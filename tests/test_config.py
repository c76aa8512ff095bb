"""params.yaml: schema errors name the key and value, cross-references are checked, scaled
values resolve per scale, and the Snakefile refuses overrides the stages would not see."""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from stages.attacks.de_forward import DEForward
from stages.attacks.differential_evolution import DEConfig
from stages.config import Params, resolve_tree
from stages.evaluation.pixel import de_config
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
            "evaluation.de_forward",
            {"cpu": {"batch": 0, "precision": "fp32", "memory_format": "contiguous"}, "cuda": {}},
            r"evaluation\.de_forward\.cpu\.batch: 0 is less than the minimum",
        ),
        (
            "evaluation.de_forward.cpu.precision",
            "fp64",
            r"evaluation\.de_forward\.cpu\.precision: 'fp64' is not one of \['fp32', 'bf16', 'fp16'\]",
        ),
    ],
)
def test_schema_errors_name_the_key_and_value(key: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        Params(params_with(**{key: value}))


def test_an_unknown_salience_model_is_named_with_the_allowed_ones() -> None:
    from stages.saliency import SALIENCE_MODELS

    dual = next(name for name, a in PARAMS["attacks"].items() if a.get("kind") == "dual")
    with pytest.raises(ConfigError) as error:
        Params(params_with(**{f"attacks.{dual}.salience": "deepgaze2"}))
    message = str(error.value)
    assert f"attacks.{dual}.salience: 'deepgaze2' is not one of" in message
    # The schema's list is the registry's: every model a dual attack can name, and only those.
    allowed = message.split("is not one of", 1)[1].split("(value:", 1)[0]
    assert set(yaml.safe_load(allowed)) == set(SALIENCE_MODELS)
    for model in SALIENCE_MODELS:
        Params(params_with(**{f"attacks.{dual}.salience": model}))


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


def test_de_forward_is_per_device_and_reaches_the_de_config() -> None:
    params = Params(PARAMS)
    by_device = PARAMS["evaluation"]["de_forward"]
    assert params.de_forward("cpu") == by_device["cpu"]
    assert params.de_forward("cuda") == by_device["cuda"]
    assert params.de_forward("mps") == {}  # not listed: the attack's own defaults
    attack = params.attack(next(name for name, a in PARAMS["attacks"].items() if a["kind"] == "de"))
    forward = DEForward(batch=7, precision="bf16", memory_format="channels_last")
    config = de_config(attack, forward=forward)
    assert (config.max_batch, config.precision, config.memory_format) == (7, "bf16", "channels_last")
    assert de_config(attack) == de_config(attack, forward=DEForward())
    assert de_config(attack).max_batch == DEConfig().max_batch
    assert DEForward(**params.de_forward("cpu")).apply(DEConfig()).max_batch == by_device["cpu"]["batch"]


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


# --- training length: epochs or steps (Rothberg et al. 2019, §5: 100,000 steps) ---------------


def test_lat_trains_100000_steps_with_100_step_attacks_at_the_paper_scale() -> None:
    paper, reduced = Params(PARAMS, scale="paper"), Params(PARAMS, scale="reduced")
    for name in ("mnist_natural", "mnist_standard", "mnist_lat", "cifar10_standard", "cifar10_lat"):
        training = paper.model(name).training
        assert (training.steps, training.epochs) == (100_000, None)
        assert reduced.model(name).training.steps is None and reduced.model(name).training.epochs
        attack = paper.model(name).train_attack
        if attack.kind == "pgd":
            assert attack.steps == 100
            assert attack.step_size * attack.steps >= attack.eps  # the steps span the eps-ball
    for attack in ("lat_standard", "lat_background", "lat_background_postclip"):
        assert paper.attack(attack).steps == 100
    assert paper.training("lat_mnist").total_epochs(60_000) == 84  # 100,000 x 50 / 60,000 = 83.3
    assert paper.training("lat_cifar10").total_epochs(50_000) == 100


def test_a_recipe_serialises_the_same_on_every_load() -> None:
    from stages.config import digest, plain

    first = Params(copy.deepcopy(PARAMS), scale="paper").model("mnist_lat")
    again = Params(copy.deepcopy(PARAMS), scale="paper").model("mnist_lat")
    assert digest(first) == digest(again)
    assert plain(first.training)["steps"] == 100_000 and plain(first.training)["epochs"] is None


def _without_lengths(recipe: str) -> dict:
    raw = copy.deepcopy(PARAMS)
    raw["training"][recipe].pop("epochs", None)
    raw["training"][recipe].pop("steps", None)
    return raw


@pytest.mark.parametrize("active", ["tiny", "paper"])  # checked at every scale, whichever is active
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            params_with(**{"training.lat_mnist.steps": {"tiny": None, "reduced": None, "paper": None}}),
            r"training\.lat_mnist: neither epochs nor steps at scale 'paper'; give one: epochs "
            r"\(passes over the training split\) or steps \(optimizer steps\)",
        ),
        (
            _without_lengths("pixel_cifar10"),
            r"training\.pixel_cifar10: neither epochs nor steps at scale 'tiny'",
        ),
        (
            params_with(**{"training.lat_cifar10.epochs": 5}),
            r"training\.lat_cifar10: both epochs \(5\) and steps \(100000\) at scale 'paper'; give "
            r"exactly one, and null the other at that scale",
        ),
    ],
)
def test_a_recipe_gives_exactly_one_length_at_every_scale(raw: dict, expected: str, active: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        Params(raw, scale=active)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, r"training\.lat_mnist\.steps: 0 is less than the minimum of 1"),
        ({"tiny": None, "reduced": None, "paper": 0}, r"training\.lat_mnist\.steps\.paper: 0 is less than"),
        ({"paper": 100_000}, r"training\.lat_mnist\.steps: .*'tiny' is a required property"),
    ],
)
def test_a_bad_steps_value_is_a_schema_error_naming_it(value: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        Params(params_with(**{"training.lat_mnist.steps": value}))


@pytest.mark.dag
def test_snakemake_stops_on_an_invalid_value_naming_it(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", Path("/nonexistent"))
    edit_params(project, **{"attacks.lat_standard.steps": -3})
    proc = run(["snakemake", "-n", "--cores", "1"], project, check=False)
    assert proc.returncode != 0
    assert "attacks.lat_standard.steps" in proc.stdout + proc.stderr


@pytest.mark.dag
def test_snakemake_refuses_an_override_the_stages_would_not_see(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", Path("/nonexistent"))
    proc = run(["snakemake", "-n", "--cores", "1", "--config", "seed=7"], project, check=False)
    assert proc.returncode != 0
    assert "edit params.yaml instead" in proc.stdout + proc.stderr
    ok = run(["snakemake", "-n", "--cores", "1", "--config", "scale=paper"], project, check=False)
    assert ok.returncode == 0, ok.stderr


@pytest.mark.dag
def test_a_yaml_syntax_error_in_params_names_its_line_in_snakemake(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", Path("/nonexistent"))
    lines = (project / "params.yaml").read_text().splitlines()
    lines[11] = "seed: [0"  # an unclosed list on line 12
    (project / "params.yaml").write_text("\n".join(lines) + "\n")
    proc = run(["snakemake", "-n", "--cores", "1"], project, check=False)
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "params.yaml: not valid YAML" in said and re.search(r"line \d+, column \d+", said), said[-2000:]
    assert "Traceback" not in said


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


@pytest.mark.dag
def test_a_pair_that_does_not_fit_stops_both_dags_before_any_job(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", Path("/nonexistent"))
    edit_params(project, **{"attacks.lat_background.region": "background"})
    snakemake = run(["snakemake", "-n", "--cores", "1"], project, check=False)
    said = snakemake.stdout + snakemake.stderr
    assert snakemake.returncode != 0
    assert "cifar10_natural x lat_background: attack region 'background' needs" in said
    assert "Traceback" not in said
    # dvc.yaml is written from the same plan and the same checks.
    generator = run(["python", "-m", "workflow.plan"], project, check=False)
    assert generator.returncode == 2 and "cifar10_natural x lat_background" in generator.stderr


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [("search", "region", r"\['composite', 'indexed'\]"), ("attacked", "wrong", r"\['all', 'correct'\]")],
)
def test_an_unknown_de_search_or_attacked_set_names_the_key_and_the_allowed_values(
    key: str, value: str, allowed: str
) -> None:
    with pytest.raises(ConfigError, match=rf"attacks\.de_full_1px\.{key}: '{value}' is not one of {allowed}"):
        Params(params_with(**{f"attacks.de_full_1px.{key}": value}))


def test_the_pixel_space_searches_are_the_papers_and_ours() -> None:
    """Wang et al.'s method (composite search, rand/1, every image) for the pixel-space table,
    its indexed twins identical but for the search, and our matrix columns indexed/best1/correct."""
    params = Params(PARAMS, scale="reduced")
    table = PARAMS["tables"]["pixel_space"]
    for column, name in table["inputs"].items():
        if column != "natural":
            attack = params.attack(name)
            assert (attack.search, attack.strategy, attack.attacked) == ("composite", "rand1", "all"), name
            assert de_config(attack).search == "composite"
    for column, name in table["searches"]["indexed"].items():
        twin, paper = params.attack(name), params.attack(table["inputs"][column])
        assert twin.search == "indexed" and twin == replace(paper, name=name, search="indexed")
    matrix = params.attack("matrix_de_background_1px")
    assert (matrix.search, matrix.strategy, matrix.attacked) == ("indexed", "best1", "correct")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "tables.pixel_space.searches.indexed.background_1",
            "de_background_1px",
            r"tables\.pixel_space\.searches\.indexed\.background_1: attack 'de_background_1px' does not run "
            r"the 'indexed' search",
        ),
        (
            "tables.pixel_space.searches.indexed.background_1",
            "matrix_de_background_1px",
            r"tables\.pixel_space\.searches\.indexed\.background_1: model 'cifar10_allconv' is not evaluated",
        ),
        ("tables.pixel_space.searches", {"region": {"foreground_1": "x"}}, r"tables\.pixel_space\.searches"),
    ],
)
def test_the_pixel_tables_searches_are_cross_checked(key: str, value: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        Params(params_with(**{key: value}))


# --- Params.for_job: a job's pruned, resolved params, not re-validated -----------------------


def _job_tree(model: str, scale: str) -> dict:
    """What a training job of ``model`` reads: its entry and the entries it names, resolved."""
    entry = PARAMS["models"][model]
    keys = [
        ("seed",),
        ("replicates",),
        ("models", model),
        ("architectures", entry["arch"]),
        ("training", entry["training"]),
        ("attacks", entry["train_attack"]),
        ("datasets", entry["dataset"]),
        ("samples", entry["dataset"]),
    ]
    tree: dict = {}
    for *parents, last in keys:
        source, node = PARAMS, tree
        for part in parents:
            source, node = source[part], node.setdefault(part, {})
        if last in source:
            node[last] = resolve_tree(source[last], scale)
    return tree


@pytest.mark.parametrize("scale", ["tiny", "paper"])
@pytest.mark.parametrize("model", ["mnist_lat", "cifar10_lat"])
def test_a_job_reads_its_pruned_params_like_the_whole_file(model: str, scale: str) -> None:
    from stages.config import plain

    full = Params(PARAMS, scale=scale)
    job = Params.for_job(_job_tree(model, scale), scale=scale, source="job.json")
    entry = PARAMS["models"][model]
    assert plain(job.model(model)) == plain(full.model(model))
    assert plain(job.attack(entry["train_attack"])) == plain(full.attack(entry["train_attack"]))
    assert plain(job.dataset(entry["dataset"])) == plain(full.dataset(entry["dataset"]))
    assert plain(job.training(entry["training"])) == plain(full.training(entry["training"]))
    assert (job.seed, job.replicates, job.model_names()) == (full.seed, full.replicates, [model])


def test_resolved_values_resolve_to_themselves() -> None:
    for scale in ("tiny", "reduced", "paper"):
        resolved = resolve_tree(PARAMS, scale)
        assert resolve_tree(resolved, scale) == resolved


def test_a_job_is_not_revalidated() -> None:
    # A whole params.yaml lacking these sections fails the schema; a job's pruned tree may.
    with pytest.raises(ConfigError, match=r"'evaluation' is a required property"):
        Params(_job_tree("mnist_lat", "tiny"), scale="tiny")
    Params.for_job(_job_tree("mnist_lat", "tiny"), scale="tiny", source="job.json")


@pytest.mark.parametrize(
    ("ask", "expected"),
    [
        (lambda p: p.attack("lat_background"), r"attacks\.lat_background: no such entry in job\.json"),
        (
            lambda p: p.model("cifar10_lat"),
            r"models\.cifar10_lat: no such entry in job\.json.*known: mnist_lat",
        ),
        (
            lambda p: p.robustness_matrices(),
            r"robustness_matrix: no such section in job\.json; the job's params file lacks it",
        ),
        (lambda p: p.evaluation_dataset("mnist_lat"), r"evaluation: no such section in job\.json"),
        (lambda p: p.eval_batch_size, r"evaluation: no such section in job\.json"),
        (lambda p: p.device, r"device: no such section in job\.json"),
        (lambda p: p.box_fraction, r"regions: no such section in job\.json"),
    ],
)
def test_a_job_asking_for_what_its_params_lack_gets_an_error_naming_it(ask, expected: str) -> None:
    from stages.utils.errors import MissingParamsError

    job = Params.for_job(_job_tree("mnist_lat", "tiny"), scale="tiny", source="job.json")
    with pytest.raises(MissingParamsError, match=expected):
        ask(job)
    assert issubclass(MissingParamsError, ConfigError)


def test_a_matrix_cell_a_job_lacks_params_for_is_an_error_not_a_cell_that_does_not_fit() -> None:
    tree = _job_tree("mnist_lat", "tiny")
    matrix = resolve_tree(PARAMS["robustness_matrix"]["datasets"]["mnist"], "tiny")
    tree["robustness_matrix"] = {"datasets": {"mnist": matrix}}
    tree["evaluation"] = {"groups": {}}
    job = Params.for_job(tree, scale="tiny", source="job.json")
    column = next(a for a in matrix["attacks"] if a not in tree["attacks"])
    with pytest.raises(ConfigError, match=rf"attacks\.{column}: no such entry in job\.json"):
        job.robustness_matrices()
    for name in [*matrix["attacks"], *(matrix.get("references") or {}).values()]:
        tree["attacks"][name] = resolve_tree(PARAMS["attacks"][name], "tiny")
    job = Params.for_job(tree, scale="tiny", source="job.json")
    full = Params(PARAMS, scale="tiny").robustness_matrices()
    mnist = next(m for m in full if m.dataset == "mnist")
    assert [c for c in job.robustness_matrices()[0].cells] == [
        c for c in mnist.cells if c.model == "mnist_lat"
    ]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("attacks.pgd_linf_8.eps", 8),
        ("attacks.dual_linf_f4_b20.eps_background", {"tiny": 0.1, "reduced": 20, "paper": 0.1}),
    ],
)
def test_an_linf_budget_in_8_bit_steps_is_an_error_naming_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=re.escape(key) + r": .* exceeds the whole pixel range .*/255"):
        Params(params_with(**{key: value}))
