"""Carry dvc.lock over a change of the generated files that changes no job's work.

When the plan changes how it *records* what a job depends on (the move from a hand-kept list of
code paths per rule to code digests computed per job, workflow/code_deps.py; job files that no
longer hold keys a job never reads), every stage's recorded deps differ from the new ones and
`dvc repro` would rerun the whole DAG, although no job would compute anything different. This
rewrites, for each stage of ``dvc.lock`` at the current scale, the deps on generated files
(``workflow/jobs/<scale>/...``) from what they were at ``--base`` to what the plan writes now,
and only where that is sound:

- the stage's lock entry was current at ``--base`` (its recorded md5 of the old code file and
  job file equal those files at that commit): the outputs were made by that code and params;
- its job file, if changed, differs only by keys listed in ``--dropped`` (keys the job never
  read; tests/test_plan.py checks each job file is exactly what its stage reads);
- its code changed only in ways the caller vouches compute the same (moves and splits of
  modules, no changed computation): the caller's claim, recorded in docs/reproduction.md with
  the tests that back it.

Any other stage keeps its old entry and so reruns. Prints what it did per kind of stage.

    uv run python -m workflow.migrate_lock --base 270a5b8 --dropped evaluation.de_forward
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from workflow.plan import DVC_YAML, Plan, dvc_stage_name, generated_files, job_code

LOCK = Path("dvc.lock")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _at(base: str, path: str, root: Path) -> str | None:
    proc = subprocess.run(["git", "show", f"{base}:{path}"], cwd=root, capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else None


def _without(tree: dict[str, Any], dotted: str) -> dict[str, Any]:
    *parents, last = dotted.split(".")
    node = tree
    for part in parents:
        if not isinstance(node.get(part), dict):
            return tree
        node = node[part]
    node.pop(last, None)
    return tree


def _same_but_dropped(old: str, new: str, dropped: list[str]) -> bool:
    before, after = json.loads(old), json.loads(new)
    for key in dropped:
        _without(before["params"], key)
        _without(after["params"], key)
    return before == after


def migrate(root: Path, base: str, dropped: list[str]) -> Counter[str]:
    plan = Plan.load(root / "params.yaml")
    files = generated_files(plan, root)
    code = job_code(plan, root)
    lock = yaml.safe_load((root / LOCK).read_text())
    outcome: Counter[str] = Counter()
    prefix = f"workflow/jobs/{plan.scale}/"
    for job in plan.jobs:
        entry = lock["stages"].get(dvc_stage_name(plan.scale, job.name))
        if entry is None:
            outcome["not in dvc.lock"] += 1
            continue
        deps = entry["deps"]
        generated = [d for d in deps if d["path"].startswith(prefix)]
        current_at_base = all(
            (text := _at(base, d["path"], root)) is not None and _md5(text) == d["md5"] for d in generated
        )
        if not current_at_base:
            outcome[f"{job.rule}: kept (not current at {base})"] += 1
            continue
        if job.params_file:
            old = _at(base, job.params_file, root)
            if old is None or not _same_but_dropped(old, files[job.params_file], dropped):
                outcome[f"{job.rule}: kept (job file changed by more than {dropped})"] += 1
                continue
        kept = [d for d in deps if not d["path"].startswith(prefix)]
        new_paths = [code[job.name].file, *([job.params_file] if job.params_file else [])]
        fresh = [
            {"path": p, "hash": "md5", "md5": _md5(files[p]), "size": len(files[p].encode())}
            for p in new_paths
        ]
        entry["deps"] = sorted([*kept, *fresh], key=lambda d: d["path"])
        outcome[f"{job.rule}: carried over"] += 1
    text = yaml.dump(lock, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False, width=80)
    (root / LOCK).write_text(text)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=".", type=Path)
    parser.add_argument("--base", required=True, help="the commit whose generated files dvc.lock records")
    parser.add_argument("--dropped", nargs="*", default=[], help="dotted keys job files no longer hold")
    args = parser.parse_args(argv)
    if not (args.root / DVC_YAML).is_file():
        print(f"{args.root / DVC_YAML}: not found; run from the project folder", file=sys.stderr)
        return 2
    for what, n in sorted(migrate(args.root, args.base, args.dropped).items()):
        print(f"{n:5d}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
