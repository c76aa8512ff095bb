"""Vaishnavi et al.'s attention-mask models: the VGG family, the X_FG input path (x∘F, the
background exactly zero at training and test time), the foreground-only adversary, and the
augmentation and learning-rate schedule their training uses."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from stages.attack_kinds import perturb
from stages.attack_kinds.evaluate import evaluate
from stages.config import AttackSpec, AugmentSpec, DatasetSpec, ModelSpec, Params, TrainingSpec, load_yaml
from stages.data.builders import get_builder, make_config
from stages.data.processed import ProcessedSplit
from stages.models.checkpoint import load_trained
from stages.models.inputs import model_view
from stages.models.registry import ArchSpec, arch_record, build_model, make_arch
from stages.models.vgg import VGG, VggConfig
from stages.training import trainer
from stages.training.augment import augment_batch
from stages.training.trainer import learning_rate, train
from stages.utils.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[1]
EPS = 8 / 255
PGD = AttackSpec(
    name="am_pgd",
    kind="pgd",
    norm="linf",
    eps=EPS,
    step_size=2 / 255,
    steps=5,
    random_start=True,
    region="full",
)
PGD_L2 = AttackSpec(
    name="am_pgd_l2",
    kind="pgd",
    norm="l2",
    eps=0.5,
    step_size=0.125,
    steps=5,
    random_start=True,
    region="full",
)
TINY_VGG = make_arch("vgg_tiny", "vgg", {"depth": 11, "width": 0.125}, "test")


def masked_batch(n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random 32x32 images with a random rectangle of foreground each."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=gen)
    masks = torch.zeros(n, 1, 32, 32, dtype=torch.bool)
    for i in range(n):
        top, left = torch.randint(0, 16, (2,), generator=gen).tolist()
        masks[i, :, top : top + 12, left : left + 14] = True
    y = torch.randint(0, 4, (n,), generator=gen)
    return x, y, masks


# --- the VGG family ---------------------------------------------------------------------------


def test_vgg19_bn_at_full_width_has_the_known_size_and_one_linear_head() -> None:
    model = VGG(3, 32, 10, VggConfig(depth=19, width=1.0))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) == 16 and len(linears) == 1  # 19 weight layers = 16 conv + 3 FC in the
    # ImageNet form; the 32x32 form keeps the 16 convolutions and one classifier
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(20.04e6, rel=0.01)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("depth, convs", [(11, 8), (13, 10), (16, 13), (19, 16)])
def test_one_definition_serves_every_depth(depth: int, convs: int) -> None:
    model = build_model(make_arch("v", "vgg", {"depth": depth, "width": 0.125}, "t"), 3, 32, 43)
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == convs
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 43)


def test_width_scales_channels_and_compute() -> None:
    full = VGG(3, 32, 10, VggConfig(depth=16, width=1.0))
    quarter = VGG(3, 32, 10, VggConfig(depth=16, width=0.25))
    ratio = sum(p.numel() for p in quarter.parameters()) / sum(p.numel() for p in full.parameters())
    assert ratio == pytest.approx(1 / 16, rel=0.05)


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"depth": 17}, "vgg depth: 17"),
        ({"width": 0}, "vgg width: must be > 0"),
        ({"heigth": 3}, r"options: unknown option\(s\) heigth"),
    ],
)
def test_bad_architecture_options_are_named(options: dict, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        make_arch("vgg19_bn", "vgg", options, "architectures.vgg19_bn")


def test_vgg_refuses_images_too_small_for_five_pools() -> None:
    with pytest.raises(ConfigError, match="at least 32x32"):
        build_model(TINY_VGG, 1, 28, 10)


def test_a_trained_model_rebuilds_from_its_record(tmp_path: Path) -> None:
    model = build_model(TINY_VGG, 3, 32, 5)
    torch.save(
        {
            "arch": arch_record(TINY_VGG),
            "state_dict": model.state_dict(),
            "input_shape": [32, 32, 3],
            "num_classes": 5,
        },
        tmp_path / "model.pt",
    )
    loaded = load_trained(tmp_path / "model.pt", torch.device("cpu"))
    x = torch.rand(2, 3, 32, 32)
    model.eval()
    assert torch.equal(loaded(x), model(x))


# --- X_FG: the model sees x∘F -----------------------------------------------------------------


def test_the_foreground_view_zeroes_the_background_and_keeps_the_foreground() -> None:
    x, _, masks = masked_batch()
    view = model_view(x, masks, "foreground")
    assert torch.all(view[~masks.expand_as(x)] == 0)
    assert torch.equal(view[masks.expand_as(x)], x[masks.expand_as(x)])
    assert model_view(x, masks, "natural") is x


@pytest.mark.parametrize("attack", [PGD, PGD_L2], ids=["linf", "l2"])
def test_the_adversary_of_a_foreground_model_never_changes_a_background_pixel(attack: AttackSpec) -> None:
    torch.manual_seed(0)
    model = build_model(TINY_VGG, 3, 32, 4).eval()
    x, y, masks = masked_batch()
    x_fg = model_view(x, masks, "foreground")
    gen = torch.Generator().manual_seed(1)
    x_adv = perturb(model, x_fg, y, masks, attack, 0.5, gen, model_input="foreground")
    background = ~masks.expand_as(x)
    assert torch.all(x_adv[background] == 0)  # bit-identical: still exactly zero
    assert (x_adv - x_fg)[~background].abs().max() > 0  # the foreground is attacked
    # The same attack on a natural model changes the background too (the test can fail).
    x_nat = perturb(model, x, y, masks, attack, 0.5, torch.Generator().manual_seed(1))
    assert (x_nat - x)[background].abs().max() > 0


def test_a_background_attack_on_a_foreground_model_has_nothing_to_change() -> None:
    model = build_model(TINY_VGG, 3, 32, 4).eval()
    x, y, masks = masked_batch()
    x_fg = model_view(x, masks, "foreground")
    background_attack = AttackSpec(**{**PGD.__dict__, "name": "bg", "region": "background"})
    x_adv = perturb(
        model, x_fg, y, masks, background_attack, 0.5, torch.Generator(), model_input="foreground"
    )
    assert torch.equal(x_adv, x_fg)


def masked_split(n: int = 32) -> ProcessedSplit:
    gen = np.random.default_rng(0)
    images = gen.integers(0, 256, (n, 32, 32, 3)).astype(np.uint8)
    masks = np.zeros((n, 32, 32), dtype=bool)
    masks[:, 8:24, 10:22] = True
    labels = np.arange(n) % 3
    return ProcessedSplit(
        images=images,
        labels=labels.astype(np.int64),
        ids=np.array([str(i) for i in range(n)]),
        masks=masks,
        meta={"num_classes": 3},
    )


def fg_spec(attack: AttackSpec, augment: AugmentSpec) -> ModelSpec:
    builder = get_builder("coco_ic", "test")
    return ModelSpec(
        name="toy_fg",
        dataset=DatasetSpec("toy", "coco", None, None, builder, make_config(builder, {}, "test")),
        arch=TINY_VGG,
        training=TrainingSpec(
            name="toy",
            optimizer="sgd",
            lr=0.01,
            batch_size=8,
            epochs=1,
            lr_schedule="cosine",
            augment=augment,
        ),
        train_attack=attack,
        input="foreground",
    )


@pytest.mark.parametrize("augment", [AugmentSpec(), AugmentSpec(crop_padding=4, horizontal_flip=True)])
def test_a_foreground_model_trains_and_is_evaluated_on_inputs_with_a_zero_background(
    tmp_path: Path, monkeypatch, augment: AugmentSpec
) -> None:
    """Record every batch the model is shown, adversarial examples included."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    real_view = trainer.model_view

    class Recorder(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append((x.detach().clone(), current_masks[0]))
            return self.inner(x)

    current_masks: list[torch.Tensor] = [torch.empty(0)]

    def view_and_remember(x, masks, model_input):
        current_masks[0] = masks.clone()
        return real_view(x, masks, model_input)

    monkeypatch.setattr(trainer, "model_view", view_and_remember)
    monkeypatch.setattr(trainer, "build_model", lambda *a: Recorder(build_model(*a)))
    outcome = train(
        fg_spec(PGD, augment),
        masked_split(),
        seed=0,
        box_fraction=0.5,
        device=torch.device("cpu"),
        checkpoint=tmp_path / "ckpt.pt",
        progress=False,
    )
    assert len(seen) > 8  # attack steps and training steps
    for x, masks in seen:
        assert torch.all(x[~masks.expand_as(x)] == 0)

    seen.clear()
    metrics, _ = evaluate(
        outcome.model,
        masked_split(),
        PGD,
        box_fraction=0.5,
        batch_size=16,
        seed=0,
        device=torch.device("cpu"),
        model_input="foreground",
        progress=False,
    )
    split_masks = torch.from_numpy(masked_split().masks).unsqueeze(1)
    for x, _ in seen:
        assert torch.all(x[~split_masks[: len(x)].expand_as(x)] == 0)
    assert metrics["model_input"] == "foreground"
    assert metrics["effective_region"] == "full & foreground"


# --- augmentation and schedule ----------------------------------------------------------------


def test_augmentation_moves_image_and_mask_together() -> None:
    x, _, masks = masked_batch(16)
    x_fg = model_view(x, masks, "foreground")
    gen = torch.Generator().manual_seed(3)
    x_aug, m_aug = augment_batch(x_fg, masks, AugmentSpec(crop_padding=4, horizontal_flip=True), gen)
    assert m_aug is not None and x_aug.shape == x.shape and m_aug.shape == masks.shape
    assert torch.all(x_aug[~m_aug.expand_as(x_aug)] == 0)  # what was background still is
    assert not torch.equal(x_aug, x_fg)
    assert m_aug.sum() <= masks.sum()  # crops may cut the object, never invent one


def test_no_augmentation_is_the_identity_and_draws_no_randomness() -> None:
    x, _, masks = masked_batch()
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    x_out, m_out = augment_batch(x, masks, AugmentSpec(), gen)
    assert x_out is x and m_out is masks and torch.equal(gen.get_state(), state)


def test_cosine_schedule_anneals_from_lr_to_zero_and_constant_stays() -> None:
    cosine = TrainingSpec("t", "sgd", lr=0.1, batch_size=1, epochs=1, lr_schedule="cosine")
    assert learning_rate(cosine, 0, 100) == pytest.approx(0.1)
    assert learning_rate(cosine, 50, 100) == pytest.approx(0.05)
    assert learning_rate(cosine, 99, 100) == pytest.approx(0.05 * (1 + math.cos(math.pi * 0.99)))
    constant = TrainingSpec("t", "sgd", lr=0.1, batch_size=1, epochs=1)
    assert learning_rate(constant, 99, 100) == 0.1


# --- params -----------------------------------------------------------------------------------


def test_params_define_the_four_models_per_dataset_of_table_4() -> None:
    params = Params.load(REPO / "params.yaml", "reduced")
    for dataset in ("coco_ic", "gtsrb_ic"):
        roles = params.raw["tables"]["attention_masks"]["datasets"][dataset]
        specs = {role: params.model(model) for role, model in roles.items()}
        assert {s.input for s in specs.values()} == {"natural", "foreground"}
        assert specs["fg_natural"].input == specs["fg_adversarial"].input == "foreground"
        assert not specs["natural"].adversarial and specs["adversarial"].adversarial
        assert all(isinstance(s.arch, ArchSpec) and s.arch.options.depth == 19 for s in specs.values())
        evaluated = set(params.evaluations())
        for model in roles.values():
            assert (model, "am_pgd") in evaluated and (model, "natural") in evaluated


def test_a_foreground_model_on_a_dataset_without_masks_is_refused() -> None:
    raw = copy.deepcopy(load_yaml(REPO / "params.yaml"))
    raw["models"]["cifar10_natural"]["input"] = "foreground"
    with pytest.raises(ConfigError, match="models.cifar10_natural.input"):
        Params(raw, "tiny").model("cifar10_natural")


def test_an_unknown_architecture_is_named() -> None:
    raw = copy.deepcopy(load_yaml(REPO / "params.yaml"))
    raw["models"]["mnist_natural"]["arch"] = "vgg99"
    with pytest.raises(ConfigError, match="models.mnist_natural.arch: unknown architecture 'vgg99'"):
        Params(raw, "tiny")


def test_an_empty_split_is_a_clear_error_naming_the_file(tmp_path: Path) -> None:
    from stages.data.processed import save_split
    from stages.evaluate import main, parser

    path = tmp_path / "test.npz"
    save_split(path, masked_split().head(0))
    torch.save({}, tmp_path / "model.pt")
    args = parser().parse_args(
        [
            "--params",
            str(REPO / "params.yaml"),
            "--scale",
            "tiny",
            "--model",
            "coco_ic_natural",
            "--attack",
            "natural",
            "--data",
            str(path),
            "--weights",
            str(tmp_path / "model.pt"),
            "--out",
            str(tmp_path / "e.json"),
        ]
    )
    with pytest.raises(DataError, match=rf"{path}: holds no images to evaluate on"):
        main(args)
    assert not (tmp_path / "e.json").exists()
