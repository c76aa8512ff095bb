"""Properties of the salience interface, the spectral-residual and frequency-tuned models, FS,
threshold masks, and the models' agreement with masks (stages/saliency/quality.py)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu

from stages.saliency import (
    SALIENCE_MODELS,
    FrequencyTunedSaliency,
    SalienceModel,
    SpectralResidualSaliency,
    foreground_score,
    normalize_density,
    threshold_mask,
)
from stages.saliency.frequency_tuned import srgb_to_lab
from stages.saliency.quality import CRITERION, mask_auc, preferred_model, salience_quality


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


# ---------------------------------------------------------------- frequency-tuned (Achanta et al. 2009)


@pytest.fixture(scope="module")
def tuned() -> FrequencyTunedSaliency:
    return FrequencyTunedSaliency()


def _opencv_frequency_tuned(images: np.ndarray) -> np.ndarray:
    """Achanta et al.'s map with OpenCV, as their method is usually run: Lab of the float RGB
    image, 5 x 5 Gaussian blur (sigma 0: the binomial kernel), distance to the mean Lab."""
    maps = []
    for image in images:
        lab = cv2.cvtColor(image, cv2.COLOR_RGB2Lab)
        blurred = cv2.GaussianBlur(lab, (5, 5), 0)
        maps.append(np.linalg.norm(blurred - lab.reshape(-1, 3).mean(axis=0), axis=2))
    return np.stack(maps)


@pytest.mark.parametrize("shape", [(4, 3, 32, 32), (2, 1, 28, 28), (2, 3, 24, 40)])
def test_frequency_tuned_map_is_a_density_of_the_image_size(tuned, shape) -> None:
    s = tuned(torch.rand(*shape, generator=_gen(10)))
    assert s.shape == (shape[0], 1, *shape[2:])
    assert bool((s >= 0).all())
    assert torch.allclose(s.sum(dim=(1, 2, 3)), torch.ones(shape[0]), atol=1e-5)
    salience: SalienceModel = tuned
    assert torch.allclose(salience(torch.ones(1, 3, 8, 8) * 0.3).sum(), torch.tensor(1.0))


def test_frequency_tuned_matches_an_opencv_reference(tuned) -> None:
    images = np.random.default_rng(11).random((4, 24, 36, 3), dtype=np.float32)
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    ours = tuned.raw_map(x)[:, 0].numpy()
    reference = _opencv_frequency_tuned(images)
    # OpenCV's float RGB2Lab interpolates the sRGB curve from a table (a few tenths of a Lab
    # unit off the exact formula); the blur and the border are the same, so the maps agree to
    # well under one just-noticeable colour difference (about 2.3 Lab units).
    assert np.abs(ours - reference).max() < 0.5
    assert np.corrcoef(ours.ravel(), reference.ravel())[0, 1] > 0.999
    assert np.array_equal(ours.reshape(4, -1).argmax(1), reference.reshape(4, -1).argmax(1))


def test_frequency_tuned_lab_is_the_cie_conversion() -> None:
    white, black = srgb_to_lab(torch.ones(1, 3, 1, 1)), srgb_to_lab(torch.zeros(1, 3, 1, 1))
    assert torch.allclose(white.flatten(), torch.tensor([100.0, 0.0, 0.0]), atol=1e-2)
    assert torch.allclose(black.flatten(), torch.zeros(3), atol=1e-4)
    red = srgb_to_lab(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)).flatten()
    assert red[1] > 50 and red[2] > 50  # pure red: large a* (red) and b* (yellow)


def test_frequency_tuned_flat_image_gives_the_uniform_density(tuned) -> None:
    for value in (0.0, 0.5, 1.0):
        s = tuned(torch.full((1, 3, 16, 16), value))
        assert torch.allclose(s, torch.full_like(s, 1 / 256), atol=1e-7)


def test_frequency_tuned_colour_blob_is_salient(tuned) -> None:
    """A red square on a flat grey background: every pixel of it above every background pixel
    away from its border (the 5 x 5 blur spreads it by 2 pixels), and FS far above its share."""
    x, fg = _square_scene()
    red = torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1)
    x = torch.where(fg, red.expand_as(x), x)
    s = tuned(x)
    halo = torch.nn.functional.max_pool2d(fg.float(), 5, stride=1, padding=2).bool()
    for i in range(len(x)):
        assert s[i][fg[i]].min() > s[i][~halo[i]].max()
    assert bool((foreground_score(s, fg) > 4 * fg.float().mean()).all())


def test_frequency_tuned_gradients(tuned) -> None:
    x = (0.05 + 0.9 * torch.rand(1, 3, 6, 6, generator=_gen(12), dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(tuned, (x,), eps=1e-6, atol=1e-6, fast_mode=True)
    scene, fg = _square_scene(n=2)
    # Finite even where the norm is zero (a flat image) and at the ends of [0, 1], where the
    # sRGB and Lab curves switch branches.
    for images in (scene, torch.full_like(scene, 0.5), torch.zeros_like(scene), torch.ones_like(scene)):
        images = images.clone().requires_grad_(True)
        foreground_score(tuned(images), fg).sum().backward()
        assert images.grad is not None and bool(torch.isfinite(images.grad).all())
    images = scene.clone().requires_grad_(True)
    foreground_score(tuned(images), fg).sum().backward()
    assert images.grad is not None and images.grad.abs().max() > 0


def test_frequency_tuned_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="norm_floor"):
        FrequencyTunedSaliency(norm_floor=0.0)
    with pytest.raises(ValueError, match="N, 3 or 1, H, W"):
        FrequencyTunedSaliency()(torch.rand(1, 4, 8, 8))
    with pytest.raises(ValueError, match="3 x 3"):
        FrequencyTunedSaliency()(torch.rand(1, 3, 2, 8))


def test_both_models_are_registered_by_name() -> None:
    assert SALIENCE_MODELS["spectral_residual"] is SpectralResidualSaliency
    assert SALIENCE_MODELS["frequency_tuned"] is FrequencyTunedSaliency


# ---------------------------------------------------------------- agreement with masks


def test_mask_auc_is_mann_whitney_u_over_n1_n2() -> None:
    rng = np.random.default_rng(13)
    # Ties on purpose (rounded scores): U counts a tie as 1/2.
    scores = rng.random((6, 50)).round(1)
    masks = rng.random((6, 50)) < 0.3
    masks[4], masks[5] = True, False  # all foreground, all background: undefined
    auc = mask_auc(scores, masks)
    for i in range(4):
        u = mannwhitneyu(scores[i][masks[i]], scores[i][~masks[i]]).statistic
        assert auc[i] == pytest.approx(u / (masks[i].sum() * (~masks[i]).sum()))
    assert np.isnan(auc[4]) and np.isnan(auc[5])
    perfect = np.array([[0.0, 0.1, 0.9, 1.0]])
    assert mask_auc(perfect, perfect > 0.5)[0] == 1.0
    assert mask_auc(perfect, perfect < 0.5)[0] == 0.0


def test_salience_quality_scores_the_uniform_map_at_chance_and_the_mask_perfectly() -> None:
    x, fg = _square_scene(n=5)
    x[0], fg[0] = 0.9, True  # an all-foreground image: left out of the AUC, counted
    models = {
        "uniform": lambda images: normalize_density(torch.ones_like(images[:, :1])),
        # The square is the only bright region, so this map is the mask itself.
        "oracle": lambda images: normalize_density((images[:, :1] > 0.6).float()),
    }
    record = salience_quality(models, x, fg, batch_size=2)  # type: ignore[arg-type]
    uniform, oracle = record["uniform"], record["oracle"]
    fraction = float(fg.float().mean())
    for r in (uniform, oracle):
        assert r["images"] == 5 and r["mean_foreground_fraction"] == pytest.approx(fraction)
        assert r["auc"]["images"] == 4 and r["auc"]["excluded_all_foreground"] == 1
        assert r["auc"]["excluded_all_background"] == 0
    # A uniform map's FS is the foreground fraction, its AUC 1/2 (all ties).
    assert uniform["mean_foreground_score"] == pytest.approx(fraction, abs=1e-6)
    assert uniform["mean_fs_minus_fraction"] == pytest.approx(0.0, abs=1e-6)
    assert uniform["auc"]["mean"] == pytest.approx(0.5)
    assert oracle["mean_foreground_score"] == pytest.approx(1.0, abs=1e-6)
    assert oracle["auc"]["mean"] == pytest.approx(1.0) and oracle["auc"]["images_above_chance"] == 4
    assert oracle["images_fs_above_fraction"] == 4  # all but the all-foreground image
    preferred = preferred_model({"a": record, "b": record})
    assert preferred["model"] == "oracle" and preferred["criterion"] == CRITERION
    assert preferred["scores"]["uniform"]["mean_auc"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same salience models"):
        preferred_model({"a": record, "b": {"oracle": oracle}})


def test_frequency_tuned_agrees_with_a_colour_blob_mask_better_than_chance(tuned) -> None:
    x, fg = _square_scene(n=4)
    x = torch.where(fg, torch.tensor([0.1, 0.2, 0.9]).view(1, 3, 1, 1).expand_as(x), x)
    r = salience_quality({"frequency_tuned": tuned}, x, fg)["frequency_tuned"]
    assert r["mean_fs_minus_fraction"] > 0 and r["auc"]["mean"] > 0.9
