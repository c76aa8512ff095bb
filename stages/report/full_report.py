"""The full report (results/report.md and results/report.html): the one document a researcher
reads. It stitches together what the other report stages wrote — every paper's table with its
verdicts, the robustness matrices, the dataset statistics and their figures — under a
provenance block and the resolved params, and lists whatever is expected but not generated,
with the command that makes it.

The output depends only on its inputs and the git checkout (no clock), so the same commit and
results give the same bytes.

Why one module of ~740 lines: the report's sections in reading order, each a function; issue 38
reworks the report (verdicts first, forest plots).
"""

from __future__ import annotations

import csv
import hashlib
import html
import os
import platform
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import markdown
import yaml
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

from stages.claims.record import ClaimRecord, ClaimsFile, read_claims
from stages.claims.render import claim_section_lines, outcome_counts, summary_table
from stages.claims.stats import Outcome
from stages.config import resolve_tree
from stages.report.benchmarks import benchmark_lines
from stages.utils.errors import ConfigError

SCALE_MEANINGS = {
    "tiny": (
        "synthetic or tiny data run through the whole pipeline on CPU in minutes as a smoke test; "
        "its numbers are meaningless and say nothing about the papers"
    ),
    "reduced": (
        "subsets of the real datasets, trained and attacked on CPU, far below the papers' sizes "
        "(fewer images, epochs and attack steps); the numbers show directions, not the papers' values"
    ),
    "paper": "the papers' own sizes (data, epochs, attack steps), where our numbers meet theirs",
}

ATX_HEADING = re.compile(r"^(#{1,6})(\s+.*|\s*)$")
BULLET = re.compile(r"^ {0,3}[-*+]\s+(.*)$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
TABLE_SCALE = re.compile(r"Scale:\s*\*\*(\w+)\*\*")
PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")  # a str.format field left unfilled
DEMOTE_BY = 2  # a table's "#" title nests under the report's "##" section as "###"


@dataclass(frozen=True)
class FigureFolder:
    """A folder of PNGs under the figures folder. ``expected_from``: the params keys whose
    entries each have one ``<entry>.png`` (the per-dataset figures); empty when a stage writes
    the whole folder at once."""

    name: str
    description: str
    expected_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class Section:
    title: str
    table: str  # the table's file stem under the tables folder
    figures: tuple[FigureFolder, ...] = ()
    claims: str | None = None  # the paper's claims file stem under the claims folder
    intro: str = ""


DUAL_FIGURES = FigureFolder(
    "dual_perturbation", "every sweep's accuracy (and FS over λ) for one dataset (paper Figs. 3-5)"
)
GRADIENT_FIGURES = FigureFolder(
    "dual_gradients",
    "loss-gradient images of Clean, AT-PGD and AT-Dual (paper Fig. 6)",
    expected_from=("tables", "dual_perturbation", "datasets"),
)
PIXEL_FIGURES = FigureFolder("pixel_space", "Wang et al. Figs. 3-6")
DATASET_FIGURES = FigureFolder(
    "datasets", "example images, their masks and the masked images", expected_from=("datasets",)
)

PAPER_SECTIONS = (
    Section("LAT (Rothberg et al. 2019)", "lat", claims="lat"),
    Section("Attention masks (Vaishnavi et al.)", "attention_masks", claims="attention_masks"),
    Section(
        "Dual-perturbation (ICLR 2021 submission)",
        "dual_perturbation",
        (DUAL_FIGURES, GRADIENT_FIGURES),
        claims="dual_perturbation",
    ),
    Section("Pixel space (Wang et al.)", "pixel_space", (PIXEL_FIGURES,), claims="pixel_space"),
)
MATRIX_SECTION = Section(
    "Robustness matrices",
    "robustness_matrix",
    intro="Every model on each evaluation dataset under every attack of params.yaml's `robustness_matrix`.",
)
DATASETS_SECTION = Section("Datasets", "datasets", (DATASET_FIGURES,))


@dataclass
class ReportInputs:
    tables_dir: Path  # results/tables
    figures_dir: Path  # results/figures
    datasets_dir: Path  # results/datasets: one stats JSON per dataset
    repo_root: Path
    params_path: Path
    scale: str
    params: dict[str, Any]  # params.yaml as loaded, scales unresolved
    report_dir: Path | None = None  # where report.md lives; figure links are relative to it
    claims_dir: Path | None = None  # results/claims: one records file per paper (stages/claims)
    benchmarks_dir: Path | None = None  # benchmarks/: Snakemake's per-job runtime and memory

    def __post_init__(self) -> None:
        if self.scale not in SCALE_MEANINGS:
            raise ConfigError(f"scale: {self.scale!r} is not one of {', '.join(SCALE_MEANINGS)}")

    @property
    def out_dir(self) -> Path:
        return self.report_dir if self.report_dir is not None else self.figures_dir.parent


@dataclass(frozen=True)
class Missing:
    path: str
    why: str
    command: str


@dataclass
class _Report:
    inputs: ReportInputs
    lines: list[str] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    claims: dict[str, ClaimsFile] = field(default_factory=dict)  # paper -> its records

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def shown(self, path: Path) -> str:
        """``path`` as a researcher would type it: relative to the repository when inside it."""
        return _shown(path, self.inputs.repo_root)

    def link(self, path: Path) -> str:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(self.inputs.out_dir))
        return quote(Path(rel).as_posix(), safe="/")

    def link_source(self, source: str) -> str:
        """A record's source path (relative to where the stage ran, the repository root)."""
        path = Path(source)
        return self.link(path if path.is_absolute() else self.inputs.repo_root / path)


def _shown(path: Path, root: Path) -> str:
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    return Path(path).as_posix() if rel == ".." or rel.startswith(".." + os.sep) else Path(rel).as_posix()


# --- provenance -------------------------------------------------------------------------------


def _git(repo_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Only repo_root's own checkout counts: without the ceiling, git would walk up and describe
    # whatever repository happens to contain the folder. GIT_DIR & co. would override -C.
    env = {k: v for k, v in os.environ.items() if k not in {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"}}
    env["GIT_CEILING_DIRECTORIES"] = str(Path(os.path.abspath(repo_root)).parent)
    # `git status` may rewrite the index; a report must not contend with a user's own git command.
    env["GIT_OPTIONAL_LOCKS"] = "0"
    return subprocess.run(
        ["git", "-C", str(repo_root), *args], capture_output=True, text=True, env=env, check=False
    )


def git_commit(repo_root: Path) -> str:
    """HEAD's commit, with "(uncommitted changes)" when a tracked file outside results/ differs
    from it (results/ is what the pipeline itself rewrites)."""
    try:
        head = _git(repo_root, "rev-parse", "--verify", "HEAD")
    except OSError:  # no git on this machine
        return "unknown (not a git checkout)"
    if head.returncode != 0:
        inside = _git(repo_root, "rev-parse", "--is-inside-work-tree")
        if inside.returncode == 0 and inside.stdout.strip() == "true":
            return "unknown (no commit yet)"
        return "unknown (not a git checkout)"
    commit = head.stdout.strip()
    # Outputs and dvc.lock change while the DAG runs (the report is one of its last stages):
    # only a change to code or params makes the commit an inexact record.
    status = _git(
        repo_root,
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ".",
        ":(exclude)results",
        ":(exclude)dvc.lock",
    )
    if status.returncode != 0:
        return f"{commit} (working-tree state unknown)"
    return f"{commit} (uncommitted changes)" if status.stdout.strip() else commit


def file_sha256(path: Path) -> str:
    """The first 16 hex digits of the file's sha256, or "absent"."""
    if not path.is_file():
        return "absent"
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _code_first(text: str) -> str:
    """A commit hash as code, the note after it ("(uncommitted changes)") as prose."""
    first, _, rest = text.partition(" ")
    if re.fullmatch(r"[0-9a-f]{40,64}", first):
        return f"`{first}` {rest}".rstrip()
    return text


def precision_lines(params: dict[str, Any], scale: str) -> list[str]:
    """The provenance lines saying how training computed (params.yaml's ``precision`` at
    ``scale``, per device) and that evaluation attacks ran in fp32; none for a params tree
    without the section."""
    section = params.get("precision")
    if not isinstance(section, dict):
        return []
    resolved = resolve_tree(section, scale)

    def device_text(device: str, entry: dict[str, Any]) -> str:
        parts = [str(entry.get("precision")), str(entry.get("memory_format"))]
        if device == "cuda":
            parts.append(f"TF32 {'on' if entry.get('tf32') else 'off'}")
        return f"{device} {', '.join(parts)}"

    training = "; ".join(device_text(d, e) for d, e in resolved.get("training", {}).items())
    attacks = "; ".join(f"{d} {e.get('precision')}" for d, e in resolved.get("training_attack", {}).items())
    return [
        f"- Training precision (`precision` in params.yaml, by device): {training}; adversarial "
        f"training's attack: {attacks}. Each model's `metrics.json` records the settings it "
        "trained with (`precision`: the device it ran on and what was in force there). "
        "Evaluation attacks run in fp32 (the few-pixel DE search scores its candidates as "
        "`evaluation.de_forward` says).",
    ]


def _provenance(report: _Report) -> None:
    inputs = report.inputs
    report.add(
        "## Provenance",
        "",
        f"- Git commit: {_code_first(git_commit(inputs.repo_root))}",
        f"- `dvc.lock` sha256 (first 16 hex digits): `{file_sha256(inputs.repo_root / 'dvc.lock')}` — "
        "dvc.lock as it stood when this report was generated (a later `dvc commit` or `dvc repro` "
        "that records this stage changes it)",
        f"- `{report.shown(inputs.params_path)}` sha256 (first 16 hex digits): "
        f"`{file_sha256(inputs.params_path)}`",
        f"- Scale: **{inputs.scale}**",
        f"- Python {platform.python_version()}, torch {_version('torch')}, "
        f"torchvision {_version('torchvision')}",
        *precision_lines(inputs.params, inputs.scale),
        *benchmark_lines(inputs.benchmarks_dir),
        "",
    )


# --- embedding the table documents --------------------------------------------------------------


def _fence_tracker() -> Callable[[str], bool]:
    """A function telling, line by line, whether the line belongs to a fenced code block."""
    state: dict[str, str | None] = {"fence": None}

    def in_code(line: str) -> bool:
        match = FENCE.match(line)
        fence = state["fence"]
        if fence is None:
            if match:
                state["fence"] = match.group(1)
                return True
            return False
        if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
            if not line.strip().lstrip(fence[0]):
                state["fence"] = None
        return True

    return in_code


def unfilled_placeholders(text: str) -> list[tuple[int, str]]:
    """Each ``{identifier}`` outside fenced code blocks, with its 1-based line number: a
    template a stage forgot to fill (a reader cannot tell which model ``{model}`` meant).
    Inline code counts too, since it is as much read as prose is; fenced blocks (the YAML
    configuration, example commands) may hold braces of their own."""
    in_code = _fence_tracker()
    return [
        (number, match.group(0))
        for number, line in enumerate(text.splitlines(), 1)
        if not in_code(line)
        for match in PLACEHOLDER.finditer(line)
    ]


def demote_headings(text: str, by: int = DEMOTE_BY) -> str:
    """Every heading ``by`` levels deeper (at most level 6); setext headings become ATX ones.
    Code blocks are left alone."""
    in_code = _fence_tracker()
    out: list[str] = []
    prose_before = False  # whether the previous line could carry a setext underline
    for line in text.splitlines():
        if in_code(line):
            out.append(line)
            prose_before = False
            continue
        setext = re.fullmatch(r" {0,3}(=+|-+)\s*", line)
        if setext and prose_before:
            level = 1 if setext.group(1)[0] == "=" else 2
            out[-1] = "#" * min(6, level + by) + " " + out[-1].strip()
            prose_before = False
            continue
        heading = ATX_HEADING.match(line)
        if heading:
            out.append("#" * min(6, len(heading.group(1)) + by) + heading.group(2))
            prose_before = False
            continue
        out.append(line)
        stripped = line.strip()
        prose_before = bool(stripped) and not stripped.startswith(("|", ">", "<")) and not BULLET.match(line)
    return "\n".join(out).rstrip("\n") + "\n"


# --- sections -----------------------------------------------------------------------------------


def _snakemake(report: _Report, target: Path) -> str:
    """The command that makes ``target`` at the report's scale."""
    inputs = report.inputs
    # Snakemake runs at params.yaml's own scale unless told otherwise.
    scale = f" --config scale={inputs.scale}" if inputs.params.get("scale") != inputs.scale else ""
    return f"uv run snakemake {report.shown(target)}{scale}"


def _figures(report: _Report, folder: FigureFolder, table: Path) -> None:
    inputs = report.inputs
    path = inputs.figures_dir / folder.name
    pngs = sorted(path.glob("*.png")) if path.is_dir() else []
    expected = _expected(inputs.params, folder.expected_from)
    report.add(f"### Figures: `{report.shown(path)}/`", "", f"{folder.description}.", "")
    for png in pngs:
        caption = png.stem.replace("_", " ")
        report.add(f"![{caption}]({report.link(png)})", "", f"*Figure: {caption}* (`{png.name}`)", "")
    if not pngs:
        report.add("*No figures: see Missing below.*", "")
    if expected:
        present = {p.stem for p in pngs}
        for stem in expected:
            if stem not in present:
                png = path / f"{stem}.png"
                report.missing.append(Missing(report.shown(png), "not generated", _snakemake(report, png)))
    elif not pngs:
        why = "folder is empty (no PNG)" if path.is_dir() else "folder not generated"
        # A folder written as a whole is the output of its table's rule.
        report.missing.append(Missing(f"{report.shown(path)}/", why, _snakemake(report, table)))


def _expected(params: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    if not keys:
        return []
    node: Any = params
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return sorted(node) if isinstance(node, dict) else []


def _unevaluated_cells(report: _Report, table: Path) -> None:
    """A matrix made from a partial run lists its missing cells itself; count them here too,
    so that "Missing" never reads "Nothing missing." over a half-empty matrix."""
    cells = table.with_suffix(".csv")
    if not cells.is_file():
        return
    with open(cells, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    missing = sum(1 for row in rows if row.get("fits") == "True" and row.get("evaluated") == "False")
    if missing:
        why = f"{missing} cell(s) of the matrix not evaluated yet (each listed there with its command)"
        report.missing.append(Missing(report.shown(table), why, _snakemake(report, table)))


def _section(report: _Report, section: Section) -> None:
    inputs = report.inputs
    table = inputs.tables_dir / f"{section.table}.md"
    report.add(f"## {section.title}", "")
    if section.intro:
        report.add(section.intro, "")
    if not table.is_file():
        report.add(f"*`{report.shown(table)}` has not been generated: see Missing below.*", "")
        report.missing.append(Missing(report.shown(table), "not generated", _snakemake(report, table)))
    else:
        text = table.read_text(encoding="utf-8")
        if section.table == "robustness_matrix":
            _unevaluated_cells(report, table)
        made_at = TABLE_SCALE.search(text)
        if made_at and made_at.group(1) != inputs.scale:
            report.add(
                f"> **Scale mismatch:** `{report.shown(table)}` was made at scale **{made_at.group(1)}**, "
                f"this report at **{inputs.scale}**; rerun `{_snakemake(report, table)}`.",
                "",
            )
        if section.claims:
            _claims(report, section.claims, table)
        report.add(demote_headings(text))
    if section is DATASETS_SECTION:
        _dataset_stats(report)
    for folder in section.figures:
        _figures(report, folder, table)


def _claims_path(report: _Report, paper: str) -> Path | None:
    folder = report.inputs.claims_dir
    return None if folder is None else folder / f"{paper}.json"


def _read_paper_claims(report: _Report, paper: str, table: Path) -> ClaimsFile | None:
    """The paper's claim records, or None (listed as missing) when its table stage has not run."""
    path = _claims_path(report, paper)
    if path is None or not path.is_file():
        shown = report.shown(path) if path is not None else f"results/claims/{paper}.json"
        report.missing.append(Missing(shown, "not generated", _snakemake(report, table)))
        return None
    return read_claims(path)


def _claims(report: _Report, paper: str, table: Path) -> None:
    claims = report.claims.get(paper)
    report.add("### Claims", "")
    if claims is None:
        report.add("*No claim records: see Missing below.*", "")
        return
    path = _claims_path(report, paper)
    parts = {part for record in claims.claims for part in record.parts}
    top = [r for r in claims.claims if r.claim_id not in parts]
    counts = (
        f"Top-level claims: {outcome_counts(top)}; every record, parts included: "
        f"{outcome_counts(claims.claims)}."
    )
    report.add(
        f"{counts} Records: `{report.shown(path)}`" if path else counts,
        *_health_lines(claims),
        *claim_section_lines(claims.claims, report.link_source),
        f"Source: `{report.shown(table)}`, in full below.",
        "",
    )


SUMMARY_INTRO = (
    "Every claim of the four papers we test, as our run decides it, by one rule: **holds** or "
    "**does not hold** only when the 95 % interval of our effect lies wholly on one side of the "
    "claim's boundary, **inconclusive** when it does not, **degenerate** when a model the claim rests "
    "on is (near-)constant or not above its majority-class share (or, for FS claims, the salience "
    "model fails its sanity check), **not tested** with the reason. Each paper's claims are one "
    "family: every tested part carries its raw and Holm-adjusted p (the smallest level at which its "
    "interval decides), and the outcome shown is the one that survives Holm's adjustment at 5 % "
    "(the unadjusted one beside it where they differ), so that a paper's verdicts together are wrong "
    "with at most 5 % probability. Claims of ours are a family of their own and counted apart. "
    '"Small sample" flags fewer images than params.yaml `claims.min_samples`; for paired 0/1 '
    "outcomes n is followed by the discordant pairs, which carry the information. Claims made of "
    "parts list the parts in their section; the effect links to the records file; the last column "
    "says what would decide an undecided claim (the binding constraint, the images that give 80 % "
    "power, the pool, the CPU hours)."
)


def _health_lines(claims: ClaimsFile) -> list[str]:
    """The models the claims rest on that are no evidence, and why (which test fired)."""
    lines = [
        f"- `{h.model}`: {'degenerate (' + ', '.join(h.tests) + ')' if h.degenerate else 'sound'}: {h.text}"
        for h in claims.models
        if h.text
    ]
    return ["", "Model health (from each model's clean evaluation):", "", *lines] if lines else []


def _summary(report: _Report) -> None:
    """The one table a reader takes in first: every claim that is not a part of another."""
    rows = []
    sources = {}
    every: dict[tuple[str, str], ClaimRecord] = {}
    for section in PAPER_SECTIONS:
        if section.claims is None:
            continue
        table = report.inputs.tables_dir / f"{section.table}.md"
        claims = _read_paper_claims(report, section.claims, table)
        if claims is None:
            continue
        report.claims[section.claims] = claims
        path = _claims_path(report, section.claims)
        if path is not None:
            sources[claims.paper] = str(path)
        every.update({(record.paper, record.claim_id): record for record in claims.claims})
        parts = {part for record in claims.claims for part in record.parts}
        rows += [(claims.title, record) for record in claims.claims if record.claim_id not in parts]
    report.add("## Summary of the papers' claims", "")
    if not rows:
        report.add("*No claim records yet: see Missing below.*", "")
        return
    papers = [(t, r) for t, r in rows if not r.ours]
    ours = [(t, r) for t, r in rows if r.ours]
    report.add(
        SUMMARY_INTRO,
        "",
        *_claim_counts(every, [r for _, r in papers], [r for _, r in ours]),
        "",
        summary_table(papers, report.link_source, sources, every),
        "",
    )
    if ours:
        report.add(
            "Claims of ours (extensions the papers do not make):",
            "",
            summary_table(ours, report.link_source, sources, every),
            "",
        )


def _claim_counts(
    every: dict[tuple[str, str], ClaimRecord], papers: list[ClaimRecord], ours: list[ClaimRecord]
) -> list[str]:
    """Each count says what it counts: top-level claims (the rows) apart from their parts, the
    papers' claims apart from ours, and how many decided parts survive Holm's adjustment."""
    leaves = [r for r in every.values() if not r.parts and not r.ours]
    decided = [r for r in leaves if r.outcome_unadjusted in (Outcome.HOLDS, Outcome.FAILS)]
    survive = [r for r in decided if r.outcome in (Outcome.HOLDS, Outcome.FAILS)]
    demoted = [r for r in papers if r.outcome_unadjusted is not None and r.outcome_unadjusted != r.outcome]
    lines = [
        f"- The papers' claims, top level (the rows below): {len(papers)}: {outcome_counts(papers)}.",
        f"- Their parts and single claims with an effect (leaves): {len(leaves)}: {outcome_counts(leaves)}.",
        f"- Holm's adjustment per paper: {len(survive)} of the {len(decided)} leaves decided at their "
        "own level "
        f"stay decided; {len(demoted)} top-level claim(s) change outcome"
        + (f" ({', '.join(r.claim_id for r in demoted)})" if demoted else "")
        + ".",
    ]
    if ours:
        lines.append(f"- Claims of ours, top level: {len(ours)}: {outcome_counts(ours)}.")
    return lines


def _dataset_stats(report: _Report) -> None:
    inputs = report.inputs
    names = _expected(inputs.params, ("datasets",))
    found = sorted(inputs.datasets_dir.glob("*.json")) if inputs.datasets_dir.is_dir() else []
    if found:
        links = ", ".join(f"[{p.stem}]({report.link(p)})" for p in found)
        report.add(f"Per-dataset statistics (`{report.shown(inputs.datasets_dir)}/`): {links}.", "")
    present = {p.stem for p in found}
    for name in names:
        if name not in present:
            path = inputs.datasets_dir / f"{name}.json"
            report.missing.append(Missing(report.shown(path), "not generated", _snakemake(report, path)))


class _NoAliases(yaml.SafeDumper):
    # params.yaml shares lists through YAML anchors; a reader wants each value written out.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _configuration(report: _Report) -> None:
    inputs = report.inputs
    resolved = resolve_tree(inputs.params, inputs.scale)
    dumped = yaml.dump(resolved, Dumper=_NoAliases, sort_keys=False, allow_unicode=True, width=100)
    longest = max((len(run) for run in re.findall(r"`+", dumped)), default=0)
    fence = "`" * max(3, longest + 1)
    shown = report.shown(inputs.params_path)
    yaml_lines = [
        f"# {shown} with every scaled value resolved at scale {inputs.scale}"
        + (
            f" (its own default, `scale:` below, is {own})"
            if (own := inputs.params.get("scale")) not in (None, inputs.scale)
            else ""
        ),
        *dumped.rstrip("\n").splitlines(),
    ]
    # The configuration is the provenance of every number above, so all of it is here; but at
    # some 1,500 lines it would bury the report, so it is folded, its size on the fold.
    # markdown="1" lets Python-Markdown render the fence inside the HTML block; the blank line
    # after <summary> ends GitHub's HTML block so that GitHub renders the fence too. GitHub
    # leaves markdown inside <summary> as typed, hence <code> rather than backticks.
    report.add(
        "## Configuration",
        "",
        '<details markdown="1">',
        f"<summary><code>{html.escape(shown)}</code> resolved at scale {inputs.scale}: "
        f"{len(yaml_lines):,} lines of YAML (click to expand)</summary>",
        "",
        f"{fence}yaml",
        *yaml_lines,
        fence,
        "",
        "</details>",
        "",
    )


def _missing(report: _Report) -> None:
    report.add("## Missing", "")
    if not report.missing:
        report.add("Nothing missing.", "")
        return
    for item in report.missing:
        report.add(f"- `{item.path}`: {item.why}; run `{item.command}`")
    report.add("")


def build_report(inputs: ReportInputs) -> str:
    """The report as markdown."""
    report = _Report(inputs)
    report.add(
        "# Backdrop report",
        "",
        "Backdrop is a reproducible Snakemake and DVC pipeline that rebuilds the datasets, models, "
        "attacks and tables of four papers on foreground/background-localized adversarial robustness "
        "of image classifiers: localized adversarial training (LAT), attention masks, dual-perturbation "
        "attacks with AT-Dual, and region-restricted few-pixel attacks. Each section below shows the "
        f"paper's numbers beside ours with a verdict on each claim. Scale: **{inputs.scale}**, that is "
        f"{SCALE_MEANINGS[inputs.scale]}.",
        "",
        "This file is generated by `python -m stages.build_report`; do not edit it by hand.",
        "",
    )
    _provenance(report)
    _summary(report)
    for section in PAPER_SECTIONS:
        _section(report, section)
    _section(report, MATRIX_SECTION)
    _section(report, DATASETS_SECTION)
    _configuration(report)
    _missing(report)
    return "\n".join(report.lines).rstrip("\n") + "\n"


# --- HTML ---------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; line-height: 1.5; color: #222;
       max-width: 1200px; margin: 0 auto; padding: 1rem 2rem; }
nav.toc { border: 1px solid #ddd; background: #fafafa; padding: 0.5rem 1rem; margin: 1rem 0; }
.table-scroll { overflow-x: auto; margin: 1rem 0; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border: 1px solid #bbb; padding: 0.25rem 0.5rem; }
th { background: #f0f0f0; }
tbody tr:nth-child(even) { background: #fafafa; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
code { background: #f4f4f4; padding: 0 0.2rem; font-size: 0.9em; }
pre { background: #f4f4f4; padding: 0.75rem; overflow-x: auto; }
pre code { padding: 0; }
blockquote { border-left: 4px solid #d9822b; margin: 1rem 0; padding: 0.25rem 1rem; background: #fff8f0; }
details summary { cursor: pointer; font-weight: 600; }
""".strip()


TABLE_SCROLL_CLASS = "table-scroll"


class _WrapTables(Treeprocessor):
    def run(self, root: ElementTree.Element) -> None:
        for parent in list(root.iter()):
            for index, child in enumerate(list(parent)):
                if child.tag == "table":
                    wrapper = ElementTree.Element("div", {"class": TABLE_SCROLL_CLASS})
                    parent.remove(child)
                    wrapper.append(child)
                    parent.insert(index, wrapper)


class _ScrollingTables(Extension):
    """Each table in a box of its own that scrolls sideways: the matrices run to twenty columns,
    and one table wider than the window would otherwise widen the whole page. (A table made
    display:block would scroll too, but browsers then drop its table semantics for screen
    readers.)"""

    def extendMarkdown(self, md: markdown.Markdown) -> None:
        # Priority 15: after the inline processor (20), which may still rebuild elements, and
        # before prettify (10), so that the wrappers are laid out like every other block.
        md.treeprocessors.register(_WrapTables(md), "scrolling_tables", 15)


def render_html(markdown_text: str, title: str) -> str:
    """A standalone HTML5 page of the markdown, with a contents list of its sections."""
    converter = markdown.Markdown(
        extensions=["tables", "fenced_code", "toc", "md_in_html", _ScrollingTables()],
        extension_configs={"toc": {"toc_depth": "2-2"}},
    )
    body = converter.convert(markdown_text)
    nav = f'<nav class="toc">\n<strong>Contents</strong>\n{getattr(converter, "toc", "")}\n</nav>'
    # The contents list belongs under the title, not above it.
    body = body.replace("</h1>", "</h1>\n" + nav, 1) if "</h1>" in body else nav + "\n" + body
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)}</title>",
            f"<style>\n{CSS}\n</style>",
            "</head>",
            "<body>",
            "<main>",
            body,
            "</main>",
            "</body>",
            "</html>",
            "",
        ]
    )
