"""What users rely on after a full run of the micro-DAG, checked with both tools on copies of
it: a change reruns exactly what the plan says (one real rerun per tool: an attack's eps, a stage
module's code; the plan's job sets for every kind of change are in tests/test_plan.py), a killed
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
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from stages.config import Params, load_yaml, resolve_tree
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
from workflow.plan import Plan, dvc_stage_name, job_of_stage, reruns

# Real Snakemake and DVC runs on copies of the micro project: the dag tier.
pytestmark = pytest.mark.dag


def planned_outputs(project: Path, *args: str) -> set[str]:
    """The first output of every job a plain `snakemake` would run now."""
    return {job.outputs[0] for job in snakemake_jobs(project, *TINY_PROFILE, *args)}


def dvc_changed(project: Path) -> set[str]:
    """The jobs (``plan`` for DVC's own first stage) whose stages `dvc status` reports as changed
    (not their downstream)."""
    return {job_of_stage(stage) for stage in json.loads(run(["dvc", "status", "--json"], project).stdout)}


def dvc_ran(output: str) -> set[str]:
    """The jobs whose stages a `dvc repro` output says it ran."""
    return {job_of_stage(stage) for stage in re.findall(r"Running stage '([^']+)'", output)}


def first_outputs(plan: Plan, names: set[str]) -> set[str]:
    return {next(iter(plan.by_name[name].outputs.values())) for name in names}


def touch_code(project: Path, module: str, line: str = "_EDITED = True") -> None:
    """An edit of a stage module that leaves its outputs byte-identical (a new module-level
    name, as a refactor would be), or with ``line`` a comment."""
    path = project / module
    path.write_text(path.read_text() + f"\n{line}\n")


# --- one real rerun per tool: the plan's job sets (tests/test_plan.py) are what the tools do ----

# An attack of the micro project's LAT group (the LAT table's background column).
CHANGED_ATTACK = "lat_background"


def test_an_attacks_eps_reruns_in_snakemake_exactly_the_plans_job_set(finished: Path, tmp_path: Path) -> None:
    project = copy_of(finished, tmp_path)
    before = Plan.load(project / "params.yaml")
    edit_params(project, **{f"attacks.{CHANGED_ATTACK}.eps": 0.25})
    after = Plan.load(project / "params.yaml")
    expected = reruns(before, after, project, project)
    assert {after.by_name[n].rule for n in expected} >= {"evaluate", "lat_table", "build_report"}
    assert planned_outputs(project) == first_outputs(after, expected)


def test_an_attacks_eps_reruns_in_dvc_exactly_the_changed_jobs(finished: Path, tmp_path: Path) -> None:
    project = copy_of(finished, tmp_path)
    before = Plan.load(project / "params.yaml")
    edit_params(project, **{f"attacks.{CHANGED_ATTACK}.eps": 0.25})  # + the generator, as a user does
    after = Plan.load(project / "params.yaml")
    old, new = before.fingerprints(project), after.fingerprints(project)
    changed = {name for name in new if old[name] != new[name]}
    # Its evaluations, and the jobs whose files hold the attack: the report (all of params.yaml)
    # and, were it a matrix column, the matrix table.
    assert {"evaluate", "build_report"} <= {after.by_name[n].rule for n in changed}
    assert {after.by_name[n].rule for n in changed} <= {"evaluate", "matrix_table", "build_report"}
    assert all(after.by_name[n].wildcards.get("attack", CHANGED_ATTACK) == CHANGED_ATTACK for n in changed)
    # The generator rewrote the job files; `plan` itself is changed (params.yaml is its dep).
    assert dvc_changed(project) == changed | {"plan"}
    ran = dvc_ran(run(["dvc", "repro"], project, timeout=1800).stdout)
    # The changed jobs and, of what reads their outputs, only what got different inputs.
    assert changed | {"plan"} <= ran <= reruns(before, after, project, project) | {"plan"}
    assert "lat_table" in ran
    assert dvc_changed(project) == set()


def test_a_table_modules_code_change_reruns_that_table_in_either_tool(finished: Path, tmp_path: Path) -> None:
    snake = copy_of(finished, tmp_path, "snake")
    # A comment is no code (workflow.code_deps digests the parsed module): nothing reruns.
    touch_code(snake, "stages/report/lat_table.py", "# a comment")
    assert planned_outputs(snake) == set()
    touch_code(snake, "stages/report/lat_table.py")
    # Snakemake plans the table and, downstream of it, the report.
    assert planned_outputs(snake) == {"results/tiny/tables/lat.csv", "results/tiny/report.md"}

    dvc = copy_of(finished, tmp_path, "dvc")
    touch_code(dvc, "stages/report/lat_table.py")
    # DVC hashes the code in its `plan` stage, which rewrites the rule's code digest
    # (workflow/jobs/<scale>/code/lat_table.txt): then the table is the one changed stage.
    # Snakemake has no such cut-off: with the table's outputs unchanged, it still reruns the
    # report (the README says which tool to use for a code-only change).
    assert dvc_changed(dvc) == {"plan"}
    run(["dvc", "repro", dvc_stage_name(Plan.load(dvc / "params.yaml").scale, "plan")], dvc)
    assert dvc_changed(dvc) == {"lat_table"}
    # Its outputs are byte-identical, so the report is not rerun.
    assert dvc_ran(run(["dvc", "repro"], dvc).stdout) == {"lat_table"}


# --- scales live apart -------------------------------------------------------------------------


def test_switching_scales_and_back_reruns_nothing_in_either_tool(finished: Path, tmp_path: Path) -> None:
    """A run at another scale writes only under its own folders (tests/test_plan.py checks the
    plans are disjoint); here, switching the project's scale and back invalidates nothing built."""
    project = copy_of(finished, tmp_path)
    edit_params(project, scale="reduced")  # dvc.yaml and job files regenerated for `reduced`
    stages = json.loads(run(["dvc", "status", "--json"], project).stdout)
    assert stages and all(name.startswith("reduced-") for name in stages)
    assert planned_outputs(project, "--config", "scale=reduced")  # reduced: nothing built yet

    edit_params(project, scale="tiny")
    # dvc.lock kept the tiny stages' entries (their names carry the scale), Snakemake its records.
    assert dvc_changed(project) == set()
    assert planned_outputs(project) == set()
    assert not (project / "results/reduced").exists() and not (project / "data/reduced").exists()


# --- a failed rerun -----------------------------------------------------------------------------


def _files(folder: Path) -> dict[Path, bytes]:
    """Every file's bytes, but Snakemake's marker of when a directory output was made."""
    return {
        p.relative_to(folder): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != ".snakemake_timestamp"
    }


def test_a_failed_rerun_loses_nothing_that_dvc_and_git_cannot_restore(finished: Path, tmp_path: Path) -> None:
    """Snakemake removes a job's outputs before it runs the job (its design; DVC does the same for
    its stages' outputs): when the job then fails on bad input, the README's recovery restores
    them, the cached ones with `dvc checkout`, the committed small ones with `git checkout`."""
    project = copy_of(finished, tmp_path)
    damaged = tmp_path / "mirror"
    mirror = Path(load_yaml(project / "params.yaml")["raw"]["mirror"])
    shutil.copytree(mirror, damaged)
    victim = sorted(p for p in (damaged / "mnist").rglob("*") if p.is_file())[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    edit_params(project, **{"raw.mirror": str(damaged)})  # a new mirror: the fetch jobs rerun

    raw, report = "data/tiny/raw/mnist", "results/tiny/raw/mnist.json"
    failed = run(["snakemake", *TINY_PROFILE, report], project, check=False)
    assert failed.returncode != 0
    said = failed.stdout + failed.stderr
    assert victim.name in said, "the error names the damaged file"
    assert "logs/tiny/fetch_raw/mnist.log" in said, "Snakemake's message points to the job's log"
    assert victim.name in (project / "logs/tiny/fetch_raw/mnist.log").read_text()
    assert not (project / raw).exists() and not (project / report).exists()

    edit_params(project, **{"raw.mirror": str(mirror)})  # the input fixed
    run(["dvc", "checkout", raw], project)
    run(["git", "checkout", "--", report], project)
    assert _files(project / raw) == _files(finished / raw)
    assert (project / report).read_bytes() == (finished / report).read_bytes()
    assert dvc_changed(project) == set()
    # Snakemake recorded the failed job's command: told that the restored files are current
    # (as after a `dvc pull`), it has nothing to do.
    run(["snakemake", *TINY_PROFILE, "--touch", report], project)
    assert planned_outputs(project) == set()


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
    target = f"results/tiny/models/{MODEL}/model.pt"
    reference = _longer_training(finished, tmp_path, "reference")
    run(["snakemake", *TINY_PROFILE, target], reference)

    project = _longer_training(finished, tmp_path, "killed")
    checkpoint = project / "results/tiny/checkpoints" / f"{MODEL}.pt"
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
    assert not (project / f"results/tiny/models/{MODEL}/metrics.json").exists()
    assert target in planned_outputs(project)
    assert f"train-{MODEL}" in dvc_changed(project)

    resumed = run(["snakemake", *TINY_PROFILE, target], project)
    assert f"resuming from the checkpoint of epoch {epoch}" in resumed.stdout + resumed.stderr
    metrics = f"results/tiny/models/{MODEL}/metrics.json"
    assert (project / metrics).read_bytes() == (reference / metrics).read_bytes()
    ours = torch.load(project / target, weights_only=False)["state_dict"]
    theirs = torch.load(reference / target, weights_only=False)["state_dict"]
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


# --- same seed, same result -----------------------------------------------------------------

# A second run, from the raw data on, of every kind of job: the LAT branch (MNIST and CIFAR-10
# data, natural/PGD/LAT training, PGD evaluations, the LAT table), GrabCut masks + DE, the
# GrabCut-masked CIFAR-10 + dual training and attack, and AutoAttack.
RERUN_TARGETS = [
    "results/tiny/tables/lat.md",
    "results/tiny/evals/cifar10_vgg16/de_background_1px.json",
    "results/tiny/evals/cifar10_grabcut_at_dual/dual_l2_f2_b20.json",
    "results/tiny/matrix/mnist_lat/aa_mnist_linf.json",
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
    assert len(compared) > 20
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
    assert not (clone / f"results/tiny/models/{MODEL}/model.pt").exists()

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
    key = "attacks.dual_linf_f4_b20.eps_background"
    cell = "evaluate_matrix-coco_ic_natural-dual_linf_f4_b20"
    for eps in (0.05, 0.1):
        out = run(["dvc", "exp", "run", "-S", f"{key}={eps}", "--name", f"eps-{eps}"], project, timeout=1200)
        # The `plan` stage rewrites the job files, then only the matrix cell of that column (the
        # one model of the micro COCO-IC matrix it fits) and what reads it rerun.
        assert dvc_ran(out.stdout) == {"plan", cell, "matrix_table", "build_report"}, out.stdout
    shown = run(["dvc", "exp", "show", "--csv", "--no-pager"], project).stdout
    rows = {row["Experiment"]: row for row in csv.DictReader(io.StringIO(shown))}
    assert rows["eps-0.05"][key] == "0.05" and rows["eps-0.1"][key] == "0.1"
    # Each experiment carries its own metrics (the matrix's robust accuracies): a larger eps
    # leaves no more images robust.
    robust = "coco_ic.coco_ic_natural.dual_linf_f4_b20"
    assert float(rows["eps-0.05"][robust]) >= float(rows["eps-0.1"][robust])


# --- beyond one machine -------------------------------------------------------------------------


def test_the_slurm_profile_sends_training_and_attacks_to_gpu_nodes(
    synthetic_mirror: Path, tmp_path: Path
) -> None:
    project = make_project(tmp_path / "project", synthetic_mirror, micro=True)
    jobs = snakemake_jobs(project, "--profile", "workflow/profiles/slurm", "--forceall")
    assert len(jobs) == len(snakemake_jobs(project, *TINY_PROFILE, "--forceall"))
    # Memory and wall time per rule at the run's scale, from params.yaml (workflow.resources).
    declared = resolve_tree(Params.load(project / "params.yaml").raw["resources"], "tiny")
    for job in jobs:
        kind = "evaluate" if job.rule.startswith("evaluate") else job.rule
        if kind in ("train", "evaluate"):
            assert job.resources["slurm_partition"] == "gpu", job
            assert int(job.resources["gpu"]) == declared[kind]["gpu"]
        else:
            kind = "default"
            assert job.resources["slurm_partition"] == "cpu", job
            assert "gpu" not in job.resources
        assert int(job.resources["mem_mb"]) == declared[kind]["mem_mb"], job
        assert int(job.resources["runtime"]) == declared[kind]["runtime"], job
