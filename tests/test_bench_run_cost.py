"""bench/run_cost.py: every job of the plan in exactly one experiment, shared jobs in the first
experiment that needs them, and the benchmark records summed per experiment."""

from __future__ import annotations

import json
from pathlib import Path

from bench.run_cost import DATA, EXPERIMENTS, OTHER, attribute, costs, main, render, upstream
from stages.report.benchmarks import read_benchmarks
from tests.dag_tools import REPO
from workflow.lease import local_jobs
from workflow.plan import Plan


def test_every_job_is_counted_once_and_data_jobs_have_their_own_row(tiny_plan: Plan) -> None:
    groups = attribute(tiny_plan)
    assert list(groups) == [DATA, *EXPERIMENTS.values(), OTHER]
    names = [job.name for jobs in groups.values() for job in jobs]
    assert sorted(names) == sorted(job.name for job in tiny_plan.jobs)
    assert {job.name for job in groups[DATA]} == {job.name for job in local_jobs(tiny_plan)}
    lat = {job.name for job in groups["lat"]}
    assert {"lat_table", "train-mnist_lat", "evaluate-mnist_lat-lat_background"} <= lat
    # The robustness matrix attacks the LAT models too: they stay in the LAT row.
    matrix = {job.name for job in groups["robustness_matrix"]}
    assert "matrix_table" in matrix and "train-mnist_lat" not in matrix
    assert {job.rule for job in groups[OTHER]} <= {"dual_gradients", "build_report"}


def test_upstream_follows_inputs_to_the_raw_copies(tiny_plan: Plan) -> None:
    table = tiny_plan.jobs_of("lat_table")[0]
    rules = {job.rule for job in upstream(tiny_plan, table)}
    assert {"lat_table", "evaluate", "train", "prepare", "fetch_raw"} <= rules
    assert "dual_table" not in rules


def _record(folder: Path, rule: str, job: str, wall: float, cpu: float) -> None:
    (folder / rule).mkdir(parents=True, exist_ok=True)
    (folder / rule / f"{job}.tsv").write_text(f"s\th:m:s\tmax_rss\tcpu_time\n{wall}\t0:00:01\t100\t{cpu}\n")


def test_records_are_summed_per_experiment_and_missing_ones_are_counted(
    tiny_plan: Plan, tmp_path: Path
) -> None:
    folder = tmp_path / "benchmarks" / "tiny"
    _record(folder, "train", "mnist_lat", 30.0, 50.0)
    _record(folder, "evaluate", "mnist_lat-lat_background", 10.0, 12.0)
    _record(folder, "prepare", "mnist", 5.0, 4.0)
    rows = {row.experiment: row for row in costs(tiny_plan, read_benchmarks(folder))}
    assert rows["lat"].recorded == 2 and rows["lat"].wall_s == 40.0 and rows["lat"].cpu_s == 62.0
    assert rows["lat"].from_throughput == 0
    assert rows["lat"].longest == "train/mnist_lat" and rows["lat"].jobs > rows["lat"].recorded
    assert rows[DATA].wall_s == 5.0 and rows["pixel_space"].recorded == 0
    table = render(list(rows.values()))
    assert (
        f"| lat | {rows['lat'].jobs} (2 + 0) |" in table
        and "| **all** | " in table
        and "`train/mnist_lat` 30 s" in table
    )
    out = tmp_path / "cost.json"
    assert (
        main(
            [
                "--params",
                str(REPO / "params.yaml"),
                "--scale",
                "tiny",
                "--benchmarks",
                str(tmp_path / "benchmarks"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert out.is_file()
    assert (
        main(
            ["--params", str(REPO / "params.yaml"), "--scale", "tiny", "--benchmarks", str(tmp_path / "none")]
        )
        == 2
    )


def test_a_job_without_a_benchmark_record_is_timed_by_its_throughput_record(
    tiny_plan: Plan, tmp_path: Path
) -> None:
    """Records lost with a recreated checkout: the training's ``train_seconds`` and the
    evaluation's ``seconds`` stand in, with no CPU time; other outputs are not read."""
    folder = tmp_path / "benchmarks" / "tiny"
    _record(folder, "evaluate", "mnist_lat-lat_background", 10.0, 12.0)
    train = next(job for job in tiny_plan.jobs if job.name == "train-mnist_lat")
    evaluate = next(job for job in tiny_plan.jobs if job.name == "evaluate-mnist_lat-lat_background")
    for job, record in ((train, {"train_seconds": 300.5}), (evaluate, {"seconds": 999.0})):
        path = tmp_path / job.outputs["throughput"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    lat = next(
        row for row in costs(tiny_plan, read_benchmarks(folder), root=tmp_path) if row.experiment == "lat"
    )
    # The evaluation's benchmark record wins over its throughput record.
    assert (lat.recorded, lat.from_throughput) == (1, 1)
    assert lat.wall_s == 310.5 and lat.cpu_s == 12.0
    assert (lat.longest, lat.longest_s) == ("train/mnist_lat", 300.5)
