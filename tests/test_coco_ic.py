"""Properties of the MS-COCO-IC / Segment-6 builder on tiny COCO files in the official format.

Images are JPEGs, as COCO's are; pixel assertions use flat grey regions (no chroma to bleed)
and either compare exact zeros (blackout happens after decoding) or allow a 1-pixel border.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from stages.config import Params
from stages.data.coco_ic import (
    PAPER_TEST_FRACTION,
    SEGMENT6_CLASSES,
    CocoIcConfig,
    build_coco_ic,
    segment6_config,
)
from stages.data.synthetic import COCO_CATEGORIES, write_synthetic_mirror
from stages.report.dataset_table import PAPER_COCO_IC_COUNTS
from stages.utils.errors import ConfigError, DataError

CAT_ID = {name: cid for cid, name, _ in COCO_CATEGORIES}
BG, OBJ, OTHER = 60, 180, 255  # grey levels: background, the object, another (bright) object


@dataclass
class Obj:
    category: str
    mask: np.ndarray  # bool (H, W); drawn in order, later objects on top
    value: int = OBJ
    iscrowd: int = 0
    polygon: list[float] | None = None  # if set, the segmentation is this polygon (mask unused)


@dataclass
class Img:
    image_id: int
    width: int
    height: int
    objects: list[Obj] = field(default_factory=list)


def rect(img: Img, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """Bool mask of columns x0..x1-1, rows y0..y1-1."""
    m = np.zeros((img.height, img.width), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def _segmentation(obj: Obj, h: int, w: int) -> tuple[object, np.ndarray]:
    if obj.polygon is not None:
        rle = mask_utils.merge(mask_utils.frPyObjects([obj.polygon], h, w))
        return [obj.polygon], mask_utils.decode(rle).astype(bool)
    flat = obj.mask.flatten(order="F").astype(np.uint8)
    change = np.flatnonzero(np.diff(flat)) + 1
    counts = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    if flat[0] == 1:
        counts = [0, *counts]
    return {"counts": [int(c) for c in counts], "size": [h, w]}, obj.mask


def write_coco(root: Path, splits: dict[str, list[Img]]) -> Path:
    """A COCO folder (annotations/instances_*2017.json + *2017/*.jpg); missing splits are empty."""
    ann_id = 1
    for split in ("train", "val"):
        folder = root / f"{split}2017"
        folder.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for spec in splits.get(split, []):
            pixels = np.full((spec.height, spec.width, 3), BG, dtype=np.uint8)
            for obj in spec.objects:
                seg, drawn = _segmentation(obj, spec.height, spec.width)
                pixels[drawn] = obj.value
                ys, xs = np.nonzero(drawn)
                annotations.append(
                    {
                        "id": ann_id,
                        "image_id": spec.image_id,
                        "category_id": CAT_ID[obj.category],
                        "iscrowd": obj.iscrowd,
                        "area": float(drawn.sum()),
                        "bbox": [
                            float(xs.min()),
                            float(ys.min()),
                            float(np.ptp(xs) + 1),
                            float(np.ptp(ys) + 1),
                        ],
                        "segmentation": seg,
                    }
                )
                ann_id += 1
            name = f"{spec.image_id:012d}.jpg"
            ok, jpg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 100])
            assert ok
            (folder / name).write_bytes(jpg.tobytes())
            images.append(
                {"id": spec.image_id, "file_name": name, "width": spec.width, "height": spec.height}
            )
        data = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": cid, "name": n, "supercategory": s} for cid, n, s in COCO_CATEGORIES],
        }
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data), encoding="utf-8")
    return root


def build(root: Path, **cfg: object):
    return build_coco_ic(root, CocoIcConfig(**{"min_area": 16.0, **cfg}), progress=False)  # type: ignore[arg-type]


def sample(split, ann_index: int) -> int:
    """Index of the sample made from the annotation with this id."""
    hits = [k for k, s in enumerate(split.ids) if s.endswith(f"/{ann_index}")]
    assert len(hits) == 1, split.ids
    return hits[0]


def test_keep_inside_own_mask_blacks_out_others_but_never_own_pixels(tmp_path: Path) -> None:
    img = Img(1, 128, 96)
    car = rect(img, 32, 32, 64, 64)  # 32 px square: crop 32 -> 32, no resampling
    chair = rect(img, 50, 40, 90, 80) & ~car  # behind the car, bright, overlaps its crop
    crowd = rect(img, 28, 56, 40, 70)  # a crowd region drawn over the car's corner
    img.objects = [
        Obj("chair", chair, OTHER),
        Obj("car", car),
        Obj("person", crowd, OTHER, iscrowd=1),
    ]
    write_coco(tmp_path, {"train": [img]})
    splits, stats = build(tmp_path, classes=("car", "chair"), overlaps="keep_inside_own_mask")
    train = splits["train"]
    c = sample(train, 2)
    image, mask = train.images[c].astype(int), train.masks[c]
    assert train.labels[c] == 0 and mask.all()  # the car fills its square crop
    # Crop covers x 32..63, y 32..63: the chair is there only outside the car (none here),
    # the crowd covers the car's corner x 32..39, y 56..63 -> kept, since the car is "own".
    assert np.abs(image[24:, :8] - OTHER).max() <= 3
    # The chair's crop: its square (side 40) holds part of the car; those pixels are 0.
    k = sample(train, 1)
    window_x0, window_y0 = 50, 40
    car_in_crop = car[window_y0 : window_y0 + 40, window_x0 : window_x0 + 40]
    small = cv2.resize(car_in_crop.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    fully_car = small == 1.0  # output pixels whose whole footprint is car
    assert fully_car.sum() > 20
    assert (train.images[k][fully_car] == 0).all()
    assert not train.masks[k][fully_car].any()
    assert stats["splits"]["train"]["drops"]["crowd"] == 1


def overlap_scene(tmp_path: Path) -> tuple[Img, dict[str, np.ndarray]]:
    """A dining table (32 px square: a 1:1 crop) under a pizza and a cup, in front of a
    larger chair, with a crowd region over its corner. COCO outlines the table around what
    stands on it, so the table's mask contains the pizza's."""
    img = Img(1, 128, 96)
    m = {
        "chair": rect(img, 10, 10, 100, 80),
        "table": rect(img, 32, 32, 64, 64),
        "pizza": rect(img, 40, 40, 52, 52),
        "cup": rect(img, 58, 20, 70, 40),
        "crowd": rect(img, 28, 56, 38, 66),
    }
    img.objects = [
        Obj("chair", m["chair"], 120),
        Obj("dining table", m["table"]),
        Obj("pizza", m["pizza"], OTHER),
        Obj("cup", m["cup"], 220),
        Obj("person", m["crowd"], 90, iscrowd=1),
    ]
    write_coco(tmp_path, {"train": [img]})
    return img, m


def test_paper_rule_leaves_no_pixel_of_another_object_in_a_crop(tmp_path: Path) -> None:
    _, m = overlap_scene(tmp_path)
    classes = ("dining table", "pizza", "cup", "chair")
    splits, stats = build(tmp_path, classes=classes)  # the default: overlaps=black_out_front
    train = splits["train"]
    k = sample(train, 2)  # the table; its window is x 32..63, y 32..63 at 1:1 scale
    window = (slice(32, 64), slice(32, 64))
    own = m["table"][window]
    # The smaller objects are in front; the larger chair is behind the table.
    front = (m["pizza"] | m["cup"] | m["crowd"])[window] & own
    other = (m["chair"] | m["pizza"] | m["cup"] | m["crowd"])[window] & ~(own & ~front)
    assert front.sum() > 0 and (other & ~front).sum() == 0  # the chair shows only behind
    image, mask = train.images[k].astype(int), train.masks[k]
    assert (image[other] == 0).all(), "a pixel of another object is left in the crop"
    assert not mask[other].any() and mask[own & ~front].all()
    assert np.abs(image[own & ~front] - OBJ).max() <= 3
    # The chair's crop: the table and everything on it are in front of the chair.
    chair = train.images[sample(train, 1)]
    assert chair.shape == (32, 32, 3) and stats["overlaps"] == "black_out_front"
    overlap = stats["splits"]["train"]["overlap"]
    table = overlap["per_class"]["dining table"]
    assert table["crops_with_front_objects"] == 1 and table["crops_heavily_covered"] == 1
    assert table["output_mask_pixels_removed"] == int(front.sum())
    assert table["front_share_of_mask_pixels"] == pytest.approx(front.sum() / own.sum(), abs=1e-6)
    assert overlap["per_class"]["pizza"]["crops_with_front_objects"] == 0
    assert overlap["crops_with_front_objects"] == 2  # the table, and the chair under all of them


def test_keep_rule_keeps_front_objects_inside_the_mask_and_reports_them(tmp_path: Path) -> None:
    _, m = overlap_scene(tmp_path)
    splits, stats = build(tmp_path, classes=("dining table",), overlaps="keep_inside_own_mask")
    train = splits["train"]
    image, mask = train.images[0].astype(int), train.masks[0]
    window = (slice(32, 64), slice(32, 64))
    pizza = m["pizza"][window]
    assert mask.all() and np.abs(image[pizza] - OTHER).max() <= 3  # the pizza stays
    assert (image[(m["chair"] & ~m["table"])[window]] == 0).all()  # others outside still go
    overlap = stats["splits"]["train"]["overlap"]
    assert overlap["crops_with_front_objects"] == 1 and overlap["output_mask_pixels_removed"] == 0
    assert stats["overlaps"] == "keep_inside_own_mask"


def test_an_object_hidden_by_front_objects_is_dropped_and_counted(tmp_path: Path) -> None:
    img = Img(1, 96, 64)
    table = rect(img, 16, 16, 48, 48)
    img.objects = [
        Obj("dining table", table),
        Obj("pizza", rect(img, 16, 16, 48, 32), OTHER),  # two pizzas, each half the table
        Obj("pizza", rect(img, 16, 32, 48, 48), OTHER),
    ]
    write_coco(tmp_path, {"train": [img]})
    splits, stats = build(tmp_path, classes=("dining table", "pizza"))
    assert splits["train"].labels.tolist() == [1, 1]
    s = stats["splits"]["train"]
    assert s["drops"]["empty_mask"] == 1 and s["overlap"]["emptied_and_dropped"] == 1
    kept, _ = build(tmp_path, classes=("dining table", "pizza"), overlaps="keep_inside_own_mask")
    assert kept["train"].labels.tolist() == [0, 1, 1]


def test_foreground_fraction_is_recorded_for_every_crop_rule(tmp_path: Path) -> None:
    img = Img(1, 160, 120)
    poly = [30.0, 40.0, 110.0, 45.0, 100.0, 60.0, 35.0, 58.0]  # wide: 80 x 20
    img.objects = [Obj("car", np.zeros(0), polygon=poly), Obj("cup", rect(img, 60, 80, 84, 110))]
    write_coco(tmp_path, {"train": [img], "val": [img]})
    by_crop = {}
    for crop in ("clamp", "pad", "stretch"):
        _, stats = build(tmp_path, crop=crop)
        for split in ("train", "test"):
            s = stats["splits"][split]
            assert s["foreground_fraction_by_crop"][crop] == s["foreground_fraction"]
        by_crop[crop] = stats["splits"]["train"]["foreground_fraction_by_crop"]
    # One build measures all three on the same objects: every build agrees on every rule.
    assert by_crop["clamp"] == by_crop["pad"] == by_crop["stretch"]
    fractions = by_crop["clamp"]
    assert fractions["stretch"] > fractions["clamp"] >= fractions["pad"]


def test_mask_aligns_with_resized_image(tmp_path: Path) -> None:
    img = Img(1, 160, 120)
    poly = [30.0, 20.0, 105.0, 35.0, 95.0, 94.0, 50.0, 90.0, 25.0, 60.0]  # 80 x 75 box -> 80 -> 32
    img.objects = [Obj("cat", np.zeros(0), polygon=poly)]
    write_coco(tmp_path, {"train": [img], "val": [img]})
    for crop in ("clamp", "pad", "stretch"):
        splits, _ = build(tmp_path, crop=crop)
        for split in splits.values():
            image, mask = split.images[0].astype(int), split.masks[0]
            looks_like_object = np.abs(image - OBJ).max(-1) < np.abs(image - BG).max(-1)
            disagree = looks_like_object ^ mask
            border = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3))) ^ cv2.erode(
                mask.astype(np.uint8), np.ones((3, 3))
            )
            assert mask.sum() > 200
            assert not (disagree & ~border.astype(bool)).any(), crop
            assert disagree.sum() <= 0.1 * border.sum(), crop


def test_top_k_by_frequency_and_person_excluded(tmp_path: Path) -> None:
    counts = {"person": 5, "cup": 4, "bowl": 3, "car": 3, "sheep": 1}  # car (id 3) beats bowl (51)
    images = []
    for i, (name, n) in enumerate(counts.items()):
        img = Img(i + 1, 200, 40)
        img.objects = [Obj(name, rect(img, 5 + 38 * j, 5, 35 + 38 * j, 35)) for j in range(n)]
        images.append(img)
    write_coco(tmp_path, {"train": images, "val": images[:2]})
    splits, stats = build(tmp_path, top_k=3)
    assert splits["train"].meta["classes"] == ["cup", "car", "bowl"]
    assert splits["train"].meta["category_ids"] == [CAT_ID["cup"], CAT_ID["car"], CAT_ID["bowl"]]
    assert np.bincount(splits["train"].labels).tolist() == [4, 3, 3]
    drops = stats["splits"]["train"]["drops"]
    assert drops["excluded_class"] == 5 and drops["class_not_selected"] == 1
    assert stats["splits"]["test"]["samples_per_class"] == {"cup": 4, "car": 0, "bowl": 0}
    assert stats["splits"]["test"]["drops"]["excluded_class"] == 5


def test_segment6_fixed_classes_and_caps(tmp_path: Path) -> None:
    per_class = {"cat": 5, "dog": 3, "bird": 2, "clock": 1, "cup": 2}
    images = []
    for i, (name, n) in enumerate(per_class.items()):
        img = Img(i + 1, 220, 40)
        img.objects = [Obj(name, rect(img, 5 + 40 * j, 5, 35 + 40 * j, 35)) for j in range(n)]
        images.append(img)
    write_coco(tmp_path, {"train": images, "val": images})
    cfg = segment6_config(max_per_class_train=2, max_per_class_test=1, min_area=16.0)
    splits, stats = build_coco_ic(tmp_path, cfg, progress=False)
    train, test = splits["train"], splits["test"]
    assert train.meta["classes"] == list(SEGMENT6_CLASSES) and train.meta["dataset"] == "segment6"
    assert stats["splits"]["train"]["samples_per_class"] == {
        "train": 0, "bird": 2, "cat": 2, "dog": 2, "toilet": 0, "clock": 1,
    }  # fmt: skip
    assert np.bincount(test.labels).tolist() == [0, 1, 1, 1, 0, 1]
    assert stats["splits"]["test"]["drops"]["class_cap"] == 4 + 2 + 1
    assert stats["splits"]["train"]["drops"]["class_cap"] == 3 + 1
    assert stats["splits"]["train"]["drops"]["class_not_selected"] == 2
    order = [tuple(int(v) for v in s.split("/")[1:]) for s in train.ids]
    assert order == sorted(order)
    again, _ = build_coco_ic(tmp_path, cfg, progress=False)
    assert again["train"].ids.tolist() == train.ids.tolist()
    other_seed, _ = build_coco_ic(tmp_path, segment6_config(max_per_class_train=2, seed=7), progress=False)
    assert len(other_seed["train"]) == len(train)


def test_crowd_and_small_objects_dropped_and_counted(tmp_path: Path) -> None:
    img = Img(1, 120, 60)
    img.objects = [
        Obj("car", rect(img, 5, 5, 45, 45)),
        Obj("car", rect(img, 60, 5, 100, 45), iscrowd=1),
        Obj("car", rect(img, 105, 5, 110, 10)),  # 25 px < min_area 100
    ]
    write_coco(tmp_path, {"train": [img]})
    splits, stats = build(tmp_path, min_area=100.0)
    drops = stats["splits"]["train"]["drops"]
    assert len(splits["train"]) == 1 and drops["crowd"] == 1 and drops["too_small"] == 1
    assert stats["splits"]["train"]["annotations"] == 3


def test_clamp_and_pad_at_image_border(tmp_path: Path) -> None:
    img = Img(1, 64, 48)
    img.objects = [Obj("car", rect(img, 0, 8, 8, 40))]  # 8 x 32 at the left edge: square 32
    wide = Img(2, 100, 40)
    wide.objects = [Obj("car", rect(wide, 20, 10, 80, 30))]  # square 60 > image height 40
    write_coco(tmp_path, {"train": [img, wide]})
    clamp, _ = build(tmp_path, crop="clamp")
    pad, _ = build(tmp_path, crop="pad")
    for split in (clamp["train"], pad["train"]):
        assert split.images.shape == (2, 32, 32, 3) and split.masks.shape == (2, 32, 32)
    # clamp: window x 0..31, all real pixels, the object at x 0..7
    c_img, c_mask = clamp["train"].images[0].astype(int), clamp["train"].masks[0]
    assert c_mask[:, :8].all() and not c_mask[:, 8:].any()
    assert np.abs(c_img[:, 10:] - BG).max() <= 3
    # pad: window x -12..19 (centred on x = 4): 12 black columns, not in the mask
    p_img, p_mask = pad["train"].images[0], pad["train"].masks[0]
    assert (p_img[:, :12] == 0).all() and not p_mask[:, :12].any()
    assert p_mask[:, 12:20].all() and not p_mask[:, 20:].any()
    # the 60-wide object: clamp shrinks the square to 40 (object cut), pad keeps 60 with black rows
    c_wide = clamp["train"].masks[1]  # window x 30..69, y 0..39: the object spans it, rows 10..29
    assert c_wide[9:23].all() and not c_wide[:7].any() and not c_wide[25:].any()
    p_wide = pad["train"].images[1]
    black_rows = round(10 * 32 / 60)  # 10 px above the 40-high image: y -10..-1 of 60
    assert (p_wide[: black_rows - 1] == 0).all() and (p_wide[-(black_rows - 1) :] == 0).all()
    assert not pad["train"].masks[1][: black_rows - 1].any()


def test_deterministic_and_consistent(synthetic_mirror: Path) -> None:
    root = synthetic_mirror / "coco"
    a, stats_a = build(root)
    b, stats_b = build(root)
    for name in ("train", "test"):
        for key in ("images", "labels", "ids", "masks"):
            assert np.array_equal(getattr(a[name], key), getattr(b[name], key))
        assert a[name].meta == b[name].meta
        assert a[name].meta["mask_source"] == "coco_segmentation" and a[name].meta["source"] == "coco"
        assert a[name].images.dtype == np.uint8 and a[name].masks.dtype == np.bool_
        s = stats_a["splits"][name]
        assert s["samples"] + sum(s["drops"].values()) == s["annotations"]
    stats_a.pop("throughput"), stats_b.pop("throughput")
    assert stats_a == stats_b
    assert len(a["train"]) > 0 and a["train"].masks.any(axis=(1, 2)).all()


def test_train_holdout_splits_whole_images(tmp_path: Path) -> None:
    root = write_synthetic_mirror(tmp_path, n_train=90, n_test=9, datasets=("coco",)) / "coco"
    splits, stats = build(root, test_split="train_holdout", test_fraction=0.4)
    images = {k: {s.split("/")[1] for s in v.ids} for k, v in splits.items()}
    assert images["train"] and images["test"] and not images["train"] & images["test"]
    assert all(s.startswith("train2017/") for v in splits.values() for s in v.ids)
    held = stats["splits"]["test"]["source_images"]
    assert held + stats["splits"]["train"]["source_images"] == 30 and 0 < held < 30


def test_bad_inputs_raise_data_errors_naming_the_file(tmp_path: Path, synthetic_mirror: Path) -> None:
    def fresh(name: str) -> Path:
        return Path(shutil.copytree(synthetic_mirror / "coco", tmp_path / name))

    def needed_image(root: Path, split: str) -> Path:
        """An image the builder must decode: it holds a non-crowd object of a non-person class."""
        data = json.loads((root / "annotations" / f"instances_{split}2017.json").read_text())
        ids = {a["image_id"] for a in data["annotations"] if not a["iscrowd"] and a["category_id"] != 1}
        name = next(
            im["file_name"] for im in sorted(data["images"], key=lambda im: im["id"]) if im["id"] in ids
        )
        return root / f"{split}2017" / name

    root = fresh("truncated")
    ann = root / "annotations" / "instances_train2017.json"
    ann.write_text(ann.read_text()[:-100])
    with pytest.raises(DataError, match="instances_train2017.json"):
        build(root)

    root = fresh("no_bbox")
    ann = root / "annotations" / "instances_val2017.json"
    data = json.loads(ann.read_text())
    del data["annotations"][0]["bbox"]
    ann.write_text(json.dumps(data))
    with pytest.raises(
        DataError, match=rf"instances_val2017.json: annotation {data['annotations'][0]['id']}"
    ):
        build(root)

    root = fresh("missing")
    victim = sorted((root / "train2017").glob("*.jpg"))[0]
    victim.unlink()
    with pytest.raises(DataError, match=victim.name):
        build(root)

    root = fresh("corrupt")
    victim = needed_image(root, "train")
    victim.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=victim.name):
        build(root)

    root = fresh("resized")
    victim = needed_image(root, "val")
    small = cv2.imdecode(np.fromfile(victim, np.uint8), cv2.IMREAD_COLOR)[:-2]
    victim.write_bytes(cv2.imencode(".jpg", small)[1].tobytes())
    with pytest.raises(DataError, match=f"{victim.name}: decoded size"):
        build(root)


def pool(tmp_path: Path, n_images: int, seed: int) -> tuple[Path, dict[int, dict[str, int]]]:
    """train2017 only: small images with 1-3 non-overlapping objects of classes of unequal
    frequency, several of one class in some images. Returns the root and each image's counts."""
    rng = np.random.default_rng(seed)
    names, weights = ["cup", "car", "chair", "sheep", "cow"], [0.35, 0.25, 0.2, 0.12, 0.08]
    images, counts = [], {}
    for i in range(1, n_images + 1):
        img = Img(i, 72, 24)
        picks = rng.choice(names, size=int(rng.integers(1, 4)), p=weights)
        img.objects = [Obj(str(n), rect(img, 4 + 24 * j, 4, 20 + 24 * j, 20)) for j, n in enumerate(picks)]
        images.append(img)
        counts[i] = {str(n): int((picks == n).sum()) for n in set(picks.tolist())}
    return write_coco(tmp_path, {"train": images}), counts


@pytest.mark.parametrize("fraction", [PAPER_TEST_FRACTION, 0.2])
def test_holdout_has_the_requested_share_in_every_class(tmp_path: Path, fraction: float) -> None:
    root, counts = pool(tmp_path, 150, seed=3)
    splits, stats = build(root, test_split="train_holdout", test_fraction=fraction)
    images = {k: {s.split("/")[1] for s in v.ids} for k, v in splits.items()}
    assert not images["train"] & images["test"], "a source image is in both splits"
    assert all(s.startswith("train2017/") for v in splits.values() for s in v.ids)
    per_split = {k: stats["splits"][k]["samples_per_class"] for k in ("train", "test")}
    for name in per_split["train"]:
        test, total = per_split["test"][name], per_split["train"][name] + per_split["test"][name]
        most_in_one_image = max(c.get(name, 0) for c in counts.values())
        # Whole images move, so a class can miss its share by about one image's objects of it.
        assert abs(test - fraction * total) <= 2 * most_in_one_image, (name, test, total)
    assert stats["test_fraction"] == fraction and stats["test_split"] == "train_holdout"


def test_fixed_classes_are_used_and_the_frequency_ranking_recorded(tmp_path: Path) -> None:
    root, _ = pool(tmp_path, 40, seed=1)
    table1 = tuple(PAPER_COCO_IC_COUNTS)  # Vaishnavi et al., Table 1, in its order
    splits, stats = build(root, classes=table1, test_split="train_holdout")
    assert splits["train"].meta["classes"] == list(table1)
    assert [c["name"] for c in stats["classes"]] == list(table1)
    assert stats["selection"]["method"] == "fixed"
    frequency = stats["selection"]["frequency_top_k"]
    assert frequency[0] == "cup" and "cup" not in table1  # what frequency would have picked
    usable = stats["selection"]["usable_train_objects"]
    assert frequency == sorted(usable, key=lambda n: -usable[n])[:10]
    labels = np.concatenate([s.labels for s in splits.values()])
    assert set(labels.tolist()) == {table1.index(n) for n in ("car", "chair", "sheep", "cow")}


def test_params_paper_scale_uses_table1_classes_and_the_holdout() -> None:
    paper = Params.load(Path(__file__).resolve().parent.parent / "params.yaml", "paper")
    options = paper.dataset("coco_ic").options
    assert options.classes == tuple(PAPER_COCO_IC_COUNTS)
    assert options.test_split == "train_holdout" and options.overlaps == "black_out_front"
    train, test = (sum(v[i] for v in PAPER_COCO_IC_COUNTS.values()) for i in (0, 1))
    assert options.test_fraction == pytest.approx(test / (train + test))
    for scale in ("tiny", "reduced"):
        options = (
            Params.load(Path(__file__).resolve().parent.parent / "params.yaml", scale)
            .dataset("coco_ic")
            .options
        )
        assert options.classes is None and options.test_split == "val"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"classes": ["car", "unicorn"]}, r"classes=.*\['unicorn'\].*allowed: .*dining table"),
        ({"classes": {"tiny": None, "reduced": None, "paepr": ["car"]}}, r"classes=.*tiny, reduced, paper"),
        ({"exclude": ["persons"]}, r"exclude=.*\['persons'\].*allowed: .*person"),
        ({"test_fraction": 1.5}, r"test_fraction=1\.5 must be a number in \(0, 1\)"),
        ({"test_fraction": 0}, r"test_fraction=0 must be a number in \(0, 1\)"),
        ({"overlaps": "front"}, r"overlaps='front' must be one of black_out_front, keep_inside_own_mask"),
    ],
)
def test_bad_options_are_named_when_params_are_read(options: dict, expected: str) -> None:
    raw = Params.load(Path(__file__).resolve().parent.parent / "params.yaml").raw
    raw["datasets"]["coco_ic"]["options"] = options
    with pytest.raises(ConfigError, match=r"datasets\.coco_ic\.options: .*" + expected):
        Params(raw).dataset("coco_ic")


def test_config_errors(tmp_path: Path, synthetic_mirror: Path) -> None:
    # A name COCO 2017 has but this annotation file does not: named with the file at the start.
    root = Path(shutil.copytree(synthetic_mirror / "coco", tmp_path / "fewer"))
    ann = root / "annotations" / "instances_train2017.json"
    data = json.loads(ann.read_text())
    data["categories"] = [c for c in data["categories"] if c["name"] != "sheep"]
    ann.write_text(json.dumps(data))
    with pytest.raises(
        ConfigError, match=r"classes \['sheep'\] are not COCO categories in .*instances_train2017"
    ):
        build(root, classes=("car", "sheep"))
    with pytest.raises(ConfigError, match="crop"):
        CocoIcConfig(crop="zoom")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="excluded"):
        CocoIcConfig(classes=("person", "car"))
