"""workflow/remote.py (issue 21): a pull from a missing or unconfigured DVC remote says which remote,
where DVC looked, and which command fixes it, and never starts `dvc pull`; a usable one pulls.

Each test builds a throwaway git + DVC repo laid out like the project (the checkout in a folder,
the default remote a folder beside it, `../../backdrop-dvc-remote` relative to .dvc/), with
DVC's global and system config pointed into tmp_path so the machine's own remotes stay out.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from dvc.repo import Repo

from workflow import remote as wr

# `dvc remote add` reads a relative url from the working directory (the checkout) and stores it
# relative to .dvc/, so the committed config says what the project's does.
URL = "../backdrop-dvc-remote"
STORED = "../../backdrop-dvc-remote"


def dvc(root: Path, *args: str) -> None:
    # DVC's real CLI, as the advice tells a user to run it, so the config it writes is the real one.
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", str(tmp_path / "dvc-global"))
    monkeypatch.setenv("DVC_SYSTEM_CONFIG_DIR", str(tmp_path / "dvc-system"))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    root = tmp_path / "checkout"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    Repo.init(os.fspath(root)).close()
    return root


@pytest.fixture
def no_pull(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(root: Path, args: Sequence[str]) -> int:
        raise AssertionError(f"dvc {' '.join(args)} ran")

    monkeypatch.setattr(wr, "run_dvc", refuse)


def test_missing_local_default_remote_names_it_and_the_command_that_fixes_it(repo: Path) -> None:
    dvc(repo, "remote", "add", "-d", "store", URL)
    missing = repo.parent / "backdrop-dvc-remote"

    code, message = wr.check(repo)

    assert code == wr.MISSING == 2
    assert "DVC remote 'store' (the default remote) is missing" in message
    assert (repo / ".dvc" / "config").read_text().count(f"url = {STORED}") == 1
    assert f"'{STORED}' (set in {os.path.join('.dvc', 'config')})" in message
    assert f"resolves to {missing}, which does not exist" in message
    assert "uv run dvc remote modify --local store url <path>" in message
    assert "uv run dvc remote add -d <name> <url>" in message
    assert "uv run snakemake --profile workflow/profiles/default" in message
    assert "uv run dvc repro" in message

    # Relative to .dvc/ as DVC resolves it, not to the checkout or the working directory.
    missing.mkdir()
    assert wr.check(repo) == (0, f"DVC remote 'store' is {missing}.")


def test_the_advised_local_override_fixes_it_without_touching_the_committed_config(
    repo: Path,
) -> None:
    dvc(repo, "remote", "add", "-d", "store", URL)
    committed = (repo / ".dvc" / "config").read_text()
    elsewhere = repo.parent / "mounted" / "remote"
    elsewhere.mkdir(parents=True)

    _, message = wr.check(repo)
    advised = next(line.strip() for line in message.splitlines() if "modify --local" in line)
    command = shlex.split(advised.replace("<path>", str(elsewhere)))
    assert command[:3] == ["uv", "run", "dvc"]
    dvc(repo, *command[3:])

    assert wr.check(repo) == (0, f"DVC remote 'store' is {elsewhere}.")
    assert (repo / ".dvc" / "config").read_text() == committed
    ignored = subprocess.run(["git", "check-ignore", "-q", ".dvc/config.local"], cwd=repo, check=False)
    assert ignored.returncode == 0


def test_no_default_remote_says_how_to_add_one(repo: Path) -> None:
    code, message = wr.check(repo)

    assert code == 2
    assert "no default remote" in message
    assert "uv run dvc remote add -d <name> <url>" in message
    assert "modify --local" not in message  # there is nothing to modify


def test_a_remote_named_but_never_defined_says_to_define_that_name(repo: Path) -> None:
    code, message = wr.check(repo, "backup")

    assert code == 2
    assert "DVC remote 'backup' is named, but no remote of that name is configured" in message
    assert "uv run dvc remote add backup <url>" in message


def test_an_existing_folder_passes(repo: Path) -> None:
    (repo.parent / "backdrop-dvc-remote").mkdir()
    dvc(repo, "remote", "add", "-d", "store", URL)

    code, message = wr.check(repo)

    assert code == 0, message


def test_a_file_where_the_remote_folder_should_be_is_refused(repo: Path) -> None:
    (repo.parent / "backdrop-dvc-remote").write_text("not a folder")
    dvc(repo, "remote", "add", "-d", "store", URL)

    code, message = wr.check(repo)

    assert code == 2
    assert "is unusable" in message and "which is not a directory" in message


def test_pull_from_a_missing_remote_prints_the_advice_and_does_not_run_dvc(
    repo: Path, no_pull: None, capsys: pytest.CaptureFixture[str]
) -> None:
    dvc(repo, "remote", "add", "-d", "store", URL)

    assert wr.pull(repo, ["--jobs", "2"]) == 2

    err = capsys.readouterr().err
    assert "DVC remote 'store' (the default remote) is missing" in err
    assert "Nothing was pulled." in err
    assert "uv run dvc remote modify --local store url <path>" in err


def test_pull_checks_the_remote_named_with_r_not_the_default(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dvc(repo, "remote", "add", "-d", "store", URL)
    (repo.parent / "other").mkdir()
    dvc(repo, "remote", "add", "other", "../other")
    calls: list[list[str]] = []

    def fake(root: Path, args: Sequence[str]) -> int:
        calls.append(list(args))
        return 0

    monkeypatch.setattr(wr, "run_dvc", fake)

    assert wr.pull(repo, ["-r", "other", "data/x"]) == 0
    assert calls == [["pull", "-r", "other", "data/x"]]
    assert wr.pull(repo, ["--remote=store"]) == 2
    assert len(calls) == 1


@pytest.mark.parametrize("returncode", [0, 1])
def test_a_non_local_remote_is_pulled_and_a_failure_gets_the_advice_after_dvcs_output(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], returncode: int
) -> None:
    # Checking s3:// would need credentials and the network; DVC's own attempt is the check.
    dvc(repo, "remote", "add", "-d", "cloud", "s3://bucket/backdrop")
    monkeypatch.setattr(wr, "run_dvc", lambda root, args: returncode)

    assert wr.pull(repo, []) == returncode

    err = capsys.readouterr().err
    if returncode == 0:
        assert err == ""
    else:
        assert "`dvc pull` from DVC remote 'cloud' (s3://bucket/backdrop) failed" in err
        assert "uv run dvc remote modify --local cloud url <path>" in err


def test_real_pull_from_an_existing_remote_runs_dvc_and_a_missing_object_gets_a_hint(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo.parent / "backdrop-dvc-remote").mkdir()
    dvc(repo, "remote", "add", "-d", "store", URL)
    assert wr.pull(repo, []) == 0  # nothing tracked yet: DVC has nothing to do

    (repo / "data.txt").write_text("made on another machine, never pushed\n")
    dvc(repo, "add", "data.txt")
    (repo / "data.txt").unlink()
    for obj in sorted((repo / ".dvc" / "cache").rglob("*"), reverse=True):
        obj.unlink() if obj.is_file() else obj.rmdir()

    assert wr.pull(repo, []) != 0
    err = capsys.readouterr().err
    assert f"DVC remote 'store' at {repo.parent / 'backdrop-dvc-remote'} exists but lacks" in err
    assert "uv run dvc push -r store" in err


def test_remote_arg_reads_every_spelling_dvc_accepts() -> None:
    assert wr.remote_arg(["-r", "a", "t"]) == "a"
    assert wr.remote_arg(["--remote", "b"]) == "b"
    assert wr.remote_arg(["--remote=c"]) == "c"
    assert wr.remote_arg(["-rd"]) == "d"
    assert wr.remote_arg(["--run-cache", "-j", "4"]) is None


def test_cli_exit_codes(repo: Path, monkeypatch: pytest.MonkeyPatch, no_pull: None) -> None:
    monkeypatch.chdir(repo)
    assert wr.main(["check"]) == 2
    assert wr.main(["pull", "--jobs", "2"]) == 2
    (repo.parent / "backdrop-dvc-remote").mkdir()
    dvc(repo, "remote", "add", "-d", "store", URL)
    assert wr.main(["check"]) == 0
    assert wr.main(["check", "-r", "nope"]) == 2
