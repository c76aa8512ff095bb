"""The plan (workflow/plan.py), in process: the committed dvc.yaml and job files are what it
writes; every job's file holds exactly what its stage reads (the job's view of params equals the
whole file's); and what a change reruns, as the plan's job sets before and after the change.

Both tools rerun a job when its command, its job file, its code or its inputs change (DVC: the
job file and the code are deps; Snakemake: their digests are params), so these sets are what
each tool reruns; tests/test_reruns.py checks one real rerun per tool."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

from stages.config import Params, load_yaml, plain
from workflow.plan import RULES, Plan, job_code, render_dvc_yaml, reruns, stale_files

REPO = Path(__file__).resolve().parent.parent
RAW = load_yaml(REPO / "params.yaml")
# The dual attack of the l_inf background sweep, also a column of every RGB robustness matrix.
SWEPT_ATTACK = "dual_linf_f4_b20"


@pytest.fixture(scope="module", params=["tiny", "reduced"])
def plan(request: pytest.FixtureRequest) -> Plan:
    return Plan(copy.deepcopy(RAW), scale=request.param)


def job_view(job) -> Params:
    return Params.for_job(job.params, job.scale, source=job.params_file)


def test_the_committed_dvc_yaml_and_job_files_are_current() -> None:
    stale = stale_files(Plan(copy.deepcopy(RAW)), REPO)
    assert not stale, f"stale: {stale[:5]}; run `uv run python -m workflow.plan`"


SCALES = ("tiny", "reduced", "paper")


@pytest.fixture(scope="module")
def every_scale() -> dict[str, Plan]:
    return {scale: Plan(copy.deepcopy(RAW), scale=scale) for scale in SCALES}


def test_each_scale_reads_and_writes_only_its_own_folders(every_scale: dict[str, Plan]) -> None:
    for scale, plan in every_scale.items():
        own = (f"results/{scale}/", f"data/{scale}/")
        for job in plan.jobs:
            assert all(path.startswith(own) for path in job.outputs.values()), job.name
            inputs = [p for p in job.all_inputs() if p != job.params_file]
            assert all(path.startswith(own) for path in inputs), job.name
            assert job.params_file is None or job.params_file.startswith(f"workflow/jobs/{scale}/")
            assert job.log.startswith(f"logs/{scale}/") and job.benchmark.startswith(f"benchmarks/{scale}/")
            # Every path in the command is the scale's own (or the mirror the raw data comes from).
            for word in job.command.split():
                if word.startswith(("results/", "data/", "logs/", "benchmarks/", "workflow/jobs/")):
                    assert scale in word.split("/")[:3], f"{job.name}: {word} is not under {scale}"


def test_no_two_scales_share_an_output(every_scale: dict[str, Plan]) -> None:
    outputs = {scale: set(plan.outputs()) for scale, plan in every_scale.items()}
    for a in SCALES:
        for b in SCALES:
            if a < b:
                assert not outputs[a] & outputs[b], (a, b)


def test_only_the_committed_scale_has_files_in_git(every_scale: dict[str, Plan]) -> None:
    """A tiny trial (or a paper-scale run) cannot overwrite a committed result: every git-tracked
    file under results/ and data/ is the committed scale's (params.yaml `scale`)."""
    import subprocess

    tracked = subprocess.run(
        ["git", "ls-files", "results", "data"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked, "no committed results"
    committed = RAW["scale"]
    assert all(path.startswith((f"results/{committed}/", f"data/{committed}/")) for path in tracked)
    for scale, plan in every_scale.items():
        if scale != committed:
            written = set(plan.outputs())
            assert not [p for p in tracked if p in written or any(p.startswith(w + "/") for w in written)]


def test_job_files_of_other_scales_are_ignored_by_git(every_scale: dict[str, Plan]) -> None:
    """Snakemake writes a scale's job files when it starts at that scale, a dry run included:
    only the committed scale's are tracked, so a tiny trial leaves `git status` clean."""
    import subprocess

    committed = RAW["scale"]
    for scale, plan in every_scale.items():
        path = plan.jobs_of("train")[0].params_file
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0
        assert ignored == (scale != committed), f"{path}: ignored {ignored}"


def test_every_job_has_a_unique_name_outputs_and_a_producer_for_each_input(plan: Plan) -> None:
    assert len(plan.by_name) == len(plan.jobs)
    producers = plan.producers()
    assert len(producers) == sum(len(j.outputs) for j in plan.jobs), "two jobs write one path"
    for job in plan.jobs:
        for path in job.all_inputs():
            if path == job.params_file:
                continue
            owned = path in producers or any(path.startswith(out + "/") for out in producers)
            assert owned, f"{job.name}: input {path} is made by no job"


def test_the_dvc_yaml_has_one_stage_per_job_with_the_jobs_command(plan: Plan) -> None:
    import yaml

    stages = yaml.safe_load(render_dvc_yaml(plan))["stages"]
    # DVC's own first stage rewrites the job files from params.yaml (see workflow.plan.PLAN_STAGE).
    plan_stage = stages.pop(f"{plan.scale}-plan")
    assert plan_stage["outs"] == [{f"workflow/jobs/{plan.scale}": {"cache": False, "persist": True}}]
    # It hashes every stage's code (and the plan's), so the code digests it writes are current.
    assert {p for info in job_code(plan).values() for p in info.paths} <= set(plan_stage["deps"])
    assert {"params.yaml", "workflow/plan.py", "workflow/code_deps.py"} <= set(plan_stage["deps"])
    # The scale is in every stage name, so that dvc.lock keeps each scale's entries apart.
    assert list(stages) == [f"{plan.scale}-{job.name}" for job in plan.jobs]
    for job in plan.jobs:
        stage = stages[f"{plan.scale}-{job.name}"]
        assert stage["cmd"] == job.command
        assert job.params_file is None or job.params_file in stage["deps"]
        # The code's digest, one small file per rule and run-time modules, instead of the code.
        assert stage["deps"][-1] == job.code_file
        assert stage["deps"][:-1] == job.all_inputs()
        outs = {next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"] + stage.get("metrics", [])}
        assert outs == set(job.outputs.values())


def test_each_jobs_file_gives_its_stage_the_same_specs_as_the_whole_params(plan: Plan) -> None:
    full = plan.params
    for job in plan.jobs:
        if job.params is None:
            continue
        view = job_view(job)
        assert view.scale == full.scale
        w = job.wildcards
        if job.rule == "prepare":
            assert plain(view.dataset(w["dataset"])) == plain(full.dataset(w["dataset"]))
        elif job.rule == "train":
            assert plain(view.model(w["model"])) == plain(full.model(w["model"]))
            assert view.model_seed(w["model"]) == full.model_seed(w["model"])
            assert (view.device, view.box_fraction) == (full.device, full.box_fraction)
        elif job.rule.startswith("evaluate"):
            m, a = w["model"], w["attack"]
            assert plain(view.model(m)) == plain(full.model(m))
            assert plain(view.attack(a)) == plain(full.attack(a))
            assert plain(view.evaluation_dataset(m)) == plain(full.evaluation_dataset(m))
            assert view.eval_batch_size == full.eval_batch_size
            if RAW["attacks"][a]["kind"] == "de":  # only DE evaluations read it (AttackKind.evaluation_reads)
                assert view.de_forward("cpu") == full.de_forward("cpu")
                assert view.de_forward("cuda") == full.de_forward("cuda")
            else:
                assert view.de_forward("cpu") == {} != full.de_forward("cpu")
        elif job.rule == "matrix_table":
            assert plain(view.robustness_matrices()) == plain(full.robustness_matrices())
            assert view.group_pairs() == full.group_pairs()
            assert view.replicates == full.replicates
        elif job.rule == "dual_gradients":
            roles = RAW["tables"]["dual_perturbation"]["datasets"][w["dataset"]]
            for model in roles.values():
                assert plain(view.model(model)) == plain(full.model(model))
        elif job.rule == "salience_quality":
            for dataset in RAW["tables"]["dual_perturbation"]["datasets"]:
                assert view.dataset(dataset).test_samples == full.dataset(dataset).test_samples


def test_a_job_file_holds_only_what_its_job_reads(plan: Plan) -> None:
    """Exactness: an evaluation's file names its model, its attack and nothing of other pairs."""
    job = plan.jobs_of("evaluate")[0]
    model, attack = job.wildcards["model"], job.wildcards["attack"]
    attacks = set(job.params["attacks"])
    assert attacks == {attack, RAW["models"][plan.params.base_model(model)]["train_attack"]}
    assert set(job.params["models"]) == {plan.params.base_model(model)}
    assert "tables" not in job.params and "claims" not in job.params
    groups = job.params["evaluation"]["groups"]
    assert all(g["models"] == [plan.params.base_model(model)] for g in groups.values())


def test_a_job_file_missing_a_section_says_so() -> None:
    from stages.utils.errors import ConfigError

    view = Params.for_job({"seed": 0}, "tiny", source="workflow/jobs/tiny/x.json")
    with pytest.raises(ConfigError, match="workflow/jobs/tiny/x.json"):
        view.attack("pgd_linf_8")


def test_every_rule_in_the_plan_has_jobs_at_both_scales(plan: Plan) -> None:
    assert {job.rule for job in plan.jobs} == set(RULES)


# --- what a change reruns -----------------------------------------------------------------------


def _changed(edit, scale: str = "tiny") -> tuple[Plan, Plan]:
    before = Plan(copy.deepcopy(RAW), scale=scale)
    raw = copy.deepcopy(RAW)
    edit(raw)
    return before, Plan(raw, scale=scale)


def _evaluations_of(plan: Plan, attack: str | None = None, models: set[str] | None = None) -> set[str]:
    return {
        job.name
        for job in plan.jobs
        if job.rule.startswith("evaluate")
        and attack in (None, job.wildcards["attack"])
        and (models is None or job.wildcards["model"] in models)
    }


def test_an_attacks_eps_reruns_its_evaluations_and_the_tables_reading_them() -> None:
    def edit(raw):
        raw["attacks"][SWEPT_ATTACK]["eps_background"] = 25 / 255

    before, after = _changed(edit)
    evaluations = _evaluations_of(after, SWEPT_ATTACK)
    assert {after.by_name[n].rule for n in evaluations} == {"evaluate", "evaluate_matrix"}
    assert reruns(before, after) == evaluations | {"dual_table", "matrix_table", "build_report"}


def test_defining_a_new_attack_reruns_only_the_report() -> None:
    def edit(raw):
        raw["attacks"]["pgd_linf_6"] = dict(raw["attacks"]["pgd_linf_8"], eps=6 / 255)

    assert reruns(*_changed(edit)) == {"build_report"}


def test_one_models_recipe_reruns_its_training_evaluations_and_tables() -> None:
    model = "mnist_lat"
    recipe = RAW["models"][model]["training"]
    sharing = {m for m, e in RAW["models"].items() if e["training"] == recipe}

    def edit(raw):
        lr = raw["training"][recipe]["lr"]  # one value, or one per scale
        raw["training"][recipe]["lr"] = {k: 2 * v for k, v in lr.items()} if isinstance(lr, dict) else 2 * lr

    before, after = _changed(edit)
    trained = {f"train-{m}" for m in sharing}
    evaluations = _evaluations_of(after, models=sharing)
    got = reruns(before, after)
    assert trained | evaluations <= got
    # Beyond those: only tables (which read the evaluations) and the report.
    extra = {after.by_name[n].rule for n in got - trained - evaluations}
    assert extra <= {
        "lat_table",
        "attention_table",
        "dual_table",
        "pixel_table",
        "matrix_table",
        "dual_gradients",
        "build_report",
    }
    assert "lat_table" in extra and "build_report" in extra
    assert not any(after.by_name[n].rule in ("prepare", "fetch_raw") for n in got)


def test_adding_a_matrix_column_reruns_only_its_new_cells_and_the_matrix_table() -> None:
    def edit(raw):
        raw["attacks"]["pgd_linf_5"] = dict(raw["attacks"]["pgd_linf_8"], eps=5 / 255)
        matrices = raw["robustness_matrix"]["datasets"]
        # A copy: the RGB datasets share one matrix spec through a YAML anchor.
        columns = {scale: [*cols, "pgd_linf_5"] for scale, cols in matrices["cifar10"]["attacks"].items()}
        matrices["cifar10"] = dict(matrices["cifar10"], attacks=columns)

    before, after = _changed(edit)
    added = set(after.by_name) - set(before.by_name)
    cifar10_models = {
        m for m, e in RAW["models"].items() if after.params.evaluation_dataset(m).name == "cifar10"
    }
    assert added == {f"evaluate_matrix-{m}-pgd_linf_5" for m in cifar10_models}
    # The report too: it prints the whole resolved params.yaml.
    assert reruns(before, after) == added | {"matrix_table", "build_report"}


def _copy_code(tmp_path: Path) -> Path:
    root = tmp_path / "code"
    shutil.copytree(REPO / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_a_table_modules_code_change_reruns_that_table_and_the_report(tmp_path: Path) -> None:
    root = _copy_code(tmp_path)
    plan = Plan(copy.deepcopy(RAW), scale="tiny")
    module = root / "stages/report/lat_table.py"
    before = plan.fingerprints(root)
    assert reruns(plan, plan, root, root) == set()  # no change: nothing
    module.write_text(module.read_text() + "\nEDITED = True\n")
    after = plan.fingerprints(root)
    changed = {name for name in before if after[name] != before[name]}
    assert changed == {"lat_table"}
    assert plan.downstream(changed) == {"lat_table", "build_report"}


def test_an_evaluation_library_change_reruns_every_evaluation_and_nothing_upstream(tmp_path: Path) -> None:
    root = _copy_code(tmp_path)
    plan = Plan(copy.deepcopy(RAW), scale="tiny")
    before = plan.fingerprints(root)
    module = root / "stages/evaluation/robustness.py"
    module.write_text(module.read_text() + "\nEDITED = True\n")
    after = plan.fingerprints(root)
    changed = {name for name in before if after[name] != before[name]}
    assert changed == _evaluations_of(plan)
    rules = {plan.by_name[n].rule for n in plan.downstream(changed) - changed}
    assert rules == {
        "lat_table",
        "attention_table",
        "dual_table",
        "pixel_table",
        "matrix_table",
        "build_report",
    }


def test_a_code_change_changes_exactly_the_digests_of_the_jobs_importing_it(tmp_path: Path) -> None:
    """DVC's view of a code change: the digest files the `plan` stage rewrites."""
    root = _copy_code(tmp_path)
    plan = Plan(copy.deepcopy(RAW), scale="tiny")
    before = {name: info.digest for name, info in job_code(plan, root).items()}
    module = root / "stages/report/pixel_table.py"
    module.write_text(module.read_text() + "\nEDITED = True\n")
    after = job_code(plan, root)
    assert {name for name, info in after.items() if info.digest != before[name]} == {"pixel_table"}


def test_a_paper_tables_claims_read_its_evaluations_timings_and_every_datasets_statistics(plan: Plan) -> None:
    """What would decide a claim is priced from the evaluations' throughput records and bounded by
    the datasets' pools (a masked dataset's pool by its unmasked sibling's split): a new timing or
    a rebuilt dataset must rerun the table, so both are the job's inputs."""
    stats = {f"{plan.results}/datasets/{d}.json" for d in RAW["datasets"]}
    for rule in ("lat_table", "attention_table", "dual_table", "pixel_table"):
        (job,) = plan.jobs_of(rule)
        inputs = set(job.all_inputs())
        evals = [p for p in inputs if "/evals/" in p and not p.endswith(".throughput.json")]
        assert evals, rule
        assert {e.removesuffix(".json") + ".throughput.json" for e in evals} <= inputs, rule
        assert stats <= inputs, rule
