"""Properties of the dual-perturbation attack (stages.attacks.dual).

A tiny CNN on 3x16x16 inputs, so the whole file runs in a few seconds on two CPU cores.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stages.attacks.dual import DualThreat, dual_pgd
from stages.attacks.pgd import localized_pgd, pgd
from stages.attacks.threats import make_threat
from stages.saliency import SpectralResidualSaliency, foreground_score

N, C, S, CLASSES = 16, 3, 16, 3
BUDGETS = {"linf": (4 / 255, 24 / 255, 1 / 255, 6 / 255), "l2": (0.3, 2.0, 0.1, 0.6)}
"""norm -> (eps_fg, eps_bg, step_fg, step_bg): a small foreground and a large background
budget, in the paper's proportions (l_inf 4/255 vs 20/255; l_2 2.0 vs 20.0 at 224 px)."""


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(C, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * S * S, CLASSES)
    ).eval()


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny_cnn()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images, labels and an irregular foreground (about 40% of the pixels)."""
    g = _gen(1)
    x = torch.rand(N, C, S, S, generator=g)
    y = torch.randint(0, CLASSES, (N,), generator=g)
    fg = torch.rand(N, 1, S, S, generator=g) < 0.4
    return x, y, fg


def _attack(model, x, y, fg, norm, *, eps_fg=None, eps_bg=None, step_fg=None, step_bg=None, **kw):
    d_eps_fg, d_eps_bg, d_step_fg, d_step_bg = BUDGETS[norm]
    kw.setdefault("steps", 5)
    kw.setdefault("random_start", True)
    kw.setdefault("generator", _gen(0))
    return dual_pgd(
        model, x, y, fg, norm=norm,
        eps_fg=d_eps_fg if eps_fg is None else eps_fg,
        eps_bg=d_eps_bg if eps_bg is None else eps_bg,
        step_fg=d_step_fg if step_fg is None else step_fg,
        step_bg=d_step_bg if step_bg is None else step_bg,
        **kw,
    )  # fmt: skip


def _part_norms(delta: torch.Tensor, region: torch.Tensor, norm: str) -> torch.Tensor:
    part = torch.where(region, delta, torch.zeros_like(delta)).flatten(1)
    return part.abs().amax(dim=1) if norm == "linf" else part.norm(dim=1)


# ---------------------------------------------------------------- relation to PGD


@pytest.mark.parametrize("random_start", [False, True])
@pytest.mark.parametrize("seed", [0, 7])
def test_linf_with_equal_budgets_is_full_image_pgd_bit_for_bit(model, batch, random_start, seed) -> None:
    x, y, fg = batch
    eps, step = 0.1, 0.03
    expected = pgd(model, x, y, make_threat("linf", eps, None), steps=6, step_size=step,
                   random_start=random_start, generator=_gen(seed))  # fmt: skip
    got = _attack(model, x, y, fg, "linf", eps_fg=eps, eps_bg=eps, step_fg=step, step_bg=step,
                  steps=6, random_start=random_start, generator=_gen(seed))  # fmt: skip
    assert not torch.equal(got, x)
    assert torch.equal(got, expected), (got - expected).abs().max()


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("random_start", [False, True])
def test_no_background_budget_is_foreground_pgd_bit_for_bit(model, batch, norm, random_start) -> None:
    # The l_2 analogue of the PGD equivalence: with eps_B = 0 only the foreground ball is left.
    x, y, fg = batch
    eps, step = BUDGETS[norm][0], BUDGETS[norm][2]
    expected = localized_pgd(model, x, y, norm=norm, eps=eps, region=fg, localization="project", steps=5,
                             step_size=step, random_start=random_start, generator=_gen(3))  # fmt: skip
    got = _attack(model, x, y, fg, norm, eps_bg=0.0, random_start=random_start, generator=_gen(3))
    assert torch.equal(got, expected), (got - expected).abs().max()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_no_foreground_budget_is_background_pgd(model, batch, norm) -> None:
    x, y, fg = batch
    eps, step = BUDGETS[norm][1], BUDGETS[norm][3]
    expected = localized_pgd(model, x, y, norm=norm, eps=eps, region=~fg, localization="project",
                             steps=5, step_size=step, random_start=False)  # fmt: skip
    got = _attack(model, x, y, fg, norm, eps_fg=0.0, random_start=False)
    assert torch.equal(got, expected), (got - expected).abs().max()


def test_l2_with_equal_budgets_is_not_pgd_but_stays_in_the_product_of_balls(model, batch) -> None:
    # Documented difference: the l_2 dual set allows ||delta|| up to sqrt(2) eps.
    x, y, fg = batch
    eps = 0.5
    got = _attack(model, x, y, fg, "l2", eps_fg=eps, eps_bg=eps, step_fg=0.3, step_bg=0.3, steps=8)
    full = (got - x).flatten(1).norm(dim=1)
    assert bool((full <= 2**0.5 * eps + 1e-5).all())
    assert bool((full > eps + 1e-3).any())  # beyond the full-image PGD ball


# ---------------------------------------------------------------- the constraint set


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("random_start", [False, True])
@pytest.mark.parametrize("steps", [0, 6])
def test_each_part_stays_in_its_own_ball(model, batch, norm, random_start, steps) -> None:
    x, y, fg = batch
    eps_fg, eps_bg = BUDGETS[norm][:2]
    x_adv = _attack(model, x, y, fg, norm, steps=steps, random_start=random_start)
    delta = x_adv - x
    fg_norms, bg_norms = _part_norms(delta, fg, norm), _part_norms(delta, ~fg, norm)
    assert bool((fg_norms <= eps_fg + 1e-5).all()), fg_norms.max()
    assert bool((bg_norms <= eps_bg + 1e-5).all()), bg_norms.max()
    assert bool((x_adv >= 0).all()) and bool((x_adv <= 1).all())
    if steps or random_start:
        # The background really uses its larger budget.
        assert bool((bg_norms > eps_fg).all()), bg_norms.min()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_zero_foreground_budget_leaves_every_foreground_pixel_bit_identical(model, batch, norm) -> None:
    x, y, fg = batch
    x_adv = _attack(model, x, y, fg, norm, eps_fg=0.0)
    inside = fg.expand_as(x)
    assert torch.equal(x_adv[inside], x[inside])
    assert not torch.equal(x_adv[~inside], x[~inside])


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("random_start", [False, True])
def test_zero_budgets_are_a_bit_identical_no_op(model, batch, norm, random_start) -> None:
    x, y, fg = batch
    x_adv = _attack(model, x, y, fg, norm, eps_fg=0.0, eps_bg=0.0, random_start=random_start)
    assert torch.equal(x_adv, x)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_the_two_parts_take_their_own_step_sizes(model, batch, norm) -> None:
    # One step from x, budgets larger than the steps, images away from 0 and 1: no projection
    # or clipping acts, so each part moved by exactly its own step.
    _, y, fg = batch
    x = 0.3 + 0.4 * torch.rand(N, C, S, S, generator=_gen(9))
    step_fg, step_bg = 0.02, 0.05
    x_adv = _attack(model, x, y, fg, norm, eps_fg=1.0, eps_bg=1.0, step_fg=step_fg, step_bg=step_bg,
                    steps=1, random_start=False)  # fmt: skip
    delta = x_adv - x
    if norm == "linf":
        moved_fg = delta[fg.expand_as(x)].abs()
        moved_bg = delta[(~fg).expand_as(x)].abs()
        assert torch.allclose(moved_fg[moved_fg > 0], torch.tensor(step_fg), atol=1e-6)
        assert torch.allclose(moved_bg[moved_bg > 0], torch.tensor(step_bg), atol=1e-6)
        assert (moved_fg > 0).float().mean() > 0.9 and (moved_bg > 0).float().mean() > 0.9
    else:
        assert torch.allclose(_part_norms(delta, fg, "l2"), torch.full((N,), step_fg), atol=1e-5)
        assert torch.allclose(_part_norms(delta, ~fg, "l2"), torch.full((N,), step_bg), atol=1e-5)


def test_dual_threat_projection_is_part_wise() -> None:
    fg = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
    fg[0, 0, 0, :] = True
    threat = DualThreat("l2", 1.0, 2.0, fg, step_fg=0.1, step_bg=0.1)
    delta = torch.tensor([[[[3.0, 4.0], [0.6, 0.8]]]])  # fg part norm 5, bg part norm 1
    threat.project(delta)
    assert torch.allclose(delta, torch.tensor([[[[0.6, 0.8], [0.6, 0.8]]]]))


# ---------------------------------------------------------------- determinism, hygiene


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_same_seed_same_result_different_seed_different_start(model, batch, norm) -> None:
    x, y, fg = batch
    a = _attack(model, x, y, fg, norm, generator=_gen(11))
    b = _attack(model, x, y, fg, norm, generator=_gen(11))
    c = _attack(model, x, y, fg, norm, generator=_gen(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("training", [False, True])
def test_gradients_stay_off_the_parameters_and_mode_and_no_grad_are_respected(batch, training) -> None:
    x, y, fg = batch
    net = tiny_cnn().train(training)
    salience = SpectralResidualSaliency(size=16, sigma=1.0)
    with torch.no_grad():
        x_adv = _attack(net, x, y, fg, "linf", steps=2, salience=salience, salience_weight=1.0)
    assert not torch.equal(x_adv, x)
    assert not x_adv.requires_grad
    assert all(p.grad is None for p in net.parameters())
    assert net.training is training


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_with_a_cpu_generator(model, batch) -> None:
    # l_2 only: its steps are continuous in the gradient, so float differences between
    # devices stay small (an l_inf sign can flip on a near-zero gradient component).
    x, y, fg = batch
    norm = "l2"
    salience = SpectralResidualSaliency(size=32, sigma=1.25)
    kw = dict(steps=3, generator=_gen(4), salience=salience, salience_weight=1.0)
    cpu = _attack(model, x, y, fg, norm, **kw)
    kw["generator"] = _gen(4)
    gpu = _attack(tiny_cnn().cuda(), x.cuda(), y.cuda(), fg.cuda(), norm, **kw)
    assert gpu.device.type == "cuda"
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-4)


def test_bad_arguments_are_rejected(model, batch) -> None:
    x, y, fg = batch
    with pytest.raises(ValueError, match="bool"):
        _attack(model, x, y, fg.float(), "linf")
    with pytest.raises(ValueError, match=r"foreground has shape .*; wants"):
        _attack(model, x, y, fg[:, :, :8], "linf")
    with pytest.raises(ValueError, match="step_bg"):
        _attack(model, x, y, fg, "linf", step_bg=-0.1)
    with pytest.raises(ValueError, match="eps"):
        _attack(model, x, y, fg, "l2", eps_fg=-1.0)
    with pytest.raises(ValueError, match="norm"):
        dual_pgd(model, x, y, fg, norm="l1", eps_fg=0.1, eps_bg=0.1, step_fg=0.1, step_bg=0.1,  # type: ignore[arg-type]
                 steps=1, random_start=False)  # fmt: skip
    with pytest.raises(ValueError, match="salience"):
        _attack(model, x, y, fg, "linf", salience_weight=1.0)


# ---------------------------------------------------------------- the salience term


@pytest.fixture(scope="module")
def objects() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bright 6x6 squares (the foreground) on a dim, slightly noisy background."""
    g = _gen(2)
    x = 0.35 + 0.1 * torch.rand(N, C, S, S, generator=g)
    fg = torch.zeros(N, 1, S, S, dtype=torch.bool)
    for i in range(N):
        r, c = torch.randint(2, S - 8, (2,), generator=g).tolist()
        fg[i, :, r : r + 6, c : c + 6] = True
    return torch.where(fg, x + 0.4, x), torch.randint(0, CLASSES, (N,), generator=g), fg


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_salience_weight_raises_the_foreground_score(model, objects, norm) -> None:
    # Eq. 3 *adds* lambda * FS: the attack keeps attention on the foreground while the large
    # background perturbation (which alone pulls attention away) is found.
    x, y, fg = objects
    salience = SpectralResidualSaliency(size=32, sigma=1.25)

    def mean_fs(images: torch.Tensor) -> float:
        with torch.no_grad():
            return foreground_score(salience(images), fg).mean().item()

    fs = {}
    for lam in (0.0, 1.0):
        x_adv = _attack(model, x, y, fg, norm, steps=6, generator=_gen(5), salience=salience,
                        salience_weight=lam)  # fmt: skip
        fs[lam] = mean_fs(x_adv)
    assert fs[0.0] < mean_fs(x)  # the unconstrained background noise is salient ...
    assert fs[1.0] > fs[0.0] + 0.03, fs  # ... and lambda > 0 pulls attention back


def test_zero_salience_weight_never_evaluates_the_salience_model(model, batch) -> None:
    x, y, fg = batch

    def forbidden(images: torch.Tensor) -> torch.Tensor:
        raise AssertionError("salience evaluated with salience_weight=0")

    with_model = _attack(model, x, y, fg, "l2", salience=forbidden, salience_weight=0.0)
    assert torch.equal(with_model, _attack(model, x, y, fg, "l2"))


def test_salience_term_is_what_the_attack_ascends(model, objects) -> None:
    # A huge lambda makes the attack (nearly) pure salience ascent: FS above lambda = 0's,
    # and with lambda < 0 below it (the sign is the paper's: + lambda * S).
    x, y, fg = objects
    salience = SpectralResidualSaliency(size=32, sigma=1.25)
    fs = {}
    for lam in (-100.0, 0.0, 100.0):
        x_adv = _attack(model, x, y, fg, "linf", steps=6, generator=_gen(6), salience=salience,
                        salience_weight=lam)  # fmt: skip
        with torch.no_grad():
            fs[lam] = foreground_score(salience(x_adv), fg).mean().item()
    assert fs[-100.0] < fs[0.0] < fs[100.0], fs


def test_loss_still_rises_with_a_moderate_salience_weight(model, objects) -> None:
    # Paper §5.2: moderate lambda does not make the attack ineffective.
    x, y, fg = objects
    salience = SpectralResidualSaliency(size=32, sigma=1.25)
    x_adv = _attack(model, x, y, fg, "linf", steps=6, salience=salience, salience_weight=1.0)
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y)
