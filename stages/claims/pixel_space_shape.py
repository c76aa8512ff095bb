"""Wang et al.'s claims beyond the region gap (§IV-C), as records: the background against the
whole image for targeted success and generations (P2.whole, P3.whole), the foreground about as
vulnerable as the whole image (P8), more pixels fooling more images (P9), the confidence not
changing with the pixel count (P10), fewer target classes reached from the background (Fig. 3,
P11) and the background's fitness falling less (Fig. 6, P12).

Every comparison is paired over the images a model's evaluations share: 0/1 outcomes of one
region at two pixel counts by Newcombe's paired score interval, per-image means and differences
by the BCa bootstrap (stages.claims.stats).
"""

from __future__ import annotations

import numpy as np

from stages.claims.pixel_space_base import (
    BACKGROUND,
    FOREGROUND,
    ORIGINAL,
    QUOTE_GENERATIONS,
    QUOTE_TARGETED,
    REGIONS,
    SECTION,
    SECTION_GENERATIONS,
    ModelClaims,
    RegionOutcomes,
    fitness_area,
)
from stages.claims.record import ClaimRecord, Quantity
from stages.claims.stats import (
    ABOVE_ZERO,
    Rule,
    mean_difference_paired,
    mean_paired,
    rate_difference_paired,
    within,
)

QUOTE_FOREGROUND = (
    "The success rate of the three models on the foreground of the image reduces by an average of 6.84% "
    "in the case of untargeted attacks [...] compared with the success rate on the original image"
)
QUOTE_PIXELS = (
    "for stronger attacks obtained by increasing the number of pixels that can be modified to three and "
    "five, the value of success rate increases significantly"
)
QUOTE_CONFIDENCE_PIXELS = (
    "nor does the confidence value change with the number of pixels that can be modified"
)
QUOTE_TARGET_CLASSES = (
    "The results of the number of target classes when attacking on the entire image are almost as good as "
    "the results when attacking on the foreground of the image, whereas the results of the attacks that "
    "modify the pixel on the background of the image are much worse."
)
QUOTE_FITNESS = (
    "the average fitness value drops almost as much for attacking on the foreground as it does for the "
    "entire image. However, when attacking on the background of the image, the average fitness value drop "
    "is much smaller."
)
SECTION_TARGET_CLASSES = "Wang et al., §IV-C (Number of target classes) and Fig. 3"
SECTION_FITNESS = "Wang et al., §IV-C (Change in fitness values and number of generations) and Fig. 6"
# "each image is perturbed to all other nine CIFAR-10 classes" (§IV-B): the paper's targeted
# rate times 9 is its mean number of target classes reached per image.
PAPER_TARGETS = 9


class ShapeClaims(ModelClaims):
    """One model's claims on the shape of its results beyond the region gap (the module's list)."""

    def shape(self) -> None:
        """P8-P12 for this model (P2.whole and P3.whole are called beside P2 and P3)."""
        self.foreground_like_whole()
        self.more_pixels()
        self.confidence_by_pixels()
        self.target_classes()
        self.fitness_curves()

    def whole_targeted(self) -> None:
        """P2.whole: the paper's targeted quote compares the background with the original image,
        so this is the comparison it words (P2 compares the background with the foreground)."""
        k = min(self.pixels)
        whole, bg = self.out[(self.role, ORIGINAL, k)], self.out[(self.role, BACKGROUND, k)]
        claim = f"targeted {k}-pixel attacks succeed less often on the background than on the whole image"
        if len(whole.targeted_index) == 0 or not np.array_equal(whole.targeted_index, bg.targeted_index):
            reason = "no targeted runs on the same images on the whole image and the background"
            self._not_tested("P2.whole", claim, QUOTE_TARGETED, SECTION, reason, "compute")
            return
        self._claim(
            "P2.whole",
            claim,
            QUOTE_TARGETED,
            SECTION,
            "holds when the interval of whole-image - background targeted success (points, per image over "
            "its targets, paired bootstrap) lies above 0",
            ABOVE_ZERO,
            f"whole-image minus background targeted success, {k} px",
            mean_paired(100.0 * (whole.targeted_success - bg.targeted_success), self.alpha),
            self._paper_difference("targeted", (ORIGINAL, k), (BACKGROUND, k)),
            [self._targeted_rate(r, o, k) for r, o in ((ORIGINAL, whole), (BACKGROUND, bg))],
            unit_cost=self._targeted_cost([whole, bg]),
        )

    def _targeted_rate(self, region: str, o: RegionOutcomes, k: int) -> Quantity:
        value = 100.0 * float(o.targeted_success.mean())
        return Quantity(
            f"{self.title} {region} {k}px targeted success", value, "%", len(o.targeted_success), o.source
        )

    def whole_generations(self) -> None:
        """P3.whole: Table IV's background against the entire image (P3: against the foreground)."""
        k = min(self.pixels)
        whole, bg = self.out[(self.role, ORIGINAL, k)], self.out[(self.role, BACKGROUND, k)]
        both = self._fooled_in_both(whole, bg)
        claim = f"a {k}-pixel background attack needs more generations than a whole-image one"
        if not both.any():
            reason = "no image was fooled on both the background and the whole image"
            self._not_tested("P3.whole", claim, QUOTE_GENERATIONS, SECTION_GENERATIONS, reason, "images")
            return
        paper_whole = self.paper_generations(self.role, ORIGINAL, k)
        paper_bg = self.paper_generations(self.role, BACKGROUND, k)
        self._claim(
            "P3.whole",
            claim,
            QUOTE_GENERATIONS,
            SECTION_GENERATIONS,
            "holds when the interval of background - whole-image generations, on the images fooled in both "
            "(paired bootstrap), lies above 0",
            ABOVE_ZERO,
            f"background minus whole-image generations, {k} px",
            mean_difference_paired(bg.generations[both], whole.generations[both], self.alpha),
            None if paper_whole is None or paper_bg is None else round(paper_bg - paper_whole, 2),
            self._generations(both, {ORIGINAL: whole, BACKGROUND: bg}, k),
            note="the paper averages over all images each region fooled; we pair the images fooled in both",
            unit="generations",
        )

    def foreground_like_whole(self) -> None:
        """P8: foreground success within ±comparable_margin of the whole image's, per image pooled
        over the pixel counts (the paper: a 6.84 % relative drop, averaged at one pixel)."""
        claim = "few-pixel attacks on the foreground succeed about as often as on the whole image"
        fg, whole = self._success(self.out, FOREGROUND), self._success(self.out, ORIGINAL)
        if len(whole) == 0:
            self._not_tested(
                "P8", claim, QUOTE_FOREGROUND, SECTION, f"`{self.model}` has no attacked image", "images"
            )
            return
        margin = self.book.settings.comparable_margin
        ks = "/".join(str(k) for k in self.pixels)
        self._claim(
            "P8",
            claim,
            QUOTE_FOREGROUND,
            SECTION,
            f"equivalence: holds when the interval of foreground - whole-image success (points, mean over "
            f"{ks} pixels per image, paired bootstrap) lies within ±{margin:g} points "
            "(params claims.comparable_margin)",
            within(margin),
            f"foreground minus whole-image success, mean over {ks} px",
            mean_paired(100.0 * (fg - whole), self.alpha),
            self._paper_mean(lambda o, f, b: f - o),
            [q for r in (ORIGINAL, FOREGROUND) for q in self._rates(r)],
            note="the paper quotes a relative drop at one pixel; we test the absolute difference over every "
            "pixel count",
        )

    def more_pixels(self) -> None:
        """P9.<region>: success with the most pixels above success with the fewest, per image
        (paired 0/1 outcomes); P9: every region."""
        lo, hi = min(self.pixels), max(self.pixels)
        claim = f"{hi}-pixel attacks succeed more often than {lo}-pixel ones"
        if lo == hi:
            reason = f"one pixel count ({lo}) only: the claim compares two"
            self._not_tested("P9", claim, QUOTE_PIXELS, SECTION, reason, "compute")
            return
        parts = [self._more_pixels_in(region, lo, hi) for region in REGIONS]
        self._composite("P9", f"{claim}, in every region", QUOTE_PIXELS, SECTION, parts)

    def _more_pixels_in(self, region: str, lo: int, hi: int) -> ClaimRecord:
        many, few = self.out[(self.role, region, hi)], self.out[(self.role, region, lo)]
        claim = f"{hi}-pixel attacks on the {region} succeed more often than {lo}-pixel ones"
        if len(many.success) == 0:
            reason = f"`{self.model}` has no attacked image"
            return self._not_tested(f"P9.{region}", claim, QUOTE_PIXELS, SECTION, reason, "images")
        return self._claim(
            f"P9.{region}",
            claim,
            QUOTE_PIXELS,
            SECTION,
            f"holds when the interval of {hi}-pixel - {lo}-pixel success (points, paired over images, "
            "Newcombe's paired score interval) lies above 0",
            ABOVE_ZERO,
            f"{region} success, {hi} px minus {lo} px",
            rate_difference_paired(many.success, few.success, self.alpha).scaled(100.0),
            self._paper_difference("untargeted1", (region, hi), (region, lo)),
            self._rates(region, pixels=(lo, hi)),
        )

    def confidence_by_pixels(self) -> None:
        """P10.<region>: the adversarial class's confidence with the most pixels within
        ±confidence_margin of that with the fewest, on the images fooled at both; P10: every region."""
        lo, hi = min(self.pixels), max(self.pixels)
        claim = f"the adversarial class's confidence is the same at {hi} and {lo} pixels"
        if lo == hi:
            reason = f"one pixel count ({lo}) only: the claim compares two"
            self._not_tested("P10", claim, QUOTE_CONFIDENCE_PIXELS, SECTION, reason, "compute")
            return
        parts = [self._confidence_in(region, lo, hi) for region in REGIONS]
        self._composite("P10", f"{claim}, in every region", QUOTE_CONFIDENCE_PIXELS, SECTION, parts)

    def _confidence_in(self, region: str, lo: int, hi: int) -> ClaimRecord:
        many, few = self.out[(self.role, region, hi)], self.out[(self.role, region, lo)]
        both = self._fooled_in_both(many, few)
        claim = f"the adversarial class's confidence on the {region} is the same at {hi} and {lo} pixels"
        if not both.any():
            reason = f"no image was fooled on the {region} at both {lo} and {hi} pixels"
            return self._not_tested(
                f"P10.{region}", claim, QUOTE_CONFIDENCE_PIXELS, SECTION, reason, "images"
            )
        margin = self.book.settings.confidence_margin
        return self._claim(
            f"P10.{region}",
            claim,
            QUOTE_CONFIDENCE_PIXELS,
            SECTION,
            f"equivalence: holds when the interval of the {hi}-pixel - {lo}-pixel confidence (points, on the "
            f"images fooled at both, paired bootstrap) lies within ±{margin:g} points (params "
            "claims.confidence_margin)",
            within(margin),
            f"{region} confidence, {hi} px minus {lo} px",
            mean_difference_paired(100.0 * many.confidence[both], 100.0 * few.confidence[both], self.alpha),
            self._paper_difference("confidence_u", (region, hi), (region, lo)),
            [],
            note="untargeted attacks only; the paper also says it of targeted ones",
            sources=[many.source, few.source],
        )

    def _targeted_pixels(self) -> list[int]:
        """The pixel counts whose foreground and background targeted runs attacked the same images
        (those of the fewest pixels with such runs), so that they pool per image."""
        ks: list[int] = []
        for k in self.pixels:
            fg, bg = self.out[(self.role, FOREGROUND, k)], self.out[(self.role, BACKGROUND, k)]
            same = len(fg.targeted_index) > 0 and np.array_equal(fg.targeted_index, bg.targeted_index)
            first = self.out[(self.role, FOREGROUND, ks[0])].targeted_index if ks else fg.targeted_index
            if same and np.array_equal(fg.targeted_index, first):
                ks.append(k)
        return ks

    def target_classes(self) -> None:
        """P11 (Fig. 3): per image, the target classes reached on the foreground minus on the
        background, the mean over the pixel counts with targeted runs; above 0."""
        claim = "fewer target classes are reached from the background than from the foreground"
        ks = self._targeted_pixels()
        if not ks:
            reason = "no targeted runs on the same images on the foreground and the background"
            self._not_tested("P11", claim, QUOTE_TARGET_CLASSES, SECTION_TARGET_CLASSES, reason, "compute")
            return
        reached = {
            r: np.mean([self.out[(self.role, r, k)].targeted_reached for k in ks], axis=0)
            for r in (FOREGROUND, BACKGROUND)
        }
        ks_text = "/".join(str(k) for k in ks)
        paper = self._paper_mean(lambda o, f, b: (f - b) * PAPER_TARGETS / 100.0, "targeted", ks)
        sources = self._sources((FOREGROUND, BACKGROUND), ks)
        self._claim(
            "P11",
            claim,
            QUOTE_TARGET_CLASSES,
            SECTION_TARGET_CLASSES,
            "holds when the interval of foreground - background target classes reached per image (mean over "
            f"{ks_text} pixels, paired bootstrap) lies above 0",
            ABOVE_ZERO,
            f"foreground minus background target classes reached, mean over {ks_text} px",
            mean_paired(reached[FOREGROUND] - reached[BACKGROUND], self.alpha),
            paper,
            [self._reached(r, reached[r], self.out[(self.role, r, ks[0])].source) for r in reached],
            unit="target classes",
            note=f"the paper's effect: its Table II targeted rates x {PAPER_TARGETS} targets; the whole "
            'image against the foreground ("almost as good") is not tested here',
            sources=sources,
            unit_cost=self._targeted_cost([self.out[(self.role, r, k)] for r in reached for k in ks]),
        )

    def _reached(self, region: str, values: np.ndarray, source: str) -> Quantity:
        label = f"{self.title} {region} mean target classes reached per image"
        return Quantity(label, float(values.mean()), "target classes", len(values), source)

    def fitness_curves(self) -> None:
        """P12 (Fig. 6), on the images fooled in every region at the fewest pixels (the paper's
        choice): per image, the mean fitness over the generations (the area under its curve);
        P12.background: the background's above the whole image's (its fitness drops less);
        P12.foreground: the foreground's within ±comparable_margin of the whole image's."""
        k = min(self.pixels)
        claim = (
            f"the {k}-pixel fitness drops about as much on the foreground as on the whole image, and less on "
            "the background"
        )
        outs = {r: self.out[(self.role, r, k)] for r in REGIONS}
        fooled = np.logical_and.reduce([o.success == 1 for o in outs.values()])
        if not fooled.any():
            reason = f"no image was fooled at {k} pixel(s) in every region"
            self._not_tested("P12", claim, QUOTE_FITNESS, SECTION_FITNESS, reason, "images")
            return
        chosen = np.flatnonzero(fooled)
        if any(len(o.fitness[i]) == 0 for o in outs.values() for i in chosen):
            reason = "the evaluations keep no fitness curves: re-run the evaluate stage"
            self._not_tested("P12", claim, QUOTE_FITNESS, SECTION_FITNESS, reason, "compute")
            return
        horizon = max(o.horizon for o in outs.values())
        area = {
            r: np.array([100.0 * fitness_area(o.fitness[i], horizon) for i in chosen])
            for r, o in outs.items()
        }
        parts = [
            self._fitness_part(BACKGROUND, area, k, horizon, ABOVE_ZERO),
            self._fitness_part(FOREGROUND, area, k, horizon, within(self.book.settings.comparable_margin)),
        ]
        self._composite("P12", claim, QUOTE_FITNESS, SECTION_FITNESS, parts)

    def _fitness_part(
        self, region: str, area: dict[str, np.ndarray], k: int, horizon: int, rule: Rule
    ) -> ClaimRecord:
        if region == BACKGROUND:
            claim = f"the {k}-pixel fitness drops less on the background than on the whole image"
            rule_text = "holds when the interval lies above 0"
        else:
            margin = self.book.settings.comparable_margin
            claim = f"the {k}-pixel fitness drops about as much on the foreground as on the whole image"
            rule_text = (
                f"equivalence: holds when the interval lies within ±{margin:g} points "
                "(params claims.comparable_margin)"
            )
        return self._claim(
            f"P12.{region}",
            claim,
            QUOTE_FITNESS,
            SECTION_FITNESS,
            f"{region} - whole-image mean fitness over generations 0-{horizon} (the true class's "
            f"probability, points; per image on the images fooled in every region, paired bootstrap): "
            f"{rule_text}",
            rule,
            f"{region} minus whole-image mean fitness over {horizon} generations, {k} px",
            mean_difference_paired(area[region], area[ORIGINAL], self.alpha),
            None,
            [],
            note="the paper reads its averaged curves; an attack that stopped keeps the fitness it stopped "
            "at, so a slower or smaller drop both raise the mean",
            sources=self._sources((ORIGINAL, region), (k,)),
        )
