"""Snakemake and DVC plan the same jobs with the same parameters, at the tiny and the reduced
scale (and with replicas): for every job, the same command, outputs and inputs, the same job
file (the parameters the job reads) and, for DVC, exactly the code paths the plan hashes into
Snakemake's `code` param. Both come from workflow/plan.py; this checks what each tool makes of
it, through the tools themselves (`snakemake -n -p`, DVC's own dvc.yaml parser)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stages.config import load_yaml
from tests.dag_tools import DvcStage, Job, dvc_stages, edit_params, make_project, snakemake_jobs
from workflow.plan import Plan, job_code, job_of_stage

pytestmark = pytest.mark.dag


@pytest.fixture(
    scope="module",
    params=[("tiny", 1), ("reduced", 1), ("tiny", 2)],
    ids=["tiny", "reduced", "tiny_two_seeds"],
)
def both_dags(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[Job], list[DvcStage], Plan, Path]:
    scale, replicates = request.param
    project = make_project(tmp_path_factory.mktemp("agree") / "project", Path("/nonexistent-mirror"))
    edit_params(project, scale=scale, replicates=replicates)  # regenerates dvc.yaml and job files
    plan = Plan.load(project / "params.yaml")
    assert plan.scale == scale
    return snakemake_jobs(project, "--forceall"), dvc_stages(project), plan, project


def _command(job: Job) -> str:
    """The stage's command: Snakemake's shell also copies the output to the job's log."""
    command, _, log = job.command.partition(" 2>&1 | tee ")
    assert re.match(rf"logs/\w+/{job.rule}/", log), job.command
    return command


def test_every_job_is_a_stage_with_the_same_command_inputs_outputs_and_job_file(both_dags) -> None:
    jobs, stages, plan, _ = both_dags
    by_outputs = {frozenset(j.outputs): j for j in jobs}
    assert len(by_outputs) == len(jobs) == len(plan.jobs), "two Snakemake jobs with the same outputs"
    # DVC's one extra stage rewrites the job files (Snakemake does it when it starts).
    # Every stage name carries the scale (workflow.plan.dvc_stage_name).
    assert {s.name for s in stages} == {f"{plan.scale}-{name}" for name in [*plan.by_name, "plan"]}
    for stage in stages:
        if job_of_stage(stage.name) == "plan":
            continue
        key = frozenset(stage.outs)
        assert key in by_outputs, f"DVC stage {stage.name} (outs {sorted(key)}) has no Snakemake job"
        job = by_outputs[key]
        planned = plan.by_name[job_of_stage(stage.name)]
        assert job.rule == planned.rule
        assert stage.command == _command(job) == planned.command, f"{stage.name}: commands differ"
        # DVC's one extra dep: the digest of the job's code (Snakemake's `code` param).
        code = planned.code_file
        assert code in stage.deps, f"{stage.name}: DVC misses its code digest {code}"
        assert set(stage.deps) - {code} == set(job.inputs) == set(planned.all_inputs()), stage.name


def test_both_tools_read_each_jobs_parameters_from_the_same_job_file(both_dags) -> None:
    jobs, stages, plan, project = both_dags
    with_files = [job for job in plan.jobs if job.params_file]
    assert len(with_files) == len(plan.jobs) - len(plan.jobs_of("fetch_raw"))
    deps = {job_of_stage(stage.name): set(stage.deps) for stage in stages}
    assert [s.outs for s in stages if s.name == f"{plan.scale}-plan"] == [(f"workflow/jobs/{plan.scale}",)]
    inputs = {frozenset(j.outputs): set(j.inputs) for j in jobs}
    for job in with_files:
        assert job.params_file in deps[job.name]
        assert job.params_file in inputs[frozenset(job.outputs.values())]
        assert f"--job {job.params_file}" in job.command
        written = json.loads((project / job.params_file).read_text())
        assert written == {"job": job.name, "scale": plan.scale, "params": job.params}
    for info in job_code(plan, project).values():
        assert (project / info.file).read_text() == info.text


def test_every_model_and_evaluation_in_params_is_in_both_dags(both_dags) -> None:
    jobs, stages, plan, project = both_dags
    params = plan.params
    replicates = load_yaml(project / "params.yaml")["replicates"]
    trained = {o for j in jobs for o in j.outputs if o.endswith("/model.pt")}
    # Each scale's outputs live apart (workflow.plan.results_root).
    assert trained == {f"results/{plan.scale}/models/{m}/model.pt" for m in params.model_names()}
    assert len(trained) == replicates * len(params.raw["models"])
    groups = set(params.group_pairs())
    wanted = {
        f"results/{plan.scale}/{'evals' if (m, a) in groups else 'matrix'}/{m}/{a}.json"
        for m, a in params.evaluations()
    }
    assert wanted <= {o for j in jobs for o in j.outputs}
    assert wanted <= {o for s in stages for o in s.outs}
