"""Wang et al.'s own numbers, keyed by our params roles and regions: Table I's accuracy, Table
II's success rates and confidences (CIFAR-10, %) and Table IV's mean generations (1 pixel), with
the drops the text quotes (§IV-C). The pixel-space table, markdown and claims read them here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stages.claims.pixel_space_base import BACKGROUND, FOREGROUND, ORIGINAL


@dataclass(frozen=True)
class PaperModel:
    """One of the paper's CIFAR-10 models: Table I's accuracy, Table II's metrics (in %) at
    PAPER_PIXELS pixels per region, Table IV's mean generations at PAPER_GENERATION_PIXELS."""

    accuracy: float
    table_ii: Mapping[str, Mapping[str, tuple[float, float, float]]]  # metric -> region -> per pixels
    generations: Mapping[str, float]  # region -> mean generations to success


PAPER_PIXELS = (1, 3, 5)
PAPER_GENERATION_PIXELS = 1
PAPER_IMAGES = 500  # the paper's random CIFAR-10 test images per model (§IV-B)
# Wang et al., Table I (test accuracy %), Table II (CIFAR-10, %) and Table IV (mean generations,
# 1 pixel), keyed by our params roles and regions.
PAPER: dict[str, PaperModel] = {
    "allconv": PaperModel(
        accuracy=85.71,
        table_ii={
            "untargeted1": {
                ORIGINAL: (12.80, 47.00, 51.20),
                FOREGROUND: (11.80, 40.20, 41.20),
                BACKGROUND: (6.20, 19.40, 20.60),
            },
            "confidence_u": {
                ORIGINAL: (74.01, 70.12, 75.35),
                FOREGROUND: (71.38, 72.75, 77.13),
                BACKGROUND: (74.71, 72.32, 80.09),
            },
            "untargeted2": {
                ORIGINAL: (12.60, 48.20, 55.00),
                FOREGROUND: (11.80, 43.60, 45.80),
                BACKGROUND: (6.60, 22.20, 24.00),
            },
            "targeted": {
                ORIGINAL: (2.93, 13.11, 16.84),
                FOREGROUND: (2.91, 11.42, 13.27),
                BACKGROUND: (1.78, 5.51, 6.84),
            },
            "confidence_t": {
                ORIGINAL: (67.51, 61.75, 65.99),
                FOREGROUND: (66.72, 64.05, 68.58),
                BACKGROUND: (68.09, 66.51, 72.07),
            },
        },
        generations={ORIGINAL: 1.63, FOREGROUND: 1.77, BACKGROUND: 3.03},
    ),
    "nin": PaperModel(
        accuracy=86.55,
        table_ii={
            "untargeted1": {
                ORIGINAL: (21.00, 67.80, 75.40),
                FOREGROUND: (19.20, 59.80, 60.00),
                BACKGROUND: (9.80, 35.60, 35.20),
            },
            "confidence_u": {
                ORIGINAL: (66.40, 63.77, 66.23),
                FOREGROUND: (63.67, 64.25, 69.29),
                BACKGROUND: (64.14, 64.65, 70.14),
            },
            "untargeted2": {
                ORIGINAL: (21.00, 69.60, 76.80),
                FOREGROUND: (19.40, 64.00, 69.20),
                BACKGROUND: (11.40, 40.80, 45.00),
            },
            "targeted": {
                ORIGINAL: (5.91, 30.62, 38.56),
                FOREGROUND: (5.56, 25.07, 28.49),
                BACKGROUND: (2.71, 13.84, 16.07),
            },
            "confidence_t": {
                ORIGINAL: (59.50, 53.41, 54.40),
                FOREGROUND: (59.57, 54.71, 57.72),
                BACKGROUND: (59.79, 56.41, 60.70),
            },
        },
        generations={ORIGINAL: 1.36, FOREGROUND: 1.48, BACKGROUND: 2.45},
    ),
    "vgg16": PaperModel(
        accuracy=85.65,
        table_ii={
            "untargeted1": {
                ORIGINAL: (43.40, 88.40, 92.00),
                FOREGROUND: (41.60, 79.60, 79.00),
                BACKGROUND: (18.20, 51.40, 48.20),
            },
            "confidence_u": {
                ORIGINAL: (70.06, 69.98, 73.80),
                FOREGROUND: (70.00, 71.62, 74.82),
                BACKGROUND: (67.52, 68.36, 72.40),
            },
            "untargeted2": {
                ORIGINAL: (44.60, 90.80, 93.20),
                FOREGROUND: (42.80, 87.00, 90.60),
                BACKGROUND: (20.20, 61.60, 66.80),
            },
            "targeted": {
                ORIGINAL: (22.78, 68.13, 70.80),
                FOREGROUND: (22.33, 61.24, 60.64),
                BACKGROUND: (8.82, 35.04, 36.80),
            },
            "confidence_t": {
                ORIGINAL: (59.38, 51.55, 53.66),
                FOREGROUND: (59.94, 53.39, 57.85),
                BACKGROUND: (58.40, 54.54, 59.26),
            },
        },
        generations={ORIGINAL: 1.45, FOREGROUND: 1.69, BACKGROUND: 4.70},
    ),
}
# §IV-C: the average relative drop of the 1-pixel success rate from the whole image to the
# foreground / background over the three models, in % (the text quotes these, Table II gives them).
PAPER_QUOTED_DROPS = {
    "untargeted1": {FOREGROUND: 6.84, BACKGROUND: 54.32},
    "targeted": {FOREGROUND: 2.86, BACKGROUND: 51.56},
}


def paper_value(role: str, metric: str, region: str, pixels: int) -> float | None:
    paper = PAPER.get(role)
    if paper is None or pixels not in PAPER_PIXELS:
        return None
    values = paper.table_ii.get(metric, {}).get(region)
    return None if values is None else values[PAPER_PIXELS.index(pixels)]


def paper_generations(role: str, region: str, pixels: int) -> float | None:
    paper = PAPER.get(role)
    if paper is None or pixels != PAPER_GENERATION_PIXELS:
        return None
    return paper.generations.get(region)
