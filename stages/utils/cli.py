"""The shared shape of a stage entry point: parse arguments, run, and turn a
:class:`BackdropError` into one clear line on stderr and exit status 1 (no traceback)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from stages.utils.errors import BackdropError
from stages.utils.runtime import setup_logging


def params_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the two arguments every params-driven stage takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    parser.add_argument(
        "--scale", default=None, help="tiny | reduced | paper (default: the params file's `scale`)"
    )
    return parser


def run_stage(
    parser: argparse.ArgumentParser,
    main: Callable[[argparse.Namespace], None],
    argv: Sequence[str] | None = None,
) -> None:
    setup_logging()
    args = parser.parse_args(argv)
    try:
        main(args)
    except BackdropError as exc:
        logging.getLogger(parser.prog).debug("stage failed", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
