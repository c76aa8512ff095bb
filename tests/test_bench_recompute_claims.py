"""bench/recompute_claims.py: its formulas against published and library values, and the whole check
on a tiny attention-mask design built in tmp_path (params, dataset facts, evaluations, records):
it agrees with a correct record and flags a wrong outcome or a wrong rule."""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from bench.recompute_claims import (
    BootSettings,
    est_mean,
    est_rates_paired,
    holm_adjust,
    main,
    newcombe_paired_limits,
    newcombe_unpaired_limits,
    wilson_limits,
)

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "recompute_claims.py"
N = 100
MODELS = {"natural": "m_nat", "fg_natural": "m_fgnat", "adversarial": "m_adv", "fg_adversarial": "m_fgadv"}
# Correct images (the first k of N, so a better model's images include a worse one's): every
# comparison below is decided far from its boundary.
CORRECT = {
    ("m_nat", "natural"): 80,
    ("m_fgnat", "natural"): 95,
    ("m_adv", "natural"): 70,
    ("m_fgadv", "natural"): 90,
    ("m_nat", "am_pgd"): 10,
    ("m_fgnat", "am_pgd"): 40,
    ("m_adv", "am_pgd"): 30,
    ("m_fgadv", "am_pgd"): 60,
}
PAIRED = "Newcombe paired hybrid score interval (1998, method 10)"


def test_script_imports_nothing_from_the_stages() -> None:
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    modules = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in modules if m.split(".")[0] == "stages"]


def test_intervals_match_published_and_library_values() -> None:
    # Fagerland, Lydersen & Laake (2017, ch. 8; CRAN contingencytables): Cavo et al. 2012's paired
    # table [[59, 6], [16, 80]], Newcombe's square-and-add interval -0.1186 to -0.0046.
    low, high = newcombe_paired_limits(59, 6, 16, 80, 0.05)
    assert (low, high) == pytest.approx((-0.1186, -0.0046), abs=5e-5)
    rng = np.random.default_rng(0)
    for _ in range(200):
        n1, n2 = (int(x) for x in rng.integers(1, 200, size=2))
        k1, k2 = int(rng.integers(0, n1 + 1)), int(rng.integers(0, n2 + 1))
        alpha = float(rng.choice([0.01, 0.05, 0.2]))
        assert wilson_limits(k1, n1, alpha) == pytest.approx(
            proportion_confint(k1, n1, alpha=alpha, method="wilson"), abs=1e-12
        )
        assert newcombe_unpaired_limits(k1, n1, k2, n2, alpha) == pytest.approx(
            confint_proportions_2indep(k1, n1, k2, n2, method="newcomb", compare="diff", alpha=alpha),
            abs=1e-12,
        )
    p = [0.01, 0.04, 0.03, 0.2, 0.005]
    assert holm_adjust(p)[0] == pytest.approx(list(multipletests(p, method="holm")[1]))


def test_bca_agrees_with_scipy_within_monte_carlo_error() -> None:
    x = np.random.default_rng(1).exponential(size=60)
    ours = est_mean(x, 0.05, BootSettings(seed=3, resamples=9999))
    scipys = stats.bootstrap(
        (x,), np.mean, method="BCa", n_resamples=9999, random_state=np.random.default_rng(4)
    )
    assert ours.method == "bca"
    width = ours.high - ours.low
    assert ours.low == pytest.approx(scipys.confidence_interval.low, abs=0.05 * width)
    assert ours.high == pytest.approx(scipys.confidence_interval.high, abs=0.05 * width)
    constant = est_mean(np.full(5, 2.0), 0.05, BootSettings())
    assert constant.method == "constant" and constant.low == constant.high == 2.0


def _correct(model: str, attack: str) -> list[int]:
    k = CORRECT[(model, attack)]
    return [1] * k + [0] * (N - k)


def _write_inputs(root: Path) -> dict[str, Path]:
    params = {
        "scale": "tiny",
        "claims": {"alpha": 0.05, "comparable_margin": 5.0, "no_cost_margin": 2.0},
        "tables": {
            "attention_masks": {
                "datasets": {"toy": MODELS},
                "inputs": {"natural": "natural", "pgd": "am_pgd"},
            }
        },
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    (root / "datasets").mkdir()
    facts = {"test_summary": {"per_class": {"0": 50, "1": 50}}}
    (root / "datasets" / "toy.json").write_text(json.dumps(facts), encoding="utf-8")
    for (model, attack), k in CORRECT.items():
        folder = root / "evals" / model
        folder.mkdir(parents=True, exist_ok=True)
        record = {
            "samples": N,
            "accuracy": k / N,
            "loss": 1.0,
            "per_image": {
                "correct": _correct(model, attack),
                "loss": [1.0] * N,
                "prediction": [i % 2 for i in range(N)],
                "ids_sha256": "toy",
            },
        }
        (folder / f"{attack}.json").write_text(json.dumps(record), encoding="utf-8")
    return {"params": root / "params.yaml", "datasets": root / "datasets", "evals": root / "evals"}


def _leaf(claim_id: str, better: str, worse: str, attack: str, kind: str, bound: float) -> dict[str, Any]:
    est = est_rates_paired(np.array(_correct(better, attack)), np.array(_correct(worse, attack)), 0.05)
    return {
        "claim_id": claim_id,
        "outcome": "holds",
        "outcome_unadjusted": "holds",
        "family": "attention_masks",
        "parts": [],
        "models": [better, worse],
        "reason": "",
        "effect": {
            "value": est.value,
            "low": est.low,
            "high": est.high,
            "method": PAIRED,
            "rule_kind": kind,
            "rule_bound": bound,
        },
        "quantities": [{"source": f"results/x/evals/{m}/{attack}.json"} for m in (better, worse)],
    }


def _composite(claim_id: str, parts: list[str]) -> dict[str, Any]:
    return {
        "claim_id": claim_id,
        "outcome": "holds",
        "outcome_unadjusted": "holds",
        "family": "attention_masks",
        "parts": parts,
        "models": [],
        "reason": "",
    }


def _records() -> dict[str, Any]:
    claims = [
        _leaf("toy.A1.natural", "m_fgadv", "m_adv", "natural", "above", 0.0),
        _leaf("toy.A1.pgd", "m_fgadv", "m_adv", "am_pgd", "above", 0.0),
        _composite("toy.A1", ["toy.A1.natural", "toy.A1.pgd"]),
        _leaf("toy.A2", "m_fgnat", "m_nat", "am_pgd", "above", 0.0),
        _leaf("toy.A3.natural", "m_fgnat", "m_nat", "natural", "above", -2.0),
        _leaf("toy.A3.adversarial", "m_fgadv", "m_adv", "natural", "above", -2.0),
        _composite("toy.A3", ["toy.A3.natural", "toy.A3.adversarial"]),
    ]
    models = [{"model": m, "tests": []} for m in MODELS.values()]
    return {"paper": "attention_masks", "scale": "tiny", "claims": claims, "models": models}


def _run(tmp_path: Path, records: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    paths = _write_inputs(tmp_path)
    claims = tmp_path / "claims"
    claims.mkdir()
    (claims / "attention_masks.json").write_text(json.dumps(records), encoding="utf-8")
    out = tmp_path / "summary.json"
    argv = ["--claims", str(claims), "--evals", str(paths["evals"]), "--datasets", str(paths["datasets"])]
    argv += ["--params", str(paths["params"]), "--out", str(out), "--strict"]
    code = main(argv)
    return code, json.loads(out.read_text(encoding="utf-8"))


def test_agrees_with_a_correct_record(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, summary = _run(tmp_path, _records())
    assert code == 0 and summary["ok"]
    part = summary["papers"]["attention_masks"]
    assert part["counts"]["leaves"] == 5 and part["counts"]["composites"] == 2
    assert part["counts"]["agree"] == 7 and not part["problems"]
    assert part["counts"]["by_method"]["newcombe-paired"] == 5
    assert not summary["disagreements"] and not summary["discrepancies"]
    rows = {r["claim_id"]: r for r in part["rows"]}
    assert rows["toy.A1.pgd"]["interval"] == pytest.approx(
        [rows["toy.A1.pgd"]["record_interval"][0], rows["toy.A1.pgd"]["record_interval"][1]]
    )
    assert rows["toy.A1.pgd"]["holm_p"] < 0.05
    assert "toy.A1.pgd" in capsys.readouterr().out


def test_flags_a_wrong_outcome(tmp_path: Path) -> None:
    records = _records()
    wrong = copy.deepcopy(records)
    leaf = next(c for c in wrong["claims"] if c["claim_id"] == "toy.A1.pgd")
    leaf["outcome"] = leaf["outcome_unadjusted"] = "does not hold"
    code, summary = _run(tmp_path, wrong)
    assert code == 1 and not summary["ok"]
    flagged = {d["claim_id"] for d in summary["disagreements"]}
    # The leaf is wrong; its composite's record (holds) is what its parts recompute to.
    assert flagged == {"toy.A1.pgd"}
    assert summary["disagreements"][0]["notes"][0] == "record fails, recomputed holds"
    # An exact interval has no Monte-Carlo error to excuse it.
    assert not summary["within_monte_carlo"]


def test_flags_a_wrong_rule_and_a_wrong_composite(tmp_path: Path) -> None:
    wrong = _records()
    by_id = {c["claim_id"]: c for c in wrong["claims"]}
    by_id["toy.A3.natural"]["effect"]["rule_kind"] = "below"
    by_id["toy.A1"]["outcome"] = "inconclusive"
    code, summary = _run(tmp_path, wrong)
    assert code == 1
    flagged = {d["claim_id"]: d["notes"] for d in summary["disagreements"]}
    assert set(flagged) == {"toy.A3.natural", "toy.A1"}
    assert any("record's rule below" in note for note in flagged["toy.A3.natural"])
