"""The one plan of Backdrop's DAG: every job, its command, inputs, outputs and the exact
parameters it reads, derived from params.yaml at one scale.

Both tools take their jobs from here. The Snakefile makes one rule per entry of :data:`RULES`
and looks each job up in the plan; ``dvc.yaml`` is written from the same plan (one stage per
job) and committed::

    uv run python -m workflow.plan            # after editing params.yaml: dvc.yaml + job files
    uv run python -m workflow.plan --check    # exit 1 when dvc.yaml or a job file is stale

Each job that reads params gets its own *job file*, ``workflow/jobs/<scale>/<job>.json``: the
part of params.yaml the job reads (the same layout, every value resolved at the scale), and
the stage loads that file alone (``--job``, :meth:`stages.config.Params.for_job`). Both tools
track the job file's content (DVC as a dep; Snakemake as a param), so an edit of params.yaml
reruns exactly the jobs whose own parameters changed. What each job reads is declared once,
here, by the ``*_reads`` functions below.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from workflow.code_deps import CodeIndex, runtime_modules, stage_module

REPO = Path(__file__).resolve().parent.parent
DVC_YAML = Path("dvc.yaml")
JOBS_DIR = Path("workflow") / "jobs"
LOGS_DIR = Path("logs")
BENCHMARKS_DIR = Path("benchmarks")

# The tables whose stages write claim records (results/claims/<paper>.json).
CLAIM_PAPERS = ("lat", "attention_masks", "dual_perturbation", "pixel_space")
TABLES = ("lat", "attention_masks", "dual_perturbation", "pixel_space", "robustness_matrix", "datasets")


@dataclass(frozen=True)
class Output:
    """One output of a rule: a path template over the rule's wildcards; ``directory`` for a
    folder; ``cache`` False for small files DVC leaves to git (tables, metrics, records)."""

    template: str
    directory: bool = False
    cache: bool = True
    # DVC: a metrics file (`dvc metrics show`) rather than a plain output.
    metric: bool = False


@dataclass(frozen=True)
class Rule:
    """A kind of job: one Snakemake rule, one family of DVC stages."""

    name: str
    wildcards: tuple[str, ...]
    outputs: dict[str, Output]
    doc: str
    # The params.yaml `resources` entry (mem_mb, gpu) the rule's jobs ask the scheduler for.
    resources: str | None = None


@dataclass(frozen=True)
class Job:
    rule: str
    wildcards: dict[str, str]
    command: str
    inputs: dict[str, list[str]]
    outputs: dict[str, str]
    scale: str
    params: dict[str, Any] | None = None
    # Inputs whose timestamps must not trigger reruns (folders: their content is tracked through
    # a report that lists every file with its checksum).
    ancient: frozenset[str] = frozenset()

    @property
    def id(self) -> str:
        return "-".join(self.wildcards.values()) or self.rule

    @property
    def name(self) -> str:
        return job_name(self.rule, self.wildcards)

    @property
    def params_file(self) -> str | None:
        return None if self.params is None else job_file(self.scale, self.name)

    @functools.cached_property
    def params_text(self) -> str | None:
        if self.params is None:
            return None
        # Insertion order is meaning (models' order is the tables' row order): never sort keys.
        return json.dumps({"job": self.name, "scale": self.scale, "params": self.params}, indent=1) + "\n"

    @functools.cached_property
    def params_digest(self) -> str:
        return hashlib.sha256((self.params_text or "").encode()).hexdigest()[:16]

    @property
    def log(self) -> str:
        return f"{LOGS_DIR.as_posix()}/{self.scale}/{self.rule}/{self.id}.log"

    @property
    def benchmark(self) -> str:
        return f"{BENCHMARKS_DIR.as_posix()}/{self.scale}/{self.rule}/{self.id}.tsv"

    @functools.cached_property
    def runtime_modules(self) -> tuple[str, ...]:
        """The modules this job imports by name (its dataset's builder, its architecture's
        family, its attack's kind: workflow.code_deps.runtime_modules)."""
        return tuple(runtime_modules(self.params))

    @property
    def entry_module(self) -> str:
        return stage_module(self.command)

    @property
    def code_file(self) -> str:
        """Where this job's code digest is written for DVC: one file per stage module and
        choice of run-time modules (``evaluate-pgd-classic-lat_cnn.txt``), shared by the jobs
        running the same code (rules evaluate and evaluate_matrix run one stage module)."""
        return code_file(self.scale, self.entry_module.rpartition(".")[2], self.runtime_modules)

    def all_inputs(self) -> list[str]:
        paths = [p for group in self.inputs.values() for p in group]
        return list(dict.fromkeys(paths))


def job_name(rule: str, wildcards: dict[str, str]) -> str:
    """A job's name, also its DVC stage name (letters, digits, `_` and `-` only)."""
    return rule if not wildcards else f"{rule}-{'-'.join(wildcards.values())}"


def job_file(scale: str, name: str) -> str:
    return f"{JOBS_DIR.as_posix()}/{scale}/{name}.json"


def results_root(scale: str) -> str:
    """Where a scale's results live: scales never share an output, so a tiny trial leaves the
    committed reduced-scale results untouched and switching scales reruns nothing built."""
    return f"results/{scale}"


def data_root(scale: str) -> str:
    """Where a scale's raw and processed data live (see :func:`results_root`)."""
    return f"data/{scale}"


def scale_templates(rule: Rule, scale: str) -> dict[str, str]:
    """The rule's output templates at ``scale``: roots filled in, wildcards (``{model}``) kept."""
    roots = {"{results}": results_root(scale), "{data}": data_root(scale)}
    templates = {}
    for name, out in rule.outputs.items():
        template = out.template
        for placeholder, root in roots.items():
            template = template.replace(placeholder, root)
        templates[name] = template
    return templates


def _table_outputs(table: str, claims: bool = True, **extra: Output) -> dict[str, Output]:
    """A table stage's csv and markdown (and its paper's claim records), plus ``extra``."""
    outputs = {
        "csv": Output(f"{{results}}/tables/{table}.csv", cache=False),
        "md": Output(f"{{results}}/tables/{table}.md", cache=False),
    }
    if claims:
        outputs["claims"] = Output(f"{{results}}/claims/{table}.json", cache=False)
    return {**outputs, **extra}


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule(
            "fetch_raw",
            ("source",),
            {
                "raw": Output("{data}/raw/{source}", directory=True),
                "report": Output("{results}/raw/{source}.json", cache=False),
            },
            "a raw dataset in its official layout, from the mirror (or the official archives)",
        ),
        Rule(
            "prepare",
            ("dataset",),
            {
                "train": Output("{data}/processed/{dataset}/train.npz"),
                "test": Output("{data}/processed/{dataset}/test.npz"),
                "stats": Output("{results}/datasets/{dataset}.json", cache=False),
                "grid": Output("{results}/figures/datasets/{dataset}.png", cache=False),
            },
            "a processed dataset (images, labels, foreground masks) built from a raw one",
        ),
        Rule(
            "grabcut_vs_ground_truth",
            (),
            {"metrics": Output("{results}/metrics/grabcut_vs_ground_truth.json", cache=False)},
            "the GrabCut routine's masks against ground-truth masks",
        ),
        Rule(
            "salience_quality",
            (),
            {"metrics": Output("{results}/metrics/salience_quality.json", cache=False)},
            "each salience model against the dual-perturbation datasets' masks",
        ),
        Rule(
            "dataset_table",
            (),
            _table_outputs("datasets", claims=False),
            "the datasets table",
        ),
        Rule(
            "train",
            ("model",),
            {
                "model": Output("{results}/models/{model}/model.pt"),
                "metrics": Output("{results}/models/{model}/metrics.json", cache=False),
                "throughput": Output("{results}/models/{model}/throughput.json", cache=False),
            },
            "one model of params.yaml's `models` (or a replica `<model>_seed<N>`)",
            resources="train",
        ),
        Rule(
            "evaluate",
            ("model", "attack"),
            {
                "metrics": Output("{results}/evals/{model}/{attack}.json", cache=False),
                "throughput": Output("{results}/evals/{model}/{attack}.throughput.json", cache=False),
            },
            "one (model, attack) pair of an evaluation group",
            resources="evaluate",
        ),
        Rule(
            "evaluate_matrix",
            ("model", "attack"),
            {
                "metrics": Output("{results}/matrix/{model}/{attack}.json", cache=False),
                "throughput": Output("{results}/matrix/{model}/{attack}.throughput.json", cache=False),
            },
            "a robustness-matrix cell no evaluation group lists (kept apart so that adding a "
            "matrix column reruns no paper table)",
            resources="evaluate",
        ),
        Rule(
            "lat_table",
            (),
            _table_outputs("lat"),
            "the LAT table and its claims",
        ),
        Rule(
            "attention_table",
            (),
            _table_outputs("attention_masks"),
            "the attention-masks table and its claims",
        ),
        Rule(
            "dual_table",
            (),
            _table_outputs(
                "dual_perturbation",
                figures=Output("{results}/figures/dual_perturbation", directory=True, cache=False),
                plots=Output("{results}/plots/dual_perturbation", directory=True, cache=False),
            ),
            "the dual-perturbation table, its claims and figures",
        ),
        Rule(
            "dual_gradients",
            ("dataset",),
            {"figure": Output("{results}/figures/dual_gradients/{dataset}.png", cache=False)},
            "loss gradients of the dual-perturbation models on clean images",
        ),
        Rule(
            "pixel_table",
            (),
            _table_outputs(
                "pixel_space", figures=Output("{results}/figures/pixel_space", directory=True, cache=False)
            ),
            "the pixel-space table, its claims and figures",
        ),
        Rule(
            "matrix_table",
            (),
            _table_outputs(
                "robustness_matrix",
                claims=False,
                metrics=Output("{results}/metrics/robustness_matrix.json", cache=False, metric=True),
            ),
            "the robustness matrices",
        ),
        Rule(
            "build_report",
            (),
            {
                "md": Output("{results}/report.md", cache=False),
                "html": Output("{results}/report.html", cache=False),
            },
            "the report",
        ),
    )
}


class _Reads:
    """The part of params.yaml one job reads: dotted keys copied, scale resolved, in params.yaml's
    own layout and order, so that the stage's :class:`Params` reads it like the whole file."""

    def __init__(self, raw: dict[str, Any], scale: str):
        from stages.config import resolve_tree

        self._raw = raw
        self._scale = scale
        self._resolve = resolve_tree
        self.tree: dict[str, Any] = {}

    def key(self, *dotted: str) -> _Reads:
        for path in dotted:
            *parents, last = path.split(".")
            source = self._raw
            for part in parents:
                source = source[part]
            if last not in source:
                continue  # optional keys (e.g. samples of a dataset no model uses)
            node = self.tree
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = self._resolve(source[last], self._scale)
        return self

    def dataset(self, name: str) -> _Reads:
        # A dataset absent from `samples` is used whole: the section must still be there to say so.
        self.tree.setdefault("samples", {})
        return self.key(f"datasets.{name}", f"samples.{name}")

    def attack(self, name: str) -> _Reads:
        return self.key(f"attacks.{name}")

    def model(self, name: str, evaluated: bool = False) -> _Reads:
        """A model's entry and everything it names; ``evaluated``: also the dataset its
        evaluations run on (its evaluation group's, stages.config.group_datasets)."""
        entry = self._raw["models"][name]
        self.key("seed", "replicates", f"models.{name}", f"architectures.{entry['arch']}")
        self.key(f"training.{entry['training']}", f"attacks.{entry['train_attack']}")
        self.dataset(entry["dataset"])
        if evaluated:
            for group_name, group in self._raw["evaluation"]["groups"].items():
                if name in group["models"]:
                    # Only what says where the model is evaluated, not the group's other pairs.
                    node = self.tree.setdefault("evaluation", {}).setdefault("groups", {})
                    read = node.get(group_name)
                    if read is None:
                        node[group_name] = {"models": [name], "dataset": group["dataset"]}
                    elif name not in read["models"]:  # a job reading several models' datasets
                        read["models"] = [*read["models"], name]
                    self.dataset(group["dataset"])
                    break
        return self

    def sort_like_params(self) -> dict[str, Any]:
        """Sections and entries in params.yaml's order, whatever order they were read in."""

        def ordered(tree: dict[str, Any], source: Any) -> dict[str, Any]:
            if not isinstance(source, dict):
                return tree
            keys = [k for k in source if k in tree] + [k for k in tree if k not in source]
            return {
                k: ordered(tree[k], source.get(k)) if isinstance(tree[k], dict) and k in source else tree[k]
                for k in keys
            }

        return ordered(self.tree, self._raw)


class Plan:
    """Every job of the DAG for params.yaml (``raw``) at ``scale``."""

    def __init__(self, raw: dict[str, Any], scale: str | None = None, source: str = "params.yaml"):
        from stages.config import Params

        self.raw = raw
        self.params = Params(raw, scale=scale, source=source)
        self.scale = self.params.scale
        for dataset in raw["datasets"]:
            self.params.dataset(dataset)  # builder options, checked key by key
        self.params.evaluations()  # every model/attack pair fits its dataset
        self._check_attacks()
        self.results = results_root(self.scale)
        self.data = data_root(self.scale)
        self.jobs: list[Job] = []
        self._build()
        self.by_name = {job.name: job for job in self.jobs}
        self._by_rule: dict[str, dict[tuple[str, ...], Job]] = {}
        for job in self.jobs:
            self._by_rule.setdefault(job.rule, {})[tuple(job.wildcards.values())] = job

    @classmethod
    def load(cls, path: str | Path = "params.yaml", scale: str | None = None) -> Plan:
        from stages.config import load_yaml

        return cls(load_yaml(path), scale=scale, source=str(path))

    # -- lookups -------------------------------------------------------------------------------
    def job(self, rule: str, wildcards: dict[str, str] | Any) -> Job:
        names = RULES[rule].wildcards
        get = wildcards.get if isinstance(wildcards, dict) else lambda n: getattr(wildcards, n)
        key = tuple(str(get(n)) for n in names)
        try:
            return self._by_rule[rule][key]
        except KeyError:
            raise KeyError(f"no {rule} job for {dict(zip(names, key, strict=True))} in the plan") from None

    def template(self, rule: str, output: str) -> str:
        """One output's path template at this plan's scale (wildcards kept)."""
        return scale_templates(RULES[rule], self.scale)[output]

    def jobs_of(self, rule: str) -> list[Job]:
        return list(self._by_rule.get(rule, {}).values())

    def wildcard_values(self, rule: str, wildcard: str) -> list[str]:
        return sorted({job.wildcards[wildcard] for job in self.jobs_of(rule)})

    def outputs(self) -> list[str]:
        return [path for job in self.jobs for path in job.outputs.values()]

    def producers(self) -> dict[str, Job]:
        return {path: job for job in self.jobs for path in job.outputs.values()}

    # -- building ------------------------------------------------------------------------------
    def _reads(self) -> _Reads:
        return _Reads(self.raw, self.scale)

    def _add(
        self,
        rule: str,
        wildcards: dict[str, str],
        command: Callable[[dict[str, str], str], str],
        inputs: dict[str, list[str]],
        reads: _Reads | None,
        ancient: Iterable[str] = (),
    ) -> None:
        outputs = {k: t.format(**wildcards) for k, t in scale_templates(RULES[rule], self.scale).items()}
        params = None if reads is None else reads.sort_like_params()
        path = "" if params is None else job_file(self.scale, job_name(rule, wildcards))
        if path:
            inputs = {**inputs, "job": [path]}
        self.jobs.append(
            Job(
                rule=rule,
                wildcards=dict(wildcards),
                command=" ".join(command(outputs, path).split()),
                inputs={k: v for k, v in inputs.items() if v},
                outputs=outputs,
                scale=self.scale,
                params=params,
                ancient=frozenset(ancient),
            )
        )

    def _build(self) -> None:
        results = self.results
        data_dir = self.data
        raw, p = self.raw, self.params
        for source in raw["raw"]["datasets"]:
            mirror, download = raw["raw"]["mirror"], str(raw["raw"]["download"]).lower()
            self._add(
                "fetch_raw",
                {"source": source},
                lambda o, j, s=source, m=mirror, d=download: (
                    f"python -m stages.fetch_raw --dataset {s} --out {o['raw']} --mirror '{m}' "
                    f"--download {d} --report {o['report']}"
                ),
                {},
                None,
            )
        for dataset, entry in raw["datasets"].items():
            src = entry["source"]
            self._add(
                "prepare",
                {"dataset": dataset},
                lambda o, j, d=dataset, s=src: (
                    f"python -m stages.prepare --job {j} --dataset {d} --raw {data_dir}/raw/{s} "
                    f"--out {data_dir}/processed/{d} --stats {o['stats']} --grid {o['grid']}"
                ),
                {"raw": [f"{data_dir}/raw/{src}"], "report": [f"{results}/raw/{src}.json"]},
                self._reads().dataset(dataset),
                ancient=("raw",),
            )
        quality = raw["mask_quality"]
        truth = f"{data_dir}/processed/{quality['ground_truth']}/test.npz"
        self._add(
            "grabcut_vs_ground_truth",
            {},
            lambda o, j: (
                f"python -m stages.grabcut_vs_ground_truth --job {j} --data {truth} --out {o['metrics']}"
            ),
            {"data": [truth]},
            self._reads().key("mask_quality").dataset(quality["routine"]),
        )
        dual = raw["tables"]["dual_perturbation"]
        salience_data = [f"{data_dir}/processed/{d}/test.npz" for d in dual["datasets"]]
        salience_reads = self._reads()
        for d in dual["datasets"]:
            salience_reads.dataset(d)
        self._add(
            "salience_quality",
            {},
            lambda o, j: (
                f"python -m stages.salience_quality --job {j} --data {' '.join(salience_data)} "
                f"--out {o['metrics']}"
            ),
            {"data": salience_data},
            salience_reads,
        )
        stats = [f"{results}/datasets/{d}.json" for d in raw["datasets"]]
        iou = self.template("grabcut_vs_ground_truth", "metrics")
        self._add(
            "dataset_table",
            {},
            lambda o, j: (
                f"python -m stages.dataset_table --job {j} --stats {results}/datasets --iou {iou} "
                f"--out {results}/tables/datasets"
            ),
            {"stats": stats, "iou": [iou]},
            self._reads().key("datasets"),
        )
        for model in p.model_names():
            base = p.base_model(model)
            data = f"{data_dir}/processed/{raw['models'][base]['dataset']}/train.npz"
            # How training computes (both devices: which one runs is decided at run time); the
            # training attack's precision only where a training attack runs.
            precision = ["precision.training"]
            if p.model(base).adversarial:
                precision.append("precision.training_attack")
            self._add(
                "train",
                {"model": model},
                lambda o, j, m=model, data=data: (
                    f"python -m stages.train --job {j} --model {m} --data {data} --out {results}/models/{m} "
                    f"--checkpoint-dir {results}/checkpoints"
                ),
                {"data": [data]},
                self._reads().model(base).key("device", "regions", *precision),
            )
        groups = self._groups
        for model, attack in p.evaluations():
            base = p.base_model(model)
            data = f"{data_dir}/processed/{p.evaluation_dataset(model).name}/test.npz"
            rule = "evaluate" if (model, attack) in groups else "evaluate_matrix"
            self._add(
                rule,
                {"model": model, "attack": attack},
                lambda o, j, m=model, a=attack, data=data: (
                    f"python -m stages.evaluate --job {j} --model {m} --attack {a} --data {data} "
                    f"--weights {results}/models/{m}/model.pt --out {o['metrics']}"
                ),
                {"data": [data], "weights": [f"{results}/models/{model}/model.pt"]},
                self._reads()
                .model(base, evaluated=True)
                .attack(attack)
                .key("device", "regions", "evaluation.batch_size", *self._kind_reads(attack)),
            )
        self._tables()

    def _evals_of(self, table: str) -> list[str]:
        """Every group evaluation of the table's models (a table reads its own columns and lists
        its models' other attacks)."""
        results = self.results
        models = set(self._table_models(table))
        return [f"{results}/evals/{m}/{a}.json" for m, a in self.params.group_pairs() if m in models]

    def _table_models(self, table: str) -> list[str]:
        spec = self.raw["tables"][table]
        models = [model for roles in spec["datasets"].values() for model in roles.values()]
        models += [m for ext in spec.get("extensions", {}).values() for m in ext["models"].values()]
        return list(dict.fromkeys(models))

    def _table_stats(self) -> list[str]:
        """Every dataset's statistics: a table's claims read their own datasets' class counts
        and, for what it would take to decide a claim, any dataset's pool (a masked dataset's
        pool is bounded by its unmasked sibling's split, e.g. cifar10 beside cifar10_grabcut)."""
        return [f"{self.results}/datasets/{d}.json" for d in self.raw["datasets"]]

    def _paper_table(self, rule: str, table: str, extra: str = "", **inputs: list[str]) -> None:
        results = self.results
        reads = self._reads().key(f"tables.{table}", "claims")
        evals = self._evals_of(table)
        if table == "dual_perturbation":
            dual = self.raw["tables"][table]
            for attack in [
                *dual["inputs"].values(),
                *(a for s in dual["sweeps"].values() for a in s["attacks"]),
            ]:
                reads.attack(attack)
        self._add(
            rule,
            {},
            lambda o, j: (
                f"python -m stages.{rule} --job {j} --evals {results}/evals --datasets {results}/datasets "
                + f"--out {results}/tables/{table} --claims {o['claims']}"
                + (f" --figures {o['figures']}" if "figures" in o else "")
                + (f" --plots {o['plots']}" if "plots" in o else "")
                + extra
            ),
            {
                "evals": evals,
                # The claims project the cost of more images from the evaluations' timings.
                "throughput": [e.removesuffix(".json") + ".throughput.json" for e in evals],
                "stats": self._table_stats(),
                **inputs,
            },
            reads,
        )

    def _tables(self) -> None:
        results = self.results
        data_dir = self.data
        raw, p = self.raw, self.params
        self._paper_table("lat_table", "lat")
        self._paper_table("attention_table", "attention_masks")
        salience = self.template("salience_quality", "metrics")
        self._paper_table(
            "dual_table",
            "dual_perturbation",
            extra=f" --salience {salience}",
            salience=[salience],
        )
        dual = raw["tables"]["dual_perturbation"]
        for dataset, roles in dual["datasets"].items():
            reads = self._reads().key(f"tables.dual_perturbation.datasets.{dataset}")
            reads.key("tables.dual_perturbation.gradient_images", "device")
            for model in roles.values():
                reads.model(model)
            self._add(
                "dual_gradients",
                {"dataset": dataset},
                lambda o, j, d=dataset: (
                    f"python -m stages.dual_gradients --job {j} --dataset {d} "
                    f"--data {data_dir}/processed/{d}/test.npz --models {results}/models --out {o['figure']}"
                ),
                {
                    "data": [f"{data_dir}/processed/{dataset}/test.npz"],
                    "weights": [f"{results}/models/{m}/model.pt" for m in roles.values()],
                },
                reads,
            )
        self._paper_table("pixel_table", "pixel_space")
        # The matrix table derives its cells from params (which pairs fit and why not): it reads
        # every model and what it names, the matrices' attacks, and where models are evaluated.
        matrix_reads = self._reads().key("robustness_matrix", "regions", "evaluation.groups")
        for model in raw["models"]:
            matrix_reads.model(model, evaluated=True)
        for matrix in p.robustness_matrices():
            for attack in (*matrix.attacks, *matrix.references.values()):
                matrix_reads.attack(attack)
        matrix_inputs = [
            self._eval_path(model, cell.attack)
            for matrix in p.robustness_matrices()
            for cell in matrix.cells
            if cell.fits
            for model in (cell.model, *p.replicas(cell.model))
        ]
        self._add(
            "matrix_table",
            {},
            lambda o, j: (
                f"python -m stages.matrix_table --job {j} --evals {results}/evals --matrix {results}/matrix "
                f"--out {results}/tables/robustness_matrix --metrics {o['metrics']}"
            ),
            {"evals": matrix_inputs},
            matrix_reads,
        )
        figures = [
            f"{results}/figures/dual_perturbation",
            f"{results}/figures/pixel_space",
            *(f"{results}/figures/dual_gradients/{d}.png" for d in dual["datasets"]),
            *(f"{results}/figures/datasets/{d}.png" for d in raw["datasets"]),
        ]
        report = self._reads()
        report.tree = _resolved(raw, self.scale)  # the report shows the whole resolved params
        self._add(
            "build_report",
            {},
            lambda o, j: (
                f"python -m stages.build_report --job {j} --tables {results}/tables "
                f"--figures {results}/figures --datasets {results}/datasets --claims {results}/claims "
                f"--benchmarks {BENCHMARKS_DIR.as_posix()}/{self.scale} "
                f"--out {o['md']}"
            ),
            {
                "tables": [f"{results}/tables/{t}.md" for t in TABLES],
                "figures": figures,
                "stats": [f"{results}/datasets/{d}.json" for d in raw["datasets"]],
                "claims": [f"{results}/claims/{paper}.json" for paper in CLAIM_PAPERS],
            },
            report,
        )

    def _check_attacks(self) -> None:
        """Every attack's settings as its kind would run them (AttackKind.check): a value a
        job would reject stops the plan, naming its key, before any job starts."""
        from stages.attack_kinds import attack_kind

        for name in self.raw["attacks"]:
            spec = self.params.attack(name)
            attack_kind(spec).check(spec)

    def _kind_reads(self, attack: str) -> tuple[str, ...]:
        """What an evaluation under ``attack`` reads because of its kind (AttackKind.evaluation_reads)."""
        from stages.attack_kinds import kind_by_name

        return kind_by_name(self.raw["attacks"][attack]["kind"]).evaluation_reads

    @functools.cached_property
    def _groups(self) -> set[tuple[str, str]]:
        """The evaluation groups' pairs (results/evals/); other evaluations are matrix cells."""
        return set(self.params.group_pairs())

    def _eval_path(self, model: str, attack: str) -> str:
        results = self.results
        folder = "evals" if (model, attack) in self._groups else "matrix"
        return f"{results}/{folder}/{model}/{attack}.json"

    # -- what a change reruns ------------------------------------------------------------------
    def fingerprints(self, root: Path = REPO) -> dict[str, tuple[str, ...]]:
        """What decides whether each job reruns in either tool, besides its inputs' content: its
        command, its job file and its code (workflow.code_deps)."""
        code = job_code(self, root)
        return {job.name: (job.command, job.params_digest, code[job.name].digest) for job in self.jobs}

    def downstream(self, names: Iterable[str]) -> set[str]:
        """``names`` and every job that reads, directly or not, what they write."""
        consumers: dict[str, set[str]] = {}
        producers = self.producers()
        folders = {
            path: job
            for job in self.jobs
            for name, path in job.outputs.items()
            if RULES[job.rule].outputs[name].directory
        }
        for job in self.jobs:
            for path in job.all_inputs():
                owner = producers.get(path) or _folder_owner(path, folders)
                if owner is not None:
                    consumers.setdefault(owner.name, set()).add(job.name)
        todo, seen = list(names), set(names)
        while todo:
            for nxt in consumers.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen


def _folder_owner(path: str, folders: dict[str, Job]) -> Job | None:
    """The job whose folder output holds ``path`` (e.g. a file of results/figures/pixel_space)."""
    for out, job in folders.items():
        if path.startswith(out.rstrip("/") + "/"):
            return job
    return None


def _resolved(raw: dict[str, Any], scale: str) -> dict[str, Any]:
    from stages.config import resolve_tree

    return {k: (scale if k == "scale" else resolve_tree(v, scale)) for k, v in raw.items()}


def reruns(before: Plan, after: Plan, root_before: Path = REPO, root_after: Path = REPO) -> set[str]:
    """The jobs a run after the change from ``before`` to ``after`` reruns (in both tools, which
    track the same command, job file, code and inputs): the new or changed jobs and everything
    downstream of them."""
    old, new = before.fingerprints(root_before), after.fingerprints(root_after)
    changed = {
        job.name
        for job in after.jobs
        if job.name not in before.by_name
        or old[job.name] != new[job.name]
        or before.by_name[job.name].all_inputs() != job.all_inputs()
    }
    return after.downstream(changed)


# -- dvc.yaml ----------------------------------------------------------------------------------
HEADER = """\
# Written by `uv run python -m workflow.plan` from params.yaml (scale: {scale}); do not edit:
# change params.yaml (or the plan, workflow/plan.py) and run the generator again. The same plan
# gives Snakemake its jobs (Snakefile). One stage per job, named `{scale}-<job>`, writing under
# results/{scale}/ and data/{scale}/; each job's parameters are its job file
# (workflow/jobs/{scale}/<job>.json) and its code's digest (workflow/jobs/{scale}/code/), both deps,
# so a change reruns exactly the jobs reading it (after the `{scale}-plan` stage rewrote them).
# A job's code is computed from its imports (workflow/code_deps.py), comments and docstrings left out.
# Another scale: set `scale:` in params.yaml and run the generator; dvc.lock keeps both.
"""


def dvc_stage(job: Job) -> dict[str, Any]:
    deps = [*job.all_inputs(), job.code_file]
    outs: list[Any] = []
    metrics: list[Any] = []
    for name, path in job.outputs.items():
        out = RULES[job.rule].outputs[name]
        (metrics if out.metric else outs).append(path if out.cache else {path: {"cache": False}})
    stage = {"cmd": job.command, "deps": list(dict.fromkeys(deps)), "outs": outs}
    if metrics:
        stage["metrics"] = metrics
    return stage


# `dvc plots show`: the dual-perturbation sweeps (accuracy % of Clean, AT-PGD, AT-Dual against the
# swept eps or λ; one CSV per dataset and sweep, written by the dual_table stage).
def dvc_plots(plan: Plan) -> list[dict[str, Any]]:
    return [{plan.template("dual_table", "plots"): {"x": "x", "y": ["clean", "at_pgd", "at_dual"]}}]


# DVC's first stage rewrites the job files from params.yaml and the code digests from the code
# (Snakemake does both when it starts), so that `dvc repro` and `dvc exp run -S key=value` after
# an edit rerun exactly the jobs whose files changed. `dvc status` before it runs shows only
# `<scale>-plan` as changed. It cannot add or remove stages: for that, run the generator.
PLAN_STAGE = "plan"


def dvc_stage_name(scale: str, job: str) -> str:
    """A job's DVC stage name. The scale is part of it because dvc.lock keeps one entry per
    stage name: with the scale in the name, a run at another scale (dvc.yaml regenerated after
    `scale:` changed) records its own entries and leaves the other scale's in place, so
    switching back reruns nothing."""
    return f"{scale}-{job}"


def job_of_stage(stage: str) -> str:
    """The plan's job name (or ``plan``) of a DVC stage name (:func:`dvc_stage_name`)."""
    return stage.split("-", 1)[1]


def plan_stage(plan: Plan, root: Path = REPO, code: dict[str, JobCode] | None = None) -> dict[str, Any]:
    # Every job's code is hashed here, once, into one small file per rule and choice of
    # run-time modules (workflow/jobs/<scale>/code/, :attr:`Job.code_file`) that its stages
    # depend on: DVC would otherwise hash the same modules for every one of hundreds of stages.
    code = code if code is not None else job_code(plan, root)
    paths = sorted({path for info in code.values() for path in info.paths})
    return {
        "cmd": "python -m workflow.plan --jobs-only",
        "deps": ["params.yaml", "workflow/plan.py", "workflow/code_deps.py", *paths],
        "outs": [{f"{JOBS_DIR.as_posix()}/{plan.scale}": {"cache": False, "persist": True}}],
    }


def render_dvc_yaml(plan: Plan, root: Path = REPO, code: dict[str, JobCode] | None = None) -> str:
    """dvc.yaml's text; ``code``: the plan's :func:`job_code` when the caller has it already."""
    stages = {
        dvc_stage_name(plan.scale, PLAN_STAGE): plan_stage(plan, root, code),
        **{dvc_stage_name(plan.scale, job.name): dvc_stage(job) for job in plan.jobs},
    }
    # libyaml's emitter where PyYAML has it: Snakemake renders this at every start to warn when
    # the committed file is stale (1.2 s with the pure-Python emitter for ~500 stages).
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    body = yaml.dump({"stages": stages, "plots": dvc_plots(plan)}, Dumper=dumper, sort_keys=False, width=120)
    return HEADER.format(scale=plan.scale) + body


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` atomically unless the file already holds it (keeps its timestamp)."""
    from stages.utils.io import atomic_open

    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as fh:
        fh.write(text)
    return True


def code_file(scale: str, stage: str, chosen: tuple[str, ...] = ()) -> str:
    """Where the digest of a stage module's code with the run-time modules ``chosen`` is
    written for DVC (see :func:`plan_stage`): ``code/<stage>[-<module>...].txt``, each module by
    its last name (the registries' modules have distinct last names: checked in :func:`job_code`)."""
    suffix = "".join(f"-{module.rpartition('.')[2]}" for module in chosen)
    return f"{JOBS_DIR.as_posix()}/{scale}/code/{stage}{suffix}.txt"


@dataclass(frozen=True)
class JobCode:
    """The code a job runs: its modules (the import closure of its entry module and its
    run-time modules), their files, and the digest of their parsed code."""

    file: str
    modules: tuple[str, ...]
    paths: tuple[str, ...]
    digest: str

    @property
    def text(self) -> str:
        """The code file's content: the digest, then the files it covers."""
        return "\n".join([self.digest, *self.paths]) + "\n"


def job_code(plan: Plan, root: Path = REPO) -> dict[str, JobCode]:
    """Every job's code (by job name), computed from the code under ``root``; each distinct
    (entry module, run-time modules) pair is walked once."""
    index = CodeIndex(root)
    by_key: dict[tuple[str, tuple[str, ...]], JobCode] = {}
    files: dict[str, tuple[str, tuple[str, ...]]] = {}
    result: dict[str, JobCode] = {}
    for job in plan.jobs:
        key = (job.entry_module, job.runtime_modules)
        if key not in by_key:
            # Its file is named after the key alone (Job.code_file), so jobs sharing it share code.
            modules = index.closure([key[0], *key[1]])
            paths = tuple(sorted(index.module(m).path for m in modules))
            by_key[key] = JobCode(job.code_file, modules, paths, index.digest(modules))
        if files.setdefault(job.code_file, key) != key:
            raise ValueError(f"{job.code_file}: two different sets of code would share this file ({key})")
        result[job.name] = by_key[key]
    return result


def generated_files(plan: Plan, root: Path, code: dict[str, JobCode] | None = None) -> dict[str, str]:
    """Every file the generator writes besides dvc.yaml: path -> content."""
    files = {job.params_file: job.params_text or "" for job in plan.jobs if job.params_file}
    for info in (code if code is not None else job_code(plan, root)).values():
        files[info.file] = info.text
    return files


def _leftovers(plan: Plan, root: Path, wanted: set[str]) -> list[Path]:
    """Files in the scale's job folder that the plan no longer writes (a removed model, ...)."""
    folder = root / JOBS_DIR / plan.scale
    found = [*folder.glob("*.json"), *folder.glob("code/*.txt")] if folder.is_dir() else []
    return [p for p in found if p.relative_to(root).as_posix() not in wanted]


def write_job_files(plan: Plan, root: Path, code: dict[str, JobCode] | None = None) -> list[Path]:
    """Every job file and code digest of the plan under ``root``, each written only when its
    content changed; files of the same scale the plan no longer writes are removed. Returns
    the files written."""
    files = generated_files(plan, root, code)
    written = [root / path for path, text in files.items() if write_if_changed(root / path, text)]
    for old in _leftovers(plan, root, set(files)):
        old.unlink()
    return written


def stale_files(plan: Plan, root: Path) -> list[str]:
    """dvc.yaml, the job files and code digests that differ from what the plan writes."""
    code = job_code(plan, root)
    stale = [str(DVC_YAML)] if _differs(root / DVC_YAML, render_dvc_yaml(plan, root, code)) else []
    files = generated_files(plan, root, code)
    stale += [path for path, text in files.items() if _differs(root / path, text)]
    stale += [p.relative_to(root).as_posix() for p in _leftovers(plan, root, set(files))]
    return stale


def _differs(path: Path, text: str) -> bool:
    return not path.is_file() or path.read_text(encoding="utf-8") != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write dvc.yaml and the job files (workflow/jobs/<scale>/) from params.yaml."
    )
    parser.add_argument("--root", default=".", help="the project folder (holding params.yaml)")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when a file is stale")
    parser.add_argument(
        "--jobs-only", action="store_true", help="write the job files only (dvc.yaml's `plan` stage)"
    )
    args = parser.parse_args(argv)
    root = Path(args.root)
    from stages.utils.errors import ConfigError

    try:
        plan = Plan.load(root / "params.yaml")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = stale_files(plan, root)
        for path in stale[:20]:
            print(f"{path}: stale; run `uv run python -m workflow.plan`", file=sys.stderr)
        if len(stale) > 20:
            print(f"... and {len(stale) - 20} more", file=sys.stderr)
        return int(bool(stale))
    code = job_code(plan, root)
    write_job_files(plan, root, code)
    if args.jobs_only:
        if _differs(root / DVC_YAML, render_dvc_yaml(plan, root, code)):
            print(
                "warning: dvc.yaml does not match params.yaml (a model, attack or matrix column was "
                "added or removed?): run `uv run python -m workflow.plan`",
                file=sys.stderr,
            )
        return 0
    write_if_changed(root / DVC_YAML, render_dvc_yaml(plan, root, code))
    print(f"dvc.yaml: {len(plan.jobs)} stages at scale {plan.scale}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
