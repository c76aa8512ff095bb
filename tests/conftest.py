"""Shared fixtures: a tiny synthetic raw-data mirror, the whole tiny DAG run once for every test
that inspects or changes a finished project, and the ``real_data`` marker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stages.data.synthetic import write_synthetic_mirror
from tests.dag_tools import run_tiny_dag


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "real_data: reads ../shared/datasets beside the checkout (skipped when absent; deselect with "
        "-m 'not real_data')",
    )


@pytest.fixture(scope="session")
def synthetic_mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only-by-convention synthetic mirror; tests that damage it copy it first."""
    return write_synthetic_mirror(tmp_path_factory.mktemp("mirror"), seed=0)


@pytest.fixture(scope="session")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project after one complete tiny `snakemake` run and `dvc commit` (tests change copies).
    BACKDROP_TINY_PROJECT=<folder> reuses one made earlier by ``tests.dag_tools.run_tiny_dag``
    from the same sources, to iterate on these tests without the 20-minute run."""
    if reuse := os.environ.get("BACKDROP_TINY_PROJECT"):
        return Path(reuse)
    return run_tiny_dag(tmp_path_factory.mktemp("tiny"))
