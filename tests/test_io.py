"""Artifacts are written atomically and byte-stably (stages/utils/io.py)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

from stages.utils.errors import DataError
from stages.utils.io import atomic_open, save_torch


def test_equal_weights_saved_anywhere_give_equal_bytes(tmp_path: Path) -> None:
    state = {"state_dict": {"w": torch.arange(12.0).reshape(3, 4)}, "scale": "tiny"}
    first, second = tmp_path / "a" / "model.pt", tmp_path / "b" / "other.pt"
    save_torch(first, state)
    save_torch(second, state)
    assert first.read_bytes() == second.read_bytes()
    loaded = torch.load(second, weights_only=False)
    assert torch.equal(loaded["state_dict"]["w"], state["state_dict"]["w"])
    # No temporary file is left beside the artifact.
    assert sorted(p.name for p in first.parent.iterdir()) == ["model.pt"]


def test_a_failed_save_keeps_the_artifact_that_was_there(tmp_path: Path) -> None:
    dest = tmp_path / "model.pt"
    save_torch(dest, {"w": torch.zeros(2)})
    before = dest.read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        save_torch(dest, {"w": Unpicklable()})
    assert dest.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_a_full_disk_names_the_file_and_keeps_the_old_version(tmp_path: Path) -> None:
    dest = tmp_path / "metrics.json"
    dest.write_text("old")
    with pytest.raises(
        DataError, match=r"metrics\.json: cannot be written, No space left on device \(the previous"
    ):
        with atomic_open(dest) as fh:
            fh.write("new")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert dest.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_full_disk_under_torch_save_names_the_model_file_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch.save writing to a file turns ENOSPC into a RuntimeError naming nothing; a model
    file must get the same message as any other artifact."""
    dest = tmp_path / "model.pt"
    save_torch(dest, {"w": torch.ones(3)})
    old = dest.read_bytes()

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("stages.utils.io.os.fsync", no_space)
    with pytest.raises(
        DataError, match=r"model\.pt: cannot be written, No space left on device \(the previous"
    ):
        save_torch(dest, {"w": torch.zeros(3)})
    assert dest.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
