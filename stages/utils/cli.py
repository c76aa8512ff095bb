"""The shared shape of a stage entry point: parse arguments, run, and turn a
:class:`BackdropError` into one clear line on stderr and exit status 1 (no traceback)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from stages.utils.errors import BackdropError, ConfigError
from stages.utils.runtime import setup_logging

if TYPE_CHECKING:
    from stages.config import Params


def params_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the arguments every params-driven stage takes: the pipeline passes its job
    file (``--job``, the part of params.yaml this job reads, written by workflow/plan.py); by
    hand, ``--params`` and ``--scale`` read the whole params.yaml instead."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--job",
        default=None,
        help="the job's params file (workflow/jobs/<scale>/<job>.json); overrides --params/--scale",
    )
    parser.add_argument("--params", default="params.yaml", help="the params file (default: params.yaml)")
    parser.add_argument(
        "--scale", default=None, help="tiny | reduced | paper (default: the params file's `scale`)"
    )
    return parser


def load_params(args: argparse.Namespace) -> Params:
    """The params a stage runs with: its job file when given, else the whole params file."""
    from stages.config import Params

    if not args.job:
        return Params.load(args.params, args.scale)
    try:
        with open(args.job, encoding="utf-8") as fh:
            job = json.load(fh)
        tree, scale = job["params"], job["scale"]
    except FileNotFoundError:
        raise ConfigError(
            f"--job {args.job}: no such job file; run `uv run python -m workflow.plan` (Snakemake "
            "writes the job files itself)"
        ) from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"--job {args.job}: not a job file ({exc}); rewrite it with `uv run python -m workflow.plan`"
        ) from None
    return Params.for_job(tree, scale, source=args.job)


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
