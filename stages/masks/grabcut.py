"""Automatic foreground masks by graph cut (OpenCV GrabCut), for datasets without ground truth.

Wang et al. refined CIFAR-10 GrabCut masks by hand and Vaishnavi et al. seeded a min-cut/max-flow
with random pixels near the centre of GTSRB images; neither is reproducible as published, so
everything here is automatic and deterministic:

- GrabCut is initialised with a *mask*, never a rectangle: a rectangle covering the image leaves
  no background samples and OpenCV asserts. The mask has a thin definite-background frame,
  probable background around a centred (or given) prior region, probable foreground inside it,
  and optionally definite-foreground seed pixels.
- Tiny images (CIFAR's 32x32, GTSRB's smallest 25x25) are resized so that the short side is
  ``work_size`` before the cut: on a handful of pixels the colour models have too few samples
  and the smoothness term swamps the data term. Large images are shrunk to the same size, so
  every cut costs about the same.
- OpenCV's RNG (k-means initialisation of the colour models) is re-seeded before every image,
  and random seed pixels come from a generator keyed on the image's *content*: a mask depends
  only on the image and the config, never on worker count or processing order.
- A cut whose foreground is implausibly small or large (a flat image, an object the cut leaks
  out of) is replaced by the prior region and counted, so a bad mask is never silent.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

import cv2
import numpy as np

from stages.utils.layouts import dtype_error, layout_error, require_rgb_image
from stages.utils.progress import progress as progress_bar

log = logging.getLogger(__name__)

Seeding = Literal["centre", "roi"]
SEEDINGS: tuple[str, ...] = get_args(Seeding)

Box = tuple[int, int, int, int]
"""(x1, y1, x2, y2), inclusive pixel coordinates, as GTSRB's Roi.X1..Y2."""

# Upscaling a tiny image bilinearly gives smooth colour ramps instead of the blocky steps of
# nearest-neighbour, which GrabCut's edge term would read as strong object boundaries.
_UPSCALE = cv2.INTER_LINEAR
# Shrinking averages (area) so a work-size mask becomes a per-pixel foreground *fraction*.
_DOWNSCALE = cv2.INTER_AREA
# A pixel of the output mask is foreground when at least half of the work pixels it covers are:
# a majority vote, which keeps the foreground fraction unbiased (nearest-neighbour would pick
# one work pixel per output pixel and alias thin structures in or out at random).
_MAJORITY = 0.5
# GrabCut's colour models: OpenCV's fixed layout, 5 Gaussians x 13 doubles per model.
_GMM_PARAMS = 65


@dataclass(frozen=True)
class GrabCutConfig:
    """Settings of one automatic GrabCut; every field is a params.yaml value."""

    # Short side (pixels) of the image the cut runs on. 128 = 4x CIFAR's 32 and about the median
    # GTSRB image size, so real GTSRB images are rarely resampled much; masks looked no better
    # at 192 and cost ~2x.
    work_size: int = 128
    # GrabCut iterations (colour-model re-estimation + cut), fixed so the cost is predictable.
    # The masks barely change after ~5 (OpenCV's own examples use 1-5 per user interaction).
    iterations: int = 5
    # The centred prior rectangle leaves this fraction of each side outside: GTSRB images have a
    # 10% border around the sign by construction, and CIFAR objects fill most of the frame.
    rect_margin: float = 0.1
    # Width of the definite-background frame as a fraction of the work image's short side (at
    # least 1 pixel): 0.03 is about one original pixel of a 32x32 image, well inside GTSRB's
    # 10% (>= 5 pixel) border around the sign.
    frame: float = 0.03
    # Fall back to the prior region when the output foreground fraction is outside
    # [min_fraction, max_fraction] (design.md: "under ~10% or over ~90%").
    min_fraction: float = 0.1
    max_fraction: float = 0.9
    # cv2.setRNGSeed before every cut and the base of the per-image seed-pixel generator.
    seed: int = 0

    def __post_init__(self) -> None:
        if self.work_size < 16:
            raise ValueError(f"grabcut work_size must be >= 16 pixels, got {self.work_size}")
        if self.iterations < 1:
            raise ValueError(f"grabcut iterations must be >= 1, got {self.iterations}")
        if not 0.0 <= self.rect_margin < 0.5:
            raise ValueError(f"grabcut rect_margin must be in [0, 0.5), got {self.rect_margin}")
        if not 0.0 <= self.frame < 0.5:
            raise ValueError(f"grabcut frame must be in [0, 0.5), got {self.frame}")
        if not 0.0 <= self.min_fraction < self.max_fraction <= 1.0:
            raise ValueError(
                f"grabcut needs 0 <= min_fraction < max_fraction <= 1, got "
                f"{self.min_fraction}, {self.max_fraction}"
            )


@dataclass(frozen=True)
class SeedConfig:
    """How definite-foreground seeds are chosen for :func:`segment_seeded`."""

    # "centre": random pixels near the image centre (Vaishnavi et al.); "roi": the sign's
    # annotated bounding box is the prior (outside it is definite background), plus the same
    # random seeds around the box's centre.
    method: Seeding = "centre"
    # Number of random seed pixels. The paper gives no number; 16 covers a sign's central
    # pictogram without a single off-sign pixel mattering much.
    count: int = 16
    # Seeds are drawn uniformly in a disk of this radius, as a fraction of the short side of the
    # image (centre) or of the box (roi). 0.15 keeps them inside the inner ~1/3 of a sign, which
    # stays on the sign for circles, triangles and octagons alike.
    radius: float = 0.15

    def __post_init__(self) -> None:
        if self.method not in SEEDINGS:
            raise ValueError(f"seeding method {self.method!r} unknown; use one of {', '.join(SEEDINGS)}")
        if self.count < 0:
            raise ValueError(f"seed count must be >= 0, got {self.count}")
        if not 0.0 <= self.radius <= 0.5:
            raise ValueError(f"seed radius must be in [0, 0.5], got {self.radius}")


# --- geometry --------------------------------------------------------------------------------


def work_shape(height: int, width: int, work_size: int) -> tuple[int, int]:
    """(h, w) of the image the cut runs on: short side ``work_size``, aspect kept."""
    scale = work_size / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def centred_box(height: int, width: int, margin: float) -> Box:
    """The centred rectangle leaving ``margin`` of each side outside, inclusive coordinates."""
    mx, my = math.floor(margin * width), math.floor(margin * height)
    return mx, my, width - 1 - mx, height - 1 - my


def _scale_box(box: Box, src: tuple[int, int], dst: tuple[int, int]) -> Box:
    """Map an inclusive box from an (h, w) grid to another, covering the same area."""
    sy, sx = dst[0] / src[0], dst[1] / src[1]
    x1, y1, x2, y2 = box
    x1 = min(max(0, math.floor(x1 * sx)), dst[1] - 1)
    y1 = min(max(0, math.floor(y1 * sy)), dst[0] - 1)
    x2 = min(max(x1, math.ceil((x2 + 1) * sx) - 1), dst[1] - 1)
    y2 = min(max(y1, math.ceil((y2 + 1) * sy) - 1), dst[0] - 1)
    return x1, y1, x2, y2


def box_mask(shape: tuple[int, int], box: Box) -> np.ndarray:
    """Bool mask of an inclusive box."""
    m = np.zeros(shape, dtype=bool)
    x1, y1, x2, y2 = box
    m[y1 : y2 + 1, x1 : x2 + 1] = True
    return m


def image_rng(image: np.ndarray, seed: int) -> np.random.Generator:
    """A generator keyed on the image's content: the same image gets the same seed pixels
    wherever it sits in a dataset and whichever worker handles it."""
    key = zlib.crc32(np.ascontiguousarray(image).tobytes(), zlib.crc32(repr(image.shape).encode()))
    return np.random.default_rng([seed, key])


def disk_seeds(
    rng: np.random.Generator, centre: tuple[float, float], radius: float, count: int, shape: tuple[int, int]
) -> list[tuple[int, int]]:
    """``count`` (row, col) pixels uniform in a disk (clipped to the image)."""
    r = radius * np.sqrt(rng.uniform(0.0, 1.0, count))
    t = rng.uniform(0.0, 2.0 * np.pi, count)
    rows = np.clip(np.round(centre[0] + r * np.sin(t)), 0, shape[0] - 1).astype(int)
    cols = np.clip(np.round(centre[1] + r * np.cos(t)), 0, shape[1] - 1).astype(int)
    return list(zip(rows.tolist(), cols.tolist(), strict=True))


# --- the cut -----------------------------------------------------------------------------------


def _to_work(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    if (h, w) == image.shape[:2]:
        return np.ascontiguousarray(image)
    interp = _UPSCALE if h > image.shape[0] else _DOWNSCALE
    return np.ascontiguousarray(cv2.resize(image, (w, h), interpolation=interp))


def _downscale(mask: np.ndarray, out: tuple[int, int]) -> np.ndarray:
    if mask.shape == out:
        return mask.copy()
    frac = cv2.resize(mask.astype(np.float32), (out[1], out[0]), interpolation=_DOWNSCALE)
    return frac >= _MAJORITY


def _seed_pixels(
    seeds: Sequence[tuple[int, int]] | np.ndarray | None, src: tuple[int, int], dst: tuple[int, int]
) -> np.ndarray:
    """Seeds given on the input image (checked by :func:`_check_seeds`), as a bool mask on the
    work image."""
    out = np.zeros(dst, dtype=bool)
    if seeds is None:
        return out
    if isinstance(seeds, np.ndarray) and seeds.dtype == np.bool_:
        up = cv2.resize(seeds.astype(np.uint8), (dst[1], dst[0]), interpolation=cv2.INTER_NEAREST)
        return up.astype(bool)
    # Each seed covers its whole footprint on the work image (a 4x4 block when upscaling 4x): it
    # is a pixel of the *input* that the cut must keep, not one interpolated work pixel.
    for r, c in seeds:
        x1, y1, x2, y2 = _scale_box((c, r, c, r), src, dst)
        out[y1 : y2 + 1, x1 : x2 + 1] = True
    return out


def _check_seeds(seeds: object, src: tuple[int, int], where: str) -> None:
    """``seeds_fg``'s documented layouts: None, a bool (H, W) mask of the image's size, or
    (row, col) pairs (a sequence, or an integer (K, 2) array)."""
    wants = f"None, a bool (H, W) mask with H x W = {src[0]}x{src[1]}, or (row, col) pairs (K, 2)"
    if not isinstance(seeds, np.ndarray):
        return  # None or a sequence of pairs (unpacked, so a wrong pair fails on its own)
    if seeds.dtype == np.bool_:
        if seeds.shape != src:
            raise layout_error(where, "seeds_fg", seeds.shape, wants)
    elif seeds.ndim != 2 or seeds.shape[1] != 2:
        raise layout_error(where, "seeds_fg", seeds.shape, wants)
    elif not np.issubdtype(seeds.dtype, np.integer):
        raise dtype_error(where, "seeds_fg", seeds.dtype, wants)


def grabcut_seeded(
    image: np.ndarray,
    seeds_fg: Sequence[tuple[int, int]] | np.ndarray | None,
    cfg: GrabCutConfig,
    *,
    prior: Box | None = None,
    outside_prior_is_background: bool = False,
    out_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, bool]:
    """The general automatic GrabCut: (bool mask of shape ``out_size``, fell back?).

    ``seeds_fg`` ((row, col) pixels or a bool mask, on the input image) are definite foreground;
    ``prior`` (inclusive box on the input image; default the centred rectangle) is probable
    foreground and the rest probable background, or definite background when
    ``outside_prior_is_background`` (an annotated box: nothing outside it is the object). A thin
    frame is always definite background, so the background model is never empty. The mask is
    downscaled to ``out_size`` (default the image's size) by area + majority, straight from the
    work size, so it is resampled once only.

    Layouts: ``image`` uint8 (H, W, 3) RGB; ``seeds_fg`` None, bool (H, W) or (row, col) pairs;
    the result bool (out_h, out_w). Anything else is a ``ValueError`` naming the shapes.
    """
    require_rgb_image(image, "image", "grabcut_seeded")
    _check_seeds(seeds_fg, image.shape[:2], "grabcut_seeded")
    src = image.shape[:2]
    out = src if out_size is None else (int(out_size[0]), int(out_size[1]))
    shape = work_shape(src[0], src[1], cfg.work_size)
    work = _to_work(image, shape)
    box = centred_box(src[0], src[1], cfg.rect_margin) if prior is None else prior
    inside = box_mask(shape, _scale_box(box, src, shape))

    init = np.full(shape, cv2.GC_BGD if outside_prior_is_background else cv2.GC_PR_BGD, dtype=np.uint8)
    init[inside] = cv2.GC_PR_FGD
    seeds = _seed_pixels(seeds_fg, src, shape)
    init[seeds] = cv2.GC_FGD
    f = max(1, round(cfg.frame * min(shape)))
    init[:f, :] = init[-f:, :] = init[:, :f] = init[:, -f:] = cv2.GC_BGD

    fallback = _downscale(inside | seeds, out)
    if not ((init == cv2.GC_PR_FGD) | (init == cv2.GC_FGD)).any():
        return fallback, True
    cv2.setRNGSeed(cfg.seed)
    bgd = np.zeros((1, _GMM_PARAMS), np.float64)
    fgd = np.zeros((1, _GMM_PARAMS), np.float64)
    try:
        cv2.grabCut(work, init, None, bgd, fgd, cfg.iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error as exc:  # degenerate colour models on pathological images
        log.debug("grabcut failed (%s); using the prior region", exc)
        return fallback, True
    mask = _downscale((init == cv2.GC_FGD) | (init == cv2.GC_PR_FGD), out)
    frac = float(mask.mean())
    if not cfg.min_fraction <= frac <= cfg.max_fraction:
        return fallback, True
    return mask, False


def grabcut_rect(
    image: np.ndarray, cfg: GrabCutConfig, out_size: tuple[int, int] | None = None
) -> tuple[np.ndarray, bool]:
    """Fully automatic GrabCut from the centred rectangle alone (CIFAR-10, and the routine
    measured against ground truth): what Wang et al. started from before refining by hand.
    ``image``: uint8 (H, W, 3) RGB; returns a bool (out_h, out_w) mask and whether it fell back."""
    require_rgb_image(image, "image", "grabcut_rect")
    return grabcut_seeded(image, None, cfg, out_size=out_size)


def segment_seeded(
    image: np.ndarray,
    roi: Box | None,
    cfg: GrabCutConfig,
    seeding: SeedConfig,
    out_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, bool]:
    """The GTSRB segmenter: random seeds near the centre (of the image, or of the ROI box).

    "centre" follows Vaishnavi et al. (random pixels near the image centre + min-cut); the
    centred rectangle is the probable-foreground prior, so the colour model of the object is
    learnt from more than a few seed pixels. "roi" uses the CSV's sign box as the prior with
    definite background outside it, which the paper did not use but GTSRB provides.

    ``image``: uint8 (H, W, 3) RGB; returns a bool (out_h, out_w) mask and whether it fell back.
    """
    require_rgb_image(image, "image", "segment_seeded")
    h, w = image.shape[:2]
    rng = image_rng(image, cfg.seed)
    if seeding.method == "roi":
        if roi is None:
            raise ValueError("seeding 'roi' needs the sign's bounding box")
        box = _scale_box(roi, (h, w), (h, w))  # clip to the image
        x1, y1, x2, y2 = box
        centre = ((y1 + y2) / 2.0, (x1 + x2) / 2.0)
        radius = seeding.radius * min(x2 - x1 + 1, y2 - y1 + 1)
        seeds = disk_seeds(rng, centre, radius, seeding.count, (h, w))
        return grabcut_seeded(
            image, seeds, cfg, prior=box, outside_prior_is_background=True, out_size=out_size
        )
    centre = ((h - 1) / 2.0, (w - 1) / 2.0)
    seeds = disk_seeds(rng, centre, seeding.radius * min(h, w), seeding.count, (h, w))
    return grabcut_seeded(image, seeds, cfg, out_size=out_size)


# --- top-level workers (picklable for spawn) ----------------------------------------------------


@dataclass(frozen=True)
class RectJob:
    """``grabcut_rect`` as a picklable callable for :func:`masks_parallel`."""

    cfg: GrabCutConfig
    out_size: tuple[int, int] | None = None

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, bool]:
        return grabcut_rect(image, self.cfg, self.out_size)


@dataclass(frozen=True)
class SeededJob:
    """``segment_seeded`` over (image, roi) items, picklable for :func:`masks_parallel`."""

    cfg: GrabCutConfig
    seeding: SeedConfig
    out_size: tuple[int, int] | None = None

    def __call__(self, item: tuple[np.ndarray, Box | None]) -> tuple[np.ndarray, bool]:
        image, roi = item
        return segment_seeded(image, roi, self.cfg, self.seeding, self.out_size)


T = TypeVar("T")
R = TypeVar("R")


CHUNKS_PER_WORKER = 4
# Images per chunk at most: few enough round trips between processes, small enough to balance.
MAX_CHUNKSIZE = 16


def _worker_init() -> None:
    # One OpenCV thread per process: the pool already uses every core.
    cv2.setNumThreads(1)


def default_workers() -> int:
    """Cores this process may use (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def pool_plan(items: int, workers: int, max_chunksize: int) -> tuple[int, int]:
    """(workers, chunksize) for ``items`` images on at most ``workers`` processes.

    At least :data:`CHUNKS_PER_WORKER` chunks per worker, so that no worker idles at the end
    while another finishes a large last chunk; and no more workers than chunks, since each
    spawned worker pays seconds of start-up (it re-imports the parent's main module, torch
    included).
    """
    workers = max(1, int(workers))
    chunksize = max(1, min(max_chunksize, math.ceil(items / (CHUNKS_PER_WORKER * workers))))
    return min(workers, max(1, math.ceil(items / chunksize))), chunksize


def masks_parallel(
    items: Sequence[T],
    fn: Callable[[T], R],
    *,
    workers: int | None = None,
    progress: bool = True,
    chunksize: int = MAX_CHUNKSIZE,
    desc: str = "grabcut",
) -> list[R]:
    """``[fn(x) for x in items]`` over a spawn process pool, in input order.

    ``fn`` must be picklable (a top-level function or a frozen dataclass such as
    :class:`RectJob`); each result depends only on its item, so the output is identical for any
    ``workers``. Spawn, not fork: forking a parent that holds torch/OpenCV thread pools can
    deadlock. ``workers`` None = every core this process may use; 1 runs in-process.
    """
    n = len(items)
    workers, chunksize = pool_plan(n, default_workers() if workers is None else workers, chunksize)
    start = time.perf_counter()
    bar = progress_bar(None, total=n, desc=desc, unit="img", enabled=progress)
    results: list[R] = []
    if workers == 1:
        for x in items:
            results.append(fn(x))
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers, initializer=_worker_init) as pool:
            for r in pool.imap(fn, items, chunksize=chunksize):
                results.append(r)
                bar.update()
    bar.close()
    elapsed = time.perf_counter() - start
    log.info(
        "%s: %d images in %.1f s (%.1f images/s, %d worker%s)",
        desc, n, elapsed, n / elapsed if elapsed > 0 else float("inf"), workers, "" if workers == 1 else "s",
    )  # fmt: skip
    return results


# --- agreement with ground truth -------------------------------------------------------------------


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two bool masks of one shape; 1.0 when both are empty (they agree)."""
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape:
        raise layout_error("iou", "truth", truth.shape, f"pred's shape {tuple(pred.shape)}")
    union = int(np.count_nonzero(pred | truth))
    return 1.0 if union == 0 else int(np.count_nonzero(pred & truth)) / union


def iou_batch(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-sample IoU of (N, H, W) bool masks, float64 (N,)."""
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    if pred.ndim != 3:
        raise layout_error("iou_batch", "pred", pred.shape, "bool masks (N, H, W)")
    if pred.shape != truth.shape:
        raise layout_error("iou_batch", "truth", truth.shape, f"pred's shape (N, H, W) = {tuple(pred.shape)}")
    inter = np.count_nonzero(pred & truth, axis=(1, 2))
    union = np.count_nonzero(pred | truth, axis=(1, 2))
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))
