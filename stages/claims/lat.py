"""The LAT paper's claims (Rothberg et al. 2019, §1, §4 and §5.1) as records.

The paper's effects are relative loss changes ("x % less loss"); with per-image losses we test
the same quantity, paired over images. Evaluations that keep only summaries have no interval
for a mean loss, so there the direction is decided on accuracy (unpaired counts), the record
says so, and the paper's loss effect is not compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stages.claims.build import ClaimBook
from stages.claims.evidence import Evaluation, accuracy_difference, check_pair
from stages.claims.feasibility import Feasibility
from stages.claims.record import ClaimRecord, Effect
from stages.claims.settings import ClaimSettings, DatasetFacts
from stages.claims.stats import ABOVE_ZERO, relative_reduction_paired

PAPER = "lat"
TITLE = "LAT (Rothberg et al. 2019)"
ROLES = ("natural", "standard", "background")
INPUTS = ("natural", "standard_attack", "background_attack")
INPUT_WORDS = {
    "natural": "natural inputs",
    "standard_attack": "the standard attack",
    "background_attack": "the background attack",
}

QUOTE_LAT = (
    'the "background" models outperformed the natural models, by 4.35% on natural MNIST inputs and over '
    '99% on adversarial MNIST inputs. The "background" CIFAR-10 model also had improved performance in '
    "both categories, by 1.63% on natural inputs and 15.98% on adversarial inputs"
)
QUOTE_TRADE = (
    "the MNIST model trained with the standard attack suffered at least 99% less loss than the naturally "
    "trained model, it suffered 39.9% more loss on natural inputs. Similarly, while the CIFAR-10 standard "
    "adversarial model suffered 95.7% less loss on adversarial images, it suffered 88.9% more loss on "
    "natural images"
)
QUOTE_WHITEBOX = (
    "a whitebox version of this attack against an MNIST classifier, bringing its accuracy from 99.19% to "
    "0.08%, and against a CIFAR-10 model, bringing its accuracy from 95.17% to 59.26%"
)
QUOTE_INCEPTION = "We run this attack against Inception v3 on nine images, bringing its accuracy to 0.00%"
QUOTE_LAT_VS_STANDARD = (
    "if a model is adversarially trained to discount *irrelevant* features (like the background, in many "
    "cases), then it may become more robust to adversarial changes in those features without suffering "
    "the same accuracy loss of a standard adversarially-trained model"
)
SECTION_LAT_VS_STANDARD = "Rothberg et al. 2019, §4; Figure 2 (§5.1)"
SECTION_RESULTS = "Rothberg et al. 2019, §5.1"
SECTION_CONTRIBUTIONS = "Rothberg et al. 2019, §1.1"

# The paper's effects, in % less loss than the natural model (§5.1; MNIST's per-input values
# from Figure 2: natural 41.4 -> 39.6 (x1000), standard 68.19 -> 0.55, background 61.80 -> 0.23).
PAPER_LAT_REDUCTION: dict[str, dict[str, float]] = {
    "mnist": {"natural": 4.35, "standard_attack": 99.19, "background_attack": 99.63},
    "cifar10": {"natural": 1.63, "standard_attack": 15.98, "background_attack": 15.98},
}
# Standard AT vs natural (§5.1): % more natural loss, % less loss under the standard attack.
# MNIST's "at least 99%" is (68.19 - 0.27) / 68.19 = 99.6 % in its Figure 2.
PAPER_TRADE: dict[str, tuple[float, float]] = {"mnist": (39.9, 99.6), "cifar10": (88.9, 95.7)}
# LAT vs standard AT on natural inputs, % less natural loss. MNIST from Figure 2:
# (57.9 - 39.6) / 57.9. CIFAR-10's rows are unreadable, but §5.1 gives both models' natural loss
# relative to the natural model's (standard +88.9 %, LAT -1.63 %): 1 - 0.9837 / 1.889.
PAPER_LAT_VS_STANDARD: dict[str, float] = {"mnist": 31.61, "cifar10": 47.93}
PAPER_LAT_VS_STANDARD_FROM = {
    "mnist": "Figure 2: natural loss 39.6 vs 57.9, x1000",
    "cifar10": "from §5.1's +88.9 % and -1.63 % natural loss against the natural model",
}
# §1.1: the white-box background attack on a natural classifier, accuracy before -> after (%).
PAPER_WHITEBOX: dict[str, tuple[float, float]] = {"mnist": (99.19, 0.08), "cifar10": (95.17, 59.26)}


SUMMARY_ONLY = (
    "these evaluations keep no per-image losses, so the direction is decided on accuracy "
    "(unpaired, from summary counts) and the paper's loss effect is not compared"
)


@dataclass(frozen=True)
class LatRow:
    """One dataset's three models and three inputs, as the table names them."""

    key: str  # the table's row group: a dataset, or an extension's name
    dataset: str
    models: Mapping[str, str]  # role -> model
    inputs: Mapping[str, str]  # input kind -> attack
    ours: bool = False


def lat_claims(
    rows: list[LatRow],
    evals: Mapping[tuple[str, str], Evaluation],
    facts: Mapping[str, DatasetFacts],
    settings: ClaimSettings,
    feasibility: Feasibility | None = None,
) -> list[ClaimRecord]:
    book = ClaimBook(PAPER, settings)
    for row in rows:
        for role in ROLES:
            book.check_model(evals[(row.models[role], row.inputs["natural"])], facts[row.dataset])
    for row in rows:
        _lat_beats_natural(book, row, evals)
        _standard_trade_off(book, row, evals)
        _whitebox_drop(book, row, evals, settings)
        _lat_beats_standard(book, row, evals)
    book.not_tested(
        claim_id="imagenet.L4",
        claim="a background-only attack takes Inception-v3's accuracy on nine ImageNet images to 0 %",
        quote=QUOTE_INCEPTION,
        section="Rothberg et al. 2019, §1.1 and §4",
        dataset="imagenet",
        reason="needs pretrained Inception-v3 and MobileNet weights and ImageNet images, which cannot be "
        "downloaded here",
        constraint="weights",
    )
    return book.finish(feasibility)


def _paper_for(row: LatRow, table: Mapping[str, object]) -> object | None:
    # Our extensions are not the paper's experiment: its numbers are not compared with them.
    return None if row.ours else table.get(row.dataset)


ROLE_WORDS = {"natural": "natural model", "standard": "standard model", "background": "LAT model"}


def _versus(
    book: ClaimBook,
    row: LatRow,
    evals: Mapping[tuple[str, str], Evaluation],
    *,
    other: str,
    kind: str,
    less_loss: bool,
    claim_id: str,
    claim: str,
    quote: str,
    rule_text: str,
    paper: float | None,
    base: str = "natural",
    section: str = SECTION_RESULTS,
) -> ClaimRecord:
    """The ``other`` role's model against the ``base`` role's (the natural model unless said)
    on one input kind. The paper's effects are relative to the base model's loss: "% less loss"
    (``less_loss``) or "% more loss"; with per-image losses we measure the same, paired.
    Summary-only evaluations have no interval for a mean loss, so there the direction is decided
    on accuracy instead (unpaired), and the paper's loss effect is not compared."""
    settings = book.settings
    attack = row.inputs[kind]
    ref, oth = evals[(row.models[base], attack)], evals[(row.models[other], attack)]
    check_pair(ref, oth)
    words = f"{ROLE_WORDS[other]} vs {ROLE_WORDS[base]} on {INPUT_WORDS[kind]}"
    if ref.losses is not None and oth.losses is not None:
        est = relative_reduction_paired(ref.losses, oth.losses, settings.alpha)
        est = est if less_loss else est.negated()
        effect = Effect.of(f"{words}: % {'less' if less_loss else 'more'} loss", "%", est, paper)
        quantities = [ref.loss_quantity(f"{ROLE_WORDS[base]} loss ({attack})")]
        quantities.append(oth.loss_quantity(f"{ROLE_WORDS[other]} loss ({attack})"))
        note = ""
    else:
        est = accuracy_difference(oth, ref, settings.alpha).scaled(100.0)
        est = est if less_loss else est.negated()
        sign = "minus" if less_loss else "below"
        short = ROLE_WORDS[base].removesuffix(" model")
        effect = Effect.of(f"{words}: accuracy, {ROLE_WORDS[other]} {sign} {short} (proxy)", "points", est)
        quantities = [ref.quantity(f"{ROLE_WORDS[base]} accuracy ({attack})", settings.alpha)]
        quantities.append(oth.quantity(f"{ROLE_WORDS[other]} accuracy ({attack})", settings.alpha))
        note = SUMMARY_ONLY
    return book.effect_claim(
        claim_id=claim_id,
        claim=claim,
        quote=quote,
        section=section,
        dataset=row.key,
        rule_text=rule_text,
        rule=ABOVE_ZERO,
        effect=effect,
        estimate=est,
        quantities=quantities,
        models=[row.models[base], row.models[other]],
        ours=row.ours,
        note=note,
    )


def _lat_beats_natural(book: ClaimBook, row: LatRow, evals: Mapping[tuple[str, str], Evaluation]) -> None:
    paper = _paper_for(row, PAPER_LAT_REDUCTION)
    parts = [
        _versus(
            book,
            row,
            evals,
            other="background",
            kind=kind,
            less_loss=True,
            claim_id=f"{row.key}.L1.{kind}",
            claim=f"LAT model beats the natural model on {INPUT_WORDS[kind]}",
            quote=QUOTE_LAT,
            rule_text="holds when the interval of the LAT model's advantage lies above 0",
            paper=paper[kind] if isinstance(paper, dict) else None,
        )
        for kind in INPUTS
    ]
    book.composite(
        claim_id=f"{row.key}.L1",
        claim="LAT model beats the natural model on natural and adversarial inputs",
        quote=QUOTE_LAT,
        section=SECTION_RESULTS,
        dataset=row.key,
        parts=parts,
        ours=row.ours,
    )


def _standard_trade_off(book: ClaimBook, row: LatRow, evals: Mapping[tuple[str, str], Evaluation]) -> None:
    paper = _paper_for(row, PAPER_TRADE)
    cost_paper, gain_paper = paper if isinstance(paper, tuple) else (None, None)
    cost = _versus(
        book,
        row,
        evals,
        other="standard",
        kind="natural",
        less_loss=False,
        claim_id=f"{row.key}.L2.cost",
        claim="standard AT costs natural performance",
        quote=QUOTE_TRADE,
        rule_text="holds when the interval of the standard model's natural-input cost lies above 0",
        paper=cost_paper,
    )
    gain = _versus(
        book,
        row,
        evals,
        other="standard",
        kind="standard_attack",
        less_loss=True,
        claim_id=f"{row.key}.L2.robustness",
        claim="standard AT lowers the loss under the standard attack",
        quote=QUOTE_TRADE,
        rule_text="holds when the interval of the standard model's advantage under attack lies above 0",
        paper=gain_paper,
    )
    book.composite(
        claim_id=f"{row.key}.L2",
        claim="standard AT trades natural performance for robustness",
        quote=QUOTE_TRADE,
        section=SECTION_RESULTS,
        dataset=row.key,
        parts=[cost, gain],
        ours=row.ours,
    )


def _whitebox_drop(
    book: ClaimBook, row: LatRow, evals: Mapping[tuple[str, str], Evaluation], settings: ClaimSettings
) -> None:
    """§1.1: the white-box background attack takes a natural classifier's accuracy from
    99.19 % to 0.08 % (MNIST) and from 95.17 % to 59.26 % (CIFAR-10). The paper does not say
    which of its models it attacked; we take the natural one."""
    nat = row.models["natural"]
    clean, attacked = evals[(nat, row.inputs["natural"])], evals[(nat, row.inputs["background_attack"])]
    paper = _paper_for(row, PAPER_WHITEBOX)
    drop = round(paper[0] - paper[1], 2) if isinstance(paper, tuple) else None
    est = accuracy_difference(clean, attacked, settings.alpha).scaled(100.0)
    note = clean.pairing_note
    book.effect_claim(
        claim_id=f"{row.key}.L3",
        claim="the white-box background attack lowers a natural model's accuracy",
        quote=QUOTE_WHITEBOX,
        section=SECTION_CONTRIBUTIONS,
        dataset=row.key,
        rule_text=(
            "holds when the interval of the accuracy drop lies above 0; whether the paper's drop lies "
            "inside our interval is its size check"
        ),
        rule=ABOVE_ZERO,
        effect=Effect.of("accuracy drop under the background attack", "points", est, drop),
        estimate=est,
        quantities=[
            clean.quantity(f"natural model accuracy ({row.inputs['natural']})", settings.alpha),
            attacked.quantity(f"natural model accuracy ({row.inputs['background_attack']})", settings.alpha),
        ],
        models=[nat],
        ours=row.ours,
        note=note,
    )


def _lat_beats_standard(book: ClaimBook, row: LatRow, evals: Mapping[tuple[str, str], Evaluation]) -> None:
    """§4's premise, measured in Figure 2: LAT keeps more natural performance than standard AT
    (MNIST natural loss 39.6 vs 57.9, x1000), as % less natural loss than the standard model."""
    paper = _paper_for(row, PAPER_LAT_VS_STANDARD)
    source = _paper_for(row, PAPER_LAT_VS_STANDARD_FROM)
    claim = "LAT model has lower natural loss than the standard model"
    _versus(
        book,
        row,
        evals,
        other="background",
        base="standard",
        kind="natural",
        less_loss=True,
        claim_id=f"{row.key}.L5",
        claim=f"{claim} (paper: {paper:g} % less; {source})" if isinstance(paper, float) else claim,
        quote=QUOTE_LAT_VS_STANDARD,
        rule_text="holds when the interval of the LAT model's % less natural loss than the standard model "
        "lies above 0",
        paper=paper if isinstance(paper, float) else None,
        section=SECTION_LAT_VS_STANDARD,
    )
