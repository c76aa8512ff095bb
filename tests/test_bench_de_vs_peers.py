"""bench/de_vs_peers.py runs end to end on a tiny model and split, and its record is consistent.

No timing threshold is asserted (timed tests flake on a shared machine); the script's numbers
are reported in docs/benchmarks.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import de_vs_peers
from stages.data.processed import ProcessedSplit, save_split
from stages.models.registry import arch_record, build_model, make_arch

SIZE, CHANNELS, CLASSES, IMAGES = 32, 3, 10, 3


@pytest.fixture(scope="module")
def model_and_split(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An untrained LAT CNN and a split labelled with the model's own predictions, so every
    image counts as correctly classified and the attack has something to flip."""
    root = tmp_path_factory.mktemp("bench_de")
    torch.manual_seed(0)
    arch = make_arch("lat_cnn", "lat_cnn", {}, "test")
    model = build_model(arch, CHANNELS, SIZE, CLASSES).eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (IMAGES, SIZE, SIZE, CHANNELS), dtype=np.uint8)
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
        labels = model(x).argmax(dim=1).numpy().astype(np.int64)
    masks = np.zeros((IMAGES, SIZE, SIZE), dtype=bool)
    masks[:, 8:24, 8:24] = True
    data = root / "test.npz"
    save_split(
        data,
        ProcessedSplit(
            images, labels, np.array([str(i) for i in range(IMAGES)]), masks, {"num_classes": CLASSES}
        ),
    )
    weights = root / "model.pt"
    torch.save(
        {
            "arch": arch_record(arch),
            "input": "natural",
            "state_dict": model.state_dict(),
            "input_shape": [SIZE, SIZE, CHANNELS],
            "num_classes": CLASSES,
        },
        weights,
    )
    return weights, data


def run(tmp_path: Path, model_and_split: tuple[Path, Path], *extra: str) -> dict:
    weights, data = model_and_split
    out = tmp_path / "record.json"
    de_vs_peers.main(
        [
            "--weights", str(weights), "--data", str(data), "--images", str(IMAGES),
            "--population", "8", "--generations", "2", "--out", str(out), *extra,
        ]
    )  # fmt: skip
    return json.loads(out.read_text())


def test_record_compares_ours_with_scipy_on_the_same_images(tmp_path, model_and_split):
    record = run(tmp_path, model_and_split, "--peers", "scipy")
    ours, scipy_row = record["rows"]
    assert (ours["peer"], scipy_row["peer"]) == ("backdrop", "scipy")
    assert ours["images"] == scipy_row["images"] == IMAGES
    # Efficiency is the share of ours' time inside the model's forward passes; peers have none.
    assert 0.0 < ours["efficiency"] <= 1.0
    assert scipy_row["efficiency"] is None
    assert ours["speedup_ours_over_peer"] == 1.0
    for row in (ours, scipy_row):
        assert 0.0 <= row["success_rate"] <= 1.0
        assert row["mean_queries"] > 0
    for run_record in record["runs"]:
        assert len(run_record["success"]) == len(run_record["queries"]) == IMAGES
    # A failed image costs exactly population x (generations + 1) of ours' queries.
    for success, queries in zip(record["runs"][0]["success"], record["runs"][0]["queries"], strict=True):
        assert success or queries == 8 * 3


def test_region_runs_ours_only(tmp_path, model_and_split):
    record = run(tmp_path, model_and_split, "--peers", "", "--region", "background")
    assert [row["peer"] for row in record["rows"]] == ["backdrop"]
    with pytest.raises(SystemExit, match="whole images only"):
        run(tmp_path, model_and_split, "--peers", "scipy", "--region", "foreground")
