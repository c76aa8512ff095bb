"""The pipeline's few-pixel DE evaluations under each way of scoring candidates, side by side.

    uv run python bench/de_pipeline_speed.py --weights results/reduced/models/cifar10_vgg16/model.pt \
        --data data/reduced/processed/cifar10_grabcut/test.npz \
        --attacks de_full_1px,de_background_1px --rounds 3 --out bench/results/de_pipeline_speed.json

What it measures. Each attack of params.yaml (at its active scale) runs exactly as the
``evaluate`` stage runs it (:func:`stages.evaluation.pixel.evaluate_pixel_attack`: the same
images, seed, untargeted and targeted parts), once per *variant* of
:class:`stages.attacks.differential_evolution.DEForward` per round, the variants interleaved
and their order rotated every round. Per variant: the median wall time over the rounds, the
model's forwards, the successes (untargeted and targeted), the successes that fp32 rejected, and
whether every per-image outcome equals the baseline's.

Variants (``--variants``, comma-separated ``precision:memory_format[:noskip]``):

* ``fp32:contiguous:noskip``, the baseline: every candidate scored in fp32 in the default
  layout, i.e. the attack as it ran before issue 23 (the same forwards in the same order);
* ``fp32:channels_last``: skip repeated candidates, channels-last layout (no result may change
  beyond float-summation noise);
* ``bf16:channels_last``: the search at bf16, every success and each reported image confirmed
  in fp32 (results may differ: the search visits other candidates).

A ratio is baseline seconds / variant seconds, both medians of the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import machine, markdown_table, synchronize, write_record  # noqa: E402
from stages.attacks.de_forward import DEForward  # noqa: E402
from stages.config import Params  # noqa: E402
from stages.data.processed import load_split  # noqa: E402
from stages.evaluation.pixel import evaluate_pixel_attack  # noqa: E402
from stages.models.checkpoint import load_trained  # noqa: E402

DEFAULT_VARIANTS = "fp32:contiguous:noskip,fp32:channels_last,bf16:channels_last"


def parse_variant(text: str, batch: int | None) -> DEForward:
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "noskip"):
        raise SystemExit(f"--variants: {text!r} is not precision:memory_format[:noskip]")
    try:
        return DEForward(
            batch=batch, precision=parts[0], memory_format=parts[1], skip_repeats=len(parts) == 2
        )  # type: ignore[arg-type]
    except ValueError as error:
        raise SystemExit(f"--variants: {error}") from None


def outcome(metrics: dict[str, Any]) -> dict[str, Any]:
    """What must not change between variants that keep the results: per-image successes."""
    block = metrics["pixel_attack"]
    targeted = block["targeted"] or {}
    return {
        "untargeted": [r["success"] for r in block["untargeted"]["images"]],
        "targeted": [p["success"] for p in targeted.get("pairs_list", [])],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", required=True, help="a trained model.pt")
    p.add_argument("--data", required=True, help="the processed test split (.npz) the attacks run on")
    p.add_argument("--attacks", required=True, help="comma-separated kind: de attacks of params.yaml")
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"default: {DEFAULT_VARIANTS}")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--params", default=str(REPO_ROOT / "params.yaml"))
    p.add_argument("--out", type=Path, default=None, help="the run's JSON record")
    args = p.parse_args(argv)
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be >= 1, got {args.rounds}")

    device = torch.device(args.device)
    params = Params.load(args.params)
    batch = params.de_forward(device.type).get("batch")
    variants = {v: parse_variant(v, batch) for v in args.variants.split(",")}
    baseline = next(iter(variants))
    model = load_trained(args.weights, device)
    split = load_split(args.data)
    attacks = [params.attack(a) for a in args.attacks.split(",")]

    seconds: dict[tuple[str, str], list[float]] = {}
    first: dict[tuple[str, str], dict[str, Any]] = {}
    names = list(variants)
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for attack in attacks:
            for name in order:
                synchronize(device)
                start = time.perf_counter()
                metrics, _ = evaluate_pixel_attack(
                    model,
                    split,
                    attack,
                    box_fraction=params.box_fraction,
                    batch_size=params.eval_batch_size,
                    seed=params.seed,
                    device=device,
                    progress=False,
                    de_forward=variants[name],
                )
                synchronize(device)
                seconds.setdefault((attack.name, name), []).append(time.perf_counter() - start)
                first.setdefault((attack.name, name), metrics)
                print(
                    f"round {r + 1}: {attack.name} {name}: {seconds[(attack.name, name)][-1]:.1f} s",
                    flush=True,
                )

    rows, record_rows = [], []
    for attack in attacks:
        base_s = statistics.median(seconds[(attack.name, baseline)])
        base_outcome = outcome(first[(attack.name, baseline)])
        for name in names:
            m = first[(attack.name, name)]["pixel_attack"]
            untargeted, targeted = m["untargeted"], m["targeted"] or {}
            median = statistics.median(seconds[(attack.name, name)])
            forwards = untargeted["forwards"] + targeted.get("forwards", 0)
            queries = sum(r["queries"] for r in untargeted["images"]) + sum(
                q["queries"] for q in targeted.get("pairs_list", [])
            )
            same = outcome(first[(attack.name, name)]) == base_outcome
            row = {
                "attack": attack.name,
                "variant": name,
                "seconds": seconds[(attack.name, name)],
                "median_seconds": median,
                "speedup": base_s / median,
                "queries": queries,
                "forwards": forwards,
                "untargeted_successes": untargeted["successes"],
                "attacked": len(untargeted["images"]),
                "targeted_successes": targeted.get("successes"),
                "targeted_pairs": targeted.get("pairs"),
                "low_precision_rejections": untargeted["low_precision_rejections"]
                + targeted.get("low_precision_rejections", 0),
                "same_outcomes_as_baseline": same,
            }
            record_rows.append(row)
            rows.append(
                [
                    attack.name,
                    name,
                    f"{median:.1f}",
                    f"{row['speedup']:.2f}x",
                    f"{forwards:,} / {queries:,}",
                    f"{row['untargeted_successes']}/{row['attacked']}",
                    f"{row['targeted_successes']}/{row['targeted_pairs']}" if targeted else "—",
                    row["low_precision_rejections"],
                    "yes" if same else "no",
                ]
            )
    table = markdown_table(
        [
            "attack",
            "variant",
            "median s",
            "speed-up",
            "forwards / queries",
            "untargeted",
            "targeted",
            "fp32 rejections",
            "same outcomes",
        ],
        rows,
    )
    print(table)
    write_record(
        args.out,
        {
            "machine": machine(device),
            "weights": args.weights,
            "data": args.data,
            "scale": params.scale,
            "rounds": args.rounds,
            "baseline": baseline,
            "variants": {n: v.__dict__ for n, v in variants.items()},
            "rows": record_rows,
            "table": table,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
