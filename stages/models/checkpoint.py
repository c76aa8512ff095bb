"""Loading a trained model artifact (``model.pt`` written by the train stage)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from stages.models.registry import arch_from_record, build_model
from stages.utils.errors import ConfigError, DataError


def load_trained(path: str | Path, device: torch.device) -> nn.Module:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: trained model not found; run the train stage for it first")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        height, _, channels = state["input_shape"]
        model = build_model(arch_from_record(state["arch"]), channels, height, state["num_classes"])
        model.load_state_dict(state["state_dict"])
    except (RuntimeError, KeyError, ValueError, TypeError, EOFError, ConfigError) as exc:
        raise DataError(f"{path}: not a valid trained model ({exc}); rerun its train stage") from None
    return model.to(device).eval()
