"""workflow.resources: the scheduler requests params.yaml's `resources` are derived from, out of
the job records Snakemake writes (benchmarks/<scale>/<rule>/<job>.tsv)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workflow.resources import JOB_OVERHEAD_MB, MIN_RUNTIME, main, usage

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def record(folder: Path, rule: str, job: str, seconds: str, rss: str) -> None:
    path = folder / rule / f"{job}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t0\n")


def test_requests_cover_the_slowest_job_and_the_largest_memory_of_each_rule(tmp_path: Path) -> None:
    record(tmp_path, "train", "a", "100.0", "800.0")
    record(tmp_path, "train", "b", "1200.5", "1000.0")  # 20 min, 1 GB
    record(tmp_path, "evaluate", "a", "3.0", "NA")  # too short for Snakemake to sample memory
    found = {r.rule: r for r in usage(tmp_path)}
    train = found["train"]
    assert (train.jobs, train.max_seconds, train.max_rss_mb) == (2, 1200.5, 1000.0)
    assert train.runtime == 61 and train.runtime * 60 >= 3 * 1200.5  # 3x, whole minutes
    assert train.mem_mb == 2500 and train.mem_mb >= 1.5 * 1000 + JOB_OVERHEAD_MB
    assert found["evaluate"].runtime == MIN_RUNTIME and found["evaluate"].max_rss_mb == 0.0


def test_a_folder_without_records_says_what_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "benchmarks" / "paper")]) == 2
    assert "run the pipeline at that scale first" in capsys.readouterr().err
    record(tmp_path, "train", "a", "60", "500")
    assert main([str(tmp_path)]) == 0
    assert "| train | 1 | 60.0 | 500 | 5 | 1800 |" in capsys.readouterr().out
