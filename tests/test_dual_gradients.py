"""Loss-gradient images (dual-perturbation paper, §5.5 / Fig. 6): the gradient is autograd's
and leaves the model alone, the Tsipras et al. normalisation is right, the grid is a PNG of the
documented size, and the stage runs end to end on tiny saved models."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from stages.config import load_yaml
from stages.data.processed import ProcessedSplit, save_split
from stages.dual_gradients import ROLE_TITLES, main, parser
from stages.models.registry import arch_record, build_model, make_arch
from stages.report.gradients import (
    CLIP_STDS,
    DPI,
    GREY,
    PANEL_INCHES,
    TITLE_INCHES,
    gradient_image,
    input_gradients,
    save_gradient_grid,
)
from stages.utils.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parent.parent
DATASET = "segment6"
SIDE, CHANNELS, CLASSES = 16, 3, 6
TINY_CNN = make_arch("tiny", "lat_cnn", {"conv_channels": [2, 4], "hidden": 8}, "test")


# --- input_gradients --------------------------------------------------------------------------


def test_input_gradients_equal_autograd_and_leave_the_parameters_alone() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 3, 4))
    model.train()
    x, y = torch.rand(5, 2, 3, 3), torch.tensor([0, 1, 2, 3, 0])
    grad = input_gradients(model, x, y)

    x_ref = x.clone().requires_grad_(True)
    nn.functional.cross_entropy(model(x_ref), y, reduction="sum").backward()
    assert grad.shape == x.shape and not grad.requires_grad
    torch.testing.assert_close(grad, x_ref.grad)
    # The linear model's closed form: W^T (softmax - onehot), per image.
    logits = model(x)
    delta = torch.softmax(logits, 1) - nn.functional.one_hot(y, 4).float()
    torch.testing.assert_close(grad.flatten(1), delta @ model[1].weight, rtol=1e-5, atol=1e-6)

    model.zero_grad(set_to_none=True)
    input_gradients(model, x, y)
    assert all(p.grad is None for p in model.parameters())
    assert model.training  # put back in its mode


def test_input_gradients_run_in_eval_mode() -> None:
    # Batch norm on running statistics (eval) differs from batch statistics (train).
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm2d(1), nn.Flatten(), nn.Linear(4, 2))
    x, y = torch.rand(3, 1, 2, 2) * 5, torch.tensor([0, 1, 0])
    model.eval()
    x_ref = x.clone().requires_grad_(True)
    nn.functional.cross_entropy(model(x_ref), y, reduction="sum").backward()
    model.train()
    torch.testing.assert_close(input_gradients(model, x, y), x_ref.grad)


# --- gradient_image ---------------------------------------------------------------------------


def test_gradient_image_is_in_unit_range_with_the_mean_at_grey() -> None:
    grad = torch.randn(4, 3, 8, 8) * torch.tensor([1e-6, 1.0, 1e3, 7.0]).view(4, 1, 1, 1)
    image = gradient_image(grad)
    assert image.shape == grad.shape
    assert image.min() >= 0.0 and image.max() <= 1.0
    # Per image: scale-free, and the mean maps to grey.
    torch.testing.assert_close(image[1], gradient_image(grad[1:2] * 1e3)[0])
    torch.testing.assert_close(image.flatten(1).mean(1), torch.full((4,), GREY), atol=0.05, rtol=0)


def test_a_constant_gradient_is_grey() -> None:
    grad = torch.stack([torch.zeros(1, 4, 4), torch.full((1, 4, 4), 3.5)])
    assert torch.equal(gradient_image(grad), torch.full_like(grad, GREY))


def test_one_outlier_is_clipped_and_does_not_squash_the_rest() -> None:
    torch.manual_seed(0)
    values = torch.randn(100 * 100)
    values[0] = 1000.0
    image = gradient_image(values.view(1, 1, 100, 100)).flatten()
    assert image[0] == 1.0  # the outlier, beyond mean + 3σ, is clipped to white
    rest, others = image[1:], values[1:]
    flat = values.double()
    mean, std = flat.mean(), flat.std(unbiased=False)
    expected = GREY + GREY * ((flat[1:] - mean) / (CLIP_STDS * std)).clamp(-1, 1)
    torch.testing.assert_close(rest.double(), expected, rtol=1e-5, atol=1e-6)
    # A plain min-max rescale would squeeze the other pixels into a sliver of grey; the ±3σ
    # clip keeps them over ten times more contrast.
    min_max_spread = (others.max() - others.min()) / (values.max() - values.min())
    assert rest.max() - rest.min() > 10 * min_max_spread


# --- the grid ---------------------------------------------------------------------------------


def expected_png_size(columns: int, rows: int) -> tuple[int, int]:
    return round(columns * PANEL_INCHES * DPI), round((rows * PANEL_INCHES + TITLE_INCHES) * DPI)


def test_grid_is_a_png_of_the_documented_size(tmp_path: Path) -> None:
    images = torch.rand(5, 3, 8, 8)
    rows = {title: gradient_image(torch.randn(5, 3, 8, 8)) for title in ROLE_TITLES.values()}
    out = tmp_path / "figs" / "grid.png"
    save_gradient_grid(out, images, rows, labels=[0, 1, 2, 0, 1], class_names=["a", "b", "c"], title="t")
    with Image.open(out) as png:
        assert png.format == "PNG"
        assert png.size == expected_png_size(5, 1 + len(rows))
    assert not list(out.parent.glob(".*.tmp"))  # atomic write: no temp file left


def test_grid_takes_grey_images_and_refuses_mismatched_rows(tmp_path: Path) -> None:
    images = torch.rand(2, 1, 6, 6)
    save_gradient_grid(tmp_path / "grey.png", images, {"Clean": gradient_image(torch.randn(2, 1, 6, 6))})
    with Image.open(tmp_path / "grey.png") as png:
        assert png.size == expected_png_size(2, 2)
    with pytest.raises(ValueError, match="row 'Clean'"):
        save_gradient_grid(tmp_path / "bad.png", images, {"Clean": torch.rand(3, 1, 6, 6)})


# --- the stage --------------------------------------------------------------------------------


def tiny_split(n: int = 12) -> ProcessedSplit:
    rng = np.random.default_rng(0)
    masks = np.zeros((n, SIDE, SIDE), dtype=bool)
    masks[:, 4:12, 4:12] = True
    return ProcessedSplit(
        images=rng.integers(0, 256, (n, SIDE, SIDE, CHANNELS)).astype(np.uint8),
        labels=rng.integers(0, CLASSES, n).astype(np.int64),
        ids=np.array([str(i) for i in range(n)]),
        masks=masks,
        meta={"dataset": DATASET, "classes": [f"class{c}" for c in range(CLASSES)], "num_classes": CLASSES},
    )


def save_tiny_model(path: Path, seed: int) -> None:
    """A model.pt as the train stage writes it (stages/train.py), of a tiny architecture."""
    torch.manual_seed(seed)
    model = build_model(TINY_CNN, CHANNELS, SIDE, CLASSES)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "arch": arch_record(TINY_CNN),
            "input": "natural",
            "state_dict": model.state_dict(),
            "input_shape": [SIDE, SIDE, CHANNELS],
            "num_classes": CLASSES,
        },
        path,
    )


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Path]:
    raw = copy.deepcopy(load_yaml(REPO / "params.yaml"))
    raw["tables"]["dual_perturbation"]["gradient_images"] = 3
    raw["device"] = "cpu"
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw), encoding="utf-8")
    data = tmp_path / "test.npz"
    save_split(data, tiny_split())
    models = tmp_path / "models"
    roles = raw["tables"]["dual_perturbation"]["datasets"][DATASET]
    for seed, model in enumerate(roles.values()):
        save_tiny_model(models / model / "model.pt", seed)
    return {"params": params, "data": data, "models": models, "out": tmp_path / "figs" / f"{DATASET}.png"}


def argv(paths: dict[str, Path], dataset: str = DATASET) -> list[str]:
    return [
        "--params",
        str(paths["params"]),
        "--scale",
        "tiny",
        "--dataset",
        dataset,
        "--data",
        str(paths["data"]),
        "--models",
        str(paths["models"]),
        "--out",
        str(paths["out"]),
    ]


def test_stage_end_to_end(project: dict[str, Path]) -> None:
    main(parser().parse_args(argv(project)))
    with Image.open(project["out"]) as png:
        assert png.format == "PNG"
        # gradient_images (3) columns; the inputs and Clean, AT-PGD, AT-Dual rows.
        assert png.size == expected_png_size(3, 1 + len(ROLE_TITLES))
    assert not list(project["out"].parent.glob(".*.tmp"))


def test_stage_names_an_unknown_dataset(project: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r"tables\.dual_perturbation\.datasets.*'nope'.*known: .*segment6"):
        main(parser().parse_args(argv(project, "nope")))


def test_stage_names_a_missing_model(project: dict[str, Path]) -> None:
    missing = next(project["models"].glob("*/model.pt"))
    missing.unlink()
    with pytest.raises(DataError, match=rf"{missing.parent.name}/model\.pt.*run the train stage"):
        main(parser().parse_args(argv(project)))
    assert not project["out"].exists()
