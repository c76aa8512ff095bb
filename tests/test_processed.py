"""stages/data/processed.py: the tensors a split gives to training and attacks."""

from __future__ import annotations

import numpy as np
import torch

from stages.data.processed import ProcessedSplit


def test_images_come_as_contiguous_nchw_floats_with_the_stored_values() -> None:
    """Not the permuted NHWC view: torch 2.11's CPU backward pass through a ResNet-34 corrupted
    memory on NHWC-strided batches of odd sizes (the module's docstring of ``tensors``)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 6, 3), dtype=np.uint8)
    split = ProcessedSplit(images=images, labels=np.arange(5), ids=np.array([f"i{k}" for k in range(5)]))
    x, y, m = split.tensors()
    assert x.shape == (5, 3, 4, 6) and x.dtype == torch.float32 and m is None
    assert x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0)
    assert torch.equal(y, torch.arange(5))
