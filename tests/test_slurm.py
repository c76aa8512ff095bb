"""The SLURM profile against a real scheduler (the single-node cluster of
workflow/cluster/start-local-slurm.sh), on copies of the micro project:

- a slice of the micro-DAG (dataset builds, trainings, PGD and DE evaluations, the pixel-space
  table) submitted with real `sbatch`: every job shows in the scheduler's accounting, and the
  outputs are byte-identical to the same jobs run locally;
- a training job cancelled with `scancel` while it runs: the run fails naming the job and its
  logs, nothing half-written is left, and the same command resumes it from its checkpoint to
  the local result (a job that finished beside it is not run again);
- a partition the cluster does not have, and a scheduler that does not answer: each job's
  submission fails at once with sbatch's words, the rule and its log, and the same command
  with the right settings then runs what is missing.

The cluster has no GPUs: the CPU-only override profile (workflow/profiles/slurm-cpu) maps the
training and attack jobs' GPU requests onto its CPU partition. The tests skip, saying why, only
when the cluster cannot run on this machine (the start script's exit status 3: no apt, the
packages not installable, not root)."""

from __future__ import annotations

import filecmp
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml

from tests.dag_tools import TINY_PROFILE, copy_of, edit_params, env, run, snakemake_jobs

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parent.parent
START = REPO / "workflow" / "cluster" / "start-local-slurm.sh"
SLURM = ["--profile", "workflow/profiles/slurm", "--workflow-profile", "workflow/profiles/slurm-cpu"]
# The tiny scale, two jobs at a time (the cluster is this 2-core machine), no resubmission: a
# failed job must fail the run, not be retried by the profile's `retries`. The first status
# check 2 s after a submission (the plugin's default, 40 s, is made for busy clusters; it also
# resets the interval to this after each finished job), and 5 s for an output to appear (the
# profile's 60 s are for shared file systems; here the files are local).
ARGS = [
    "--config",
    "scale=tiny",
    "--jobs",
    "2",
    "--retries",
    "0",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--latency-wait",
    "5",
]
SLICE = [
    "results/tiny/evals/mnist_lat/lat_background.json",  # fetch, prepare, train, PGD
    "results/tiny/tables/pixel_space.md",  # GrabCut masks, a VGG-16, DE evaluations, a table
]


@pytest.fixture(scope="module")
def cluster() -> None:
    """The local cluster, started if it is not running (.ci/run starts it before the tests)."""
    proc = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=1800)
    if proc.returncode == 3:
        pytest.skip(f"no local SLURM cluster here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def slurm_ids(output: str) -> list[str]:
    return re.findall(r"submitted with SLURM jobid (\d+)", output)


def submitted(output: str) -> dict[str, list[str]]:
    """Rule -> the SLURM job ids Snakemake submitted for it (the plugin's `Job <n> has been
    submitted with SLURM jobid <id> (log: .../slurm_logs/rule_<rule>/<wildcards>/<id>.log)`)."""
    rules: dict[str, list[str]] = {}
    for jobid, rule in re.findall(
        r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+?)/", output
    ):
        rules.setdefault(rule, []).append(jobid)
    return rules


def accounting(ids: list[str]) -> dict[str, str]:
    """Job id -> final state, from the scheduler's accounting (sacct; a cancelled job's state
    reads `CANCELLED by <uid>`)."""
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(ids)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("|", 1) for line in out.splitlines() if line.strip())


def squeue_state(jobid: str) -> str:
    """The job's state as the controller sees it now (RUNNING, PENDING, ...; '' if unknown)."""
    out = subprocess.run(["squeue", "-h", "-j", jobid, "-o", "%T"], capture_output=True, text=True)
    return out.stdout.strip()


def snakemake(cmd: list[str], project: Path, timeout: int, **extra_env: str) -> subprocess.CompletedProcess:
    """`cmd` in ``project`` with the test environment (and ``extra_env``); not checked."""
    return subprocess.run(
        cmd, cwd=project, env={**env(), **extra_env}, capture_output=True, text=True, timeout=timeout
    )


def no_temporary_files(project: Path) -> list[Path]:
    """Leftovers of interrupted atomic writes (stages.utils.io: `.<name>.<random>.tmp` beside
    the artifact) anywhere in the project's outputs."""
    return [p for top in ("results", "data") for p in (project / top).rglob("*.tmp")]


@contextmanager
def in_background(cmd: list[str], project: Path, log: Path) -> Iterator[subprocess.Popen]:
    """`cmd` running in ``project``, its output going to ``log`` (a file, read while it runs: a
    pipe nobody reads fills and stalls Snakemake). Whatever happens, it is stopped at the end:
    SIGINT (Snakemake cancels its SLURM jobs and exits; it ignores SIGTERM while it waits for a
    job), SIGKILL after 60 s, and every job it submitted is cancelled."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=project, env=env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if ids := slurm_ids(log.read_text()):
            subprocess.run(["scancel", *ids], capture_output=True)


def wait_until(
    what: str, found: Callable[[], object], proc: subprocess.Popen, log: Path, timeout: float
) -> object:
    """Poll ``found`` until it returns something true; fail, saying ``what`` was awaited and
    what Snakemake said, if Snakemake ends first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not (value := found()):
        if proc.poll() is not None:
            pytest.fail(f"Snakemake ended (exit {proc.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f} s: {what}\nSnakemake said:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)
    return value


def deterministic_outputs(project: Path, targets: list[str]) -> list[str]:
    """The slice's outputs that hold numbers (metrics, evaluations, tables), not timings."""
    jobs = snakemake_jobs(project, *ARGS[:2], "--forceall", *targets)
    return [
        out
        for job in jobs
        for out in job.outputs
        if out.endswith((".json", ".csv", ".md")) and not out.endswith("throughput.json")
    ]


def test_a_slice_through_sbatch_is_accounted_and_equals_the_local_run(
    cluster: None, finished: Path, tmp_path: Path
) -> None:
    project = copy_of(finished, tmp_path)
    compared = deterministic_outputs(project, SLICE)
    assert len(compared) > 10
    out = run(["snakemake", *SLURM, *ARGS, "--forceall", *SLICE], project, timeout=2400)
    said = out.stdout + out.stderr
    ids = slurm_ids(said)
    ran = re.search(r"(\d+) of (\d+) steps \(100%\) done", said)
    assert ran and int(ran.group(1)) == len(ids) > 10, said[-3000:]
    states = accounting(ids)
    assert sorted(states) == sorted(ids) and set(states.values()) == {"COMPLETED"}, states
    differ = [p for p in compared if not filecmp.cmp(project / p, finished / p, shallow=False)]
    assert differ == []


# --- a job cancelled with scancel while it runs --------------------------------------------------

MODEL = "mnist_lat"
# Epochs of the cancelled training: the cancel lands after the first epoch's checkpoint, with
# epochs still to run (one takes a second or two at the tiny scale).
EPOCHS = 4
TRAINED = f"results/tiny/models/{MODEL}"
TRAINING = [f"{TRAINED}/model.pt", f"{TRAINED}/metrics.json", f"{TRAINED}/throughput.json"]
# A job of its own beside the training, which finishes in the cancelled run: the rerun must not
# run it again.
BESIDE = "results/tiny/evals/cifar10_vgg16/de_full_1px.json"


def _longer_training(finished: Path, tmp_path: Path, name: str) -> Path:
    """A copy whose training of MODEL runs EPOCHS epochs from scratch (no checkpoint)."""
    project = copy_of(finished, tmp_path, name)
    recipe = yaml.safe_load((project / "params.yaml").read_text())["models"][MODEL]["training"]
    edit_params(project, **{f"training.{recipe}.epochs.tiny": EPOCHS})
    (project / "results/tiny/checkpoints" / f"{MODEL}.pt").unlink()
    return project


def test_a_job_cancelled_with_scancel_fails_the_run_naming_it_and_the_same_command_resumes_it(
    cluster: None, finished: Path, tmp_path: Path
) -> None:
    reference = _longer_training(finished, tmp_path, "reference")
    run(["snakemake", *TINY_PROFILE, f"{TRAINED}/model.pt"], reference)

    project = _longer_training(finished, tmp_path, "project")
    for rel in (BESIDE, BESIDE.replace(".json", ".throughput.json")):
        (project / rel).unlink()
    checkpoint = project / "results/tiny/checkpoints" / f"{MODEL}.pt"
    cmd = ["snakemake", *SLURM, *ARGS, f"{TRAINED}/model.pt", BESIDE]
    log = tmp_path / "cancelled-run.log"
    with in_background(cmd, project, log) as proc:

        def training_past_its_first_epoch() -> str | None:
            ids = submitted(log.read_text()).get("train")
            # The checkpoint is written atomically at the end of each epoch.
            return ids[0] if ids and squeue_state(ids[0]) == "RUNNING" and checkpoint.is_file() else None

        jobid = str(
            wait_until(
                "the training job running past its first epoch", training_past_its_first_epoch, proc, log, 300
            )
        )
        subprocess.run(["scancel", jobid], check=True)
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"Snakemake had not noticed 300 s later that SLURM job {jobid} was cancelled "
                f"(sacct: {accounting([jobid])}):\n{log.read_text()[-4000:]}"
            )
    said = log.read_text()
    state = accounting([jobid])[jobid]
    assert state.startswith("CANCELLED"), f"job {jobid} ended {state} before it could be cancelled"

    # The run fails, naming the job, the scheduler's verdict and both logs (the stage's, SLURM's).
    assert proc.returncode != 0, said[-3000:]
    slurm_log = f".snakemake/slurm_logs/rule_train/{MODEL}/{jobid}.log"
    for words in (
        "Error in rule train:",
        f"SLURM-job '{jobid}' failed, SLURM status is: 'CANCELLED'",
        f"log: logs/tiny/train/{MODEL}.log, ",
        f"{project}/{slurm_log} (check log file(s) for error details)",
    ):
        assert words in said, f"{words!r} not in:\n{said[-3000:]}"
    assert f"JOB {jobid} ON" in (project / slurm_log).read_text()  # slurmstepd's "... CANCELLED AT"
    # The job beside it finished and is kept.
    beside = submitted(said)["evaluate"]
    assert set(accounting(beside).values()) == {"COMPLETED"} and (project / BESIDE).is_file()

    # Nothing half-written: no output of the cancelled job, no temporary file, a whole checkpoint.
    assert [rel for rel in TRAINING if (project / rel).exists()] == []
    assert no_temporary_files(project) == []
    epoch = torch.load(checkpoint, weights_only=False)["epoch"]
    assert 1 <= epoch < EPOCHS, f"the cancel should land between epochs 1 and {EPOCHS} (checkpoint: {epoch})"

    # The same command runs the cancelled job alone, resuming from its checkpoint, to the result
    # of an uninterrupted local run; the job that had finished is not run again.
    resumed = run(cmd, project, timeout=600)
    again = submitted(resumed.stdout + resumed.stderr)
    assert list(again) == ["train"] and len(again["train"]) == 1, resumed.stderr[-3000:]
    assert set(accounting(again["train"]).values()) == {"COMPLETED"}
    assert (
        f"resuming from the checkpoint of epoch {epoch}"
        in (project / f"logs/tiny/train/{MODEL}.log").read_text()
    )
    differ = [rel for rel in TRAINING[:2] if not filecmp.cmp(project / rel, reference / rel, shallow=False)]
    assert differ == []
    assert filecmp.cmp(project / BESIDE, finished / BESIDE, shallow=False)
    assert no_temporary_files(project) == []


# --- submissions that cannot succeed ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dead_scheduler_conf(tmp_path: Path) -> Path:
    """A copy of the cluster's slurm.conf whose controller and accounting ports nothing listens
    on: the clients (sbatch, squeue, sacct) meet what they meet when the scheduler is down."""
    shown = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
    text = Path(re.search(r"^SLURM_CONF\s*=\s*(\S+)", shown, re.M).group(1)).read_text()
    for key in ("SlurmctldPort", "AccountingStoragePort"):
        text, n = re.subn(rf"^{key}=\d+$", f"{key}={_free_port()}", text, flags=re.M)
        assert n == 1, f"no {key} line in the cluster's slurm.conf"
    conf = tmp_path / "scheduler-down.conf"
    conf.write_text(text)
    return conf


def test_an_unknown_partition_or_a_scheduler_that_is_down_fails_naming_the_job_and_the_next_run_resumes(
    cluster: None, finished: Path, tmp_path: Path
) -> None:
    project = copy_of(finished, tmp_path)
    target = "results/tiny/datasets/mnist.json"  # MNIST's prepare job
    (project / target).unlink()
    cmd = ["snakemake", *SLURM, *ARGS, target]
    named = ("Error in rule prepare:", "log: logs/tiny/prepare/mnist.log")

    # A partition the cluster does not have: sbatch refuses the job at once.
    began = time.monotonic()
    nope = snakemake([*cmd, "--default-resources=slurm_partition=nope"], project, timeout=300)
    said = nope.stdout + nope.stderr
    assert nope.returncode != 0 and time.monotonic() - began < 120, said[-3000:]
    for words in ("sbatch: error: invalid partition specified: nope", *named):
        assert words in said, f"{words!r} not in:\n{said[-3000:]}"
    assert slurm_ids(said) == []

    # The scheduler not running (its ports closed): sbatch cannot reach the controller.
    down = snakemake(cmd, project, timeout=300, SLURM_CONF=str(dead_scheduler_conf(tmp_path)))
    said = down.stdout + down.stderr
    assert down.returncode != 0, said[-3000:]
    for words in (
        "Batch job submission failed: Unable to contact slurm controller (connect failure)",
        *named,
    ):
        assert words in said, f"{words!r} not in:\n{said[-3000:]}"
    assert slurm_ids(said) == []

    # The same command with the profile's settings and the scheduler back runs the job.
    good = run(cmd, project, timeout=600)
    ids = submitted(good.stdout + good.stderr)
    assert list(ids) == ["prepare"] and len(ids["prepare"]) == 1, good.stderr[-3000:]
    assert set(accounting(ids["prepare"]).values()) == {"COMPLETED"}
    assert filecmp.cmp(project / target, finished / target, shallow=False)
