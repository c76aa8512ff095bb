"""Properties of the AutoAttack ensemble (stages.attacks.autoattack) on a tiny trained CNN.

The model is a conv -> relu -> linear net on 3x8x8 images with 4 classes (APGD-T's DLR loss
needs 4), trained for a moment on a separable task so that attacks have something to break.
Budgets are cut to a few iterations and queries so the file runs in seconds on two cores.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import stages.attacks.autoattack as aa
from stages.attacks.autoattack import ATTACK_NAMES, RAND_ATTACKS, AutoAttackConfig, autoattack
from stages.attacks.pgd import pgd
from stages.attacks.threats import make_threat

C, H, W, CLASSES, N = 3, 8, 8, 4, 40
# Radii at which the trained net is partly but not wholly broken.
EPS = {"linf": 0.05, "l2": 0.5}
EPS_GRID = {"linf": (0.02, 0.05, 0.1), "l2": (0.2, 0.5, 1.0)}


def _fast(norm: str, eps: float, **kwargs: object) -> AutoAttackConfig:
    return AutoAttackConfig(norm=norm, eps=eps, steps=10, n_queries=50, **kwargs)  # type: ignore[arg-type]


def _separable(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class k = a brighter k-th quadrant of the image, plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    x = 0.25 + 0.5 * torch.rand(n, C, H, W, generator=g)
    for k in range(CLASSES):
        r, c = divmod(k, 2)
        x[y == k, :, r * 4 : (r + 1) * 4, c * 4 : (c + 1) * 4] += 0.15
    return x.clamp_(0, 1), y


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(C, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * H * W, CLASSES))
    x, y = _separable(256, seed=0)
    params = list(net.parameters())
    # Plain full-batch gradient descent: torch.optim's first use imports torch._dynamo (seconds).
    for _ in range(100):
        grads = torch.autograd.grad(F.cross_entropy(net(x), y), params)
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p.sub_(g, alpha=0.1)
    return net.eval()


@pytest.fixture(scope="module")
def batch(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _separable(N, seed=1)
    assert _accuracy(model, x, y) >= 0.9, "the tiny net should have learnt the separable task"
    return x, y


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_stays_in_eps_ball_and_image_range(model: nn.Module, batch: tuple, norm: str) -> None:
    x, y = batch
    eps = EPS[norm]
    x_adv = autoattack(model, x, y, _fast(norm, eps), num_classes=CLASSES, seed=0)
    delta = (x_adv - x).flatten(1)
    if norm == "linf":
        assert delta.abs().max().item() <= eps + 1e-6
    else:
        assert torch.linalg.vector_norm(delta, dim=1).max().item() <= eps + 1e-5
    assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert _accuracy(model, x_adv, y) < _accuracy(model, x, y), "the attack should break some images"


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_eps_zero_and_empty_batch_are_no_ops(
    model: nn.Module, batch: tuple, norm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = batch

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("torchattacks must not be called")

    monkeypatch.setattr(aa, "_build", fail)
    x_adv = autoattack(model, x, y, _fast(norm, 0.0), num_classes=CLASSES, seed=0)
    assert torch.equal(x_adv, x) and x_adv.data_ptr() != x.data_ptr()
    empty = autoattack(model, x[:0], y[:0], _fast(norm, EPS[norm]), num_classes=CLASSES, seed=0)
    assert empty.shape == (0, C, H, W)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_at_least_as_strong_as_pgd(model: nn.Module, batch: tuple, norm: str) -> None:
    x, y = batch
    eps = EPS[norm]
    x_aa = autoattack(model, x, y, _fast(norm, eps), num_classes=CLASSES, seed=0)
    x_pgd = pgd(model, x, y, make_threat(norm, eps), steps=10, step_size=eps / 4, random_start=False)
    assert _accuracy(model, x_aa, y) <= _accuracy(model, x_pgd, y)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_accuracy_falls_as_eps_grows(model: nn.Module, batch: tuple, norm: str) -> None:
    x, y = batch
    accs = [
        _accuracy(model, autoattack(model, x, y, _fast(norm, eps), num_classes=CLASSES, seed=0), y)
        for eps in EPS_GRID[norm]
    ]
    assert accs == sorted(accs, reverse=True), accs
    assert accs[-1] < accs[0], accs


def test_only_broken_images_change(model: nn.Module, batch: tuple) -> None:
    x, y = batch
    y = y.clone()
    y[:5] = (y[:5] + 1) % CLASSES  # wrong labels: misclassified before any attack
    x_adv = autoattack(model, x, y, _fast("linf", EPS["linf"]), num_classes=CLASSES, seed=0)
    with torch.no_grad():
        clean_ok = model(x).argmax(dim=1) == y
        adv_ok = model(x_adv).argmax(dim=1) == y
    assert not clean_ok[:5].any()
    changed = (x_adv != x).flatten(1).any(dim=1)
    assert not changed[~clean_ok].any(), "misclassified images must come back unchanged"
    assert not changed[adv_ok].any(), "images no attack breaks must come back clean"
    assert changed.any() and torch.equal(changed, clean_ok & ~adv_ok), "every changed image is a break"


def test_same_seed_same_output_and_global_rng_untouched(model: nn.Module, batch: tuple) -> None:
    x, y = batch
    config = _fast("l2", EPS["l2"])
    state = torch.get_rng_state()
    first = autoattack(model, x, y, config, num_classes=CLASSES, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    second = autoattack(model, x, y, config, num_classes=CLASSES, seed=3)
    assert torch.equal(first, second)


def test_each_attack_sees_only_unbroken_images(
    model: nn.Module, batch: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = batch
    calls: list[tuple[str, int, int]] = []  # (attack, images given, images it broke)
    build = aa._build

    def recording(name: str, *args: Any, **kwargs: Any) -> Any:
        attack = build(name, *args, **kwargs)
        forward = attack.forward

        def record(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            adv = forward(images, labels)
            with torch.no_grad():
                broken = int((model(adv).argmax(dim=1) != labels).sum())
            calls.append((name, images.shape[0], broken))
            return adv

        attack.forward = record
        return attack

    monkeypatch.setattr(aa, "_build", recording)
    config = _fast("linf", EPS["linf"], attacks=("square", "apgd-ce", "fab-t", "apgd-t"))
    x_adv = autoattack(model, x, y, config, num_classes=CLASSES, seed=0)
    assert [name for name, _, _ in calls] == list(config.attacks[: len(calls)]), "configured order"
    with torch.no_grad():
        remaining = int((model(x).argmax(dim=1) == y).sum())
    for _, given, broken in calls:
        assert given == remaining, "each attack gets exactly the images no earlier attack broke"
        remaining -= broken
    assert sum(broken for _, _, broken in calls) > 0
    assert round(_accuracy(model, x_adv, y) * N) == remaining


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_each_attack_alone_breaks_images(model: nn.Module, batch: tuple, name: str) -> None:
    x, y = batch
    for norm in ("linf", "l2"):
        eps = EPS_GRID[norm][-1]
        x_adv = autoattack(model, x, y, _fast(norm, eps, attacks=(name,)), num_classes=CLASSES, seed=0)
        assert _accuracy(model, x_adv, y) < _accuracy(model, x, y), (name, norm)


def test_rand_version_runs_within_the_ball(model: nn.Module, batch: tuple) -> None:
    x, y = batch
    config = AutoAttackConfig("linf", EPS["linf"], version="rand", attacks=RAND_ATTACKS, steps=3)
    x_adv = autoattack(model, x[:8], y[:8], config, num_classes=CLASSES, seed=0)
    assert (x_adv - x[:8]).abs().max().item() <= EPS["linf"] + 1e-6
    assert _accuracy(model, x_adv, y[:8]) <= _accuracy(model, x[:8], y[:8])


def test_bad_config_raises_clear_errors(model: nn.Module, batch: tuple) -> None:
    with pytest.raises(ValueError, match=r"'bogus'.*apgd-ce, apgd-dlr, apgd-t, fab, fab-t, square"):
        AutoAttackConfig("linf", 0.1, attacks=("apgd-ce", "bogus"))
    with pytest.raises(ValueError, match="'l1'"):
        AutoAttackConfig("l1", 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eps"):
        AutoAttackConfig("l2", -0.1)
    x, y = batch
    with pytest.raises(ValueError, match="'apgd-t' needs at least 4 classes"):
        autoattack(model, x, y, _fast("linf", 0.1), num_classes=3, seed=0)
    with pytest.raises(ValueError, match=r"logits of shape \(40, 4\), expected \(40, 5\)"):
        autoattack(model, x, y, _fast("linf", 0.1), num_classes=5, seed=0)
    with pytest.raises(ValueError, match="at least 5x5"):
        autoattack(model, x[..., :4, :4], y, _fast("l2", 0.1), num_classes=CLASSES, seed=0)


def test_model_modes_and_gradients_left_as_found(model: nn.Module, batch: tuple) -> None:
    x, y = batch
    net = nn.Sequential(model, nn.Dropout(0.5)).train()
    net[0].eval()  # a mixed state: the restore must be per module, not one .train()
    frozen = net[0][0].bias
    frozen.requires_grad_(False)
    modes = [m.training for m in net.modules()]
    try:
        x_adv = autoattack(net, x, y, _fast("linf", EPS["linf"]), num_classes=CLASSES, seed=0)
        assert [m.training for m in net.modules()] == modes
        assert all(p.grad is None for p in net.parameters()), "FAB's backward must not reach .grad"
        assert not frozen.requires_grad
        assert all(p.requires_grad for p in net.parameters() if p is not frozen)
        # Dropout was active in the caller's mode; the attack itself ran in eval mode.
        assert _accuracy(model, x_adv, y) < _accuracy(model, x, y)
    finally:
        frozen.requires_grad_(True)
        model.eval()


def test_images_stored_channels_last_are_attacked_too(model: nn.Module, batch: tuple) -> None:
    # The processed splits reach the attack as an NHWC -> NCHW permute; FAB reshapes with .view.
    x, y = batch
    x_cl = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    assert not x_cl.is_contiguous()
    x_adv = autoattack(model, x_cl, y, _fast("linf", EPS["linf"]), num_classes=CLASSES, seed=0)
    assert torch.equal(
        x_adv, autoattack(model, x, y, _fast("linf", EPS["linf"]), num_classes=CLASSES, seed=0)
    )
