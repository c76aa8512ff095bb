"""Raw-data layer: fetch (mirror and download), checksum rules, readers, synthetic writer."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import logging
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from stages import fetch_raw
from stages.data.fetch import fetch_dataset
from stages.data.readers import (
    cifar10_class_names,
    read_cifar10,
    read_coco,
    read_gtsrb,
    read_mnist,
    split_gtsrb_by_track,
)
from stages.data.sources import SOURCES, Archive, OfficialFile
from stages.data.synthetic import COCO_IMAGES_DIVISOR, write_sha256sums, write_synthetic_mirror
from stages.utils.cli import run_stage
from stages.utils.errors import ChecksumError, DataError

REAL_MIRROR = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def fetch(mirror: Path, name: str, dest_root: Path):
    return fetch_dataset(name, dest_root / name, mirror=mirror, download=False, progress=False)


@pytest.fixture
def mirror_copy(synthetic_mirror: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic mirror that a test may damage."""
    return Path(shutil.copytree(synthetic_mirror, tmp_path / "mirror"))


@pytest.fixture(scope="module")
def fetched(synthetic_mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    for name in SOURCES:
        fetch(synthetic_mirror, name, root)
    return root


def no_leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


# --- round trips -------------------------------------------------------------------------


def test_mnist_round_trip_and_learnable(fetched: Path) -> None:
    assert (fetched / "mnist/raw/train-images-idx3-ubyte.gz").is_file()
    xtr, ytr = read_mnist(fetched / "mnist", "train")
    xte, yte = read_mnist(fetched / "mnist", "test")
    assert xtr.shape == (60, 28, 28, 1) and xtr.dtype == np.uint8
    assert ytr.shape == (60,) and ytr.dtype == np.int64 and set(ytr) == set(range(10))
    assert xte.shape == (20, 28, 28, 1)
    # nearest class mean separates the synthetic classes: the data is learnable, not noise
    means = np.stack([xtr[ytr == c].mean(0) for c in range(10)]).reshape(10, -1)
    d = ((xte.reshape(len(xte), 1, -1) - means[None]) ** 2).sum(-1)
    assert (d.argmin(1) == yte).mean() >= 0.8


def test_cifar10_round_trip(fetched: Path) -> None:
    x, y = read_cifar10(fetched / "cifar10", "train")
    assert x.shape == (60, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    xt, yt = read_cifar10(fetched / "cifar10", "test")
    assert xt.shape == (20, 32, 32, 3) and set(yt) <= set(range(10))
    assert cifar10_class_names(fetched / "cifar10")[:3] == ["airplane", "automobile", "bird"]


def test_gtsrb_round_trip(fetched: Path) -> None:
    tr = read_gtsrb(fetched / "gtsrb", "train")
    te = read_gtsrb(fetched / "gtsrb", "test")
    assert len(tr) == 43 * 4 and len(te) == 43
    assert tr.labels.dtype == np.int64 and tr.rois.shape == (len(tr), 4)
    assert set(tr.labels) == set(range(43)) and set(te.labels) == set(range(43))
    img = tr.images[0]
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    x1, y1, x2, y2 = tr.rois[0]
    assert 0 <= x1 < x2 < img.shape[1] and 0 <= y1 < y2 < img.shape[0]
    assert set(tr.tracks) == {0, 1} and (te.tracks == -1).all()
    assert tr.filenames[0] == "00000_00000.ppm"


def test_coco_round_trip(fetched: Path) -> None:
    for split in ("train", "val"):
        s = read_coco(fetched / "coco", split)
        ids = s.image_ids
        assert len(ids) >= 3
        img = s.load_image(ids[0])
        assert img.dtype == np.uint8 and img.shape[2] == 3
        anns = s.coco.loadAnns(s.coco.getAnnIds(imgIds=[ids[0]]))
        assert any(a["iscrowd"] for a in anns)
        for a in anns:
            assert s.coco.annToMask(a).sum() > 0
    cats = {c["id"]: c["name"] for c in s.coco.dataset["categories"]}
    assert cats[1] == "person" and cats[62] == "chair" and cats[85] == "clock"


def test_synthetic_writer_is_deterministic(synthetic_mirror: Path, tmp_path: Path) -> None:
    again = write_synthetic_mirror(tmp_path / "again", seed=0)
    assert (again / "SHA256SUMS").read_bytes() == (synthetic_mirror / "SHA256SUMS").read_bytes()
    other = write_synthetic_mirror(tmp_path / "other", seed=1, datasets=("mnist",))
    a = (other / "mnist/raw/train-images-idx3-ubyte.gz").read_bytes()
    assert a != (synthetic_mirror / "mnist/raw/train-images-idx3-ubyte.gz").read_bytes()


# --- checksum verification -----------------------------------------------------------------


def test_report_records_verification_and_splits(synthetic_mirror: Path, tmp_path: Path) -> None:
    rep = fetch(synthetic_mirror, "cifar10", tmp_path)
    # the synthetic batches.meta is byte-identical to the official one
    assert rep.verified_by == {"official-md5": 1, "mirror-sha256": 6}
    assert rep.split("train").files == 5 and rep.split("train").complete
    rep.write(tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["files"] == 7


def test_corrupt_file_is_rejected_and_dest_untouched(mirror_copy: Path, tmp_path: Path) -> None:
    victim = mirror_copy / "cifar10/cifar-10-batches-py/test_batch"
    data = bytearray(victim.read_bytes())
    data[-10] ^= 0xFF
    victim.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(ChecksumError) as err:
        fetch(mirror_copy, "cifar10", out)
    msg = str(err.value)
    listed = [ln.split()[0] for ln in (mirror_copy / "SHA256SUMS").read_text().splitlines()
              if ln.endswith("cifar10/cifar-10-batches-py/test_batch")][0]  # fmt: skip
    assert str(victim) in msg and listed in msg
    assert hashlib.sha256(bytes(data)).hexdigest() in msg
    assert "SHA256SUMS" in msg and "re-copy" in msg
    assert not (out / "cifar10").exists() and no_leftovers(out) == []


def test_official_md5_decides_for_official_size(mirror_copy: Path, tmp_path: Path) -> None:
    """A file of the official size is checked against the official md5, not the mirror list."""
    f = mirror_copy / "mnist/raw/t10k-labels-idx1-ubyte.gz"
    raw = f.read_bytes()
    official = {"raw/t10k-labels-idx1-ubyte.gz": OfficialFile(hashlib.md5(raw).hexdigest(), len(raw))}
    src = dataclasses.replace(SOURCES["mnist"], official_files=official)
    rep = fetch_dataset("mnist", tmp_path / "a", mirror=mirror_copy, download=False,
                        progress=False, source=src)  # fmt: skip
    assert rep.verified_by == {"official-md5": 1, "mirror-sha256": 3}
    f.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    write_sha256sums(mirror_copy)  # even a mirror list that agrees cannot override the official md5
    with pytest.raises(ChecksumError, match="official md5"):
        fetch_dataset("mnist", tmp_path / "b", mirror=mirror_copy, download=False,
                      progress=False, source=src)  # fmt: skip


def test_unlisted_file(mirror_copy: Path, tmp_path: Path, caplog) -> None:
    (mirror_copy / "coco/annotations/extra.txt").write_text("x")
    with pytest.raises(DataError, match="not listed in"):
        fetch(mirror_copy, "coco", tmp_path)
    (mirror_copy / "SHA256SUMS").unlink()
    with caplog.at_level(logging.WARNING):
        rep = fetch(mirror_copy, "coco", tmp_path)
    assert rep.verified_by == {"unverified": rep.files}
    assert any("no SHA256SUMS" in w for w in rep.warnings)


# --- partial and broken mirrors ------------------------------------------------------------


def test_partial_cifar_warns_and_works(mirror_copy: Path, tmp_path: Path, caplog) -> None:
    for k in range(2, 6):
        (mirror_copy / f"cifar10/cifar-10-batches-py/data_batch_{k}").unlink()
    with caplog.at_level(logging.WARNING):
        rep = fetch(mirror_copy, "cifar10", tmp_path)
    assert rep.split("train").files == 1 and not rep.split("train").complete
    assert any("1 of 5" in w for w in rep.warnings)
    assert "partial train split" in caplog.text
    x, y = read_cifar10(tmp_path / "cifar10", "train")
    assert len(x) == 12 and "only 1 of 5" in caplog.text


def test_missing_gtsrb_test_split_and_track_holdout(mirror_copy: Path, tmp_path: Path) -> None:
    shutil.rmtree(mirror_copy / "gtsrb/GTSRB/Final_Test")
    (mirror_copy / "gtsrb/GT-final_test.csv").unlink()
    rep = fetch(mirror_copy, "gtsrb", tmp_path)
    assert not rep.split("test").present
    assert any("split_gtsrb_by_track" in w for w in rep.warnings)
    with pytest.raises(DataError, match="no test split"):
        read_gtsrb(tmp_path / "gtsrb", "test")
    train = read_gtsrb(tmp_path / "gtsrb", "train")
    a, b = split_gtsrb_by_track(train, 0.3, seed=0)
    assert len(a) + len(b) == len(train) and len(b) > 0
    assert not set(zip(a.labels, a.tracks, strict=True)) & set(zip(b.labels, b.tracks, strict=True))
    assert set(a.labels) == set(train.labels)  # every class keeps a training track
    a2, _ = split_gtsrb_by_track(train, 0.3, seed=0)
    assert a2.filenames == a.filenames


def test_missing_required_file(mirror_copy: Path, tmp_path: Path) -> None:
    victim = mirror_copy / "mnist/raw/t10k-images-idx3-ubyte.gz"
    victim.unlink()
    with pytest.raises(DataError, match=str(victim)):
        fetch(mirror_copy, "mnist", tmp_path)
    (mirror_copy / "coco/annotations/instances_train2017.json").unlink()
    with pytest.raises(DataError, match="instances_train2017.json"):
        fetch(mirror_copy, "coco", tmp_path)
    shutil.rmtree(mirror_copy / "gtsrb/GTSRB/Final_Test")  # labels without test images
    with pytest.raises(DataError, match="test split is incomplete"):
        fetch(mirror_copy, "gtsrb", tmp_path)
    assert no_leftovers(tmp_path) == []


def test_no_source_explains_options(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"raw\.mirror.*raw\.download"):
        fetch_dataset("mnist", tmp_path / "m", mirror=None, download=False)


def _cli(argv: list[str]) -> int:
    try:
        run_stage(fetch_raw.build_parser(), fetch_raw.main, argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_cli_reports_error_without_traceback(tmp_path: Path, capsys) -> None:
    rc = _cli(["--dataset", "mnist", "--out", str(tmp_path / "m"), "--mirror", ""])
    err = capsys.readouterr().err
    assert rc == 1 and "error: " in err and "Traceback" not in err


def test_cli_writes_report(synthetic_mirror: Path, tmp_path: Path) -> None:
    report = str(tmp_path / "r.json")
    mirror = str(synthetic_mirror)
    rc = _cli(["--dataset", "mnist", "--out", str(tmp_path / "m"), "--mirror", mirror,
               "--download", "false", "--report", report])  # fmt: skip
    assert rc == 0 and json.loads((tmp_path / "r.json").read_text())["dataset"] == "mnist"


# --- reader corruption -----------------------------------------------------------------------


@pytest.fixture
def raw_copy(fetched: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(fetched, tmp_path / "raw"))


def test_mnist_bad_magic_and_truncated_gzip(raw_copy: Path) -> None:
    f = raw_copy / "mnist/raw/train-labels-idx1-ubyte.gz"
    f.write_bytes(gzip.compress(b"\x00\x00\x09\x01" + bytes(64), mtime=0))
    with pytest.raises(DataError, match="bad idx magic") as err:
        read_mnist(raw_copy / "mnist", "train")
    assert str(f) in str(err.value)
    g = raw_copy / "mnist/raw/t10k-images-idx3-ubyte.gz"
    g.write_bytes(g.read_bytes()[:-50])
    with pytest.raises(DataError, match="gzip") as err:
        read_mnist(raw_copy / "mnist", "test")
    assert str(g) in str(err.value)


def test_cifar_missing_key(raw_copy: Path) -> None:
    from stages.data.synthetic import py2_pickle

    f = raw_copy / "cifar10/cifar-10-batches-py/test_batch"
    f.write_bytes(py2_pickle({b"labels": [1, 2]}))
    with pytest.raises(DataError, match="'data' missing") as err:
        read_cifar10(raw_copy / "cifar10", "test")
    assert str(f) in str(err.value)


def test_gtsrb_csv_not_matching_files(raw_copy: Path) -> None:
    victim = raw_copy / "gtsrb/GTSRB/Final_Training/Images/00003/00001_00000.ppm"
    victim.unlink()
    with pytest.raises(DataError, match="00001_00000.ppm") as err:
        read_gtsrb(raw_copy / "gtsrb", "train")
    assert "GT-00003.csv" in str(err.value)


def test_gtsrb_bad_header(raw_copy: Path) -> None:
    csv = raw_copy / "gtsrb/GT-final_test.csv"
    csv.write_bytes(csv.read_bytes().replace(b"Roi.X1", b"RoiX1", 1))
    with pytest.raises(DataError, match="header"):
        read_gtsrb(raw_copy / "gtsrb", "test")


def test_ppm_that_does_not_decode(raw_copy: Path) -> None:
    victim = raw_copy / "gtsrb/GTSRB/Final_Training/Images/00007/00000_00001.ppm"
    victim.write_bytes(b"P6\n30 30\n255\n" + bytes(10))
    with pytest.raises(DataError, match="does not decode") as err:
        read_gtsrb(raw_copy / "gtsrb", "train")
    assert str(victim) in str(err.value)


def test_coco_malformed_json(raw_copy: Path) -> None:
    f = raw_copy / "coco/annotations/instances_val2017.json"
    f.write_text('{"images": [', encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON") as err:
        read_coco(raw_copy / "coco", "val")
    assert str(f) in str(err.value)


def test_coco_missing_image(raw_copy: Path) -> None:
    victim = sorted((raw_copy / "coco/train2017").glob("*.jpg"))[1]
    victim.unlink()
    with pytest.raises(DataError, match=victim.name):
        read_coco(raw_copy / "coco", "train")


# --- download path ---------------------------------------------------------------------------


def _mnist_archives(mirror: Path, md5_override: dict[str, str] | None = None) -> tuple:
    archives = []
    for a in SOURCES["mnist"].archives:
        f = mirror / "mnist" / a.target
        md5 = (md5_override or {}).get(a.filename, hashlib.md5(f.read_bytes()).hexdigest())
        archives.append(dataclasses.replace(a, urls=(f.as_uri(),), md5=md5))
    return tuple(archives)


def test_download_from_file_urls(synthetic_mirror: Path, tmp_path: Path) -> None:
    src = dataclasses.replace(SOURCES["mnist"], archives=_mnist_archives(synthetic_mirror))
    rep = fetch_dataset("mnist", tmp_path / "mnist", mirror=None, download=True,
                        progress=False, source=src)  # fmt: skip
    assert rep.source == "download" and rep.files == 4
    assert rep.verified_by == {"archive-md5": 4}  # not the official archives: no per-file check
    x, y = read_mnist(tmp_path / "mnist", "test")
    assert x.shape == (20, 28, 28, 1)


def test_download_bad_md5_leaves_nothing(synthetic_mirror: Path, tmp_path: Path) -> None:
    bad = {"t10k-labels-idx1-ubyte.gz": "0" * 32}
    src = dataclasses.replace(SOURCES["mnist"], archives=_mnist_archives(synthetic_mirror, bad))
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.gz") as err:
        fetch_dataset("mnist", tmp_path / "mnist", mirror=None, download=True,
                      progress=False, source=src)  # fmt: skip
    assert "0" * 32 in str(err.value)
    assert not (tmp_path / "mnist").exists() and no_leftovers(tmp_path) == []


def test_download_tar_and_zip(synthetic_mirror: Path, tmp_path: Path) -> None:
    tgz = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(synthetic_mirror / "cifar10/cifar-10-batches-py", arcname="cifar-10-batches-py")
    md5 = hashlib.md5(tgz.read_bytes()).hexdigest()
    arch = dataclasses.replace(SOURCES["cifar10"].archives[0], urls=(tgz.as_uri(),), md5=md5)
    src = dataclasses.replace(SOURCES["cifar10"], archives=(arch,))
    fetch_dataset("cifar10", tmp_path / "c", mirror=None, download=True, progress=False, source=src)
    assert read_cifar10(tmp_path / "c", "train")[0].shape == (60, 32, 32, 3)

    ann = tmp_path / "annotations_trainval2017.zip"
    with zipfile.ZipFile(ann, "w") as zf:
        zf.write(synthetic_mirror / "coco/annotations/instances_train2017.json",
                 "annotations/instances_train2017.json")  # fmt: skip
        zf.writestr("annotations/captions_train2017.json", "{}")  # filtered out
    imgs = tmp_path / "train2017.zip"
    with zipfile.ZipFile(imgs, "w") as zf:
        for p in sorted((synthetic_mirror / "coco/train2017").glob("*.jpg")):
            zf.write(p, f"train2017/{p.name}")
    archives = tuple(
        Archive(
            f.name, (f.as_uri(),), hashlib.md5(f.read_bytes()).hexdigest(), "zip", members=members
        )  # fmt: skip
        for f, members in ((ann, SOURCES["coco"].archives[0].members), (imgs, None))
    )
    src = dataclasses.replace(SOURCES["coco"], archives=archives)
    rep = fetch_dataset("coco", tmp_path / "k", mirror=None, download=True, progress=False,
                        source=src)  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "k/annotations").iterdir()) == ["instances_train2017.json"]
    assert not rep.split("val").present and any("no val split" in w for w in rep.warnings)
    assert len(read_coco(tmp_path / "k", "train").image_ids) == 60 // COCO_IMAGES_DIVISOR


# --- the real mirror -------------------------------------------------------------------------


@pytest.mark.real_data
@pytest.mark.skipif(not REAL_MIRROR.is_dir(), reason="no real dataset mirror on this machine")
def test_real_mirror_mnist_verifies(tmp_path: Path) -> None:
    rep = fetch(REAL_MIRROR, "mnist", tmp_path)
    assert rep.verified_by == {"official-md5": 4} and rep.warnings == []
    x, y = read_mnist(tmp_path / "mnist", "test")
    assert x.shape == (10000, 28, 28, 1) and np.bincount(y).sum() == 10000
