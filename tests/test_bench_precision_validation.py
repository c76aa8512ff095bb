"""bench/precision_validation.py's statistics and variant grammar (issue 25): the paired
difference and its interval against a hand computation and statsmodels, the seed control's
syntax, and the `+atk` variant that puts adversarial training's attack at the same precision.
The experiment itself trains real models and is run by hand (docs/reproduction.md)."""

from __future__ import annotations

import math

import pytest
from statsmodels.stats.contingency_tables import mcnemar

from bench.precision_validation import Z95, _seed_offset, paired_difference
from bench.training_precision import parse_variant


def test_paired_difference_counts_only_the_discordant_images() -> None:
    # 10 images: both right on 5, only the variant on 3, only fp32 on 1, neither on 1.
    reference = [1] * 5 + [0] * 3 + [1] + [0]
    other = [1] * 5 + [1] * 3 + [0] + [0]
    d = paired_difference(reference, other)
    assert (d["n"], d["only_other"], d["only_reference"]) == (10, 3, 1)
    assert d["difference"] == pytest.approx(0.2)
    # Wald interval for paired proportions: se = sqrt(b + c - (b - c)^2 / n) / n.
    se = math.sqrt(3 + 1 - 4 / 10) / 10
    assert d["ci95"] == pytest.approx([0.2 - Z95 * se, 0.2 + Z95 * se])
    assert d["mcnemar_p"] == pytest.approx(mcnemar([[5, 1], [3, 1]], exact=True).pvalue)


def test_identical_outcomes_give_a_zero_width_interval_and_p_one() -> None:
    same = [1, 0, 1, 1, 0]
    d = paired_difference(same, same)
    assert d["difference"] == 0 and d["ci95"] == [0.0, 0.0] and d["mcnemar_p"] == 1.0


def test_the_difference_is_antisymmetric() -> None:
    a, b = [1, 1, 0, 0, 1, 0], [0, 1, 1, 1, 1, 0]
    ab, ba = paired_difference(a, b), paired_difference(b, a)
    assert ab["difference"] == -ba["difference"]
    assert ab["ci95"] == pytest.approx([-ba["ci95"][1], -ba["ci95"][0]])
    assert ab["mcnemar_p"] == pytest.approx(ba["mcnemar_p"])


def test_seed_control_syntax() -> None:
    assert _seed_offset("fp32") == 0
    assert _seed_offset("fp32@seed1") == 1
    assert _seed_offset("bf16+atk@seed12") == 12
    with pytest.raises(SystemExit, match="@seed<k>"):
        _seed_offset("fp32@1")


def test_atk_puts_the_training_attack_at_the_same_precision() -> None:
    plain, atk = parse_variant("bf16"), parse_variant("bf16+cl+atk")
    assert plain.precision == "bf16" and plain.attack_precision is None  # the trainer's fp32
    assert atk.precision == "bf16" and atk.attack_precision == "bf16"
    assert atk.memory_format == "channels_last"
    assert parse_variant("tf32").tf32 and parse_variant("tf32").precision == "fp32"
    with pytest.raises(SystemExit, match="\\+atk"):
        parse_variant("bf16+fast")
