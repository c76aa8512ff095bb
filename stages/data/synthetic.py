"""Tiny synthetic datasets written in exactly the official raw formats.

Tests and the tiny DAG run need raw data without the real mirror, and they must exercise the
same fetch and reader code as real data does; so the writers produce the official file
formats (gzipped idx, Python-2-style CIFAR pickles, GTSRB PPM + semicolon/CRLF CSVs, COCO
JSON + JPEG) in the layout of ``shared/datasets``, with a ``SHA256SUMS``. The images are
learnable (a class-dependent shape, colour or position on a textured background), so a tiny
training run can show accuracy well above chance. Output is byte-identical for a given seed:
no timestamps (gzip mtime 0), and deterministic encoders.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import pickle
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stages.data.sources import (
    CIFAR10_BATCH_DIR,
    COCO_CATEGORIES,
    GTSRB_HEADER,
    GTSRB_NUM_CLASSES,
    GTSRB_TEST_CSV,
    GTSRB_TEST_DIR,
    GTSRB_TRAIN_DIR,
)

ALL_DATASETS = ("mnist", "cifar10", "gtsrb", "coco")

CIFAR10_LABEL_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip

# Categories the synthetic COCO images contain (person first: it also gets the crowd region).
COCO_SYNTHETIC_CATEGORIES = (1, 3, 62, 44, 17, 18, 16, 7, 70, 85)
# COCO images hold one or two objects each; a third as many images as MNIST/CIFAR-10 have still
# leaves every class a few object crops in both splits for the tiny end-to-end runs.
COCO_IMAGES_DIVISOR = 3


def write_synthetic_mirror(
    root: Path,
    *,
    seed: int = 0,
    n_train: int = 60,
    n_test: int = 20,
    datasets: Iterable[str] = ALL_DATASETS,
    gtsrb_classes: int = GTSRB_NUM_CLASSES,
) -> Path:
    """Write ``<root>/{mnist,cifar10,gtsrb,coco}/...`` plus ``PROVENANCE.md`` and ``SHA256SUMS``.

    ``n_train``/``n_test`` are images per split for MNIST and CIFAR-10 (CIFAR's train is spread
    over the five batches). GTSRB has ``gtsrb_classes`` classes, each with at least two tracks
    of two images (so track hold-out can be tested) and ``ceil(n/classes)`` images in total;
    COCO has ``max(3, n // COCO_IMAGES_DIVISOR)`` images per split. Returns ``root``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    datasets = tuple(datasets)
    unknown = set(datasets) - set(ALL_DATASETS)
    if unknown:
        raise ValueError(f"unknown synthetic datasets {sorted(unknown)}; known: {ALL_DATASETS}")
    writers = {
        "mnist": lambda rng: _write_mnist(root / "mnist", rng, n_train, n_test),
        "cifar10": lambda rng: _write_cifar10(root / "cifar10", rng, n_train, n_test),
        "gtsrb": lambda rng: _write_gtsrb(root / "gtsrb", rng, n_train, n_test, gtsrb_classes),
        "coco": lambda rng: _write_coco(root / "coco", rng, n_train, n_test),
    }
    for i, name in enumerate(ALL_DATASETS):
        if name in datasets:
            # One stream per dataset, so writing a subset does not change the others' bytes.
            writers[name](np.random.default_rng([seed, i]))
    (root / "PROVENANCE.md").write_text(
        "# Synthetic datasets\n\nWritten by stages.data.synthetic.write_synthetic_mirror "
        f"(seed={seed}, n_train={n_train}, n_test={n_test}, datasets={list(datasets)}).\n"
        "Official file formats and layout; the images are synthetic shapes, not real data.\n",
        encoding="utf-8",
    )
    write_sha256sums(root)
    return root


def write_sha256sums(root: Path) -> Path:
    """(Re)write ``<root>/SHA256SUMS`` over every file under root, sorted by path."""
    root = Path(root)
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "SHA256SUMS"):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(root).as_posix()}\n")
    out = root / "SHA256SUMS"
    out.write_text("".join(lines), encoding="utf-8")
    return out


def _texture(rng: np.random.Generator, n: int, h: int, w: int, amp: float) -> np.ndarray:
    """Smooth random texture (N, H, W, 3) in [0, amp]: upsampled coarse noise plus fine noise."""
    coarse = rng.random((n, 4, 4, 3), dtype=np.float32)
    up = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in coarse])
    fine = rng.random((n, h, w, 3), dtype=np.float32)
    return amp * (0.7 * up + 0.3 * fine)


def _hsv_palette(n: int, sat: int = 230, val: int = 230) -> np.ndarray:
    hsv = np.zeros((1, n, 3), np.uint8)
    hsv[0, :, 0] = (np.arange(n) * 180 // n).astype(np.uint8)
    hsv[0, :, 1], hsv[0, :, 2] = sat, val
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0].astype(np.float32)


# --- MNIST ---------------------------------------------------------------------------------


def _idx_gz(array: np.ndarray, name: str) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    buf = io.BytesIO()
    with gzip.GzipFile(filename=name, mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    return buf.getvalue()


def _mnist_images(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """A bright bar whose angle and position depend on the class, on black, like a stroke."""
    n = len(labels)
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float32)
    angle = labels * (np.pi / 10) + rng.normal(0, 0.08, n)
    cx = 9 + (labels % 5) * 2.5 + rng.uniform(-1, 1, n)
    cy = 10 + (labels // 5) * 8 + rng.uniform(-1, 1, n)
    half = rng.uniform(5, 7, n)
    dx, dy = np.cos(angle) * half, np.sin(angle) * half
    ax, ay, bx, by = cx - dx, cy - dy, cx + dx, cy + dy
    vx, vy = (bx - ax)[:, None, None], (by - ay)[:, None, None]
    px, py = xx[None] - ax[:, None, None], yy[None] - ay[:, None, None]
    t = np.clip((px * vx + py * vy) / (vx * vx + vy * vy), 0, 1)
    dist = np.hypot(px - t * vx, py - t * vy)
    thick = rng.uniform(1.2, 1.8, n)[:, None, None]
    img = np.clip(thick + 0.5 - dist, 0, 1) * rng.uniform(200, 255, n)[:, None, None]
    return img.round().astype(np.uint8)


def _write_mnist(folder: Path, rng: np.random.Generator, n_train: int, n_test: int) -> None:
    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10)[rng.permutation(n)].astype(np.uint8)
        images = _mnist_images(rng, labels.astype(np.int64))
        (raw / f"{prefix}-images-idx3-ubyte.gz").write_bytes(_idx_gz(images, f"{prefix}-images-idx3-ubyte"))
        (raw / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(_idx_gz(labels, f"{prefix}-labels-idx1-ubyte"))


# --- CIFAR-10 --------------------------------------------------------------------------------


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Protocol-2 pickler that writes bytes as Python 2 strings, as the official files do.

    The official CIFAR pickles come from Python 2: byte strings are SHORT_BINSTRING opcodes,
    numpy is ``numpy.core.multiarray``, memo indices start at 1. Matching that makes readers
    meet the real opcodes in tests (and makes ``batches.meta`` byte-identical to the official
    one), where ``pickle.dump`` from Python 3 would emit ``_codecs.encode`` calls instead.
    """

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]
    _MODULES = {"numpy._core.multiarray": "numpy.core.multiarray"}

    def __init__(self, fh: Any) -> None:
        super().__init__(fh, protocol=2)
        self._sentinel = object()
        self.memo[id(self._sentinel)] = (0, self._sentinel)  # cPickle counted memo from 1

    def _save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", None) or "__main__"
        module = self._MODULES.get(module, module)
        qualname = name or obj.__qualname__
        self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode())
        self.memoize(obj)


def py2_pickle(obj: Any) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf).dump(obj)
    return buf.getvalue()


def _cifar_images(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """A class-coloured disk or square (shape by class parity) on a textured background."""
    n = len(labels)
    palette = _hsv_palette(10)
    img = _texture(rng, n, 32, 32, 110.0) + rng.uniform(0, 40, (n, 1, 1, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    cx = rng.uniform(11, 21, n)[:, None, None]
    cy = rng.uniform(11, 21, n)[:, None, None]
    r = rng.uniform(6, 9, n)[:, None, None]
    disk = np.hypot(xx - cx, yy - cy) <= r
    square = np.maximum(np.abs(xx - cx), np.abs(yy - cy)) <= r * 0.85
    mask = np.where((labels % 2 == 0)[:, None, None], disk, square)
    colour = palette[labels] + rng.normal(0, 12, (n, 3)).astype(np.float32)
    img = np.where(mask[..., None], colour[:, None, None, :], img)
    return np.clip(img, 0, 255).round().astype(np.uint8)


def _write_cifar10(folder: Path, rng: np.random.Generator, n_train: int, n_test: int) -> None:
    out = folder / CIFAR10_BATCH_DIR
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        b"num_cases_per_batch": 10000,
        b"label_names": [s.encode() for s in CIFAR10_LABEL_NAMES],
        b"num_vis": 3072,
    }
    (out / "batches.meta").write_bytes(py2_pickle(meta))
    sizes = [n_train // 5 + (1 if k < n_train % 5 else 0) for k in range(5)]
    batches = [(f"data_batch_{k + 1}", f"training batch {k + 1} of 5", s) for k, s in enumerate(sizes)]
    batches.append(("test_batch", "testing batch 1 of 1", n_test))
    for fname, batch_label, n in batches:
        labels = (np.arange(n) % 10)[rng.permutation(n)].astype(np.int64)
        images = _cifar_images(rng, labels)
        data = images.transpose(0, 3, 1, 2).reshape(n, 3072).copy()
        d = {
            b"batch_label": batch_label.encode(),
            b"labels": [int(v) for v in labels],
            b"data": data,
            b"filenames": [
                f"synthetic_{i:05d}_{CIFAR10_LABEL_NAMES[v]}.png".encode() for i, v in enumerate(labels)
            ],
        }
        (out / fname).write_bytes(py2_pickle(d))


# --- GTSRB -----------------------------------------------------------------------------------


def _ppm(rgb: np.ndarray) -> bytes:
    h, w = rgb.shape[:2]
    return b"P6\n%d %d\n255\n" % (w, h) + np.ascontiguousarray(rgb, np.uint8).tobytes()


def _sign(rng: np.random.Generator, cls: int, w: int, h: int, palette: np.ndarray):
    """A class-coloured disk with a class-dependent inner mark inside its ROI."""
    img = _texture(rng, 1, h, w, 150.0)[0] + rng.uniform(0, 60, 3).astype(np.float32)
    margin_x, margin_y = max(2, round(0.1 * w)), max(2, round(0.1 * h))
    x1, y1, x2, y2 = margin_x, margin_y, w - 1 - margin_x, h - 1 - margin_y
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    r = min(x2 - x1, y2 - y1) / 2
    dist = np.hypot(xx - cx, yy - cy)
    img[dist <= r] = palette[cls]
    inner = palette[(cls * 7 + 11) % len(palette)] * (0.5 + 0.5 * (cls % 3) / 2)
    angle = (cls % 8) * np.pi / 8
    bar = np.abs((xx - cx) * np.sin(angle) - (yy - cy) * np.cos(angle)) <= max(1.0, r * 0.2)
    img[(dist <= r * 0.6) & bar] = inner
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).round().astype(np.uint8), (x1, y1, x2, y2)


def _csv(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> bytes:
    lines = [";".join(header)] + [";".join(str(v) for v in r) for r in rows]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _write_gtsrb(folder: Path, rng: np.random.Generator, n_train: int, n_test: int, classes: int) -> None:
    palette = _hsv_palette(classes, sat=220, val=235)
    per_class = max(4, math.ceil(n_train / classes))
    per_track = 2
    train_dir = folder / GTSRB_TRAIN_DIR
    for cls in range(classes):
        d = train_dir / f"{cls:05d}"
        d.mkdir(parents=True, exist_ok=True)
        rows = []
        for k in range(per_class):
            track, idx = divmod(k, per_track)
            side = int(rng.integers(26, 40)) + 3 * idx  # a sign grows as the car approaches
            w, h = side + int(rng.integers(-2, 3)), side
            img, roi = _sign(rng, cls, w, h, palette)
            name = f"{track:05d}_{idx:05d}.ppm"
            (d / name).write_bytes(_ppm(img))
            rows.append((name, w, h, *roi, cls))
        (d / f"GT-{cls:05d}.csv").write_bytes(_csv(rows, GTSRB_HEADER))
    n_test_total = max(1, math.ceil(n_test / classes)) * classes
    test_labels = (np.arange(n_test_total) % classes)[rng.permutation(n_test_total)]
    test_dir = folder / GTSRB_TEST_DIR
    test_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, cls in enumerate(test_labels):
        side = int(rng.integers(26, 44))
        img, roi = _sign(rng, int(cls), side, side + int(rng.integers(-2, 3)), palette)
        name = f"{i:05d}.ppm"
        (test_dir / name).write_bytes(_ppm(img))
        rows.append((name, img.shape[1], img.shape[0], *roi, int(cls)))
    (folder / GTSRB_TEST_CSV).write_bytes(_csv(rows, GTSRB_HEADER))
    (test_dir / "GT-final_test.test.csv").write_bytes(_csv([r[:-1] for r in rows], GTSRB_HEADER[:-1]))


# --- COCO ------------------------------------------------------------------------------------


def _rle_uncompressed(mask: np.ndarray) -> dict[str, Any]:
    """COCO's uncompressed RLE (column-major run lengths, starting with a run of zeros)."""
    flat = mask.flatten(order="F").astype(np.uint8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0, *counts]
    return {"counts": [int(c) for c in counts], "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _polygon(rng: np.random.Generator, cx: float, cy: float, r: float, k: int) -> np.ndarray:
    angles = np.sort(rng.uniform(0, 2 * np.pi, k)) + rng.uniform(0, 0.3)
    radii = r * rng.uniform(0.7, 1.0, k)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).round(2)


def _write_coco(folder: Path, rng: np.random.Generator, n_train: int, n_test: int) -> None:
    palette = _hsv_palette(len(COCO_SYNTHETIC_CATEGORIES), sat=200, val=220)
    ann_dir = folder / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    ann_id = 1
    for split, n, first_id in (
        ("train2017", max(3, n_train // COCO_IMAGES_DIVISOR), 1),
        ("val2017", max(3, n_test // COCO_IMAGES_DIVISOR), 100_001),
    ):
        img_dir = folder / split
        img_dir.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for i in range(n):
            image_id = first_id + i
            w, h = int(rng.choice([64, 72, 80])), int(rng.choice([48, 56, 64]))
            img = _texture(rng, 1, h, w, 140.0)[0] + rng.uniform(0, 60, 3).astype(np.float32)
            img = np.clip(img, 0, 255).astype(np.uint8)
            anns = []
            # The last image of a split has no objects, as some official images do.
            n_obj = 0 if (i == n - 1 and n >= 3) else int(rng.integers(1, 3))
            for _ in range(n_obj):
                k = int(rng.integers(0, len(COCO_SYNTHETIC_CATEGORIES)))
                # Above CocoIcConfig.min_area (256 px^2) for most shapes, so crops survive.
                r = float(rng.uniform(14, 20))
                cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
                poly = _polygon(rng, float(cx), float(cy), r, int(rng.integers(5, 9)))
                cv2.fillPoly(img, [np.round(poly).astype(np.int32)], palette[k].tolist())
                x0, y0 = poly.min(0)
                x1, y1 = poly.max(0)
                px, py = poly[:, 0], poly[:, 1]
                area = 0.5 * abs(float(np.dot(px, np.roll(py, 1)) - np.dot(py, np.roll(px, 1))))
                anns.append(
                    {
                        "segmentation": [[float(v) for v in poly.reshape(-1)]],
                        "area": round(area, 4),
                        "iscrowd": 0,
                        "image_id": image_id,
                        "bbox": [round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
                        "category_id": COCO_SYNTHETIC_CATEGORIES[k],
                    }
                )
            if i == 0:  # a crowd of people as uncompressed RLE, as official crowd regions are
                mask = np.zeros((h, w), dtype=bool)
                mask[h - 14 : h - 2, 2:22] = True
                img[mask] = (palette[0] * 0.8).astype(np.uint8)
                anns.append(
                    {
                        "segmentation": _rle_uncompressed(mask),
                        "area": int(mask.sum()),
                        "iscrowd": 1,
                        "image_id": image_id,
                        "bbox": [2.0, float(h - 14), 20.0, 12.0],
                        "category_id": 1,
                    }
                )
            for a in anns:
                a["id"] = ann_id
                ann_id += 1
            annotations += anns
            file_name = f"{image_id:012d}.jpg"
            ok, jpg = cv2.imencode(
                ".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
            )
            assert ok
            (img_dir / file_name).write_bytes(jpg.tobytes())
            images.append(
                {
                    "license": 1,
                    "file_name": file_name,
                    "coco_url": f"synthetic://{split}/{file_name}",
                    "height": h,
                    "width": w,
                    "date_captured": "2017-01-01 00:00:00",
                    "flickr_url": "",
                    "id": image_id,
                }
            )
        data = {
            "info": {
                "description": "Backdrop synthetic data in COCO 2017 format",
                "url": "http://cocodataset.org",
                "version": "1.0",
                "year": 2017,
                "contributor": "stages.data.synthetic",
                "date_created": "2017/09/01",
            },
            "licenses": [
                {
                    "url": "http://creativecommons.org/licenses/by/2.0/",
                    "id": 1,
                    "name": "Attribution License",
                }
            ],
            "images": images,
            "annotations": annotations,
            "categories": [
                {"supercategory": sc, "id": cid, "name": name} for cid, name, sc in COCO_CATEGORIES
            ],
        }
        (ann_dir / f"instances_{split}.json").write_text(
            json.dumps(data, separators=(",", ":")), encoding="utf-8"
        )
