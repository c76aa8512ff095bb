"""The whole DAG at the tiny scale on a synthetic mirror, with both tools: a full Snakemake
run, a no-op rerun, `dvc commit` + `dvc status`, `dvc checkout` without spurious reruns, and a
change to one model that reruns exactly that model, its evaluations and the table in both
Snakemake and DVC."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import yaml

from stages.claims.record import read_claims
from stages.claims.stats import Outcome
from stages.config import Params
from tests.dag_tools import TINY_PROFILE as PROFILE
from tests.dag_tools import copy_of, edit_params, run, snakemake_jobs


def test_full_run_writes_the_dataset_table_and_grids(finished: Path) -> None:
    md = (finished / "results/tables/datasets.md").read_text()
    for name in ("coco_ic", "segment6", "gtsrb_ic", "gtsrb_ic_roi", "cifar10_grabcut"):
        assert f"| {name}" in md
        assert (finished / f"results/figures/datasets/{name}.png").stat().st_size > 0
    stats = json.loads((finished / "results/datasets/gtsrb_ic.json").read_text())
    assert (
        stats["train_summary"]["samples"] > 0 and 0 < stats["train_summary"]["mean_foreground_fraction"] < 1
    )


def test_full_run_writes_the_lat_table(finished: Path) -> None:
    md = (finished / "results/tables/lat.md").read_text()
    assert "Scale: **tiny**" in md
    # The claims are records (results/claims/lat.json), judged from this run's evaluations: L1-L3
    # for each of the paper's datasets and for our eps 8/255 extension, each with an outcome.
    claims = read_claims(finished / "results/claims/lat.json")
    assert claims.scale == "tiny"
    by_id = {c.claim_id: c for c in claims.claims}
    for row in ("mnist", "cifar10", "cifar10_eps8"):
        for claim in ("L1", "L2", "L3"):
            assert by_id[f"{row}.{claim}"].outcome in set(Outcome)
        assert by_id[f"{row}.L3"].effect is not None and by_id[f"{row}.L3"].effect.n == 64
        assert by_id[f"{row}.L1"].ours == (row == "cifar10_eps8")
    # Every evaluation of this code keeps its per-image outcomes, so the comparisons are paired.
    assert by_id["mnist.L3"].effect.paired
    assert f"**{by_id['mnist.L1'].outcome}**" in md
    evaluation = json.loads((finished / "results/evals/mnist_lat/lat_background.json").read_text())
    assert evaluation["samples"] == 64 and 0.0 <= evaluation["accuracy"] <= 1.0
    assert evaluation["max_linf_perturbation"] <= 0.3 + 1e-6


def test_full_run_writes_the_dual_perturbation_report(finished: Path) -> None:
    md = (finished / "results/tables/dual_perturbation.md").read_text()
    assert "Scale: **tiny**" in md
    # The paper's claims per dataset, as records with an outcome each.
    claims = {c.claim_id: c for c in read_claims(finished / "results/claims/dual_perturbation.json").claims}
    for dataset in ("segment6", "coco_ic", "cifar10_grabcut"):
        for claim in ("D0", "D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8"):
            assert claims[f"{dataset}.{claim}"].outcome in set(Outcome), f"{dataset}.{claim}"
    for dataset in ("segment6", "coco_ic", "cifar10_grabcut"):
        assert (finished / f"results/figures/dual_perturbation/{dataset}.png").stat().st_size > 0
        assert (finished / f"results/figures/dual_gradients/{dataset}.png").stat().st_size > 0
        assert (finished / f"results/plots/dual_perturbation/{dataset}__l2_pgd_eps.csv").is_file()
    dual = json.loads((finished / "results/evals/segment6_at_dual/dual_l2_f2_b20.json").read_text())
    assert 0.0 <= dual["foreground_score"] <= 1.0
    # DVC renders the sweeps declared in dvc.yaml's `plots`.
    shown = run(["dvc", "plots", "show", "--json"], finished).stdout
    assert "segment6__l2_dual_eps_background.csv" in shown


def test_full_run_writes_the_pixel_space_report(finished: Path) -> None:
    md = (finished / "results/tables/pixel_space.md").read_text()
    assert "tiny" in md and "Table II" in md and "Table IV" in md
    for figure in ("targets_reached", "untargeted_heatmap", "targeted_heatmap", "fitness"):
        assert (finished / f"results/figures/pixel_space/{figure}.png").stat().st_size > 0
    # CIFAR-10 models, attacked on the GrabCut test images.
    record = json.loads((finished / "results/evals/cifar10_vgg16/de_background_1px.json").read_text())
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
    for model in (project / "results/models").iterdir():
        (model / "model.pt").unlink()
    run(["dvc", "checkout"], project)
    assert (project / "results/models/mnist_lat/model.pt").is_file()
    assert snakemake_jobs(project, *PROFILE) == []
    assert "up to date" in run(["dvc", "status"], project).stdout


def _change_one_model(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    recipe = dict(params["training"]["lat_mnist"], lr=0.002)
    edit_params(project, **{"training.lat_mnist_alt": recipe, "models.mnist_lat.training": "lat_mnist_alt"})


def _matrix_attacks(project: Path, model: str) -> list[str]:
    params = Params.load(project / "params.yaml")
    return [a for m, a in params.matrix_only_pairs() if m == model]


def test_changing_one_model_reruns_only_it_in_snakemake(finished: Path, tmp_path: Path) -> None:
    project = copy_of(finished, tmp_path)
    _change_one_model(project)
    jobs = snakemake_jobs(project, *PROFILE)
    matrix_cells = _matrix_attacks(project, "mnist_lat")
    assert matrix_cells, "the tiny mnist matrix adds cells beyond the LAT group"
    assert {j.outputs[0] for j in jobs} == {
        "results/models/mnist_lat/model.pt",
        *(
            f"results/evals/mnist_lat/{a}.json"
            for a in ("natural", "lat_standard", "lat_background", "lat_background_postclip")
        ),
        *(f"results/matrix/mnist_lat/{a}.json" for a in matrix_cells),
        "results/tables/lat.csv",
        "results/tables/robustness_matrix.csv",
        "results/report.md",
    }


def test_changing_one_model_reruns_only_it_in_dvc(finished: Path, tmp_path: Path) -> None:
    project = copy_of(finished, tmp_path)
    _change_one_model(project)
    out = run(["dvc", "repro"], project, timeout=900).stdout
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    expected = {"train@mnist_lat", "lat_table", "matrix_table", "build_report"}
    expected |= {
        f"evaluate_lat_mnist@mnist_lat-{a}"
        for a in ("natural", "lat_standard", "lat_background", "lat_background_postclip")
    }
    expected |= {f"evaluate_matrix@mnist_lat-{a}" for a in _matrix_attacks(project, "mnist_lat")}
    assert ran == expected, out
    assert "up to date" in run(["dvc", "status"], project).stdout


def _add_matrix_column(project: Path, attack: str) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    columns = params["robustness_matrix"]["datasets"]["mnist"]["attacks"]["tiny"]
    assert attack not in columns
    edit_params(project, **{"robustness_matrix.datasets.mnist.attacks.tiny": [*columns, attack]})


def test_a_new_matrix_column_runs_only_its_cells_in_snakemake(finished: Path, tmp_path: Path) -> None:
    project = copy_of(finished, tmp_path)
    _add_matrix_column(project, "mnist_pgd_foreground")
    jobs = snakemake_jobs(project, *PROFILE)
    mnist_models = [
        m
        for m, spec in yaml.safe_load((project / "params.yaml").read_text())["models"].items()
        if spec["dataset"] == "mnist"
    ]
    assert {j.outputs[0] for j in jobs} == {
        *(f"results/matrix/{m}/mnist_pgd_foreground.json" for m in mnist_models),
        "results/tables/robustness_matrix.csv",
        "results/report.md",
    }


def test_a_new_matrix_column_runs_only_its_cells_in_dvc(finished: Path, tmp_path: Path) -> None:
    project = copy_of(finished, tmp_path)
    _add_matrix_column(project, "mnist_pgd_foreground")
    out = run(["dvc", "repro"], project, timeout=900).stdout
    ran = set(re.findall(r"Running stage '([^']+)'", out))
    mnist_models = ("mnist_natural", "mnist_standard", "mnist_lat")
    assert ran == {f"evaluate_matrix@{m}-mnist_pgd_foreground" for m in mnist_models} | {
        "matrix_table",
        "build_report",
    }, out
    table = (project / "results/tables/robustness_matrix.md").read_text()
    assert "mnist_pgd_foreground" in table


def test_full_run_writes_the_matrix_and_the_report(finished: Path) -> None:
    matrix = (finished / "results/tables/robustness_matrix.md").read_text()
    params = Params.load(finished / "params.yaml")
    for m in params.robustness_matrices():
        assert f"## {m.dataset}" in matrix
        for attack in m.attacks:
            assert attack in matrix
    missing = [line for line in matrix.splitlines() if line.startswith("Missing:")]
    assert missing and all(line == "Missing: none." for line in missing), missing
    report = (finished / "results/report.md").read_text()
    assert "Nothing missing." in report
    assert (finished / "results/report.html").read_text().lstrip().lower().startswith("<!doctype html")
    metrics = run(["dvc", "metrics", "show", "--json"], finished).stdout
    assert "robustness_matrix.json" in metrics
