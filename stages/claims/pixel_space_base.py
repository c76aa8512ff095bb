"""What every pixel-space claim (Wang et al.) reads: one (model, region, pixels) DE evaluation's
per-image outcomes, the paper's words the claims quote, and how one model's claim is recorded.

Split from :mod:`stages.claims.pixel_space` (the claims of Tables II and IV, and the searches
compared) and :mod:`stages.claims.pixel_space_shape` (the claims on pixel counts, target classes,
fitness curves and the whole image), which both build on :class:`ModelClaims`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.claims.budget import seconds_per_image
from stages.claims.build import ClaimBook
from stages.claims.feasibility import UnitCost
from stages.claims.record import ClaimRecord, Effect, Quantity
from stages.claims.stats import Estimate, Rule, wilson
from stages.utils.errors import DataError

ORIGINAL, FOREGROUND, BACKGROUND = "original", "foreground", "background"
REGIONS = (ORIGINAL, FOREGROUND, BACKGROUND)
# The paper has no §IV-D: every result, Table IV and Figs. 3-6 included, is in §IV-C.
SECTION = "Wang et al., §IV-C and Table II"
SECTION_GENERATIONS = "Wang et al., §IV-C (Change in fitness values and number of generations) and Table IV"
QUOTE_TARGETED = (
    "the success rate on the background of the image decreases by an average of [...] 51.56% for targeted "
    "attacks [...] compared with the success rate on the original image"
)
QUOTE_GENERATIONS = (
    "the average number of generations that required for the successful untargeted attack by modifying one "
    "pixel on the background of the image is significantly higher than on the entire image and its foreground"
)

# (role, metric, region, pixels) -> the paper's Table II value in % (None where it has none).
PaperValue = Callable[[str, str, str, int], float | None]
# (role, region, pixels) -> the paper's Table IV mean generations (1 pixel only).
PaperGenerations = Callable[[str, str, int], float | None]
Outcomes = Mapping[tuple[str, str, int], "RegionOutcomes"]


@dataclass(frozen=True)
class RegionOutcomes:
    """One (model, region, pixels) DE evaluation per attacked image, in image order."""

    source: str
    index: np.ndarray  # the images' positions in the test split
    success: np.ndarray  # 0/1 untargeted success
    generations: np.ndarray  # counted from 0 (the initial population); the paper counts from 1
    confidence: np.ndarray  # probability of the adversarial class (success only)
    targeted_index: np.ndarray  # images with targeted runs, in order
    targeted_success: np.ndarray  # per such image: the share of its targets reached
    targeted_reached: np.ndarray  # per such image: how many target classes it reached (Fig. 3)
    fitness: tuple[np.ndarray, ...]  # per attacked image: best fitness per generation (Fig. 6)
    horizon: int  # the generations an attack may run (max_generations)
    # The targeted runs' share of the evaluation's model forwards: what one more targeted image
    # costs is this share of the job's time, per targeted image (None without targeted runs).
    targeted_forward_share: float | None = None

    def targeted_seconds_per_image(self) -> float | None:
        """Measured seconds one targeted image (all its targets) costs, from the evaluation's
        throughput record and its forwards; None where either is missing."""
        path = Path(self.source)
        per_image = seconds_per_image(path.parent.parent, path.parent.name, path.stem)
        if per_image is None or not self.targeted_forward_share or not len(self.targeted_index):
            return None
        return per_image * len(self.index) * self.targeted_forward_share / len(self.targeted_index)


def region_outcomes(block: Mapping, source: str) -> RegionOutcomes:
    """From an evaluation's ``pixel_attack`` block."""
    try:
        images = sorted(block["untargeted"]["images"], key=lambda r: int(r["index"]))
        targeted = (block.get("targeted") or {}).get("pairs_list") or []
    except (KeyError, TypeError) as exc:
        raise DataError(
            f"{source}: no per-image records in `pixel_attack.untargeted` ({exc}); re-run it"
        ) from None
    per_image: dict[int, list[int]] = {}
    for pair in targeted:
        per_image.setdefault(int(pair["index"]), []).append(int(bool(pair["success"])))
    t_index = np.array(sorted(per_image), dtype=int)
    fitness = tuple(np.asarray(r.get("fitness") or [], dtype=float) for r in images)
    longest = max((len(f) - 1 for f in fitness), default=0)
    return RegionOutcomes(
        source=source,
        index=np.array([int(r["index"]) for r in images], dtype=int),
        success=np.array([int(bool(r["success"])) for r in images], dtype=int),
        generations=np.array([float(r["generations"]) for r in images]),
        confidence=np.array([float(r.get("adversarial_confidence") or 0.0) for r in images]),
        targeted_index=t_index,
        targeted_success=np.array([np.mean(per_image[i]) for i in t_index]),
        targeted_reached=np.array([sum(per_image[i]) for i in t_index], dtype=float),
        fitness=fitness,
        horizon=int(block.get("max_generations") or longest),
        targeted_forward_share=_targeted_share(block),
    )


def _targeted_share(block: Mapping) -> float | None:
    try:
        targeted = float(block["targeted"]["forwards"])
        return targeted / (targeted + float(block["untargeted"]["forwards"]))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def same_images(outcomes: Sequence[RegionOutcomes], what: str) -> None:
    first = outcomes[0]
    for other in outcomes[1:]:
        if not np.array_equal(getattr(first, what), getattr(other, what)):
            raise DataError(
                f"{first.source} and {other.source} attacked different images ({what}); they must come from "
                "the same model and test images: re-run the evaluate stage for the older one"
            )


def reached_any(targeted: Mapping | None) -> float | None:
    """The paper's Untargeted2 (§IV-C): the share of targeted images on which "the targeted attack
    can be launched successfully [...] at least for one target class", from the per-pair records
    (the histogram of targets reached where an older record lacks them); None without a run."""
    if not targeted or not int(targeted.get("images") or 0):
        return None
    pairs = targeted.get("pairs_list")
    if pairs:
        images = {int(p["index"]) for p in pairs}
        reached = {int(p["index"]) for p in pairs if p["success"]}
        return len(reached) / len(images)
    histogram = targeted["targets_reached"]
    return 1.0 - int(histogram[0]) / int(targeted["images"])


def fitness_area(curve: np.ndarray, horizon: int) -> float:
    """The mean of one image's fitness curve over generations 0..``horizon``, an attack that
    stopped keeping the fitness it stopped at (as Fig. 6's curves do): the area under the curve
    per generation. Paired over regions of one image, whose clean probability is common, its
    difference is the difference in the curves' mean drop."""
    if len(curve) == 0:
        return float("nan")
    length = max(horizon + 1, len(curve))
    return float(np.concatenate([curve, np.full(length - len(curve), curve[-1])]).mean())


class ModelClaims:
    """One model's per-image outcomes, ``out``: (role, region, pixels) -> RegionOutcomes, and the
    helpers its claims share (rates with their intervals, the paper's effect, the record)."""

    def __init__(
        self,
        book: ClaimBook,
        role: str,
        model: str,
        title: str,
        out: Outcomes,
        pixels: Sequence[int],
        paper_value: PaperValue,
        paper_generations: PaperGenerations,
        dataset: str,
    ) -> None:
        self.book, self.role, self.model, self.title, self.out = book, role, model, title, out
        self.pixels, self.paper_value, self.paper_generations = list(pixels), paper_value, paper_generations
        self.dataset, self.alpha = dataset, book.settings.alpha

    def _rates(
        self, region: str, out: Outcomes | None = None, suffix: str = "", pixels: Sequence[int] | None = None
    ) -> list[Quantity]:
        quantities = []
        for k in self.pixels if pixels is None else pixels:
            o = (self.out if out is None else out)[(self.role, region, k)]
            if len(o.success):
                est = wilson(int(o.success.sum()), len(o.success), self.alpha).scaled(100.0)
                label = f"{self.title} {region} {k}px success{suffix}"
                quantities.append(Quantity(label, est.value, "%", est.n, o.source, est.low, est.high))
        return quantities

    def _paper_mean(
        self,
        combine: Callable[[float, float, float], float],
        metric: str = "untargeted1",
        pixels: Sequence[int] | None = None,
    ) -> float | None:
        values = []
        for k in self.pixels if pixels is None else pixels:
            v = [self.paper_value(self.role, metric, r, k) for r in REGIONS]
            if any(x is None for x in v):
                return None
            values.append(combine(*v))  # type: ignore[arg-type]
        return round(float(np.mean(values)), 2) if values else None

    def _paper_difference(self, metric: str, a: tuple[str, int], b: tuple[str, int]) -> float | None:
        """The paper's Table II ``metric`` at (region, pixels) ``a`` minus at ``b``."""
        value_a = self.paper_value(self.role, metric, *a)
        value_b = self.paper_value(self.role, metric, *b)
        return None if value_a is None or value_b is None else round(value_a - value_b, 2)

    def _claim(
        self,
        claim_id: str,
        claim: str,
        quote: str,
        section: str,
        rule_text: str,
        rule: Rule,
        label: str,
        est: Estimate,
        paper: float | None,
        quantities: Sequence[Quantity],
        note: str = "",
        unit: str = "points",
        ours: bool = False,
        sources: Sequence[str] = (),
        unit_cost: UnitCost | None = None,
    ) -> ClaimRecord:
        return self.book.effect_claim(
            claim_id=f"{claim_id}.{self.role}",
            claim=f"{self.title}: {claim}",
            quote=quote,
            section=section,
            dataset=self.dataset,
            rule_text=rule_text,
            rule=rule,
            effect=Effect.of(label, unit, est, paper),
            estimate=est,
            quantities=quantities,
            models=[self.model],
            note=note,
            ours=ours,
            sources=sources,
            unit_cost=unit_cost,
        )

    @staticmethod
    def _targeted_cost(outcomes: Sequence[RegionOutcomes]) -> UnitCost:
        """A targeted claim's n counts targeted images, each attacked towards every other class:
        one more costs its share of each compared evaluation's time."""
        seconds = [o.targeted_seconds_per_image() for o in outcomes]
        return UnitCost(1.0, sum(seconds) if all(s is not None for s in seconds) else None)  # type: ignore[misc]

    def _not_tested(
        self, claim_id: str, claim: str, quote: str, section: str, reason: str, constraint: str
    ) -> ClaimRecord:
        return self.book.not_tested(
            claim_id=f"{claim_id}.{self.role}",
            claim=f"{self.title}: {claim}",
            quote=quote,
            section=section,
            dataset=self.dataset,
            reason=reason,
            constraint=constraint,
        )

    def _composite(
        self, claim_id: str, claim: str, quote: str, section: str, parts: Sequence[ClaimRecord]
    ) -> None:
        self.book.composite(
            claim_id=f"{claim_id}.{self.role}",
            claim=f"{self.title}: {claim}",
            quote=quote,
            section=section,
            dataset=self.dataset,
            parts=parts,
        )

    def _success(self, out: Outcomes, region: str) -> np.ndarray:
        """Per image, its success in ``region`` averaged over the pixel counts."""
        return np.mean([out[(self.role, region, k)].success for k in self.pixels], axis=0)

    def _sources(self, regions: Sequence[str], pixels: Sequence[int]) -> list[str]:
        return [self.out[(self.role, r, k)].source for k in pixels for r in regions]

    def _generations(
        self, both: np.ndarray, outcomes: Mapping[str, RegionOutcomes], k: int
    ) -> list[Quantity]:
        """Mean generations on the images ``both`` selects, counted as the paper's Table IV counts
        them (the initial population is generation 1; ours counts it 0)."""
        return [
            Quantity(
                f"{self.title} {r} {k}px mean generations counted from 1 (fooled in both)",
                float(o.generations[both].mean()) + 1.0,
                "generations",
                int(both.sum()),
                o.source,
            )
            for r, o in outcomes.items()
        ]

    @staticmethod
    def _fooled_in_both(a: RegionOutcomes, b: RegionOutcomes) -> np.ndarray:
        return (a.success == 1) & (b.success == 1)
