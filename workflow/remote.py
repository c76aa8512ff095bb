"""`dvc pull` that says what to configure when the DVC remote is missing (issue 21).

DVC itself answers a pull from a remote folder that is not there with "Is your cache up to
date?", which names neither the remote nor the fix. The project's default remote is a folder
beside the checkout (`../../backdrop-dvc-remote`, relative to .dvc/), so on any other machine
that is exactly what happens. This wrapper reads the remote from DVC's own config (so the
system, global, repo and .dvc/config.local levels shadow each other as they do for DVC), checks a
local remote before pulling, and otherwise hands over to `dvc pull`.

    uv run python -m workflow.remote check [-r NAME]
    uv run python -m workflow.remote pull [dvc pull args...]

Exit codes: 0 fine, 2 remote missing or not configured (nothing was pulled), else `dvc pull`'s.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MISSING = 2
REBUILD = "uv run snakemake --profile workflow/profiles/default   (or: uv run dvc repro)"
# DVC's own test for "this url is not a local path" (dvc.config.Config._resolve).
_SCHEME = re.compile(r"\w+://")


@dataclass(frozen=True)
class Remote:
    """One remote as DVC would use it for a pull."""

    name: str | None  # None: no -r given and no default remote configured
    url: str | None  # as written in the config file; None when the name has no section
    path: Path | None  # absolute local path DVC resolves the url to; None for s3://, ssh://, ...
    defined_in: str | None  # the config file that sets the url (the last level that does)
    is_default: bool


def find_root(start: Path | None = None) -> Path:
    from dvc.repo import Repo

    return Path(Repo.find_root(os.fspath(start) if start else None))


def read_remote(root: Path, name: str | None = None) -> Remote:
    """The remote `dvc pull [-r name]` in `root` would use, with its url resolved as DVC does."""
    from dvc.config import Config
    from dvc.repo import Repo

    with Repo(os.fspath(root)) as repo:
        config = repo.config
        default = config["core"].get("remote")
        chosen = name or default
        if not chosen:
            return Remote(None, None, None, None, is_default=True)
        section = config["remote"].get(chosen)
        if section is None:
            return Remote(chosen, None, None, None, is_default=chosen == default)
        # The merged config holds the url already resolved (a relative one against the
        # directory of the file that set it); the raw files give the text the user wrote.
        raw_url, defined_in = str(section["url"]), None
        for level in Config.LEVELS:
            file = config.files[level]
            try:
                raw = Config.load_file(file).get("remote", {}).get(chosen, {})
            except FileNotFoundError:
                continue
            if "url" in raw:
                raw_url, defined_in = raw["url"], file
    resolved = str(section["url"])
    if resolved.startswith("file://"):
        path: Path | None = Path(resolved.removeprefix("file://"))
    elif _SCHEME.match(resolved):
        path = None
    else:
        path = Path(resolved)
    return Remote(chosen, raw_url, path, defined_in, is_default=chosen == default)


def _shown(root: Path, file: str | None) -> str:
    if file is None:
        return "the DVC config"
    path = Path(file).resolve()
    # .dvc/config(.local) reads best relative to the checkout; a global or system file, in full.
    return str(path.relative_to(root.resolve())) if path.is_relative_to(root.resolve()) else str(path)


def problem(root: Path, remote: Remote) -> str | None:
    """Why `remote` cannot be pulled from, checked without touching the network; None if it may."""
    if remote.name is None:
        return "This DVC repository has no default remote, so `dvc pull` has nowhere to pull from."
    label = f"DVC remote '{remote.name}'" + (" (the default remote)" if remote.is_default else "")
    if remote.url is None:
        return f"{label} is named, but no remote of that name is configured (`uv run dvc remote list`)."
    if remote.path is None:
        return None
    where = f"its url '{remote.url}' (set in {_shown(root, remote.defined_in)}) resolves to {remote.path}"
    if not remote.path.exists():
        return f"{label} is missing: {where}, which does not exist on this machine."
    if not remote.path.is_dir():
        return f"{label} is unusable: {where}, which is not a directory."
    if not os.access(remote.path, os.R_OK | os.X_OK):
        return f"{label} is unreachable: {where}, which this user cannot read."
    return None


def advice(remote: Remote) -> str:
    """The commands that fix a missing or unreachable remote, for the remote pulled from."""
    lines = ["To fix it, do one of:"]
    if remote.url is not None:
        lines += [
            f"  - point '{remote.name}' at a copy of the remote this machine can reach (the --local",
            "    form writes .dvc/config.local, which git ignores; a relative <path> is taken from",
            "    the directory you run it in):",
            f"        uv run dvc remote modify --local {remote.name} url <path>",
            "  - or add another remote and make it the default (e.g. s3://bucket/backdrop,",
            "    ssh://host/dir or a shared folder; add --local after `add` to keep it out of the",
            "    committed .dvc/config):",
            "        uv run dvc remote add -d <name> <url>",
        ]
    else:
        # A name given with -r or set as core.remote but never defined: define that one.
        name = remote.name or "<name>"
        make_default = remote.name is None or remote.is_default
        first = "  - add the remote and make it the default" if make_default else "  - add the remote"
        lines += [
            f"{first} (<url>: e.g. s3://bucket/backdrop, ssh://host/dir or a",
            "    shared folder; add --local after `add` to keep it out of the committed .dvc/config):",
            f"        uv run dvc remote add {'-d ' if make_default else ''}{name} <url>",
        ]
    lines += [
        "  - or rebuild the outputs instead of pulling them:",
        f"        {REBUILD}",
    ]
    return "\n".join(lines)


def check(root: Path, name: str | None = None) -> tuple[int, str]:
    """(exit code, message): MISSING with what to configure, or 0 with what will be pulled from."""
    remote = read_remote(root, name)
    why = problem(root, remote)
    if why is not None:
        return MISSING, f"{why}\n{advice(remote)}"
    where = remote.path if remote.path is not None else remote.url
    if remote.path is None:
        return 0, f"DVC remote '{remote.name}' is {where} (not checked: only local remotes are)."
    return 0, f"DVC remote '{remote.name}' is {where}."


def remote_arg(args: Sequence[str]) -> str | None:
    """The remote a `dvc pull` command line names with -r/--remote, if any."""
    for i, arg in enumerate(args):
        if arg in ("-r", "--remote") and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--remote="):
            return arg.removeprefix("--remote=")
        if arg.startswith("-r") and not arg.startswith("--") and len(arg) > 2:
            return arg[2:]
    return None


def run_dvc(root: Path, args: Sequence[str]) -> int:
    # The interpreter running this module is the venv's, so its dvc is the one uv locked.
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, check=False).returncode


def pull(root: Path, args: Sequence[str]) -> int:
    remote = read_remote(root, remote_arg(args))
    why = problem(root, remote)
    if why is not None:
        print(f"{why} Nothing was pulled.\n{advice(remote)}", file=sys.stderr)
        return MISSING
    code = run_dvc(root, ["pull", *args])
    if code != 0:
        if remote.path is None:
            # Credentials, a host or a bucket may be wrong; only DVC could tell, and did above.
            print(
                f"\n`dvc pull` from DVC remote '{remote.name}' ({remote.url}) failed; if the "
                "remote is unreachable from here (see DVC's message above):\n"
                f"{advice(remote)}",
                file=sys.stderr,
            )
        else:
            # The folder is there, so the failure is about its contents: files never pushed.
            print(
                f"\nDVC remote '{remote.name}' at {remote.path} exists but lacks what DVC listed "
                "above: push them from the machine that has them (`uv run dvc push -r "
                f"{remote.name}`), or rebuild them:\n        {REBUILD}",
                file=sys.stderr,
            )
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m workflow.remote", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check_p = sub.add_parser("check", help="check the remote `dvc pull` would use; pull nothing")
    check_p.add_argument("-r", "--remote", default=None, help="a remote other than the default")
    sub.add_parser("pull", help="check, then run `dvc pull` with the remaining arguments")
    # Everything after `pull` belongs to `dvc pull`, verbatim: argparse would claim -h and `--`.
    pull_args = argv[1:] if argv[:1] == ["pull"] else None
    known = parser.parse_args(argv if pull_args is None else ["pull"])

    from dvc.exceptions import DvcException

    try:
        root = find_root()
        if pull_args is not None:
            return pull(root, pull_args)
        code, message = check(root, known.remote)
        print(message, file=sys.stderr if code else sys.stdout)
        return code
    except DvcException as exc:  # not a DVC repo, or a config DVC itself refuses
        print(f"ERROR: {exc}", file=sys.stderr)
        return MISSING


if __name__ == "__main__":
    sys.exit(main())
