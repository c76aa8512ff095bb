"""Issue 25's validation experiment: does training in bf16 change the science?

    uv run python bench/precision_validation.py --models mnist_lat,cifar10_vgg16,coco_ic_at_pgd \
        --variants fp32,bf16+cl --out bench/results/precision_validation.json

Each model of params.yaml (at its active scale) is trained from the same seed once per
precision *variant* with the pipeline's trainer, on the same processed training split as the
``train`` stage uses, and then evaluated in fp32 on the same test images under the same attacks
as the pipeline evaluates it (its evaluation groups' attacks, or ``--attacks``), by
:func:`stages.attack_kinds.evaluate.evaluate` (the ``evaluate`` stage's code). For every model
and attack the table compares each variant with the first (the reference, fp32):

- accuracy under the attack (clean accuracy for ``natural``) of both, on the same images;
- their difference with a 95 % interval for paired proportions (Wald interval of the
  difference of two proportions measured on the same images: d = (b - c) / n,
  se = sqrt(b + c - (b - c)^2 / n) / n, from the counts b, c of images only one model gets
  right) and the exact McNemar test's p-value (statsmodels);
- the training's wall time and images/s.

The adoption rule (issue 25) is applied per scale: a variant may become the scale's default
when, for every model and attack, the interval of the difference lies within
±``--margin`` (default 2 points).

Variants: ``fp32``, ``bf16``, ``fp16``, optionally ``+cl`` (channels-last), as in
bench/training_precision.py, and optionally ``@seed<k>``: the same precision trained from the
model's seed + k. ``fp32@seed1`` is the control: how far two fp32 trainings that differ only in
their seed lie apart on the same images, the yardstick for a precision's differences.

Data: ``data/<scale>/processed/<dataset>/{train,test}.npz``, built
by the pipeline (``snakemake data/reduced/processed/<dataset>/train.npz``).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from statsmodels.stats.contingency_tables import mcnemar

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.common import machine, markdown_table, write_record  # noqa: E402
from bench.training_precision import parse_variant  # noqa: E402
from stages.attack_kinds.evaluate import evaluate  # noqa: E402
from stages.config import Params  # noqa: E402
from stages.data.processed import load_split  # noqa: E402
from stages.training.trainer import train  # noqa: E402
from stages.utils.runtime import seed_everything  # noqa: E402

Z95 = 1.959963984540054


def paired_difference(reference: list[int], other: list[int]) -> dict[str, Any]:
    """other - reference accuracy on the same images, its Wald 95 % interval and McNemar's p."""
    n = len(reference)
    b = sum(1 for r, o in zip(reference, other, strict=True) if o and not r)  # only other right
    c = sum(1 for r, o in zip(reference, other, strict=True) if r and not o)  # only reference right
    both = sum(1 for r, o in zip(reference, other, strict=True) if r and o)
    d = (b - c) / n
    se = math.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n
    p = float(mcnemar([[both, c], [b, n - both - b - c]], exact=True).pvalue) if b + c else 1.0
    return {
        "n": n,
        "only_other": b,
        "only_reference": c,
        "difference": d,
        "ci95": [d - Z95 * se, d + Z95 * se],
        "mcnemar_p": p,
    }


def _seed_offset(variant: str) -> int:
    """k of a variant ``<precision>@seed<k>`` (0 without ``@``)."""
    _, at, seed = variant.partition("@")
    if not at:
        return 0
    if not (seed.startswith("seed") and seed[4:].isdigit()):
        raise SystemExit(f"--variants: {variant!r}: write the seed offset as @seed<k>, e.g. fp32@seed1")
    return int(seed[4:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="mnist_lat,cifar10_vgg16,coco_ic_at_pgd")
    p.add_argument("--variants", default="fp32,bf16+cl")
    p.add_argument(
        "--attacks", default="", help="model:attack+attack;... (default: the model's group attacks)"
    )
    p.add_argument("--margin", type=float, default=0.02, help="the adoption rule's bound on |difference|")
    p.add_argument("--params", default=str(REPO_ROOT / "params.yaml"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)

    params = Params.load(args.params)
    device = torch.device(args.device)
    data = REPO_ROOT / "data" / params.scale / "processed"
    variants = {v: parse_variant(v.partition("@")[0]) for v in args.variants.split(",")}
    seed_offsets = {v: _seed_offset(v) for v in variants}
    names = list(variants)
    chosen = dict(item.split(":", 1) for item in args.attacks.split(";") if item)
    rows, record = [], []

    def report() -> None:
        table = markdown_table(
            [
                "model",
                "attack",
                names[0],
                "variant",
                "difference [95 % CI]",
                "McNemar p",
                f"within ±{args.margin:.2f}",
            ],
            rows,
        )
        # The rule judges precisions; a seed control (``@seed<k>``) is the yardstick, not a candidate.
        judged = [r for r in record if "within_margin" in r and "@" not in r["variant"]]
        adopt = bool(judged) and all(r["within_margin"] for r in judged)
        print(table)
        if judged:
            print(f"adoption rule (every interval within ±{args.margin}): {'met' if adopt else 'not met'}")
        write_record(
            args.out,
            {
                "machine": machine(device),
                "scale": params.scale,
                "variants": names,
                "margin": args.margin,
                "rows": record,
                "adopt": adopt,
                "table": table,
            },
        )

    for model_name in args.models.split(","):
        spec = params.model(model_name)
        train_split = load_split(data / spec.dataset.name / "train.npz").head(spec.dataset.train_samples)
        dataset = params.evaluation_dataset(model_name)
        test_split = load_split(data / dataset.name / "test.npz").head(dataset.test_samples)
        attacks = (
            chosen[model_name].split("+")
            if model_name in chosen
            else [a for m, a in params.group_pairs() if m == model_name]
        )
        outcomes: dict[str, dict[str, Any]] = {}
        for name in names:
            seed = params.model_seed(model_name) + seed_offsets[name]
            seed_everything(seed)
            precision = variants[name]
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                outcome = train(
                    spec,
                    train_split,
                    seed=seed,
                    box_fraction=params.box_fraction,
                    device=device,
                    checkpoint=Path(tmp) / "checkpoint.pt",
                    progress=False,
                    precision=precision,
                )
                seconds = time.perf_counter() - start
            model = outcome.model.to(memory_format=torch.contiguous_format).eval()
            per_attack = {}
            for attack_name in attacks:
                metrics, _ = evaluate(
                    model,
                    test_split,
                    params.attack(attack_name),
                    box_fraction=params.box_fraction,
                    batch_size=params.eval_batch_size,
                    seed=params.seed,
                    device=device,
                    model_input=spec.input,
                    progress=False,
                )
                per_attack[attack_name] = {
                    "accuracy": metrics["accuracy"],
                    "correct": metrics["per_image"]["correct"],
                }
            outcomes[name] = {
                "train_seconds": seconds,
                "images_per_s": len(train_split) * len(outcome.history) / seconds,
                "final_train_loss": outcome.history[-1].loss,
                "attacks": per_attack,
            }
            print(
                f"{model_name} {name}: trained in {seconds:.0f} s; "
                + ", ".join(f"{a} {v['accuracy']:.4f}" for a, v in per_attack.items()),
                flush=True,
            )
        reference = outcomes[names[0]]
        for name in names[1:]:
            other = outcomes[name]
            for attack_name in attacks:
                diff = paired_difference(
                    reference["attacks"][attack_name]["correct"], other["attacks"][attack_name]["correct"]
                )
                within = -args.margin <= diff["ci95"][0] and diff["ci95"][1] <= args.margin
                record.append(
                    {
                        "model": model_name,
                        "attack": attack_name,
                        "variant": name,
                        "reference": names[0],
                        "reference_accuracy": reference["attacks"][attack_name]["accuracy"],
                        "accuracy": other["attacks"][attack_name]["accuracy"],
                        **diff,
                        "within_margin": within,
                    }
                )
                rows.append(
                    [
                        model_name,
                        attack_name,
                        f"{reference['attacks'][attack_name]['accuracy']:.4f}",
                        f"{other['attacks'][attack_name]['accuracy']:.4f}",
                        f"{diff['difference']:+.4f} [{diff['ci95'][0]:+.4f}, {diff['ci95'][1]:+.4f}]",
                        f"{diff['mcnemar_p']:.3g}",
                        "yes" if within else "no",
                    ]
                )
            rows.append(
                [
                    model_name,
                    "training wall time",
                    f"{reference['train_seconds']:.0f} s",
                    f"{other['train_seconds']:.0f} s",
                    f"{reference['train_seconds'] / other['train_seconds']:.2f}x faster",
                    "",
                    "",
                ]
            )
        record.append(
            {
                "model": model_name,
                "outcomes": {
                    n: {k: v for k, v in o.items() if k != "attacks"}
                    | {"accuracy": {a: x["accuracy"] for a, x in o["attacks"].items()}}
                    for n, o in outcomes.items()
                },
            }
        )
        report()  # the record so far, after every model
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
