"""Helpers for tests that run or inspect both DAGs: a throw-away copy of the project wired to
a synthetic mirror at the tiny scale (optionally trimmed to the micro-DAG, one job of every
kind), and readers of Snakemake's and DVC's job lists."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stages.data.synthetic import write_synthetic_mirror

REPO = Path(__file__).resolve().parent.parent
PROJECT_FILES = [
    "stages",
    "workflow",
    "Snakefile",
    "dvc.yaml",
    "params.yaml",
    ".dvcignore",
    ".gitignore",
    ".dvc/config",
    ".dvc/.gitignore",
]
BIN = Path(sys.executable).parent
TINY_PROFILE = ["--profile", "workflow/profiles/tiny"]


def env() -> dict[str, str]:
    """The environment of this test run, with the project's virtual environment first on PATH
    (the DAGs call `python -m stages...`)."""
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e["PYTHONDONTWRITEBYTECODE"] = "1"
    e.pop("PYTHONPATH", None)
    return e


def run(
    cmd: list[str],
    cwd: Path,
    check: bool = True,
    timeout: int = 1200,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd, cwd=cwd, env={**env(), **(extra_env or {})}, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def regenerate_dvc(project: Path) -> subprocess.CompletedProcess:
    """What a user does after editing params.yaml: `python -m workflow.plan` rewrites dvc.yaml and
    the job files (an invalid edit, which some tests make on purpose, leaves the files as they
    were and gives a non-zero exit)."""
    return run(["python", "-m", "workflow.plan"], project, check=False)


def write_params(project: Path, params: dict[str, Any]) -> None:
    """Replace the project's params.yaml with ``params`` and regenerate what DVC reads from it."""
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    regenerate_dvc(project)


def edit_params(project: Path, **changes: object) -> None:
    """Set dotted keys of the project's params.yaml, e.g. ``edit_params(p, **{"raw.mirror": x})``."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    for dotted, value in changes.items():
        node = params
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    write_params(project, params)


# --- the micro-DAG ----------------------------------------------------------------------------
# The smallest project that still has one job of every kind (at the tiny scale): every raw
# source fetched, every dataset built (each builder, masks included), a model of each training
# mode (natural, PGD-AT, LAT, l2 PGD-AT, AT-Dual, foreground input), evaluations with an attack
# of each kind (none, pgd, dual, de, autoattack), every table stage and the report: ~60 jobs
# where the whole tiny DAG has ~480. Each evaluation group kept evaluates these models under
# these attacks; the other groups, and the models no kept group evaluates, are dropped.
MICRO_GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # LAT (MNIST): natural, PGD-AT and LAT training; the table's inputs (full-image and
    # outside-the-box PGD).
    "lat_mnist": (
        ("mnist_natural", "mnist_standard", "mnist_lat"),
        ("natural", "lat_standard", "lat_background"),
    ),
    # Attention masks (COCO-IC, VGG-19): natural input, and foreground input with PGD-AT.
    "attention_coco_ic": (("coco_ic_natural", "coco_ic_fg_adversarial"), ("natural", "am_pgd")),
    # Dual perturbation (GrabCut CIFAR-10, ResNet): l2 PGD-AT and AT-Dual under the table's
    # inputs (l2 PGD at two eps, the l2 dual attack with its salience term) and the dual attack
    # without it, so that the salience-weight sweep has two points (its claims compare them).
    "dual_cifar10_grabcut": (
        ("cifar10_grabcut_at_pgd", "cifar10_grabcut_at_dual"),
        ("natural", "pgd_l2_e2", "pgd_l2_e3", "dual_l2_f2_b20", "dual_l2_f2_b20_lambda0"),
    ),
    # Pixel space (a CIFAR-10 model on the GrabCut images): 1-pixel DE on each region, and the
    # indexed search beside the paper's.
    "pixel_cifar10_grabcut": (
        ("cifar10_vgg16",),
        ("natural", "de_full_1px", "de_foreground_1px", "de_background_1px", "de_background_1px_indexed"),
    ),
}
# A table role whose model was dropped is played by a kept model of its dataset with the same
# input, so that each table keeps its paper's row (its claims then compare a model with itself).
MICRO_STAND_INS: dict[str, str] = {
    "coco_ic_adversarial": "coco_ic_natural",
    "coco_ic_fg_natural": "coco_ic_fg_adversarial",
    "cifar10_grabcut_clean": "cifar10_grabcut_at_pgd",
}
# The robustness matrices kept (their tiny columns): MNIST's with the AutoAttack reference of
# its PGD column; COCO-IC's with the l_inf dual attack and the matrix's own DE, where the group
# pairs' cells are read from results/evals/ and the foreground-input model's dual and DE cells
# do not fit (n/a).
MICRO_MATRICES: dict[str, dict[str, Any]] = {
    "mnist": {"attacks": ["natural", "lat_standard"], "references": {"lat_standard": "aa_mnist_linf"}},
    "coco_ic": {"attacks": ["natural", "am_pgd", "dual_linf_f4_b20", "matrix_de_background_1px"]},
}


def micro_params(params: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` (params.yaml, run at the tiny scale) trimmed to the micro-DAG:
    :data:`MICRO_GROUPS`' models and evaluations, :data:`MICRO_MATRICES`, and every table cut to
    the rows whose models remain (after :data:`MICRO_STAND_INS`; at least one row each), its
    columns and sweeps to the attacks they are evaluated under. Definitions (attacks, recipes,
    architectures, datasets) stay: they make no jobs; only GTSRB-IC's images per class shrink.
    ``replicates`` is 1."""
    micro = deepcopy(params)
    micro["replicates"] = 1
    groups = params["evaluation"]["groups"]
    micro["evaluation"]["groups"] = {
        name: {**groups[name], "models": list(models), "attacks": list(attacks)}
        for name, (models, attacks) in MICRO_GROUPS.items()
    }
    kept = {m for models, _ in MICRO_GROUPS.values() for m in models}
    micro["models"] = {name: spec for name, spec in params["models"].items() if name in kept}
    evaluated = {a for _, attacks in MICRO_GROUPS.values() for a in attacks}
    tables = micro["tables"]

    def rows(table: str, datasets: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        cast = {
            ds: {role: MICRO_STAND_INS.get(model, model) for role, model in roles.items()}
            for ds, roles in datasets.items()
        }
        left = {ds: roles for ds, roles in cast.items() if set(roles.values()) <= kept}
        assert left, f"the micro-DAG keeps no row of tables.{table}"
        return left

    for table in ("lat", "attention_masks", "dual_perturbation"):
        tables[table]["datasets"] = rows(table, tables[table]["datasets"])
    # Our extension rows (CIFAR-10 at 8/255) train models of their own: one row of that kind
    # with the MNIST row's models and inputs (no extra job) keeps the rows marked *ours*.
    lat = tables["lat"]
    lat["extensions"] = {
        "mnist_ours": {
            "dataset": "mnist",
            "models": dict(lat["datasets"]["mnist"]),
            "inputs": dict(lat["inputs"]),
        }
    }
    dual = tables["dual_perturbation"]
    sweeps = {
        name: {**s, "attacks": [a for a in s["attacks"] if a in evaluated]}
        for name, s in dual["sweeps"].items()
    }
    dual["sweeps"] = {name: s for name, s in sweeps.items() if s["attacks"]}
    # Pixel space: the roles (architectures) whose model remains, the columns evaluated.
    pixel = tables["pixel_space"]
    roles = {ds: {r: m for r, m in roles.items() if m in kept} for ds, roles in pixel["datasets"].items()}
    pixel["datasets"] = rows("pixel_space", {ds: r for ds, r in roles.items() if r})
    pixel["inputs"] = {col: a for col, a in pixel["inputs"].items() if a in evaluated}
    searches = {
        s: {c: a for c, a in cols.items() if a in evaluated} for s, cols in pixel.get("searches", {}).items()
    }
    pixel["searches"] = {s: cols for s, cols in searches.items() if cols}
    micro["robustness_matrix"]["datasets"] = deepcopy(MICRO_MATRICES)
    # GTSRB-IC's graph cuts are the slowest jobs left (~40 s each at 5 images per class and
    # split); no kept model reads them, so 2 per class.
    for dataset in micro["datasets"].values():
        cap = (dataset.get("options") or {}).get("per_class_cap")
        if isinstance(cap, dict):
            cap["tiny"] = min(2, cap["tiny"] or 2)
    return micro


def make_project(dest: Path, mirror: Path, scale: str = "tiny", micro: bool = False) -> Path:
    """A git + DVC project copy at ``dest`` reading ``mirror`` at ``scale``; ``micro``: its
    params.yaml trimmed to the micro-DAG (:func:`micro_params`)."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in PROJECT_FILES:
        src = REPO / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["scale"] = scale
    params["raw"]["mirror"] = str(mirror)
    write_params(dest, micro_params(params) if micro else params)
    # The project commits its own scale's job files (.gitignore tracks only the committed scale's).
    with (dest / ".gitignore").open("a", encoding="utf-8") as fh:
        fh.write(f"!/workflow/jobs/{scale}/\n")
    remote = dest.parent / f"{dest.name}-remote"
    run(["git", "init", "-q"], dest)
    run(["git", "config", "user.email", "test@example.invalid"], dest)
    run(["git", "config", "user.name", "test"], dest)
    run(["dvc", "remote", "modify", "--local", "local", "url", str(remote)], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "project copy"], dest)
    return dest


def write_tiny_mirror(root: Path) -> Path:
    """The synthetic raw-data mirror every tiny project of the tests reads, under ``root``."""
    return write_synthetic_mirror(root / "mirror", seed=0, n_train=200, n_test=64)


def run_tiny_dag(root: Path, micro: bool = True) -> Path:
    """A project under ``root`` after one complete tiny `snakemake` run on a synthetic mirror,
    recorded by `dvc commit` and committed to git: the micro-DAG (:func:`micro_params`), or with
    ``micro=False`` the whole tiny DAG (~480 jobs). Each stage process records the ``stages``
    modules it imported under ``root/imports`` (:data:`IMPORT_RECORDER`)."""
    project = make_project(root / "project", write_tiny_mirror(root), micro=micro)
    recorder = {"PYTHONPATH": str(IMPORT_RECORDER), "BACKDROP_IMPORT_LOG": str(import_log(project))}
    run(["snakemake", *TINY_PROFILE], project, timeout=3000, extra_env=recorder)
    run(["dvc", "commit", "--force", "--quiet"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "tiny run"], project)
    return project


# tests/import_recorder/sitecustomize.py: what each stage process of the tiny run imported.
IMPORT_RECORDER = REPO / "tests" / "import_recorder"


def import_log(project: Path) -> Path:
    """Where the tiny run of ``project`` recorded each stage process's imports (outside the
    project, so that no copy of it carries them)."""
    return project.parent / "imports"


def copy_of(project: Path, tmp_path: Path, name: str = "project") -> Path:
    """A copy of ``project`` (git, DVC cache and Snakemake's records included) under ``tmp_path``,
    with its own DVC remote beside it."""
    dest = tmp_path / name
    shutil.copytree(project, dest, symlinks=True)
    run(["dvc", "remote", "modify", "--local", "local", "url", str(tmp_path / f"{name}-remote")], dest)
    return dest


@dataclass(frozen=True)
class Job:
    rule: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    command: str
    resources: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


def _split_paths(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def snakemake_jobs(project: Path, *args: str) -> list[Job]:
    """The jobs of ``snakemake -n -p`` (pass --forceall for the whole DAG)."""
    proc = run(["snakemake", "-n", "-p", "--cores", "1", *args], project)
    jobs: list[Job] = []
    current: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):$", line):
            current = {"rule": m.group(1)}
        elif m := re.match(r"^\s+(input|output|resources): (.*)$", line):
            current[m.group(1)] = m.group(2)
        elif line.startswith("Shell command: ") and current:
            current["command"] = line.removeprefix("Shell command: ")
        elif not line.strip() and current.get("rule"):
            if current["rule"] != "all":
                jobs.append(_job(current))
            current = {}
    if current.get("rule") and current["rule"] != "all":
        jobs.append(_job(current))
    return jobs


def _job(d: dict[str, str]) -> Job:
    return Job(
        rule=d["rule"],
        inputs=_split_paths(d.get("input", "")),
        outputs=_split_paths(d.get("output", "")),
        command=" ".join(d.get("command", "").split()),
        resources=dict(kv.split("=", 1) for kv in _split_paths(d.get("resources", ""))),
    )


@dataclass(frozen=True)
class DvcStage:
    name: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]
    command: str


def dvc_stages(project: Path) -> list[DvcStage]:
    """Every stage of dvc.yaml, resolved (foreach / matrix expanded, params interpolated)."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        return [
            DvcStage(
                name=stage.name,
                deps=tuple(d.def_path for d in stage.deps if not isinstance(d, ParamsDependency)),
                outs=tuple(o.def_path for o in stage.outs),
                command=" ".join(stage.cmd.split()),
            )
            for stage in repo.index.stages
        ]


def snakemake_would_run(project: Path, *args: str) -> set[tuple[str, tuple[str, ...]]]:
    """(rule, outputs) of every job a plain ``snakemake`` would run now."""
    return {(j.rule, j.outputs) for j in snakemake_jobs(project, *args)}


def dvc_would_run(project: Path) -> set[str]:
    """Names of the stages ``dvc repro`` would run now (from ``dvc repro --dry``)."""
    proc = run(["dvc", "repro", "--dry"], project)
    return set(re.findall(r"Running stage '([^']+)'", proc.stdout))
