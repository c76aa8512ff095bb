"""The whole tiny DAG's wall time, and what a rerun with nothing to do costs in each tool.

    # build a tiny project on the synthetic mirror, timing the whole DAG (about 20-30 min on 2 cores):
    uv run python bench/dag_overhead.py --workdir /tmp/dag_bench --out bench/results/dag_overhead.json
    # or reuse a finished one (tests.dag_tools.run_tiny_dag makes it; so does a first run above):
    uv run python bench/dag_overhead.py --project /tmp/dag_bench/project --out bench/results/dag_overhead.json

What it measures, in a finished tiny project (the whole tiny DAG, 476 jobs, on the synthetic
mirror of ``stages/data/synthetic.py``; the test suite itself builds only a micro-DAG):

* the whole DAG from the raw mirror: ``snakemake --profile workflow/profiles/tiny`` wall time and
  the ``dvc commit`` that records it (only when it builds the project itself);
* a no-op rerun: ``snakemake --profile workflow/profiles/tiny`` (it must report nothing to do),
  its dry run ``-n``, and ``dvc status`` (it must report no change); target 5 s each (issue 20:
  since every job reads its own job file, DVC no longer parses params.yaml once per stage);
* what they are made of: the Python start-up of a training/evaluation job (``import
  stages.evaluate``) and making the plan itself (``python -m workflow.plan --check``).

Each no-op figure is the median of ``--repeats`` rounds that run every command once, in turn.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from bench.common import machine, markdown_table, write_record  # noqa: E402
from tests.dag_tools import BIN, TINY_PROFILE, env, make_project, write_tiny_mirror  # noqa: E402

NO_OP_TARGET_SECONDS = 5.0  # issue 20 (issue 9 asked for 10 s): a rerun with nothing to do


def timed_command(cmd: list[str], cwd: Path, expect: str | None = None) -> float:
    """Seconds of ``cmd`` run in ``cwd``; stops the benchmark if it fails or (with ``expect``)
    does not print ``expect``, since then it was not a no-op."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 or (expect is not None and expect not in output):
        raise SystemExit(
            f"{' '.join(cmd)} in {cwd} was not a clean no-op (exit {proc.returncode}):\n{output}"
        )
    return seconds


def build_project(workdir: Path) -> tuple[Path, dict[str, float]]:
    """A finished tiny project under ``workdir`` and the seconds its run and commit took."""
    project = make_project(workdir / "project", write_tiny_mirror(workdir))
    print("running the whole tiny DAG (tens of minutes on 2 cores)", flush=True)
    dag = timed_command([str(BIN / "snakemake"), *TINY_PROFILE, "--quiet", "rules"], project)
    commit = timed_command([str(BIN / "dvc"), "commit", "--force", "--quiet"], project)
    for git in (["git", "add", "-A"], ["git", "commit", "-qm", "tiny run"]):
        subprocess.run(git, cwd=project, check=True, capture_output=True)
    return project, {"whole tiny DAG (snakemake)": dag, "dvc commit of it": commit}


def no_op_commands(project: Path) -> dict[str, tuple[list[str], str | None]]:
    python = str(BIN / "python")
    return {
        "snakemake, nothing to do": ([str(BIN / "snakemake"), *TINY_PROFILE], "Nothing to be done"),
        "snakemake -n, nothing to do": ([str(BIN / "snakemake"), *TINY_PROFILE, "-n"], "Nothing to be done"),
        # -q: the exit status says whether anything changed (0: nothing).
        "dvc status": ([str(BIN / "dvc"), "status", "-q"], None),
        "plan: python -m workflow.plan --check": ([python, "-m", "workflow.plan", "--check"], None),
        "job start-up: import stages.evaluate": ([python, "-c", "import stages.evaluate"], None),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group()
    where.add_argument("--project", type=Path, help="a finished tiny project (skips the whole-DAG run)")
    where.add_argument("--workdir", type=Path, help="build the tiny project here (default: a temp folder)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, help="write the measurements here (JSON)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {args.repeats}")

    build: dict[str, float] = {}
    if args.project is not None:
        project = args.project.resolve()
        if not (project / "dvc.lock").is_file():
            raise SystemExit(
                f"{project}: no dvc.lock; give a finished tiny project (tests.dag_tools.run_tiny_dag)"
            )
    else:
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dag_overhead_"))
        project, build = build_project(workdir.resolve())

    commands = no_op_commands(project)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(args.repeats):
        print(f"no-op round {round_ + 1}/{args.repeats}", flush=True)
        for name, (cmd, expect) in commands.items():
            times[name].append(timed_command(cmd, project, expect))
    medians = {name: statistics.median(values) for name, values in times.items()}

    rows: list[dict[str, Any]] = [
        {"what": name, "seconds": seconds, "target_seconds": None, "met": None}
        for name, seconds in build.items()
    ]
    for name, seconds in medians.items():
        gated = not name.startswith(("job start-up", "plan:"))
        target = NO_OP_TARGET_SECONDS if gated else None
        rows.append(
            {
                "what": name,
                "seconds": seconds,
                "target_seconds": target,
                "met": None if target is None else seconds <= target,
            }
        )
    print()
    print(
        markdown_table(
            ["what", "seconds", "target", "met"],
            [
                [
                    r["what"],
                    f"{r['seconds']:.1f}",
                    "—" if r["target_seconds"] is None else f"≤ {r['target_seconds']:.0f} s",
                    "—" if r["met"] is None else ("yes" if r["met"] else "no"),
                ]
                for r in rows
            ],
        )
    )
    write_record(
        args.out,
        {
            "command": vars(args) | {k: str(v) for k, v in vars(args).items() if isinstance(v, Path)},
            "project": str(project),
            "machine": machine(torch.device("cpu")),
            "rows": rows,
            "times": times,
        },
    )


if __name__ == "__main__":
    main()
