"""Numeric precision and memory layout of a model's forward passes.

One place for the two speed settings that the attacks (and training) share:

- ``precision``: ``"fp32"`` (no autocast), ``"bf16"`` or ``"fp16"`` (``torch.autocast`` with
  that dtype: matrix products and convolutions in low precision, reductions and the weights in
  fp32). bf16 runs on CPUs with bf16 units (AVX-512 BF16 / AMX) and on recent GPUs; fp16 is a
  GPU format (on a CPU it is emulated and slow).
- ``memory_format``: ``"contiguous"`` (NCHW, torch's default) or ``"channels_last"`` (NHWC),
  which oneDNN and cuDNN convolutions run faster on. A layout changes no value: the same
  numbers are stored in another order (float sums may be taken in another order, so results
  can differ in the last bits).

What a setting is allowed to change is decided where it is used: the DE attack searches at
low precision but confirms every success in fp32 (stages/attacks/differential_evolution.py);
training (stages/training/trainer.py) runs its forward passes and loss under autocast with fp32
weights and optimizer state, a gradient scaler for fp16, and on CUDA TF32 on or off (``tf32``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

import torch
from torch import nn

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
MemoryFormat = Literal["contiguous", "channels_last"]
MEMORY_FORMATS: tuple[str, ...] = ("contiguous", "channels_last")

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_TORCH_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def check_precision(value: str, where: str) -> Precision:
    """``value`` if it names a precision, else a ValueError naming ``where`` and the choices."""
    if value not in PRECISIONS:
        raise ValueError(f"{where}: unknown precision {value!r}; valid values are: {', '.join(PRECISIONS)}")
    return value  # type: ignore[return-value]


def check_memory_format(value: str, where: str) -> MemoryFormat:
    """``value`` if it names a memory format, else a ValueError naming ``where`` and the choices."""
    if value not in MEMORY_FORMATS:
        raise ValueError(
            f"{where}: unknown memory_format {value!r}; valid values are: {', '.join(MEMORY_FORMATS)}"
        )
    return value  # type: ignore[return-value]


@contextlib.contextmanager
def autocast(device: torch.device, precision: Precision) -> Iterator[None]:
    """Run the enclosed forward passes at ``precision`` on ``device``.

    fp32 means fp32: on CUDA, TF32 (a 10-bit mantissa, which torch allows in cuDNN
    convolutions by default) is switched off inside the block and restored after it, so that
    an fp32 score does not depend on the GPU's defaults.
    """
    if precision != "fp32":
        with torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[precision]):
            yield
        return
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def to_memory_format(x: torch.Tensor, memory_format: MemoryFormat) -> torch.Tensor:
    """A 4-D batch in ``memory_format`` (the same values; a copy only if the layout differs)."""
    return x.contiguous(memory_format=_TORCH_FORMATS[memory_format])


def apply_memory_format(model: nn.Module, memory_format: MemoryFormat) -> nn.Module:
    """Store ``model``'s 4-D weights in ``memory_format``, in place (values unchanged); returns it."""
    return model.to(memory_format=_TORCH_FORMATS[memory_format])


class AutocastForward(nn.Module):
    """``model`` whose forward passes run under :func:`autocast` at ``precision``, its outputs
    returned in fp32: what runs in low precision is the model alone (and, through autograd,
    its backward pass), not the arithmetic of whoever calls it (an attack's steps and
    projections, a loss). The wrapped model is its only submodule, so its mode and parameters
    are the model's own."""

    def __init__(self, model: nn.Module, device: torch.device, precision: Precision):
        super().__init__()
        self.model = model
        self.device = device
        self.precision = precision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.precision):
            out = self.model(x)
        return out.float()


def autocast_forward(model: nn.Module, device: torch.device, precision: Precision) -> nn.Module:
    """``model`` itself for fp32, else an :class:`AutocastForward` of it."""
    return model if precision == "fp32" else AutocastForward(model, device, precision)


def autocast_dtype(precision: Precision) -> torch.dtype:
    """The dtype the matrix products and convolutions of an autocast region run in."""
    return _AUTOCAST_DTYPES.get(precision, torch.float32)


def grad_scaler(device: torch.device, precision: Precision) -> Any:
    """A ``torch.amp.GradScaler`` for ``device``, enabled only for fp16 (whose small gradients
    underflow without loss scaling; bf16 has fp32's exponent range and fp32 needs none). A
    disabled scaler passes ``scale``, ``step`` and ``update`` straight through."""
    enabled = precision == "fp16"
    try:
        return torch.amp.GradScaler(device.type, enabled=enabled)
    except (AttributeError, TypeError):  # torch < 2.3: only the CUDA class
        return torch.cuda.amp.GradScaler(enabled=enabled and device.type == "cuda")


@contextlib.contextmanager
def tf32(device: torch.device, enabled: bool) -> Iterator[None]:
    """TF32 matrix products and cuDNN convolutions for the fp32 operations run inside, on a
    CUDA ``device`` (``torch.backends.cuda.matmul.allow_tf32``, ``torch.backends.cudnn.allow_tf32``);
    ``enabled`` False turns both off (torch's own default lets cuDNN use TF32). The flags are
    process-wide: they are restored on exit. Other devices have no TF32: a no-op."""
    if device.type != "cuda":
        yield
        return
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
