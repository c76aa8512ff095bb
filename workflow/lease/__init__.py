"""Run a scale's model jobs (training, evaluations, tables, report) on a lent GPU machine.

The reduced scale takes about nine hours on 2 CPU cores; a lent H200 (the `device` tool) does its
model jobs in minutes, but it is reached only through that tool: each call sends the checkout and
the folders named in `carry` (64 MiB in all), runs one command for at most 10 minutes, returns at
most 8 files of 16 MiB, and the machine starts bare (no Snakemake, DVC or torchattacks, no
network, no raw-data mirror) and goes back 30 s after a call unless another one follows. Hence:

1. Here, ``python -m workflow.lease pack``: the *local* jobs (those upstream of no model: the raw
   copies, the datasets and the data-quality checks, which read the mirror) must already be done;
   the *device* jobs' outputs in ``results/<scale>`` are moved into a stash (``.lease/stash-*.tar``),
   so that all of them are rebuilt there and none travels; then two bundles are written, each
   sized to travel with the checkout: ``.lease/call1`` (the wheels of workflow/lease/wheels.txt,
   the first datasets, a shallow git of HEAD for the report's provenance, this machine's benchmark
   records of the local jobs) and ``.lease/call2`` (the other datasets).
2. Call 1 (``carry: [".lease/call1"]``): ``bash workflow/lease/device.sh start .lease/call1``
   installs the wheels, copies the checkout to /tmp/run and starts the run there as a daemon
   (``setsid``, so it outlives the call): phase 1 runs the device jobs that need only call 1's data.
3. Call 2, at once (``carry: [".lease/call2"]``): ``bash workflow/lease/device.sh feed .lease/call2``
   adds the other datasets; the daemon then runs every device job (phase 2) and ``dvc commit``s
   their stages; the call waits for it until its deadline and returns ``results.tar.xz`` and
   ``logs.tar.xz``. If the deadline came first, ``bash workflow/lease/device.sh collect`` in a
   third call returns the rest.
4. Here, ``python -m workflow.lease unpack <folder with the returned files>``: the results,
   benchmark records and logs go in place, ``dvc.lock`` takes the device stages' entries from the
   device and ``dvc commit`` records the local stages here.

The trained weights stay on the device (181 MB at the reduced scale, more than a call returns):
``dvc.lock`` records their checksums, and ``python -m workflow.verify`` re-checks any committed
number by retraining.
"""

from __future__ import annotations

import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from workflow.plan import BENCHMARKS_DIR, DVC_YAML, LOGS_DIR, RULES, Job, Plan, dvc_stage_name

LEASE_DIR = Path(".lease")
WHEELS_FILE = Path("workflow/lease/wheels.txt")
# Trained weights: too large to come back from the device, recorded by checksum in dvc.lock.
WEIGHTS = "model.pt"
MIB = 1 << 20
# What a call may send (the device tool's limit), less a margin for the scripts and metadata.
CALL_LIMIT = 64 * MIB
MARGIN = 1 * MIB
# The device's Python (the `run` tool's machine): wheels are fetched for it.
DEVICE_PYTHON = "3.12"
DEVICE_PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)


class LeaseError(Exception):
    """Bad input or state for a lease step; the message says what to do."""


# -- which jobs run where --------------------------------------------------------------------------
def device_jobs(plan: Plan) -> list[Job]:
    """Every model job: training, and whatever reads a model directly or not (evaluations,
    matrix cells, gradient figures, tables, the report)."""
    names = plan.downstream([job.name for job in plan.jobs_of("train")])
    return [job for job in plan.jobs if job.name in names]


def local_jobs(plan: Plan) -> list[Job]:
    """The jobs upstream of no model (raw copies, datasets, data-quality checks): they read the
    raw-data mirror, which stays on this machine."""
    device = {job.name for job in device_jobs(plan)}
    return [job for job in plan.jobs if job.name not in device]


def outputs_of(jobs: Iterable[Job]) -> list[str]:
    return [path for job in jobs for path in job.outputs.values()]


def dataset_folders(plan: Plan) -> dict[str, str]:
    """Processed dataset name -> its folder (``data/<scale>/processed/<name>``)."""
    folders = {}
    for job in plan.jobs_of("prepare"):
        for path in job.outputs.values():
            if path.startswith(f"{plan.data}/"):  # not its statistics and figure under results/
                folder = str(Path(path).parent)
                folders[Path(folder).name] = folder
    return folders


def late_jobs(plan: Plan, late_datasets: Iterable[str]) -> set[str]:
    """Names of the jobs that read, directly or not, one of ``late_datasets``."""
    folders = dataset_folders(plan)
    prefixes = tuple(folders[name].rstrip("/") + "/" for name in late_datasets)
    readers = [job.name for job in plan.jobs if any(p.startswith(prefixes) for p in job.all_inputs())]
    return plan.downstream(readers)


def phase_targets(plan: Plan, late_datasets: Iterable[str], phase: str) -> list[str]:
    """Phase ``local``: the local jobs' outputs (built here before a lease); ``early``: the outputs
    of the device jobs that need none of ``late_datasets``; ``all``: every device job's outputs."""
    if phase == "local":
        return outputs_of(local_jobs(plan))
    jobs = device_jobs(plan)
    if phase == "early":
        late = late_jobs(plan, late_datasets)
        jobs = [job for job in jobs if job.name not in late]
    elif phase != "all":
        raise LeaseError(f"phase {phase!r}: use 'local', 'early' or 'all'")
    return outputs_of(jobs)


def device_stage_names(plan: Plan) -> list[str]:
    return [dvc_stage_name(plan.scale, job.name) for job in device_jobs(plan)]


def local_stage_names(plan: Plan) -> list[str]:
    return [dvc_stage_name(plan.scale, job.name) for job in local_jobs(plan)]


# -- sizes and the split of the datasets between the two calls ------------------------------------
def travelling_files(root: Path) -> list[str]:
    """What every call sends: tracked files present in the working tree and untracked files git
    does not ignore."""
    proc = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise LeaseError(f"{root}: `git ls-files` failed ({proc.stderr.strip()}); run from the checkout")
    return sorted({f for f in proc.stdout.split("\0") if f and (root / f).is_file()})


def size_of(root: Path, files: Iterable[str]) -> int:
    return sum((root / f).stat().st_size for f in files)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@dataclass(frozen=True)
class Split:
    first: list[str]  # datasets carried by call 1
    second: list[str]  # datasets carried by call 2


def split_datasets(sizes: dict[str, int], first_room: int, second_room: int) -> Split:
    """First-fit decreasing of the compressed datasets into call 1's room, then call 2's."""
    first: list[str] = []
    second: list[str] = []
    room = [first_room, second_room]
    for name in sorted(sizes, key=lambda n: (-sizes[n], n)):
        for i, bucket in enumerate((first, second)):
            if sizes[name] <= room[i]:
                bucket.append(name)
                room[i] -= sizes[name]
                break
        else:
            raise LeaseError(
                f"dataset {name!r} ({sizes[name] / MIB:.1f} MiB compressed) fits in neither call "
                f"(room left: {room[0] / MIB:.1f} and {room[1] / MIB:.1f} MiB of {CALL_LIMIT // MIB}): "
                f"shrink what travels with the checkout (untracked files) or the dataset at this scale"
            )
    return Split(sorted(first), sorted(second))


# -- building the bundles ------------------------------------------------------------------------
def read_wheels(path: Path = WHEELS_FILE) -> list[str]:
    """``name==version`` lines of workflow/lease/wheels.txt."""
    lines = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def _pip() -> list[str]:
    """A pip to download with: this interpreter's, else python3's on PATH (uv's venvs have none)."""
    probe = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return [sys.executable, "-m", "pip"]
    python3 = shutil.which("python3")
    if python3 is None:
        raise LeaseError("no pip to download the device's wheels with: install pip for python3")
    return [python3, "-m", "pip"]


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them (``zc.lockfile`` = ``zc-lockfile``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_is(filename: str, name: str, version: str) -> bool:
    """Whether ``filename`` is a wheel of ``name`` ``version`` (wheel names spell the
    distribution with ``_`` and sometimes its original capitals and dots)."""
    parts = filename.split("-")
    return len(parts) >= 5 and normalized(parts[0]) == normalized(name) and parts[1] == version


def fetch_wheels(requirements: list[str], cache: Path) -> list[Path]:
    """One wheel per requirement in ``cache`` (downloaded for the device's Python and platform, or
    built here from a pure-Python sdist); what is already there is kept."""
    cache.mkdir(parents=True, exist_ok=True)
    pip = _pip()
    wheels = []
    for req in requirements:
        name, version = req.split("==")
        found = [w for w in cache.glob("*.whl") if wheel_is(w.name, name, version)]
        if not found:
            platforms = [arg for p in DEVICE_PLATFORMS for arg in ("--platform", p)]
            download = [*pip, "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(cache)]
            download += ["--python-version", DEVICE_PYTHON, "--implementation", "cp", *platforms, req]
            if subprocess.run(download, capture_output=True, check=False).returncode != 0:
                build = subprocess.run(
                    [*pip, "wheel", "-q", "--no-deps", "-w", str(cache), req],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if build.returncode != 0:
                    reason = build.stderr.strip()
                    raise LeaseError(f"{WHEELS_FILE}: {req}: no device wheel, none built ({reason})")
            found = [w for w in cache.glob("*.whl") if wheel_is(w.name, name, version)]
        if not found:
            raise LeaseError(f"{WHEELS_FILE}: {req}: pip gave no wheel of {name} {version}")
        wheels.append(found[0])
    return wheels


def compress_folder(root: Path, folder: str, out: Path) -> Path:
    """``out`` (tar.xz of ``folder``, paths relative to ``root``), rebuilt only when a file of the
    folder is newer; written to a temporary name first."""
    files = sorted(p for p in (root / folder).rglob("*") if p.is_file())
    if out.is_file() and all(p.stat().st_mtime <= out.stat().st_mtime for p in files):
        return out
    tmp = out.with_name(out.name + ".tmp")
    with lzma.open(tmp, "wb", preset=6) as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        for path in files:
            tar.add(path, arcname=str(path.relative_to(root)))
    os.replace(tmp, out)
    return out


def stash_device_outputs(root: Path, plan: Plan, lease: Path) -> tuple[Path | None, int]:
    """Move the device jobs' outputs present under ``root`` into one tar in ``lease`` (they are
    rebuilt on the device; ``tar -xf`` of it in the checkout puts them back). Returns the tar
    (None if nothing was there) and how many files it holds."""
    files = []
    for path in outputs_of(device_jobs(plan)):
        full = root / path
        if full.is_dir():
            files += sorted(str(p.relative_to(root)) for p in full.rglob("*") if p.is_file())
        elif full.is_file():
            files.append(path)
    if not files:
        return None, 0
    stamp = time.strftime("%Y%m%dT%H%M%S")
    tar_path = lease / f"stash-{plan.scale}-{stamp}.tar"
    with tarfile.open(tar_path, "w") as tar:
        for f in files:
            tar.add(root / f, arcname=f)
    for f in files:
        (root / f).unlink()
    return tar_path, len(files)


def shallow_git(root: Path, out: Path) -> None:
    """A one-commit clone of HEAD's ``.git`` at ``out``: on the device, the report names the
    commit it ran (its provenance runs `git rev-parse` and `git status`)."""
    tmp = out.with_name(out.name + ".clone")
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{root.resolve()}", str(tmp)], check=True)
    shutil.rmtree(out, ignore_errors=True)
    shutil.move(str(tmp / ".git"), out)
    shutil.rmtree(tmp)


def _missing_local_outputs(root: Path, plan: Plan) -> list[str]:
    return [p for p in outputs_of(local_jobs(plan)) if not (root / p).exists()]


def pack(root: Path, plan: Plan, lease: Path = LEASE_DIR, limit: int = CALL_LIMIT) -> dict[str, Any]:
    """Write ``lease/call1`` and ``lease/call2`` (see the module's docstring); returns a summary."""
    missing = _missing_local_outputs(root, plan)
    if missing:
        raise LeaseError(
            f"{len(missing)} outputs of the local jobs are missing (first: {missing[0]}): build them "
            f"first with `uv run snakemake --profile workflow/profiles/default --config scale={plan.scale} "
            f"$(uv run python -m workflow.lease --scale {plan.scale} targets local)`"
        )
    lease = root / lease
    lease.mkdir(exist_ok=True)
    stash, stashed = stash_device_outputs(root, plan, lease)
    tree = size_of(root, travelling_files(root))

    call1, call2 = lease / "call1", lease / "call2"
    for call in (call1, call2):
        shutil.rmtree(call, ignore_errors=True)
        (call / "data").mkdir(parents=True)
    wheels = fetch_wheels(read_wheels(root / WHEELS_FILE), lease / "wheels")
    (call1 / "whl").mkdir()
    for wheel in wheels:
        os.link(wheel, call1 / "whl" / wheel.name)
    shallow_git(root, call1 / "gitdir")
    bench = call1 / "benchmarks.tar"
    with tarfile.open(bench, "w") as tar:
        for rule in sorted({job.rule for job in local_jobs(plan)}):
            folder = root / BENCHMARKS_DIR / plan.scale / rule
            if folder.is_dir():
                tar.add(folder, arcname=str(folder.relative_to(root)))

    compressed = {}
    for name, folder in dataset_folders(plan).items():
        compressed[name] = compress_folder(root, folder, lease / f"{plan.scale}-{name}.tar.xz")
    sizes = {name: path.stat().st_size for name, path in compressed.items()}
    first_room = limit - MARGIN - tree - folder_size(call1)
    split = split_datasets(sizes, first_room, limit - MARGIN - tree)
    for call, names in ((call1, split.first), (call2, split.second)):
        for name in names:
            os.link(compressed[name], call / "data" / compressed[name].name)
    device = device_jobs(plan)
    late = late_jobs(plan, split.second)
    (call1 / "scale").write_text(plan.scale + "\n", encoding="utf-8")
    (call1 / "late").write_text("".join(f"{name}\n" for name in split.second), encoding="utf-8")
    return {
        "stash": str(stash) if stash else None,
        "stashed_files": stashed,
        "tree_mib": tree / MIB,
        "call1_mib": (tree + folder_size(call1)) / MIB,
        "call2_mib": (tree + folder_size(call2)) / MIB,
        "call1_datasets": split.first,
        "call2_datasets": split.second,
        "device_jobs": len(device),
        "phase1_jobs": len([job for job in device if job.name not in late]),
    }


# -- taking back what the device made -------------------------------------------------------------
def merge_lock(
    here: dict[str, Any] | None, device: dict[str, Any], device_stages: Iterable[str]
) -> dict[str, Any]:
    """dvc.lock with ``device_stages``' entries from the device's lock, every other stage's from
    this machine's; stages in the device lock's order, then this machine's others."""
    here = here or {"schema": device.get("schema", "2.0"), "stages": {}}
    wanted = set(device_stages)
    ours = here.get("stages", {})
    theirs = device.get("stages", {})
    absent = sorted(wanted - set(theirs))
    if absent:
        raise LeaseError(
            f"the device's dvc.lock has no entry for {len(absent)} device stages (first: {absent[0]}): "
            f"its run did not finish; run `bash workflow/lease/device.sh collect` in another call, "
            f"or lease again"
        )
    stages: dict[str, Any] = {}
    for name, entry in theirs.items():
        stages[name] = entry if name in wanted else ours.get(name, entry)
    for name, entry in ours.items():
        stages.setdefault(name, entry)
    return {**here, "stages": stages}


def _rule_folder(path: str) -> str | None:
    """``benchmarks/<scale>/<rule>/...`` or ``logs/<scale>/<rule>/...`` -> the rule."""
    parts = Path(path).parts
    return parts[2] if len(parts) > 3 and parts[2] in RULES else None


def unpack(root: Path, plan: Plan, returned: Path, run_dvc: bool = True) -> dict[str, Any]:
    """Put the device's results, benchmark records and logs in place and record dvc.lock."""
    results_tar = returned / "results.tar.xz"
    if not results_tar.is_file():
        raise LeaseError(f"{results_tar}: not found; pass the folder the device's files came back to")
    device = device_jobs(plan)
    device_stages = [dvc_stage_name(plan.scale, job.name) for job in device]
    device_outputs = set(outputs_of(device))
    folders = tuple(
        path.rstrip("/") + "/"
        for job in device
        for name, path in job.outputs.items()
        if RULES[job.rule].outputs[name].directory
    )
    device_rules = {job.rule for job in device}
    placed, skipped = 0, []
    device_lock = None
    with tarfile.open(results_tar, "r:xz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            name = member.name
            data = tar.extractfile(member)
            assert data is not None
            content = data.read()
            if name == "dvc.lock":
                device_lock = yaml.safe_load(content)
                continue
            wanted = name in device_outputs or name.startswith(folders)
            wanted = wanted or (
                name.startswith(f"{BENCHMARKS_DIR.as_posix()}/{plan.scale}/")
                and _rule_folder(name) in device_rules
            )
            if name.startswith(".lease-state/"):  # the device run's status, phase logs, model checksums
                _write(root / LEASE_DIR / "state" / Path(name).name, content)
                continue
            if not wanted:  # a local job's output travelled there and back: it must be unchanged
                if not (root / name).is_file() or (root / name).read_bytes() != content:
                    skipped.append(name)
                continue
            _write(root / name, content)
            placed += 1
    logs_tar = returned / "logs.tar.xz"
    if logs_tar.is_file():
        with tarfile.open(logs_tar, "r:xz") as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.startswith(f"{LOGS_DIR.as_posix()}/{plan.scale}/"):
                    if _rule_folder(member.name) in device_rules:
                        data = tar.extractfile(member)
                        assert data is not None
                        _write(root / member.name, data.read())
    missing = sorted(p for p in device_outputs if not (root / p).exists() and Path(p).name != WEIGHTS)
    summary: dict[str, Any] = {"placed": placed, "not_placed": skipped, "missing_outputs": missing}
    dvc_yaml = root / DVC_YAML
    described = {}
    if dvc_yaml.is_file():  # it describes params.yaml's scale only
        described = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")).get("stages", {})
    if not set(device_stages) & set(described):
        summary["dvc"] = f"{DVC_YAML} has no stages of scale {plan.scale}: dvc.lock left as it is"
        return summary
    if device_lock is None:
        raise LeaseError(f"{results_tar}: holds no dvc.lock: the device's run did not reach `dvc commit`")
    lock_path = root / "dvc.lock"
    here = yaml.safe_load(lock_path.read_text(encoding="utf-8")) if lock_path.is_file() else None
    merged = merge_lock(here, device_lock, device_stages)
    _write(lock_path, yaml.safe_dump(merged, sort_keys=False).encode())
    if run_dvc:
        local = local_stage_names(plan)
        proc = subprocess.run(
            [sys.executable, "-m", "dvc", "commit", "--force", *local], cwd=root, check=False
        )
        if proc.returncode != 0:
            raise LeaseError(f"`dvc commit` of the {len(local)} local stages failed (exit {proc.returncode})")
    summary["dvc"] = f"dvc.lock: {len(device_stages)} model stages from the device, others here"
    return summary


def _write(path: Path, data: bytes) -> None:
    """Atomically: a temporary file beside ``path``, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
