"""CLI stage: one raw dataset, from a local mirror or the official archives, into ``--out``.

    python -m stages.fetch_raw --dataset mnist --out data/reduced/raw/mnist --mirror PATH|"" \
        [--download true|false] [--report results/reduced/raw/mnist.json]

The logic lives in :mod:`stages.data.fetch`; this module only parses arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stages.data.fetch import fetch_dataset
from stages.data.sources import SOURCES
from stages.utils.cli import run_stage


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.fetch_raw", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, choices=sorted(SOURCES))
    p.add_argument("--out", required=True, type=Path, help="dataset folder, e.g. data/<scale>/raw/mnist")
    p.add_argument(
        "--mirror",
        default="",
        help="local mirror root in the official layout (holding <dataset>/ and SHA256SUMS); empty for none",
    )
    p.add_argument(
        "--download",
        type=_bool,
        default=False,
        metavar="true|false",
        help="download the official archives when there is no mirror",
    )
    p.add_argument("--report", type=Path, help="write the fetch report here as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(args: argparse.Namespace) -> None:
    report = fetch_dataset(
        args.dataset,
        args.out,
        mirror=Path(args.mirror) if args.mirror else None,
        download=args.download,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    if args.report is not None:
        report.write(args.report)


if __name__ == "__main__":
    run_stage(build_parser(), main)
