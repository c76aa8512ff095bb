"""Inputs are checked at the door of stages.attacks, stages.models and stages.masks (issue 20).

Every public function accepts the documented layouts of :mod:`stages.utils.layouts` (images
float (N, C, H, W); masks and regions bool (N, 1, H, W), or (N, H, W) converted explicitly; eps
matrices (N, 1, H, W) or (N, C, H, W)) and rejects anything else with a ``ValueError`` naming the
function, the argument, the shape it got and the shape it wants. In particular a 3-D mask is
always one mask per image, even when N equals the channel count (localized_pgd used to
broadcast an (N, H, W) region as (1, N, H, W), i.e. per channel, when N = C).

Tiny tensors and models only: the whole file runs in a few seconds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

from stages.attacks.autoattack import AutoAttackConfig, autoattack
from stages.attacks.differential_evolution import (
    DEConfig,
    differential_evolution_attack,
    targeted_all_pairs,
)
from stages.attacks.dual import DualThreat, dual_pgd
from stages.attacks.pgd import localized_pgd, pgd, post_clip
from stages.attacks.threats import L2Threat, LinfThreat, make_threat
from stages.masks.grabcut import (
    GrabCutConfig,
    SeedConfig,
    grabcut_rect,
    grabcut_seeded,
    iou,
    iou_batch,
    segment_seeded,
)
from stages.masks.regions import eps_matrix, intensity_foreground, region_mask
from stages.models.allconv import AllConvNet
from stages.models.inputs import model_view
from stages.models.lat_cnn import LatCNN, LatCnnConfig
from stages.models.nin import NetworkInNetwork
from stages.models.resnet import ResNet
from stages.models.vgg import VGG, VggConfig
from stages.utils.layouts import LayoutError

# N = C on purpose: the case where a per-channel reading of an (N, H, W) mask broadcasts silently.
N, C, H, W, CLASSES = 3, 3, 8, 6, 4
SMALL_DE = DEConfig(pixels=1, population=6, max_generations=2)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(C * H * W, CLASSES)).eval()


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return _model()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images, labels and per-image regions that differ from image to image (as (N, H, W))."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(N, C, H, W, generator=g)
    y = torch.randint(0, CLASSES, (N,), generator=g)
    region = torch.zeros(N, H, W, dtype=torch.bool)
    region[0, :4, :] = True  # top half
    region[1, :, :3] = True  # left half
    region[2, 2:6, 1:5] = True  # a centre block
    return x, y, region


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_layout_error(call: Callable[[], object], where: str, name: str, got: tuple, wants: str) -> None:
    """``call()`` raises a LayoutError (a ValueError) "<where>: <name> has shape <got>; wants ..."
    whose wanted layout contains ``wants``."""
    with pytest.raises(ValueError) as info:
        call()
    assert isinstance(info.value, LayoutError)
    message = str(info.value)
    assert message.startswith(f"{where}: {name} has shape {got}; wants "), message
    assert wants in message, message


# ---------------------------------------------------------------- the bug: (N, H, W) with N = C


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("localization", ["project", "post_clip"])
def test_localized_pgd_reads_an_n_h_w_region_as_one_mask_per_image(model, batch, norm, localization) -> None:
    x, y, region = batch
    assert region.shape[0] == x.shape[1]  # N == C: the ambiguous case
    kw = dict(norm=norm, eps=0.3, localization=localization, steps=3, step_size=0.1, random_start=True)
    per_image = localized_pgd(model, x, y, region=region, generator=_gen(1), **kw)
    with_channel = localized_pgd(model, x, y, region=region.unsqueeze(1), generator=_gen(1), **kw)
    assert torch.equal(per_image, with_channel)
    delta = per_image - x
    outside = ~region.unsqueeze(1).expand_as(x)
    assert bool((delta[outside] == 0).all())  # nothing moves outside each image's own region
    for n in range(N):  # and every image moves inside its own region
        assert delta[n][region[n].expand(C, H, W)].abs().max() > 0


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_dual_pgd_and_threats_read_n_h_w_masks_alike(model, batch, norm) -> None:
    x, y, fg = batch
    kw = dict(norm=norm, eps_fg=0.05, eps_bg=0.0, step_fg=0.02, step_bg=0.0, steps=3, random_start=True)
    per_image = dual_pgd(model, x, y, fg, generator=_gen(2), **kw)
    assert torch.equal(per_image, dual_pgd(model, x, y, fg.unsqueeze(1), generator=_gen(2), **kw))
    assert bool(((per_image - x)[~fg.unsqueeze(1).expand_as(x)] == 0).all())  # eps_bg = 0
    # The same support through the threats and region helpers, which see no images when built.
    for threat in (make_threat(norm, 0.3, fg), DualThreat(norm, 0.3, 0.0, fg, step_fg=0.1, step_bg=0.0)):
        out = pgd(model, x, y, threat, steps=2, step_size=0.1, random_start=True, generator=_gen(3))
        assert bool(((out - x)[~fg.unsqueeze(1).expand_as(x)] == 0).all())
    assert eps_matrix(fg, 0.1).shape == (N, 1, H, W)
    assert torch.equal(region_mask("foreground", x.shape, foreground=fg), fg.unsqueeze(1))
    assert torch.equal(region_mask("background", x.shape, foreground=fg), ~fg.unsqueeze(1))


def test_de_and_model_view_read_n_h_w_masks_alike(model, batch) -> None:
    x, y, region = batch
    a = differential_evolution_attack(model, x, y, region, SMALL_DE, generator=_gen(4))
    b = differential_evolution_attack(model, x, y, region.unsqueeze(1), SMALL_DE, generator=_gen(4))
    assert torch.equal(a.adversarial, b.adversarial)
    assert bool(((a.adversarial - x)[~region.unsqueeze(1).expand_as(x)] == 0).all())
    assert torch.equal(model_view(x, region, "foreground"), model_view(x, region.unsqueeze(1), "foreground"))
    assert torch.equal(model_view(x, region, "foreground"), x * region.unsqueeze(1))


# ---------------------------------------------------------------- wrong mask layouts

WRONG_MASKS: list[tuple[int, ...]] = [
    (H, W),  # one mask for every image
    (1, H, W),
    (1, 1, H, W),  # one mask for the batch, with a channel axis
    (N, C, H, W),  # a mask per channel
    (N, 1, W, H),  # transposed
    (N + 1, 1, H, W),
    (N, 1, H, W + 1),
    (N, H, W, 1),  # channels-last
    (N, 1, 1, H, W),
    (N,),
]
MASK_WANTS = f"bool (N, H, W) or (N, 1, H, W) with N = {N} images of {H}x{W}"


def _mask_doors(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[str, str, Callable]]:
    """Per public function taking a mask with images at hand: (where, argument, call(mask))."""
    return {
        "localized_pgd": ("localized_pgd", "region", lambda m: localized_pgd(
            model, x, y, norm="linf", eps=0.1, region=m, localization="project", steps=1,
            step_size=0.1, random_start=False)),
        "dual_pgd": ("dual_pgd", "foreground", lambda m: dual_pgd(
            model, x, y, m, norm="l2", eps_fg=0.1, eps_bg=0.1, step_fg=0.1, step_bg=0.1, steps=1,
            random_start=False)),
        "differential_evolution_attack": ("differential_evolution_attack", "region",
                                          lambda m: differential_evolution_attack(model, x, y, m, SMALL_DE)),
        "targeted_all_pairs": ("targeted_all_pairs", "region",
                               lambda m: targeted_all_pairs(model, x, y, m, CLASSES, SMALL_DE)),
        "model_view": ("model_view", "masks", lambda m: model_view(x, m, "foreground")),
        "region_mask": ("region_mask('foreground')", "foreground",
                        lambda m: region_mask("foreground", x.shape, foreground=m)),
    }  # fmt: skip


@pytest.mark.parametrize("shape", WRONG_MASKS, ids=str)
@pytest.mark.parametrize(
    "door",
    ["localized_pgd", "dual_pgd", "differential_evolution_attack", "targeted_all_pairs", "model_view",
     "region_mask"],
)  # fmt: skip
def test_a_wrong_mask_layout_is_rejected_naming_both_shapes(model, batch, door, shape) -> None:
    x, y, _ = batch
    where, name, call = _mask_doors(model, x, y)[door]
    mask = torch.ones(shape, dtype=torch.bool)
    assert_layout_error(lambda: call(mask), where, name, shape, MASK_WANTS)


@pytest.mark.parametrize("door", ["localized_pgd", "dual_pgd", "differential_evolution_attack", "model_view"])
def test_a_mask_of_another_dtype_is_rejected(model, batch, door) -> None:
    x, y, region = batch
    where, name, call = _mask_doors(model, x, y)[door]
    with pytest.raises(LayoutError, match=rf"^{where}: {name} has dtype torch.float32; wants bool"):
        call(region.float())


THREATS: dict[str, tuple[str, str]] = {
    "make_threat_linf": ("make_threat", "region"),
    "make_threat_l2": ("make_threat", "region"),
    "L2Threat": ("L2Threat", "region"),
    "DualThreat": ("DualThreat", "foreground"),
    "LinfThreat": ("LinfThreat", "eps_matrix"),
}


@pytest.mark.parametrize("shape", WRONG_MASKS, ids=str)
@pytest.mark.parametrize("kind", list(THREATS))
def test_threats_reject_a_wrong_region_at_construction_or_at_the_images(model, batch, kind, shape) -> None:
    """A threat sees no images when it is built: a shape that is no region at all fails there,
    one that does not fit the images when :func:`pgd` first shows it the images. Either way the
    message names the function and argument the region was given to, and the shape given."""
    if kind == "LinfThreat" and shape == (N, C, H, W):
        pytest.skip("an (N, C, H, W) eps matrix is valid: one radius per coordinate")
    x, y, _ = batch
    mask = torch.ones(shape, dtype=torch.bool)
    build: dict[str, Callable[[], object]] = {
        "make_threat_linf": lambda: make_threat("linf", 0.1, mask),
        "make_threat_l2": lambda: make_threat("l2", 0.1, mask),
        "L2Threat": lambda: L2Threat(0.1, mask),
        "DualThreat": lambda: DualThreat("l2", 0.1, 0.1, mask, step_fg=0.1, step_bg=0.1),
        "LinfThreat": lambda: LinfThreat(mask.float() * 0.1),
    }
    where, name = THREATS[kind]
    with pytest.raises(LayoutError) as info:
        threat = build[kind]()
        pgd(model, x, y, threat, steps=1, step_size=0.1, random_start=False)  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith(f"{where}: {name} has shape {shape}; wants "), message
    assert "(N, H, W)" in message and "(N, 1, H, W)" in message, message
    if "with N =" in message:  # a misfit found at the images: they are named too
        assert f"N = {N} images of C x H x W = {C}x{H}x{W}" in message, message


def test_an_eps_matrix_may_be_per_pixel_or_per_coordinate_but_nothing_else(model, batch) -> None:
    x, y, region = batch
    per_pixel = eps_matrix(region, 0.1)
    per_coordinate = per_pixel.expand_as(x).clone()
    a = pgd(model, x, y, LinfThreat(per_pixel), steps=2, step_size=0.05, random_start=False)
    b = pgd(model, x, y, LinfThreat(per_coordinate), steps=2, step_size=0.05, random_start=False)
    c = pgd(model, x, y, LinfThreat(region.float() * 0.1), steps=2, step_size=0.05, random_start=False)
    assert torch.equal(a, b) and torch.equal(a, c)
    assert_layout_error(
        lambda: pgd(model, x, y, LinfThreat(torch.full((N, 2, H, W), 0.1)), steps=1, step_size=0.1,
                    random_start=False),
        "LinfThreat", "eps_matrix", (N, 2, H, W),
        f"(N, H, W), (N, 1, H, W) or (N, C, H, W) with N = {N} images of C x H x W = {C}x{H}x{W}",
    )  # fmt: skip
    assert_layout_error(lambda: LinfThreat(torch.full((H, W), 0.1)), "LinfThreat", "eps_matrix", (H, W),
                        "a float, or a float tensor (N, H, W)")  # fmt: skip
    with pytest.raises(LayoutError, match="LinfThreat: eps_matrix has dtype torch.bool"):
        LinfThreat(region)
    assert_layout_error(lambda: eps_matrix(torch.ones(N, C, H, W, dtype=torch.bool), 0.1), "eps_matrix",
                        "region", (N, C, H, W), "bool (N, H, W) or (N, 1, H, W)")  # fmt: skip


# ---------------------------------------------------------------- wrong image and label layouts

WRONG_IMAGES: list[tuple[int, ...]] = [(C, H, W), (H, W), (N, C, H, W, 1), (N, H, W)]
IMAGE_WANTS = "float images (N, C, H, W)"


def _image_doors(model: nn.Module, y: torch.Tensor, region: torch.Tensor) -> dict[str, Callable]:
    """Per public function taking images: call(images)."""
    aa = AutoAttackConfig(norm="linf", eps=0.1, attacks=("apgd-ce",), steps=1)
    return {
        "pgd": lambda x: pgd(model, x, y, make_threat("linf", 0.1), steps=1, step_size=0.1,
                             random_start=False),
        "post_clip": lambda x: post_clip(x, x, make_threat("linf", 0.1)),
        "localized_pgd": lambda x: localized_pgd(model, x, y, norm="linf", eps=0.1, region=None,
                                                 localization="project", steps=1, step_size=0.1,
                                                 random_start=False),
        "dual_pgd": lambda x: dual_pgd(model, x, y, region, norm="linf", eps_fg=0.1, eps_bg=0.1,
                                       step_fg=0.1, step_bg=0.1, steps=1, random_start=False),
        "differential_evolution_attack": lambda x: differential_evolution_attack(model, x, y, None, SMALL_DE),
        "targeted_all_pairs": lambda x: targeted_all_pairs(model, x, y, None, CLASSES, SMALL_DE),
        "autoattack": lambda x: autoattack(model, x, y, aa, num_classes=CLASSES, seed=0),
        "model_view": lambda x: model_view(x, None, "natural"),
    }  # fmt: skip


@pytest.mark.parametrize("shape", WRONG_IMAGES, ids=str)
@pytest.mark.parametrize(
    "door",
    ["pgd", "post_clip", "localized_pgd", "dual_pgd", "differential_evolution_attack", "targeted_all_pairs",
     "autoattack", "model_view"],
)  # fmt: skip
def test_wrong_image_layouts_are_rejected_naming_both_shapes(model, batch, door, shape) -> None:
    _, y, region = batch
    name = "images" if door in ("differential_evolution_attack", "targeted_all_pairs") else "x"
    call = _image_doors(model, y, region)[door]
    assert_layout_error(lambda: call(torch.rand(shape)), door, name, shape, IMAGE_WANTS)


@pytest.mark.parametrize("door", ["pgd", "localized_pgd", "autoattack", "model_view"])
def test_integer_images_are_rejected(model, batch, door) -> None:
    x, y, region = batch
    call = _image_doors(model, y, region)[door]
    with pytest.raises(LayoutError, match=rf"^{door}: x has dtype torch.uint8; wants float images"):
        call((x * 255).to(torch.uint8))


@pytest.mark.parametrize("door", ["pgd", "localized_pgd", "dual_pgd", "differential_evolution_attack",
                                  "targeted_all_pairs", "autoattack"])  # fmt: skip
def test_wrong_label_layouts_are_rejected(model, batch, door) -> None:
    x, y, region = batch
    name = "labels" if door in ("differential_evolution_attack", "targeted_all_pairs") else "y"
    wants = f"integer labels (N,) with N = {N} images"
    for bad in (y[:2], y.unsqueeze(1)):
        call = _image_doors(model, bad, region)[door]
        assert_layout_error(lambda: call(x), door, name, tuple(bad.shape), wants)  # noqa: B023
    with pytest.raises(LayoutError, match=rf"^{door}: {name} has dtype torch.float32"):
        _image_doors(model, y.float(), region)[door](x)


def test_post_clip_and_de_targets_name_their_arguments(model, batch) -> None:
    x, y, _ = batch
    assert_layout_error(lambda: post_clip(x, x[:2], make_threat("linf", 0.1)), "post_clip", "x_adv",
                        (2, C, H, W), f"x's shape {(N, C, H, W)}")  # fmt: skip
    targeted = DEConfig(pixels=1, population=6, max_generations=1, targeted=True)
    assert_layout_error(
        lambda: differential_evolution_attack(model, x, y, None, targeted, targets=(y[:2] + 1) % CLASSES),
        "differential_evolution_attack", "targets", (2,), f"integer labels (N,) with N = {N} images",
    )  # fmt: skip


# ---------------------------------------------------------------- models


def _models() -> dict[str, tuple[nn.Module, int, int]]:
    """name -> (model, channels, side of a valid input)."""
    return {
        "ResNet": (ResNet(3, 8, CLASSES, depth=18, width=0.05), 3, 8),
        "VGG": (VGG(3, 32, CLASSES, VggConfig(depth=11, width=0.02)), 3, 32),
        "LatCNN": (LatCNN(1, 8, CLASSES, LatCnnConfig(conv_channels=(2, 2), hidden=4)), 1, 8),
        "AllConvNet": (AllConvNet(3, 9, CLASSES, width=0.02), 3, 9),
        "NetworkInNetwork": (NetworkInNetwork(3, 6, CLASSES, width=0.02), 3, 6),
    }


@pytest.mark.parametrize("name", ["ResNet", "VGG", "LatCNN", "AllConvNet", "NetworkInNetwork"])
def test_models_take_float_n_c_h_w_images_of_their_channels_only(name) -> None:
    model, channels, side = _models()[name]
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(2, channels, side, side)).shape == (2, CLASSES)
    where = f"{name}.forward"
    wants = f"float images (N, C, H, W) with C = {channels}"
    for shape in ((channels, side, side), (2, channels + 1, side, side), (2, side, side, channels)):
        assert_layout_error(lambda: model(torch.rand(shape)), where, "x", shape, wants)  # noqa: B023
    with pytest.raises(LayoutError, match=rf"^{name}\.forward: x has dtype torch.uint8"):
        model(torch.zeros(2, channels, side, side, dtype=torch.uint8))
    if name != "ResNet":  # the others need a minimum (LatCNN: exactly its) input size
        small = (2, channels, side - 1, side - 1)
        assert_layout_error(lambda: model(torch.rand(small)), where, "x", small, wants)


# ---------------------------------------------------------------- masks: regions and GrabCut


def test_region_helpers_name_their_arguments() -> None:
    assert_layout_error(lambda: intensity_foreground(np.zeros(5, np.uint8), 10), "intensity_foreground",
                        "images_uint8", (5,), "uint8 images (N, H, W) or (N, H, W, C)")  # fmt: skip
    with pytest.raises(
        LayoutError, match="intensity_foreground: images_uint8 has dtype float32; wants uint8"
    ):
        intensity_foreground(np.zeros((2, 4, 4), np.float32), 10)
    with pytest.raises(
        ValueError, match=r"region_mask: shape is \(2, 8\); wants \(N, H, W\) or \(N, C, H, W\)"
    ):
        region_mask("full", (2, 8))


@pytest.mark.parametrize("shape", [(8, 8), (3, 8, 8), (8, 8, 4), (8, 8, 3, 1)], ids=str)
def test_grabcut_takes_uint8_h_w_3_images_only(shape) -> None:
    cfg, wants = GrabCutConfig(work_size=16, iterations=1), "uint8 (H, W, 3) RGB image"
    image = np.zeros(shape, np.uint8)
    assert_layout_error(lambda: grabcut_rect(image, cfg), "grabcut_rect", "image", shape, wants)
    assert_layout_error(lambda: grabcut_seeded(image, None, cfg), "grabcut_seeded", "image", shape, wants)
    assert_layout_error(lambda: segment_seeded(image, None, cfg, SeedConfig()), "segment_seeded", "image",
                        shape, wants)  # fmt: skip


def test_grabcut_seeds_and_iou_name_their_arguments() -> None:
    cfg = GrabCutConfig(work_size=16, iterations=1)
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(LayoutError, match=r"^grabcut_rect: image has dtype float32; wants uint8 \(H, W, 3\)"):
        grabcut_rect(image.astype(np.float32), cfg)
    assert_layout_error(lambda: grabcut_seeded(image, np.ones((4, 4), bool), cfg), "grabcut_seeded",
                        "seeds_fg", (4, 4), "a bool (H, W) mask with H x W = 8x8")  # fmt: skip
    assert_layout_error(lambda: grabcut_seeded(image, np.ones((8, 8), np.uint8), cfg), "grabcut_seeded",
                        "seeds_fg", (8, 8), "(row, col) pairs (K, 2)")  # fmt: skip
    mask, _ = grabcut_seeded(image, np.array([[4, 4]]), cfg)  # integer (K, 2) pairs are fine
    assert mask.shape == (8, 8) and mask.dtype == bool
    assert_layout_error(lambda: iou(np.zeros((3, 3), bool), np.zeros((4, 4), bool)), "iou", "truth", (4, 4),
                        "pred's shape (3, 3)")  # fmt: skip
    assert_layout_error(lambda: iou_batch(np.zeros((3, 3), bool), np.zeros((3, 3), bool)), "iou_batch",
                        "pred", (3, 3), "bool masks (N, H, W)")  # fmt: skip
    assert_layout_error(lambda: iou_batch(np.zeros((2, 3, 3), bool), np.zeros((2, 3, 4), bool)), "iou_batch",
                        "truth", (2, 3, 4), "(N, H, W) = (2, 3, 3)")  # fmt: skip
