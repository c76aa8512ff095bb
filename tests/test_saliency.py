"""Properties of the salience interface, the spectral-residual model, FS and threshold masks."""

from __future__ import annotations

import pytest
import torch

from stages.saliency import (
    SalienceModel,
    SpectralResidualSaliency,
    foreground_score,
    normalize_density,
    threshold_mask,
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _square_scene(
    n: int = 6, size: int = 32, side: int = 8, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A bright square at a random place on a flat (slightly noisy) grey background."""
    g = _gen(seed)
    x = 0.4 + 0.02 * torch.rand(n, 3, size, size, generator=g)
    fg = torch.zeros(n, 1, size, size, dtype=torch.bool)
    for i in range(n):
        r, c = torch.randint(2, size - side - 2, (2,), generator=g).tolist()
        fg[i, :, r : r + side, c : c + side] = True
    return torch.where(fg, torch.full_like(x, 0.9), x), fg


@pytest.fixture(scope="module")
def model() -> SpectralResidualSaliency:
    return SpectralResidualSaliency()


@pytest.mark.parametrize("shape", [(4, 3, 32, 32), (2, 1, 28, 28), (2, 3, 24, 40), (1, 3, 96, 96)])
def test_map_is_a_density_of_the_image_size(model, shape) -> None:
    x = torch.rand(*shape, generator=_gen(1))
    s = model(x)
    assert s.shape == (shape[0], 1, *shape[2:])
    assert bool((s >= 0).all())
    assert torch.allclose(s.sum(dim=(1, 2, 3)), torch.ones(shape[0]), atol=1e-5)


def test_implements_the_protocol_and_is_deterministic(model) -> None:
    salience: SalienceModel = model
    x = torch.rand(3, 3, 32, 32, generator=_gen(2))
    assert torch.equal(salience(x), salience(x))
    # Per image: a map does not depend on the other images in the batch.
    assert torch.allclose(salience(x)[1:2], salience(x[1:2]), atol=1e-7)


def test_bright_square_on_flat_background_is_salient(model) -> None:
    x, fg = _square_scene()
    s = model(x)
    inside = (s * fg).flatten(1).sum(1) / fg.flatten(1).sum(1)
    outside = (s * ~fg).flatten(1).sum(1) / (~fg).flatten(1).sum(1)
    assert bool((inside > 2 * outside).all()), inside / outside
    # FS far above the square's share of the image (1/16).
    assert bool((foreground_score(s, fg) > 2 * fg.float().mean()).all())


def test_flat_image_gives_the_uniform_density(model) -> None:
    s = model(torch.full((1, 3, 16, 16), 0.5))
    assert torch.allclose(s, torch.full_like(s, 1 / 256), atol=1e-7)


def test_gradcheck_in_double_precision() -> None:
    small = SpectralResidualSaliency(size=8, sigma=1.0)
    x = (0.2 + 0.6 * torch.rand(1, 3, 6, 6, generator=_gen(3), dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(small, (x,), eps=1e-6, atol=1e-6, fast_mode=True)


def test_gradient_is_finite_and_nonzero_even_on_flat_regions(model) -> None:
    x, fg = _square_scene(n=2)
    for images in (x, torch.full_like(x, 0.5)):
        images = images.clone().requires_grad_(True)
        (foreground_score(model(images), fg).sum()).backward()
        assert images.grad is not None
        assert bool(torch.isfinite(images.grad).all())
        assert images.grad.abs().max() > 0


def test_parameters_are_validated() -> None:
    for kwargs in ({"size": 1}, {"sigma": -1.0}, {"average_size": 2}, {"amplitude_floor": 0.0}):
        with pytest.raises(ValueError):
            SpectralResidualSaliency(**kwargs)
    with pytest.raises(ValueError, match="N, C, H, W"):
        SpectralResidualSaliency()(torch.rand(3, 8, 8))


# ---------------------------------------------------------------- FS, masks


def test_foreground_score_is_in_unit_interval_and_adds_up(model) -> None:
    x = torch.rand(5, 3, 32, 32, generator=_gen(4))
    fg = torch.rand(5, 1, 32, 32, generator=_gen(5)) < 0.5
    s = model(x)
    fs, bs = foreground_score(s, fg), foreground_score(s, ~fg)
    assert fs.shape == (5,)
    assert bool((fs >= 0).all()) and bool((fs <= 1).all())
    assert torch.allclose(fs + bs, torch.ones(5), atol=1e-5)
    whole = torch.ones_like(fg)
    assert torch.allclose(foreground_score(s, whole), torch.ones(5), atol=1e-5)
    assert torch.equal(foreground_score(s, torch.zeros_like(fg)), torch.zeros(5))


def test_foreground_score_rejects_bad_masks(model) -> None:
    s = model(torch.rand(2, 3, 8, 8, generator=_gen(6)))
    with pytest.raises(ValueError, match="bool"):
        foreground_score(s, torch.ones(2, 1, 8, 8))
    with pytest.raises(ValueError, match="does not match"):
        foreground_score(s, torch.ones(2, 1, 8, 7, dtype=torch.bool))
    with pytest.raises(ValueError, match="N, 1, H, W"):
        foreground_score(s.squeeze(1), torch.ones(2, 8, 8, dtype=torch.bool))


def test_threshold_mask_is_the_midpoint_rule() -> None:
    s = torch.tensor([[0.0, 0.1, 0.2], [0.3, 0.5, 0.6]]).view(1, 1, 2, 3)
    s2 = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]).view(1, 1, 2, 3)  # constant: empty mask
    m = threshold_mask(torch.cat([s, s2]))
    assert m.dtype == torch.bool and m.shape == (2, 1, 2, 3)
    # t = 0.5 * (0 + 0.6) = 0.3, strictly above.
    assert m[0].flatten().tolist() == [False, False, False, False, True, True]
    assert not bool(m[1].any())


def test_threshold_mask_finds_the_bright_square(model) -> None:
    x, fg = _square_scene()
    m = threshold_mask(model(x))
    assert m.shape == fg.shape and m.dtype == torch.bool
    hits = (m & fg).flatten(1).sum(1)
    assert bool((hits > 0).all())
    # Spectral residual lights up the square's edges, which the blur spreads a little past
    # them, so precision is well above chance (the square's share, 1/16) but not near 1.
    precision = hits / m.flatten(1).sum(1)
    assert bool((precision > 5 * fg.float().mean()).all()), precision


def test_normalize_density() -> None:
    raw = torch.rand(3, 1, 4, 5, generator=_gen(7))
    raw[2] = 0
    d = normalize_density(raw)
    assert torch.allclose(d[:2].sum(dim=(1, 2, 3)), torch.ones(2))
    assert torch.equal(d[2], torch.zeros_like(d[2]))
    assert torch.allclose(d[0] / d[0].max(), raw[0] / raw[0].max())
