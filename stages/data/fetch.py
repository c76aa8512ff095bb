"""Get one raw dataset into ``dest`` in its official layout, verified, from a mirror or the web.

Layout rule: ``dest`` receives exactly what ``<mirror>/<folder>/`` holds (``folder`` is
``DatasetSource.folder``: mnist, cifar10, gtsrb, coco), so ``fetch_dataset("mnist",
Path("data/reduced/raw/mnist"), ...)`` yields
``data/reduced/raw/mnist/raw/train-images-idx3-ubyte.gz``. A download unpacks the official
archives into the same layout. The readers in :mod:`stages.data.readers` take ``dest`` as their ``root``.

Verification rule for a mirror (each file, while it is copied):

1. the file has an official checksum (``DatasetSource.official_files``) and its size equals
   the official size, or no official size is known but its md5 equals the official md5: the
   official md5 decides (a same-size file that differs is corrupt);
2. otherwise the mirror's own ``SHA256SUMS`` (``<sha256>  <path relative to the mirror
   root>``) decides; this covers files a mirror legitimately changed (e.g. repacked CIFAR
   batches) and files without an official checksum;
3. a file neither covers is an error, except when the mirror has no ``SHA256SUMS`` at all
   and the file has no official checksum either: then it is copied with a warning, because
   an unlisted mirror is the user's explicit choice while a changed official file is not.

Output is atomic: everything is built in a temporary folder beside ``dest`` and renamed onto
it only when complete, so an interrupted or failed fetch never leaves a half-filled ``dest``
that Snakemake or DVC could take for a finished one.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import logging
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from stages.data.sources import Archive, DatasetSource, OfficialFile, get_source
from stages.utils.errors import ChecksumError, DataError
from stages.utils.io import write_json

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
MIRROR_SUMS = "SHA256SUMS"


@dataclass
class SplitReport:
    """How much of one split arrived, so downstream stages and readers of the report know."""

    name: str
    present: bool
    files: int
    official_files: int
    unit: str
    complete: bool


@dataclass
class FetchReport:
    """What a fetch produced; the CLI writes it as JSON next to the other results."""

    dataset: str
    dest: str
    source: str  # "mirror" or "download"
    origin: str  # mirror folder or the archive URLs used
    files: int = 0
    bytes: int = 0
    verified_by: dict[str, int] = field(default_factory=dict)
    splits: list[SplitReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sha256: dict[str, str] = field(default_factory=dict)  # relative path -> content hash
    seconds: float = 0.0

    # Where the files came from and how long it took say nothing about the data: the JSON
    # leaves them out, so moving the mirror does not make every downstream stage rerun.
    CONTENT_FIELDS = ("dataset", "files", "bytes", "verified_by", "splits", "warnings", "sha256")

    def to_dict(self) -> dict[str, Any]:
        full = asdict(self)
        return {k: full[k] for k in self.CONTENT_FIELDS}

    def write(self, path: Path) -> None:
        write_json(path, self.to_dict())

    def split(self, name: str) -> SplitReport:
        for s in self.splits:
            if s.name == name:
                return s
        raise KeyError(name)


def fetch_dataset(
    name: str,
    dest: Path,
    *,
    mirror: Path | None,
    download: bool,
    progress: bool = True,
    source: DatasetSource | None = None,
) -> FetchReport:
    """Fill ``dest`` with dataset ``name`` in its official layout and report what came.

    A mirror wins over downloading when both are given: it is local, fast and reproducible.
    ``source`` replaces the official :class:`DatasetSource` (archive URLs and md5s, official
    per-file checksums) for this call only; tests use it to download ``file://`` archives.
    """
    src = source if source is not None else get_source(name)
    dest = Path(dest)
    t0 = time.perf_counter()
    if mirror is not None and str(mirror) != "":
        report = _from_mirror(src, Path(mirror), dest, progress=progress)
    elif download:
        report = _from_download(src, dest, progress=progress)
    else:
        raise DataError(
            f"no source for raw dataset {name!r}: set `raw.mirror` in params.yaml to a local "
            f"folder in the official layout (e.g. one holding {src.folder}/ and SHA256SUMS), or "
            "set `raw.download: true` to download the official archives"
        )
    report.seconds = round(time.perf_counter() - t0, 3)
    log.info(
        "%s: %d files from %s (%s) in %.1f s",
        name,
        report.files,
        report.origin,
        report.source,
        report.seconds,
    )
    return report


# --- layout analysis -----------------------------------------------------------------------


def inspect_layout(src: DatasetSource, folder: Path) -> tuple[list[SplitReport], list[str]]:
    """Check required pieces and measure each split; raise DataError for what cannot work.

    Runs on the mirror before anything is copied (so a broken mirror fails in seconds, not
    after copying gigabytes) and on a downloaded tree before it is moved into place.
    """
    if not folder.is_dir():
        raise DataError(
            f"{src.name}: folder {folder} does not exist; the mirror must hold "
            f"<mirror>/{src.folder}/ in the official layout"
        )
    for rel in src.needs:
        if not (folder / rel).is_file():
            raise DataError(f"{src.name}: required file {folder / rel} is missing")
    splits: list[SplitReport] = []
    warnings: list[str] = []
    for spec in src.splits:
        n = sum(1 for p in folder.glob(spec.count) if p.is_file())
        missing = [folder / rel for rel in spec.needs if not (folder / rel).is_file()]
        present = n > 0 and not missing
        if not present:
            if spec.required:
                what = missing[0] if missing else folder / spec.count
                raise DataError(
                    f"{src.name}: the {spec.name} split is required but {what} is missing; "
                    "re-copy the mirror or re-download"
                )
            has_some = n > 0 or len(missing) < len(spec.needs)
            if has_some:
                what = missing[0] if missing else folder / spec.count
                raise DataError(
                    f"{src.name}: the {spec.name} split is incomplete: {what} is missing; "
                    f"add it, or remove the rest of the {spec.name} split from the mirror"
                )
            msg = f"{src.name}: no {spec.name} split in {folder}; {spec.missing_hint}"
            log.warning(msg)
            warnings.append(msg)
        elif n < spec.official_count:
            msg = (
                f"{src.name}: partial {spec.name} split, {n} of {spec.official_count} "
                f"{spec.unit} of the official dataset"
                + (f"; {spec.partial_hint}" if spec.partial_hint else "")
            )
            log.warning(msg)
            warnings.append(msg)
        splits.append(
            SplitReport(
                name=spec.name,
                present=present,
                files=n if present else 0,
                official_files=spec.official_count,
                unit=spec.unit,
                complete=present and n >= spec.official_count,
            )
        )
    return splits, warnings


# --- mirror ------------------------------------------------------------------------------


def read_sums(path: Path) -> dict[str, str]:
    """Parse a ``sha256sum``-style list into {relative path: sha256}."""
    sums: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, rel = line.partition("  ")
        if not sep:
            digest, sep, rel = line.partition(" *")
        digest = digest.strip().lower()
        if not sep or len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise DataError(
                f"{path}:{lineno}: not a '<sha256>  <path>' line: {line[:80]!r}; "
                "regenerate it with `sha256sum` from the mirror root"
            )
        sums[rel.strip()] = digest
    return sums


def _from_mirror(src: DatasetSource, mirror: Path, dest: Path, *, progress: bool) -> FetchReport:
    folder = mirror / src.folder
    if not mirror.is_dir():
        raise DataError(f"mirror folder {mirror} does not exist; fix `raw.mirror` in params.yaml")
    splits, warnings = inspect_layout(src, folder)
    sums_path = mirror / MIRROR_SUMS
    sums = read_sums(sums_path) if sums_path.is_file() else None
    if sums is None:
        msg = f"{src.name}: mirror {mirror} has no {MIRROR_SUMS}; files without an official "
        msg += "checksum are copied unverified"
        log.warning(msg)
        warnings.append(msg)

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    report = FetchReport(dataset=src.name, dest=str(dest), source="mirror", origin=str(mirror), splits=splits)
    report.warnings.extend(warnings)
    t0 = time.perf_counter()
    with _building(dest) as build, _progress(total, f"copy {src.name}", progress) as bar:
        for path in files:
            rel = path.relative_to(folder).as_posix()
            out = build / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            official = src.official_files.get(rel)
            digests = _copy_hashing(path, out, md5=official is not None, bar=bar)
            how = _verify(src, mirror, rel, path, official, digests, sums, report)
            report.verified_by[how] = report.verified_by.get(how, 0) + 1
            report.files += 1
            report.bytes += digests["size"]
            report.sha256[rel] = digests["sha256"]
    _log_throughput(src.name, "copied", report.files, report.bytes, time.perf_counter() - t0)
    return report


def _verify(
    src: DatasetSource,
    mirror: Path,
    rel: str,
    path: Path,
    official: OfficialFile | None,
    digests: dict[str, Any],
    sums: dict[str, str] | None,
    report: FetchReport,
) -> str:
    """Apply the module's verification rule to one copied file; return how it was verified."""
    if official is not None:
        size_known = official.size is not None
        if (size_known and digests["size"] == official.size) or (
            not size_known and digests["md5"] == official.md5
        ):
            if digests["md5"] != official.md5:
                raise ChecksumError(
                    f"{path}: md5 {digests['md5']} does not match the official md5 "
                    f"{official.md5} (the file has the official size {official.size}, so it is "
                    "corrupt); re-copy it into the mirror or re-download the official archive"
                )
            return "official-md5"
    mirror_rel = f"{src.folder}/{rel}"
    if sums is not None and mirror_rel in sums:
        if digests["sha256"] != sums[mirror_rel]:
            raise ChecksumError(
                f"{path}: sha256 {digests['sha256']} does not match {sums[mirror_rel]} listed "
                f"for {mirror_rel} in {mirror / MIRROR_SUMS}; re-copy the file into the mirror "
                f"(or re-download it), or, if the file was changed on purpose, regenerate "
                f"{MIRROR_SUMS}"
            )
        return "mirror-sha256"
    if official is not None:
        raise DataError(
            f"{path}: differs from the official file (md5 {digests['md5']}, official "
            f"{official.md5}) and {mirror / MIRROR_SUMS} does not list {mirror_rel}; re-copy "
            f"the official file, or list the changed file in the mirror's {MIRROR_SUMS}"
        )
    if sums is not None:
        raise DataError(
            f"{path}: not listed in {mirror / MIRROR_SUMS}, so it cannot be verified; remove "
            f"it from the mirror or regenerate {MIRROR_SUMS} (sha256sum, from the mirror root)"
        )
    return "unverified"


def _copy_hashing(src: Path, dst: Path, *, md5: bool, bar: Any) -> dict[str, Any]:
    """Copy in large chunks, hashing the bytes on their way so each file is read once."""
    h256 = hashlib.sha256()
    h5 = hashlib.md5() if md5 else None
    size = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(_CHUNK):
            h256.update(chunk)
            if h5 is not None:
                h5.update(chunk)
            fout.write(chunk)
            size += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
    shutil.copymode(src, dst)
    return {"size": size, "sha256": h256.hexdigest(), "md5": h5.hexdigest() if h5 else None}


# --- download ----------------------------------------------------------------------------


def _from_download(src: DatasetSource, dest: Path, *, progress: bool) -> FetchReport:
    report = FetchReport(
        dataset=src.name,
        dest=str(dest),
        source="download",
        origin=" ".join(a.urls[0] for a in src.archives if a.urls),
    )
    with _building(dest) as build:
        scratch = Path(tempfile.mkdtemp(prefix=".download-", dir=build.parent))
        try:
            for archive in src.archives:
                tmp = scratch / archive.filename
                _download(archive, tmp, progress=progress)
                _unpack(archive, tmp, build)
                tmp.unlink(missing_ok=True)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        official_archives = {a.filename: a.md5 for a in get_source_or_none(src.name)}
        trusted = all(official_archives.get(a.filename) == a.md5 for a in src.archives)
        for path in sorted(p for p in build.rglob("*") if p.is_file()):
            rel = path.relative_to(build).as_posix()
            official = src.official_files.get(rel)
            how = "archive-md5"
            if trusted and official is not None:
                digest = _md5(path)
                if digest != official.md5:
                    raise ChecksumError(
                        f"{rel}: md5 {digest} from the official archive does not match the "
                        f"official md5 {official.md5}; delete partial downloads and retry"
                    )
                how = "official-md5"
            report.verified_by[how] = report.verified_by.get(how, 0) + 1
            report.files += 1
            report.bytes += path.stat().st_size
            report.sha256[rel] = _sha256(path)
        report.splits, warnings = inspect_layout(src, build)
        report.warnings.extend(warnings)
    return report


def get_source_or_none(name: str) -> tuple[Archive, ...]:
    """The official archives of ``name``, or none for a dataset only a test defines."""
    try:
        return get_source(name).archives
    except DataError:
        return ()


def _download(archive: Archive, out: Path, *, progress: bool) -> None:
    """Stream one archive to ``out`` trying each URL in turn; its md5 must be the expected one."""
    failures: list[str] = []
    checksum_failure: str | None = None
    for url in archive.urls:
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                digest, size = _stream(resp, out, total, archive.filename, progress)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            failures.append(f"{url}: {exc}")
            log.warning("download of %s failed: %s", url, exc)
            continue
        if digest == archive.md5:
            _log_throughput(archive.filename, "downloaded", 1, size, time.perf_counter() - t0)
            return
        checksum_failure = (
            f"{archive.filename} from {url}: md5 {digest} does not match the official md5 "
            f"{archive.md5}; the download is corrupt or the host serves a different file; "
            "retry later, or copy the official archive into a local mirror"
        )
        failures.append(checksum_failure)
        log.warning(checksum_failure)
    if checksum_failure is not None:
        raise ChecksumError(checksum_failure)
    raise DataError(
        f"could not download {archive.filename}: "
        + "; ".join(failures)
        + "; check the network, or set `raw.mirror` to a local copy"
    )


def _stream(resp: BinaryIO, out: Path, total: int | None, label: str, progress: bool) -> tuple[str, int]:
    h = hashlib.md5()
    size = 0
    with open(out, "wb") as fh, _progress(total, label, progress) as bar:
        while chunk := resp.read(_CHUNK):
            h.update(chunk)
            fh.write(chunk)
            size += len(chunk)
            if bar is not None:
                bar.update(len(chunk))
    return h.hexdigest(), size


def _safe_member(name: str, archive: Path) -> PurePosixPath:
    """Reject members that would land outside the build folder (absolute or ``..`` paths)."""
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts:
        raise DataError(f"{archive}: refusing to unpack member {name!r} outside the dataset folder")
    return p


def _wanted(archive: Archive, name: str) -> bool:
    return archive.members is None or any(fnmatch.fnmatch(name, pat) for pat in archive.members)


def _unpack(archive: Archive, path: Path, build: Path) -> None:
    """Place one verified archive into the official layout inside ``build``."""
    target = build / archive.target
    if archive.kind == "file":
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
        return
    try:
        if archive.kind == "tar":
            with tarfile.open(path) as tf:
                for m in tf.getmembers():
                    rel = _safe_member(m.name, path)
                    if not m.isfile() or not _wanted(archive, m.name):
                        continue
                    out = target / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    fin = tf.extractfile(m)
                    assert fin is not None
                    with fin, open(out, "wb") as fout:
                        shutil.copyfileobj(fin, fout, _CHUNK)
        elif archive.kind == "zip":
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    rel = _safe_member(info.filename, path)
                    if info.is_dir() or not _wanted(archive, info.filename):
                        continue
                    out = target / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as fin, open(out, "wb") as fout:
                        shutil.copyfileobj(fin, fout, _CHUNK)
        else:
            raise DataError(f"{archive.filename}: unknown archive kind {archive.kind!r}")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path.name}: cannot unpack ({exc}); delete it and download again") from exc


# --- helpers -----------------------------------------------------------------------------


@contextlib.contextmanager
def _building(dest: Path) -> Iterator[Path]:
    """Yield a fresh folder beside ``dest``; on success it replaces ``dest`` by renames."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{dest.name}.build-", dir=dest.parent))
    try:
        yield build
        old = None
        if dest.exists() or dest.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old / "previous")
        os.replace(build, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)


@contextlib.contextmanager
def _progress(total: int | None, label: str, enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024) as bar:
        yield bar


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _log_throughput(what: str, verb: str, files: int, nbytes: int, seconds: float) -> None:
    s = max(seconds, 1e-9)
    log.info(
        "%s: %s %d files, %.1f MB in %.2f s (%.0f files/s, %.1f MB/s)",
        what, verb, files, nbytes / 1e6, seconds, files / s, nbytes / 1e6 / s,
    )  # fmt: skip
