"""What the run cost, from Snakemake's per-job benchmark files (``benchmark:`` of every rule:
``benchmarks/<rule>/<job>.tsv``, one row per run of the job: wall seconds ``s``, peak resident
memory ``max_rss`` in MB, ``cpu_time`` in seconds, ...). The report's provenance section shows
the summary; DVC runs write no benchmark files, and then the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from stages.utils.errors import DataError

# The columns Snakemake's benchmark directive writes that the summary reads.
COLUMNS = ("s", "max_rss", "cpu_time")


@dataclass(frozen=True)
class JobBenchmark:
    rule: str
    job: str
    wall_s: float
    cpu_s: float
    max_rss_mb: float | None  # absent when the job ended before the first memory sample


@dataclass(frozen=True)
class BenchmarkSummary:
    jobs: int
    wall_s: float  # summed over jobs (jobs may have run side by side)
    cpu_s: float
    peak_rss: JobBenchmark | None
    slowest: tuple[JobBenchmark, ...]
    by_rule: dict[str, tuple[int, float, float]]  # rule -> (jobs, wall s, cpu s)


def _number(value: object) -> float | None:
    number = pd.to_numeric(value, errors="coerce")  # Snakemake writes "NA" for a missing sample
    return None if pd.isna(number) else float(number)


def read_benchmarks(folder: Path) -> list[JobBenchmark]:
    """One record per benchmark file under ``folder`` (the last row: the latest run)."""
    records = []
    for path in sorted(Path(folder).glob("*/*.tsv")):
        try:
            frame = pd.read_csv(path, sep="\t")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(
                f"{path}: not a Snakemake benchmark file ({exc}); delete it and rerun its job"
            ) from None
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing or frame.empty:
            raise DataError(
                f"{path}: benchmark file without {', '.join(missing) or 'rows'}; delete it and rerun its job"
            )
        row = frame.iloc[-1]
        records.append(
            JobBenchmark(
                rule=path.parent.name,
                job=path.stem,
                wall_s=_number(row["s"]) or 0.0,
                cpu_s=_number(row["cpu_time"]) or 0.0,
                max_rss_mb=_number(row["max_rss"]),
            )
        )
    return records


def summarise(records: list[JobBenchmark], top: int = 10) -> BenchmarkSummary:
    by_rule: dict[str, tuple[int, float, float]] = {}
    for r in records:
        jobs, wall, cpu = by_rule.get(r.rule, (0, 0.0, 0.0))
        by_rule[r.rule] = (jobs + 1, wall + r.wall_s, cpu + r.cpu_s)
    with_memory = [r for r in records if r.max_rss_mb is not None]
    return BenchmarkSummary(
        jobs=len(records),
        wall_s=sum(r.wall_s for r in records),
        cpu_s=sum(r.cpu_s for r in records),
        peak_rss=max(with_memory, key=lambda r: (r.max_rss_mb, r.rule, r.job)) if with_memory else None,
        slowest=tuple(sorted(records, key=lambda r: (-r.wall_s, r.rule, r.job))[:top]),
        by_rule=dict(sorted(by_rule.items(), key=lambda item: -item[1][1])),
    )


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def benchmark_lines(folder: Path | None) -> list[str]:
    """Markdown lines for the report's provenance section."""
    records = read_benchmarks(folder) if folder is not None and Path(folder).is_dir() else []
    if not records:
        return [
            "- Run time: no Snakemake benchmark files (`benchmarks/<rule>/<job>.tsv`); a `dvc repro` "
            "run records none"
        ]
    s = summarise(records)
    lines = [
        f"- Run time ({s.jobs} jobs with a Snakemake benchmark file under `{folder}`): "
        f"{_hours(s.wall_s)} of job wall time, {_hours(s.cpu_s)} of CPU time, summed over jobs "
        "(CPU time as Snakemake samples it, which can miss short-lived child processes)",
    ]
    if s.peak_rss is not None:
        lines.append(
            f"- Peak memory: {s.peak_rss.max_rss_mb:.0f} MB resident ({s.peak_rss.rule} `{s.peak_rss.job}`)"
        )
    lines += ["", "| rule | jobs | wall time | CPU time |", "|---|---:|---:|---:|"]
    lines += [f"| {rule} | {n} | {_hours(w)} | {_hours(c)} |" for rule, (n, w, c) in s.by_rule.items()]
    lines += ["", "| slowest jobs | wall s | CPU s | peak MB |", "|---|---:|---:|---:|"]
    lines += [
        f"| {r.rule} `{r.job}` | {r.wall_s:.1f} | {r.cpu_s:.1f} | "
        f"{'n/a' if r.max_rss_mb is None else f'{r.max_rss_mb:.0f}'} |"
        for r in s.slowest
    ]
    return lines
