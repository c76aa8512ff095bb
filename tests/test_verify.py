"""workflow.verify: which jobs a verification re-runs, the tolerance rule, the comparison of
re-run records with committed ones, the scratch copy with its mirror link, and the command line;
one dag-tier run re-verifies a tiny evaluation made in a throw-away project."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from stages.claims.record import ClaimRecord, ClaimsFile, Effect, Quantity, write_claims
from stages.claims.stats import Outcome
from stages.utils.errors import ConfigError, DataError
from tests.dag_tools import REPO, TINY_PROFILE, edit_params, make_project, run, write_tiny_mirror
from workflow.plan import Plan
from workflow.verify import (
    IDENTICAL,
    OUTSIDE,
    WITHIN,
    Selection,
    Tolerances,
    compare,
    effect_tolerance,
    judge,
    main,
    prepare_workspace,
    proportion_tolerance,
    render,
    select_paper,
    select_sample,
    summary,
)


@pytest.fixture(scope="module")
def plan() -> Plan:
    return Plan.load(REPO / "params.yaml")


# -- selection ---------------------------------------------------------------------------------
def test_a_paper_selects_the_evaluations_its_table_reads_and_its_claims(plan: Plan) -> None:
    selection = select_paper(plan, ["lat"])
    table = plan.jobs_of("lat_table")[0]
    assert selection.claims == (f"{plan.results}/claims/lat.json",)
    assert set(selection.evals) == set(table.inputs["evals"])
    assert f"{plan.results}/evals/mnist_lat/lat_background.json" in selection.evals
    assert f"{plan.results}/models/mnist_lat/metrics.json" in selection.models
    assert selection.targets == [*selection.evals, *selection.claims]
    both = select_paper(plan, ["lat", "attention_masks", "lat"])
    assert len(both.claims) == 2 and set(selection.evals) < set(both.evals)


def test_a_seeded_sample_is_deterministic_and_draws_only_committed_evaluations(
    plan: Plan, tmp_path: Path
) -> None:
    committed = sorted(job.outputs["metrics"] for job in plan.jobs_of("evaluate"))[::40]
    for path in committed:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("{}")
    first = select_sample(plan, tmp_path, 3, seed=7)
    assert first == select_sample(plan, tmp_path, 3, seed=7)
    assert list(first.evals) == sorted(first.evals) and set(first.evals) <= set(committed)
    assert first.claims == () and len(first.models) >= 1
    assert {select_sample(plan, tmp_path, 3, seed=s).evals for s in range(6)} != {first.evals}
    for bad in (0, len(committed) + 1):
        with pytest.raises(ConfigError, match=rf"--sample {bad}: choose between 1 and {len(committed)}"):
            select_sample(plan, tmp_path, bad, seed=0)


# -- tolerance and comparison ------------------------------------------------------------------
def test_the_tolerance_is_three_standard_errors_of_a_difference_floored_at_one_image() -> None:
    assert proportion_tolerance(0.5, 100) == pytest.approx(3 * math.sqrt(0.005))
    assert proportion_tolerance(0.9, 500, z=2) == pytest.approx(2 * math.sqrt(2 * 0.9 * 0.1 / 500))
    assert proportion_tolerance(0.0, 200) == proportion_tolerance(1.0, 200) == 1 / 200
    assert proportion_tolerance(0.999, 50) == 1 / 50  # the rule gives less than one image
    with pytest.raises(ValueError):
        proportion_tolerance(0.5, 0)
    assert judge(0.5, 0.5, None) == IDENTICAL
    assert judge(0.5, 0.6, 0.1) == WITHIN and judge(0.5, 0.61, 0.1) == OUTSIDE
    assert judge("holds", "inconclusive", None) == OUTSIDE and judge(0.5, None, 0.1) == OUTSIDE


def _evaluation(accuracy: float, samples: int = 100, loss: float = 1.0) -> dict:
    return {
        "model": "m",
        "accuracy": accuracy,
        "samples": samples,
        "loss": loss,
        "restarts": 1,
        "per_image": {},
    }


def _claims(outcome: Outcome, value: float, natural: float) -> ClaimsFile:
    rates = (
        Quantity("natural", natural, "%", 100, "results/evals/m/natural.json"),
        Quantity("attacked", natural - value, "%", 100, "results/evals/m/pgd.json"),
    )
    effect = Effect("drop", "points", value, value - 5, value + 5, 100, "paired bootstrap over images", True)
    claim = ClaimRecord("lat", "L3", "drops", "q", "§5", "mnist", "rule", outcome, "why", rates, effect)
    other = ClaimRecord("lat", "L4", "no effect", "q", "§5", "mnist", "rule", Outcome.NOT_TESTED, "why")
    return ClaimsFile("lat", "LAT", "tiny", (claim, other))


def _write(base: Path, path: str, record: dict | ClaimsFile) -> None:
    (base / path).parent.mkdir(parents=True, exist_ok=True)
    if isinstance(record, ClaimsFile):
        write_claims(base / path, record)
    else:
        (base / path).write_text(json.dumps(record))


def test_each_number_is_identical_within_or_outside_its_tolerance(tmp_path: Path) -> None:
    root, rerun = tmp_path / "root", tmp_path / "rerun"
    pairs = {
        "evals/m/same.json": (_evaluation(0.5), _evaluation(0.5)),
        # 3 sqrt(2 x 0.25 / 100) = 0.21: 0.2 is within, 0.3 is outside.
        "evals/m/within.json": (_evaluation(0.5, loss=1.0), _evaluation(0.7, loss=1.5)),
        "evals/m/outside.json": (_evaluation(0.5), _evaluation(0.8, samples=90)),
        "models/m/metrics.json": ({"final_train_accuracy": 0.9, "final_train_loss": 0.3},) * 2,
        "claims/lat.json": (_claims(Outcome.HOLDS, 50.0, 90.0), _claims(Outcome.INCONCLUSIVE, 51.0, 90.0)),
    }
    for path, (committed, again) in pairs.items():
        _write(root, path, committed)
        _write(rerun, path, again)
    evals = ("evals/m/same.json", "evals/m/within.json", "evals/m/outside.json", "evals/m/lost.json")
    _write(root, "evals/m/lost.json", _evaluation(0.5))  # the re-run did not write it
    selection = Selection("tiny", evals, ("models/m/metrics.json",), ("claims/lat.json",))
    rows = compare(root, rerun, selection, Tolerances())
    status = {(r.item, r.field): r.status for r in rows}
    assert status[("evals/m/same.json", "accuracy")] == IDENTICAL
    assert status[("evals/m/within.json", "accuracy")] == WITHIN
    assert status[("evals/m/outside.json", "accuracy")] == OUTSIDE
    assert status[("evals/m/outside.json", "samples")] == OUTSIDE
    assert status[("evals/m/lost.json", "(file)")] == OUTSIDE
    assert ("evals/m/same.json", "restarts") not in status  # a setting, not a result
    loss = next(r for r in rows if r.item == "evals/m/within.json" and r.field == "loss")
    assert loss.informational and loss.status == OUTSIDE and loss.difference == pytest.approx(0.5)
    assert status[("models/m/metrics.json", "final_train_accuracy")] == IDENTICAL
    assert status[("claims/lat.json#L3", "outcome")] == OUTSIDE
    # The effect's rates (90 % and 40 % on 100 images) give 100 x 3 sqrt(2 (0.09 + 0.24) / 100).
    assert status[("claims/lat.json#L3", "effect")] == WITHIN
    assert status[("claims/lat.json#L4", "outcome")] == IDENTICAL
    table = render(rows)
    header = table.splitlines()[0]
    for column in ("kind", "job/file", "field", "committed", "rerun", "|difference|", "tolerance", "status"):
        assert f" {column} " in header
    assert "OUTSIDE (info)" in table
    assert summary(rows).startswith("verify: ") and f"4 {OUTSIDE}" in summary(rows)


def test_an_effect_without_rates_gets_the_absolute_tolerance() -> None:
    claim = _claims(Outcome.HOLDS, 50.0, 90.0).claims[0]
    assert effect_tolerance(claim, Tolerances()) == pytest.approx(300 * math.sqrt(2 * (0.09 + 0.24) / 100))
    fs = Effect("FS", "FS", 0.1, 0.1, 0.1, 34, "no interval", False)
    loss = Effect("less loss", "%", -45.0, -60.0, -30.0, 500, "paired bootstrap", True)
    no_rates = (Quantity("loss", 1.2, "loss", 500, "x"),)
    assert effect_tolerance(replace(claim, effect=fs), Tolerances(effect=0.02)) == 0.02
    # In % or points, the absolute tolerance is on the 0-1 scale: 0.05 is 5 points.
    assert effect_tolerance(replace(claim, effect=loss, quantities=no_rates), Tolerances()) == pytest.approx(
        5.0
    )


# -- workspace ---------------------------------------------------------------------------------
def _checkout(tmp_path: Path, mirror: str) -> Path:
    root = tmp_path / "checkout"
    (root / "results/tiny").mkdir(parents=True)
    (root / "results/tiny/kept.json").write_text("{}")
    (root / "params.yaml").write_text(f"raw:\n  mirror: {mirror}\n")
    run(["git", "init", "-q"], root)
    run(["git", "add", "-A"], root)
    return root


def test_the_copy_holds_the_tracked_files_but_no_results_and_links_the_mirror(tmp_path: Path) -> None:
    mirror = tmp_path / "shared" / "datasets"
    mirror.mkdir(parents=True)
    root = _checkout(tmp_path, "../shared/datasets")
    repo = prepare_workspace(root, tmp_path / "work", "../shared/datasets")
    assert repo == tmp_path / "work" / "repo"
    assert (repo / "params.yaml").is_file() and not (repo / "results").exists()
    link = tmp_path / "work" / "shared" / "datasets"
    assert link.is_symlink() and link.resolve() == mirror.resolve()
    assert (repo / "../shared/datasets").resolve() == mirror.resolve()


def test_a_missing_mirror_is_named_before_anything_is_written(tmp_path: Path) -> None:
    root = _checkout(tmp_path, "../nowhere")
    with pytest.raises(DataError, match=r"raw\.mirror: '\.\./nowhere'.*is not there"):
        prepare_workspace(root, tmp_path / "work", "../nowhere")
    assert not (tmp_path / "work").exists()


# -- command line ------------------------------------------------------------------------------
def test_dry_run_prints_the_targets_and_the_snakemake_command(
    plan: Plan, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--root", str(REPO), "--paper", "lat", "--dry-run", "--cores", "3"]) == 0
    out = capsys.readouterr().out
    assert f"{plan.results}/claims/lat.json" in out and f"{plan.results}/evals/mnist_lat/natural.json" in out
    assert "--profile workflow/profiles/default --cores 3 --config scale=" in out


def test_bad_input_exits_2_with_the_option_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(REPO), "--sample", "100000", "--dry-run"]) == 2
    assert "--sample 100000: choose between 1 and" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--root", str(REPO), "--paper", "nonsense"])
    assert exc.value.code == 2


# -- the real thing (dag tier) -----------------------------------------------------------------
@pytest.mark.dag
def test_a_rerun_on_the_same_machine_reproduces_a_tiny_evaluation_identically(tmp_path: Path) -> None:
    """One evaluation (with its data and model) run in a throw-away tiny project whose mirror is
    a relative path, then verified: every re-run number is identical."""
    project = make_project(tmp_path / "project", write_tiny_mirror(tmp_path), micro=True)
    edit_params(project, **{"raw.mirror": "../mirror"})
    target = "results/tiny/evals/mnist_natural/natural.json"
    run(["snakemake", *TINY_PROFILE, target], project, timeout=900)
    out = tmp_path / "verify.json"
    args = ["--sample", "1", "--seed", "0", "--scale", "tiny", "--workdir", str(tmp_path / "work")]
    proc = run(["python", "-m", "workflow.verify", *args, "--out", str(out)], project, timeout=900)
    record = json.loads(out.read_text())
    assert record["selection"]["evals"] == [target]
    assert record["exit_code"] == 0 and record["counts"][IDENTICAL] >= 2
    assert {row["status"] for row in record["rows"]} == {IDENTICAL}, proc.stdout[-3000:]
    assert not (tmp_path / "work").exists()  # removed without --keep
