"""The source code each stage runs: its entry module and the library packages it uses.

Both tools read this list through the plan (workflow/plan.py): Snakemake hashes a rule's paths
into its `code` param; for DVC, the plan's `plan` stage depends on every path once and writes
each rule's digest to workflow/jobs/<scale>/code/<rule>.txt, a dep of the rule's stages. So a
code change reruns exactly the stages that run that code, with the same result in both tools.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

COMMON = ["stages/config", "stages/utils"]
STAGE_CODE: dict[str, list[str]] = {
    "fetch_raw": ["stages/fetch_raw.py", "stages/data/fetch.py", "stages/data/sources.py"],
    "prepare": [
        "stages/prepare.py",
        "stages/data",
        "stages/masks",
        "stages/report/grids.py",
    ],
    "train": [
        "stages/train.py",
        "stages/training",
        "stages/models",
        "stages/attacks",
        "stages/saliency",
        "stages/masks/regions.py",
        "stages/data/processed.py",
    ],
    "evaluate": [
        "stages/evaluate.py",
        "stages/evaluation",
        "stages/models",
        "stages/attacks",
        "stages/saliency",
        "stages/masks/regions.py",
        "stages/data/processed.py",
    ],
    "lat_table": [
        "stages/lat_table.py",
        "stages/report/lat_table.py",
        "stages/report/markdown.py",
        "stages/claims",
    ],
    "attention_table": [
        "stages/attention_table.py",
        "stages/report/attention_table.py",
        "stages/report/markdown.py",
        "stages/claims",
    ],
    "dual_table": [
        "stages/dual_table.py",
        "stages/report/dual_table.py",
        "stages/report/markdown.py",
        "stages/claims",
    ],
    "dual_gradients": [
        "stages/dual_gradients.py",
        "stages/report/gradients.py",
        "stages/models",
        "stages/data/processed.py",
    ],
    "pixel_table": [
        "stages/pixel_table.py",
        "stages/report/pixel_table.py",
        "stages/report/pixel_paper.py",
        "stages/report/pixel_markdown.py",
        "stages/report/pixel_figures.py",
        "stages/report/pixel_report.py",
        "stages/report/markdown.py",
        "stages/claims",
    ],
    "grabcut_vs_ground_truth": [
        "stages/grabcut_vs_ground_truth.py",
        "stages/masks/grabcut.py",
        "stages/data/cifar_grabcut.py",
        "stages/data/builders.py",
        "stages/data/processed.py",
    ],
    "salience_quality": [
        "stages/salience_quality.py",
        "stages/saliency",
        "stages/data/processed.py",
    ],
    "dataset_table": [
        "stages/dataset_table.py",
        "stages/report/dataset_table.py",
        "stages/report/markdown.py",
    ],
    # The matrix is derived from params (which pairs fit): the checks' modules are code too.
    "matrix_table": [
        "stages/matrix_table.py",
        "stages/report/matrix_table.py",
        "stages/claims/evals.py",
        "stages/report/markdown.py",
        "stages/masks/regions.py",
        "stages/data/builders.py",
        "stages/models/registry.py",
    ],
    "build_report": [
        "stages/build_report.py",
        "stages/report/full_report.py",
        "stages/report/benchmarks.py",  # the run-time summary of its provenance section
        "stages/claims",
    ],
}

# Snakemake's evaluate_matrix is the evaluate rule writing to results/matrix/.
STAGE_CODE["evaluate_matrix"] = STAGE_CODE["evaluate"]


def code_paths(stage: str) -> list[str]:
    return STAGE_CODE[stage] + COMMON


def code_digest(stage: str, root: str | Path = ".") -> str:
    """sha256 over the stage's Python sources (path and content), in a stable order."""
    root = Path(root)
    files: list[Path] = []
    for rel in code_paths(stage):
        path = root / rel
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]
