"""Wang et al.'s few-pixel DE attacks as params.yaml describes them: the `kind: de` attacks and
their checks, models evaluated on another dataset of the same images (CIFAR-10 models on the
GrabCut test images), and the evaluation record the pixel-space tables are built from."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from stages.attack_kinds import perturb
from stages.attack_kinds.evaluate import evaluate
from stages.config import Params, load_yaml
from stages.data.processed import ProcessedSplit
from stages.utils.errors import ConfigError, DataError
from tests.dag_tools import REPO

N, C, S, CLASSES = 10, 3, 8, 3


def _raw() -> dict:
    return load_yaml(REPO / "params.yaml")


@pytest.fixture(scope="module")
def params() -> Params:
    return Params.load(REPO / "params.yaml", scale="tiny")


def _linear() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(C * S * S, CLASSES)).eval()


def _split(model: nn.Module) -> ProcessedSplit:
    """Random images labelled by the model itself except the last two (so two are wrong), with a
    centred square as foreground."""
    g = np.random.default_rng(0)
    images = g.integers(0, 256, size=(N, S, S, C), dtype=np.uint8)
    with torch.no_grad():
        pred = model(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255).argmax(1).numpy()
    labels = pred.copy()
    labels[-2:] = (pred[-2:] + 1) % CLASSES
    masks = np.zeros((N, S, S), dtype=bool)
    masks[:, 2:6, 2:6] = True
    return ProcessedSplit(
        images=images, labels=labels.astype(np.int64), ids=np.arange(N).astype(str), masks=masks
    )


def _attack(params: Params, name: str, **changes):
    return replace(params.attack(name), **{"images": None, **changes})


def _run(params: Params, attack, model=None, seed: int = 0):
    model = model or _linear()
    return evaluate(
        model,
        _split(model),
        attack,
        box_fraction=0.5,
        batch_size=4,
        seed=seed,
        device=torch.device("cpu"),
        progress=False,
    )


def test_de_attacks_resolve_per_scale_with_the_papers_settings_at_paper_scale() -> None:
    paper = Params.load(REPO / "params.yaml", scale="paper").attack("de_background_5px")
    assert (paper.kind, paper.region, paper.pixels) == ("de", "background", 5)
    # Wang et al. §IV-B: population 400, at most 100 generations, F ~ U[0.5, 1), 500 images,
    # the targeted attack on every one.
    assert (paper.population, paper.max_generations, paper.mutation) == (400, 100, (0.5, 1.0))
    assert (paper.images, paper.targeted_images, paper.init) == (500, 500, "latin_hypercube")


@pytest.mark.parametrize(
    "region,k,model",
    [("full", 1, "cifar10_allconv"), ("foreground", 3, "cifar10_nin"), ("background", 5, "cifar10_vgg16")],
)
def test_the_pixel_space_group_runs_on_the_grabcut_images_for_cifar10_models(
    params, region, k, model
) -> None:
    attack = f"de_{region}_{k}px"
    assert (model, attack) in params.evaluations()
    assert params.model(model).dataset.name == "cifar10"
    assert params.evaluation_dataset(model).name == "cifar10_grabcut"
    # Every other pair keeps its model's own dataset.
    assert params.evaluation_dataset("mnist_lat").name == "mnist"


def _params_error(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        Params(raw, scale="tiny").evaluations()
    return str(info.value)


def test_a_model_cannot_be_evaluated_on_other_images() -> None:
    raw = _raw()
    raw["evaluation"]["groups"]["pixel_cifar10_grabcut"]["models"].append("mnist_lat")
    assert "'mnist_lat' is a model of dataset 'mnist'" in _params_error(raw)


def test_a_model_evaluated_on_two_datasets_is_refused() -> None:
    # One result file per model and attack: a model's evaluations share one dataset.
    raw = _raw()
    raw["evaluation"]["groups"]["lat_cifar10"]["models"].append("cifar10_allconv")
    assert "model 'cifar10_allconv' is evaluated on 'cifar10' by another group" in _params_error(raw)


def test_training_on_a_de_attack_is_refused() -> None:
    raw = _raw()
    raw["models"]["cifar10_nin"]["train_attack"] = "de_full_1px"
    assert (
        "models.cifar10_nin.train_attack: 'de_full_1px' is a differential-evolution attack"
        in _params_error(raw)
    )


def test_a_region_attack_on_an_unmasked_dataset_is_refused() -> None:
    raw = _raw()
    raw["evaluation"]["groups"]["lat_cifar10"]["attacks"].append("de_foreground_1px")
    assert "needs foreground masks, but dataset 'cifar10' has none" in _params_error(raw)


def test_a_de_attack_on_a_foreground_input_model_is_refused() -> None:
    raw = _raw()
    raw["evaluation"]["groups"]["attention_coco_ic"]["attacks"].append("de_full_1px")
    assert "model 'coco_ic_fg_natural' sees only x∘F" in _params_error(raw)


@pytest.mark.parametrize("key,value", [("pixels", 0), ("region", "box"), ("population", 0), ("speed", 1)])
def test_schema_names_a_bad_de_value(key, value) -> None:
    raw = copy.deepcopy(_raw())
    raw["attacks"]["de_full_1px"][key] = value
    with pytest.raises(ConfigError, match="attacks.de_full_1px"):
        Params(raw, scale="tiny")


def test_perturb_refuses_a_de_attack_with_a_clear_error(params) -> None:
    x = torch.rand(2, C, S, S)
    with pytest.raises(DataError, match="runs in evaluation only"):
        perturb(_linear(), x, torch.zeros(2, dtype=torch.long), None, params.attack("de_full_1px"), 0.5, None)


def test_the_record_counts_attacked_images_and_robust_accuracy(params) -> None:
    # Ours: only the correctly classified images, with their true labels.
    attack = _attack(
        params, "de_foreground_1px", population=8, max_generations=3, targeted_images=2, attacked="correct"
    )
    metrics, throughput = _run(params, attack)
    block = metrics["pixel_attack"]
    # The last two images are misclassified: never attacked.
    assert block["attacked"] == block["correct_attacked"] == N - 2
    assert block["natural_accuracy"] == pytest.approx((N - 2) / N)
    assert (block["search"], block["strategy"], block["attacked_set"]) == ("composite", "rand1", "correct")
    images = block["untargeted"]["images"]
    assert [r["index"] for r in images] == list(range(N - 2))
    wins = sum(r["success"] for r in images)
    assert block["untargeted"]["successes"] == block["untargeted"]["correct_successes"] == wins
    assert block["untargeted"]["success_rate"] == block["untargeted"]["correct_success_rate"]
    assert metrics["accuracy"] == pytest.approx((N - 2 - wins) / N)
    for r in images:
        assert len(r["fitness"]) == r["generations"] + 1
        assert r["fitness"][-1] <= r["fitness"][0]  # best fitness never worsens
        assert r["queries"] == attack.population * (r["generations"] + 1)
        assert len(r["pixels"]) == r["pixels_in_region"] <= 1  # composite: none if it fell outside
        for row, col, *colour in r["pixels"]:
            assert 2 <= row < 6 and 2 <= col < 6  # inside the foreground square
            assert all(0.0 <= v <= 1.0 for v in colour)
        assert r["success"] == (r["adversarial_label"] != r["label"])
    if wins:
        expected = np.mean([r["generations"] for r in images if r["success"]])
        assert block["untargeted"]["mean_generations"] == pytest.approx(expected, abs=1e-6)
    targeted = block["targeted"]
    assert targeted["images"] == 2 and targeted["pairs"] == 2 * (CLASSES - 1)
    assert sum(targeted["targets_reached"]) == 2
    assert {(p["index"], p["target"]) for p in targeted["pairs_list"]} == {
        (i, t) for i in range(2) for t in range(CLASSES) if t != images[i]["label"]
    }
    assert targeted["successes"] == sum(
        p["success"] and p["adversarial_label"] == p["target"] for p in targeted["pairs_list"]
    )
    assert throughput["model_evaluations"] >= sum(r["queries"] for r in images)
    # Per test image, as every evaluation keeps it: correct after the attack, and the attacked
    # images' outcomes agree with the DE records (a success is an image no longer correct).
    per_image = metrics["per_image"]
    assert len(per_image["correct"]) == N and sum(per_image["correct"]) == round(metrics["accuracy"] * N)
    assert per_image["correct"][N - 2 :] == [0, 0]  # misclassified, never attacked
    assert [1 - per_image["correct"][r["index"]] for r in images] == [int(r["success"]) for r in images]


@pytest.mark.parametrize("search", ["composite", "indexed"])
def test_only_the_region_changes_and_at_most_k_pixels(params, search) -> None:
    """The indexed search writes exactly k region pixels; the paper's composite one writes those
    of its k that fall in the region (Eqs. 17-18), and idles on the others."""
    attack = _attack(params, "de_background_3px", population=8, max_generations=2, targeted_images=0)
    metrics, _ = _run(params, replace(attack, search=search))
    block = metrics["pixel_attack"]
    assert block["search"] == search
    for r in block["untargeted"]["images"]:
        cells = {(row, col) for row, col, *_ in r["pixels"]}
        assert len(cells) == r["pixels_in_region"] == (3 if search == "indexed" else len(cells)) <= 3
        assert all(not (2 <= row < 6 and 2 <= col < 6) for row, col in cells)
        assert (r["idle_queries"] == 0) if search == "indexed" else (r["idle_queries"] <= r["queries"])
    assert block["targeted"] is None


def test_the_papers_protocol_attacks_every_image_with_its_predicted_class(params) -> None:
    """attacked: all (Wang et al.): every image, y = the model's clean prediction; both success
    rates from one run (over every image: the paper's; over the correctly classified: ours);
    robust accuracy stays "correct on the clean image and not fooled"."""
    attack = _attack(params, "de_full_1px", population=8, max_generations=3, targeted_images=3)
    assert attack.attacked == "all"
    model = _linear()
    metrics, _ = _run(params, attack, model=model)
    block, split = metrics["pixel_attack"], _split(model)
    assert (block["attacked"], block["correct_attacked"], block["attacked_set"]) == (N, N - 2, "all")
    images = block["untargeted"]["images"]
    assert [r["index"] for r in images] == list(range(N))
    with torch.no_grad():
        predicted = model(split.tensors()[0]).argmax(1).tolist()
    assert [r["label"] for r in images] == predicted  # y = the clean prediction
    assert [r["true_label"] for r in images] == split.labels.tolist()
    assert [r["clean_correct"] for r in images] == [True] * (N - 2) + [False] * 2
    for r in images:
        assert r["success"] == (r["adversarial_label"] != r["label"])
    untargeted = block["untargeted"]
    wins = [r["success"] for r in images]
    correct_wins = sum(wins[: N - 2])
    assert untargeted["successes"] == sum(wins) and untargeted["success_rate"] == pytest.approx(sum(wins) / N)
    assert untargeted["correct_images"] == N - 2 and untargeted["correct_successes"] == correct_wins
    assert untargeted["correct_success_rate"] == pytest.approx(correct_wins / (N - 2))
    assert metrics["accuracy"] == pytest.approx((N - 2 - correct_wins) / N)
    per_image = metrics["per_image"]
    assert sum(per_image["correct"]) == round(metrics["accuracy"] * N)
    assert per_image["correct"] == [int(not w) for w in wins[: N - 2]] + [0, 0]
    # A misclassified image stays clean in the robust metrics, whatever its attack found.
    assert per_image["prediction"][N - 2 :] == predicted[N - 2 :]
    targeted = block["targeted"]
    assert targeted["images"] == 3 and targeted["correct_images"] == 3
    assert {p["source"] for p in targeted["pairs_list"]} <= set(predicted[:3])


def test_same_seed_same_record_other_seed_other_search(params) -> None:
    attack = _attack(params, "de_full_1px", population=8, max_generations=2, targeted_images=1)
    first, _ = _run(params, attack, seed=0)
    again, _ = _run(params, attack, seed=0)
    other, _ = _run(params, attack, seed=1)
    assert first == again
    assert first["pixel_attack"]["untargeted"]["images"] != other["pixel_attack"]["untargeted"]["images"]


def test_more_pixels_fool_at_least_as_many_images_on_a_linear_model(params) -> None:
    # On a linear model pixel gains add up, so with a generous budget k = 3 is never worse.
    rates = []
    for k in (1, 3):
        attack = _attack(params, f"de_full_{k}px", population=40, max_generations=20, targeted_images=0)
        metrics, _ = _run(params, attack)
        rates.append(metrics["pixel_attack"]["untargeted"]["successes"])
    assert rates[1] >= rates[0]
