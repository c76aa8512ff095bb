"""Seeding, device choice and logging shared by the stage entry points."""

from __future__ import annotations

import logging
import random
import sys

import numpy as np
import torch

from stages.utils.errors import ConfigError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def select_device(setting: str) -> torch.device:
    """``auto`` takes CUDA when present; ``cuda`` without a GPU is a config error."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but no CUDA device is visible; use 'auto' or 'cpu'")
    return torch.device(setting)


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
