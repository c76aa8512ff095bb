"""One model trained for a fixed number of steps under each precision setting, side by side.

    uv run python bench/training_precision.py --model cifar10_vgg16 --scale paper \
        --data data/reduced/processed/cifar10/train.npz --images 5000 --epochs 4 --rounds 2 \
        --device cuda --out bench/results/training_precision_cuda.json

What it measures (issue 25's GPU readiness check, and the same on a CPU). The model of
params.yaml (``--model`` at ``--scale``: architecture, recipe, training attack) trains with the
pipeline's trainer (:func:`stages.training.trainer.train`) on the first ``--images`` images of
``--data`` for ``--epochs`` epochs, from the same seed, once per *variant*
(:class:`stages.config.TrainingPrecision`), the variants interleaved in each of ``--rounds``
rounds with the order rotated per round. Per variant: the median images/s over the rounds
(each round's images/s is the mean of its epochs after the first, which holds the warm-up: cuDNN
autotuning, allocator), the ratio to the first variant, and the loss and accuracy of every epoch
of round 1 (the loss curves, which must fall alike).

Variants (``--variants``, comma-separated): ``fp32`` (TF32 off), ``tf32`` (fp32 with TF32
matrix products and convolutions; CUDA only), ``bf16``, ``fp16`` (with a gradient scaler;
CUDA), each optionally ``+cl`` for channels-last (e.g. ``bf16+cl``) and ``+atk`` for an
adversarially trained model's training attack at the same precision (e.g. ``bf16+atk``; without
it that attack runs in fp32, as params.yaml's default ``precision.training_attack`` does).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import machine, markdown_table, synchronize, write_record  # noqa: E402
from stages.config import Params, TrainingPrecision  # noqa: E402
from stages.data.processed import load_split  # noqa: E402
from stages.training.trainer import train  # noqa: E402

DEFAULT_VARIANTS = "fp32,tf32,bf16,bf16+cl"


def parse_variant(text: str) -> TrainingPrecision:
    """``<fp32|tf32|bf16|fp16>[+cl][+atk]``: ``+cl`` channels-last; ``+atk`` runs adversarial
    training's attack at the same precision (without it the attack stays fp32)."""
    name, *flags = text.split("+")
    if name not in ("fp32", "tf32", "bf16", "fp16") or not set(flags) <= {"cl", "atk"}:
        raise SystemExit(
            f"--variants: {text!r} is not one of fp32, tf32, bf16, fp16, optionally +cl and +atk"
        )
    precision = "fp32" if name == "tf32" else name
    return TrainingPrecision(
        precision=precision,  # type: ignore[arg-type]
        memory_format="channels_last" if "cl" in flags else "contiguous",
        tf32=name == "tf32",
        attack_precision=precision if "atk" in flags else None,  # type: ignore[arg-type]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="cifar10_vgg16", help="a model of params.yaml")
    p.add_argument(
        "--scale", default=None, help="params.yaml's scale to resolve the model at (default: its own)"
    )
    p.add_argument("--data", required=True, help="the processed training split (.npz)")
    p.add_argument("--images", type=int, default=5000, help="train on the first N images")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"default: {DEFAULT_VARIANTS}")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--params", default=str(REPO_ROOT / "params.yaml"))
    p.add_argument("--out", type=Path, default=None, help="the run's JSON record")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.epochs < 2:
        raise SystemExit("--rounds must be >= 1 and --epochs >= 2 (the first epoch is the warm-up)")

    device = torch.device(args.device)
    params = Params.load(args.params, scale=args.scale)
    spec = params.model(args.model)
    spec = replace(spec, training=replace(spec.training, epochs=args.epochs, steps=None))
    split = load_split(args.data).head(args.images)
    variants = {v: parse_variant(v) for v in args.variants.split(",")}
    names = list(variants)

    rates: dict[str, list[float]] = {n: [] for n in names}
    curves: dict[str, list[dict[str, Any]]] = {}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            with tempfile.TemporaryDirectory() as tmp:
                synchronize(device)
                start = time.perf_counter()
                outcome = train(
                    spec,
                    split,
                    seed=args.seed,
                    box_fraction=params.box_fraction,
                    device=device,
                    checkpoint=Path(tmp) / "checkpoint.pt",
                    progress=False,
                    precision=variants[name],
                )
                synchronize(device)
                wall = time.perf_counter() - start
            epochs = outcome.history
            rate = statistics.mean(e.images_per_s for e in epochs[1:])
            rates[name].append(rate)
            curves.setdefault(name, [asdict(e) for e in epochs])
            losses = ", ".join(f"{e.loss:.4f}" for e in epochs)
            print(f"round {r + 1}: {name}: {rate:,.0f} images/s, {wall:.1f} s, losses {losses}", flush=True)

    reference = statistics.median(rates[names[0]])
    rows, record_rows = [], []
    for name in names:
        median = statistics.median(rates[name])
        curve = curves[name]
        record_rows.append(
            {
                "variant": name,
                "setting": asdict(variants[name]),
                "images_per_s_by_round": rates[name],
                "median_images_per_s": median,
                "ratio": median / reference,
                "epochs": curve,
            }
        )
        rows.append(
            [
                name,
                f"{median:,.0f}",
                f"{median / reference:.2f}x",
                " → ".join(f"{e['loss']:.3f}" for e in curve),
                f"{curve[-1]['accuracy']:.3f}",
            ]
        )
    table = markdown_table(
        ["variant", "images/s (median)", f"÷ {names[0]}", "loss by epoch (round 1)", "last epoch accuracy"],
        rows,
    )
    print(table)
    write_record(
        args.out,
        {
            "machine": machine(device),
            "model": args.model,
            "scale": params.scale,
            "arch": spec.arch.name,
            "data": args.data,
            "images": len(split),
            "epochs": args.epochs,
            "batch_size": spec.training.batch_size,
            "rounds": args.rounds,
            "rows": record_rows,
            "table": table,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
