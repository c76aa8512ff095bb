"""Shared fixtures and the three test tiers.

Tiers (``--tier``): ``fast`` (the default) runs the unit, property and in-process tests (about
3 minutes on 2 cores); ``dag`` only the tests marked ``dag``, which run Snakemake and DVC on
project copies (the micro-DAG of ``finished`` and its copies); ``slurm`` only the tests marked
``slurm``, which submit to a real (single-node) SLURM cluster; ``all`` every tier, as CI does. A
test that takes ``finished`` is in the dag tier whether or not it is marked (unless it is marked
``slurm``). The tests of other tiers are deselected, not skipped.

Fixtures: the tiny scale's plan of the repository's params.yaml, a synthetic raw-data mirror, and
the micro-DAG (one job of every kind) run once for every test that inspects or changes a finished
project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from stages.data.synthetic import write_synthetic_mirror
from tests.dag_tools import REPO, run_tiny_dag
from workflow.plan import Plan

TIERS = ("fast", "dag", "slurm", "all")
# Tests that take these fixtures run the DAG tools, whether or not their file says so.
DAG_FIXTURES = frozenset({"finished"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tier",
        choices=TIERS,
        default="fast",
        help="fast (default): unit and in-process tests; dag: only the real Snakemake/DVC runs "
        "(tests marked dag); slurm: only the submissions to a SLURM cluster (tests marked slurm); "
        "all: every tier (CI)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "real_data: reads ../shared/datasets beside the checkout (skipped when absent; deselect with "
        "-m 'not real_data')",
    )
    config.addinivalue_line(
        "markers",
        "dag: runs real Snakemake / DVC on project copies (the dag tier: `--tier dag` or `--tier all`; "
        "deselected by the default `--tier fast`)",
    )
    config.addinivalue_line(
        "markers",
        "slurm: submits to a real SLURM cluster (the slurm tier: `--tier slurm` or `--tier all`; skipped, "
        "saying why, where no cluster runs)",
    )
    # The tests' own torch work is small: one intra-op thread. Two spin against each other on a
    # 2-core machine that is busy with anything else (Snakemake's jobs, another test run), which
    # made the fast tier 2-6x slower. The stages that the DAG tests start keep torch's default.
    torch.set_num_threads(1)


def tier_of(item: pytest.Item) -> str:
    """The tier a collected test belongs to (see the module docstring)."""
    if item.get_closest_marker("slurm") is not None:
        return "slurm"
    if item.get_closest_marker("dag") is not None or DAG_FIXTURES & set(getattr(item, "fixturenames", ())):
        return "dag"
    return "fast"


def pytest_report_header(config: pytest.Config) -> str:
    tier = config.getoption("--tier")
    if tier == "all":
        return "tier: all (fast, dag and slurm tests)"
    others = ", ".join(t for t in TIERS[:-1] if t != tier)
    return f"tier: {tier} ({others} tests deselected; `--tier all` runs every test)"


# How many tests were selected when every one of them is in another tier (for the summary).
_ALL_IN_OTHER_TIER = pytest.StashKey[int]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tier = config.getoption("--tier")
    if tier == "all":
        return
    keep = [item for item in items if tier_of(item) == tier]
    if len(keep) != len(items):
        kept = set(map(id, keep))
        config.hook.pytest_deselected(items=[item for item in items if id(item) not in kept])
        if not keep:
            config.stash[_ALL_IN_OTHER_TIER] = len(items)
        items[:] = keep


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if n := config.stash.get(_ALL_IN_OTHER_TIER, 0):
        terminalreporter.write_line(
            f"All {n} tests selected are in other tiers than {config.getoption('--tier')}: "
            f"choose it with --tier (fast, dag, slurm, or all).",
            yellow=True,
        )


@pytest.fixture(scope="session")
def tiny_plan() -> Plan:
    """The jobs of params.yaml at the tiny scale (read-only: tests that change a plan build their own)."""
    return Plan.load(REPO / "params.yaml", scale="tiny")


@pytest.fixture(scope="session")
def synthetic_mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only-by-convention synthetic mirror; tests that damage it copy it first."""
    return write_synthetic_mirror(tmp_path_factory.mktemp("mirror"), seed=0)


@pytest.fixture(scope="session")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A micro project (``tests.dag_tools.micro_params``: one job of every kind) after one
    complete tiny `snakemake` run and `dvc commit` (tests change copies).
    BACKDROP_TINY_PROJECT=<folder> reuses one made earlier by ``tests.dag_tools.run_tiny_dag``
    from the same sources, to iterate on these tests without the run."""
    if reuse := os.environ.get("BACKDROP_TINY_PROJECT"):
        return Path(reuse)
    return run_tiny_dag(tmp_path_factory.mktemp("tiny"))
