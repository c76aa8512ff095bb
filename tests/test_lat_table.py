"""The LAT table: the paper's numbers sit beside ours, the natural loss is scaled as in the
paper, and each claim's verdict follows from the numbers."""

from __future__ import annotations

from stages.report.lat_table import PAPER_LOSSES, build_lat_table, to_markdown

INPUTS = {"natural": "nat", "standard_attack": "std", "background_attack": "bg"}
ROLES = {"natural": "m_nat", "standard": "m_std", "background": "m_lat"}


def evals(losses: dict[str, tuple[float, float, float]]) -> dict:
    out = {}
    for role, model in ROLES.items():
        for i, attack in enumerate(INPUTS.values()):
            out[(model, attack)] = {"loss": losses[role][i], "accuracy": 0.5, "samples": 10}
    return out


def test_paper_numbers_and_scaling() -> None:
    table = build_lat_table(
        evals(
            {
                "natural": (0.04, 2.0, 1.5),
                "standard": (0.06, 0.3, 0.2),
                "background": (0.03, 1.0, 0.5),
            }
        ),
        {"mnist": ROLES},
        INPUTS,
    )
    row = table.frame.set_index("model").loc["natural"]
    assert row["loss natural"] == 40.0  # x1000 for MNIST, as in the paper's Figure 2
    assert row["paper loss natural"] == PAPER_LOSSES["mnist"]["natural"][0]
    assert row["paper loss standard_attack"] == 68.19


def test_claims_hold_when_the_numbers_say_so() -> None:
    table = build_lat_table(
        evals(
            {
                "natural": (0.04, 2.0, 1.5),
                "standard": (0.06, 0.3, 0.2),
                "background": (0.03, 1.0, 0.5),
            }
        ),
        {"mnist": ROLES},
        INPUTS,
    )
    assert "claim 1 (LAT beats the natural model on natural and adversarial inputs) holds" in table.claims[0]
    assert "claim 2 (standard AT trades natural loss for robustness) holds" in table.claims[1]


def test_claims_fail_when_the_numbers_say_so() -> None:
    table = build_lat_table(
        evals(
            {
                "natural": (0.04, 2.0, 1.5),
                "standard": (0.03, 0.3, 0.2),
                "background": (0.05, 1.0, 0.5),
            }
        ),
        {"cifar10": ROLES},
        INPUTS,
    )
    assert "does NOT hold" in table.claims[0] and "standard_attack, background_attack" in table.claims[0]
    assert "does NOT hold" in table.claims[1]
    md = to_markdown(table, scale="tiny")
    assert "## cifar10" in md and "Scale: **tiny**" in md


def test_missing_numbers_show_as_a_dash() -> None:
    import pandas as pd

    from stages.report.markdown import MISSING, markdown_table

    md = markdown_table(pd.DataFrame({"a": [1.5, float("nan")], "b": [None, "x"]}))
    assert "nan" not in md and "None" not in md
    assert md.count(MISSING) == 2
