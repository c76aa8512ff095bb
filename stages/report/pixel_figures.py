"""The pixel-space report's figures, redrawn from our evaluations: targets reached (Fig. 3), the
untargeted and targeted (source, adversarial class) heatmaps (Figs. 4-5), the fitness curves
(Fig. 6) and success by region for each search (ours)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from stages.claims.pixel_space_base import BACKGROUND, FOREGROUND, ORIGINAL  # noqa: E402
from stages.report.pixel_table import (  # noqa: E402
    PERCENT,
    PixelTable,
    carry_forward,
    column_title,
    counts_text,
    fitness_curves,
    fitness_selection,
    is_number,
    mean_fitness,
    ours_lookup,
    pair_counts,
    region_title,
    role_title,
    targeted_pairs,
    untargeted_pairs,
)
from stages.utils.io import atomic_path  # noqa: E402

# Figures.
FIGURE_DPI = 100
PANEL_INCHES = (4.2, 3.2)
HEATMAP_INCHES = (3.4, 3.2)
REGION_COLORS = {ORIGINAL: "tab:blue", FOREGROUND: "tab:orange", BACKGROUND: "tab:green"}
SEARCH_HATCHES = ("", "//", "..", "xx")  # the main columns' search plain, each compared one hatched
FALLBACK_COLORS = ("tab:red", "tab:purple", "tab:brown", "tab:pink")
BAR_GROUP_WIDTH = 0.85
PIXEL_ALPHA_RANGE = (1.0, 0.4)  # the fewest pixels darkest, so one region's bars read as one family
CURVE_ALPHA = 0.12  # one image's fitness curve: faint, as in the paper's Fig. 6
CURVE_WIDTH = 0.6
MEAN_WIDTH = 2.0
HEATMAP_FONT = 5
HEATMAP_DARK = 0.5  # cells darker than half the scale take white counts
FITNESS_LIMITS = (0.0, 1.0)


# --- figures -----------------------------------------------------------------------------------

TARGETS_FIGURE = "targets_reached.png"
UNTARGETED_FIGURE = "untargeted_heatmap.png"
TARGETED_FIGURE = "targeted_heatmap.png"
FITNESS_FIGURE = "fitness.png"
SEARCH_FIGURE = "search_comparison.png"
FIGURE_CAPTIONS = {
    TARGETS_FIGURE: "Fig. 3, % of targeted images that reached 0, 1, … target classes",
    UNTARGETED_FIGURE: "Fig. 4, successful untargeted attacks per (attacked y, adversarial) class, fewest px",
    TARGETED_FIGURE: "Fig. 5, successful targeted attacks per (source, target) class, fewest pixels",
    FITNESS_FIGURE: "Fig. 6, mean fitness (attacked class's probability) over generations, fewest pixels",
    SEARCH_FIGURE: "ours: untargeted success (every attacked image) by region, each search and pixel count",
}


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        # No software version in the file: the same numbers give the same bytes.
        fig.savefig(tmp, format="png", dpi=FIGURE_DPI, metadata={"Software": None})
    plt.close(fig)


def save_no_data(path: Path, title: str) -> None:
    """A PNG that says there is nothing to draw: the DAG declares every figure as an output."""
    fig, ax = plt.subplots(figsize=PANEL_INCHES)
    ax.axis("off")
    ax.text(0.5, 0.5, f"{title}\n\nno data", ha="center", va="center", fontsize=10)
    _save(fig, path)


def _region_color(table: PixelTable, region: str) -> str:
    others = [r for r in table.regions if r not in REGION_COLORS]
    if region in REGION_COLORS:
        return REGION_COLORS[region]
    return FALLBACK_COLORS[others.index(region) % len(FALLBACK_COLORS)]


def _empty_panel(ax: Axes, title: str) -> None:
    ax.set_title(title, fontsize=8)
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _pixel_alpha(table: PixelTable, k: int) -> float:
    pixels = table.pixels
    if len(pixels) < 2:
        return PIXEL_ALPHA_RANGE[0]
    start, stop = PIXEL_ALPHA_RANGE
    return start + (stop - start) * pixels.index(k) / (len(pixels) - 1)


def save_targets_reached(path: Path, table: PixelTable) -> None:
    """Fig. 3: per model, grouped bars over the number of target classes reached, one bar per
    region x pixels with a targeted run, as % of that run's targeted images."""
    series = {
        role: [
            p for p in table.inputs if (table.attacks.get((role, p.region, p.pixels)) or {}).get("targeted")
        ]
        for role in table.roles
    }
    if not any(series.values()):
        save_no_data(path, f"Fig. 3: target classes reached ({table.dataset})")
        return
    fig, axes = plt.subplots(
        1, len(table.roles), figsize=(len(table.roles) * PANEL_INCHES[0], PANEL_INCHES[1]), squeeze=False
    )
    for ax, role in zip(axes.flat, table.roles, strict=True):
        runs = series[role]
        if not runs:
            _empty_panel(ax, role_title(role))
            continue
        width = BAR_GROUP_WIDTH / len(runs)
        for i, p in enumerate(runs):
            targeted = table.attacks[(role, p.region, p.pixels)]["targeted"]
            reached = np.asarray(targeted["targets_reached"], dtype=float)
            share = PERCENT * reached / max(int(targeted["images"]), 1)
            x = np.arange(len(reached)) - BAR_GROUP_WIDTH / 2 + (i + 0.5) * width
            ax.bar(
                x,
                share,
                width=width,
                color=_region_color(table, p.region),
                alpha=_pixel_alpha(table, p.pixels),
                label=column_title(p.region, p.pixels),
            )
        images = counts_text([table.attacks[(role, p.region, p.pixels)]["targeted"]["images"] for p in runs])
        ax.set_title(f"{role_title(role)} ({images} targeted images)", fontsize=9)
        ax.set_xlabel("target classes reached", fontsize=8)
        ax.set_ylabel("% of images", fontsize=8)
        ax.set_xticks(range(_num_classes(table)))
        ax.legend(fontsize=5, ncol=len(table.pixels) or 1)
    fig.suptitle(f"Fig. 3: target classes reached ({table.dataset})", fontsize=10)
    _save(fig, path)


def _num_classes(table: PixelTable) -> int:
    return max((int(b["num_classes"]) for b in table.attacks.values()), default=0)


def save_heatmaps(
    path: Path, table: PixelTable, pairs_of: Callable[[Mapping[str, Any]], list[tuple[int, int]]], title: str
) -> None:
    """Figs. 4-5: a grid (rows: models, columns: regions) of class-pair success counts for the
    fewest pixels, each cell annotated with its count."""
    num_classes = _num_classes(table)
    k = min(table.pixels) if table.pixels else None
    if k is None or num_classes == 0:
        save_no_data(path, title)
        return
    counts = {
        (role, region): pair_counts(pairs_of(table.attacks[(role, region, k)]), num_classes)
        for role in table.roles
        for region in table.regions
        if (role, region, k) in table.attacks
    }
    if not any(c.sum() for c in counts.values()):
        save_no_data(path, f"{title}, {k} pixel(s)")
        return
    vmax = max(int(c.max()) for c in counts.values())
    rows, columns = len(table.roles), len(table.regions)
    fig, axes = plt.subplots(
        rows, columns, figsize=(columns * HEATMAP_INCHES[0], rows * HEATMAP_INCHES[1]), squeeze=False
    )
    for r, role in enumerate(table.roles):
        for c, region in enumerate(table.regions):
            ax = axes[r, c]
            panel = f"{role_title(role)}, {region_title(region)}"
            if (role, region) not in counts:
                _empty_panel(ax, panel)
                continue
            matrix = counts[(role, region)]
            # One colour scale for the whole figure: the regions are compared with each other.
            ax.imshow(matrix, cmap="Reds", vmin=0, vmax=vmax)
            for (i, j), value in np.ndenumerate(matrix):
                if value:
                    color = "white" if value > vmax * HEATMAP_DARK else "black"
                    ax.text(j, i, str(value), ha="center", va="center", fontsize=HEATMAP_FONT, color=color)
            ax.set_title(f"{panel} ({matrix.sum()})", fontsize=8)
            ax.set_xticks(range(num_classes))
            ax.set_yticks(range(num_classes))
            ax.tick_params(labelsize=HEATMAP_FONT)
            ax.set_xlabel("adversarial / target class", fontsize=7)
            ax.set_ylabel("attacked class y", fontsize=7)
    fig.suptitle(f"{title}, {k} pixel(s) ({table.dataset})", fontsize=10)
    _save(fig, path)


def save_fitness(path: Path, table: PixelTable) -> None:
    """Fig. 6: per model, the mean fitness over generations for each region at the fewest pixels,
    over the same images in every region (with each image's curve drawn faintly)."""
    title = "Fig. 6: fitness over generations"
    k = min(table.pixels) if table.pixels else None
    panels = {
        role: {r: table.attacks[(role, r, k)] for r in table.regions if (role, r, k) in table.attacks}
        for role in table.roles
    }
    if k is None or not any(panels.values()):
        save_no_data(path, title)
        return
    fig, axes = plt.subplots(
        1, len(table.roles), figsize=(len(table.roles) * PANEL_INCHES[0], PANEL_INCHES[1]), squeeze=False
    )
    for ax, role in zip(axes.flat, table.roles, strict=True):
        blocks = panels[role]
        indices, paper_choice = fitness_selection(blocks, table.fitness_images)
        if not indices:
            _empty_panel(ax, role_title(role))
            continue
        curves = {region: fitness_curves(block, indices) for region, block in blocks.items()}
        length = max((len(c) for region_curves in curves.values() for c in region_curves), default=0)
        for region, region_curves in curves.items():
            color = _region_color(table, region)
            for curve in region_curves:
                ax.plot(carry_forward(curve, length), color=color, alpha=CURVE_ALPHA, linewidth=CURVE_WIDTH)
            ax.plot(
                mean_fitness(region_curves, length),
                color=color,
                linewidth=MEAN_WIDTH,
                label=f"{region_title(region)} mean",
            )
        which = (
            f"{len(indices)} images fooled in every region"
            if paper_choice
            else f"none fooled in every region: all {len(indices)} attacked images"
        )
        ax.set_title(f"{role_title(role)}: {which}", fontsize=8)
        ax.set_xlabel("generation", fontsize=8)
        ax.set_ylabel("probability of the attacked class y", fontsize=8)
        ax.set_ylim(*FITNESS_LIMITS)
        ax.legend(fontsize=6)
    fig.suptitle(f"{title}, {k} pixel(s) ({table.dataset})", fontsize=10)
    _save(fig, path)


def search_bars(table: PixelTable, role: str) -> list[tuple[str, str, str, list[float | None]]]:
    """The bars of one model's panel in the search figure: (region, search, label, success % per
    pixel count) for the whole image (every search), then each region under each search."""
    main = ours_lookup(table, "untargeted1")
    bars = [
        (ORIGINAL, table.main_search, region_title(ORIGINAL), [main(role, ORIGINAL, k) for k in table.pixels])
    ]
    for region in (FOREGROUND, BACKGROUND):
        bars.append(
            (
                region,
                table.main_search,
                f"{region_title(region)} ({table.main_search})",
                [main(role, region, k) for k in table.pixels],
            )
        )
        for search in table.searches:
            rows = table.comparison[
                (table.comparison["spec_set"] == f"searches.{search}")
                & (table.comparison["role"] == role)
                & (table.comparison["region"] == region)
            ].set_index("pixels")["untargeted1"]
            values = [
                float(rows[k]) if k in rows.index and is_number(rows[k]) else None for k in table.pixels
            ]
            bars.append((region, search, f"{region_title(region)} ({search})", values))
    return bars


def save_search_comparison(path: Path, table: PixelTable) -> None:
    """Ours: per model, untargeted success over every attacked image, grouped by pixel count,
    a bar per region and search (the main columns' search plain, each compared search hatched)."""
    title = "Success by region for each search (ours)"
    if not table.searches or not table.pixels:
        save_no_data(path, title)
        return
    panels = {role: search_bars(table, role) for role in table.roles}
    if not any(v is not None for bars in panels.values() for *_, values in bars for v in values):
        save_no_data(path, title)
        return
    fig, axes = plt.subplots(
        1, len(table.roles), figsize=(len(table.roles) * PANEL_INCHES[0], PANEL_INCHES[1]), squeeze=False
    )
    hatches = {s: SEARCH_HATCHES[(i + 1) % len(SEARCH_HATCHES)] for i, s in enumerate(table.searches)}
    for ax, role in zip(axes.flat, table.roles, strict=True):
        bars = panels[role]
        width = BAR_GROUP_WIDTH / len(bars)
        for i, (region, search, label, values) in enumerate(bars):
            x = np.arange(len(table.pixels)) - BAR_GROUP_WIDTH / 2 + (i + 0.5) * width
            heights = [np.nan if v is None else v for v in values]
            ax.bar(
                x,
                heights,
                width=width,
                color=_region_color(table, region),
                hatch=hatches.get(search, SEARCH_HATCHES[0]),
                edgecolor="black",
                linewidth=0.3,
                label=label,
            )
        ax.set_title(role_title(role), fontsize=9)
        ax.set_xticks(range(len(table.pixels)), [f"{k} px" for k in table.pixels])
        ax.set_ylabel("untargeted success % (every attacked image)", fontsize=7)
        ax.set_ylim(0, PERCENT)
        ax.legend(fontsize=5)
    fig.suptitle(f"{title} ({table.dataset})", fontsize=10)
    _save(fig, path)


def save_figures(table: PixelTable, figures_dir: Path) -> list[Path]:
    figures_dir.mkdir(parents=True, exist_ok=True)
    paths = [figures_dir / name for name in FIGURE_CAPTIONS]
    save_targets_reached(paths[0], table)
    save_heatmaps(paths[1], table, untargeted_pairs, "Fig. 4: untargeted successes")
    save_heatmaps(paths[2], table, targeted_pairs, "Fig. 5: targeted successes")
    save_fitness(paths[3], table)
    save_search_comparison(paths[4], table)
    return paths
