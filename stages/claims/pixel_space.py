"""Wang et al.'s pixel-space claims (§IV-C, Tables II and IV) as records.

Every DE evaluation of one model attacks the same images (every one of the first ``images``
test images under the paper's ``attacked: all``, or the correctly classified ones among them),
whatever the region and the search, and records each image's outcome. So every comparison of
regions is paired over images, and a model's verdict pools its pixel counts per image (the mean
over k of each image's outcomes) instead of turning on one (model, k) cell.

P1-P4 are judged on the table's main columns (the paper's method: composite search, §III-D).
P6 and P7 are ours (no paper compares searches): P6 re-tests P1 with the foreground and
background attacked by another search (``tables.pixel_space.searches``, e.g. the indexed search
that spends no candidate outside the region), the whole image shared since the searches
coincide there; P7 asks whether that search narrows the background's gap, i.e. whether part of
the gap the paper reports comes from its composite search's candidates outside a small region.

P2.whole, P3.whole and P8-P12 (the background against the whole image, the foreground about as
vulnerable as the whole image, pixel counts, target classes, fitness curves) are the paper's
other readings of its results, in :mod:`stages.claims.pixel_space_shape`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from stages.claims.build import ClaimBook
from stages.claims.evidence import Evaluation
from stages.claims.feasibility import Feasibility
from stages.claims.pixel_space_base import (
    BACKGROUND,
    FOREGROUND,
    ORIGINAL,
    QUOTE_GENERATIONS,
    QUOTE_TARGETED,
    REGIONS,
    SECTION,
    SECTION_GENERATIONS,
    Outcomes,
    PaperGenerations,
    PaperValue,
    region_outcomes,
    same_images,
)
from stages.claims.pixel_space_shape import ShapeClaims
from stages.claims.record import ClaimRecord, Quantity
from stages.claims.settings import ClaimSettings
from stages.claims.stats import ABOVE_ZERO, mean_difference_paired, mean_paired, within

PAPER = "pixel_space"
TITLE = "Pixel space (Wang et al.)"
QUOTE_REGIONS = (
    "the difference between the success rate on the original image and the success rate on its background is "
    "much larger than the difference between the success rate on the original image and the success rate on "
    "its foreground"
)
QUOTE_CONFIDENCE = (
    "attacking on the original image or its foreground or background does not significantly change the "
    "confidence value corresponding to the predicted class after being attacked"
)
QUOTE_IMAGENET = (
    "the success rate on the background reduces by an average of 58.04% compared with on the original image, "
    "which is almost 10-fold greater"
)
NOTE_SEARCH = (
    "ours, not the paper's: the paper's claim with the foreground and background searched by the "
    "{search} search instead of the paper's composite search (§III-D, Eqs. 17-18); the whole image "
    "is shared, the searches being one there"
)
QUOTE_WASTE = (
    "when attacking on the foreground (or background), if the perturbed pixel is located in the "
    "background (or foreground), the value of the fitness function will not change at all in our method"
)
SECTION_SEARCH = "Wang et al., §III-D (Eqs. 17-18) and Table II"
# The paper's "much larger" gap, as the table's rule had it: the background's gap below the
# whole image more than twice the foreground's (the paper's own Table II passes at every k).
GAP_FACTOR = 2.0


def pixel_claims(
    roles: Mapping[str, str],
    role_titles: Mapping[str, str],
    blocks: Mapping[tuple[str, str, int], tuple[Mapping, str]],
    pixels: Sequence[int],
    paper_value: PaperValue,
    paper_generations: PaperGenerations,
    settings: ClaimSettings,
    dataset: str,
    clean: Mapping[str, tuple[Evaluation, int]],
    searches: Mapping[str, Mapping[tuple[str, str, int], tuple[Mapping, str]]] | None = None,
    feasibility: Feasibility | None = None,
) -> list[ClaimRecord]:
    """``blocks``: (role, region, pixels) -> (the evaluation's ``pixel_attack`` block, its file);
    a role whose nine evaluations are not all there is "not tested". ``clean``: role -> (its
    clean evaluation, number of classes), for the degenerate-model check. ``searches``: search
    -> blocks of the same form for the regions attacked by that search (P6, P7); a region it
    lacks (the whole image) comes from ``blocks``."""
    book = ClaimBook(PAPER, settings)
    for evaluation, num_classes in clean.values():
        book.check_model(evaluation, num_classes)
    per_model: list[ClaimRecord] = []
    for role, model in roles.items():
        title = role_titles.get(role, role)
        missing = [f"{r} {k}px" for k in pixels for r in REGIONS if (role, r, k) not in blocks]
        if missing:
            per_model.append(
                book.not_tested(
                    claim_id=f"P1.{role}",
                    claim=f"{title}: background attacks succeed far less often than foreground ones",
                    quote=QUOTE_REGIONS,
                    section=SECTION,
                    dataset=dataset,
                    reason=f"`{model}` has no evaluation for {', '.join(missing)}",
                    constraint="compute",
                )
            )
            continue
        out = {key: region_outcomes(*blocks[key]) for key in blocks if key[0] == role}
        # Every region and pixel count of a model must have attacked the same images: the
        # claims pair them, and pool the pixel counts image by image.
        same_images([out[(role, r, k)] for k in pixels for r in REGIONS], "index")
        claims = _ModelClaims(book, role, model, title, out, pixels, paper_value, paper_generations, dataset)
        per_model.append(claims.regions())
        claims.targeted()
        claims.whole_targeted()
        claims.generations()
        claims.whole_generations()
        claims.confidence()
        claims.shape()
    book.composite(
        claim_id="P1",
        claim="background attacks succeed far less often than foreground ones, for every model",
        quote=QUOTE_REGIONS,
        section=SECTION,
        dataset=dataset,
        parts=per_model,
    )
    for search, search_blocks in (searches or {}).items():
        _search_claims(
            book,
            search,
            roles,
            role_titles,
            blocks,
            search_blocks,
            pixels,
            paper_value,
            paper_generations,
            dataset,
        )
    book.not_tested(
        claim_id="P5",
        claim="on ImageNet (AlexNet, VGG-16, ResNet-50) the background's drop in success is about 10x the "
        "foreground's",
        quote=QUOTE_IMAGENET,
        section="Wang et al., §IV-C and Table III",
        dataset="imagenet",
        reason="needs pretrained ImageNet models and ImageNet images, which cannot be downloaded here",
        constraint="weights",
    )
    return book.finish(feasibility)


def _search_claims(
    book: ClaimBook,
    search: str,
    roles: Mapping[str, str],
    role_titles: Mapping[str, str],
    blocks: Mapping[tuple[str, str, int], tuple[Mapping, str]],
    search_blocks: Mapping[tuple[str, str, int], tuple[Mapping, str]],
    pixels: Sequence[int],
    paper_value: PaperValue,
    paper_generations: PaperGenerations,
    dataset: str,
) -> None:
    """P6.<search> (P1 under ``search``) and P7.<search> (does ``search`` narrow the
    background's gap), per model and over the models."""
    regions_parts: list[ClaimRecord] = []
    gap_parts: list[ClaimRecord] = []
    note = NOTE_SEARCH.format(search=search)
    p6 = f"background attacks succeed far less often than foreground ones ({search} search)"
    p7 = f"the {search} search narrows the background's gap below the foreground"
    for role, model in roles.items():
        title = role_titles.get(role, role)
        # P6: the foreground and background of ``search``, the whole image of the main columns
        # unless ``search`` has its own (the searches are one there).
        chosen = {
            (role, r, k): search_blocks.get((role, r, k)) for k in pixels for r in (FOREGROUND, BACKGROUND)
        }
        chosen |= {
            (role, ORIGINAL, k): search_blocks.get((role, ORIGINAL, k), blocks.get((role, ORIGINAL, k)))
            for k in pixels
        }
        # P7: the foreground and background of both searches.
        main = {(role, r, k): blocks.get((role, r, k)) for k in pixels for r in (FOREGROUND, BACKGROUND)}
        lacking = {
            "P6": [f"{r} {k}px ({search} search)" for (_, r, k), b in chosen.items() if b is None],
            "P7": [
                f"{r} {k}px ({which})"
                for which, part in (("main columns", main), (f"{search} search", chosen))
                for (_, r, k), b in part.items()
                if b is None and r != ORIGINAL
            ],
        }
        for claim_id, parts, claim, quote, section in (
            ("P6", regions_parts, p6, QUOTE_REGIONS, SECTION),
            ("P7", gap_parts, p7, QUOTE_WASTE, SECTION_SEARCH),
        ):
            if lacking[claim_id]:
                parts.append(
                    book.not_tested(
                        claim_id=f"{claim_id}.{search}.{role}",
                        claim=f"{title}: {claim}",
                        quote=quote,
                        section=section,
                        dataset=dataset,
                        reason=f"`{model}` has no evaluation for {', '.join(lacking[claim_id])}",
                        constraint="compute",
                        ours=True,
                    )
                )
        out = {key: region_outcomes(*block) for key, block in chosen.items() if block is not None}
        if not out:
            continue
        same_images(list(out.values()), "index")
        claims = _ModelClaims(book, role, model, title, out, pixels, paper_value, paper_generations, dataset)
        if not lacking["P6"]:
            regions_parts.append(
                claims.regions(f"P6.{search}", qualifier=f" ({search} search)", ours=True, note=note)
            )
        if not lacking["P7"]:
            ran = {key: region_outcomes(*block) for key, block in main.items() if block is not None}
            same_images([*out.values(), *ran.values()], "index")
            gap_parts.append(claims.gap(search, ran))
    book.composite(
        claim_id=f"P6.{search}",
        claim=f"background attacks succeed far less often than foreground ones, for every model, under the "
        f"{search} search",
        quote=QUOTE_REGIONS,
        section=SECTION,
        dataset=dataset,
        parts=regions_parts,
        ours=True,
        note=note,
    )
    book.composite(
        claim_id=f"P7.{search}",
        claim=f"the {search} search narrows the background's gap below the foreground, for every model",
        quote=QUOTE_WASTE,
        section=SECTION_SEARCH,
        dataset=dataset,
        parts=gap_parts,
        ours=True,
    )


class _ModelClaims(ShapeClaims):
    """One model's claims on Tables II and IV (P1-P4) and the searches compared (P6, P7); the
    claims on pixel counts, target classes, fitness curves and the whole image come from
    ShapeClaims."""

    def regions(
        self, prefix: str = "P1", *, qualifier: str = "", ours: bool = False, note: str = ""
    ) -> ClaimRecord:
        """P1 for this model (P6.<search> with ``prefix``): pooled over pixel counts, per image."""
        success = {r: self._success(self.out, r) for r in REGIONS}
        n = len(success[ORIGINAL])
        if n == 0:
            return self.book.not_tested(
                claim_id=f"{prefix}.{self.role}",
                claim=f"{self.title}: background attacks succeed far less often{qualifier}",
                quote=QUOTE_REGIONS,
                section=SECTION,
                dataset=self.dataset,
                reason=f"`{self.model}` classified no attacked image correctly",
                constraint="model",
                ours=ours,
            )
        quantities = [q for r in REGIONS for q in self._rates(r)]
        ks = "/".join(str(k) for k in self.pixels)
        below = mean_paired(100.0 * (success[FOREGROUND] - success[BACKGROUND]), self.alpha)
        part1 = self._claim(
            f"{prefix}.below",
            f"background success below foreground success{qualifier}",
            QUOTE_REGIONS,
            SECTION,
            f"holds when the interval of foreground - background success (points, mean "
            f"over {ks} pixels per image, paired bootstrap) lies above 0",
            ABOVE_ZERO,
            f"foreground minus background success, mean over {ks} px",
            below,
            self._paper_mean(lambda o, f, b: f - b),
            quantities,
            note=note,
            ours=ours,
        )
        contrast = 100.0 * (2 * success[FOREGROUND] - success[ORIGINAL] - success[BACKGROUND])
        far = mean_paired(contrast, self.alpha)
        part2 = self._claim(
            f"{prefix}.far",
            f"the background's gap below the whole image exceeds {GAP_FACTOR:g}x the foreground's{qualifier}",
            QUOTE_REGIONS,
            SECTION,
            "holds when the interval of gap_bg - 2 gap_fg (gap = original - region "
            "success, points, mean over pixel counts per image) lies above 0",
            ABOVE_ZERO,
            f"gap_bg - {GAP_FACTOR:g} gap_fg, mean over {ks} px",
            far,
            self._paper_mean(lambda o, f, b: (o - b) - GAP_FACTOR * (o - f)),
            [],
            note=note,
            ours=ours,
            sources=self._sources(REGIONS, self.pixels),
        )
        return self.book.composite(
            claim_id=f"{prefix}.{self.role}",
            claim=f"{self.title}: background attacks succeed far less often than foreground ones{qualifier}",
            quote=QUOTE_REGIONS,
            section=SECTION,
            dataset=self.dataset,
            parts=[part1, part2],
            ours=ours,
            note=note,
        )

    def gap(self, search: str, main: Outcomes) -> ClaimRecord:
        """P7.<search> for this model: (background gain - foreground gain) of ``search`` over the
        main columns' search, per image pooled over pixel counts (``self.out``: ``search``)."""
        gain = {r: self._success(self.out, r) - self._success(main, r) for r in (FOREGROUND, BACKGROUND)}
        claim = f"the {search} search narrows the background's gap below the foreground"
        if len(gain[BACKGROUND]) == 0:
            return self.book.not_tested(
                claim_id=f"P7.{search}.{self.role}",
                claim=f"{self.title}: {claim}",
                quote=QUOTE_WASTE,
                section=SECTION_SEARCH,
                dataset=self.dataset,
                reason=f"`{self.model}` has no attacked image",
                constraint="images",
                ours=True,
            )
        ks = "/".join(str(k) for k in self.pixels)
        quantities = [q for r in (FOREGROUND, BACKGROUND) for q in self._rates(r, main, " (main search)")]
        quantities += [q for r in (FOREGROUND, BACKGROUND) for q in self._rates(r, self.out, f" ({search})")]
        return self._claim(
            f"P7.{search}",
            claim,
            QUOTE_WASTE,
            SECTION_SEARCH,
            f"holds when the interval of (background gain - foreground gain) of the {search} search over "
            "the main columns' (points, mean over pixel counts per image, paired bootstrap) lies above 0; "
            "does not hold when it lies below 0",
            ABOVE_ZERO,
            f"{search} gain on the background minus on the foreground, mean over {ks} px",
            mean_paired(100.0 * (gain[BACKGROUND] - gain[FOREGROUND]), self.alpha),
            None,
            quantities,
            note="ours: the paper attacks one search only; the success is over every attacked image",
            ours=True,
        )

    def targeted(self) -> None:
        k = min(self.pixels)
        fg, bg = self.out[(self.role, FOREGROUND, k)], self.out[(self.role, BACKGROUND, k)]
        claim = f"targeted {k}-pixel attacks succeed less often on the background than on the foreground"
        if len(fg.targeted_index) == 0 or not np.array_equal(fg.targeted_index, bg.targeted_index):
            self.book.not_tested(
                claim_id=f"P2.{self.role}",
                claim=f"{self.title}: {claim}",
                quote=QUOTE_TARGETED,
                section=SECTION,
                dataset=self.dataset,
                reason="no targeted runs on the same images in both regions",
                constraint="images",
            )
            return
        est = mean_paired(100.0 * (fg.targeted_success - bg.targeted_success), self.alpha)
        paper_fg = self.paper_value(self.role, "targeted", FOREGROUND, k)
        paper_bg = self.paper_value(self.role, "targeted", BACKGROUND, k)
        paper = None if paper_fg is None or paper_bg is None else round(paper_fg - paper_bg, 2)
        self._claim(
            "P2",
            claim,
            QUOTE_TARGETED,
            SECTION,
            "holds when the interval of foreground - background targeted "
            "success (points, per image over its targets, paired bootstrap) lies above 0",
            ABOVE_ZERO,
            f"foreground minus background targeted success, {k} px",
            est,
            paper,
            [
                Quantity(
                    f"{self.title} {r} {k}px targeted success",
                    100.0 * float(o.targeted_success.mean()),
                    "%",
                    len(o.targeted_success),
                    o.source,
                )
                for r, o in ((FOREGROUND, fg), (BACKGROUND, bg))
            ],
            unit_cost=self._targeted_cost([fg, bg]),
        )

    def generations(self) -> None:
        k = min(self.pixels)
        fg, bg = self.out[(self.role, FOREGROUND, k)], self.out[(self.role, BACKGROUND, k)]
        both = self._fooled_in_both(fg, bg)
        claim = f"a {k}-pixel background attack needs more generations than a foreground one"
        if not both.any():
            self.book.not_tested(
                claim_id=f"P3.{self.role}",
                claim=f"{self.title}: {claim}",
                quote=QUOTE_GENERATIONS,
                section=SECTION_GENERATIONS,
                dataset=self.dataset,
                reason="no image was fooled in both regions",
                constraint="images",
            )
            return
        est = mean_difference_paired(bg.generations[both], fg.generations[both], self.alpha)
        paper_fg = self.paper_generations(self.role, FOREGROUND, k)
        paper_bg = self.paper_generations(self.role, BACKGROUND, k)
        paper = None if paper_fg is None or paper_bg is None else round(paper_bg - paper_fg, 2)
        self._claim(
            "P3",
            claim,
            QUOTE_GENERATIONS,
            SECTION_GENERATIONS,
            "holds when the interval of background - "
            "foreground generations, on the images fooled in both regions (paired bootstrap), lies above 0",
            ABOVE_ZERO,
            f"background minus foreground generations, {k} px",
            est,
            paper,
            self._generations(both, {FOREGROUND: fg, BACKGROUND: bg}, k),
            note="the paper averages over all images each region fooled; we pair the images fooled in both",
            unit="generations",
        )

    def confidence(self) -> None:
        k = min(self.pixels)
        margin = self.book.settings.confidence_margin
        parts = []
        whole = self.out[(self.role, ORIGINAL, k)]
        for region in (FOREGROUND, BACKGROUND):
            other = self.out[(self.role, region, k)]
            both = self._fooled_in_both(whole, other)
            claim = f"the {k}-pixel adversarial class's confidence on the {region} equals the whole image's"
            if not both.any():
                parts.append(
                    self.book.not_tested(
                        claim_id=f"P4.{region}.{self.role}",
                        claim=f"{self.title}: {claim}",
                        quote=QUOTE_CONFIDENCE,
                        section=SECTION,
                        dataset=self.dataset,
                        reason=f"no image was fooled on both the {region} and the whole image",
                        constraint="images",
                    )
                )
                continue
            est = mean_difference_paired(
                100.0 * other.confidence[both], 100.0 * whole.confidence[both], self.alpha
            )
            p_region = self.paper_value(self.role, "confidence_u", region, k)
            p_whole = self.paper_value(self.role, "confidence_u", ORIGINAL, k)
            paper = None if p_region is None or p_whole is None else round(p_region - p_whole, 2)
            parts.append(
                self._claim(
                    f"P4.{region}",
                    claim,
                    QUOTE_CONFIDENCE,
                    SECTION,
                    f"equivalence: holds when the interval of the "
                    f"difference lies within ±{margin:g} points (params claims.confidence_margin)",
                    within(margin),
                    f"{region} minus whole-image confidence, {k} px",
                    est,
                    paper,
                    [],
                    sources=[whole.source, other.source],
                )
            )
        self.book.composite(
            claim_id=f"P4.{self.role}",
            claim=f"{self.title}: confidence does not change with the region",
            quote=QUOTE_CONFIDENCE,
            section=SECTION,
            dataset=self.dataset,
            parts=parts,
        )
