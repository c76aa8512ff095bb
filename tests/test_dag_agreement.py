"""The Snakefile and dvc.yaml describe the same DAG: for every job, the same command, the same
outputs and the same inputs (DVC additionally lists each stage's code, which must be exactly
the paths workflow/stage_code.py gives Snakemake's `code` param)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dag_tools import DvcStage, Job, dvc_stages, edit_params, make_project, snakemake_jobs
from workflow.stage_code import code_paths


@pytest.fixture(scope="module", params=[1, 2], ids=["one_seed", "two_seeds"])
def both_dags(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[Job], list[DvcStage], int]:
    project = make_project(tmp_path_factory.mktemp("agree") / "project", Path("/nonexistent-mirror"))
    if request.param != 1:
        # Replicas: models <model>_seed<N>, listed for DVC in workflow/dvc_matrix.yaml.
        edit_params(project, replicates=request.param)
    return snakemake_jobs(project, "--forceall"), dvc_stages(project), request.param


def _covered(dep: str, inputs: set[str]) -> set[str]:
    """The Snakemake inputs a DVC dep stands for: itself, or the files inside a folder dep."""
    prefix = dep.rstrip("/") + "/"
    return {i for i in inputs if i == dep or i.startswith(prefix)}


def test_every_job_is_a_stage_with_the_same_command_inputs_and_outputs(both_dags) -> None:
    jobs, stages, _ = both_dags
    by_outputs = {frozenset(j.outputs): j for j in jobs}
    assert len(by_outputs) == len(jobs), "two Snakemake jobs with the same outputs"
    matched: set[frozenset[str]] = set()
    for stage in stages:
        key = frozenset(stage.outs)
        assert key in by_outputs, f"DVC stage {stage.name} (outs {sorted(key)}) has no Snakemake job"
        job = by_outputs[key]
        matched.add(key)
        assert stage.command == job.command, f"{stage.name}: commands differ"
        code = set(code_paths(job.rule))
        data_deps = [d for d in stage.deps if d not in code]
        assert code <= set(stage.deps), f"{stage.name}: DVC misses code deps {sorted(code - set(stage.deps))}"
        inputs = set(job.inputs)
        covered: set[str] = set()
        for dep in data_deps:
            found = _covered(dep, inputs)
            assert found, f"{stage.name}: DVC dep {dep} is no input of Snakemake's {job.rule} job"
            covered |= found
        assert covered == inputs, f"{stage.name}: Snakemake inputs {sorted(inputs - covered)} not in DVC deps"
    missing = [sorted(k) for k in by_outputs if k not in matched]
    assert not missing, f"Snakemake jobs with no DVC stage: {missing}"


def test_every_evaluation_in_params_is_in_both_dags(both_dags) -> None:
    from stages.config import Params
    from tests.dag_tools import REPO

    jobs, stages, replicates = both_dags
    # The project copy runs at the tiny scale (make_project), so derive the pairs there too.
    from stages.config import load_yaml

    params = Params(dict(load_yaml(REPO / "params.yaml"), replicates=replicates), scale="tiny")
    trained = {o for j in jobs for o in j.outputs if o.endswith("/model.pt")}
    assert trained == {f"results/models/{m}/model.pt" for m in params.model_names()}
    assert len(trained) == replicates * len(params.raw["models"])
    groups = set(params.group_pairs())
    wanted = {
        f"results/{'evals' if (m, a) in groups else 'matrix'}/{m}/{a}.json" for m, a in params.evaluations()
    }
    assert wanted <= {o for j in jobs for o in j.outputs}
    assert wanted <= {o for s in stages for o in s.outs}
