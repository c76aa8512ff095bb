"""The LAT table (Rothberg et al. 2019, Figure 2) with the paper's numbers beside ours, and
whether the paper's two claims hold in our run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from stages.report.markdown import markdown_table

# Rothberg et al. 2019, Figure 2: cross-entropy of each model (natural / standard / background)
# on natural inputs (scaled x1000 for MNIST, x100 for CIFAR-10), standard-attack and
# background-attack inputs. The CIFAR-10 rows are unreadable in the published text.
PAPER_LOSSES: dict[str, dict[str, tuple[float, float, float] | None]] = {
    "mnist": {
        "natural": (41.4, 68.19, 61.80),
        "standard": (57.9, 0.27, 0.21),
        "background": (39.6, 0.55, 0.23),
    },
    "cifar10": {"natural": None, "standard": None, "background": None},
}
# Rothberg et al. 2019, Figure 2 caption: the natural loss is shown scaled by these factors.
NATURAL_LOSS_SCALE = {"mnist": 1000.0, "cifar10": 100.0}
ROLES = ("natural", "standard", "background")
INPUTS = ("natural", "standard_attack", "background_attack")


@dataclass(frozen=True)
class LatTable:
    frame: pd.DataFrame
    claims: list[str]


def build_lat_table(
    evals: dict[tuple[str, str], dict[str, Any]],
    datasets: dict[str, dict[str, str]],
    inputs: dict[str, str],
) -> LatTable:
    """``evals`` maps (model, attack) to an evaluation's metrics; ``datasets`` maps a dataset
    to its natural / standard / background model; ``inputs`` maps each input kind to an attack."""
    rows: list[dict[str, Any]] = []
    claims: list[str] = []
    for dataset, roles in datasets.items():
        scale = NATURAL_LOSS_SCALE.get(dataset, 1.0)
        losses: dict[str, dict[str, float]] = {}
        for role in ROLES:
            model = roles[role]
            row: dict[str, Any] = {"dataset": dataset, "model": role, "model_key": model}
            paper = PAPER_LOSSES.get(dataset, {}).get(role)
            losses[role] = {}
            row["natural loss scale"] = scale
            for i, kind in enumerate(INPUTS):
                result = evals[(model, inputs[kind])]
                losses[role][kind] = result["loss"]
                factor = scale if kind == "natural" else 1.0
                row[f"loss {kind}"] = round(result["loss"] * factor, 4)
                row[f"paper loss {kind}"] = paper[i] if paper else None
            for kind in INPUTS:
                row[f"accuracy {kind}"] = round(evals[(model, inputs[kind])]["accuracy"], 4)
            row["samples"] = evals[(model, inputs["natural"])]["samples"]
            rows.append(row)
        claims.extend(_claims(dataset, losses))
    return LatTable(frame=pd.DataFrame(rows), claims=claims)


def _verdict(holds: bool) -> str:
    return "holds" if holds else "does NOT hold"


def _claims(dataset: str, loss: dict[str, dict[str, float]]) -> list[str]:
    nat, std, bg = loss["natural"], loss["standard"], loss["background"]
    lat_better = [k for k in INPUTS if bg[k] < nat[k]]
    claim1 = len(lat_better) == len(INPUTS)
    trade = std["natural"] > nat["natural"] and all(
        std[k] < nat[k] for k in ("standard_attack", "background_attack")
    )
    return [
        f"{dataset}: claim 1 (LAT beats the natural model on natural and adversarial inputs) "
        f"{_verdict(claim1)}: background-model loss is lower on "
        f"{', '.join(lat_better) or 'no input'} "
        f"(natural {bg['natural']:.4f} vs {nat['natural']:.4f}, "
        f"standard attack {bg['standard_attack']:.4f} vs {nat['standard_attack']:.4f}, "
        f"background attack {bg['background_attack']:.4f} vs {nat['background_attack']:.4f}).",
        f"{dataset}: claim 2 (standard AT trades natural loss for robustness) {_verdict(trade)}: "
        f"natural loss {std['natural']:.4f} vs {nat['natural']:.4f} for the natural model; "
        f"standard-attack loss {std['standard_attack']:.4f} vs {nat['standard_attack']:.4f}.",
    ]


def to_markdown(table: LatTable, *, scale: str) -> str:
    lines = [
        "# LAT: cross-entropy loss under natural, standard-attack and background-attack inputs",
        "",
        f"Scale: **{scale}**. Paper: Rothberg et al. 2019, Figure 2; the loss on natural inputs "
        "is scaled by `natural loss scale` as in the paper (x1000 MNIST, x100 CIFAR-10). The "
        "paper's CIFAR-10 rows are unreadable in the published text, so only its prose claims "
        "are compared. `samples`: test images per evaluation.",
        "",
    ]
    for dataset, frame in table.frame.groupby("dataset", sort=False):
        lines += [
            f"## {dataset}",
            "",
            markdown_table(frame.drop(columns=["dataset"])),
            "",
        ]
    lines += [
        "## Claims",
        "",
        *[f"- {c}" for c in table.claims],
        "",
    ]
    return "\n".join(lines)

