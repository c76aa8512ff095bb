"""stages/utils/precision.py: what each precision and memory format does to a forward pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stages.utils.precision import (
    apply_memory_format,
    autocast,
    check_memory_format,
    check_precision,
    to_memory_format,
)

CPU = torch.device("cpu")


def _conv() -> nn.Conv2d:
    torch.manual_seed(0)
    return nn.Conv2d(3, 4, 3, padding=1)


def test_bf16_runs_the_convolution_in_bf16_and_fp32_leaves_it_alone() -> None:
    conv, x = _conv(), torch.rand(2, 3, 8, 8)
    with autocast(CPU, "bf16"):
        low = conv(x)
    with autocast(CPU, "fp32"):
        full = conv(x)
    assert low.dtype == torch.bfloat16 and full.dtype == torch.float32
    assert conv.weight.dtype == torch.float32  # autocast never touches the weights
    assert torch.allclose(low.float(), full, atol=0.05)
    assert torch.equal(full, conv(x))


def test_channels_last_stores_the_same_values_in_another_order() -> None:
    conv, x = _conv(), torch.rand(2, 3, 8, 8)
    reference = conv(x)
    nhwc = to_memory_format(x, "channels_last")
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and torch.equal(nhwc, x)
    apply_memory_format(conv, "channels_last")
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(conv(nhwc), reference, atol=1e-6)
    apply_memory_format(conv, "contiguous")
    assert conv.weight.is_contiguous()


def test_unknown_settings_are_named_with_the_choices() -> None:
    with pytest.raises(
        ValueError, match=r"here: unknown precision 'fp64'; valid values are: fp32, bf16, fp16"
    ):
        check_precision("fp64", "here")
    with pytest.raises(ValueError, match=r"there: unknown memory_format 'nhwc'"):
        check_memory_format("nhwc", "there")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (TF32 exists only there)")
def test_fp32_on_cuda_switches_tf32_off_inside_and_restores_it() -> None:
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        with autocast(torch.device("cuda"), "fp32"):
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
