"""Check the committed results by re-running part of the DAG in a scratch copy of the project.

Trained weights are not in git, so a reader verifies the committed numbers by re-running the
evaluation jobs that made them (and the models and data they need)::

    uv run python -m workflow.verify --paper lat              # the LAT table's evaluations + claims
    uv run python -m workflow.verify --sample 5 --seed 0      # 5 committed evaluations, drawn with seed 0
    uv run python -m workflow.verify --paper lat --dry-run    # the targets and the command only

The checkout's own results are never touched: its tracked files, less the pipeline's outputs,
are copied to ``<workdir>/repo``; params.yaml's ``raw.mirror`` (a path relative to the project)
is made reachable from the copy by a symlink at the same relative place; Snakemake runs in the
copy; every rerun number is then compared with the committed one (the JSON records, never the
markdown).

Tolerances. On the same machine, torch build and thread count the pipeline is deterministic, so
the numbers are expected to be identical. On another machine or thread count, floats are summed
in another order, the trained weights differ in their last bits and SGD amplifies that: a
retrained model behaves like another draw of the same training. Hence:

- a proportion p (accuracy, success rate) measured on n images: |difference| <= z sqrt(2 p (1 - p) / n),
  the difference of two independent proportions at z standard errors (``--z``, default 3),
  and at least 1/n (one image);
- a sample size (images evaluated, attacked, pairs): equal;
- a claim's outcome: equal; its effect, where it is a rate or a difference of rates (in % or
  points) whose rates carry their n: the same rule, the rates' variances summed (x100 for the
  unit); any other effect: ``--effect-tolerance`` (default 0.05, x100 for effects in % or points);
- other numbers (loss, perturbation sizes, foreground scores, queries) and the trained models'
  final training accuracy and loss: informational, within ``--relative-tolerance`` (default 0.1)
  of the committed value; they never set the exit code.

Each row is ``identical``, ``within`` or ``OUTSIDE``. Exit codes: 0 nothing OUTSIDE, 1 something
OUTSIDE or the re-run failed, 2 bad input (an option, a missing committed file or mirror).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages.utils.errors import BackdropError, ConfigError, DataError
from workflow.plan import BENCHMARKS_DIR, CLAIM_PAPERS, LOGS_DIR, Plan

if TYPE_CHECKING:
    from stages.claims.record import ClaimRecord, ClaimsFile

PROFILE = "workflow/profiles/default"
# The pipeline's outputs: never copied, so that the copy builds its targets afresh.
OUTPUT_FOLDERS = ("results", "data", LOGS_DIR.as_posix(), BENCHMARKS_DIR.as_posix())
IDENTICAL, WITHIN, OUTSIDE = "identical", "within", "OUTSIDE"
BAD_INPUT = 2

# Fields of an evaluation record (dotted paths): proportions and the field holding their n,
# sample sizes (must be equal), and settings (not results; skipped). Any other number is
# informational.
RATES = {
    "accuracy": "samples",
    "pixel_attack.natural_accuracy": "samples",
    "pixel_attack.untargeted.success_rate": "pixel_attack.attacked",
    "pixel_attack.untargeted.correct_success_rate": "pixel_attack.untargeted.correct_images",
    "pixel_attack.targeted.success_rate": "pixel_attack.targeted.pairs",
    "pixel_attack.targeted.untargeted_success_rate": "pixel_attack.targeted.images",
}
SIZES = frozenset(
    {"samples", "pixel_attack.attacked", "pixel_attack.targeted.images", "pixel_attack.targeted.pairs"}
)
SETTINGS = frozenset(
    {
        "restarts",
        "pixel_attack.pixels",
        "pixel_attack.population",
        "pixel_attack.max_generations",
        "pixel_attack.num_classes",
    }
)
MODEL_FIELDS = ("final_train_accuracy", "final_train_loss")


@dataclass(frozen=True)
class Tolerances:
    z: float = 3.0
    effect: float = 0.05
    relative: float = 0.1


@dataclass(frozen=True)
class Selection:
    """What one verification re-runs and compares (paths relative to the project)."""

    scale: str
    evals: tuple[str, ...]
    models: tuple[str, ...]  # the models' metrics.json
    claims: tuple[str, ...] = ()

    @property
    def targets(self) -> list[str]:
        return [*self.evals, *self.claims]


@dataclass(frozen=True)
class Row:
    kind: str  # evaluation, claim, model
    item: str  # the file (and claim id)
    field: str
    committed: Any
    rerun: Any
    tolerance: float | None
    status: str
    informational: bool = False

    @property
    def difference(self) -> float | None:
        if _number(self.committed) and _number(self.rerun):
            return abs(self.rerun - self.committed)
        return None


# -- selection ---------------------------------------------------------------------------------
def _models_of(plan: Plan, evals: list[str]) -> tuple[str, ...]:
    producers = plan.producers()
    weights = dict.fromkeys(w for e in evals for w in producers[e].inputs["weights"])
    return tuple(producers[w].outputs["metrics"] for w in weights)


def select_paper(plan: Plan, papers: list[str]) -> Selection:
    """Every evaluation the papers' table jobs read, and their claim records."""
    evals: list[str] = []
    claims: list[str] = []
    producers = plan.producers()
    for paper in dict.fromkeys(papers):
        record = f"{plan.results}/claims/{paper}.json"
        table = producers.get(record)
        if table is None:
            raise ConfigError(f"--paper {paper}: no table job writes {record}; choose from {CLAIM_PAPERS}")
        evals += [p for p in table.inputs["evals"] if producers[p].rule == "evaluate"]
        claims.append(record)
    evals = list(dict.fromkeys(evals))
    return Selection(plan.scale, tuple(evals), _models_of(plan, evals), tuple(claims))


def select_sample(plan: Plan, root: Path, n: int, seed: int) -> Selection:
    """``n`` evaluation jobs drawn with ``seed`` from those whose record is committed."""
    candidates = sorted(j.outputs["metrics"] for j in plan.jobs_of("evaluate"))
    committed = [p for p in candidates if (root / p).is_file()]
    if not 1 <= n <= len(committed):
        raise ConfigError(
            f"--sample {n}: choose between 1 and {len(committed)}, the evaluations of scale "
            f"{plan.scale!r} with a committed record under {root / plan.results}/evals"
        )
    evals = sorted(random.Random(seed).sample(committed, n))
    return Selection(plan.scale, tuple(evals), _models_of(plan, evals))


def check_committed(root: Path, selection: Selection) -> None:
    missing = [
        p for p in (*selection.evals, *selection.models, *selection.claims) if not (root / p).is_file()
    ]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataError(
            f"{len(missing)} committed file(s) missing in {root}: {shown}; nothing to compare with. "
            f"Check out the commit whose results you verify, pick another --paper or --scale, or use --sample"
        )


# -- workspace ---------------------------------------------------------------------------------
def mirror_path(root: Path, setting: str) -> Path | None:
    """The raw-data mirror params.yaml's ``raw.mirror`` names (relative to ``root``); None for
    none. A mirror that is not there is an error naming the key and the path."""
    if not setting:
        return None
    path = (root / setting).resolve()
    if not path.is_dir():
        raise DataError(
            f"raw.mirror: {setting!r} (resolved against {root}: {path}) is not there; the re-run reads "
            f"its raw data from it: put the mirror there or set raw.mirror in params.yaml"
        )
    return path


def tracked_files(root: Path) -> list[str]:
    """The project's tracked files (as in the working tree), less the pipeline's outputs."""
    proc = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ConfigError(f"{root}: `git ls-files` failed ({proc.stderr.strip()}); run from a git checkout")
    files = [f for f in proc.stdout.split("\0") if f]
    return [f for f in files if f.split("/", 1)[0] not in OUTPUT_FOLDERS and (root / f).is_file()]


def prepare_workspace(root: Path, workdir: Path, mirror_setting: str) -> Path:
    """``<workdir>/repo``: a copy of the project's tracked files, with the mirror linked at the
    same path relative to it as to ``root``. Returns the copy."""
    mirror = mirror_path(root, mirror_setting)  # before anything is written
    repo = workdir / "repo"
    for rel in tracked_files(root):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, repo / rel)
    if mirror is not None and not Path(mirror_setting).is_absolute():
        link = Path(os.path.normpath(repo / mirror_setting))
        if not link.is_relative_to(workdir):
            raise ConfigError(
                f"raw.mirror: {mirror_setting!r} leads outside the scratch folder {workdir} from its "
                f"copy; set raw.mirror to an absolute path (or one inside the parent folder)"
            )
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(mirror, target_is_directory=True)
    return repo


def snakemake_command(project: Path, selection: Selection, cores: int) -> list[str]:
    profile = ["--profile", PROFILE] if (project / PROFILE).is_dir() else []
    config = ["--config", f"scale={selection.scale}"]
    # The targets first: --config takes every word after it.
    return [sys.executable, "-m", "snakemake", *selection.targets, *profile, "--cores", str(cores), *config]


def run_logged(cmd: list[str], cwd: Path, log: Path) -> int:
    """Run ``cmd``, its output to the terminal and to ``log``; its exit status."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            fh.write(line)
        return proc.wait()


# -- comparison --------------------------------------------------------------------------------
def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def proportion_tolerance(p: float, n: int, z: float = 3.0) -> float:
    """z standard errors of the difference of two independent proportions p on n images,
    at least one image (1/n)."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    return max(z * math.sqrt(2 * p * (1 - p) / n), 1 / n)


def judge(committed: Any, rerun: Any, tolerance: float | None) -> str:
    if committed == rerun:
        return IDENTICAL
    if tolerance is not None and _number(committed) and _number(rerun):
        return WITHIN if abs(rerun - committed) <= tolerance * (1 + 1e-9) else OUTSIDE
    return OUTSIDE


def _row(
    kind: str, item: str, field: str, committed: Any, rerun: Any, tol: float | None, info: bool = False
) -> Row:
    return Row(kind, item, field, committed, rerun, tol, judge(committed, rerun, tol), info)


def _flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted paths of a record's scalar fields (lists left out)."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        elif not isinstance(value, list):
            flat[f"{prefix}{key}"] = value
    return flat


def compare_evaluation(
    item: str, committed: dict[str, Any], rerun: dict[str, Any], tol: Tolerances
) -> list[Row]:
    old, new = _flat(committed), _flat(rerun)
    fields = [k for k in dict.fromkeys([*old, *new]) if _number(old.get(k)) or _number(new.get(k))]
    rows = []
    for field in fields:
        if field in SETTINGS:
            continue
        value, n = old.get(field), old.get(RATES.get(field, ""))
        if field in SIZES:
            rows.append(_row("evaluation", item, field, value, new.get(field), 0.0))
        elif field in RATES:
            limit = proportion_tolerance(value, n, tol.z) if _number(value) and _number(n) and n > 0 else None
            rows.append(_row("evaluation", item, field, value, new.get(field), limit))
        else:
            limit = tol.relative * abs(value) if _number(value) else None
            rows.append(_row("evaluation", item, field, value, new.get(field), limit, info=True))
    return rows


def effect_tolerance(claim: ClaimRecord, tol: Tolerances) -> float:
    """How far a claim's re-run effect may move (see the module's docstring)."""
    effect = claim.effect
    scale = 100.0 if effect.unit in ("%", "points") else 1.0
    rates = [q for q in claim.quantities if q.unit == "%" and q.n]
    if scale == 100.0 and effect.n and rates and len(rates) == len(claim.quantities):
        variance = sum(2 * (q.value / 100) * (1 - q.value / 100) / q.n for q in rates)
        return 100 * max(tol.z * math.sqrt(variance), 1 / effect.n)
    return tol.effect * scale


def compare_claims(item: str, committed: ClaimsFile, rerun: ClaimsFile, tol: Tolerances) -> list[Row]:
    """Outcome and effect of every claim of two claims files, matched by claim id."""
    new = {c.claim_id: c for c in rerun.claims}
    rows = []
    for claim in committed.claims:
        where, again = f"{item}#{claim.claim_id}", new.pop(claim.claim_id, None)
        rows.append(_row("claim", where, "outcome", str(claim.outcome), again and str(again.outcome), None))
        if claim.effect is not None:
            value = again.effect.value if again is not None and again.effect is not None else None
            rows.append(
                _row("claim", where, "effect", claim.effect.value, value, effect_tolerance(claim, tol))
            )
    for claim_id, claim in new.items():
        rows.append(_row("claim", f"{item}#{claim_id}", "outcome", None, str(claim.outcome), None))
    return rows


def compare_model(item: str, committed: dict[str, Any], rerun: dict[str, Any], tol: Tolerances) -> list[Row]:
    rows = []
    for field in MODEL_FIELDS:
        value = committed.get(field)
        limit = tol.relative * abs(value) if _number(value) else None
        rows.append(_row("model", item, field, value, rerun.get(field), limit, info=True))
    return rows


def compare(root: Path, project: Path, selection: Selection, tol: Tolerances) -> list[Row]:
    """Every committed number of ``selection`` (under ``root``) against the re-run (``project``)."""
    import json

    from stages.claims.record import read_claims

    rows: list[Row] = []
    for kind, paths in (
        ("evaluation", selection.evals),
        ("model", selection.models),
        ("claim", selection.claims),
    ):
        for path in paths:
            if not (project / path).is_file():
                rows.append(_row(kind, path, "(file)", "committed", None, None))
            elif kind == "claim":
                rows += compare_claims(path, read_claims(root / path), read_claims(project / path), tol)
            else:
                old, new = (json.loads((base / path).read_text(encoding="utf-8")) for base in (root, project))
                rows += (compare_evaluation if kind == "evaluation" else compare_model)(path, old, new, tol)
    return rows


# -- rendering ---------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    from stages.report.markdown import MISSING

    if value is None:
        return MISSING
    return f"{value:.6g}" if _number(value) else str(value)


def render(rows: list[Row]) -> str:
    import pandas as pd

    from stages.report.markdown import text_table

    columns = ["kind", "job/file", "field", "committed", "rerun", "|difference|", "tolerance", "status"]
    cells = [
        [r.kind, r.item, r.field, *map(_cell, (r.committed, r.rerun, r.difference, r.tolerance))]
        + [r.status + (" (info)" if r.informational else "")]
        for r in rows
    ]
    return text_table(pd.DataFrame(cells, columns=columns), text_columns=3)


def counts(rows: list[Row]) -> dict[str, int]:
    gated = Counter(r.status for r in rows if not r.informational)
    return {status: gated[status] for status in (IDENTICAL, WITHIN, OUTSIDE)}


def summary(rows: list[Row]) -> str:
    info = Counter(r.status for r in rows if r.informational)
    gated = ", ".join(f"{n} {status}" for status, n in counts(rows).items())
    extra = ", ".join(f"{n} {status}" for status, n in info.items()) or "none"
    return f"verify: {gated} (informational rows, which set no exit code: {extra})"


def tolerance_text(tol: Tolerances) -> str:
    return (
        "Same machine, torch build and thread count: numbers should be identical. Elsewhere a retrained "
        f"model is another draw: a proportion p on n images may move z*sqrt(2p(1-p)/n) with z={tol.z:g} "
        f"(at least 1/n); sizes and claim outcomes must be equal; claim effects: the same rule over their "
        f"rates, else {tol.effect:g} (x100 in % or points); other numbers: {tol.relative:g} of the "
        "committed value, informational."
    )


# -- command line ------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m workflow.verify",
        description="Re-run part of the DAG in a scratch copy and compare with the committed results.",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--paper", action="append", choices=CLAIM_PAPERS, help="a paper's evaluations and claims"
    )
    what.add_argument("--sample", type=int, metavar="N", help="N committed evaluations drawn at random")
    parser.add_argument("--seed", type=int, default=0, help="the seed of --sample (default 0)")
    parser.add_argument("--scale", default=None, help="the scale to verify (default: params.yaml's)")
    parser.add_argument("--root", default=".", help="the checkout whose results are verified (default .)")
    parser.add_argument("--workdir", default=None, help="a new or empty scratch folder (default: a temp one)")
    parser.add_argument("--cores", type=int, default=2, help="Snakemake's --cores (default 2)")
    parser.add_argument("--out", default=None, help="write the comparison as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--dry-run", action="store_true", help="print the targets and the command only")
    parser.add_argument("--z", type=float, default=3.0, help="standard errors a proportion may move (3)")
    parser.add_argument("--effect-tolerance", type=float, default=0.05, help="other effects (0.05)")
    parser.add_argument("--relative-tolerance", type=float, default=0.1, help="informational numbers (0.1)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(args.root).resolve()
    tol = Tolerances(args.z, args.effect_tolerance, args.relative_tolerance)
    try:
        plan = Plan.load(root / "params.yaml", scale=args.scale)
        if args.paper:
            selection = select_paper(plan, args.paper)
        else:
            selection = select_sample(plan, root, args.sample, args.seed)
        check_committed(root, selection)
        mirror = str(plan.raw["raw"].get("mirror") or "")
        if args.dry_run:
            print("\n".join(["targets:", *selection.targets]))
            print("command (in <workdir>/repo):", " ".join(snakemake_command(root, selection, args.cores)))
            return 0
        mirror_path(root, mirror)
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="backdrop-verify-")).resolve()
        if workdir.exists() and any(workdir.iterdir()):
            raise ConfigError(f"--workdir {workdir}: not empty; name a new or empty folder")
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"workdir: {workdir}", flush=True)
        project = prepare_workspace(root, workdir, mirror)
    except BackdropError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT
    command = snakemake_command(project, selection, args.cores)
    log = workdir / "snakemake.log"
    print("running:", " ".join(command), flush=True)
    if run_logged(command, project, log) != 0:
        print(f"error: the re-run failed; its log: {log} (the scratch folder is kept)", file=sys.stderr)
        return 1
    try:
        rows = compare(root, project, selection, tol)
    except BackdropError as exc:  # a re-run record that cannot be read
        print(f"error: {exc} (the scratch folder {workdir} is kept)", file=sys.stderr)
        return 1
    print(render(rows), tolerance_text(tol), summary(rows), sep="\n\n")
    code = int(counts(rows)[OUTSIDE] > 0)
    if args.out:
        from stages.utils.io import write_json

        record = {
            "scale": selection.scale,
            "selection": asdict(selection),
            "command": command[1:],
            "tolerances": asdict(tol),
            "rows": [{**asdict(r), "difference": r.difference} for r in rows],
            "counts": counts(rows),
            "exit_code": code,
        }
        write_json(args.out, record)
    if args.keep:
        print(f"kept: {workdir} (log: {log})")
    else:
        shutil.rmtree(workdir)
    return code


if __name__ == "__main__":
    sys.exit(main())
