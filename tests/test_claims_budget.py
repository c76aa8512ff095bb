"""stages.claims.budget: test pools and evaluation costs from tiny files written here (never the
committed results, never the raw mirror)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from stages.claims.budget import Pool, cpu_hours, evaluation_costs, pool, seconds_per_image
from stages.utils.errors import DataError


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return path


def evaluation(
    evals: Path, model: str, attack: str, samples: int, seconds: float | None, device="cpu"
) -> None:
    write(
        evals / model / f"{attack}.json",
        {"model": model, "attack": attack, "samples": samples, "accuracy": 0.5},
    )
    if seconds is not None:
        timing = {"device": device, "seconds": seconds, "images_per_s": samples / seconds if seconds else 0.0}
        write(evals / model / f"{attack}.throughput.json", timing)


# --- cost -------------------------------------------------------------------------------------


def test_seconds_per_image_is_seconds_over_the_evaluations_samples(tmp_path: Path) -> None:
    evaluation(tmp_path, "m", "natural", samples=200, seconds=50.0)
    assert seconds_per_image(tmp_path, "m", "natural") == pytest.approx(0.25)


@pytest.mark.parametrize(
    "setup",
    [
        lambda d: evaluation(d, "m", "a", samples=100, seconds=None),  # no throughput record
        lambda d: write(
            d / "m" / "a.throughput.json", {"device": "cpu", "seconds": 1.0, "images_per_s": 1.0}
        ),
        lambda d: evaluation(d, "m", "a", samples=100, seconds=10.0, device="cuda:0"),  # not this machine
        lambda d: evaluation(d, "m", "a", samples=100, seconds=0.0),  # timed nothing
    ],
    ids=["no-throughput", "no-evaluation", "other-device", "zero-seconds"],
)
def test_seconds_per_image_is_none_without_a_measurement(tmp_path: Path, setup) -> None:
    setup(tmp_path)
    assert seconds_per_image(tmp_path, "m", "a") is None


def test_seconds_per_image_on_another_device_when_asked(tmp_path: Path) -> None:
    evaluation(tmp_path, "m", "a", samples=100, seconds=10.0, device="cuda:0")
    assert seconds_per_image(tmp_path, "m", "a", device="cuda") == pytest.approx(0.1)


def test_a_timing_of_another_run_is_an_error_naming_both_files(tmp_path: Path) -> None:
    evaluation(tmp_path, "m", "a", samples=100, seconds=10.0)
    write(tmp_path / "m" / "a.throughput.json", {"device": "cpu", "seconds": 10.0, "images_per_s": 50.0})
    with pytest.raises(DataError, match=r"a\.throughput\.json: field 'images_per_s'.*a\.json's 'samples'"):
        seconds_per_image(tmp_path, "m", "a")


def test_a_malformed_throughput_record_names_file_and_field(tmp_path: Path) -> None:
    evaluation(tmp_path, "m", "a", samples=100, seconds=10.0)
    write(tmp_path / "m" / "a.throughput.json", {"device": "cpu", "seconds": "ten"})
    with pytest.raises(DataError, match=r"a\.throughput\.json: field 'seconds' is 'ten'"):
        seconds_per_image(tmp_path, "m", "a")


def test_cpu_hours_sums_the_evaluations() -> None:
    assert cpu_hours(3600, [0.5, 1.5]) == pytest.approx(2.0)
    assert cpu_hours(0, [3.0]) == 0.0
    assert cpu_hours(100, []) == 0.0
    with pytest.raises(ValueError, match="n_images"):
        cpu_hours(-1, [1.0])
    with pytest.raises(ValueError, match="seconds per image"):
        cpu_hours(10, [float("nan")])


def test_evaluation_costs_lists_every_measured_evaluation(tmp_path: Path) -> None:
    evaluation(tmp_path, "m1", "natural", samples=500, seconds=1.0)
    evaluation(tmp_path, "m1", "pgd", samples=500, seconds=100.0)
    evaluation(tmp_path, "m2", "de", samples=30, seconds=60.0)
    evaluation(tmp_path, "m2", "untimed", samples=30, seconds=None)
    assert evaluation_costs(tmp_path) == pytest.approx(
        {("m1", "natural"): 0.002, ("m1", "pgd"): 0.2, ("m2", "de"): 2.0}
    )
    assert evaluation_costs(tmp_path / "absent") == {}


# --- pool -------------------------------------------------------------------------------------

PARAMS = {
    "scale": "reduced",
    "datasets": {
        "cifar10_grabcut": {
            "options": {"grabcut": {"test_masks": {"tiny": 64, "reduced": 500, "paper": 500}}}
        },
        "segment6": {"options": {"max_per_class_test": 200}},
        "coco_ic": {"options": {"max_per_class_test": 5}},
        "gtsrb_ic": {"options": {"per_class_cap": {"tiny": 5, "reduced": None, "paper": None}}},
    },
    "samples": {
        "mnist": {"test": {"tiny": 128, "reduced": 500, "paper": "all"}},
        "cifar10_grabcut": {"test": {"tiny": 64, "reduced": 200, "paper": "all"}},
        "segment6": {"test": "all"},
    },
}


def coco_like(samples: int, class_cap_drops: int, classes: int) -> dict[str, Any]:
    test = {
        "samples": samples,
        "source_images": 169,
        "source_split": "val2017",
        "drops": {"class_cap": class_cap_drops, "too_small": 7},
    }
    per_class = {f"c{i}": 1 for i in range(classes)}
    return {
        "builder": "coco_ic",
        "splits": {"test": test},
        "test_summary": {"samples": samples, "per_class": per_class},
    }


@pytest.fixture
def datasets(tmp_path: Path) -> Path:
    d = tmp_path / "reduced" / "datasets"
    write(d / "mnist.json", {"builder": "mnist", "test_summary": {"samples": 10000}})
    write(d / "cifar10.json", {"builder": "cifar10", "test_summary": {"samples": 10000}})
    write(
        d / "cifar10_grabcut.json",
        {"builder": "cifar10", "test": {"masked": 500}, "test_summary": {"samples": 500}},
    )
    write(d / "segment6.json", coco_like(34, 0, 6))
    write(d / "coco_ic.json", coco_like(50, 12, 10))
    write(
        d / "gtsrb_ic.json",
        {"builder": "gtsrb_ic", "test_source": "official Final_Test", "test_summary": {"samples": 1290}},
    )
    return d


def test_a_whole_official_split(datasets: Path) -> None:
    got = pool(datasets, "mnist", PARAMS)
    assert (got.prepared, got.available) == (10000, 10000)
    assert "MNIST's test split holds 10,000 images" in got.limit
    assert "evaluations use the first 500 (params.yaml samples.mnist.test)" in got.limit


def test_grabcut_masks_bound_cifar10s_pool_and_the_split_comes_from_its_sibling(datasets: Path) -> None:
    got = pool(datasets, "cifar10_grabcut", PARAMS)
    assert got == Pool("cifar10_grabcut", 500, 10000, got.limit)
    assert "GrabCut masks for 500 of CIFAR-10's 10,000 test images" in got.limit
    assert "datasets.cifar10_grabcut.options.grabcut.test_masks = 500" in got.limit  # the reduced entry
    assert "evaluations use the first 200" in got.limit


def test_grabcut_without_the_whole_split_beside_it_is_unknown(datasets: Path) -> None:
    (datasets / "cifar10.json").unlink()
    assert pool(datasets, "cifar10_grabcut").available is None


def test_segment6_has_what_the_mirror_holds(datasets: Path) -> None:
    got = pool(datasets, "segment6", PARAMS)
    assert (got.prepared, got.available) == (34, 34)
    assert got.limit.startswith("Segment-6 has 34 test images in all")
    assert "max_per_class_test = 200) drops 0" in got.limit
    assert "evaluations use all of them" in got.limit


def test_a_per_class_cap_leaves_usable_crops_out(datasets: Path) -> None:
    got = pool(datasets, "coco_ic", PARAMS)
    assert (got.prepared, got.available) == (50, 62)
    assert "max_per_class_test = 5) drops 12" in got.limit


def test_gtsrb_needs_params_to_prove_no_cap(datasets: Path) -> None:
    assert pool(datasets, "gtsrb_ic", PARAMS).available == 1290
    assert pool(datasets, "gtsrb_ic").available is None
    capped = {"scale": "tiny", "datasets": PARAMS["datasets"]}
    got = pool(datasets, "gtsrb_ic", capped)
    assert got.available is None and "capped at 5 per class" in got.limit


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({"builder": "mnist"}, "test_summary.samples"),
        ({"builder": "mnist", "test_summary": {"samples": "many"}}, "test_summary.samples"),
        ({"builder": "mnist", "test_summary": {"samples": -3}}, "test_summary.samples"),
        ({"test_summary": {"samples": 10}}, "builder"),
        ({"builder": "cifar10", "test": {}, "test_summary": {"samples": 10}}, "test.masked"),
        ({**coco_like(34, 0, 6), "splits": {"test": {"samples": 34}}}, "splits.test.drops.class_cap"),
    ],
)
def test_a_malformed_dataset_file_names_file_and_field(datasets: Path, content: dict, field: str) -> None:
    path = write(datasets / "broken.json", content)
    with pytest.raises(DataError, match=re.escape(f"{path}: field '{field}'")):
        pool(datasets, "broken")


def test_an_unreadable_or_absent_dataset_file_is_named(datasets: Path) -> None:
    path = write(datasets / "broken.json", "{not json")
    with pytest.raises(DataError, match=re.escape(f"{path}: not valid JSON")):
        pool(datasets, "broken")
    with pytest.raises(DataError, match=r"absent\.json: dataset statistics missing"):
        pool(datasets, "absent")
