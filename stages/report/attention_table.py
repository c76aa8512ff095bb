"""The attention-mask table (Vaishnavi et al. 2020, Table 4) with the paper's numbers beside
ours, whether the paper's claims hold in our run, and every other attack our models met."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from stages.claims.attention_masks import PAPER_ACCURACY, ROWS
from stages.claims.record import ClaimRecord
from stages.claims.render import claim_section_lines
from stages.report.markdown import markdown_table

# Vaishnavi et al. 2020's Table 4 (PAPER_ACCURACY) and its rows by params role (ROWS) live with
# the claims that compare against them (stages/claims/attention_masks.py).
DATASET_TITLES = {"coco_ic": "MS-COCO-IC", "gtsrb_ic": "GTSRB-IC"}
INPUTS = ("natural", "pgd")

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
    claims: list[ClaimRecord]
    extra: pd.DataFrame  # every other evaluation of the same models
    samples: list[int]  # the distinct test-image counts of the main evaluations


def percent(accuracy: float) -> float:
    return round(100.0 * accuracy, 2)


def build_attention_table(
    evals: dict[tuple[str, str], dict[str, Any]],
    datasets: dict[str, dict[str, str]],
    inputs: dict[str, str],
    claims: list[ClaimRecord],
) -> AttentionTable:
    """``evals`` maps (model, attack) to an evaluation's metrics and must hold every model's
    ``inputs`` attacks; any other attack of these models goes to the extra frame. ``datasets``
    maps a dataset to its natural / fg_natural / adversarial / fg_adversarial model; ``inputs``
    maps ``natural`` and ``pgd`` to attack names."""
    rows: list[dict[str, Any]] = []
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


def _title(dataset: str) -> str:
    name = DATASET_TITLES.get(dataset)
    return f"{dataset} ({name})" if name else dataset


def to_markdown(table: AttentionTable, *, scale: str, level: str, claims_path: Path) -> str:
    """The table's markdown; ``claims_path``: the claim records the stage writes (its ``--claims``)."""
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
    lines += [
        "## Claims",
        "",
        f"Each outcome comes from a {level} interval of a difference in points "
        f"(`{claims_path.as_posix()}` holds the records). `A1`: adversarial training on X_FG "
        "vs X; `A2`: the naturally trained models under PGD; `A3`: masking's natural-accuracy cost; "
        "`A4`: the dataset's share of foreground pixels against the paper's.",
        *claim_section_lines(table.claims),
    ]
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
