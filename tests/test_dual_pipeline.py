"""The dual-perturbation attack as params.yaml describes it: step resolution, its kind in
stages.attack_kinds (masks from segmentation or salience), the pairs that cannot fit, the
foreground score recorded by evaluation, and the eps ramp of AT-Dual."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from stages.attack_kinds import perturb
from stages.attack_kinds.evaluate import evaluate
from stages.config import Params, load_yaml
from stages.data.processed import ProcessedSplit
from stages.training.trainer import ramped_attack
from stages.utils.errors import ConfigError, DataError
from tests.dag_tools import REPO

N, C, S, CLASSES = 12, 3, 16, 3


@pytest.fixture(scope="module")
def params() -> Params:
    return Params.load(REPO / "params.yaml", scale="tiny")


def tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(C, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * S * S, CLASSES)
    ).eval()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(N, C, S, S, generator=g)
    y = torch.randint(0, CLASSES, (N,), generator=g)
    fg = torch.zeros(N, 1, S, S, dtype=torch.bool)
    fg[:, :, 4:12, 4:12] = True
    return x, y, fg


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_relative_step_is_r_eps_over_steps_per_part(params: Params) -> None:
    raw = load_yaml(REPO / "params.yaml")["attacks"]
    dual = params.attack("dual_l2_f2_b20")
    r = raw["dual_l2_f2_b20"]["relative_step"]
    assert dual.step_size_foreground == pytest.approx(r * dual.eps_foreground / dual.steps)
    assert dual.step_size_background == pytest.approx(r * dual.eps_background / dual.steps)
    pgd = params.attack("pgd_l2_e3")
    assert pgd.step_size == pytest.approx(raw["pgd_l2_e3"]["relative_step"] * pgd.eps / pgd.steps)
    # An absolute step stays as written.
    assert params.attack("am_pgd").step_size == raw["am_pgd"]["step_size"]


def test_dual_with_equal_linf_budgets_is_the_pgd_attack_of_the_same_spec(params, batch) -> None:
    x, y, fg = batch
    model = tiny_cnn()
    pgd_spec = params.attack("pgd_linf_8")
    dual_spec = replace(
        params.attack("dual_linf_f4_b20"),
        eps_foreground=pgd_spec.eps,
        eps_background=pgd_spec.eps,
        step_size_foreground=pgd_spec.step_size,
        step_size_background=pgd_spec.step_size,
        salience_weight=0.0,
    )
    a = perturb(model, x, y, fg, pgd_spec, 0.5, _gen())
    b = perturb(model, x, y, fg, dual_spec, 0.5, _gen())
    assert torch.equal(a, b)


@pytest.mark.parametrize("attack", ["dual_l2_f0_b20", "dual_linf_f0_b20"])
def test_background_only_leaves_the_foreground_bit_identical(params, batch, attack) -> None:
    x, y, fg = batch
    x_adv = perturb(tiny_cnn(), x, y, fg, params.attack(attack), 0.5, _gen())
    assert torch.equal(x_adv[fg.expand_as(x)], x[fg.expand_as(x)])
    assert not torch.equal(x_adv, x)


@pytest.mark.parametrize("attack", ["dual_l2_f2_b20", "dual_linf_f4_b20"])
def test_each_part_inside_its_own_ball(params, batch, attack) -> None:
    x, y, fg = batch
    spec = params.attack(attack)
    delta = perturb(tiny_cnn(), x, y, fg, spec, 0.5, _gen()) - x
    for region, eps in ((fg, spec.eps_foreground), (~fg, spec.eps_background)):
        part = torch.where(region, delta, torch.zeros_like(delta)).flatten(1)
        size = part.abs().amax(1) if spec.norm == "linf" else part.norm(dim=1)
        assert bool((size <= eps * (1 + 1e-5) + 1e-6).all())


def test_saliency_foreground_needs_no_masks_segmentation_does(params, batch) -> None:
    x, y, _ = batch
    spec = params.attack("dual_linf_f4_b20")
    with pytest.raises(DataError, match="foreground 'segmentation' needs the dataset's foreground masks"):
        perturb(tiny_cnn(), x, y, None, spec, 0.5, _gen())
    x_adv = perturb(tiny_cnn(), x, y, None, replace(spec, foreground="saliency"), 0.5, _gen())
    assert x_adv.shape == x.shape and not torch.equal(x_adv, x)


def test_dual_pairs_that_cannot_fit_are_config_errors(params) -> None:
    raw = load_yaml(REPO / "params.yaml")
    raw["evaluation"]["groups"]["attention_coco_ic"]["attacks"].append("dual_l2_f2_b20")
    with pytest.raises(ConfigError, match="a dual attack perturbs the background"):
        Params(raw, scale="tiny").evaluations()
    raw = load_yaml(REPO / "params.yaml")
    raw["evaluation"]["groups"]["lat_cifar10"]["attacks"].append("dual_l2_f2_b20")
    with pytest.raises(ConfigError, match=r"foreground is 'segmentation', but dataset 'cifar10' has no"):
        Params(raw, scale="tiny").evaluations()
    raw["attacks"]["dual_l2_f2_b20"]["foreground"] = "saliency"
    Params(raw, scale="tiny").evaluations()


def test_a_sweep_point_must_be_evaluated_for_every_model() -> None:
    raw = load_yaml(REPO / "params.yaml")
    raw["tables"]["dual_perturbation"]["sweeps"]["l2_pgd_eps"]["attacks"].append("am_pgd")
    with pytest.raises(
        ConfigError, match=r"sweeps\.l2_pgd_eps: model 'segment6_clean' is not evaluated under 'am_pgd'"
    ):
        Params(raw, scale="tiny")


def _split(x: torch.Tensor, y: torch.Tensor, fg: torch.Tensor) -> ProcessedSplit:
    images = (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return ProcessedSplit(
        images=images,
        labels=y.numpy().astype(np.int64),
        ids=np.array([str(i) for i in range(len(y))]),
        masks=fg[:, 0].numpy(),
    )


def test_evaluation_records_the_foreground_score_of_dual_attacks_only(params, batch) -> None:
    split = _split(*batch)
    common = dict(box_fraction=0.5, batch_size=5, seed=0, device=torch.device("cpu"), progress=False)
    dual, _ = evaluate(tiny_cnn(), split, params.attack("dual_l2_f2_b20"), **common)
    assert 0.0 <= dual["foreground_score"] <= 1.0 and 0.0 <= dual["foreground_score_natural"] <= 1.0
    assert dual["foreground_source"] == "segmentation"
    assert dual["salience_model"] == params.attack("dual_l2_f2_b20").salience
    assert dual["effective_region"].startswith("foreground <= ")
    pgd, _ = evaluate(tiny_cnn(), split, params.attack("pgd_l2_e2"), **common)
    assert "foreground_score" not in pgd
    assert dual == evaluate(tiny_cnn(), split, params.attack("dual_l2_f2_b20"), **common)[0]


def test_salience_weight_raises_the_recorded_foreground_score(params, batch) -> None:
    split = _split(*batch)
    common = dict(box_fraction=0.5, batch_size=N, seed=0, device=torch.device("cpu"), progress=False)
    low, _ = evaluate(tiny_cnn(), split, params.attack("dual_l2_f2_b20_lambda0"), **common)
    high, _ = evaluate(tiny_cnn(), split, params.attack("dual_l2_f2_b20_lambda100"), **common)
    assert high["foreground_score"] > low["foreground_score"]


def test_the_eps_ramp_scales_both_dual_budgets_and_steps(params) -> None:
    spec = params.model("segment6_at_dual")
    spec = replace(spec, training=replace(spec.training, eps_ramp_epochs=2))
    half = ramped_attack(spec, global_step=9, steps_per_epoch=10)
    full = spec.train_attack
    for field in ("eps_foreground", "eps_background", "step_size_foreground", "step_size_background"):
        assert getattr(half, field) == pytest.approx(getattr(full, field) / 2)
    assert ramped_attack(spec, global_step=20, steps_per_epoch=10) == full


def test_evaluation_keeps_per_image_outcomes_that_add_up_to_its_summary(params, batch) -> None:
    """Claims are paired over images (stages/claims): each image's outcome, loss and prediction,
    and for dual attacks its foreground scores and foreground fraction, must agree with the
    summary numbers and name the images they were made on."""
    from stages.evaluation.records import ids_digest

    split = _split(*batch)
    common = dict(box_fraction=0.5, batch_size=5, seed=0, device=torch.device("cpu"), progress=False)
    dual, _ = evaluate(tiny_cnn(), split, params.attack("dual_l2_f2_b20"), **common)
    per_image = dual["per_image"]
    assert per_image["ids_sha256"] == ids_digest(split.ids)
    for key in ("correct", "loss", "prediction", "foreground_score", "foreground_score_natural"):
        assert len(per_image[key]) == N, key
    assert sum(per_image["correct"]) == round(dual["accuracy"] * N)
    assert np.mean(per_image["loss"]) == pytest.approx(dual["loss"], rel=1e-5)
    assert np.mean(per_image["foreground_score"]) == pytest.approx(dual["foreground_score"], rel=1e-5)
    assert np.mean(per_image["foreground_score_natural"]) == pytest.approx(
        dual["foreground_score_natural"], rel=1e-5
    )
    # The masks cover the central 8x8 of 16x16 pixels: a quarter of every image.
    assert per_image["foreground_fraction"] == [0.25] * N
    pgd, _ = evaluate(tiny_cnn(), split, params.attack("pgd_l2_e2"), **common)
    assert set(pgd["per_image"]) == {"ids_sha256", "correct", "loss", "prediction"}
    assert [int(p == y) for p, y in zip(pgd["per_image"]["prediction"], split.labels, strict=True)] == pgd[
        "per_image"
    ]["correct"]
