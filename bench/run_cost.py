"""What a run cost per experiment, from Snakemake's per-job benchmark records.

    uv run python bench/run_cost.py                      # params.yaml's scale, benchmarks/<scale>
    uv run python bench/run_cost.py --scale tiny --out cost.json

Each experiment is the job of its table and every job upstream of it in the plan's DAG
(workflow/plan.py). A job that several experiments need (a model the robustness matrix also
attacks, say) is counted once, in the first experiment of ``EXPERIMENTS`` that needs it, so the
rows add up to the run. The data jobs (raw copies, datasets, data checks: the jobs upstream of no
model) are a row of their own, and the model jobs upstream of no table (the gradient figures, the
report) a last row. Times are Snakemake's (``s``: wall seconds; ``cpu_time``), summed over jobs:
jobs that ran side by side count each. A training or evaluation without a record (its record
lost with a recreated checkout, or run by `dvc repro`, which writes none) is timed by its own
throughput record (``train_seconds``/``seconds``: the training or attack loop, without start-up and
loading, and no CPU time) and counted as such; any other job without a record counts no time.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import markdown_table, write_record  # noqa: E402
from stages.report.benchmarks import JobBenchmark, read_benchmarks  # noqa: E402
from workflow.lease import local_jobs  # noqa: E402
from workflow.plan import BENCHMARKS_DIR, Job, Plan  # noqa: E402

# Table rule -> experiment, in the order shared jobs are attributed.
EXPERIMENTS = {
    "lat_table": "lat",
    "attention_table": "attention_masks",
    "dual_table": "dual_perturbation",
    "pixel_table": "pixel_space",
    "matrix_table": "robustness_matrix",
}
DATA = "data"
OTHER = "figures and report"


@dataclass(frozen=True)
class Cost:
    experiment: str
    jobs: int  # jobs of the plan attributed to the experiment
    recorded: int  # of which have a benchmark record
    from_throughput: int  # of which are timed by their throughput record only (no CPU time)
    trainings: int
    evaluations: int  # evaluate and evaluate_matrix jobs
    wall_s: float
    cpu_s: float
    longest: str  # rule/job of the longest record
    longest_s: float


def upstream(plan: Plan, job: Job) -> list[Job]:
    """``job`` and every job whose outputs it reads, directly or not (depth first, inputs order)."""
    producers = plan.producers()
    seen: dict[str, Job] = {}
    todo = [job]
    while todo:
        current = todo.pop()
        if current.name in seen:
            continue
        seen[current.name] = current
        todo += [producers[p] for p in current.all_inputs() if p in producers]
    return list(seen.values())


def attribute(plan: Plan) -> dict[str, list[Job]]:
    """Experiment -> its jobs, each job of the plan in exactly one experiment."""
    taken: set[str] = set()
    groups: dict[str, list[Job]] = {DATA: local_jobs(plan)}
    taken |= {job.name for job in groups[DATA]}
    for rule, experiment in EXPERIMENTS.items():
        jobs = [j for table in plan.jobs_of(rule) for j in upstream(plan, table) if j.name not in taken]
        unique = list({j.name: j for j in jobs}.values())
        groups[experiment] = unique
        taken |= {j.name for j in unique}
    groups[OTHER] = [job for job in plan.jobs if job.name not in taken]
    return groups


def throughput_seconds(job: Job, root: Path = REPO_ROOT) -> float | None:
    """The seconds a training or evaluation job's own throughput record gives (``train_seconds``
    of a training, ``seconds`` of an evaluation), or None without one."""
    path = job.outputs.get("throughput")
    if path is None or not (root / path).is_file():
        return None
    record = json.loads((root / path).read_text(encoding="utf-8"))
    seconds = record.get("train_seconds", record.get("seconds")) if isinstance(record, dict) else None
    return float(seconds) if isinstance(seconds, (int, float)) else None


def costs(plan: Plan, records: list[JobBenchmark], root: Path = REPO_ROOT) -> list[Cost]:
    by_job = {(r.rule, r.job): r for r in records}
    rows = []
    for experiment, jobs in attribute(plan).items():
        found = [by_job[(j.rule, j.id)] for j in jobs if (j.rule, j.id) in by_job]
        # (label, wall seconds) of every timed job: the benchmark record, else the throughput one.
        timed = [(f"{r.rule}/{r.job}", r.wall_s) for r in found]
        estimated = 0
        for job in jobs:
            if (job.rule, job.id) not in by_job and (seconds := throughput_seconds(job, root)) is not None:
                timed.append((f"{job.rule}/{job.id}", seconds))
                estimated += 1
        longest = max(timed, key=lambda item: item[1], default=None)
        rows.append(
            Cost(
                experiment=experiment,
                jobs=len(jobs),
                recorded=len(found),
                from_throughput=estimated,
                trainings=sum(j.rule == "train" for j in jobs),
                evaluations=sum(j.rule in ("evaluate", "evaluate_matrix") for j in jobs),
                wall_s=sum(seconds for _, seconds in timed),
                cpu_s=sum(r.cpu_s for r in found),
                longest=longest[0] if longest else "",
                longest_s=longest[1] if longest else 0.0,
            )
        )
    return rows


def _hours(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def render(rows: list[Cost]) -> str:
    table = [
        [
            r.experiment,
            f"{r.jobs} ({r.recorded} + {r.from_throughput})",
            r.trainings,
            r.evaluations,
            _hours(r.wall_s),
            _hours(r.cpu_s),
            f"`{r.longest}` {_hours(r.longest_s)}" if r.longest else "–",
        ]
        for r in rows
    ]
    table.append(
        [
            "**all**",
            f"{sum(r.jobs for r in rows)} ({sum(r.recorded for r in rows)}"
            f" + {sum(r.from_throughput for r in rows)})",
            sum(r.trainings for r in rows),
            sum(r.evaluations for r in rows),
            _hours(sum(r.wall_s for r in rows)),
            _hours(sum(r.cpu_s for r in rows)),
            "",
        ]
    )
    columns = [
        "experiment",
        "jobs (benchmark records + throughput records only)",
        "trainings",
        "evaluations",
        "wall time",
        "CPU time (benchmark records)",
        "longest job",
    ]
    return markdown_table(columns, table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--scale", default=None, help="default: params.yaml's `scale`")
    parser.add_argument("--benchmarks", type=Path, default=BENCHMARKS_DIR, help="default: benchmarks")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    plan = Plan.load(args.params, scale=args.scale)
    folder = args.benchmarks / plan.scale
    if not folder.is_dir():
        print(
            f"error: {folder}: no benchmark records (Snakemake writes them as the jobs run)", file=sys.stderr
        )
        return 2
    rows = costs(plan, read_benchmarks(folder))
    print(render(rows))
    write_record(
        args.out, {"scale": plan.scale, "benchmarks": str(folder), "rows": [asdict(r) for r in rows]}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
