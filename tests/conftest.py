"""Shared fixtures: a tiny synthetic raw-data mirror, and the ``real_data`` marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.data.synthetic import write_synthetic_mirror


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
