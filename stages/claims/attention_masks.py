"""The attention-mask paper's claims (Vaishnavi et al. 2020, Introduction, Experiments and
Table 4) as records. Every effect is a difference of accuracies in points between two models
on the same test images (paired where the evaluations keep per-image outcomes)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from stages.claims.build import ClaimBook
from stages.claims.evidence import Evaluation, accuracy_difference
from stages.claims.record import ClaimRecord, Effect
from stages.claims.settings import ClaimSettings, DatasetFacts
from stages.claims.stats import Estimate, Outcome, directional, equivalent, non_inferior

PAPER = "attention_masks"
TITLE = "Attention masks (Vaishnavi et al. 2020)"
# params role -> the paper's row (Table 4).
ROWS = {"natural": "X-N", "fg_natural": "X_FG-N", "adversarial": "X-A", "fg_adversarial": "X_FG-A"}
SECTION_TABLE = "Vaishnavi et al. 2020, Experiments and Table 4"
SECTION_INTRO = "Vaishnavi et al. 2020, Introduction"

QUOTE_ADVERSARIAL = {
    "coco_ic": (
        "in case of the adversarially trained classifiers, natural and adversarial accuracy increases by "
        "11.41% and 22.82% respectively, on using foreground attention masks"
    ),
    "gtsrb_ic": (
        "the model adversarially trained using X_FG is more robust to a PGD adversary than a model "
        "adversarially trained using X (+9.32%)"
    ),
}
QUOTE_NATURAL_GTSRB = (
    "the model naturally trained on X_FG exhibits considerable improvement in robustness as compared to "
    "the model naturally trained on X (+19.69%)"
)
QUOTE_COMPARABLE = "both the naturally trained classifiers exhibit comparable vulnerability to PGD adversary"
QUOTE_NO_COST = "improved adversarial robustness with, at worst, no impact on natural accuracy"

# Table 4 (natural %, PGD %): the paper's effects are differences of these.
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
# The paper states "considerable improvement" of X_FG-N under PGD for GTSRB-IC, and calls the
# two naturally trained models "comparable" on MS-COCO-IC.
NATURAL_ROBUSTNESS_CLAIM = {"gtsrb_ic": "improves", "coco_ic": "comparable"}
INPUT_INDEX = {"natural": 0, "pgd": 1}
TRAINED_WORDS = {"natural": "naturally trained", "adversarial": "adversarially trained"}


def _paper_difference(dataset: str, a: str, b: str, kind: str) -> float | None:
    table = PAPER_ACCURACY.get(dataset)
    if table is None:
        return None
    i = INPUT_INDEX[kind]
    return round(table[a][i] - table[b][i], 2)


def attention_claims(
    datasets: Mapping[str, Mapping[str, str]],
    inputs: Mapping[str, str],
    evals: Mapping[tuple[str, str], Evaluation],
    facts: Mapping[str, DatasetFacts],
    settings: ClaimSettings,
) -> list[ClaimRecord]:
    """``datasets``: dataset -> role -> model (params' tables.attention_masks); ``inputs``:
    ``natural`` and ``pgd`` -> attack."""
    book = ClaimBook(PAPER, settings)
    for dataset, roles in datasets.items():
        for role in ROWS:
            book.check_model(evals[(roles[role], inputs["natural"])], facts[dataset].num_classes)

    comparable = partial(equivalent, margin=settings.comparable_margin)
    costs_nothing = partial(non_inferior, margin=settings.no_cost_margin)
    for dataset, roles in datasets.items():

        def compare(
            claim_id: str,
            claim: str,
            quote: str,
            section: str,
            better: str,
            worse: str,
            kind: str,
            rule: Callable[[Estimate], Outcome],
            rule_text: str,
            dataset: str = dataset,
            roles: Mapping[str, str] = roles,
        ) -> ClaimRecord:
            a, b = evals[(roles[better], inputs[kind])], evals[(roles[worse], inputs[kind])]
            est = accuracy_difference(a, b, settings.alpha).scaled(100.0)
            label = f"{ROWS[better]} minus {ROWS[worse]}, {'PGD' if kind == 'pgd' else 'natural'} accuracy"
            paper = _paper_difference(dataset, ROWS[better], ROWS[worse], kind)
            return book.effect_claim(
                claim_id=claim_id,
                claim=claim,
                quote=quote,
                section=section,
                dataset=dataset,
                rule_text=rule_text,
                rule=rule,
                effect=Effect.of(label, "points", est, paper),
                estimate=est,
                quantities=[
                    a.quantity(f"{ROWS[better]} {inputs[kind]}", settings.alpha),
                    b.quantity(f"{ROWS[worse]} {inputs[kind]}", settings.alpha),
                ],
                models=[roles[better], roles[worse]],
                note=a.pairing_note,
            )

        above = "holds when the difference's interval lies above 0"
        quote = QUOTE_ADVERSARIAL.get(dataset, QUOTE_ADVERSARIAL["gtsrb_ic"])
        parts = [
            compare(
                f"{dataset}.A1.{kind}",
                f"X_FG-A beats X-A on {'PGD' if kind == 'pgd' else 'natural'} accuracy",
                quote,
                SECTION_TABLE,
                "fg_adversarial",
                "adversarial",
                kind,
                directional,
                above,
            )
            for kind in ("natural", "pgd")
        ]
        book.composite(
            claim_id=f"{dataset}.A1",
            claim="adversarial training on X_FG beats it on X on natural and PGD accuracy",
            quote=quote,
            section=SECTION_TABLE,
            dataset=dataset,
            parts=parts,
        )

        margin = settings.comparable_margin
        no_cost = settings.no_cost_margin
        if NATURAL_ROBUSTNESS_CLAIM.get(dataset) == "comparable":
            compare(
                f"{dataset}.A2",
                "X-N and X_FG-N are comparably vulnerable to PGD",
                QUOTE_COMPARABLE,
                SECTION_TABLE,
                "fg_natural",
                "natural",
                "pgd",
                comparable,
                f"equivalence: holds when the interval lies within ±{margin:g} points (params claims."
                "comparable_margin), does not hold when it lies wholly outside",
            )
        else:
            compare(
                f"{dataset}.A2",
                "X_FG-N is more robust than X-N under PGD",
                QUOTE_NATURAL_GTSRB,
                SECTION_TABLE,
                "fg_natural",
                "natural",
                "pgd",
                directional,
                above,
            )

        rule_text = (
            f"non-inferiority: holds when the interval lies above -{no_cost:g} points (params claims."
            "no_cost_margin), does not hold when it lies wholly below"
        )
        parts = [
            compare(
                f"{dataset}.A3.{trained}",
                f"masking costs no natural accuracy ({TRAINED_WORDS[trained]})",
                QUOTE_NO_COST,
                SECTION_INTRO,
                f"fg_{trained}",
                trained,
                "natural",
                costs_nothing,
                rule_text,
            )
            for trained in ("natural", "adversarial")
        ]
        book.composite(
            claim_id=f"{dataset}.A3",
            claim="masking costs no natural accuracy",
            quote=QUOTE_NO_COST,
            section=SECTION_INTRO,
            dataset=dataset,
            parts=parts,
        )
    return book.records
