"""The report's run-time summary from Snakemake's benchmark files (stages/report/benchmarks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.report.benchmarks import benchmark_lines, read_benchmarks, summarise
from stages.utils.errors import DataError

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write(folder: Path, rule: str, job: str, *rows: tuple[float, str, float]) -> None:
    path = folder / rule / f"{job}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{s}\t0:00:00\t{rss}\t1\t1\t1\t0\t0\t0\t{cpu}\n" for s, rss, cpu in rows)
    path.write_text(HEADER + body)


def test_the_summary_sums_jobs_ranks_the_slowest_and_finds_the_peak(tmp_path: Path) -> None:
    write(tmp_path, "train", "m1", (100.0, "900", 180.0))
    write(tmp_path, "evaluate", "m1-pgd", (5.0, "300", 4.0), (7.5, "350", 6.0))  # two runs: the last
    write(tmp_path, "evaluate", "m1-de", (40.0, "NA", 39.0))  # no memory sample
    records = read_benchmarks(tmp_path)
    assert {(r.rule, r.job) for r in records} == {
        ("train", "m1"),
        ("evaluate", "m1-pgd"),
        ("evaluate", "m1-de"),
    }
    summary = summarise(records, top=2)
    assert summary.jobs == 3
    assert summary.wall_s == pytest.approx(100 + 7.5 + 40)
    assert summary.cpu_s == pytest.approx(180 + 6 + 39)
    assert [(r.rule, r.job) for r in summary.slowest] == [("train", "m1"), ("evaluate", "m1-de")]
    assert summary.peak_rss is not None and summary.peak_rss.job == "m1"
    assert summary.by_rule["evaluate"] == (2, pytest.approx(47.5), pytest.approx(45.0))
    text = "\n".join(benchmark_lines(tmp_path))
    assert "3 jobs" in text and "| train | 1 |" in text and "| evaluate `m1-de` | 40.0 | 39.0 | n/a |" in text


def test_no_benchmark_files_is_said_not_hidden(tmp_path: Path) -> None:
    assert "no Snakemake benchmark files" in benchmark_lines(tmp_path / "absent")[0]
    assert "no Snakemake benchmark files" in benchmark_lines(None)[0]


def test_a_damaged_benchmark_file_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "train" / "m1.tsv"
    path.parent.mkdir()
    path.write_text("wall\n1\n")
    with pytest.raises(DataError, match=r"train/m1\.tsv: benchmark file without s, max_rss, cpu_time"):
        read_benchmarks(tmp_path)
