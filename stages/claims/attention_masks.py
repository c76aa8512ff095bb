"""The attention-mask paper's claims (Vaishnavi et al. 2020, Introduction, Dataset Creation,
Experiments and Table 4) as records. The accuracy effects are differences in points between two
models on the same test images (paired where the evaluations keep per-image outcomes); A4 is a
property of the datasets: their share of foreground pixels against the paper's."""

from __future__ import annotations

from collections.abc import Mapping

from stages.claims.build import ClaimBook
from stages.claims.evidence import PER_IMAGE, Evaluation, accuracy_difference
from stages.claims.feasibility import Feasibility
from stages.claims.record import ClaimRecord, Effect, Quantity
from stages.claims.settings import ClaimSettings, DatasetFacts
from stages.claims.stats import ABOVE_ZERO, Estimate, Method, Rule, above, mean_paired, within

PAPER = "attention_masks"
TITLE = "Attention masks (Vaishnavi et al. 2020)"
# params role -> the paper's row (Table 4).
ROWS = {"natural": "X-N", "fg_natural": "X_FG-N", "adversarial": "X-A", "fg_adversarial": "X_FG-A"}
SECTION_TABLE = "Vaishnavi et al. 2020, Experiments and Table 4"
SECTION_INTRO = "Vaishnavi et al. 2020, Introduction"
SECTION_DATASETS = "Vaishnavi et al. 2020, Dataset Creation with Foreground Masks"

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

# Dataset Creation: the share of foreground pixels, in %.
PAPER_FOREGROUND: dict[str, float] = {"coco_ic": 56.0, "gtsrb_ic": 25.0}
QUOTE_FOREGROUND = {
    "coco_ic": "The images in this dataset contain ≈56% foreground pixels",
    "gtsrb_ic": (
        "The images in this dataset contain ≈25% foreground pixels. We associate the low percentage of "
        "foreground pixels to the imperfections of our ad hoc segmenter"
    ),
}
# The paper blames its GTSRB-IC share on its segmenter, so a share unlike its ≈25 % need not
# mean our masks are worse; the record says so.
NOTE_FOREGROUND = {
    "gtsrb_ic": "the paper attributes its low share to its ad hoc graph-cut segmenter; masks from another "
    "segmenter can differ without being worse",
}
FRACTION_KEY = "foreground_fraction"  # an evaluation's per-image foreground fraction, where kept

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
    feasibility: Feasibility | None = None,
) -> list[ClaimRecord]:
    """``datasets``: dataset -> role -> model (params' tables.attention_masks); ``inputs``:
    ``natural`` and ``pgd`` -> attack; ``feasibility``: where the committed records are, for
    what it would take to decide the undecided claims."""
    book = ClaimBook(PAPER, settings)
    for dataset, roles in datasets.items():
        for role in ROWS:
            book.check_model(evals[(roles[role], inputs["natural"])], facts[dataset])

    comparable = within(settings.comparable_margin)
    costs_nothing = above(-settings.no_cost_margin)
    for dataset, roles in datasets.items():

        def compare(
            claim_id: str,
            claim: str,
            quote: str,
            section: str,
            better: str,
            worse: str,
            kind: str,
            rule: Rule,
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

        above_text = "holds when the difference's interval lies above 0"
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
                ABOVE_ZERO,
                above_text,
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
                ABOVE_ZERO,
                above_text,
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
        main = [evals[(roles[role], attack)] for role in ROWS for attack in inputs.values()]
        _foreground_share(book, dataset, main, facts)
    return book.finish(feasibility)


def _foreground_share(
    book: ClaimBook, dataset: str, dataset_evals: list[Evaluation], facts: Mapping[str, DatasetFacts]
) -> None:
    """A4: the dataset's mean share of foreground pixels within ±comparable_margin points of the
    paper's. Per-image fractions, where an evaluation keeps them, give a BCa interval; the
    dataset statistics keep only the test split's mean, which has none (inconclusive, with no
    power calculation); without either the claim is not tested."""
    paper = PAPER_FOREGROUND.get(dataset)
    if paper is None:
        return  # a dataset the paper does not describe (e.g. our GTSRB-IC with ROI seeds)
    settings, fact = book.settings, facts[dataset]
    margin = settings.comparable_margin
    claim = f"the images hold about the paper's share of foreground pixels (≈{paper:g} %)"
    source = next((e for e in dataset_evals if FRACTION_KEY in (e.record.get(PER_IMAGE) or {})), None)
    fractions = None if source is None else source.image_values(FRACTION_KEY)
    if source is not None and fractions is not None:
        shares = 100.0 * fractions
        est = mean_paired(shares - paper, settings.alpha)
        quantity = Quantity(
            f"mean foreground share of the {source.n} evaluated images",
            float(shares.mean()),
            "%",
            source.n,
            source.source,
        )
        how = ""
    elif fact.foreground_fraction is not None:
        share = 100.0 * fact.foreground_fraction
        n = dataset_evals[0].n  # the test images; the statistics' mean is the test split's
        est = Estimate(share - paper, share - paper, share - paper, n, Method.NONE, False)
        quantity = Quantity("mean foreground share of the test split", share, "%", n, fact.source)
        how = "the dataset statistics keep only the test split's mean foreground fraction: no interval"
    else:
        book.not_tested(
            claim_id=f"{dataset}.A4",
            claim=claim,
            quote=QUOTE_FOREGROUND[dataset],
            section=SECTION_DATASETS,
            dataset=dataset,
            reason=f"{fact.source} has no mean foreground fraction and no evaluation keeps per-image ones",
            constraint="data",
        )
        return
    book.effect_claim(
        claim_id=f"{dataset}.A4",
        claim=claim,
        quote=QUOTE_FOREGROUND[dataset],
        section=SECTION_DATASETS,
        dataset=dataset,
        rule_text=f"equivalence: holds when the interval of our share minus the paper's lies within "
        f"±{margin:g} points (params claims.comparable_margin), does not hold when it lies wholly outside",
        rule=within(margin),
        effect=Effect.of(f"mean foreground share minus the paper's {paper:g} %", "points", est),
        estimate=est,
        quantities=[quantity],
        models=(),
        note="; ".join(x for x in (how, NOTE_FOREGROUND.get(dataset, "")) if x),
    )
