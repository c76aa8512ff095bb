"""The attention-mask table (Vaishnavi et al. 2020, Table 4) with the paper's numbers beside
ours, whether the paper's claims hold in our run, and every other attack our models met."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from stages.report.markdown import markdown_table

# Vaishnavi et al. 2020 ("Can Attention Masks Improve Adversarial Robustness?"), Table 4:
# (natural accuracy, 10-step l-inf PGD accuracy at eps 8/255) in %, per dataset and model.
PAPER_ACCURACY: dict[str, dict[str, tuple[float, float]]] = {
    "coco_ic": {
        "X-N": (79.46, 2.28),
        "X_FG-N": (81.64, 3.01),
        "X-A": (61.51, 30.80),
        "X_FG-A": (72.92, 53.62),
    },
    "gtsrb_ic": {
        "X-N": (98.04, 18.69),
        "X_FG-N": (98.04, 38.38),
        "X-A": (89.54, 55.25),
        "X_FG-A": (91.20, 64.57),
    },
}
DATASET_TITLES = {"coco_ic": "MS-COCO-IC", "gtsrb_ic": "GTSRB-IC"}
# params role -> the paper's row, in the paper's row order.
ROWS = {"natural": "X-N", "fg_natural": "X_FG-N", "adversarial": "X-A", "fg_adversarial": "X_FG-A"}
INPUTS = ("natural", "pgd")
INPUT_NAMES = {"natural": "natural", "pgd": "PGD"}
# The paper states claim 2 for this dataset only; we check it wherever the models exist.
CLAIM2_DATASET = "gtsrb_ic"

MAIN_COLUMNS = [
    "dataset",
    "model",
    "natural accuracy %",
    "paper natural accuracy %",
    "PGD accuracy %",
    "paper PGD accuracy %",
    "model_key",
    "samples",
]
EXTRA_COLUMNS = [
    "dataset",
    "model",
    "model_key",
    "attack",
    "model_input",
    "effective_region",
    "accuracy %",
    "samples",
]


@dataclass(frozen=True)
class AttentionTable:
    frame: pd.DataFrame  # the paper's layout: dataset x (X-N, X_FG-N, X-A, X_FG-A)
    claims: list[str]
    extra: pd.DataFrame  # every other evaluation of the same models
    samples: list[int]  # the distinct test-image counts of the main evaluations


def percent(accuracy: float) -> float:
    return round(100.0 * accuracy, 2)


def build_attention_table(
    evals: dict[tuple[str, str], dict[str, Any]],
    datasets: dict[str, dict[str, str]],
    inputs: dict[str, str],
) -> AttentionTable:
    """``evals`` maps (model, attack) to an evaluation's metrics and must hold every model's
    ``inputs`` attacks; any other attack of these models goes to the extra frame. ``datasets``
    maps a dataset to its natural / fg_natural / adversarial / fg_adversarial model; ``inputs``
    maps ``natural`` and ``pgd`` to attack names."""
    rows: list[dict[str, Any]] = []
    claims: list[str] = []
    samples: set[int] = set()
    main_attacks = {inputs[kind] for kind in INPUTS}
    for dataset, roles in datasets.items():
        ours: dict[str, tuple[float, float]] = {}
        for role, label in ROWS.items():
            model = roles[role]
            natural, pgd = (evals[(model, inputs[kind])] for kind in INPUTS)
            ours[label] = (percent(natural["accuracy"]), percent(pgd["accuracy"]))
            paper = PAPER_ACCURACY.get(dataset, {}).get(label)
            samples.update(int(e["samples"]) for e in (natural, pgd))
            rows.append(
                {
                    "dataset": dataset,
                    "model": label,
                    "natural accuracy %": ours[label][0],
                    "paper natural accuracy %": paper[0] if paper else None,
                    "PGD accuracy %": ours[label][1],
                    "paper PGD accuracy %": paper[1] if paper else None,
                    "model_key": model,
                    "samples": natural["samples"],
                }
            )
        claims.extend(_claims(dataset, ours))
    extra = _extra_rows(evals, datasets, main_attacks)
    return AttentionTable(
        frame=pd.DataFrame(rows, columns=MAIN_COLUMNS),
        claims=claims,
        extra=pd.DataFrame(extra, columns=EXTRA_COLUMNS),
        samples=sorted(samples),
    )


def _extra_rows(
    evals: dict[tuple[str, str], dict[str, Any]],
    datasets: dict[str, dict[str, str]],
    main_attacks: set[str],
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for dataset, roles in datasets.items():
        for role, label in ROWS.items():
            model = roles[role]
            attacks = sorted(a for m, a in evals if m == model and a not in main_attacks)
            for attack in attacks:
                result = evals[(model, attack)]
                rows.append(
                    {
                        "dataset": dataset,
                        "model": label,
                        "model_key": model,
                        "attack": attack,
                        "model_input": result.get("model_input"),
                        "effective_region": result.get("effective_region"),
                        "accuracy %": percent(result["accuracy"]),
                        "samples": result.get("samples"),
                    }
                )
    return rows


def _verdict(holds: bool) -> str:
    return "holds" if holds else "does NOT hold"


def _claims(dataset: str, acc: dict[str, tuple[float, float]]) -> list[str]:
    fg_a, x_a = acc["X_FG-A"], acc["X-A"]
    better = [INPUT_NAMES[kind] for i, kind in enumerate(INPUTS) if fg_a[i] > x_a[i]]
    claim1 = len(better) == len(INPUTS)
    fg_n_pgd, x_n_pgd = acc["X_FG-N"][1], acc["X-N"][1]
    scope = (
        "stated by the paper for GTSRB-IC"
        if dataset == CLAIM2_DATASET
        else "the paper states it for GTSRB-IC only"
    )
    return [
        f"{dataset}: claim 1 (X_FG-A beats X-A on both natural and PGD accuracy) {_verdict(claim1)}: "
        f"X_FG-A is higher on {' and '.join(better) or 'neither'} "
        f"(natural {fg_a[0]:.2f}% vs {x_a[0]:.2f}%, PGD {fg_a[1]:.2f}% vs {x_a[1]:.2f}%).",
        f"{dataset}: claim 2 (X_FG-N is more robust than X-N under PGD; {scope}) "
        f"{_verdict(fg_n_pgd > x_n_pgd)}: PGD accuracy {fg_n_pgd:.2f}% vs {x_n_pgd:.2f}%.",
    ]


def _title(dataset: str) -> str:
    name = DATASET_TITLES.get(dataset)
    return f"{dataset} ({name})" if name else dataset


def to_markdown(table: AttentionTable, *, scale: str) -> str:
    count = "/".join(str(n) for n in table.samples) or "?"
    lines = [
        "# Attention masks: natural and PGD accuracy of models trained on X and on X_FG",
        "",
        f"Scale: **{scale}**. Paper: Vaishnavi et al. 2020, Table 4 (`paper …` columns). "
        f"Accuracies are in % on the first {count} test images (`samples`). Rows: X = natural "
        "images, X_FG = x∘F (background zeroed); -N trained naturally, -A adversarially. "
        "For X_FG models the adversary changes only foreground pixels (the model sees x∘F).",
        "",
    ]
    for dataset, frame in table.frame.groupby("dataset", sort=False):
        lines += [f"## {_title(str(dataset))}", "", markdown_table(frame.drop(columns=["dataset"])), ""]
    lines += ["## Claims", "", *[f"- {c}" for c in table.claims], ""]
    lines += ["## Other evaluations of these models", ""]
    if table.extra.empty:
        lines += ["None found beside the natural and PGD evaluations above.", ""]
    else:
        lines += [
            "Every other attack evaluated on these models (accuracy in %; `model_input`: what the "
            "model saw, – when the evaluation predates that field).",
            "",
            markdown_table(table.extra),
            "",
        ]
    return "\n".join(lines)
