"""How many jobs each kind of change plans, in each tool, on the committed reduced project.

For each change below, on a copy of the project's code (the working tree is not touched):
- **DVC** reruns the jobs whose command, job file or code digest changed; when their outputs
  come out byte-identical (a refactor, a speed setting) it stops there (content cut-off).
- **Snakemake** reruns the same jobs and everything downstream of them, whatever their outputs
  (it compares timestamps, with no content cut-off).
Both come from the plan (workflow.plan: ``fingerprints``, ``downstream``), the functions both
tools' agreement tests hold to (tests/test_dag_agreement.py, tests/test_reruns.py).

    uv run python bench/rerun_sets.py                      # this tree
    uv run python bench/rerun_sets.py --root <worktree>    # another commit, same changes

It uses only API the plan has had since the job files (``Plan``, ``fingerprints``,
``downstream``), so an older commit's worktree can be measured with this script.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def _scale_de_batch(raw: dict[str, Any]) -> None:
    forward = raw["evaluation"]["de_forward"]["cpu"]
    forward["batch"] = 2 * forward["batch"]


def _first_pgd_eps(raw: dict[str, Any]) -> str:
    name = next(n for n, a in raw["attacks"].items() if a["kind"] == "pgd" and n.startswith("lat_background"))
    raw["attacks"][name]["eps"] = 0.25
    return name


CodeEdit = Callable[[Path], None]
ParamsEdit = Callable[[dict[str, Any]], Any]

CHANGES: list[tuple[str, ParamsEdit | None, CodeEdit | None]] = [
    ("`evaluation.de_forward.cpu.batch` doubled", _scale_de_batch, None),
    (
        "a comment appended to stages/data/builders.py",
        None,
        lambda r: _append(r / "stages/data/builders.py", "\n# note\n"),
    ),
    (
        "a comment appended to stages/models/vgg.py",
        None,
        lambda r: _append(r / "stages/models/vgg.py", "\n# note\n"),
    ),
    (
        "a statement appended to stages/data/coco_ic.py",
        None,
        lambda r: _append(r / "stages/data/coco_ic.py", "\n_EDITED = 1\n"),
    ),
    (
        "a statement appended to stages/models/vgg.py",
        None,
        lambda r: _append(r / "stages/models/vgg.py", "\n_EDITED = 1\n"),
    ),
    (
        "a statement appended to stages/attacks/differential_evolution.py",
        None,
        lambda r: _append(r / "stages/attacks/differential_evolution.py", "\n_EDITED = 1\n"),
    ),
    ("one LAT background attack's eps (0.3 -> 0.25)", _first_pgd_eps, None),
]


def measure(root: Path) -> list[dict[str, Any]]:
    sys.path.insert(0, str(root))
    from workflow.plan import Plan

    raw = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    before = Plan(copy.deepcopy(raw), scale="reduced")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, params_edit, code_edit in CHANGES:
            code = Path(tmp) / "code"
            shutil.rmtree(code, ignore_errors=True)
            shutil.copytree(root / "stages", code / "stages", ignore=shutil.ignore_patterns("__pycache__"))
            old = before.fingerprints(code)
            edited = copy.deepcopy(raw)
            if params_edit:
                params_edit(edited)
            if code_edit:
                code_edit(code)
            after = Plan(edited, scale="reduced")
            new = after.fingerprints(code)
            changed = {name for name in new if old.get(name) != new[name]}
            snakemake = after.downstream(changed)
            rules = Counter(after.by_name[n].rule for n in changed)
            rows.append(
                {
                    "change": label,
                    "dvc_jobs": len(changed),
                    "snakemake_jobs": len(snakemake),
                    "dvc_rules": dict(sorted(rules.items())),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    rows = measure(args.root.resolve())
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print("| change | DVC reruns (outputs identical) | Snakemake reruns | DVC's jobs by rule |")
    print("|---|---:|---:|---|")
    for row in rows:
        rules = ", ".join(f"{rule} {n}" for rule, n in row["dvc_rules"].items()) or "none"
        print(f"| {row['change']} | {row['dvc_jobs']} | {row['snakemake_jobs']} | {rules} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
