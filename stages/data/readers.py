"""Readers of the official raw formats, as laid out by :func:`stages.data.fetch.fetch_dataset`.

Every reader takes ``root``, the dataset folder (e.g. ``data/<scale>/raw/mnist``), and turns any
corruption into a :class:`DataError` naming the file, because a traceback from deep inside
gzip, pickle or OpenCV does not tell a user which of thousands of files to replace.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import logging
import pickle
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from stages.data.sources import (
    CIFAR10_BATCH_DIR,
    CIFAR10_TRAIN_BATCHES,
    COCO_SPLITS,
    GTSRB_HEADER,
    GTSRB_TEST_CSV,
    GTSRB_TEST_DIR,
    GTSRB_TRAIN_DIR,
)
from stages.utils.errors import DataError

log = logging.getLogger(__name__)

Split = Literal["train", "test"]

# --- MNIST ---------------------------------------------------------------------------------

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_UBYTE = 0x08


def _check_split(split: str, allowed: tuple[str, ...], what: str) -> None:
    if split not in allowed:
        raise DataError(f"{what}: unknown split {split!r}; use one of {', '.join(allowed)}")


def read_idx(path: Path) -> np.ndarray:
    """Read one gzipped idx file (unsigned byte data only, as MNIST uses)."""
    if not path.is_file():
        raise DataError(f"{path}: file missing; re-run the fetch_raw stage")
    try:
        with gzip.open(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a complete gzip file ({exc}); re-fetch it") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _IDX_UBYTE:
        raise DataError(
            f"{path}: bad idx magic {data[:4].hex() or '(empty)'}; expected 0000080N "
            "(unsigned bytes, N dimensions); the file is not an MNIST idx file"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataError(f"{path}: idx header truncated ({len(data)} bytes); re-fetch it")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise DataError(
            f"{path}: idx header promises shape {shape} ({expected} bytes of data) but the file "
            f"holds {len(data) - header}; the file is truncated or corrupt, re-fetch it"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_mnist(root: Path, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28, 1) and labels int64 (N,) of one MNIST split."""
    _check_split(split, ("train", "test"), "mnist")
    img_name, lbl_name = _MNIST_FILES[split]
    img_path, lbl_path = Path(root) / "raw" / img_name, Path(root) / "raw" / lbl_name
    images = read_idx(img_path)
    labels = read_idx(lbl_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{img_path}: expected images of shape (N, 28, 28), got {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{lbl_path}: expected a 1-d label vector, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{img_path} has {len(images)} images but {lbl_path} has {len(labels)} labels; "
            "the two files come from different copies, re-fetch both"
        )
    if labels.size and labels.max() > 9:
        raise DataError(f"{lbl_path}: label {int(labels.max())} outside 0-9")
    return images[..., None].copy(), labels.astype(np.int64)


# --- CIFAR-10 --------------------------------------------------------------------------------

# The official batches are Python 2 pickles of dicts holding a numpy array. Unpickling runs
# code named in the file, so only the few globals such a file needs are allowed.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        if module.startswith("numpy") and name in ("_reconstruct", "scalar"):
            try:
                from numpy._core import multiarray
            except ImportError:  # numpy < 2
                from numpy.core import multiarray  # type: ignore[no-redef]
            return getattr(multiarray, name)
        return super().find_class(module, name)


def load_cifar_pickle(path: Path) -> dict[bytes, Any]:
    """Unpickle one CIFAR file with bytes keys, as the official Python 2 files give them."""
    if not path.is_file():
        raise DataError(f"{path}: file missing; re-run the fetch_raw stage")
    try:
        with open(path, "rb") as fh:
            obj = _SafeUnpickler(fh, encoding="bytes").load()
    except Exception as exc:  # pickle raises many types on corrupt input
        raise DataError(f"{path}: not a readable CIFAR pickle ({exc}); re-fetch it") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return {k.encode("latin1") if isinstance(k, str) else k: v for k, v in obj.items()}


def cifar10_class_names(root: Path) -> list[str]:
    """The 10 class names from ``batches.meta``, in label order."""
    path = Path(root) / CIFAR10_BATCH_DIR / "batches.meta"
    meta = load_cifar_pickle(path)
    names = meta.get(b"label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise DataError(f"{path}: key 'label_names' missing or not a list of 10 names")
    return [n.decode("ascii") if isinstance(n, bytes) else str(n) for n in names]


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    d = load_cifar_pickle(path)
    for key in (b"data", b"labels"):
        if key not in d:
            found = ", ".join(sorted(k.decode("latin1") for k in d))
            raise DataError(f"{path}: key {key.decode()!r} missing (found: {found})")
    data = np.asarray(d[b"data"])
    labels = np.asarray(d[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: 'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {len(data)} images but {labels.size} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels outside 0-9")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def read_cifar10(root: Path, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 32, 32, 3) and labels int64 (N,); class names: cifar10_class_names.

    The training set is whichever ``data_batch_K`` exist, in K order, because a partial
    mirror (e.g. only ``data_batch_1``) is still useful for small-scale runs.
    """
    _check_split(split, ("train", "test"), "cifar10")
    folder = Path(root) / CIFAR10_BATCH_DIR
    if split == "test":
        return _read_cifar_batch(folder / "test_batch")
    present = [folder / b for b in CIFAR10_TRAIN_BATCHES if (folder / b).is_file()]
    if not present:
        raise DataError(f"{folder}: no data_batch_1..5 files; re-run the fetch_raw stage")
    if len(present) < len(CIFAR10_TRAIN_BATCHES):
        log.warning(
            "cifar10: only %d of 5 training batches in %s (%s); training uses those",
            len(present), folder, ", ".join(p.name for p in present),
        )  # fmt: skip
    parts = [_read_cifar_batch(p) for p in present]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


# --- GTSRB ---------------------------------------------------------------------------------


@dataclass
class GtsrbSplit:
    """One GTSRB split: images keep their varying sizes, as the official files have them.

    ``tracks`` is the track number within the class (the ``XXXXX`` of ``XXXXX_YYYYY.ppm``);
    a physical track is identified by ``(label, track)``. The test set has no tracks (-1).
    """

    images: list[np.ndarray]
    labels: np.ndarray
    rois: np.ndarray
    tracks: np.ndarray
    filenames: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> GtsrbSplit:
        idx = [int(i) for i in index]
        return GtsrbSplit(
            images=[self.images[i] for i in idx],
            labels=self.labels[idx],
            rois=self.rois[idx],
            tracks=self.tracks[idx],
            filenames=[self.filenames[i] for i in idx],
        )


def decode_image(path: Path) -> np.ndarray:
    """Decode a PPM/JPEG/PNG file into RGB uint8 (H, W, 3), naming the file if it cannot."""
    if not path.is_file():
        raise DataError(f"{path}: image file missing")
    buf = np.fromfile(path, dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if img is None:
        raise DataError(f"{path}: image does not decode (corrupt or truncated); re-fetch it")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _read_gtsrb_csv(path: Path, header: tuple[str, ...]) -> list[list[str]]:
    if not path.is_file():
        raise DataError(f"{path}: GTSRB ground-truth CSV missing; re-fetch the dataset")
    with open(path, encoding="ascii", newline="") as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    if not rows or tuple(rows[0]) != header:
        raise DataError(
            f"{path}: header {';'.join(rows[0]) if rows else '(empty file)'!r} is not the "
            f"official {';'.join(header)!r}"
        )
    body = [r for r in rows[1:] if r]
    for lineno, r in enumerate(body, 2):
        if len(r) != len(header) or not all(v.strip().lstrip("-").isdigit() for v in r[1:]):
            raise DataError(f"{path}:{lineno}: malformed row {';'.join(r)!r}")
    return body


def _gtsrb_rows(
    csv_path: Path, folder: Path, rows: list[list[str]], label: int | None
) -> tuple[list[np.ndarray], list[int], list[list[int]], list[str]]:
    listed = [r[0] for r in rows]
    on_disk = sorted(p.name for p in folder.glob("*.ppm"))
    if sorted(listed) != on_disk:
        missing = sorted(set(listed) - set(on_disk))[:5]
        extra = sorted(set(on_disk) - set(listed))[:5]
        raise DataError(
            f"{csv_path} does not match the .ppm files in {folder}: listed but missing "
            f"{missing or 'none'}, present but not listed {extra or 'none'}; re-fetch the "
            "dataset or fix the CSV"
        )
    images, labels, rois = [], [], []
    for r in rows:
        path = folder / r[0]
        img = decode_image(path)
        w, h = int(r[1]), int(r[2])
        if img.shape[:2] != (h, w):
            raise DataError(
                f"{path}: decoded size {img.shape[1]}x{img.shape[0]} differs from {w}x{h} in {csv_path}"
            )
        cls = int(r[7])
        if label is not None and cls != label:
            raise DataError(f"{csv_path}: {r[0]} has ClassId {cls} in the folder of class {label}")
        images.append(img)
        labels.append(cls)
        rois.append([int(v) for v in r[3:7]])
    return images, labels, rois, listed


def read_gtsrb(root: Path, split: Split) -> GtsrbSplit:
    """All images of one GTSRB split with labels, ROIs (x1, y1, x2, y2) and track numbers."""
    _check_split(split, ("train", "test"), "gtsrb")
    root = Path(root)
    if split == "test":
        folder, csv_path = root / GTSRB_TEST_DIR, root / GTSRB_TEST_CSV
        if not folder.is_dir() or not csv_path.is_file():
            raise DataError(
                f"gtsrb: no test split in {root} ({csv_path} or {folder} missing); hold out "
                "whole tracks of the training set with split_gtsrb_by_track instead"
            )
        rows = _read_gtsrb_csv(csv_path, GTSRB_HEADER)
        images, labels, rois, names = _gtsrb_rows(csv_path, folder, rows, None)
        tracks = [-1] * len(names)
    else:
        base = root / GTSRB_TRAIN_DIR
        class_dirs = sorted(p for p in base.glob("000[0-9][0-9]") if p.is_dir())
        if not class_dirs:
            raise DataError(f"gtsrb: no class folders 000NN in {base}; re-run the fetch_raw stage")
        images, labels, rois, names, tracks = [], [], [], [], []
        for d in class_dirs:
            csv_path = d / f"GT-{d.name}.csv"
            rows = _read_gtsrb_csv(csv_path, GTSRB_HEADER)
            i, lab, r, n = _gtsrb_rows(csv_path, d, rows, int(d.name))
            for name in n:
                prefix = name.split("_", 1)[0]
                if "_" not in name or not prefix.isdigit():
                    raise DataError(f"{d / name}: file name is not the official XXXXX_YYYYY.ppm")
                tracks.append(int(prefix))
            images += i
            labels += lab
            rois += r
            names += n
    return GtsrbSplit(
        images=images,
        labels=np.asarray(labels, dtype=np.int64),
        rois=np.asarray(rois, dtype=np.int64).reshape(-1, 4),
        tracks=np.asarray(tracks, dtype=np.int64),
        filenames=names,
    )


def split_gtsrb_by_track(train: GtsrbSplit, test_fraction: float, seed: int) -> tuple[GtsrbSplit, GtsrbSplit]:
    """Hold out whole tracks per class, so no physical sign is in both parts.

    The ~30 images of a track are the same sign seen from a few metres apart; splitting images
    at random would put near-duplicates on both sides and overstate test accuracy. For each
    class, tracks are shuffled and taken until about ``test_fraction`` of its images are
    held out; a class with two or more tracks always keeps at least one for training.
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    test_mask = np.zeros(len(train), dtype=bool)
    for cls in np.unique(train.labels):
        in_cls = train.labels == cls
        tracks = np.unique(train.tracks[in_cls])
        rng.shuffle(tracks)
        target = test_fraction * int(in_cls.sum())
        taken = 0
        for k, t in enumerate(tracks):
            if taken >= target or (len(tracks) > 1 and k == len(tracks) - 1):
                break
            sel = in_cls & (train.tracks == t)
            test_mask |= sel
            taken += int(sel.sum())
    return train.subset(np.flatnonzero(~test_mask)), train.subset(np.flatnonzero(test_mask))


# --- COCO ------------------------------------------------------------------------------------


@dataclass
class CocoSplit:
    """A COCO split: the pycocotools index plus where its images live."""

    coco: Any  # pycocotools.coco.COCO
    image_dir: Path
    annotation_file: Path

    @property
    def image_ids(self) -> list[int]:
        return sorted(self.coco.imgs)

    def image_path(self, image_id: int) -> Path:
        return self.image_dir / self.coco.imgs[image_id]["file_name"]

    def load_image(self, image_id: int) -> np.ndarray:
        """RGB uint8 (H, W, 3); grayscale JPEGs (COCO has some) become three equal channels."""
        info = self.coco.imgs[image_id]
        path = self.image_dir / info["file_name"]
        img = decode_image(path)
        if img.shape[:2] != (info["height"], info["width"]):
            raise DataError(
                f"{path}: decoded size {img.shape[1]}x{img.shape[0]} differs from "
                f"{info['width']}x{info['height']} in {self.annotation_file}"
            )
        return img


def read_coco(root: Path, split: Literal["train", "val"]) -> CocoSplit:
    """Parse ``annotations/instances_<split>2017.json`` and check that its images exist."""
    _check_split(split, tuple(COCO_SPLITS), "coco")
    from pycocotools.coco import COCO

    root = Path(root)
    name = COCO_SPLITS[split]
    ann = root / "annotations" / f"instances_{name}.json"
    image_dir = root / name
    if not ann.is_file():
        raise DataError(f"coco: annotation file {ann} missing; re-run the fetch_raw stage")
    try:
        with open(ann, encoding="utf-8") as fh:
            data = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{ann}: not valid JSON ({exc}); re-fetch it") from exc
    if not isinstance(data, dict):
        raise DataError(f"{ann}: top level must be a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{ann}: key {key!r} missing or not a list")
    try:
        image_ids = {im["id"] for im in data["images"]}
        files = [im["file_name"] for im in data["images"]]
        bad_ann = [a["id"] for a in data["annotations"] if a["image_id"] not in image_ids][:5]
    except (KeyError, TypeError) as exc:
        raise DataError(f"{ann}: an image or annotation record lacks key {exc}") from exc
    if bad_ann:
        raise DataError(f"{ann}: annotations {bad_ann} reference image ids not in 'images'")
    missing = [f for f in files if not (image_dir / f).is_file()]
    if missing:
        raise DataError(
            f"{ann} lists {len(missing)} image(s) missing from {image_dir}, first: "
            f"{', '.join(missing[:5])}; re-fetch the dataset or regenerate the json"
        )
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco.createIndex()
    return CocoSplit(coco=coco, image_dir=image_dir, annotation_file=ann)
