"""Official sources of the raw datasets: archives, checksums and the on-disk layout.

Everything that is a fact about the outside world (where the publishers host the data, the
checksums they or torchvision publish, how many files a complete copy has) lives here, so
that :mod:`stages.data.fetch` and the readers hold only logic. The layout of each dataset
folder is the official one, identical to ``<mirror>/<folder>/`` of a local mirror such as
``shared/datasets``:

- ``mnist/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``
- ``cifar10/cifar-10-batches-py/{batches.meta,data_batch_1..5,test_batch}``
- ``gtsrb/GTSRB/Final_Training/Images/000NN/{*.ppm,GT-000NN.csv}``,
  ``gtsrb/GTSRB/Final_Test/Images/*.ppm`` and ``gtsrb/GT-final_test.csv``
- ``coco/annotations/instances_{train2017,val2017}.json``, ``coco/{train2017,val2017}/*.jpg``
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ArchiveKind = Literal["file", "tar", "zip"]


@dataclass(frozen=True)
class Archive:
    """One downloadable file as its publisher distributes it.

    ``kind`` says how it becomes part of the official layout: ``file`` is stored as is at
    ``target`` (MNIST ships its .gz files directly); ``tar``/``zip`` are unpacked into
    ``target`` (a folder relative to the dataset folder), keeping only members that match one
    of ``members`` (glob patterns) when that is given, because e.g. the COCO annotation zip
    carries captions and keypoints that no stage reads.
    """

    filename: str
    urls: tuple[str, ...]
    md5: str
    kind: ArchiveKind
    target: str = ""
    members: tuple[str, ...] | None = None
    split: str | None = None


@dataclass(frozen=True)
class OfficialFile:
    """The published md5 (and size, only where known with certainty) of one unpacked file."""

    md5: str
    size: int | None = None


@dataclass(frozen=True)
class SplitSpec:
    """What makes a split present, how complete it is, and what happens when it is missing.

    A split is *present* when every path in ``needs`` exists and ``count`` (a glob relative to
    the dataset folder) matches at least one file. ``official_count`` is how many such files
    a complete copy has; fewer means a partial mirror, which is accepted with a warning.
    ``required`` splits must be present because the publisher ships them in the same archive
    as the rest (a mirror without them is broken); optional ones ship separately and may be
    left out, in which case ``missing_hint`` says how the pipeline makes up for it.
    """

    name: str
    count: str
    official_count: int
    unit: str
    needs: tuple[str, ...] = ()
    required: bool = True
    missing_hint: str = ""
    partial_hint: str = ""


@dataclass(frozen=True)
class DatasetSource:
    """Everything fetch needs to know about one dataset."""

    name: str
    folder: str
    archives: tuple[Archive, ...]
    splits: tuple[SplitSpec, ...]
    official_files: dict[str, OfficialFile] = field(default_factory=dict)
    needs: tuple[str, ...] = ()


# --- MNIST -------------------------------------------------------------------------------
# Yann LeCun's site is the original host but often refuses downloads; torchvision's S3 copy
# holds the identical files (same md5), so both are tried in order.
_MNIST_HOSTS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": OfficialFile("f68b3c2dcbeaaa9fbdd348bbdeb94873", 9_912_422),
    "train-labels-idx1-ubyte.gz": OfficialFile("d53e105ee54ea40749a09fcbcd1e9432", 28_881),
    "t10k-images-idx3-ubyte.gz": OfficialFile("9fb629c4189551a2d022fa330f9573f3", 1_648_877),
    "t10k-labels-idx1-ubyte.gz": OfficialFile("ec29112dd5afa0611ce80d1b7f02629c", 4_542),
}

MNIST = DatasetSource(
    name="mnist",
    folder="mnist",
    archives=tuple(
        Archive(
            filename=name,
            urls=tuple(host + name for host in _MNIST_HOSTS),
            md5=info.md5,
            kind="file",
            target=f"raw/{name}",
            split="train" if name.startswith("train") else "test",
        )
        for name, info in _MNIST_FILES.items()
    ),
    splits=(
        SplitSpec(
            "train",
            count="raw/train-*-ubyte.gz",
            official_count=2,
            unit="files",
            needs=("raw/train-images-idx3-ubyte.gz", "raw/train-labels-idx1-ubyte.gz"),
        ),
        SplitSpec(
            "test",
            count="raw/t10k-*-ubyte.gz",
            official_count=2,
            unit="files",
            needs=("raw/t10k-images-idx3-ubyte.gz", "raw/t10k-labels-idx1-ubyte.gz"),
        ),
    ),
    official_files={f"raw/{name}": info for name, info in _MNIST_FILES.items()},
)

# --- CIFAR-10 (python version) -------------------------------------------------------------
CIFAR10_BATCH_DIR = "cifar-10-batches-py"
CIFAR10_TRAIN_BATCHES = tuple(f"data_batch_{k}" for k in range(1, 6))

CIFAR10 = DatasetSource(
    name="cifar10",
    folder="cifar10",
    archives=(
        Archive(
            filename="cifar-10-python.tar.gz",
            urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
            md5="c58f30108f718f92721af3b95e74349a",
            kind="tar",
            target="",
        ),
    ),
    splits=(
        SplitSpec(
            "train",
            count=f"{CIFAR10_BATCH_DIR}/data_batch_[1-5]",
            official_count=5,
            unit="batches of 10,000 images",
            partial_hint="the training set will be only the batches present",
        ),
        SplitSpec(
            "test",
            count=f"{CIFAR10_BATCH_DIR}/test_batch",
            official_count=1,
            unit="batch",
            needs=(f"{CIFAR10_BATCH_DIR}/test_batch",),
        ),
    ),
    official_files={
        f"{CIFAR10_BATCH_DIR}/batches.meta": OfficialFile("5ff9c542aee3614f3951f8cda6e48888", 158),
        f"{CIFAR10_BATCH_DIR}/data_batch_1": OfficialFile("c99cafc152244af753f735de768cd75f"),
        f"{CIFAR10_BATCH_DIR}/data_batch_2": OfficialFile("d4bba439e000b95fd0a9bffe97cbabec"),
        f"{CIFAR10_BATCH_DIR}/data_batch_3": OfficialFile("54ebc095f3ab1f0389bbae665268c751"),
        f"{CIFAR10_BATCH_DIR}/data_batch_4": OfficialFile("634d18415352ddfa80567beed471001a"),
        f"{CIFAR10_BATCH_DIR}/data_batch_5": OfficialFile("482c414d41f54cd18b22e5b47cb7c3cb"),
        f"{CIFAR10_BATCH_DIR}/test_batch": OfficialFile("40351d587109b95175f43aff81a1287e"),
    },
    needs=(f"{CIFAR10_BATCH_DIR}/batches.meta",),
)

# --- GTSRB ----------------------------------------------------------------------------------
# sid.erda.dk is where the benchmark's own page (benchmark.ini.rub.de) now points.
_GTSRB_HOSTS = (
    "https://sid.erda.dk/public/archives/daaeac0d7ce1152aea9b61d9f1e19370/",
    "http://benchmark.ini.rub.de/Dataset/",
)
GTSRB_TRAIN_DIR = "GTSRB/Final_Training/Images"
GTSRB_TEST_DIR = "GTSRB/Final_Test/Images"
GTSRB_TEST_CSV = "GT-final_test.csv"
GTSRB_HEADER = ("Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId")
GTSRB_NUM_CLASSES = 43

GTSRB = DatasetSource(
    name="gtsrb",
    folder="gtsrb",
    archives=(
        Archive(
            filename="GTSRB_Final_Training_Images.zip",
            urls=tuple(h + "GTSRB_Final_Training_Images.zip" for h in _GTSRB_HOSTS),
            md5="f33fd80ac59bff73c82d25ab499e03a3",
            kind="zip",
            split="train",
        ),
        Archive(
            filename="GTSRB_Final_Test_Images.zip",
            urls=tuple(h + "GTSRB_Final_Test_Images.zip" for h in _GTSRB_HOSTS),
            md5="c7e4e6327067d32654124b0fe9e82185",
            kind="zip",
            split="test",
        ),
        Archive(
            filename="GTSRB_Final_Test_GT.zip",
            urls=tuple(h + "GTSRB_Final_Test_GT.zip" for h in _GTSRB_HOSTS),
            md5="fe31e9c9270bbcd7b84b7f21a9d9d9e5",
            kind="zip",
            members=(GTSRB_TEST_CSV,),
            split="test",
        ),
    ),
    splits=(
        SplitSpec(
            "train",
            count=f"{GTSRB_TRAIN_DIR}/000[0-9][0-9]/*.ppm",
            official_count=39_209,
            unit="images",
            partial_hint="training uses only the images present",
        ),
        SplitSpec(
            "test",
            count=f"{GTSRB_TEST_DIR}/*.ppm",
            official_count=12_630,
            unit="images",
            needs=(GTSRB_TEST_CSV,),
            required=False,
            missing_hint=(
                "the test split will be made downstream by holding out whole tracks of the "
                "training set (stages.data.readers.split_gtsrb_by_track)"
            ),
            partial_hint="the test split is only the images present",
        ),
    ),
)

# --- MS-COCO 2017 ------------------------------------------------------------------------------
_COCO_HOST = "http://images.cocodataset.org/"
COCO_SPLITS = {"train": "train2017", "val": "val2017"}
# The official COCO 2017 category list (80 categories, ids 1-90 with gaps): (id, name,
# supercategory), as instances_*2017.json's "categories" lists them.
COCO_CATEGORIES: tuple[tuple[int, str, str], ...] = (
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"),
    (4, "motorcycle", "vehicle"), (5, "airplane", "vehicle"), (6, "bus", "vehicle"),
    (7, "train", "vehicle"), (8, "truck", "vehicle"), (9, "boat", "vehicle"),
    (10, "traffic light", "outdoor"), (11, "fire hydrant", "outdoor"),
    (13, "stop sign", "outdoor"), (14, "parking meter", "outdoor"), (15, "bench", "outdoor"),
    (16, "bird", "animal"), (17, "cat", "animal"), (18, "dog", "animal"),
    (19, "horse", "animal"), (20, "sheep", "animal"), (21, "cow", "animal"),
    (22, "elephant", "animal"), (23, "bear", "animal"), (24, "zebra", "animal"),
    (25, "giraffe", "animal"), (27, "backpack", "accessory"), (28, "umbrella", "accessory"),
    (31, "handbag", "accessory"), (32, "tie", "accessory"), (33, "suitcase", "accessory"),
    (34, "frisbee", "sports"), (35, "skis", "sports"), (36, "snowboard", "sports"),
    (37, "sports ball", "sports"), (38, "kite", "sports"), (39, "baseball bat", "sports"),
    (40, "baseball glove", "sports"), (41, "skateboard", "sports"),
    (42, "surfboard", "sports"), (43, "tennis racket", "sports"), (44, "bottle", "kitchen"),
    (46, "wine glass", "kitchen"), (47, "cup", "kitchen"), (48, "fork", "kitchen"),
    (49, "knife", "kitchen"), (50, "spoon", "kitchen"), (51, "bowl", "kitchen"),
    (52, "banana", "food"), (53, "apple", "food"), (54, "sandwich", "food"),
    (55, "orange", "food"), (56, "broccoli", "food"), (57, "carrot", "food"),
    (58, "hot dog", "food"), (59, "pizza", "food"), (60, "donut", "food"),
    (61, "cake", "food"), (62, "chair", "furniture"), (63, "couch", "furniture"),
    (64, "potted plant", "furniture"), (65, "bed", "furniture"),
    (67, "dining table", "furniture"), (70, "toilet", "furniture"), (72, "tv", "electronic"),
    (73, "laptop", "electronic"), (74, "mouse", "electronic"), (75, "remote", "electronic"),
    (76, "keyboard", "electronic"), (77, "cell phone", "electronic"),
    (78, "microwave", "appliance"), (79, "oven", "appliance"), (80, "toaster", "appliance"),
    (81, "sink", "appliance"), (82, "refrigerator", "appliance"), (84, "book", "indoor"),
    (85, "clock", "indoor"), (86, "vase", "indoor"), (87, "scissors", "indoor"),
    (88, "teddy bear", "indoor"), (89, "hair drier", "indoor"), (90, "toothbrush", "indoor"),
)  # fmt: skip

COCO = DatasetSource(
    name="coco",
    folder="coco",
    archives=(
        Archive(
            filename="annotations_trainval2017.zip",
            urls=(_COCO_HOST + "annotations/annotations_trainval2017.zip",),
            md5="f4bbac642086de4f52a3fdda2de5fa2c",
            kind="zip",
            members=("annotations/instances_train2017.json", "annotations/instances_val2017.json"),
        ),
        Archive(
            filename="train2017.zip",
            urls=(_COCO_HOST + "zips/train2017.zip",),
            md5="cced6f7f71b7629ddf16f17bbcfab6b2",
            kind="zip",
            split="train",
        ),
        Archive(
            filename="val2017.zip",
            urls=(_COCO_HOST + "zips/val2017.zip",),
            md5="442b8da7639aecaf257c1dceb8ba8c80",
            kind="zip",
            split="val",
        ),
    ),
    splits=(
        SplitSpec(
            "train",
            count="train2017/*.jpg",
            official_count=118_287,
            unit="images",
            needs=("annotations/instances_train2017.json",),
            partial_hint="training uses only the images present (the json lists exactly those)",
        ),
        SplitSpec(
            "val",
            count="val2017/*.jpg",
            official_count=5_000,
            unit="images",
            needs=("annotations/instances_val2017.json",),
            required=False,
            missing_hint="the evaluation split will be made downstream by holding out train images",
            partial_hint="evaluation uses only the images present (the json lists exactly those)",
        ),
    ),
)

SOURCES: dict[str, DatasetSource] = {s.name: s for s in (MNIST, CIFAR10, GTSRB, COCO)}


def get_source(name: str) -> DatasetSource:
    """Look a dataset up by name, with an error that lists the known ones."""
    from stages.utils.errors import DataError

    try:
        return SOURCES[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(SOURCES))}") from None
