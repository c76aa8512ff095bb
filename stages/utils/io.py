"""Atomic artifact writing: a temp file in the destination folder, then ``os.replace``.

An interrupted stage therefore never leaves a half-written output that Snakemake or DVC
could mistake for a finished one.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

# A full disk or an exhausted quota: the user can act on these, so they get a clear message.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; move it onto ``dest`` only on success."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp makes the file private (0600); an artifact gets the usual mode a new file would.
    os.chmod(tmp_path, 0o666 & ~_umask())
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except OSError as exc:
        if exc.errno not in NO_SPACE:
            raise
        from stages.utils.errors import DataError

        kept = "the previous version is kept" if dest.exists() else "nothing was written"
        raise DataError(
            f"{dest}: cannot be written, {exc.strerror or exc} ({kept}); free space on "
            f"{dest.parent.resolve()}'s file system and run the same command again"
        ) from None
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(dest: str | os.PathLike[str], mode: str = "w") -> Iterator[Any]:
    """Open a temporary file for writing that replaces ``dest`` when the block succeeds."""
    if "r" in mode or "a" in mode:
        raise ValueError(f"atomic_open writes whole files; mode {mode!r} is not supported")
    with atomic_path(dest) as tmp:
        encoding = None if "b" in mode else "utf-8"
        with open(tmp, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def write_json(dest: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as stable, sorted, indented JSON, atomically."""
    with atomic_open(dest, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.write("\n")


def write_bytes(dest: str | os.PathLike[str], data: bytes | BinaryIO) -> None:
    with atomic_open(dest, "wb") as fh:
        fh.write(data if isinstance(data, bytes) else data.read())


def save_torch(dest: str | os.PathLike[str], obj: Any) -> None:
    """``torch.save(obj)`` to ``dest`` atomically and byte-stably: equal objects give equal
    bytes. Saved to a path, torch names the archive's records after the file, here a random
    temporary name, so every save of the same weights differed and both tools reran everything
    downstream; saved to an open file, the record name is fixed."""
    import torch  # only the stages that save models pay for it

    # Serialised in memory first: writing its zip archive straight to a file, torch turns a full
    # disk's OSError into a RuntimeError naming no file; written here, the disk's error is
    # atomic_path's to report.
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_open(dest, "wb") as fh:
        fh.write(buffer.getbuffer())
