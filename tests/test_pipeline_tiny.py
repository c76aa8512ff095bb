"""The micro-DAG (tests.dag_tools.micro_params: one job of every kind) at the tiny scale on a
synthetic mirror, with both tools: a full Snakemake run, a no-op rerun, `dvc commit` + `dvc
status`, `dvc checkout` without spurious reruns, and a change to one model that reruns exactly
that model, its evaluations and the tables in both Snakemake and DVC. Models, attacks and
table rows are read from the project's params.yaml, so the tests hold for any trimming."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from stages.claims.record import read_claims
from stages.claims.stats import Outcome
from stages.config import Params
from tests.dag_tools import TINY_PROFILE as PROFILE
from tests.dag_tools import copy_of, dvc_stages, edit_params, run, snakemake_jobs

# Real Snakemake and DVC runs (the micro-DAG and copies of it): the dag tier.
pytestmark = pytest.mark.dag

# The model the rerun tests change.
MODEL = "mnist_lat"


def _params(project: Path) -> dict:
    return yaml.safe_load((project / "params.yaml").read_text())


def _dvc_ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def _dvc_reran_by_params_edit(project: Path, outputs: set[str]) -> set[str]:
    """The DVC stages an edit of params.yaml that changes ``outputs`` reruns: their writers, and
    any stage that reads params.yaml as a whole file (a generator of per-job parameters)."""
    stages = dvc_stages(project)
    writer = {out: stage.name for stage in stages for out in stage.outs}
    return {writer[out] for out in outputs} | {s.name for s in stages if "params.yaml" in s.deps}


def test_full_run_writes_the_dataset_table_and_grids(finished: Path) -> None:
    md = (finished / "results/tiny/tables/datasets.md").read_text()
    for name in ("coco_ic", "segment6", "gtsrb_ic", "gtsrb_ic_roi", "cifar10_grabcut"):
        assert f"| {name}" in md
        assert (finished / f"results/tiny/figures/datasets/{name}.png").stat().st_size > 0
    stats = json.loads((finished / "results/tiny/datasets/gtsrb_ic.json").read_text())
    assert (
        stats["train_summary"]["samples"] > 0 and 0 < stats["train_summary"]["mean_foreground_fraction"] < 1
    )


def test_full_run_writes_the_lat_table(finished: Path) -> None:
    md = (finished / "results/tiny/tables/lat.md").read_text()
    assert "Scale: **tiny**" in md
    # The claims are records (results/claims/lat.json), judged from this run's evaluations: L1-L3
    # for each of the paper's datasets and for our extension rows, each with an outcome.
    claims = read_claims(finished / "results/tiny/claims/lat.json")
    assert claims.scale == "tiny"
    by_id = {c.claim_id: c for c in claims.claims}
    spec = _params(finished)["tables"]["lat"]
    extensions = set(spec.get("extensions", {}))
    assert extensions, "the project keeps a row of our extensions"
    for row in (*spec["datasets"], *extensions):
        for claim in ("L1", "L2", "L3"):
            assert by_id[f"{row}.{claim}"].outcome in set(Outcome)
        assert by_id[f"{row}.L3"].effect is not None and by_id[f"{row}.L3"].effect.n == 64
        assert by_id[f"{row}.L1"].ours == (row in extensions)
    # Every evaluation of this code keeps its per-image outcomes, so the comparisons are paired.
    assert by_id["mnist.L3"].effect.paired
    assert f"**{by_id['mnist.L1'].outcome}**" in md
    evaluation = json.loads((finished / f"results/tiny/evals/{MODEL}/lat_background.json").read_text())
    assert evaluation["samples"] == 64 and 0.0 <= evaluation["accuracy"] <= 1.0
    assert evaluation["max_linf_perturbation"] <= 0.3 + 1e-6


def test_full_run_writes_the_dual_perturbation_report(finished: Path) -> None:
    md = (finished / "results/tiny/tables/dual_perturbation.md").read_text()
    assert "Scale: **tiny**" in md
    # The paper's claims per dataset, as records with an outcome each.
    records = read_claims(finished / "results/tiny/claims/dual_perturbation.json")
    claims = {c.claim_id: c for c in records.claims}
    spec = _params(finished)["tables"]["dual_perturbation"]
    datasets = list(spec["datasets"])
    for dataset in datasets:
        for claim in ("D0", "D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8"):
            assert claims[f"{dataset}.{claim}"].outcome in set(Outcome), f"{dataset}.{claim}"
    for dataset in datasets:
        assert (finished / f"results/tiny/figures/dual_perturbation/{dataset}.png").stat().st_size > 0
        assert (finished / f"results/tiny/figures/dual_gradients/{dataset}.png").stat().st_size > 0
        assert (finished / f"results/tiny/plots/dual_perturbation/{dataset}__l2_pgd_eps.csv").is_file()
    first, roles = next(iter(spec["datasets"].items()))
    dual = json.loads(
        (finished / f"results/tiny/evals/{roles['at_dual']}/{spec['inputs']['dual']}.json").read_text()
    )
    assert 0.0 <= dual["foreground_score"] <= 1.0
    # DVC renders the sweeps declared in dvc.yaml's `plots`.
    shown = run(["dvc", "plots", "show", "--json"], finished).stdout
    assert f"{first}__l2_dual_eps_background.csv" in shown


def test_full_run_writes_the_pixel_space_report(finished: Path) -> None:
    md = (finished / "results/tiny/tables/pixel_space.md").read_text()
    assert "tiny" in md and "Table II" in md and "Table IV" in md
    for figure in ("targets_reached", "untargeted_heatmap", "targeted_heatmap", "fitness"):
        assert (finished / f"results/tiny/figures/pixel_space/{figure}.png").stat().st_size > 0
    # CIFAR-10 models, attacked on the GrabCut test images.
    spec = _params(finished)["tables"]["pixel_space"]
    model = next(iter(spec["datasets"]["cifar10_grabcut"].values()))
    record = json.loads(
        (finished / f"results/tiny/evals/{model}/{spec['inputs']['background_1']}.json").read_text()
    )
    assert record["dataset"] == "cifar10_grabcut"
    block = record["pixel_attack"]
    assert block["attacked"] <= record["samples"]
    assert block["targeted"] is None or block["targeted"]["pairs"] == block["targeted"]["images"] * 9


def test_second_snakemake_run_has_nothing_to_do(finished: Path) -> None:
    assert snakemake_jobs(finished, *PROFILE) == []


def test_dvc_sees_the_snakemake_run_as_up_to_date(finished: Path) -> None:
    out = run(["dvc", "status"], finished).stdout
    assert "Data and pipelines are up to date" in out, out


def test_dvc_checkout_does_not_make_snakemake_rerun(finished: Path, tmp_path: Path) -> None:
    project = copy_of(finished, tmp_path)
    # Remove cached artifacts of every level and let DVC restore them: they come back with
    # new timestamps, upstream files newer than downstream ones.
    shutil.rmtree(project / "data")
    for model in (project / "results/tiny/models").iterdir():
        (model / "model.pt").unlink()
    run(["dvc", "checkout"], project)
    assert (project / f"results/tiny/models/{MODEL}/model.pt").is_file()
    assert snakemake_jobs(project, *PROFILE) == []
    assert "up to date" in run(["dvc", "status"], project).stdout


def _change_one_model(project: Path) -> None:
    params = _params(project)
    recipe = params["models"][MODEL]["training"]
    edit_params(
        project,
        **{
            f"training.{recipe}_alt": dict(params["training"][recipe], lr=0.002),
            f"models.{MODEL}.training": f"{recipe}_alt",
        },
    )


def _reran_by_model_change(project: Path) -> set[str]:
    """What changing MODEL's training must rerun (first outputs): the model, every evaluation of
    it (its groups' in results/tiny/evals/, the matrix's other cells in results/tiny/matrix/), the tables
    that read them and the report."""
    params = Params.load(project / "params.yaml")
    group_attacks = [a for m, a in params.group_pairs() if m == MODEL]
    matrix_attacks = [a for m, a in params.matrix_only_pairs() if m == MODEL]
    assert group_attacks and matrix_attacks, "the project evaluates the model in a group and in a matrix"
    tables = [t for t, spec in params.raw["tables"].items() if _reads_model(spec, MODEL)]
    assert tables
    return {
        f"results/tiny/models/{MODEL}/model.pt",
        *(f"results/tiny/evals/{MODEL}/{a}.json" for a in group_attacks),
        *(f"results/tiny/matrix/{MODEL}/{a}.json" for a in matrix_attacks),
        *(f"results/tiny/tables/{t}.csv" for t in tables),
        "results/tiny/tables/robustness_matrix.csv",
        "results/tiny/report.md",
    }


def _reads_model(table: dict, model: str) -> bool:
    rows = [*table["datasets"].values(), *(ext["models"] for ext in table.get("extensions", {}).values())]
    return any(model in roles.values() for roles in rows)


def test_changing_one_model_reruns_only_it_in_snakemake(finished: Path, tmp_path: Path) -> None:
    project = copy_of(finished, tmp_path)
    _change_one_model(project)
    jobs = snakemake_jobs(project, *PROFILE)
    assert {j.outputs[0] for j in jobs} == _reran_by_model_change(project)


def test_changing_one_model_reruns_only_it_in_dvc(finished: Path, tmp_path: Path) -> None:
    project = copy_of(finished, tmp_path)
    _change_one_model(project)
    expected = _dvc_reran_by_params_edit(project, _reran_by_model_change(project))
    out = run(["dvc", "repro"], project, timeout=900).stdout
    assert _dvc_ran(out) == expected, out
    assert "up to date" in run(["dvc", "status"], project).stdout


NEW_COLUMN = "mnist_pgd_foreground"


def _add_matrix_column(project: Path, attack: str) -> None:
    columns = _params(project)["robustness_matrix"]["datasets"]["mnist"]["attacks"]
    scaled = isinstance(columns, dict)
    tiny = columns["tiny"] if scaled else columns
    assert attack not in tiny
    key = "robustness_matrix.datasets.mnist.attacks" + (".tiny" if scaled else "")
    edit_params(project, **{key: [*tiny, attack]})


def _new_column_cells(project: Path) -> set[str]:
    """The first outputs a new MNIST column makes: its cell for every model evaluated on MNIST,
    the matrix table and the report."""
    matrix = next(
        m for m in Params.load(project / "params.yaml").robustness_matrices() if m.dataset == "mnist"
    )
    assert len(matrix.models) > 1
    return {
        *(f"results/tiny/matrix/{m}/{NEW_COLUMN}.json" for m in matrix.models),
        "results/tiny/tables/robustness_matrix.csv",
        "results/tiny/report.md",
    }


def test_a_new_matrix_column_runs_only_its_cells_in_snakemake(finished: Path, tmp_path: Path) -> None:
    project = copy_of(finished, tmp_path)
    _add_matrix_column(project, NEW_COLUMN)
    jobs = snakemake_jobs(project, *PROFILE)
    assert {j.outputs[0] for j in jobs} == _new_column_cells(project)


def test_a_new_matrix_column_runs_only_its_cells_in_dvc(finished: Path, tmp_path: Path) -> None:
    project = copy_of(finished, tmp_path)
    _add_matrix_column(project, NEW_COLUMN)
    expected = _dvc_reran_by_params_edit(project, _new_column_cells(project))
    out = run(["dvc", "repro"], project, timeout=900).stdout
    assert _dvc_ran(out) == expected, out
    table = (project / "results/tiny/tables/robustness_matrix.md").read_text()
    assert NEW_COLUMN in table


def test_full_run_writes_the_matrix_and_the_report(finished: Path) -> None:
    matrix = (finished / "results/tiny/tables/robustness_matrix.md").read_text()
    params = Params.load(finished / "params.yaml")
    for m in params.robustness_matrices():
        assert f"## {m.dataset}" in matrix
        for attack in m.attacks:
            assert attack in matrix
    missing = [line for line in matrix.splitlines() if line.startswith("Missing:")]
    assert missing and all(line == "Missing: none." for line in missing), missing
    report = (finished / "results/tiny/report.md").read_text()
    assert "Nothing missing." in report
    assert (finished / "results/tiny/report.html").read_text().lstrip().lower().startswith("<!doctype html")
    metrics = run(["dvc", "metrics", "show", "--json"], finished).stdout
    assert "robustness_matrix.json" in metrics
