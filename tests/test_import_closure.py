"""Every ``stages`` module a job of the micro-DAG imported while it ran is in its code digest
(workflow/code_deps.py): the computed code dependencies miss nothing a stage really runs.

The tiny run behind ``finished`` records each stage process's imports
(tests/import_recorder/sitecustomize.py); this test matches each record to its job by the
command's arguments. Dag tier: it needs that run."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tests.dag_tools import import_log
from workflow.plan import Plan, job_code

pytestmark = pytest.mark.dag


def test_every_module_each_job_imported_is_in_its_code_digest(finished: Path) -> None:
    plan = Plan.load(finished / "params.yaml")
    code = job_code(plan, finished)
    # One record per process: a job's worker processes (GrabCut's) record too, under its arguments.
    records = [json.loads(p.read_text()) for p in sorted(import_log(finished).glob("*.json"))]
    assert records, f"no import records under {import_log(finished)}: was the tiny run recorded?"
    by_arguments = {tuple(shlex.split(job.command)[3:]): job for job in plan.jobs}
    seen: set[str] = set()
    for record in records:
        job = by_arguments.get(tuple(record["argv"]))
        assert job is not None, f"a stage process no job of the plan runs: {record['entry']} {record['argv']}"
        assert Path(record["entry"]).name == job.entry_module.rpartition(".")[2] + ".py", job.name
        missing = set(record["modules"]) - set(code[job.name].modules)
        assert not missing, f"{job.name} imported {sorted(missing)}, which its code digest leaves out"
        seen.add(job.name)
    # Every job of the micro-DAG ran (and so was checked).
    assert seen == set(plan.by_name)
