"""Dataset building throughput: GrabCut masks on all cores vs one process; COCO-IC source images/s.

In detail: GrabCut masks on all cores against a single-process loop, and the MS-COCO-IC /
Segment-6 builder's source images per second, side by side in one run.

    uv run python bench/dataset_build.py --cifar-mirror ../shared/datasets \
        --coco-mirror ../shared/datasets --images 64 --repeats 3 --out bench/results/dataset_build.json

Without ``--cifar-mirror`` / ``--coco-mirror`` the images come from the project's synthetic
writer (:func:`stages.data.synthetic.write_synthetic_mirror`) in a temporary folder, so the
script runs anywhere; synthetic images are not real photographs and cost a different time per
image (GrabCut converges faster on a flat shape over texture; synthetic COCO images are 64-80
pixels wide, real ones ~640), so document figures from the real mirror.

What it measures.

GrabCut (``--parts grabcut``): the first ``--images`` CIFAR-10 test images, masked with the
GrabCut settings of params.yaml's ``datasets.cifar10_grabcut`` at ``--scale``.

* ``loop``: a plain single-process loop, ``RectJob(cfg)(image)`` for each image.
* ``pool``: the pipeline's path, :func:`stages.data.cifar_grabcut.cifar_grabcut_masks`, whose
  spawn pool (:func:`stages.masks.grabcut.masks_parallel`) is timed from start to close, as a
  dataset build pays it: once with every core this process may use (``default_workers()``) and
  once per count in ``--workers``.
* ``pool start``: the same pool running a no-op on one item per worker, i.e. what starting and
  closing the pool costs before any image is cut. A spawned worker re-imports the main module,
  so this includes the imports of this script (torch, through bench.common), as a worker under
  ``python -m stages.prepare`` re-imports stages.prepare (torch too).

The speed-up is the loop's seconds over the pool's; the ideal speed-up is the number of
workers that can run at once (workers, at most the usable cores, at most the images); parallel
efficiency = speed-up / ideal. "chunk cap" is the best speed-up the pool's chunking allows
when every image costs the same: the pool hands out chunks of images (``pool_plan`` in
stages/masks/grabcut.py: at most 16, at least 4 chunks per worker), so one worker may get more
images than the others. "w/o start" subtracts the pool
start: what the pool would give if it were already running. Every mask (and the number of
fallbacks to the prior rectangle) is checked to be identical between the loop and each pool;
the script fails if one is not.

COCO-IC build (``--parts coco_ic``): :func:`stages.data.coco_ic.build_coco_ic` on one COCO
folder in the official layout (``annotations/instances_{train,val}2017.json`` + images) with
params.yaml's ``coco_ic`` and ``segment6`` configs, beside a ``decode only`` floor that parses
the same annotation files and decodes every listed image, and nothing else. Source images/s =
images the builder decoded (those holding an object it may keep; read from its stats) per
second of build wall time, JSON parsing included; "listed/s" counts every image of the
annotation files instead. "vs decode" = the build's decoded images/s over the floor's: the share
of the per-image cost that is reading and decoding JPEGs.

Timing follows bench/common.py: cases interleaved, each figure the median of ``--repeats``.
Numbers from a shared machine are noisy; compare the ratios of one run, not absolute figures
across runs or machines.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

# Run as a script (`python bench/dataset_build.py`), Python puts bench/ on the path, not the
# repository root that holds `bench` and `stages`.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import interleaved_medians, machine, markdown_table, write_record  # noqa: E402
from stages.config import Params  # noqa: E402
from stages.data.cifar_grabcut import CifarGrabCutConfig, cifar_grabcut_masks  # noqa: E402
from stages.data.coco_ic import CocoIcConfig, build_coco_ic, segment6_config  # noqa: E402
from stages.data.readers import read_cifar10, read_coco  # noqa: E402
from stages.data.sources import CIFAR10_BATCH_DIR  # noqa: E402
from stages.data.synthetic import COCO_IMAGES_DIVISOR, write_synthetic_mirror  # noqa: E402
from stages.masks.grabcut import (  # noqa: E402
    MAX_CHUNKSIZE,
    GrabCutConfig,
    RectJob,
    default_workers,
    masks_parallel,
    pool_plan,
)

PARTS = ("grabcut", "coco_ic")
COCO_DATASETS = ("coco_ic", "segment6")  # params.yaml datasets built by the coco_ic builder
COCO_SPLITS = ("train", "val")
CPU = torch.device("cpu")


@dataclass(frozen=True)
class Images:
    """What GrabCut runs on, and a sentence that says where the images came from."""

    pixels: np.ndarray  # uint8 (N, 32, 32, 3)
    source: str


class _Once(logging.Filter):
    """Pass each distinct message once: the builder repeats its warnings on every repeat."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def _nothing(item: object) -> None:
    """The pool-start probe's job (top level, so spawned workers can unpickle it)."""


# ------------------------------------------------------------------ inputs


def parse_workers(text: str) -> list[int]:
    try:
        counts = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"--workers: expected comma-separated integers, got {text!r}") from None
    if any(c < 1 for c in counts):
        raise SystemExit(f"--workers: every count must be >= 1, got {text!r}")
    return sorted(set(counts) | {default_workers()})


def parse_parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise SystemExit(f"--parts: unknown {unknown}; use a comma-separated subset of {', '.join(PARTS)}")
    return [p for p in PARTS if p in parts]


def dataset_dir(mirror: Path, folder: str, marker: str) -> Path:
    """``mirror`` may be a whole mirror (``shared/datasets``) or the dataset's own folder."""
    for candidate in (mirror / folder, mirror):
        if (candidate / marker).exists():
            return candidate
    raise SystemExit(f"{mirror}: neither it nor {mirror / folder} holds {marker}")


def load_configs(params_path: Path, scale: str | None) -> tuple[GrabCutConfig, dict[str, CocoIcConfig], str]:
    """The GrabCut and COCO-IC settings the pipeline would use; library defaults without a params file."""
    if not params_path.is_file():
        defaults = {"coco_ic": CocoIcConfig(), "segment6": segment6_config()}
        return CifarGrabCutConfig().grabcut, defaults, f"library defaults ({params_path} not found)"
    params = Params.load(params_path, scale)
    cifar = params.dataset("cifar10_grabcut").options.grabcut
    if cifar is None:
        raise SystemExit(f"{params_path}: datasets.cifar10_grabcut has no grabcut options")
    coco = {name: params.dataset(name).options for name in COCO_DATASETS}
    return cifar.grabcut, coco, f"{params_path} at scale {params.scale}"


def grabcut_images(mirror: Path | None, count: int, scratch: Path) -> Images:
    if count < 1:
        raise SystemExit(f"--images must be >= 1, got {count}")
    if mirror is None:
        # One training image per batch file: the writer makes all five, only the test batch is used.
        root = write_synthetic_mirror(scratch / "cifar", datasets=("cifar10",), n_train=5, n_test=count)
        pixels, _ = read_cifar10(root / "cifar10", "test")
        return Images(pixels, "synthetic CIFAR-10 (stages.data.synthetic: a shape on a textured background)")
    folder = dataset_dir(mirror, "cifar10", f"{CIFAR10_BATCH_DIR}/test_batch")
    pixels, _ = read_cifar10(folder, "test")
    if len(pixels) < count:
        raise SystemExit(f"--images {count}: {folder} holds only {len(pixels)} test images")
    return Images(pixels[:count], f"CIFAR-10 test images 0..{count - 1} from {folder}")


def coco_folder(mirror: Path | None, synthetic_images: int, scratch: Path) -> tuple[Path, str]:
    if mirror is not None:
        folder = dataset_dir(mirror, "coco", "annotations")
        return folder, f"COCO in the official layout at {folder}"
    if synthetic_images < 3:
        raise SystemExit(
            f"--coco-images must be >= 3 (the synthetic writer's minimum), got {synthetic_images}"
        )
    # The writer makes max(3, n // COCO_IMAGES_DIVISOR) COCO images per split from n.
    n = COCO_IMAGES_DIVISOR * synthetic_images
    root = write_synthetic_mirror(scratch / "coco", datasets=("coco",), n_train=n, n_test=n)
    return root / "coco", f"synthetic COCO (stages.data.synthetic), {synthetic_images} images per split"


# ------------------------------------------------------------------ GrabCut


def chunk_cap(images: int, workers: int, chunksize: int) -> float:
    """The speed-up ``workers`` can reach when the pool hands out ``chunksize`` images at a time
    and every image costs the same: the busiest worker's share of the images bounds it."""
    sizes = [min(chunksize, images - start) for start in range(0, images, chunksize)]
    return images / max(sum(sizes[k::workers]) for k in range(workers))


def bench_grabcut(
    images: np.ndarray, cfg: GrabCutConfig, worker_counts: list[int], *, repeats: int, warmup: int
) -> list[dict[str, Any]]:
    n = len(images)
    cores = default_workers()
    job = RectJob(cfg)
    pool_cfg = CifarGrabCutConfig(grabcut=cfg)
    # The last output of each case, to check that every path gives the same masks.
    outputs: dict[str, tuple[np.ndarray, int]] = {}

    def loop() -> None:
        results = [job(image) for image in images]
        outputs["loop"] = (np.stack([m for m, _ in results]), sum(int(fb) for _, fb in results))

    def pool(workers: int) -> Callable[[], None]:
        def run() -> None:
            masks, stats = cifar_grabcut_masks(images, pool_cfg, workers=workers, progress=False)
            outputs[f"pool {workers}"] = (masks, int(stats["fallbacks"]))

        return run

    def pool_start(workers: int) -> Callable[[], None]:
        # One item per worker, so the plan starts exactly ``workers`` processes.
        return lambda: masks_parallel(
            [None] * workers, _nothing, workers=workers, progress=False, chunksize=1
        )

    # masks_parallel's plan: how many workers it really starts, and its chunk size (1: in-process).
    plans = {w: pool_plan(n, w, MAX_CHUNKSIZE) for w in worker_counts}
    effective = {w: plans[w][0] for w in worker_counts}
    cases: dict[str, Callable[[], None]] = {"loop": loop}
    for w in worker_counts:
        cases[f"pool {w}"] = pool(w)
    for count in sorted({e for e in effective.values() if e > 1}):
        cases[f"start {count}"] = pool_start(count)
    seconds = interleaved_medians(cases, CPU, repeats=repeats, warmup=warmup)

    reference_masks, reference_fallbacks = outputs["loop"]
    rows = [
        {
            "path": "loop",
            "workers": 1,
            "seconds": seconds["loop"],
            "images_per_s": n / seconds["loop"],
            "speedup": 1.0,
            "ideal": 1,
            "chunk_cap": 1.0,
            "efficiency": 1.0,
            "pool_start_s": 0.0,
            "speedup_without_start": 1.0,
            "fallbacks": reference_fallbacks,
            "masks_identical": True,
        }
    ]
    for w in worker_counts:
        masks, fallbacks = outputs[f"pool {w}"]
        t = seconds[f"pool {w}"]
        start = seconds.get(f"start {effective[w]}", 0.0)
        ideal = min(effective[w], cores)
        speedup = seconds["loop"] / t
        rows.append(
            {
                "path": "pool (all cores)" if w == cores else "pool",
                "workers": effective[w],
                "chunksize": plans[w][1],
                "seconds": t,
                "images_per_s": n / t,
                "speedup": speedup,
                "ideal": ideal,
                "chunk_cap": min(float(ideal), chunk_cap(n, effective[w], plans[w][1])),
                "efficiency": speedup / ideal,
                "pool_start_s": start,
                # Noise can make the start probe outlast the whole run on tiny inputs.
                "speedup_without_start": seconds["loop"] / (t - start) if t > start else None,
                "fallbacks": fallbacks,
                "masks_identical": bool(np.array_equal(masks, reference_masks))
                and fallbacks == reference_fallbacks,
            }
        )
    return rows


def grabcut_table(rows: list[dict[str, Any]]) -> str:
    columns = ["path", "workers", "seconds", "images/s", "speed-up", "ideal", "chunk cap", "efficiency"]
    columns += ["pool start s"]
    columns += ["speed-up w/o start", "masks identical"]
    return markdown_table(
        columns,
        [
            [
                r["path"],
                r["workers"],
                f"{r['seconds']:.2f}",
                f"{r['images_per_s']:.1f}",
                f"{r['speedup']:.2f}x",
                f"{r['ideal']}x",
                f"{r['chunk_cap']:.2f}x",
                f"{r['efficiency']:.0%}",
                f"{r['pool_start_s']:.2f}",
                "n/a" if r["speedup_without_start"] is None else f"{r['speedup_without_start']:.2f}x",
                "yes" if r["masks_identical"] else "NO",
            ]
            for r in rows
        ],
    )


# ------------------------------------------------------------------ COCO-IC


def bench_coco(
    folder: Path, configs: dict[str, CocoIcConfig], *, repeats: int, warmup: int
) -> list[dict[str, Any]]:
    stats_of: dict[str, dict[str, Any]] = {}
    decoded_floor: list[int] = []

    def build(name: str, cfg: CocoIcConfig) -> Callable[[], None]:
        def run() -> None:
            _, stats = build_coco_ic(folder, cfg, progress=False)
            stats_of[name] = stats

        return run

    def decode_only() -> None:
        count = 0
        for split in COCO_SPLITS:
            source = read_coco(folder, split)
            for image_id in source.image_ids:
                source.load_image(image_id)
                count += 1
        decoded_floor[:] = [count]

    cases: dict[str, Callable[[], None]] = {name: build(name, cfg) for name, cfg in configs.items()}
    cases["decode only"] = decode_only
    quiet = _Once()
    builder_log = logging.getLogger("stages.data.coco_ic")
    builder_log.addFilter(quiet)
    try:
        seconds = interleaved_medians(cases, CPU, repeats=repeats, warmup=warmup)
    finally:
        builder_log.removeFilter(quiet)

    floor_rate = decoded_floor[0] / seconds["decode only"]
    rows = []
    for name in configs:
        splits = stats_of[name]["splits"].values()
        listed = sum(s["source_images"] for s in splits)
        decoded = sum(s["images_decoded"] for s in splits)
        t = seconds[name]
        rows.append(
            {
                "case": f"{name} build",
                "source_images": listed,
                "images_decoded": decoded,
                "samples": sum(s["samples"] for s in splits),
                "seconds": t,
                "decoded_per_s": decoded / t,
                "listed_per_s": listed / t,
                "vs_decode_only": decoded / t / floor_rate,
                # The builder's own timing of its crop loops (no JSON parsing), last repeat only.
                "builder_throughput": stats_of[name]["throughput"],
            }
        )
    rows.append(
        {
            "case": "decode only",
            "source_images": decoded_floor[0],
            "images_decoded": decoded_floor[0],
            "samples": 0,
            "seconds": seconds["decode only"],
            "decoded_per_s": floor_rate,
            "listed_per_s": floor_rate,
            "vs_decode_only": 1.0,
            "builder_throughput": None,
        }
    )
    return rows


def coco_table(rows: list[dict[str, Any]]) -> str:
    columns = ["case", "source images", "decoded", "samples", "seconds", "source images/s", "listed/s"]
    columns += ["vs decode"]
    return markdown_table(
        columns,
        [
            [
                r["case"],
                r["source_images"],
                r["images_decoded"],
                r["samples"],
                f"{r['seconds']:.2f}",
                f"{r['decoded_per_s']:.1f}",
                f"{r['listed_per_s']:.1f}",
                f"{r['vs_decode_only']:.2f}x",
            ]
            for r in rows
        ],
    )


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns the record that ``--out`` receives."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from: {', '.join(PARTS)}")
    p.add_argument("--images", type=int, default=64, help="GrabCut: the first N CIFAR-10 test images")
    p.add_argument(
        "--workers",
        default="",
        help="GrabCut: extra pool sizes, comma-separated (all usable cores are always measured)",
    )
    p.add_argument("--repeats", type=int, default=3, help="timed rounds; each figure is their median")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds before them")
    p.add_argument("--params", type=Path, default=REPO_ROOT / "params.yaml")
    p.add_argument("--scale", help="params.yaml scale (default: the file's own)")
    p.add_argument(
        "--cifar-mirror", type=Path, help="a raw-data mirror or its cifar10/ folder (default: synthetic)"
    )
    p.add_argument(
        "--coco-mirror", type=Path, help="a raw-data mirror or its coco/ folder (default: synthetic)"
    )
    p.add_argument("--coco-images", type=int, default=300, help="synthetic COCO only: images per split")
    p.add_argument("--out", type=Path, help="write the measurements here (JSON)")
    args = p.parse_args(argv)

    parts = parse_parts(args.parts)
    worker_counts = parse_workers(args.workers)
    grabcut_cfg, coco_cfgs, config_source = load_configs(args.params, args.scale)
    record: dict[str, Any] = {
        "command": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "command_line": shlex.join(
            ["python", "bench/dataset_build.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "machine": machine(CPU)
        | {
            "usable_cores": default_workers(),
            "opencv": cv2.__version__,
            "opencv_threads": cv2.getNumThreads(),
            # Without cached bytecode every spawned worker recompiles what it imports: a slower pool start.
            "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
        },
        "config_source": config_source,
    }
    print(f"settings: {config_source}; machine: {record['machine']}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-dataset-build-") as tmp:
        scratch = Path(tmp)
        if "grabcut" in parts:
            images = grabcut_images(args.cifar_mirror, args.images, scratch)
            print(
                f"\ngrabcut: {len(images.pixels)} images ({images.source}), workers {worker_counts}",
                flush=True,
            )
            rows = bench_grabcut(
                images.pixels, grabcut_cfg, worker_counts, repeats=args.repeats, warmup=args.warmup
            )
            record["grabcut"] = {
                "images": len(images.pixels),
                "image_source": images.source,
                "pool_max_chunksize": MAX_CHUNKSIZE,
                "config": asdict(grabcut_cfg),
                "rows": rows,
            }
            print()
            print(grabcut_table(rows))
        if "coco_ic" in parts:
            folder, source = coco_folder(args.coco_mirror, args.coco_images, scratch)
            print(f"\ncoco_ic: {source}", flush=True)
            rows = bench_coco(folder, coco_cfgs, repeats=args.repeats, warmup=args.warmup)
            record["coco_ic"] = {
                "source": source,
                "configs": {name: asdict(cfg) for name, cfg in coco_cfgs.items()},
                "rows": rows,
            }
            print()
            print(coco_table(rows))

    write_record(args.out, record)
    differing = [r["workers"] for r in record.get("grabcut", {}).get("rows", []) if not r["masks_identical"]]
    if differing:
        raise SystemExit(f"GrabCut masks differ from the single-process loop's with workers {differing}")
    return record


if __name__ == "__main__":
    main()
