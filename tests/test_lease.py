"""workflow.lease: which jobs run on a lent GPU and which here, the phases' targets, the split of
the datasets between the two calls, the wheels' pins, the stash of stale outputs, and taking back
what the device returned (its files in place, dvc.lock merged)."""

from __future__ import annotations

import io
import lzma
import subprocess
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.dag_tools import REPO
from workflow.lease import (
    MIB,
    LeaseError,
    dataset_folders,
    device_jobs,
    device_stage_names,
    late_jobs,
    local_jobs,
    local_stage_names,
    merge_lock,
    phase_targets,
    read_wheels,
    split_datasets,
    stash_device_outputs,
    unpack,
    wheel_is,
)
from workflow.lease.__main__ import main
from workflow.plan import Plan


# -- where each job runs ---------------------------------------------------------------------------
def test_every_model_job_runs_on_the_device_and_every_data_job_here(tiny_plan: Plan) -> None:
    device = {job.name for job in device_jobs(tiny_plan)}
    local = {job.name for job in local_jobs(tiny_plan)}
    assert device.isdisjoint(local) and device | local == {job.name for job in tiny_plan.jobs}
    assert {job.name for job in tiny_plan.jobs_of("train")} <= device
    assert {
        job.name for job in tiny_plan.jobs_of("evaluate") + tiny_plan.jobs_of("evaluate_matrix")
    } <= device
    assert {job.name for job in tiny_plan.jobs_of("build_report")} <= device
    # The jobs that read the raw mirror, and the data checks that read no model, stay here.
    assert {job.rule for job in local_jobs(tiny_plan)} == {
        "fetch_raw",
        "prepare",
        "grabcut_vs_ground_truth",
        "salience_quality",
        "dataset_table",
    }
    assert len(device_stage_names(tiny_plan)) == len(device)
    assert all(
        name.startswith("tiny-") for name in device_stage_names(tiny_plan) + local_stage_names(tiny_plan)
    )


def test_the_datasets_are_the_processed_folders(tiny_plan: Plan) -> None:
    folders = dataset_folders(tiny_plan)
    assert folders["cifar10"] == f"{tiny_plan.data}/processed/cifar10"
    assert all(folder.startswith(f"{tiny_plan.data}/processed/") for folder in folders.values())
    assert set(folders) == {
        "mnist",
        "cifar10",
        "cifar10_grabcut",
        "coco_ic",
        "segment6",
        "gtsrb_ic",
        "gtsrb_ic_roi",
    }


def test_phase_one_holds_exactly_the_device_jobs_that_read_no_late_dataset(tiny_plan: Plan) -> None:
    late_folder = dataset_folders(tiny_plan)["cifar10"] + "/"
    early = set(phase_targets(tiny_plan, ["cifar10"], "early"))
    everything = set(phase_targets(tiny_plan, ["cifar10"], "all"))
    assert early < everything
    producers = tiny_plan.producers()

    def reads_cifar10(job, seen=frozenset()) -> bool:  # noqa: ANN001 - a Job
        return any(
            path.startswith(late_folder) or (path in producers and reads_cifar10(producers[path]))
            for path in job.all_inputs()
        )

    for job in device_jobs(tiny_plan):
        outputs = set(job.outputs.values())
        assert (outputs <= early) == (not reads_cifar10(job)), job.name
    # The LAT CIFAR-10 models wait for call 2; the MNIST ones do not; the report needs everything.
    assert f"{tiny_plan.results}/models/cifar10_lat/metrics.json" not in early
    assert f"{tiny_plan.results}/models/mnist_lat/metrics.json" in early
    assert f"{tiny_plan.results}/report.md" in everything - early
    assert set(phase_targets(tiny_plan, [], "early")) == everything
    assert set(phase_targets(tiny_plan, [], "local")) == {
        p for job in local_jobs(tiny_plan) for p in job.outputs.values()
    }
    assert late_jobs(tiny_plan, []) == set()
    with pytest.raises(LeaseError, match="phase 'later'"):
        phase_targets(tiny_plan, [], "later")


# -- the split between the calls -------------------------------------------------------------------
def test_datasets_are_split_largest_first_into_call_one_then_call_two() -> None:
    sizes = {"cifar10": 46 * MIB, "mnist": 11 * MIB, "gtsrb": 9 * MIB, "coco": 3 * MIB, "tiny": MIB // 10}
    split = split_datasets(sizes, first_room=25 * MIB, second_room=50 * MIB)
    assert split.first == ["coco", "gtsrb", "mnist", "tiny"] and split.second == ["cifar10"]
    everything = split_datasets(sizes, first_room=100 * MIB, second_room=0)
    assert everything.second == [] and len(everything.first) == len(sizes)
    with pytest.raises(LeaseError, match=r"'cifar10' \(46.0 MiB compressed\) fits in neither call"):
        split_datasets(sizes, first_room=30 * MIB, second_room=40 * MIB)


# -- the device's packages -------------------------------------------------------------------------
def test_the_wheels_are_pinned_to_uv_lock() -> None:
    lock = tomllib.loads((REPO / "uv.lock").read_text(encoding="utf-8"))
    locked = {pkg["name"]: pkg["version"] for pkg in lock["package"]}
    wheels = read_wheels(REPO / "workflow/lease/wheels.txt")
    names = [req.split("==")[0] for req in wheels]
    assert len(names) == len(set(names)), "one version of each package"
    assert {"snakemake", "dvc", "torchattacks"} <= set(names)
    assert "torch" not in names and "pulp" not in names  # the image's torch; the greedy scheduler
    for req in wheels:
        name, version = req.split("==")
        assert locked.get(name) == version, (
            f"workflow/lease/wheels.txt: {req}, uv.lock has {locked.get(name)}"
        )


def test_wheel_files_are_matched_by_their_normalized_name_and_version() -> None:
    assert wheel_is("zc.lockfile-4.0-py3-none-any.whl", "zc-lockfile", "4.0")
    assert wheel_is("GitPython-3.2.1-py3-none-any.whl", "gitpython", "3.2.1")
    assert wheel_is(
        "ruamel_yaml_clib-0.2.15-cp312-cp312-manylinux2014_x86_64.whl", "ruamel-yaml-clib", "0.2.15"
    )
    assert not wheel_is("dvc_data-3.16.0-py3-none-any.whl", "dvc", "3.16.0")
    assert not wheel_is("dvc-3.67.1-py3-none-any.whl", "dvc", "3.67.0")


# -- stale outputs and what comes back -------------------------------------------------------------
def _device_output(tiny_plan: Plan, rule: str) -> str:
    job = tiny_plan.jobs_of(rule)[0]
    return next(iter(job.outputs.values()))


def test_stale_device_outputs_are_moved_into_a_tar_and_local_ones_stay(
    tiny_plan: Plan, tmp_path: Path
) -> None:
    evaluation = _device_output(tiny_plan, "evaluate")
    dataset = next(iter(tiny_plan.jobs_of("prepare")[0].outputs.values()))
    for rel, text in ((evaluation, "old"), (dataset, "data")):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    tar_path, moved = stash_device_outputs(tmp_path, tiny_plan, tmp_path)
    assert moved == 1 and tar_path is not None
    assert not (tmp_path / evaluation).exists() and (tmp_path / dataset).read_text() == "data"
    with tarfile.open(tar_path) as tar:
        assert tar.getnames() == [evaluation]
    assert stash_device_outputs(tmp_path, tiny_plan, tmp_path) == (None, 0)


def test_merge_takes_the_device_stages_from_the_device_and_keeps_the_others() -> None:
    here = {
        "schema": "2.0",
        "stages": {"tiny-prepare-mnist": {"outs": "here"}, "tiny-train-a": {"outs": "stale"}},
    }
    device = {
        "schema": "2.0",
        "stages": {"tiny-prepare-mnist": {"outs": "device"}, "tiny-train-a": {"outs": "new"}},
    }
    merged = merge_lock(here, device, ["tiny-train-a"])
    assert merged["stages"] == {"tiny-prepare-mnist": {"outs": "here"}, "tiny-train-a": {"outs": "new"}}
    assert merge_lock(None, device, ["tiny-train-a"])["stages"]["tiny-train-a"] == {"outs": "new"}
    with pytest.raises(LeaseError, match="no entry for 1 device stages \\(first: tiny-train-b\\)"):
        merge_lock(here, device, ["tiny-train-a", "tiny-train-b"])


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_unpack_puts_device_outputs_in_place_and_merges_the_lock(tiny_plan: Plan, tmp_path: Path) -> None:
    root, returned = tmp_path / "repo", tmp_path / "returned"
    root.mkdir()
    returned.mkdir()
    evaluation = _device_output(tiny_plan, "evaluate")
    dataset = next(iter(tiny_plan.jobs_of("prepare")[0].outputs.values()))
    local_figure = tiny_plan.jobs_of("prepare")[0].outputs["grid"]
    (root / local_figure).parent.mkdir(parents=True)
    (root / local_figure).write_bytes(b"same")
    (root / "dvc.lock").write_text(
        yaml.safe_dump({"schema": "2.0", "stages": {"tiny-prepare-mnist": {"outs": 1}}})
    )
    device_lock = {
        "schema": "2.0",
        "stages": {name: {"outs": name} for name in device_stage_names(tiny_plan)},
    }
    # dvc.yaml describes one scale (params.yaml's): here the test plan's.
    (root / "dvc.yaml").write_text(
        yaml.safe_dump({"stages": {name: {"cmd": "x"} for name in device_lock["stages"]}})
    )
    with lzma.open(returned / "results.tar.xz", "wb") as xz, tarfile.open(fileobj=xz, mode="w") as tar:
        _add(tar, evaluation, b'{"accuracy": 0.5}')
        _add(tar, dataset, b"not from the device")  # a local job's output: left as it is here
        _add(tar, local_figure, b"same")  # one that came back unchanged: not reported
        _add(tar, "dvc.lock", yaml.safe_dump(device_lock).encode())
        _add(tar, f"benchmarks/{tiny_plan.scale}/train/mnist_lat.tsv", b"s\n1.0\n")
        _add(tar, ".lease-state/status", b"phase2 rc=0\n")
    summary = unpack(root, tiny_plan, returned, run_dvc=False)
    assert (root / evaluation).read_text() == '{"accuracy": 0.5}'
    assert not (root / dataset).exists() and summary["not_placed"] == [dataset]
    assert (root / f"benchmarks/{tiny_plan.scale}/train/mnist_lat.tsv").is_file()
    assert (root / ".lease/state/status").read_text() == "phase2 rc=0\n"
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    assert lock["stages"]["tiny-prepare-mnist"] == {"outs": 1}
    assert all(lock["stages"][name] == {"outs": name} for name in device_stage_names(tiny_plan))
    # Everything but that one evaluation is missing; the weights never come back and are not listed.
    assert evaluation not in summary["missing_outputs"]
    assert not any(path.endswith("/model.pt") for path in summary["missing_outputs"])
    assert len(summary["missing_outputs"]) > 100
    # For a scale dvc.yaml does not describe, the files are placed and dvc.lock is left alone.
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"reduced-train-x": {"cmd": "x"}}}))
    before = (root / "dvc.lock").read_text()
    again = unpack(root, tiny_plan, returned, run_dvc=False)
    assert "no stages of scale tiny" in again["dvc"] and (root / "dvc.lock").read_text() == before


def test_the_command_line_prints_targets_and_refuses_a_missing_return(
    tiny_plan: Plan, tmp_path: Path, capsys
) -> None:  # noqa: ANN001
    params = str(REPO / "params.yaml")
    assert main(["--params", params, "--scale", "tiny", "targets", "local"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == phase_targets(tiny_plan, [], "local")
    assert main(["--params", params, "--scale", "tiny", "unpack", str(tmp_path)]) == 2
    assert "results.tar.xz: not found" in capsys.readouterr().err


def test_the_device_script_refuses_a_folder_without_wheels(tmp_path: Path) -> None:
    script = REPO / "workflow/lease/device.sh"
    usage = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    empty = subprocess.run(
        ["bash", str(script), "start", str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert empty.returncode == 2 and "no wheels" in empty.stdout
