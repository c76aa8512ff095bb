# Backdrop's DAG for Snakemake. Every job (command, inputs, outputs, the parameters it reads)
# comes from the plan, workflow/plan.py, which also writes dvc.yaml: one definition of the DAG
# for both tools. This file only turns each of the plan's rules into a Snakemake rule; the
# science is in stages/.
import re
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)

from stages.config import load_yaml, resolve_tree  # noqa: E402
from stages.utils.errors import ConfigError  # noqa: E402
from workflow.plan import (  # noqa: E402
    BENCHMARKS_DIR,
    DVC_YAML,
    LOGS_DIR,
    RULES,
    Plan,
    job_code,
    render_dvc_yaml,
    scale_templates,
    write_job_files,
)


ROOT = Path(workflow.basedir)
# Snakemake's own reading of the configfile reports a syntax error without its line; ours names it.
try:
    ON_DISK = load_yaml(ROOT / "params.yaml")  # also what --config may not override
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None


configfile: "params.yaml"


# Only these keys reach the stages from the command line; every other value is read from
# params.yaml itself, so overriding it with --config would silently not take effect in DVC.
CLI_KEYS = {"scale": None, "raw": {"mirror", "download"}}


def _check_overrides(config, on_disk):
    for key in set(config) | set(on_disk):
        if config.get(key) == on_disk.get(key):
            continue
        allowed = CLI_KEYS.get(key, False)
        if allowed is None:
            continue
        if isinstance(allowed, set) and isinstance(config.get(key), dict):
            changed = {k for k in config[key] if config[key].get(k) != on_disk[key].get(k)}
            if changed <= allowed:
                continue
        raise ConfigError(
            f"--config changes {key!r}, which the stages read from params.yaml; edit params.yaml "
            f"instead (only scale, raw.mirror and raw.download may be overridden)"
        )


def _ordered_like(value, model):
    """``value`` with its keys in ``model``'s order (params.yaml's), recursively: Snakemake's
    merge of --config moves overridden keys, and a job file's bytes follow key order."""
    if not isinstance(value, dict) or not isinstance(model, dict):
        return value
    keys = [k for k in model if k in value] + [k for k in value if k not in model]
    return {k: _ordered_like(value[k], model.get(k)) for k in keys}


try:
    _check_overrides(config, ON_DISK)
    PLAN = Plan(_ordered_like(config, ON_DISK), source="params.yaml (+ --config)")
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

# Each stage reads its job file (workflow/jobs/<scale>/<job>.json); only changed ones are
# rewritten, and their content is each job's `job` param, so an edit reruns exactly its readers.
# Only the committed scale's folder is tracked by git (.gitignore): a dry run at another scale
# writes nothing git sees.
# Each job's code digest (workflow/code_deps.py: its imports, parsed), its `code` param.
CODE = job_code(PLAN, ROOT)
write_job_files(PLAN, ROOT, CODE)
# With --config overrides the plan is not params.yaml's, so dvc.yaml is not expected to match it.
if PLAN.raw == ON_DISK:
    dvc_yaml = ROOT / DVC_YAML
    if not dvc_yaml.is_file() or dvc_yaml.read_text(encoding="utf-8") != render_dvc_yaml(PLAN, ROOT, CODE):
        logger.warning(
            "dvc.yaml does not match params.yaml: run `uv run python -m workflow.plan` before "
            "`dvc repro` (Snakemake itself is not affected)"
        )


def _inputs(job):
    return {name: [ancient(p) if name in job.ancient else p for p in paths] for name, paths in job.inputs.items()}


def _digests(job):
    return f"params {job.params_digest} code {CODE[job.name].digest}"


def _per_job_path(rule, folder, suffix):
    """logs/<scale>/<rule>/<wildcards>.log and benchmarks/<scale>/<rule>/<wildcards>.tsv
    (workflow.plan.Job.log and .benchmark)."""
    stem = "-".join(f"{{{w}}}" for w in rule.wildcards) or rule.name
    return f"{folder.as_posix()}/{PLAN.scale}/{rule.name}/{stem}{suffix}"


def _resources(rule):
    """What the rule's jobs ask a scheduler for at the plan's scale (params.yaml `resources`:
    the rule's own entry, else `default`); only train and evaluate jobs ask for a GPU."""
    declared = resolve_tree(PLAN.raw.get("resources", {}), PLAN.scale)
    wanted = declared.get(rule.resources or "default", declared.get("default", {}))
    return {key: wanted[key] for key in ("mem_mb", "runtime", "gpu") if key in wanted}


rule all:
    input:
        PLAN.outputs(),


for _rule in RULES.values():
    if not PLAN.jobs_of(_rule.name):
        continue

    rule:
        name:
            _rule.name
        input:
            unpack(lambda wc, r=_rule.name: _inputs(PLAN.job(r, wc))),
        output:
            **{
                k: directory(t) if _rule.outputs[k].directory else t
                for k, t in scale_templates(_rule, PLAN.scale).items()
            },
        log:
            _per_job_path(_rule, LOGS_DIR, ".log"),
        benchmark:
            _per_job_path(_rule, BENCHMARKS_DIR, ".tsv")
        params:
            command=lambda wc, r=_rule.name: PLAN.job(r, wc).command,
            # What the job reads (its job file's digest) and runs (its code's digest), in one
            # param: Snakemake reruns a job when either changes.
            job=lambda wc, r=_rule.name: _digests(PLAN.job(r, wc)),
        wildcard_constraints:
            **{w: "|".join(map(re.escape, PLAN.wildcard_values(_rule.name, w))) for w in _rule.wildcards},
        resources:
            **_resources(_rule),
        # The job's output goes to its log and to the terminal.
        shell:
            "{params.command} 2>&1 | tee {log}"
