"""Smoke and property test of bench/attack_overhead.py on an untrained model and a tiny split.

No assertion is made on a time or a ratio's size: timings on a shared machine flake. The test
checks the record's structure, that its numbers are sane, that ours' robust accuracy is what
calling :func:`stages.attacks.pgd.pgd` directly gives, and that every attack's output stays in
its budget.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bench import attack_overhead as bench
from bench.common import REPO_ROOT, predict
from stages.attacks.pgd import pgd
from stages.attacks.threats import make_threat
from stages.config import Params
from stages.data.processed import ProcessedSplit, load_split, save_split
from stages.masks.regions import eps_matrix

N, SIZE, CHANNELS, CLASSES = 12, 16, 3, 3
BATCH = 5  # does not divide N: the last accuracy batch is a short one
SEED = 3


@pytest.fixture(scope="module")
def split_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(N, SIZE, SIZE, CHANNELS), dtype=np.uint8)
    masks = np.zeros((N, SIZE, SIZE), dtype=bool)
    for i in range(N):  # a different object box per image, so masks are not all alike
        top, left = rng.integers(0, SIZE // 2, size=2)
        masks[i, top : top + SIZE // 2, left : left + SIZE // 2] = True
    split = ProcessedSplit(
        images=images,
        labels=rng.integers(0, CLASSES, size=N).astype(np.int64),
        ids=np.array([f"synthetic/{i}" for i in range(N)]),
        masks=masks,
        meta={"dataset": "synthetic", "num_classes": CLASSES, "classes": ["a", "b", "c"]},
    )
    path = tmp_path_factory.mktemp("split") / "test.npz"
    save_split(path, split)
    return path


@pytest.fixture(scope="module")
def run(split_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, Path]:
    out = tmp_path_factory.mktemp("out")
    threads = torch.get_num_threads()  # --threads sets it for the whole process: restored below
    try:
        record = bench.main(
            [
                "--data",
                str(split_path),
                "--scale",
                "tiny",
                "--threads",
                "1",
                "--batch",
                str(BATCH),
                "--images",
                str(N),
                "--repeats",
                "1",
                "--seed",
                str(SEED),
                "--out",
                str(out / "record.json"),
                "--examples",
                str(out / "examples.pt"),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    return record, out / "record.json", out / "examples.pt"


def test_record_structure_and_sanity(run: tuple[dict[str, Any], Path, Path]) -> None:
    record, json_path, _ = run
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(record))
    assert {"command", "machine", "settings", "rows", "median_seconds", "budget_excess", "notes"} <= set(
        record
    )
    assert record["settings"]["trained"] is False
    assert record["settings"]["localized_region"] == "foreground"
    for seconds in record["median_seconds"].values():
        assert seconds > 0 and math.isfinite(seconds)

    rows = record["rows"]
    assert len({row["measurement"] for row in rows}) == len(rows)
    ratios = [row for row in rows if row["kind"] in ("overhead", "speed")]
    assert {row["numerator"] for row in ratios} == {
        "pgd",
        "pgd_localized",
        "dual",
        "dual_salience",
        "reference_objective",
        "torchattacks",
        "art",
    }
    for row in ratios:
        assert row["value"] == pytest.approx(
            record["median_seconds"][row["numerator"]] / record["median_seconds"][row["denominator"]]
        )
        assert row["value"] > 0 and math.isfinite(row["value"])
        assert isinstance(row["met"], bool) == (row["target"] != "-")

    accuracies = [row for row in rows if row["kind"] == "accuracy"]
    assert len(accuracies) == 3  # ours, torchattacks, ART
    for row in accuracies:
        assert 0.0 <= row["value"] <= 1.0
    differences = [row for row in rows if row["kind"] == "agreement"]
    assert len(differences) == 2
    for row in differences:
        assert row["met"] is None and row["note"] == bench.UNTRAINED  # untrained: no verdict
        assert row["se"] >= 0.0 and -100.0 <= row["value"] <= 100.0
    for name, correct in record["robust_correct"].items():
        assert len(correct) == N, name


def test_ours_robust_accuracy_is_plain_pgd(split_path: Path, run: tuple[dict[str, Any], Path, Path]) -> None:
    record, _, _ = run
    params = Params.load(REPO_ROOT / "params.yaml", "tiny")
    spec = params.attack(bench.DEFAULT_ATTACK)
    model = bench.untrained_model(params, bench.DEFAULT_ARCH, CHANNELS, SIZE, CLASSES, SEED)
    batch = bench.first_images(load_split(split_path), N, torch.device("cpu"))
    generator = torch.Generator().manual_seed(SEED)
    adversarial = torch.cat(
        [
            pgd(
                model,
                x,
                y,
                make_threat("linf", spec.eps),
                steps=spec.steps,
                step_size=spec.step_size,
                random_start=True,
                generator=generator,
            )
            for x, y in zip(batch.x.split(BATCH), batch.y.split(BATCH), strict=True)
        ]
    )
    correct = (predict(model, adversarial) == batch.y).tolist()
    assert record["robust_correct"]["pgd"] == correct
    (ours,) = [row for row in record["rows"] if row["measurement"] == f"robust accuracy, pgd ({N} images)"]
    assert ours["value"] == pytest.approx(sum(correct) / N)


def test_every_output_stays_in_its_budget(run: tuple[dict[str, Any], Path, Path]) -> None:
    record, _, examples_path = run
    assert all(value <= bench.BUDGET_TOLERANCE for value in record["budget_excess"].values())
    examples = torch.load(examples_path, weights_only=True)
    eps = examples["eps"]
    tol = bench.BUDGET_TOLERANCE

    x = examples["accuracy"]["x"]
    assert set(examples["accuracy"]["adversarial"]) == {"pgd", "torchattacks", "art"}
    for adv in examples["accuracy"]["adversarial"].values():
        assert adv.shape == x.shape
        assert float((adv - x).abs().max()) <= eps + tol
        assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0

    x = examples["timing"]["x"]
    outputs = examples["timing"]["outputs"]
    assert set(outputs) == {"pgd", "pgd_localized", "dual", "dual_salience", "torchattacks", "art"}
    for name, adv in outputs.items():
        bound = examples["timing"]["bounds"][name]
        assert bool(((adv - x).abs() <= bound + tol).all()), name
        assert float(adv.min()) >= 0.0 and float(adv.max()) <= 1.0
    # Localized: pixels outside the region are bit-identical to the clean ones.
    outside = examples["timing"]["bounds"]["pgd_localized"] == 0
    assert bool((outputs["pgd_localized"] == x)[outside.expand_as(x)].all())
    # The dual attack's bound is eps_F on the masks, eps_B elsewhere: the masks drove it.
    params = Params.load(REPO_ROOT / "params.yaml", "tiny")
    dual = params.attack(bench.DEFAULT_DUAL_ATTACK)
    masks = torch.from_numpy(np.load(record["settings"]["data"])["masks"][:BATCH]).unsqueeze(1)
    expected = eps_matrix(masks, dual.eps_foreground) + eps_matrix(~masks, dual.eps_background)
    assert torch.equal(examples["timing"]["bounds"]["dual"], expected)


def test_rejects_unknown_peer(split_path: Path) -> None:
    with pytest.raises(SystemExit, match="unknown peers"):
        bench.main(["--data", str(split_path), "--peers", "cleverhans"])
