"""What code each job runs, computed from imports (workflow/code_deps.py), and what a change
reruns because of it, in process (fast tier).

Both tools rerun a job when its code digest changes (DVC: the code file is a dep; Snakemake: the
digest is a param) or an input changed, so the plan's job sets (workflow.plan.reruns) are what
each tool plans; tests/test_reruns.py checks real reruns, and tests/test_import_closure.py that
every module a micro-DAG job imported is in its digest."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

from stages.config import load_yaml
from stages.data.builders import BUILDERS
from stages.utils.errors import ConfigError
from workflow.code_deps import CodeIndex, runtime_modules
from workflow.plan import Plan, generated_files, job_code, reruns

REPO = Path(__file__).resolve().parent.parent
RAW = load_yaml(REPO / "params.yaml")


@pytest.fixture
def code(tmp_path: Path) -> Path:
    """A copy of stages/ to edit."""
    root = tmp_path / "code"
    shutil.copytree(REPO / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    return root


@pytest.fixture(scope="module")
def plan() -> Plan:
    return Plan(copy.deepcopy(RAW), scale="reduced")


def edit(root: Path, module: str, old: str, new: str) -> None:
    path = root / module
    text = path.read_text()
    assert old in text, f"{module} no longer holds {old!r}"
    path.write_text(text.replace(old, new, 1))


def changed_jobs(plan: Plan, before: dict[str, str], root: Path) -> set[str]:
    return {name for name, info in job_code(plan, root).items() if info.digest != before[name]}


def digests(plan: Plan, root: Path) -> dict[str, str]:
    return {name: info.digest for name, info in job_code(plan, root).items()}


# --- the digest: parsed code, not text ------------------------------------------------------------


def test_comments_docstrings_and_layout_change_no_digest_while_code_does(code: Path) -> None:
    module = "stages/data/coco_ic.py"
    original = CodeIndex(code).module("stages.data.coco_ic").digest
    text = (code / module).read_text()
    assert text.startswith('"""')
    # A comment, a new docstring and a reformat (one long call split over lines) are no code.
    reformatted = text.replace('"""', '"""Edited docstring. ', 1) + "\n# a comment\n\n\n"
    reformatted = reformatted.replace(
        "from __future__ import annotations", "from __future__ import (annotations)"
    )
    (code / module).write_text(reformatted)
    assert CodeIndex(code).module("stages.data.coco_ic").digest == original
    # A changed constant is code.
    (code / module).write_text(reformatted + "_EDITED = 1\n")
    assert CodeIndex(code).module("stages.data.coco_ic").digest != original


def test_imports_under_type_checking_and_outside_stages_are_not_code(tmp_path: Path) -> None:
    pkg = tmp_path / "stages"
    (pkg / "sub").mkdir(parents=True)
    for path in (pkg / "__init__.py", pkg / "sub" / "__init__.py", pkg / "typed.py", pkg / "late.py"):
        path.write_text("")
    (pkg / "sub" / "entry.py").write_text(
        "from typing import TYPE_CHECKING\nimport numpy\nfrom . import sibling\n"
        "if TYPE_CHECKING:\n    from stages import typed\n"
        "def f():\n    from stages.late import x\n"
    )
    (pkg / "sub" / "sibling.py").write_text("")
    closure = CodeIndex(tmp_path).closure(["stages.sub.entry"])
    # A function's import can run: it counts; a TYPE_CHECKING import never runs: it does not.
    assert closure == ("stages", "stages.late", "stages.sub", "stages.sub.entry", "stages.sub.sibling")


# --- each job's code: its imports plus the modules it picks by name ------------------------------


def test_each_prepare_job_runs_its_own_builder_and_no_other(plan: Plan) -> None:
    code = job_code(plan)
    builder_modules = {b.module for b in BUILDERS.values()}
    for job in plan.jobs_of("prepare"):
        own = BUILDERS[RAW["datasets"][job.wildcards["dataset"]]["builder"]].module
        assert set(code[job.name].modules) & builder_modules == {own}, job.name


def test_an_evaluation_runs_its_attacks_kind_and_its_architecture_only(plan: Plan) -> None:
    code = job_code(plan)
    job = plan.by_name["evaluate-mnist_lat-lat_background"]
    modules = set(code[job.name].modules)
    assert {"stages.attack_kinds.pgd", "stages.models.lat_cnn", "stages.data.classic"} <= modules
    # Not DE's search, not another family, not another dataset's builder, no table code.
    for other in ("stages.attacks.differential_evolution", "stages.models.vgg", "stages.data.coco_ic"):
        assert other not in modules
    assert not any(m.startswith(("stages.report", "stages.claims")) for m in modules)
    # Training never runs evaluation code.
    train = code["train-mnist_lat"]
    assert not any(m.startswith("stages.evaluation") for m in train.modules)


def test_runtime_modules_come_from_the_three_registries() -> None:
    params = {
        "datasets": {"d": {"builder": "coco_ic"}},
        "architectures": {"a": {"family": "vgg"}},
        "attacks": {"x": {"kind": "de"}, "y": {"kind": "none"}},
    }
    assert runtime_modules(params) == [
        "stages.attack_kinds.de",
        "stages.attack_kinds.none",
        "stages.data.coco_ic",
        "stages.models.vgg",
    ]


# --- what a change plans, in both tools (the plan's job sets) ------------------------------------


def test_a_comment_in_a_builder_plans_nothing(plan: Plan, code: Path) -> None:
    before = plan.fingerprints(code)
    (code / "stages/data/builders.py").write_text(
        (code / "stages/data/builders.py").read_text() + "\n# note\n"
    )
    edit(code, "stages/data/coco_ic.py", '"""', '"""Reworded. ')
    assert plan.fingerprints(code) == before
    assert reruns(plan, plan, code, code) == set()


def test_a_code_change_in_one_builder_plans_exactly_the_jobs_that_run_it(plan: Plan, code: Path) -> None:
    before = digests(plan, code)
    (code / "stages/data/coco_ic.py").write_text(
        (code / "stages/data/coco_ic.py").read_text() + "\n_EDITED = 1\n"
    )
    changed = changed_jobs(plan, before, code)
    coco_datasets = {name for name, entry in RAW["datasets"].items() if entry["builder"] == "coco_ic"}
    # Every job whose job file names a coco_ic-built dataset imports the builder (to parse its
    # options, or to build it); nothing else does.
    expected = {
        job.name for job in plan.jobs if job.params and coco_datasets & set(job.params.get("datasets", {}))
    }
    assert changed == expected
    assert "prepare-coco_ic" in changed and "prepare-gtsrb_ic" not in changed
    assert not any(
        name.startswith("prepare-") and "coco" not in name and "segment6" not in name for name in changed
    )


def test_a_de_forward_change_plans_exactly_the_de_evaluations_and_what_reads_them(plan: Plan) -> None:
    raw = copy.deepcopy(RAW)
    raw["evaluation"]["de_forward"]["cpu"]["batch"] = 2 * raw["evaluation"]["de_forward"]["cpu"]["batch"]
    after = Plan(raw, scale="reduced")
    planned = reruns(plan, after)
    de = {
        job.name
        for job in plan.jobs
        if job.rule.startswith("evaluate") and RAW["attacks"][job.wildcards["attack"]]["kind"] == "de"
    }
    assert de and de <= planned
    assert {after.by_name[n].rule for n in planned - de} <= {
        "pixel_table",
        "matrix_table",
        "lat_table",
        "attention_table",
        "dual_table",
        "build_report",
    }
    # No PGD, dual, AutoAttack or clean evaluation: their job files do not hold de_forward.
    assert not any(after.by_name[n].rule.startswith("evaluate") for n in planned - de)
    assert planned == after.downstream(de | {"build_report"})


def test_a_population_de_could_not_run_is_refused_when_planning_naming_the_key() -> None:
    from stages.attack_kinds import attack_kind
    from stages.config import AttackSpec

    spec = AttackSpec(name="few", kind="de", population=2)
    with pytest.raises(ConfigError, match=r"attacks\.few\.population must be >= 4, got 2"):
        attack_kind(spec).check(spec)
    raw = copy.deepcopy(RAW)
    name = next(n for n, a in raw["attacks"].items() if a["kind"] == "de")
    raw["attacks"][name]["population"] = 2
    with pytest.raises(ConfigError, match=rf"attacks\.{name}\.population: 2 is less than the minimum of 4"):
        Plan(raw, scale="tiny")


def test_every_code_file_a_dvc_stage_depends_on_is_written_with_that_jobs_digest(plan: Plan) -> None:
    files = generated_files(plan, REPO)
    code = job_code(plan)
    for job in plan.jobs:
        assert code[job.name].file == job.code_file, job.name
        assert files[job.code_file].split("\n", 1)[0] == code[job.name].digest, job.name
    # evaluate and evaluate_matrix run one stage module: jobs with the same code share a file.
    shared = {job.code_file for job in plan.jobs_of("evaluate")} & {
        job.code_file for job in plan.jobs_of("evaluate_matrix")
    }
    assert shared


def package_imports() -> set[tuple[str, str]]:
    """(a, b): a module of package stages.a imports one of stages.b (subpackages only)."""
    index = CodeIndex(REPO)
    packages = {p.name for p in (REPO / "stages").iterdir() if (p / "__init__.py").is_file()}
    edges = set()
    for path in (REPO / "stages").rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        source = name.split(".")[1] if name.count(".") >= 1 else ""
        if source not in packages:
            continue
        for imported in index.module(name).imports:
            parts = imported.split(".")
            if len(parts) >= 2 and parts[1] in packages and parts[1] != source:
                edges.add((source, parts[1]))
    return edges


def test_no_import_loop_between_packages_but_config_and_utils() -> None:
    """docs/architecture.md's import directions: attacks never imports evaluation or the kinds,
    evaluation never imports the kinds, claims never imports report; the one loop is config and
    utils (the CLI helper loads params; config raises utils' errors)."""
    edges = package_imports()
    loops = {tuple(sorted(edge)) for edge in edges if edge[::-1] in edges}
    assert loops == {("config", "utils")}
    for forbidden in [
        ("attacks", "evaluation"),
        ("attacks", "attack_kinds"),
        ("evaluation", "attack_kinds"),
        ("claims", "report"),
        ("training", "evaluation"),
    ]:
        assert forbidden not in edges, forbidden
