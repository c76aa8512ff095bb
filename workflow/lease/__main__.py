"""``python -m workflow.lease pack | unpack FOLDER | targets PHASE | stages``: see workflow/lease."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stages.config import ConfigError
from workflow.lease import LeaseError, device_stage_names, pack, phase_targets, unpack
from workflow.plan import Plan

USAGE = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow.lease", description=__doc__)
    parser.add_argument(
        "--params", default="params.yaml", help="the plan's params file (default: params.yaml)"
    )
    parser.add_argument("--scale", default=None, help="the scale (default: params.yaml's `scale`)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("pack", help="here: stash the device jobs' outputs, write .lease/call1 and .lease/call2")
    back = sub.add_parser("unpack", help="here: put the device's returned files in place, record dvc.lock")
    back.add_argument("returned", type=Path, help="the folder holding results.tar.xz (and logs.tar.xz)")
    back.add_argument("--no-dvc", action="store_true", help="skip `dvc commit` of the local stages")
    targets = sub.add_parser(
        "targets", help="one phase's Snakemake targets, one per line (local: built here before a lease)"
    )
    targets.add_argument("phase", choices=("local", "early", "all"))
    targets.add_argument("--late", type=Path, help="the file naming the datasets call 2 carries")
    sub.add_parser("stages", help="on the device: the device jobs' DVC stage names, one per line")
    args = parser.parse_args(argv)

    root = Path.cwd()
    try:
        plan = Plan.load(args.params, scale=args.scale)
        if args.command == "pack":
            print(json.dumps(pack(root, plan), indent=1))
        elif args.command == "unpack":
            summary = unpack(root, plan, args.returned, run_dvc=not args.no_dvc)
            print(json.dumps(summary, indent=1))
            if summary["missing_outputs"]:
                print(f"{len(summary['missing_outputs'])} device outputs are missing", file=sys.stderr)
                return 1
        elif args.command == "targets":
            late = args.late.read_text(encoding="utf-8").split() if args.late else []
            print("\n".join(phase_targets(plan, late, args.phase)))
        else:
            print("\n".join(device_stage_names(plan)))
    except (LeaseError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
