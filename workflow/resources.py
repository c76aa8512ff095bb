"""What each rule's jobs should ask a scheduler for, from what its jobs took: the wall time and
peak memory Snakemake records for every job (``benchmark:``, benchmarks/<scale>/<rule>/*.tsv).

    uv run python -m workflow.resources benchmarks/tiny

prints, per rule, the number of jobs, the slowest job's wall time, the largest peak RSS, and
the request the formula below gives; params.yaml's ``resources`` section holds the requests
(per scale) and says where each number came from. The formula leaves room for a busier or
slower node than the one measured: ``runtime`` is ``RUNTIME_FACTOR`` times the slowest job,
rounded up to whole minutes (at least ``MIN_RUNTIME``), ``mem_mb`` ``MEMORY_FACTOR`` times the
largest RSS plus ``JOB_OVERHEAD_MB``, rounded up to ``MEMORY_STEP``. The overhead is what a
cluster job holds besides the stage: SLURM counts every process of the job, and the job also
runs its own Snakemake, a shell and `tee`; on the local test cluster a 1,100 MB limit killed a
tiny evaluation whose stage peaked at 730 MB.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path

RUNTIME_FACTOR = 3.0
MIN_RUNTIME = 5  # minutes: a scheduler's start-up and a cold file cache cost a minute or two
MEMORY_FACTOR = 1.5
MEMORY_STEP = 100  # MB
JOB_OVERHEAD_MB = 1000


@dataclass(frozen=True)
class RuleUsage:
    rule: str
    jobs: int
    max_seconds: float
    max_rss_mb: float

    @property
    def runtime(self) -> int:
        """The wall-time request in minutes."""
        return max(MIN_RUNTIME, math.ceil(RUNTIME_FACTOR * self.max_seconds / 60))

    @property
    def mem_mb(self) -> int:
        return MEMORY_STEP * math.ceil((MEMORY_FACTOR * self.max_rss_mb + JOB_OVERHEAD_MB) / MEMORY_STEP)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def usage(folder: Path) -> list[RuleUsage]:
    """One record per rule folder under ``folder`` (benchmarks/<scale>) that holds job records."""
    found = []
    for rule_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        rows = [row for tsv in sorted(rule_dir.glob("*.tsv")) for row in _rows(tsv)]
        if not rows:
            continue
        # Snakemake writes "NA" for what it could not measure (e.g. a job too short to sample).
        seconds = [float(r["s"]) for r in rows if r.get("s") not in (None, "", "NA")]
        rss = [float(r["max_rss"]) for r in rows if r.get("max_rss") not in (None, "", "NA")]
        found.append(RuleUsage(rule_dir.name, len(rows), max(seconds, default=0.0), max(rss, default=0.0)))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a scale's benchmark records, e.g. benchmarks/tiny")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(
            f"error: {args.folder}: no such folder; run the pipeline at that scale first "
            "(every job writes benchmarks/<scale>/<rule>/<job>.tsv)",
            file=sys.stderr,
        )
        return 2
    records = usage(args.folder)
    if not records:
        print(f"error: {args.folder}: no job records (*.tsv) under its rule folders", file=sys.stderr)
        return 2
    print("| rule | jobs | slowest job (s) | largest RSS (MB) | runtime (min) | mem_mb |")
    print("|---|---|---|---|---|---|")
    for r in records:
        row = (r.rule, r.jobs, f"{r.max_seconds:.1f}", f"{r.max_rss_mb:.0f}", r.runtime, r.mem_mb)
        print("| " + " | ".join(map(str, row)) + " |")
    print(
        f"\nruntime = max({MIN_RUNTIME}, ceil({RUNTIME_FACTOR:g} x slowest / 60)); "
        f"mem_mb = {MEMORY_STEP} x ceil(({MEMORY_FACTOR:g} x largest RSS + {JOB_OVERHEAD_MB}) "
        f"/ {MEMORY_STEP})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
