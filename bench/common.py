"""What every benchmark script shares: timing, the machine's description, trained models and
correctly classified images, and writing a run's record (JSON) and table (Markdown).

Timing rule for every script: the numbers that a ratio compares are measured in the same run,
interleaved (A, B, A, B, ...), and each is the *median* of its repeats, so a burst of load from
another process on a shared machine hits both sides instead of one.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# Run as a script (`python bench/x.py`), Python puts bench/ on the path, not the repository root.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from stages.data.processed import load_split  # noqa: E402
from stages.utils.io import atomic_open  # noqa: E402

SCAN_BATCH = 512  # images per forward pass when looking for correctly classified ones


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a wall-clock time covers it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_of(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall time of one call of ``fn``, GPU work included."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def interleaved_medians(
    cases: dict[str, Callable[[], Any]], device: torch.device, *, repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median seconds per case over ``repeats`` rounds that run every case once, in turn.

    ``warmup`` untimed rounds come first (allocator, cuDNN autotuning, lazy imports).
    """
    if repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            times[name].append(seconds_of(fn, device))
    return {name: statistics.median(values) for name, values in times.items()}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine(device: torch.device) -> dict[str, Any]:
    """The facts a reader needs to compare two runs of a benchmark."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "device": str(device),
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "load_average_1_5_15_min": [round(v, 2) for v in load],
    }


def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(chunk).argmax(dim=1) for chunk in images.split(SCAN_BATCH)])


def first_correct(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the first ``count`` images the model classifies correctly (fewer if there are
    not that many); ``images`` may stay on the CPU, they go to the model's device in chunks."""
    device = next(model.parameters()).device
    picked: list[int] = []
    for start in range(0, images.shape[0], SCAN_BATCH):
        chunk = slice(start, start + SCAN_BATCH)
        right = predict(model, images[chunk].to(device)).cpu() == labels[chunk]
        picked += (right.nonzero().flatten() + start).tolist()
        if len(picked) >= count:
            break
    return torch.tensor(picked[:count], dtype=torch.long)


def correctly_classified(
    model: nn.Module, data: Path, count: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` images of ``data`` the model classifies correctly, and their labels."""
    images, labels, _ = load_split(data).tensors()
    index = first_correct(model, images, labels, count)
    if len(index) < count:
        raise SystemExit(f"{data}: the model classifies only {len(index)} images correctly, not {count}")
    return images[index].to(device), labels[index].to(device)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats are printed as given (format them before)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_record(out: Path | None, record: dict[str, Any]) -> None:
    """Write a run's record as JSON (atomically), when ``--out`` was given."""
    if out is None:
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out) as f:
        f.write(json.dumps(record, indent=2) + "\n")
    print(f"\nwrote {out}")
