"""bench/dataset_build.py at tiny sizes: the record's structure and sanity, never its timings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.dataset_build import chunk_cap, main
from stages.data.synthetic import write_synthetic_mirror
from stages.masks.grabcut import default_workers

FAST = ["--repeats", "1", "--warmup", "0"]


def listed_coco_images(folder: Path) -> int:
    return sum(
        len(json.loads(path.read_text(encoding="utf-8"))["images"])
        for path in (folder / "annotations").glob("instances_*2017.json")
    )


def check_grabcut(record: dict[str, Any], images: int, workers: set[int]) -> None:
    part = record["grabcut"]
    assert part["images"] == images
    rows = part["rows"]
    assert rows[0]["path"] == "loop" and rows[0]["speedup"] == 1.0
    # The loop, then one pool per distinct worker count, all usable cores always among them.
    assert {r["workers"] for r in rows[1:]} == {min(w, images) for w in workers | {default_workers()}}
    assert sum(r["path"] == "pool (all cores)" for r in rows) == 1
    for r in rows:
        assert r["masks_identical"] is True
        assert r["seconds"] > 0 and r["images_per_s"] > 0
        assert r["images_per_s"] == pytest.approx(images / r["seconds"])
        assert 1 <= r["ideal"] <= min(r["workers"], default_workers())
        assert r["efficiency"] == pytest.approx(r["speedup"] / r["ideal"])
        assert 1.0 <= r["chunk_cap"] <= r["ideal"]
        assert r["fallbacks"] == rows[0]["fallbacks"]


def check_coco(record: dict[str, Any], listed: int) -> None:
    rows = {r["case"]: r for r in record["coco_ic"]["rows"]}
    assert set(rows) == {"coco_ic build", "segment6 build", "decode only"}
    assert rows["decode only"]["images_decoded"] == listed
    for r in rows.values():
        assert r["source_images"] == listed
        assert 0 < r["images_decoded"] <= listed
        assert r["seconds"] > 0 and r["decoded_per_s"] > 0 and r["listed_per_s"] > 0
        assert r["decoded_per_s"] == pytest.approx(r["images_decoded"] / r["seconds"])
    for name in ("coco_ic", "segment6"):
        assert rows[f"{name} build"]["samples"] > 0
        assert set(rows[f"{name} build"]["builder_throughput"]) >= {"train", "test"}


def test_mirrors(tmp_path: Path) -> None:
    """Official-layout mirrors, named by their root (CIFAR-10) and by the dataset folder (COCO)."""
    mirror = write_synthetic_mirror(tmp_path / "mirror", datasets=("cifar10", "coco"), n_train=5, n_test=30)
    out = tmp_path / "record.json"
    record = main(
        ["--images", "8", "--workers", "1,2", "--cifar-mirror", str(mirror)]
        + ["--coco-mirror", str(mirror / "coco"), "--out", str(out), *FAST]
    )
    assert json.loads(out.read_text(encoding="utf-8")) == json.loads(json.dumps(record))
    assert {"command", "command_line", "machine", "config_source", "grabcut", "coco_ic"} <= set(record)
    assert record["machine"]["usable_cores"] == default_workers()
    assert "params.yaml" in record["config_source"]
    assert str(mirror / "cifar10") in record["grabcut"]["image_source"]
    check_grabcut(record, images=8, workers={1, 2})
    check_coco(record, listed=listed_coco_images(mirror / "coco"))


def test_synthetic_defaults(tmp_path: Path) -> None:
    """No mirror and no params file: synthetic data and the library's default settings."""
    record = main(["--images", "4", "--coco-images", "5", "--params", str(tmp_path / "absent.yaml"), *FAST])
    assert record["config_source"].startswith("library defaults")
    assert record["grabcut"]["image_source"].startswith("synthetic")
    check_grabcut(record, images=4, workers=set())
    check_coco(record, listed=2 * 5)


@pytest.mark.parametrize(
    ("images", "workers", "chunksize", "cap"),
    [(48, 2, 16, 1.5), (64, 2, 16, 2.0), (8, 2, 16, 1.0), (50, 4, 16, 50 / 16), (5, 2, 1, 5 / 3)],
)
def test_chunk_cap(images: int, workers: int, chunksize: int, cap: float) -> None:
    assert chunk_cap(images, workers, chunksize) == pytest.approx(cap)


@pytest.mark.parametrize(
    "argv", [["--parts", "grabcut,masks"], ["--workers", "0"], ["--workers", "two"], ["--images", "0"]]
)
def test_bad_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        main([*argv, "--params", "absent.yaml", *FAST])
