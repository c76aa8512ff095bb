"""bench/training_throughput.py runs end to end on tiny synthetic sizes on the CPU and writes a
record of the documented structure. Timings themselves are not asserted: on a shared machine
any threshold would flake; only that every figure is a positive number and the projection adds
up. The small LAT CNN stands in for VGG-19 and ResNet-34, which are too slow for a unit test on
a loaded 2-core machine; the projection then scales every other architecture from it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench.training_throughput import MODES, main
from stages.config import Params

PARAMS = Path(__file__).resolve().parent.parent / "params.yaml"


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "training_throughput.json"
    returned = main(
        [
            "--params",
            str(PARAMS),
            "--device",
            "cpu",
            "--scale",
            "tiny",
            "--synthetic",
            "16",
            "--images",
            "16",
            "--pairs",
            "mnist_natural:mnist_standard,mnist_natural:mnist_lat",
            "--archs",
            "lat_cnn",
            "--batch",
            "4",
            "--batches",
            "1",
            "--k",
            "1",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--out",
            str(out),
        ]
    )
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(returned))
    return written


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_record_names_the_command_and_machine(record: dict[str, Any]) -> None:
    assert record["command"]["device"] == "cpu"
    assert record["command"]["scale"] == "tiny"
    assert record["machine"]["device"] == "cpu"
    assert record["gpu_utilization"].startswith("unavailable")


def test_at_ratio_rows_are_per_pair_with_the_train_attack_steps(record: dict[str, Any]) -> None:
    rows = {r["adversarial_model"]: r for r in record["at_ratio"]}
    assert set(rows) == {"mnist_standard", "mnist_lat"}
    tiny = Params.load(PARAMS, "tiny")
    for name, row in rows.items():
        assert row["natural_model"] == "mnist_natural"
        assert row["k"] == tiny.model(name).train_attack.steps
        assert positive(row["natural_epoch_s"]) and positive(row["adversarial_epoch_s"])
        expected = row["adversarial_epoch_s"] / ((row["k"] + 1) * row["natural_epoch_s"])
        assert row["at_ratio"] == pytest.approx(expected)
        assert positive(row["at_ratio"])
        assert row["meets_target"] == (row["at_ratio"] <= row["target"])
    assert rows["mnist_lat"]["train_attack"] == "lat_train_background"


def test_data_share_is_measured_once_per_natural_model(record: dict[str, Any]) -> None:
    (row,) = record["data_share"]
    assert row["natural_model"] == "mnist_natural"
    assert positive(row["data_part_s"]) and positive(row["data_share"])
    assert row["data_share"] == pytest.approx(row["data_part_s"] / row["natural_epoch_s"])
    assert positive(row["natural_cpu_cores_busy"])
    assert row["natural_gpu_utilization_percent"] is None


def test_variants_report_images_per_second_and_speedups(record: dict[str, Any]) -> None:
    variants = record["gpu_variants"]
    assert [a["arch"] for a in variants["archs"]] == ["lat_cnn"]
    assert set(variants["skipped"]) == {"compile", "cudnn_benchmark"}  # CPU, --compile auto
    for arch in variants["archs"]:
        names = [r["variant"] for r in arch["rows"]]
        assert names[:3] == ["fp32", "channels_last", "bf16_autocast"]
        assert arch["best_variant"] in names
        assert positive(arch["forward_macs_per_image"])
        for row in arch["rows"]:
            for mode in MODES:
                assert positive(row["images_per_s"][mode])
                assert positive(row["speedup"][mode])
        assert all(v == 1.0 for v in arch["rows"][0]["speedup"].values())
    assert variants["channels_last_probe"]["preserved"] in (True, False)


def test_projection_covers_every_paper_model_and_adds_up(record: dict[str, Any]) -> None:
    projection = record["projection"]
    paper = Params.load(PARAMS, "paper")
    rows = projection["rows"]
    assert [r["model"] for r in rows] == paper.model_names()
    for row in rows:
        spec = paper.model(row["model"])
        assert row["epochs"] == spec.training.total_epochs(row["train_images"])
        assert row["k"] == (spec.train_attack.steps if spec.adversarial else 0)
        assert positive(row["train_images"])
        assert positive(row["hours"]) and positive(row["hours_best_variant"])
        assert row["hours_best_variant"] <= row["hours"] * (1 + 1e-12)
    assert projection["total_hours"] == pytest.approx(sum(r["hours"] for r in rows))
    assert projection["total_hours_best_variant"] == pytest.approx(sum(r["hours_best_variant"] for r in rows))
    by_model = {r["model"]: r for r in rows}
    assert by_model["coco_ic_natural"]["train_images"] == 100_000  # Vaishnavi et al., Table 1
    assert by_model["cifar10_natural"]["basis"] == "measured"  # lat_cnn on 32x32x3, as measured
    assert by_model["mnist_natural"]["basis"].startswith("scaled")  # 28x28x1 is not
    assert by_model["coco_ic_natural"]["basis"].startswith("scaled")  # nor is VGG-19
    evaluations = projection["evaluations"]
    assert sum(r["pairs"] for r in evaluations) == len(paper.evaluations())
    assert projection["evaluations_total_hours"] == pytest.approx(sum(r["hours"] for r in evaluations))
    assert "cpu" in projection["rates_measured_on"]
