"""Automatic GrabCut masks: object recovery, fallbacks, determinism, GTSRB-IC and CIFAR-10 builders."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from stages.data.cifar_grabcut import (
    CifarGrabCutConfig,
    cifar_grabcut_masks,
    cifar_grabcut_split,
    grabcut_vs_ground_truth,
)
from stages.data.gtsrb_ic import GtsrbIcConfig, build_gtsrb_ic
from stages.data.processed import ProcessedSplit
from stages.data.sources import GTSRB_TEST_DIR
from stages.data.synthetic import write_synthetic_mirror
from stages.masks.grabcut import (
    CHUNKS_PER_WORKER,
    GrabCutConfig,
    RectJob,
    SeedConfig,
    SeededJob,
    grabcut_rect,
    iou,
    iou_batch,
    masks_parallel,
    pool_plan,
    segment_seeded,
)

CFG = GrabCutConfig()
GTSRB_CLASSES = 3


def disk_image(seed: int, size: int = 32, radius: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """A saturated disk on a grey textured background, and the disk's true mask."""
    rng = np.random.default_rng(seed)
    img = rng.integers(70, 150, (size, size, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size]
    truth = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2) <= radius * size
    img[truth] = rng.integers(0, 256, 3).astype(np.uint8) // 4 + np.array([190, 0, 0], np.uint8)
    return img, truth


@pytest.fixture(scope="module")
def gtsrb_mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_mirror(
        tmp_path_factory.mktemp("gc_mirror"), seed=3, n_train=12, n_test=6, datasets=("gtsrb",),
        gtsrb_classes=GTSRB_CLASSES,
    )  # fmt: skip


def test_iou_basics() -> None:
    a = np.zeros((4, 4), bool)
    b = a.copy()
    assert iou(a, b) == 1.0  # both empty: they agree
    a[:2] = True
    b[1:3] = True
    assert iou(a, b) == pytest.approx(4 / 12)
    assert iou(a, a) == 1.0 and iou(a, ~a) == 0.0
    np.testing.assert_allclose(iou_batch(np.stack([a, a]), np.stack([b, a])), [4 / 12, 1.0])
    with pytest.raises(ValueError):
        iou(a, np.zeros((3, 3), bool))


def test_rect_recovers_a_clear_object() -> None:
    for seed in range(3):
        img, truth = disk_image(seed)
        mask, fell_back = grabcut_rect(img, CFG)
        assert mask.shape == truth.shape and mask.dtype == np.bool_
        assert not fell_back
        assert iou(mask, truth) > 0.8


def test_seeded_centre_recovers_a_clear_object() -> None:
    img, truth = disk_image(7)
    mask, fell_back = segment_seeded(img, None, CFG, SeedConfig(method="centre"))
    assert not fell_back and iou(mask, truth) > 0.8


def test_flat_image_falls_back_and_is_counted() -> None:
    flat = np.full((32, 32, 3), 128, np.uint8)
    mask, fell_back = grabcut_rect(flat, CFG)
    assert fell_back
    assert 0.5 < mask.mean() < 0.9  # the centred rectangle
    images = np.stack([flat, disk_image(0)[0], flat])
    masks, stats = cifar_grabcut_masks(images, CifarGrabCutConfig(), workers=1, progress=False)
    assert masks.shape == (3, 32, 32) and masks.dtype == np.bool_
    assert stats["fallbacks"] == 2 and stats["masked"] == 3


def test_deterministic_and_independent_of_workers() -> None:
    images = [disk_image(s, size=24 + 4 * s)[0] for s in range(5)]
    first = masks_parallel(images, RectJob(CFG), workers=1, progress=False)
    again = masks_parallel(images, RectJob(CFG), workers=1, progress=False)
    pooled = masks_parallel(images, RectJob(CFG), workers=2, progress=False, chunksize=1)
    for (m1, f1), (m2, f2), (m3, f3) in zip(first, again, pooled, strict=True):
        assert m1.tobytes() == m2.tobytes() == m3.tobytes() and f1 == f2 == f3
    # Random seed pixels come from the image content, not from order or worker.
    job = SeededJob(CFG, SeedConfig(method="centre"), out_size=(32, 32))
    items = [(img, None) for img in images]
    forward = masks_parallel(items, job, workers=2, progress=False, chunksize=1)
    backward = masks_parallel(items[::-1], job, workers=1, progress=False)[::-1]
    assert [m.tobytes() for m, _ in forward] == [m.tobytes() for m, _ in backward]


def _roi_at(split_meta_roi: tuple[int, int, int, int], h: int, w: int, size: int) -> np.ndarray:
    x1, y1, x2, y2 = split_meta_roi
    inside = np.zeros((size, size), bool)
    # One output pixel of slack: the area resize blends the box edge into its neighbour.
    r1, r2 = max(0, int(y1 * size / h) - 1), min(size, int(np.ceil((y2 + 1) * size / h)) + 1)
    c1, c2 = max(0, int(x1 * size / w) - 1), min(size, int(np.ceil((x2 + 1) * size / w)) + 1)
    inside[r1:r2, c1:c2] = True
    return inside


@pytest.mark.parametrize("seeding", ["centre", "roi"])
def test_gtsrb_ic_builder(gtsrb_mirror: Path, seeding: str) -> None:
    from stages.data.readers import read_gtsrb

    cfg = GtsrbIcConfig(seeding=seeding)
    splits, stats = build_gtsrb_ic(gtsrb_mirror / "gtsrb", cfg, workers=1, progress=False)
    assert set(splits) == {"train", "test"} and not stats["test_held_out"]
    for name, split in splits.items():
        n = len(split)
        assert split.images.shape == (n, 32, 32, 3) and split.masks.shape == (n, 32, 32)
        assert split.masks.dtype == np.bool_
        assert 0.1 <= stats[name]["mean_foreground_fraction"] <= 0.9
        assert split.meta["mask_source"] == f"grabcut/{seeding}" and split.meta["num_classes"] == 43
        assert set(split.labels.tolist()) <= set(range(GTSRB_CLASSES))
        assert sum(stats[name]["per_class"].values()) == n
    assert all(i.startswith("Final_Training/") for i in splits["train"].ids)
    if seeding == "roi":
        raw = read_gtsrb(gtsrb_mirror / "gtsrb", "train")
        for k, (img, roi) in enumerate(zip(raw.images, raw.rois, strict=True)):
            inside = _roi_at(tuple(int(v) for v in roi), *img.shape[:2], 32)
            assert not (splits["train"].masks[k] & ~inside).any()


def test_gtsrb_ic_holds_out_tracks_without_test_split(gtsrb_mirror: Path, tmp_path: Path) -> None:
    root = tmp_path / "gtsrb"
    shutil.copytree(gtsrb_mirror / "gtsrb", root)
    shutil.rmtree(root / GTSRB_TEST_DIR)
    cfg = GtsrbIcConfig(test_fraction=0.3, grabcut=GrabCutConfig(work_size=32, iterations=1))
    splits, stats = build_gtsrb_ic(root, cfg, workers=1, progress=False)
    assert stats["test_held_out"] and len(splits["test"]) > 0

    def tracks(split: ProcessedSplit) -> set[tuple[str, str]]:
        # ids: Final_Training/<class>/<track>_<frame>.ppm
        return {(i.split("/")[1], i.split("/")[2].split("_")[0]) for i in split.ids}

    assert not tracks(splits["train"]) & tracks(splits["test"])
    assert len(set(splits["train"].ids) | set(splits["test"].ids)) == len(splits["train"]) + len(
        splits["test"]
    )


def test_cifar_split_masks_the_head_only() -> None:
    images = np.stack([disk_image(s)[0] for s in range(4)])
    split = ProcessedSplit(
        images=images, labels=np.arange(4, dtype=np.int64), ids=np.array([f"test/{i}" for i in range(4)]),
        meta={"dataset": "cifar10", "classes": [str(i) for i in range(10)]},
    )  # fmt: skip
    fast = GrabCutConfig(work_size=64, iterations=2, rect_margin=0.05)
    out, stats = cifar_grabcut_split(split, CifarGrabCutConfig(grabcut=fast, test_masks=3), "test", workers=1)
    assert len(out) == 3 and out.masks.shape == (3, 32, 32) and stats["masked"] == 3
    assert out.meta["mask_source"] == "grabcut/rect" and list(out.ids) == ["test/0", "test/1", "test/2"]
    whole, _ = cifar_grabcut_split(
        split, CifarGrabCutConfig(grabcut=fast, train_masks=None), "train", workers=1, progress=False
    )
    assert len(whole) == 4


def test_grabcut_vs_ground_truth_beats_the_rectangle() -> None:
    pairs = [disk_image(s, radius=0.2 + 0.03 * (s % 3)) for s in range(6)]
    images, truth = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    labels = np.array([0, 1, 0, 1, 0, 1])
    report = grabcut_vs_ground_truth(images, truth, labels, ["a", "b"], CFG, workers=1, progress=False)
    overall = report["overall"]
    assert overall["n"] == 6 and overall["mean_iou"] > 0.8
    assert overall["mean_iou"] > overall["rect_mean_iou"]
    assert report["per_class"]["a"]["n"] == 3 and report["per_class"]["b"]["n"] == 3


@pytest.mark.parametrize("items", [0, 1, 5, 48, 64, 1000, 50_000])
@pytest.mark.parametrize("workers", [1, 2, 16])
def test_pool_plan_keeps_every_worker_busy(items, workers):
    planned, chunksize = pool_plan(items, workers, 16)
    chunks = math.ceil(items / chunksize)
    assert 1 <= chunksize <= 16
    assert 1 <= planned <= workers
    # No worker is started without a chunk to work on.
    assert planned <= max(1, chunks)
    # A chunk is at most a quarter of a worker's fair share (rounded up), so the worker that
    # finishes last is at most one small chunk behind the others.
    assert chunksize <= max(1, math.ceil(items / (CHUNKS_PER_WORKER * workers)))
