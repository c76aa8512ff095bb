"""What users rely on after a full tiny run, checked with both tools on copies of it: a change
reruns exactly what it touches (an attack's eps, a stage module's code, a new attack), a killed
training job leaves nothing that looks complete and resumes to the uninterrupted result, the
same seed gives byte-identical metrics and tables, `dvc push` / `dvc pull` restore every
artifact on a clean clone without recomputing, and `dvc exp run -S` sweeps a param.

Changing one model's training params is tested in tests/test_pipeline_tiny.py."""

from __future__ import annotations

import csv
import filecmp
import io
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import torch
import yaml

from stages.config import Params
from tests.dag_tools import (
    TINY_PROFILE,
    copy_of,
    dvc_stages,
    edit_params,
    env,
    make_project,
    run,
    snakemake_jobs,
)

# The dual attack of the l_inf background sweep, also a column of every RGB robustness matrix:
# its evaluations feed the dual-perturbation table and the matrix table.
SWEPT_ATTACK = "dual_linf_f4_b20"


def planned_outputs(project: Path, *args: str) -> set[str]:
    """The first output of every job a plain `snakemake` would run now."""
    return {job.outputs[0] for job in snakemake_jobs(project, *TINY_PROFILE, *args)}


def dvc_changed(project: Path) -> set[str]:
    """The stages `dvc status` reports as changed (not their downstream)."""
    return set(json.loads(run(["dvc", "status", "--json"], project).stdout))


def dvc_ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def evaluation_files(project: Path, attack: str | None = None) -> set[str]:
    """Where every evaluation (of ``attack``) is written: group pairs to results/evals, other
    matrix cells to results/matrix."""
    params = Params.load(project / "params.yaml")
    groups = set(params.group_pairs())
    return {
        f"results/{'evals' if (m, a) in groups else 'matrix'}/{m}/{a}.json"
        for m, a in params.evaluations()
        if attack in (None, a)
    }


def dvc_stage_writing(project: Path) -> dict[str, str]:
    """Output path -> the name of the DVC stage that writes it."""
    return {out: stage.name for stage in dvc_stages(project) for out in stage.outs}


def touch_code(project: Path, module: str) -> None:
    """A behaviour-neutral edit of a stage module (a new comment line), as a refactor would be."""
    path = project / module
    path.write_text(path.read_text() + "\n# edited\n")


# --- (a) one attack's eps -------------------------------------------------------------------


def _change_swept_attack(project: Path) -> None:
    edit_params(project, **{f"attacks.{SWEPT_ATTACK}.eps_background": 25 / 255})


def test_an_attacks_eps_reruns_its_evaluations_and_the_tables_reading_them_in_snakemake(
    finished: Path, tmp_path: Path
) -> None:
    project = copy_of(finished, tmp_path)
    _change_swept_attack(project)
    evaluations = evaluation_files(project, SWEPT_ATTACK)
    assert any(f.startswith("results/evals/") for f in evaluations)
    assert any(f.startswith("results/matrix/") for f in evaluations)
    assert planned_outputs(project) == evaluations | {
        "results/tables/dual_perturbation.csv",
        "results/tables/robustness_matrix.csv",
        "results/report.md",
    }


def test_an_attacks_eps_reruns_its_evaluations_and_the_tables_reading_them_in_dvc(
    finished: Path, tmp_path: Path
) -> None:
    project = copy_of(finished, tmp_path)
    _change_swept_attack(project)
    writer = dvc_stage_writing(project)
    evaluations = {writer[f] for f in evaluation_files(project, SWEPT_ATTACK)}
    # What `dvc repro` would run (its ~30 evaluations take minutes one after another; the model
    # and matrix-column tests in test_pipeline_tiny.py run `dvc repro` for real).
    assert dvc_changed(project) == evaluations | {"dual_table", "matrix_table", "build_report"}


def test_defining_a_new_attack_reruns_only_the_report_in_either_tool(finished: Path, tmp_path: Path) -> None:
    project = copy_of(finished, tmp_path)
    params = yaml.safe_load((project / "params.yaml").read_text())
    edit_params(project, **{"attacks.pgd_linf_6": dict(params["attacks"]["pgd_linf_8"], eps=6 / 255)})
    # Only the report, which prints the whole resolved params.yaml.
    assert planned_outputs(project) == {"results/report.md"}
    assert dvc_changed(project) == {"build_report"}


# --- (c) a code change in one stage module ------------------------------------------------------


def test_a_table_modules_code_change_reruns_that_table(finished: Path, tmp_path: Path) -> None:
    snake = copy_of(finished, tmp_path, "snake")
    touch_code(snake, "stages/report/lat_table.py")
    # Snakemake plans the table and, downstream of it, the report.
    assert planned_outputs(snake) == {"results/tables/lat.csv", "results/report.md"}

    dvc = copy_of(finished, tmp_path, "dvc")
    touch_code(dvc, "stages/report/lat_table.py")
    assert dvc_changed(dvc) == {"lat_table"}
    # DVC reruns the table; its outputs are byte-identical, so the report is not rerun.
    assert dvc_ran(run(["dvc", "repro"], dvc).stdout) == {"lat_table"}


def test_an_evaluation_library_change_reruns_every_evaluation_and_nothing_upstream(
    finished: Path, tmp_path: Path
) -> None:
    project = copy_of(finished, tmp_path)
    touch_code(project, "stages/evaluation/robustness.py")
    evaluations = evaluation_files(project)
    jobs = snakemake_jobs(project, *TINY_PROFILE)
    assert {j.outputs[0] for j in jobs if j.rule.startswith("evaluate")} == evaluations
    assert {j.rule for j in jobs if not j.rule.startswith("evaluate")} == {
        "lat_table",
        "attention_table",
        "dual_table",
        "pixel_table",
        "matrix_table",
        "build_report",
    }
    writer = dvc_stage_writing(project)
    assert dvc_changed(project) == {writer[f] for f in evaluations}


# --- interrupted training ---------------------------------------------------------------------

MODEL = "mnist_lat"
EPOCHS = 3


def _longer_training(finished: Path, tmp_path: Path, name: str) -> Path:
    project = copy_of(finished, tmp_path, name)
    recipe = Params.load(project / "params.yaml").model(MODEL).training.name
    edit_params(project, **{f"training.{recipe}.epochs.tiny": EPOCHS})
    return project


def test_killed_training_leaves_no_complete_output_and_resumes_to_the_same_result(
    finished: Path, tmp_path: Path
) -> None:
    target = f"results/models/{MODEL}/model.pt"
    reference = _longer_training(finished, tmp_path, "reference")
    run(["snakemake", *TINY_PROFILE, target], reference)

    project = _longer_training(finished, tmp_path, "killed")
    checkpoint = project / "results/checkpoints" / f"{MODEL}.pt"
    checkpoint.unlink(missing_ok=True)
    job = subprocess.Popen(
        ["snakemake", *TINY_PROFILE, target],
        cwd=project,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 900
    while not checkpoint.is_file():  # written atomically at the end of each epoch
        assert job.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.killpg(job.pid, signal.SIGKILL)  # Snakemake and the training job, no clean-up: a lost node
    job.wait()
    # A Snakemake killed this way cannot remove its lock; the README says to unlock first.
    run(["snakemake", *TINY_PROFILE, "--unlock"], project)
    epoch = torch.load(checkpoint, weights_only=False)["epoch"]
    assert 1 <= epoch < EPOCHS, "the kill should land in a later epoch"

    # Nothing of the killed job looks complete to either tool.
    assert not (project / target).exists()
    assert not (project / f"results/models/{MODEL}/metrics.json").exists()
    assert target in planned_outputs(project)
    assert f"train@{MODEL}" in dvc_changed(project)

    resumed = run(["snakemake", *TINY_PROFILE, target], project)
    assert f"resuming from the checkpoint of epoch {epoch}" in resumed.stdout + resumed.stderr
    metrics = f"results/models/{MODEL}/metrics.json"
    assert (project / metrics).read_bytes() == (reference / metrics).read_bytes()
    ours = torch.load(project / target, weights_only=False)["state_dict"]
    theirs = torch.load(reference / target, weights_only=False)["state_dict"]
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


# --- same seed, same result -----------------------------------------------------------------

# A second run, from the raw data on, of every kind of job: the LAT branch (MNIST and CIFAR-10
# data, natural/PGD/LAT training, PGD evaluations, the LAT table), GrabCut masks + DE, the
# COCO-built Segment-6 + dual training and attack, and AutoAttack.
RERUN_TARGETS = [
    "results/tables/lat.md",
    "results/evals/cifar10_vgg16/de_background_1px.json",
    "results/evals/segment6_at_dual/dual_l2_f2_b20.json",
    "results/matrix/mnist_lat/aa_mnist_linf.json",
]


def test_the_same_seed_gives_byte_identical_metrics_and_tables(finished: Path, tmp_path: Path) -> None:
    project = copy_of(finished, tmp_path)
    jobs = snakemake_jobs(project, *TINY_PROFILE, "--forceall", *RERUN_TARGETS)
    rules = {j.rule for j in jobs}
    assert {"fetch_raw", "prepare", "train", "evaluate", "evaluate_matrix", "lat_table"} <= rules
    run(["snakemake", *TINY_PROFILE, "--forceall", *RERUN_TARGETS], project, timeout=2400)
    compared = [
        out
        for job in jobs
        for out in job.outputs
        if out.endswith((".json", ".csv", ".md")) and not out.endswith("throughput.json")
    ]
    assert len(compared) > 40
    differ = [out for out in compared if not filecmp.cmp(project / out, finished / out, shallow=False)]
    assert differ == []


# --- versioning -------------------------------------------------------------------------------


def _tracked_files(project: Path) -> list[Path]:
    """Every file of every DVC stage output (cached or not), but Snakemake's marker of when a
    directory output was made (in .dvcignore)."""
    files = []
    for stage in dvc_stages(project):
        for out in stage.outs:
            path = project / out
            inside = (p for p in path.rglob("*") if p.is_file() and p.name != ".snakemake_timestamp")
            files += sorted(inside) if path.is_dir() else [path]
    return files


def test_dvc_push_and_pull_restore_every_artifact_on_a_clean_clone(finished: Path, tmp_path: Path) -> None:
    source = copy_of(finished, tmp_path, "source")
    run(["dvc", "push", "--quiet"], source)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(source), str(clone)], tmp_path)
    run(["dvc", "remote", "modify", "--local", "local", "url", str(tmp_path / "source-remote")], clone)
    assert not (clone / f"results/models/{MODEL}/model.pt").exists()

    run(["dvc", "pull", "--quiet"], clone)
    assert "up to date" in run(["dvc", "status"], clone).stdout
    # Snakemake keeps no record in git of how the pulled files were made: --touch records them
    # as up to date without running anything (the README says so).
    run(["snakemake", *TINY_PROFILE, "--touch"], clone)
    assert snakemake_jobs(clone, *TINY_PROFILE) == []
    files = _tracked_files(source)
    assert len(files) > 100
    for path in files:
        restored = clone / path.relative_to(source)
        assert restored.is_file() and filecmp.cmp(path, restored, shallow=False), restored


def test_dvc_exp_run_sweeps_a_param(finished: Path, tmp_path: Path) -> None:
    project = copy_of(finished, tmp_path)
    key = "attacks.mnist_pgd_box.eps"
    for eps in (0.1, 0.2):
        out = run(
            ["dvc", "exp", "run", "-S", f"{key}={eps}", "--name", f"box-eps-{eps}"], project, timeout=1200
        )
        # Only the three MNIST cells of that column and what reads them.
        assert dvc_ran(out.stdout) == {
            *(f"evaluate_matrix@{m}-mnist_pgd_box" for m in ("mnist_natural", "mnist_standard", "mnist_lat")),
            "matrix_table",
            "build_report",
        }, out.stdout
    shown = run(["dvc", "exp", "show", "--csv", "--no-pager"], project).stdout
    rows = {row["Experiment"]: row for row in csv.DictReader(io.StringIO(shown))}
    assert rows["box-eps-0.1"][key] == "0.1" and rows["box-eps-0.2"][key] == "0.2"
    # Each experiment carries its own metrics (the matrix's robust accuracies): a larger eps
    # leaves no more images robust.
    robust = "mnist.mnist_lat.mnist_pgd_box"
    assert float(rows["box-eps-0.1"][robust]) >= float(rows["box-eps-0.2"][robust])


# --- beyond one machine -------------------------------------------------------------------------


def test_the_slurm_profile_sends_training_and_attacks_to_gpu_nodes(
    synthetic_mirror: Path, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "project", synthetic_mirror)
    jobs = snakemake_jobs(project, "--profile", "workflow/profiles/slurm", "--forceall")
    assert len(jobs) == len(snakemake_jobs(project, *TINY_PROFILE, "--forceall"))
    declared = Params.load(project / "params.yaml").raw["resources"]
    for job in jobs:
        kind = "evaluate" if job.rule.startswith("evaluate") else job.rule
        if kind in ("train", "evaluate"):
            assert job.resources["slurm_partition"] == "gpu", job
            assert int(job.resources["gpu"]) == declared[kind]["gpu"]
            assert int(job.resources["mem_mb"]) == declared[kind]["mem_mb"]
        else:
            assert job.resources["slurm_partition"] == "cpu", job
            assert "gpu" not in job.resources
