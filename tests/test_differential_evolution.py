"""Properties of the region-restricted few-pixel DE attack, on hand-built models whose answers
are known.

The main model is linear on 3x6x6 images, so the best k-pixel attack is computable exactly
(each pixel's best colour is a corner of the colour cube and pixel gains add up): an oracle
says which images *can* be fooled with k pixels in their region, against which the attack is
checked both ways (it never claims an impossible success, and it finds most possible ones).
Small populations and generation counts keep the file to a few seconds on two CPU cores.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from stages.attacks.differential_evolution import (
    SEARCHES,
    STRATEGIES,
    DEConfig,
    DEResult,
    _distinct_indices,
    _distinct_others,
    _evaluate,
    _positions,
    differential_evolution_attack,
    targeted_all_pairs,
)

N, C, H, W, CLASSES = 24, 3, 6, 6, 3
# Our indexed search with best1: the oracle tests below were tuned on it. The paper's composite
# search (and its rand/1 default) has its own section.
SMALL = DEConfig(pixels=1, population=24, max_generations=15, strategy="best1", search="indexed")


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Linear(nn.Module):
    """logits = W x (float64, so the oracle and the attack agree to the last bit)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.weight = weight
        self.bias = (
            torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device) if bias is None else bias
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).to(self.weight.dtype) @ self.weight.T + self.bias


@pytest.fixture(scope="module")
def linear() -> Linear:
    w = torch.randn(CLASSES, C * H * W, generator=_gen(0), dtype=torch.float64)
    return Linear(w)


@pytest.fixture(scope="module")
def batch(linear) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images (continuous values, so no new colour can equal the old one), the model's own
    labels (every image starts correctly classified) and a random ~half-image region each."""
    g = _gen(1)
    x = torch.rand(N, C, H, W, generator=g, dtype=torch.float64)
    region = torch.rand(N, 1, H, W, generator=g) < 0.5
    return x, linear(x).argmax(1), region


def oracle(model: Linear, x: torch.Tensor, y: torch.Tensor, region: torch.Tensor, k: int) -> torch.Tensor:
    """bool (N,): some k region pixels (any colours in [0, 1]) flip the linear model's label."""
    logits = model(x)
    w = model.weight.view(CLASSES, C, H * W)
    pix = x.view(x.shape[0], C, H * W)
    out = torch.zeros(x.shape[0], dtype=torch.bool)
    for i in range(x.shape[0]):
        for c in range(CLASSES):
            if c == y[i]:
                continue
            coef = w[c] - w[y[i]]  # effect of each (channel, pixel) on logit_c - logit_y
            gain = torch.maximum(coef * (1 - pix[i]), -coef * pix[i]).sum(0)[region[i, 0].flatten()]
            out[i] |= bool(logits[i, y[i]] - logits[i, c] < gain.topk(k).values.sum())
    return out


def _changed(x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    """bool (N, H, W): pixels where any channel differs."""
    return (x_adv != x).any(dim=1)


def _assert_same(a: DEResult, b: DEResult) -> None:
    for name in ("success", "queries", "generations", "confidence", "adversarial_label",
                 "adversarial_confidence", "pixel_coords", "pixel_values", "in_region", "adversarial",
                 "idle_queries"):  # fmt: skip
        assert torch.equal(getattr(a, name), getattr(b, name)), name


# ---------------------------------------------------------------- where and how much changes


class Recorder(nn.Module):
    """Wraps a model and checks *every* candidate it is asked about: outside its image's region
    nothing differs from that image, and exactly k pixels differ inside."""

    def __init__(self, model: nn.Module, x: torch.Tensor, region: torch.Tensor, k: int) -> None:
        super().__init__()
        self.model, self.x, self.region, self.k = model, x, region, k
        self.seen = 0

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        changed = (batch.unsqueeze(1) != self.x.unsqueeze(0)).any(dim=2)  # (B, N, H, W)
        outside = (changed & ~self.region[:, 0].unsqueeze(0)).flatten(2).any(dim=2)
        count = changed.flatten(2).sum(dim=2)
        owner_ok = ~outside & (count == self.k)  # (B, N): a possible owner image
        assert bool(owner_ok.any(dim=1).all()), "a candidate changed pixels outside its region or != k"
        self.seen += batch.shape[0]
        return self.model(batch)


@pytest.mark.parametrize("k", [1, 3])
def test_every_candidate_changes_exactly_k_pixels_all_inside_the_region(linear, batch, k) -> None:
    x, y, region = batch
    x, y, region = x[:6], y[:6], region[:6]
    spy = Recorder(linear, x, region, k)
    cfg = replace(SMALL, pixels=k, max_batch=50)  # several chunks per generation
    res = differential_evolution_attack(spy, x, y, region, cfg, generator=_gen(2))
    assert spy.seen == int(res.forwards.sum()) and bool((res.forwards <= res.queries).all())
    changed = _changed(x, res.adversarial)
    assert bool((changed.flatten(1).sum(1) == k).all())
    assert not bool((changed & ~region[:, 0]).any())
    # The reported pixels are the changed ones, with the reported values.
    for i in range(x.shape[0]):
        rows, cols = res.pixel_coords[i].unbind(1)
        assert bool(changed[i, rows, cols].all())
        assert torch.equal(res.adversarial[i][:, rows, cols].T, res.pixel_values[i])
    # Values are on the 8-bit grid of [0, 1].
    assert torch.allclose(res.pixel_values * 255, (res.pixel_values * 255).round(), atol=1e-9)


def test_a_region_of_exactly_k_pixels_is_used_whole_and_fewer_raises(linear, batch) -> None:
    x, y, _ = batch
    region = torch.zeros(2, 1, H, W, dtype=torch.bool)
    region[:, :, 0, :3] = True  # three pixels
    res = differential_evolution_attack(linear, x[:2], y[:2], region, replace(SMALL, pixels=3),
                                        generator=_gen(0))  # fmt: skip
    assert torch.equal(_changed(x[:2], res.adversarial), region[:, 0])
    region[1, 0, 0, 2] = False  # image 1 now has two
    with pytest.raises(ValueError, match=r"at least 3 region pixels.*#1 \(2 px\)"):
        differential_evolution_attack(linear, x[:2], y[:2], region, replace(SMALL, pixels=3))


# ---------------------------------------------------------------- success is real and sensible


def test_successes_are_real_and_reported_scores_match_the_model(linear, batch) -> None:
    x, y, region = batch
    res = differential_evolution_attack(linear, x, y, region, SMALL, generator=_gen(3))
    probs = torch.softmax(linear(res.adversarial), dim=1)
    assert torch.equal(probs.argmax(1), res.adversarial_label)
    assert torch.equal(res.success, res.adversarial_label != y)
    assert torch.allclose(probs.gather(1, y[:, None]).squeeze(1), res.confidence.double(), atol=1e-6)
    assert torch.allclose(probs.max(1).values, res.adversarial_confidence.double(), atol=1e-6)
    assert bool(res.success.any()) and not bool(res.success.all())


def test_more_pixels_fool_at_least_as_many_images_and_never_beyond_the_oracle(linear, batch) -> None:
    x, y, region = batch
    found, possible = {}, {}
    for k in (1, 3):
        res = differential_evolution_attack(linear, x, y, region, replace(SMALL, pixels=k), generator=_gen(4))
        found[k], possible[k] = res.success, oracle(linear, x, y, region, k)
        assert not bool((found[k] & ~possible[k]).any())  # no success the oracle rules out
        assert int(found[k].sum()) >= 0.8 * int(possible[k].sum())  # and most of the possible ones
    assert int(possible[3].sum()) > int(possible[1].sum())  # the data make k matter
    assert int(found[3].sum()) > int(found[1].sum())


def test_a_smaller_region_is_never_easier_for_the_oracle_and_the_attack_follows(linear, batch) -> None:
    x, y, region = batch
    full = differential_evolution_attack(linear, x, y, None, SMALL, generator=_gen(5))
    assert bool((oracle(linear, x, y, torch.ones_like(region), 1) >= oracle(linear, x, y, region, 1)).all())
    part = differential_evolution_attack(linear, x, y, region, SMALL, generator=_gen(5))
    assert int(full.success.sum()) >= int(part.success.sum())


# ---------------------------------------------------------------- early stop and budgets


class Constant(nn.Module):
    """Always the same logits: class 1 wins, whatever the image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([0.0, 2.0, 1.0]).expand(x.shape[0], 3)


def test_early_stop_at_generation_zero_and_full_budget_otherwise(linear, batch) -> None:
    x, y, region = batch
    size, gens = SMALL.population, SMALL.max_generations
    fooled = differential_evolution_attack(Constant(), x[:4], torch.zeros(4, dtype=torch.long), region[:4],
                                           SMALL, generator=_gen(0))  # fmt: skip
    assert bool(fooled.success.all())
    assert fooled.generations.tolist() == [0] * 4 and fooled.queries.tolist() == [size] * 4
    never = differential_evolution_attack(Constant(), x[:4], torch.ones(4, dtype=torch.long), region[:4],
                                          SMALL, generator=_gen(0))  # fmt: skip
    assert not bool(never.success.any())
    assert never.generations.tolist() == [gens] * 4 and never.queries.tolist() == [size * (gens + 1)] * 4

    # An image the model already gets wrong stops at once; the others run on independently.
    wrong = y.clone()
    wrong[0] = (y[0] + 1) % CLASSES
    res = differential_evolution_attack(linear, x, wrong, region, SMALL, generator=_gen(6))
    assert res.success[0] and res.generations[0] == 0 and res.queries[0] == size
    assert int(res.queries[1:].max()) > size
    assert torch.equal(res.queries, size * (res.generations + 1))


def test_without_early_stop_every_image_runs_the_full_budget(linear, batch) -> None:
    x, y, region = batch
    res = differential_evolution_attack(linear, x[:6], y[:6], region[:6], replace(SMALL, early_stop=False),
                                        generator=_gen(6))  # fmt: skip
    assert bool((res.generations == SMALL.max_generations).all())


def test_history_is_monotone_and_stops_with_the_image(linear, batch) -> None:
    x, y, region = batch
    res = differential_evolution_attack(linear, x, y, region, SMALL, generator=_gen(7), record_history=True)
    assert res.history is not None and res.history.shape == (N, SMALL.max_generations + 1)
    for i in range(N):
        row = res.history[i]
        ran = int(res.generations[i]) + 1
        assert not bool(row[:ran].isnan().any()) and bool(row[ran:].isnan().all())
        assert bool((row[1:ran] <= row[: ran - 1]).all())  # elitist selection: the best never worsens
        assert float(row[ran - 1]) >= float(res.confidence[i]) - 1e-6


# ---------------------------------------------------------------- determinism


def test_same_seed_same_result_other_seed_other_result(linear, batch) -> None:
    x, y, region = batch
    cfg = replace(SMALL, pixels=3)
    a = differential_evolution_attack(linear, x, y, region, cfg, generator=_gen(8), record_history=True)
    b = differential_evolution_attack(linear, x, y, region, cfg, generator=_gen(8), record_history=True)
    _assert_same(a, b)
    assert torch.equal(a.history.nan_to_num(-1), b.history.nan_to_num(-1))
    c = differential_evolution_attack(linear, x, y, region, cfg, generator=_gen(9))
    assert not torch.equal(a.pixel_coords, c.pixel_coords)


def test_an_images_search_does_not_depend_on_the_rest_of_the_batch_or_chunking(linear, batch) -> None:
    x, y, region = batch
    whole = differential_evolution_attack(linear, x, y, region, SMALL, generator=_gen(10))
    seeds_stream = _gen(10)
    chunked = differential_evolution_attack(linear, x, y, region, replace(SMALL, max_batch=7),
                                            generator=seeds_stream)  # fmt: skip
    _assert_same(whole, chunked)
    # The per-image seeds are drawn in order, so a prefix of the batch sees the same streams.
    head = differential_evolution_attack(linear, x[:5], y[:5], region[:5], SMALL, generator=_gen(10))
    for name in ("success", "generations", "pixel_coords", "pixel_values"):
        assert torch.equal(getattr(head, name), getattr(whole, name)[:5]), name


# ---------------------------------------------------------------- targeted


def _channel_model() -> Linear:
    """Class 0 by default (bias 1); class 1 rises with red minus green, class 2 with green minus
    red (one saturated pixel is worth 3 logits); class 3 is unreachable (bias -10)."""
    w = torch.zeros(4, C, H * W, dtype=torch.float64)
    w[1, 0], w[1, 1] = 3.0, -3.0
    w[2, 1], w[2, 0] = 3.0, -3.0
    return Linear(w.flatten(1), torch.tensor([1.0, 0.0, 0.0, -10.0], dtype=torch.float64))


def test_targeted_reaches_reachable_targets_only_and_reports_target_probability() -> None:
    model = _channel_model()
    x = 0.05 * torch.rand(4, C, H, W, generator=_gen(11), dtype=torch.float64)
    y = torch.zeros(4, dtype=torch.long)
    assert bool((model(x).argmax(1) == 0).all())
    region = torch.zeros(4, 1, H, W, dtype=torch.bool)
    region[:, :, 2:4, 2:4] = True
    targets = torch.tensor([1, 2, 3, 1])
    cfg = replace(SMALL, targeted=True)
    res = differential_evolution_attack(model, x, y, region, cfg, targets=targets, generator=_gen(12))
    assert res.success.tolist() == [True, True, False, True]
    assert torch.equal(res.adversarial_label[res.success], targets[res.success])
    assert res.target is not None and torch.equal(res.target, targets)
    probs = torch.softmax(model(res.adversarial), dim=1)
    assert torch.allclose(probs[torch.arange(4), targets], res.confidence.double(), atol=1e-6)
    assert res.generations[2] == SMALL.max_generations
    assert not bool((_changed(x, res.adversarial) & ~region[:, 0]).any())


def test_all_pairs_sweep_tables() -> None:
    model = _channel_model()
    x = 0.05 * torch.rand(3, C, H, W, generator=_gen(13), dtype=torch.float64)
    y = torch.zeros(3, dtype=torch.long)
    sweep = targeted_all_pairs(model, x, y, None, 4, SMALL, generator=_gen(14))
    assert sweep.target.tolist() == [1, 2, 3] * 3 and sweep.image_index.tolist() == [
        0,
        0,
        0,
        1,
        1,
        1,
        2,
        2,
        2,
    ]
    assert sweep.success_matrix().tolist() == [[False, True, True, False]] * 3
    assert sweep.targets_reached().tolist() == [2, 2, 2]
    assert sweep.untargeted_success().tolist() == [True] * 3
    counts = sweep.source_target_counts()
    assert counts[0].tolist() == [0, 3, 3, 0] and int(counts.sum()) == 6


# ---------------------------------------------------------------- the paper's composite search


PAPER = DEConfig(pixels=1, population=24, max_generations=15)  # composite search, rand/1
TARGET_PIXEL = (2, 3)  # the one pixel OnePixel reads


class OnePixel(nn.Module):
    """Reads one known pixel only: class 1 rises with its red, class 2 with its green (each
    wins past 0.5 over class 0's constant logit), so the only way to change the label is that
    pixel, and a candidate elsewhere leaves the fitness exactly as it is."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, c = TARGET_PIXEL
        red, green = x[:, 0, r, c].double(), x[:, 1, r, c].double()
        return torch.stack([torch.zeros_like(red), 8 * (red - 0.5), 8 * (green - 0.5)], dim=1)


def _one_pixel_batch(n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Images with red and green at most 0.1 on the target pixel (class 0), and their labels."""
    x = torch.rand(n, C, H, W, generator=_gen(20), dtype=torch.float64)
    x[:, :2, TARGET_PIXEL[0], TARGET_PIXEL[1]] *= 0.1
    return x, torch.zeros(n, dtype=torch.long)


def _region_with(pixel: tuple[int, int], inside: bool, n: int = 4) -> torch.Tensor:
    """The left half of every image plus (or minus) ``pixel``: a region of about half the image."""
    region = torch.zeros(n, 1, H, W, dtype=torch.bool)
    region[..., : W // 2] = True
    region[:, 0, pixel[0], pixel[1]] = inside
    return region


class CompositeRecorder(Recorder):
    """Checks every candidate of a composite search: nothing differs outside its image's region
    and at most k pixels differ inside; counts the candidates that are a clean image."""

    def __init__(self, model: nn.Module, x: torch.Tensor, region: torch.Tensor, k: int) -> None:
        super().__init__(model, x, region, k)
        self.clean = 0

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        changed = (batch.unsqueeze(1) != self.x.unsqueeze(0)).any(dim=2)  # (B, N, H, W)
        outside = (changed & ~self.region[:, 0].unsqueeze(0)).flatten(2).any(dim=2)
        count = changed.flatten(2).sum(dim=2)
        assert bool((~outside & (count <= self.k)).any(dim=1).all()), "a change outside the region"
        self.clean += int((count == 0).any(dim=1).sum())
        self.seen += batch.shape[0]
        return self.model(batch)


@pytest.mark.parametrize("k", [1, 3])
def test_composite_search_never_changes_a_pixel_outside_the_region(linear, batch, k) -> None:
    """Eqs. 17-18: a candidate's pixel outside the region is not written, so some candidates
    change fewer than k pixels and some none at all (counted as idle queries)."""
    x, y, region = batch
    x, y, region = x[:6], y[:6], region[:6]
    spy = CompositeRecorder(linear, x, region, k)
    # Every candidate scored (no skipping of repeats), so forwards and queries are the same count.
    cfg = replace(PAPER, pixels=k, max_batch=50, skip_repeats=False)
    res = differential_evolution_attack(spy, x, y, region, cfg, generator=_gen(2))
    assert spy.seen == int(res.queries.sum()) == int(res.forwards.sum())
    # Half the image is outside: a good share of 1-pixel candidates is the clean image itself.
    assert spy.clean == int(res.idle_queries.sum()) and (k > 1 or spy.clean > 0)
    changed = _changed(x, res.adversarial)
    assert not bool((changed & ~region[:, 0]).any())
    assert torch.equal(changed.flatten(1).sum(1), res.pixels_in_region)
    for i in range(x.shape[0]):
        rows, cols = res.pixel_coords[i].unbind(1)
        assert torch.equal(region[i, 0, rows, cols], res.in_region[i])
        assert torch.equal(changed[i, rows, cols], res.in_region[i])
        inside = res.in_region[i]
        assert torch.equal(res.adversarial[i][:, rows[inside], cols[inside]].T, res.pixel_values[i][inside])
        assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) == k  # distinct positions


def test_a_candidate_outside_the_region_keeps_the_clean_images_fitness() -> None:
    """The paper (§III-D): "if the perturbed pixel is located in the background [...] the value
    of the fitness function will not change at all". The model reads one pixel, outside the
    region: a genome pointing at it scores as the clean image, and the whole search never moves."""
    x, y = _one_pixel_batch()
    region = _region_with(TARGET_PIXEL, inside=False)
    model = OnePixel()
    clean = torch.softmax(model(x).float(), dim=1)[:, 0]  # as the attack scores: float32
    positions = _positions(region, 1, "composite")
    r, c = TARGET_PIXEL
    at_target = (r * W + c + 0.5) / (H * W)  # the position gene of the target pixel
    genome = torch.tensor([[at_target, 1.0, 1.0, 0.0]] * len(x))  # red and green saturated there
    scores, idle = _evaluate(model, x, torch.arange(len(x)), genome, y, positions, PAPER)
    assert torch.equal(scores.energy, clean) and bool(idle.all()) and not bool(scores.success.any())
    # The indexed search cannot even propose it; with the pixel in the region, both reach it.
    inside = _positions(_region_with(TARGET_PIXEL, inside=True), 1, "composite")
    scores, idle = _evaluate(model, x, torch.arange(len(x)), genome, y, inside, PAPER)
    assert bool(scores.success.all()) and not bool(idle.any())

    cfg = replace(PAPER, early_stop=False, max_generations=5)
    res = differential_evolution_attack(model, x, y, region, cfg, generator=_gen(21), record_history=True)
    assert res.history is not None
    assert torch.equal(res.history, clean.unsqueeze(1).expand_as(res.history).to(res.history.dtype))
    assert not bool(res.success.any()) and torch.equal(res.confidence, clean)
    assert int(res.idle_queries.sum()) > 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_on_the_full_region_the_two_searches_are_the_same_search(linear, batch, strategy) -> None:
    x, y, _ = batch
    full = torch.ones(N, 1, H, W, dtype=torch.bool)
    cfg = replace(PAPER, pixels=3, strategy=strategy)
    runs = [
        differential_evolution_attack(
            linear, x, y, region, replace(cfg, search=search), generator=_gen(22), record_history=True
        )
        for search in SEARCHES
        for region in (None, full)
    ]
    for other in runs[1:]:
        _assert_same(runs[0], other)
        assert torch.equal(runs[0].history.nan_to_num(-1), other.history.nan_to_num(-1))
    assert bool(runs[0].in_region.all()) and int(runs[0].idle_queries.sum()) == 0


@pytest.mark.parametrize("search", SEARCHES)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_rand1_and_best1_reach_a_known_easy_target(strategy, search) -> None:
    """One pixel of 36 decides the label; it lies in a half-image region. Both mutations find it
    with either search, untargeted and towards a chosen class (green, class 2)."""
    x, y = _one_pixel_batch()
    region = _region_with(TARGET_PIXEL, inside=True)
    cfg = replace(PAPER, strategy=strategy, search=search, max_generations=30)
    res = differential_evolution_attack(OnePixel(), x, y, region, cfg, generator=_gen(23))
    assert bool(res.success.all())
    assert bool((res.pixel_coords[:, 0] == torch.tensor(TARGET_PIXEL)).all())
    assert bool(res.in_region.all())
    targeted = differential_evolution_attack(OnePixel(), x, y, region, replace(cfg, targeted=True),
                                             targets=torch.full_like(y, 2), generator=_gen(24))  # fmt: skip
    assert bool(targeted.success.all()) and bool((targeted.adversarial_label == 2).all())


def test_the_papers_settings_are_the_defaults() -> None:
    """Eq. (11) prints rand/1; §III-D composites the region (Eqs. 17-18)."""
    assert (DEConfig().strategy, DEConfig().search) == ("rand1", "composite")
    with pytest.raises(ValueError, match=r"unknown search 'region'; valid values are: composite, indexed"):
        DEConfig(search="region")  # type: ignore[arg-type]


# ---------------------------------------------------------------- building blocks


def test_duplicate_pixel_indices_are_repaired_to_the_next_free_one() -> None:
    idx = torch.tensor([[2, 2, 2], [0, 1, 0], [4, 4, 0], [1, 3, 2]])
    counts = torch.tensor([3, 5, 5, 5])
    assert _distinct_indices(idx, counts).tolist() == [[2, 0, 1], [0, 1, 2], [4, 0, 1], [1, 3, 2]]


def test_mutation_parents_are_distinct_and_never_the_candidate_itself() -> None:
    parents = _distinct_others(_gen(0), 5, 3)
    rows = torch.cat([torch.arange(5).unsqueeze(1), parents], dim=1)
    assert all(len(set(r)) == 4 for r in rows.tolist())
    counts = torch.bincount(torch.cat([_distinct_others(_gen(s), 6, 3)[0] for s in range(300)]), minlength=6)
    assert counts[0] == 0 and int(counts[1:].min()) > 120  # uniform over the 5 others: 180 each


# ---------------------------------------------------------------- arguments


def test_bad_arguments_are_rejected(linear, batch) -> None:
    x, y, region = batch
    with pytest.raises(ValueError, match="population"):
        DEConfig(population=3)
    with pytest.raises(ValueError, match="strategy"):
        DEConfig(strategy="best2")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="crossover_rate"):
        DEConfig(crossover_rate=1.5)
    with pytest.raises(ValueError, match="region"):
        differential_evolution_attack(linear, x, y, region.float(), SMALL)
    with pytest.raises(ValueError, match="targets"):
        differential_evolution_attack(linear, x, y, region, replace(SMALL, targeted=True))
    with pytest.raises(ValueError, match="target equals"):
        differential_evolution_attack(linear, x, y, region, replace(SMALL, targeted=True), targets=y)


@pytest.mark.parametrize("strategy", ["best1", "rand1"])
@pytest.mark.parametrize("init", ["latin_hypercube", "random"])
def test_every_strategy_and_init_runs_and_attacks(linear, batch, strategy, init) -> None:
    x, y, region = batch
    cfg = replace(SMALL, strategy=strategy, init=init, pixels=3)
    res = differential_evolution_attack(linear, x, y, region, cfg, generator=_gen(15))
    assert int(res.success.sum()) >= N // 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("search", SEARCHES)
def test_cuda_run_keeps_every_invariant(linear, batch, search) -> None:
    x, y, region = batch
    model = Linear(linear.weight.cuda())
    cfg = replace(SMALL, pixels=3, search=search)
    gpu = differential_evolution_attack(model, x.cuda(), y.cuda(), region.cuda(), cfg, generator=_gen(16))
    cpu = differential_evolution_attack(linear, x, y, region, cfg, generator=_gen(16))
    changed = _changed(x, gpu.adversarial)
    assert torch.equal(changed.flatten(1).sum(1), gpu.pixels_in_region) and not bool(
        (changed & ~region[:, 0]).any()
    )
    assert search == "composite" or bool((gpu.pixels_in_region == 3).all())
    assert torch.equal(gpu.success, linear(gpu.adversarial).argmax(1) != y)
    # Random streams are drawn on the CPU: the two runs agree wherever float rounding does.
    assert (gpu.pixel_coords == cpu.pixel_coords).float().mean() > 0.5


# ---------------------------------------------------------------- speed settings keep the attack


@pytest.mark.parametrize("search", SEARCHES)
@pytest.mark.parametrize("k", [1, 3])
def test_skipping_repeated_candidates_does_not_change_a_seeded_attack(linear, batch, search, k) -> None:
    """A candidate whose image equals its parent's, or another candidate's, is not scored again;
    the seeded attack's every output is the same, bit for bit (the float64 linear model scores an
    image the same in any batch), with fewer forwards. Colours on 4 levels and a small region
    make repeats frequent, and the composite search repeats the clean image."""
    x, y, region = batch
    cfg = replace(PAPER, pixels=k, search=search, color_levels=4, early_stop=False, max_generations=8)
    runs = {
        skip: differential_evolution_attack(
            linear, x, y, region, replace(cfg, skip_repeats=skip), generator=_gen(31), record_history=True
        )
        for skip in (False, True)
    }
    _assert_same(runs[False], runs[True])
    assert torch.equal(runs[False].history, runs[True].history)
    assert torch.equal(runs[False].forwards, runs[False].queries)
    assert bool((runs[True].forwards <= runs[True].queries).all())
    if search == "composite" or k == 1:  # 3 of ~18 pixels on 4 levels rarely repeat
        assert int(runs[True].forwards.sum()) < int(runs[True].queries.sum())


class AutocastLiar(nn.Module):
    """Tells every image's label honestly in fp32 and lies under autocast: there it puts all the
    weight on class ``(true label + 1) % classes``, so every low-precision candidate "succeeds"."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x).float()
        probe = nn.functional.linear(x.flatten(1)[:, :1].float(), torch.ones(1, 1))
        if probe.dtype == torch.float32:
            return logits
        wrong = (logits.argmax(1) + 1) % logits.shape[1]
        return nn.functional.one_hot(wrong, logits.shape[1]).float() * 50


def test_a_low_precision_success_counts_only_if_it_holds_in_fp32(batch) -> None:
    """Every success the bf16 search finds is scored again in fp32; here every one of them is
    false, so the attack reports only fp32 successes, counts the rejections, and its report of
    each image is the fp32 verdict on the returned image."""
    x, y, region = batch
    w = torch.randn(CLASSES, C * H * W, generator=_gen(0))
    honest = Linear(w)
    x32 = x.float()
    y32 = honest(x32).argmax(1)
    liar = AutocastLiar(honest)
    cfg = replace(SMALL, precision="bf16", max_generations=4)
    res = differential_evolution_attack(liar, x32, y32, region, cfg, generator=_gen(32))
    with torch.no_grad():
        verdict = honest(res.adversarial).argmax(1)
    assert torch.equal(res.success, verdict != y32)
    assert torch.equal(res.adversarial_label, verdict)
    assert int(res.low_precision_rejections.sum()) > 0
    # Every rejection cost one extra (fp32) forward, as did each image's final verdict.
    assert bool((res.forwards >= res.low_precision_rejections).all())
    fp32 = differential_evolution_attack(
        honest, x32, y32, region, replace(cfg, precision="fp32"), generator=_gen(32)
    )
    assert int(fp32.low_precision_rejections.sum()) == 0


@pytest.mark.parametrize("memory_format", ["contiguous", "channels_last"])
def test_a_bf16_search_on_a_real_cnn_reports_only_fp32_successes(memory_format) -> None:
    """A small CNN in bf16 autocast, channels-last or not: whatever the search visits, each
    reported success fools the model in fp32 and each failure does not."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, CLASSES),
    ).eval()  # fmt: skip
    if memory_format == "channels_last":
        net = net.to(memory_format=torch.channels_last)
    x = torch.rand(12, C, 8, 8, generator=_gen(33))
    with torch.no_grad():
        y = net(x).argmax(1)
    cfg = DEConfig(pixels=3, population=16, max_generations=5, precision="bf16", memory_format=memory_format)
    res = differential_evolution_attack(net, x, y, None, cfg, generator=_gen(34))
    with torch.no_grad():
        fooled = net(res.adversarial).argmax(1) != y
    assert torch.equal(res.success, fooled)


def test_unknown_precision_and_memory_format_are_named() -> None:
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        DEConfig(precision="fp8")
    with pytest.raises(ValueError, match="unknown memory_format 'nhwc'"):
        DEConfig(memory_format="nhwc")
