"""Properties of PGD and its threats, and agreement with ART's reference implementation.

Everything runs on a tiny CNN (conv -> relu -> flatten -> linear) on 1x12x12 inputs so the
whole file takes a few seconds on two CPU cores.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stages.attacks.pgd import localized_pgd, pgd, post_clip, summed_cross_entropy
from stages.attacks.threats import L2Threat, LinfThreat, make_threat
from stages.masks.regions import eps_matrix, region_mask

N, C, H, W, CLASSES = 32, 1, 12, 12, 3


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(C, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * H * W, CLASSES)
    ).eval()


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny_cnn()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(N, C, H, W, generator=g), torch.randint(0, CLASSES, (N,), generator=g)


@pytest.fixture(scope="module")
def region() -> torch.Tensor:
    return region_mask("outside_box", (N, H, W), box_fraction=0.5)


def _separable(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class k = a brighter k-th vertical third of the image, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    x = 0.6 * torch.rand(n, C, H, W, generator=g)
    for k in range(CLASSES):
        x[y == k, :, :, k * (W // CLASSES) : (k + 1) * (W // CLASSES)] += 0.25
    return x.clamp_(0, 1), y


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The tiny CNN after a few Adam steps on the separable task (accuracy ~1)."""
    net = tiny_cnn(seed=2).train()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for step in range(30):
        xb, yb = _separable(64, seed=100 + step)
        opt.zero_grad()
        F.cross_entropy(net(xb), yb).backward()
        opt.step()
    net.eval()
    x, y = _separable(300, seed=7)
    with torch.no_grad():
        assert (net(x).argmax(1) == y).float().mean() > 0.95
    return net, x, y


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _per_sample_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.cross_entropy(model(x), y, reduction="none")


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


# ---------------------------------------------------------------- l_inf


@pytest.mark.parametrize("localization", ["project", "post_clip"])
def test_linf_stays_in_the_per_pixel_box_and_leaves_outside_pixels_untouched(
    model, batch, region, localization
) -> None:
    x, y = batch
    eps = 0.1
    x_adv = localized_pgd(
        model, x, y, norm="linf", eps=eps, region=region, localization=localization,
        steps=5, step_size=0.04, random_start=True, generator=_gen(0),
    )  # fmt: skip
    e = eps_matrix(region, eps).expand_as(x)
    assert bool(((x_adv - x).abs() <= e + 1e-6).all())
    assert bool((x_adv >= 0).all()) and bool((x_adv <= 1).all())
    outside = ~region.expand_as(x)
    assert torch.equal(x_adv[outside], x[outside])
    assert not torch.equal(x_adv, x)  # the attack did something inside the region


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("localization", ["project", "post_clip"])
@pytest.mark.parametrize("random_start", [False, True])
def test_eps_zero_is_a_bit_identical_no_op(model, batch, region, norm, localization, random_start) -> None:
    x, y = batch
    for reg in (region, None):
        x_adv = localized_pgd(
            model, x, y, norm=norm, eps=0.0, region=reg, localization=localization,
            steps=3, step_size=0.05, random_start=random_start, generator=_gen(0),
        )  # fmt: skip
        assert torch.equal(x_adv, x)


def test_more_steps_reach_at_least_the_loss_of_fewer(model, batch) -> None:
    x, y = batch
    threat = make_threat("linf", 0.05, None)
    losses = [
        _per_sample_loss(
            model,
            pgd(model, x, y, threat, steps=k, step_size=0.01, random_start=True, generator=_gen(3)),
            y,
        ).mean()
        for k in (0, 2, 10)
    ]
    assert losses[0] <= losses[1] <= losses[2]
    assert losses[2] > losses[0]


def test_robust_accuracy_does_not_increase_with_eps(trained) -> None:
    net, x, y = trained
    accs = []
    for eps in (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3):
        x_adv = pgd(
            net, x, y, make_threat("linf", eps, None),
            steps=10, step_size=2.5 * eps / 10, random_start=False,
        )  # fmt: skip
        accs.append(_accuracy(net, x_adv, y))
    assert accs[0] > 0.95
    assert all(a >= b for a, b in zip(accs, accs[1:], strict=False)), accs
    assert accs[-1] < 0.5 * accs[0], accs  # the attack really bites at large eps
    assert any(0.1 < a < 0.9 for a in accs), accs  # and degrades gradually, not in one cliff


def test_post_clip_is_exactly_the_clamp_of_unlocalized_pgd(model, batch, region) -> None:
    x, y = batch
    eps, kw = 0.1, dict(steps=4, step_size=0.03, random_start=True)
    full = pgd(model, x, y, make_threat("linf", eps, None), generator=_gen(5), **kw)
    e = eps_matrix(region, eps)
    expected = torch.clamp(full, min=x - e, max=x + e)
    got = localized_pgd(
        model, x, y, norm="linf", eps=eps, region=region, localization="post_clip",
        generator=_gen(5), **kw,
    )  # fmt: skip
    assert torch.equal(got, expected)
    assert torch.equal(post_clip(x, full, make_threat("linf", eps, region)), expected)


def test_per_step_projection_is_at_least_as_strong_as_post_clip(trained) -> None:
    # Not a theorem per image (PGD is a local method), so compare batch means.
    net, x, y = trained
    region = region_mask("outside_box", (x.shape[0], H, W), box_fraction=0.5)
    loss = {}
    for loc in ("project", "post_clip"):
        x_adv = localized_pgd(
            net, x, y, norm="linf", eps=0.1, region=region, localization=loc,
            steps=10, step_size=0.025, random_start=False,
        )  # fmt: skip
        loss[loc] = _per_sample_loss(net, x_adv, y).mean().item()
    assert loss["post_clip"] > 0.05  # the region attack is not a no-op on this model
    assert loss["project"] >= loss["post_clip"] - 1e-6, loss


# ---------------------------------------------------------------- l_2


@pytest.mark.parametrize("random_start", [False, True])
@pytest.mark.parametrize("steps", [0, 6])
def test_l2_respects_the_ball_and_the_region(model, batch, region, random_start, steps) -> None:
    x, y = batch
    eps = 0.8
    x_adv = pgd(
        model, x, y, L2Threat(eps, region),
        steps=steps, step_size=0.3, random_start=random_start, generator=_gen(2),
    )  # fmt: skip
    norms = (x_adv - x).flatten(1).norm(dim=1)
    assert bool((norms <= eps + 1e-5).all()), norms.max()
    assert bool((x_adv >= 0).all()) and bool((x_adv <= 1).all())
    outside = ~region.expand_as(x)
    assert torch.equal(x_adv[outside], x[outside])
    if steps or random_start:
        assert bool((norms > 0).all())


def test_l2_random_start_fills_the_ball_not_just_the_sphere() -> None:
    # In d dimensions the radius of a uniform point has CDF (r/eps)^d: its median is
    # eps * 0.5^(1/d). With d = 4 region coordinates the median radius is ~0.84 eps.
    region = torch.zeros(4000, 1, 3, 3, dtype=torch.bool)
    region[:, :, :2, :2] = True
    x = torch.full((4000, 1, 3, 3), 0.5)
    delta = L2Threat(0.1, region).random_start(x, _gen(0))
    assert bool((delta[~region.expand_as(x)] == 0).all())
    r = delta.flatten(1).norm(dim=1) / 0.1
    assert bool((r <= 1 + 1e-6).all())
    assert abs(r.median().item() - 0.5**0.25) < 0.02


# ---------------------------------------------------------------- determinism, hygiene


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_same_seed_same_result_different_seed_different_start(model, batch, region, norm) -> None:
    x, y = batch
    threat = make_threat(norm, 0.1 if norm == "linf" else 0.8, region)
    kw = dict(steps=3, step_size=0.03, random_start=True)
    a = pgd(model, x, y, threat, generator=_gen(11), **kw)
    b = pgd(model, x, y, threat, generator=_gen(11), **kw)
    c = pgd(model, x, y, threat, generator=_gen(12), **kw)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("training", [False, True])
def test_gradients_stay_off_the_parameters_and_mode_and_no_grad_are_respected(batch, training) -> None:
    x, y = batch
    net = tiny_cnn().train(training)  # a fresh model: no earlier test touched its .grad
    with torch.no_grad():
        x_adv = pgd(net, x, y, make_threat("linf", 0.1, None), steps=2, step_size=0.05,
                    random_start=False)  # fmt: skip
    assert not torch.equal(x_adv, x)
    assert all(p.grad is None for p in net.parameters())
    assert net.training is training


def test_per_image_result_does_not_depend_on_the_batch(model, batch) -> None:
    x, y = batch
    threat = make_threat("l2", 0.8, None)
    kw = dict(steps=5, step_size=0.3, random_start=False)
    whole = pgd(model, x, y, threat, **kw)
    halves = torch.cat([pgd(model, x[:8], y[:8], threat, **kw), pgd(model, x[8:], y[8:], threat, **kw)])
    assert torch.allclose(whole, halves, atol=1e-5)


def test_bad_arguments_are_rejected(model, batch) -> None:
    x, y = batch
    with pytest.raises(ValueError, match="norm"):
        make_threat("l1", 0.1, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="localization"):
        localized_pgd(model, x, y, norm="linf", eps=0.1, region=None, localization="pre",  # type: ignore[arg-type]
                      steps=1, step_size=0.1, random_start=False)  # fmt: skip
    with pytest.raises(ValueError, match="steps"):
        pgd(model, x, y, LinfThreat(0.1), steps=-1, step_size=0.1, random_start=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_with_a_cpu_generator(model, batch, region) -> None:
    x, y = batch
    kw = dict(steps=3, step_size=0.03, random_start=True)
    cpu = pgd(model, x, y, make_threat("linf", 0.1, region), generator=_gen(4), **kw)
    net = tiny_cnn().cuda()
    gpu = pgd(net, x.cuda(), y.cuda(), make_threat("linf", 0.1, region.cuda()),
              generator=_gen(4), **kw)  # fmt: skip
    cuda_gen = torch.Generator(device="cuda").manual_seed(4)
    pgd(net, x.cuda(), y.cuda(), make_threat("l2", 0.5, region.cuda()), generator=cuda_gen, **kw)
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-4)


# ---------------------------------------------------------------- agreement with ART


def _art_pgd(model, x, y, *, norm, eps, step_size, steps, mask=None) -> torch.Tensor:
    art_evasion = pytest.importorskip("art.attacks.evasion")
    art_classification = pytest.importorskip("art.estimators.classification")
    clf = art_classification.PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(reduction="sum"),
        input_shape=(C, H, W),
        nb_classes=CLASSES,
        clip_values=(0.0, 1.0),
        device_type="cpu",
    )
    attack = art_evasion.ProjectedGradientDescentPyTorch(
        clf, norm=norm, eps=eps, eps_step=step_size, max_iter=steps,
        num_random_init=0, batch_size=len(x), verbose=False,
    )  # fmt: skip
    kwargs = {} if mask is None else {"mask": mask.float().numpy()}
    return torch.from_numpy(attack.generate(x.numpy(), y.numpy(), **kwargs))


@pytest.mark.parametrize(
    "norm,art_norm,eps,step_size,use_region",
    [
        ("linf", np.inf, 0.1, 0.02, False),
        ("l2", 2, 1.0, 0.2, False),
        ("linf", np.inf, 0.1, 0.02, True),
        ("l2", 2, 1.0, 0.2, True),
    ],
)
def test_matches_art_pgd(model, batch, region, norm, art_norm, eps, step_size, use_region) -> None:
    x, y = batch
    reg = region if use_region else None
    ours = pgd(model, x, y, make_threat(norm, eps, reg), steps=20, step_size=step_size,
               random_start=False)  # fmt: skip
    theirs = _art_pgd(model, x, y, norm=art_norm, eps=eps, step_size=step_size, steps=20,
                      mask=reg)  # fmt: skip
    assert (theirs - x).abs().max() > 0.5 * min(eps, step_size)  # ART did attack
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0), (ours - theirs).abs().max()


def test_loss_fn_is_what_the_attack_ascends(model, batch) -> None:
    x, y = batch
    logits = model(x)
    assert torch.allclose(summed_cross_entropy(logits, y), F.cross_entropy(logits, y, reduction="none").sum())
    threat = make_threat("linf", 0.1, None)
    kw = dict(steps=5, step_size=0.03, random_start=False)
    up = pgd(model, x, y, threat, **kw)
    down = pgd(model, x, y, threat, loss_fn=lambda z, t: -summed_cross_entropy(z, t), **kw)
    clean = _per_sample_loss(model, x, y).mean()
    assert _per_sample_loss(model, down, y).mean() < clean < _per_sample_loss(model, up, y).mean()
