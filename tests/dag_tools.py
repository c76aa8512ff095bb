"""Helpers for tests that run or inspect both DAGs: a throw-away copy of the project wired to
a synthetic mirror at the tiny scale, and readers of Snakemake's and DVC's job lists."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

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


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 1200) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def edit_params(project: Path, **changes: object) -> None:
    """Set dotted keys of the project's params.yaml, e.g. ``edit_params(p, **{"raw.mirror": x})``."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        node = params
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    # What a user does after editing params for DVC: the matrix cells dvc.yaml reads (an invalid
    # edit, which some tests make on purpose, leaves the file as it was).
    run(["python", "-m", "workflow.dvc_matrix"], project, check=False)


def make_project(dest: Path, mirror: Path, scale: str = "tiny") -> Path:
    """A git + DVC project copy at ``dest`` reading ``mirror`` at ``scale``."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in PROJECT_FILES:
        src = REPO / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    edit_params(dest, scale=scale, **{"raw.mirror": str(mirror)})
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


def run_tiny_dag(root: Path) -> Path:
    """A project under ``root`` after one complete tiny `snakemake` run on a synthetic mirror,
    recorded by `dvc commit` and committed to git."""
    project = make_project(root / "project", write_tiny_mirror(root))
    run(["snakemake", *TINY_PROFILE], project, timeout=3000)
    run(["dvc", "commit", "--force", "--quiet"], project)
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-qm", "tiny run"], project)
    return project


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
