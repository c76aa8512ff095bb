"""The full report: every table and figure in it, the claims summary and sections rendered from
the claim records (never from the tables' prose), what is missing listed with the command that
makes it, provenance from git and dvc.lock, the same bytes for the same inputs, and the stage CLI
writing report.md and report.html."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from stages.build_report import main, parser
from stages.claims.record import ClaimRecord, ClaimsFile, Effect, ModelHealth, Quantity, write_claims
from stages.claims.stats import Outcome
from stages.config import Params, load_yaml, resolve_tree
from stages.report.full_report import (
    ReportInputs,
    build_report,
    demote_headings,
    render_html,
    unfilled_placeholders,
)
from stages.utils.cli import run_stage
from stages.utils.errors import DataError

ROOT = Path(__file__).resolve().parent.parent

LAT_MD = """# LAT: fake loss table

Scale: **tiny**. Paper: Rothberg et al. 2019, Figure 2. MARKER-LAT

## mnist

| model   |   loss natural |   paper loss natural |
|:--------|---------------:|---------------------:|
| natural |          38.34 |                 41.4 |

## Claims

- mnist: claim 1 (LAT beats the natural model on natural and adversarial inputs) does NOT hold: 0.04 vs 0.03.
- mnist: claim 2 (standard AT trades natural loss for robustness) holds: natural loss 0.1080 vs 0.0383.
"""

# A bullet wrapped over two lines, as a hand-written table might do.
ATTENTION_MD = """# Attention masks: fake Table 4

Scale: **tiny**. Paper: Vaishnavi et al. 2020, Table 4. MARKER-ATTENTION

## coco_ic (MS-COCO-IC)

| model   |   natural accuracy % |
|:--------|---------------------:|
| X-N     |                30.92 |

## Claims

- coco_ic: claim 1 (X_FG-A beats X-A on both natural and PGD accuracy)
  holds: X_FG-A is higher (natural 44.39% vs 33.42%).
"""

DUAL_MD = """# Dual-perturbation attacks: fake

Scale: **tiny**. Paper: ICLR 2021 submission (so below are its statements and our verdicts). MARKER-DUAL

## The paper's claims and our verdicts

### Claim 1

Paper: §5.3, Fig. 4: AT-PGD falls below 10% accuracy while AT-Dual keeps up to 40 points more.

- segment6: claim 1 (AT-Dual more robust than AT-PGD under `dual_l2_f2_b20`) does not hold: 0% vs 0%.
- coco_ic: claim 1 (AT-Dual more robust than AT-PGD under `dual_l2_f2_b20`) holds: 18.95% vs 1.75%.

## Figures and plot data

- `results/figures/dual_perturbation/segment6.png`: every sweep's accuracy for one dataset
"""

PIXEL_MD = """# Pixel-space attacks: fake

Scale: **tiny**. Paper: Wang et al. MARKER-PIXEL

## The claim and our verdict

Rule: the claim holds at k when background < foreground. Overall: holds when every model that decides holds.

- AllConv: **holds** (1px: original 10.53, foreground 10.53 (gap_fg +0.00; yes)). Paper's numbers: holds.
- NiN: **not enough data** (no pixel count decides). Paper's numbers: holds.

Overall: **does not hold**.

## Missing

- NiN `natural` (`natural`): evaluation not found: results/evals/cifar10_nin/natural.json
"""

MATRIX_MD = """# Robustness matrices

Scale: **tiny**. MARKER-MATRIX

## mnist

| model         |   natural |   lat_standard |
|:--------------|----------:|---------------:|
| mnist_natural |      0.99 |           0.01 |
"""

DATASETS_MD = """# Datasets with foreground masks

Scale: **tiny**. MARKER-DATASETS

| dataset | split | samples |
|:--------|:------|--------:|
| mnist   | train |      64 |

```text
# a comment in code, not a heading
```
"""

TABLES = {
    "lat": LAT_MD,
    "attention_masks": ATTENTION_MD,
    "dual_perturbation": DUAL_MD,
    "pixel_space": PIXEL_MD,
    "robustness_matrix": MATRIX_MD,
    "datasets": DATASETS_MD,
}


def record(paper: str, claim_id: str, outcome: Outcome, **kw: Any) -> ClaimRecord:
    base: dict[str, Any] = dict(
        paper=paper,
        claim_id=claim_id,
        claim=f"claim {claim_id}",
        quote="the paper's words",
        section="§1",
        dataset="mnist",
        rule="holds when the interval lies above 0",
        outcome=outcome,
        reason="",
    )
    return ClaimRecord(**{**base, **kw})


EFFECT = Effect("A minus B", "points", 12.5, 8.25, 16.75, 500, "Newcombe", False, None, 20.0, False)
QUANTITY = Quantity("A natural", 90.0, "%", 500, "results/evals/m/natural.json", 87.1, 92.3)
# One paper with a composite claim and its two parts, the others one record each.
CLAIMS = {
    "lat": ClaimsFile(
        "lat",
        "LAT (Rothberg et al. 2019)",
        "tiny",
        (
            record("lat", "mnist.L1.natural", Outcome.HOLDS, effect=EFFECT, quantities=(QUANTITY,)),
            record("lat", "mnist.L1.attack", Outcome.INCONCLUSIVE, reason="the interval straddles 0"),
            record("lat", "mnist.L1", Outcome.INCONCLUSIVE, parts=("mnist.L1.natural", "mnist.L1.attack")),
            record("lat", "cifar10.L2", Outcome.DEGENERATE, reason="`cifar10_standard` is at chance"),
        ),
        (
            ModelHealth(
                "cifar10_standard",
                "evals/s.json",
                500,
                0.108,
                0.1,
                6,
                1.0,
                2.30,
                2.30,
                ("constant", "majority"),
                "why",
            ),
        ),
    ),
    "attention_masks": ClaimsFile(
        "attention_masks",
        "Attention masks",
        "tiny",
        (record("attention_masks", "coco_ic.A1", Outcome.FAILS),),
    ),
    "dual_perturbation": ClaimsFile(
        "dual_perturbation", "Dual", "tiny", (record("dual_perturbation", "coco_ic.D1", Outcome.HOLDS),)
    ),
    "pixel_space": ClaimsFile(
        "pixel_space", "Pixel", "tiny", (record("pixel_space", "P1", Outcome.NOT_TESTED, reason="no NiN"),)
    ),
}


def png_bytes() -> bytes:
    """A valid 1x1 greyscale PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def params() -> dict[str, Any]:
    raw = load_yaml(ROOT / "params.yaml")
    raw["scale"] = "tiny"  # the report's scale, so commands need no --config (tested on its own)
    return raw


def figure_names(params: dict[str, Any]) -> dict[str, list[str]]:
    return {
        "dual_perturbation": ["coco_ic", "segment6"],
        "dual_gradients": sorted(params["tables"]["dual_perturbation"]["datasets"]),
        "pixel_space": ["fitness", "targets_reached"],
        "datasets": sorted(params["datasets"]),
    }


def make_project(root: Path, params: dict[str, Any]) -> ReportInputs:
    """A results/ folder with every expected table, figure and dataset statistics file."""
    results = root / "results"
    for name, text in TABLES.items():
        path = results / "tables" / f"{name}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for folder, stems in figure_names(params).items():
        (results / "figures" / folder).mkdir(parents=True, exist_ok=True)
        for stem in stems:
            (results / "figures" / folder / f"{stem}.png").write_bytes(png_bytes())
    for paper, claims in CLAIMS.items():
        write_claims(results / "claims" / f"{paper}.json", claims)
    (results / "datasets").mkdir(parents=True)
    for name in params["datasets"]:
        (results / "datasets" / f"{name}.json").write_text('{"samples": 1}\n', encoding="utf-8")
    params_path = root / "params.yaml"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return ReportInputs(
        tables_dir=results / "tables",
        figures_dir=results / "figures",
        datasets_dir=results / "datasets",
        repo_root=root,
        params_path=params_path,
        scale="tiny",
        params=params,
        report_dir=results,
        claims_dir=results / "claims",
    )


def section(md: str, title: str) -> str:
    """The text of the report's ``## title`` section, up to the next ``## `` heading."""
    start = md.index(f"\n## {title}\n")
    end = md.find("\n## ", start + 1)
    return md[start : end if end != -1 else len(md)]


def missing_items(md: str) -> list[str]:
    return [line for line in section(md, "Missing").splitlines() if line.startswith("- ")]


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def test_every_table_and_figure_appears(tmp_path: Path, params: dict[str, Any]) -> None:
    inputs = make_project(tmp_path, params)
    md = build_report(inputs)
    titles = [
        "Provenance",
        "LAT (Rothberg et al. 2019)",
        "Attention masks (Vaishnavi et al.)",
        "Dual-perturbation (ICLR 2021 submission)",
        "Pixel space (Wang et al.)",
        "Robustness matrices",
        "Datasets",
        "Configuration",
        "Missing",
    ]
    positions = [md.index(f"\n## {title}\n") for title in titles]
    assert positions == sorted(positions)
    for marker, title in [
        ("MARKER-LAT", "LAT (Rothberg et al. 2019)"),
        ("MARKER-ATTENTION", "Attention masks (Vaishnavi et al.)"),
        ("MARKER-DUAL", "Dual-perturbation (ICLR 2021 submission)"),
        ("MARKER-PIXEL", "Pixel space (Wang et al.)"),
        ("MARKER-MATRIX", "Robustness matrices"),
        ("MARKER-DATASETS", "Datasets"),
    ]:
        assert marker in section(md, title)
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    expected = [
        f"figures/{folder}/{stem}.png" for folder, stems in figure_names(params).items() for stem in stems
    ]
    assert sorted(links) == sorted(expected)
    for link in links:
        assert (inputs.report_dir / link).is_file()  # relative to report.md, and real
    assert "![targets reached](figures/pixel_space/targets_reached.png)" in md
    assert "*Figure: targets reached* (`targets_reached.png`)" in md
    pixel = section(md, "Pixel space (Wang et al.)")
    assert pixel.index("fitness.png") < pixel.index("targets_reached.png")  # sorted by name
    dual = section(md, "Dual-perturbation (ICLR 2021 submission)")
    assert "figures/dual_perturbation/coco_ic.png" in dual and "figures/dual_gradients/" in dual
    datasets = section(md, "Datasets")
    assert "[mnist](datasets/mnist.json)" in datasets and "figures/datasets/mnist.png" in datasets


def test_headings_are_demoted_under_their_section(tmp_path: Path, params: dict[str, Any]) -> None:
    md = build_report(make_project(tmp_path, params))
    assert "\n### LAT: fake loss table\n" in md and "\n#### mnist\n" in md
    assert "\n##### Claim 1\n" in md  # a table's ### nests two levels deeper too
    assert not re.search(r"^# (LAT|Attention|Dual|Pixel|Robustness|Datasets)", md, re.M)
    assert "\n# a comment in code, not a heading\n" in md  # code blocks are left alone
    assert demote_headings("Title\n=====\n\ntext\n") == "### Title\n\ntext\n"
    assert demote_headings("##### deep\n") == "###### deep\n"  # at most level 6


def test_summary_lists_every_claim_that_is_not_a_part_from_the_records(
    tmp_path: Path, params: dict[str, Any]
) -> None:
    md = build_report(make_project(tmp_path, params))
    summary = section(md, "Summary of the papers' claims")
    assert md.index("## Summary of the papers' claims") < md.index("## LAT (Rothberg et al. 2019)")
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "**" in line]
    ids = [row.split("|")[2].strip().split(":")[0] for row in rows]
    # Parts of a composite claim are left to their section; every other record has a row.
    assert ids == ["mnist.L1", "cifar10.L2", "coco_ic.A1", "coco_ic.D1", "P1"]
    outcomes = [row.split("|")[4].strip() for row in rows]
    assert outcomes == [
        "**inconclusive**",
        "**degenerate**",
        "**does not hold**",
        "**holds**",
        "**not tested**",
    ]
    # A composite's effect counts its parts' outcomes and links to the records file.
    assert "[parts: 1 holds, 1 inconclusive](claims/lat.json)" in rows[0]
    # Every count says what it counts: the rows (top-level claims) apart from their leaves.
    assert (
        "- The papers' claims, top level (the rows below): 5: 1 holds, 1 does not hold, 1 inconclusive, "
        "1 degenerate, 1 not tested." in summary
    )
    assert "- Their parts and single claims with an effect (leaves): " in summary
    assert "Holm's adjustment per paper" in summary


def test_claims_sections_are_rendered_from_records_not_from_table_prose(
    tmp_path: Path, params: dict[str, Any]
) -> None:
    inputs = make_project(tmp_path, params)
    md = build_report(inputs)
    lat = section(md, "LAT (Rothberg et al. 2019)")
    claims = lat.split("### Claims\n\n", 1)[1]
    assert claims.startswith(
        "Top-level claims: 1 inconclusive, 1 degenerate; every record, parts included: 1 holds, "
        "2 inconclusive, 1 degenerate. Records: `results/claims/lat.json`"
    )
    assert "- **mnist.L1.natural** (mnist): claim mnist.L1.natural — **holds**" in claims
    assert "A minus B: +12.5 points [+8.2, +16.8]; paper: +20.0 (n = 500; Newcombe)" in claims
    # Numbers link to their source file, relative to report.md.
    assert "A natural: [90.0 %](evals/m/natural.json) (CI 87.1–92.3, n = 500)" in claims
    assert "Why: `cifar10_standard` is at chance" in claims
    assert "- `cifar10_standard`: degenerate (constant, majority): why" in lat
    assert lat.index("### Claims") < lat.index("### LAT: fake loss table")
    # The tables' own verdict sentences are never read back: a "holds" bullet in a table's prose
    # that no record has does not reach the summary.
    assert "does NOT hold: 0.04 vs 0.03" not in section(md, "Summary of the papers' claims")
    assert "### Claims" not in section(md, "Datasets")  # not a paper: no claims


def test_a_missing_claims_file_is_listed_and_a_broken_one_names_its_field(
    tmp_path: Path, params: dict[str, Any]
) -> None:
    inputs = make_project(tmp_path, params)
    assert inputs.claims_dir is not None
    (inputs.claims_dir / "pixel_space.json").unlink()
    md = build_report(inputs)
    assert (
        "- `results/claims/pixel_space.json`: not generated; "
        "run `uv run snakemake results/tables/pixel_space.md`" in missing_items(md)
    )
    assert "*No claim records: see Missing below.*" in section(md, "Pixel space (Wang et al.)")
    broken = (inputs.claims_dir / "lat.json").read_text(encoding="utf-8").replace('"outcome"', '"result"', 1)
    (inputs.claims_dir / "lat.json").write_text(broken, encoding="utf-8")
    with pytest.raises(
        DataError, match=r"lat\.json: claims\[0\] \(mnist\.L1\.natural\): missing field 'outcome'"
    ):
        build_report(inputs)


def test_missing_table_and_figures_are_listed_with_commands(tmp_path: Path, params: dict[str, Any]) -> None:
    inputs = make_project(tmp_path, params)
    (inputs.tables_dir / "pixel_space.md").unlink()
    (inputs.tables_dir / "robustness_matrix.md").unlink()
    for png in (inputs.figures_dir / "pixel_space").glob("*.png"):
        png.unlink()  # an empty folder
    shutil.rmtree(inputs.figures_dir / "dual_perturbation")  # no folder at all
    gradient = sorted(params["tables"]["dual_perturbation"]["datasets"])[0]
    (inputs.figures_dir / "dual_gradients" / f"{gradient}.png").unlink()
    (inputs.datasets_dir / "mnist.json").unlink()
    md = build_report(inputs)
    assert missing_items(md) == [
        "- `results/figures/dual_perturbation/`: folder not generated; "
        "run `uv run snakemake results/tables/dual_perturbation.md`",
        f"- `results/figures/dual_gradients/{gradient}.png`: not generated; "
        f"run `uv run snakemake results/figures/dual_gradients/{gradient}.png`",
        "- `results/tables/pixel_space.md`: not generated; "
        "run `uv run snakemake results/tables/pixel_space.md`",
        "- `results/figures/pixel_space/`: folder is empty (no PNG); "
        "run `uv run snakemake results/tables/pixel_space.md`",
        "- `results/tables/robustness_matrix.md`: not generated; "
        "run `uv run snakemake results/tables/robustness_matrix.md`",
        "- `results/datasets/mnist.json`: not generated; run `uv run snakemake results/datasets/mnist.json`",
    ]
    assert "Nothing missing." not in md
    assert "has not been generated" in section(md, "Pixel space (Wang et al.)")


def test_nothing_missing(tmp_path: Path, params: dict[str, Any]) -> None:
    md = build_report(make_project(tmp_path, params))
    assert missing_items(md) == []
    assert section(md, "Missing").strip().endswith("Nothing missing.")


def test_commands_name_the_scale_when_params_default_differs(tmp_path: Path, params: dict[str, Any]) -> None:
    inputs = make_project(tmp_path, {**params, "scale": "reduced"})
    (inputs.tables_dir / "lat.md").unlink()
    md = build_report(inputs)
    assert missing_items(md) == [
        "- `results/tables/lat.md`: not generated; "
        "run `uv run snakemake results/tables/lat.md --config scale=tiny`"
    ]


def test_a_table_made_at_another_scale_is_flagged(tmp_path: Path, params: dict[str, Any]) -> None:
    inputs = make_project(tmp_path, params)
    (inputs.tables_dir / "lat.md").write_text(LAT_MD.replace("**tiny**", "**reduced**"), encoding="utf-8")
    md = build_report(inputs)
    assert "**Scale mismatch:** `results/tables/lat.md` was made at scale **reduced**" in md
    assert md.count("Scale mismatch") == 1


def test_scale_is_stated_with_its_meaning(tmp_path: Path, params: dict[str, Any]) -> None:
    inputs = make_project(tmp_path, params)
    tiny = build_report(inputs)
    inputs.scale = "paper"
    paper = build_report(inputs)
    assert "Scale: **tiny**, that is synthetic" in tiny and "meaningless" in tiny.split("## Provenance")[0]
    assert "Scale: **paper**, that is the papers' own sizes" in paper


def test_configuration_is_params_resolved_at_the_scale(tmp_path: Path, params: dict[str, Any]) -> None:
    md = build_report(make_project(tmp_path, params))
    config = section(md, "Configuration")
    assert '<details markdown="1">\n<summary><code>params.yaml</code> resolved at scale tiny: ' in config
    assert config.rstrip().endswith("</details>")
    block = config.split("```yaml\n", 1)[1].split("\n```", 1)[0]
    assert yaml.safe_load(block) == resolve_tree(params, "tiny")
    assert "&id" not in block and "*id" not in block  # shared values written out, not aliased


@needs_git
def test_provenance_from_git_and_dvc_lock(tmp_path: Path, params: dict[str, Any]) -> None:
    inputs = make_project(tmp_path, params)
    (tmp_path / "code.py").write_text("x = 1\n", encoding="utf-8")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "code.py", "results")
    git(tmp_path, "commit", "-q", "-m", "init")
    commit = git(tmp_path, "rev-parse", "HEAD")

    md = build_report(inputs)
    assert f"- Git commit: `{commit}`\n" in md
    assert "dvc.lock` sha256 (first 16 hex digits): `absent`" in md
    assert "as it stood when this report was generated" in md
    params_hash = hashlib.sha256(inputs.params_path.read_bytes()).hexdigest()[:16]
    assert f"`params.yaml` sha256 (first 16 hex digits): `{params_hash}`" in md
    assert "torch " in section(md, "Provenance") and "torchvision " in section(md, "Provenance")

    (tmp_path / "results" / "tables" / "lat.md").write_text(LAT_MD + "\nrerun\n", encoding="utf-8")
    assert f"- Git commit: `{commit}`\n" in build_report(inputs)  # results/ is the pipeline's to change

    (tmp_path / "code.py").write_text("x = 2\n", encoding="utf-8")
    lock = tmp_path / "dvc.lock"
    lock.write_text("schema: '2.0'\nstages: {}\n", encoding="utf-8")
    md = build_report(inputs)
    assert f"- Git commit: `{commit}` (uncommitted changes)\n" in md
    lock_hash = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    assert f"dvc.lock` sha256 (first 16 hex digits): `{lock_hash}`" in md


def test_provenance_outside_a_git_checkout(tmp_path: Path, params: dict[str, Any]) -> None:
    md = build_report(make_project(tmp_path, params))
    assert "- Git commit: unknown (not a git checkout)\n" in md


def test_the_same_inputs_give_the_same_report(tmp_path: Path, params: dict[str, Any]) -> None:
    inputs = make_project(tmp_path, params)
    first, second = build_report(inputs), build_report(inputs)
    assert first == second
    assert render_html(first, "Backdrop report") == render_html(second, "Backdrop report")


def test_html_is_a_full_page_with_tables_and_figures(tmp_path: Path, params: dict[str, Any]) -> None:
    md = build_report(make_project(tmp_path, params))
    page = render_html(md, "Backdrop <report>")
    assert page.startswith("<!DOCTYPE html>\n<html") and page.rstrip().endswith("</html>")
    assert "<title>Backdrop &lt;report&gt;</title>" in page and "<style>" in page and "<body>" in page
    # The claims summary, then the LAT, attention, robustness-matrix and datasets tables.
    assert page.count("<table>") == 5
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert re.search(rf'<img alt="[^"]*" src="{re.escape(link)}"', page)
    assert '<pre><code class="language-yaml">' in page and "<details>" in page
    assert '<a href="#provenance">Provenance</a>' in page  # the contents list
    assert page.index("</h1>") < page.index('<nav class="toc">')


def test_cli_writes_markdown_and_html(
    tmp_path: Path, params: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # main's wiring alone, whatever state the shared params.yaml is in while others edit it.
    inputs = make_project(tmp_path, params)
    seen: dict[str, Any] = {}

    def load(path: str, scale: str | None) -> SimpleNamespace:
        seen.update(path=path, scale=scale)
        return SimpleNamespace(raw=params, scale=scale)

    monkeypatch.setattr(Params, "load", staticmethod(load))
    out = tmp_path / "results" / "report.md"
    argv = ["--params", str(inputs.params_path), "--scale", "tiny", "--tables", str(inputs.tables_dir)]
    argv += ["--figures", str(inputs.figures_dir), "--datasets", str(inputs.datasets_dir), "--out", str(out)]
    argv += ["--claims", str(inputs.claims_dir)]
    main(parser().parse_args([*argv, "--repo-root", str(tmp_path)]))
    assert seen == {"path": str(inputs.params_path), "scale": "tiny"}
    md = out.read_text(encoding="utf-8")
    assert md == build_report(inputs)
    assert out.with_suffix(".html").read_text(encoding="utf-8") == render_html(md, "Backdrop report")
    assert not list(out.parent.glob(".*.tmp"))  # atomic writes leave no temp files


def test_cli_without_a_tables_folder_says_what_to_run(
    tmp_path: Path, params: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = make_project(tmp_path, params)
    shutil.rmtree(inputs.tables_dir)
    out = tmp_path / "results" / "report.md"
    argv = ["--params", str(inputs.params_path), "--tables", str(inputs.tables_dir)]
    argv += ["--figures", str(inputs.figures_dir), "--datasets", str(inputs.datasets_dir), "--out", str(out)]
    argv += ["--claims", str(inputs.claims_dir)]
    with pytest.raises(DataError, match=r"tables folder not found.*uv run snakemake"):
        main(parser().parse_args(argv))
    with pytest.raises(SystemExit) as exit_info:
        run_stage(parser(), main, argv)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {inputs.tables_dir}: tables folder not found") and "Traceback" not in err
    assert not out.exists()


def test_unevaluated_matrix_cells_are_counted_under_missing(tmp_path: Path, params: dict[str, Any]) -> None:
    inputs = make_project(tmp_path, params)
    (inputs.tables_dir / "robustness_matrix.csv").write_text(
        "dataset,model,attack,fits,evaluated\n"
        "mnist,m1,a1,True,True\n"
        "mnist,m1,a2,True,False\n"
        "mnist,m2,a2,False,False\n"
        "mnist,m2,a3,True,False\n",
        encoding="utf-8",
    )
    md = build_report(inputs)
    assert missing_items(md) == [
        "- `results/tables/robustness_matrix.md`: 2 cell(s) of the matrix not evaluated yet (each listed "
        "there with its command); run `uv run snakemake results/tables/robustness_matrix.md`"
    ]


# --- readability: the folded configuration, tables that scroll, no unfilled placeholders -------

SCALES = ("tiny", "reduced", "paper")
VOID_ELEMENTS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
# Wider than any page, and inside an HTML block as a table stage might fold one.
WIDE_MD = "\n".join(
    [
        "",
        "## Every column",
        "",
        "| " + " | ".join(f"column_{i}" for i in range(40)) + " |",
        "|" + "---:|" * 40,
        "| " + " | ".join(str(i) for i in range(40)) + " |",
        "",
        '<details markdown="1">',
        "<summary>folded</summary>",
        "",
        "| a | b |",
        "|---|---|",
        "| 1 | 2 |",
        "",
        "</details>",
        "",
    ]
)


@dataclasses.dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None
    children: list[Node | str] = dataclasses.field(default_factory=list)

    def elements(self) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                found += [child, *child.elements()]
        return found

    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text() for child in self.children)

    def ancestors(self) -> list[Node]:
        node, up = self.parent, []
        while node is not None:
            up.append(node)
            node = node.parent
        return up


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.open = Node("#document", {}, None)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {name: value or "" for name, value in attrs}, self.open)
        self.open.children.append(node)
        if tag not in VOID_ELEMENTS:
            self.open = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open.children.append(Node(tag, {name: value or "" for name, value in attrs}, self.open))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.open
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None and node.parent is not None, f"</{tag}> closes nothing open"
        self.open = node.parent

    def handle_data(self, data: str) -> None:
        self.open.children.append(data)


def parse_html(page: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(page)
    builder.close()
    assert builder.open is builder.root, f"<{builder.open.tag}> left open"
    return builder.root


def report_at(tmp_path: Path, params: dict[str, Any], scale: str) -> tuple[str, str]:
    """The fixture's report at ``scale``, as markdown and as HTML."""
    inputs = dataclasses.replace(make_project(tmp_path, params), scale=scale)
    md = build_report(inputs)
    return md, render_html(md, "Backdrop report")


@pytest.mark.parametrize("scale", SCALES)
def test_configuration_is_folded_whole_in_markdown_and_html(
    tmp_path: Path, params: dict[str, Any], scale: str
) -> None:
    md, page = report_at(tmp_path, params, scale)
    resolved = resolve_tree(params, scale)

    config = section(md, "Configuration")
    folded = re.search(
        r'\n<details markdown="1">\n<summary>(?P<summary>[^\n]*)</summary>\n\n'
        r"(?P<fence>`{3,})yaml\n(?P<yaml>.*?)\n(?P=fence)\n\n</details>\n",
        config,
        re.DOTALL,
    )
    assert folded, "the configuration is not one fenced YAML block inside <details>"
    assert config.count("```yaml") == 1  # nothing of it outside the fold
    lines = folded["yaml"].splitlines()
    assert f"params.yaml</code> resolved at scale {scale}: {len(lines):,} lines of YAML" in folded["summary"]
    block = yaml.safe_load(folded["yaml"])
    assert list(block) == list(params) and block == resolved

    details = [node for node in parse_html(page).elements() if node.tag == "details"]
    assert len(details) == 1
    summary = [node for node in details[0].elements() if node.tag == "summary"]
    assert len(summary) == 1 and summary[0].text() == re.sub(r"<[^>]+>", "", folded["summary"])
    codes = [node for node in details[0].elements() if node.attrs.get("class") == "language-yaml"]
    assert len(codes) == 1 and codes[0].parent is not None and codes[0].parent.tag == "pre"
    assert yaml.safe_load(codes[0].text()) == resolved  # every top-level key, every value


def test_every_html_table_scrolls_on_its_own(tmp_path: Path, params: dict[str, Any]) -> None:
    inputs = make_project(tmp_path, params)
    (inputs.tables_dir / "robustness_matrix.md").write_text(MATRIX_MD + WIDE_MD, encoding="utf-8")
    page = render_html(build_report(inputs), "Backdrop report")
    style = re.search(r"<style>(.*?)</style>", page, re.DOTALL)
    assert style
    scrolling = set(re.findall(r"^\s*\.([\w-]+)\s*\{[^}]*\boverflow-x:\s*auto", style[1], re.MULTILINE))

    tables = [node for node in parse_html(page).elements() if node.tag == "table"]
    # The summary, LAT, attention, matrix and datasets tables, the wide one and the folded one.
    assert len(tables) == page.count("<table") == 7
    for table in tables:
        box = table.parent
        assert box is not None and box.tag == "div", f"a table in <{box and box.tag}>, not in its own box"
        assert box.attrs.get("class") in scrolling, f"{box.attrs} does not scroll"
        assert [child for child in box.children if isinstance(child, Node)] == [table]


def html_prose(node: Node) -> str:
    """The page's text a reader sees as prose: everything outside <pre> blocks and <style>."""
    return "".join(
        child if isinstance(child, str) else "" if child.tag in {"pre", "style"} else html_prose(child)
        for child in node.children
    )


@pytest.mark.parametrize("scale", SCALES)
def test_no_unfilled_placeholder_outside_code_blocks(
    tmp_path: Path, params: dict[str, Any], scale: str
) -> None:
    inputs = dataclasses.replace(make_project(tmp_path, params), scale=scale)
    # Braces in a code block are the block's own (a path pattern, a format string) and stay.
    (inputs.tables_dir / "datasets.md").write_text(
        DATASETS_MD + "\n```text\nresults/evals/{model}/{attack}.json\n```\n", encoding="utf-8"
    )
    md = build_report(inputs)
    assert "{model}" in md
    assert unfilled_placeholders(md) == []
    prose = html_prose(parse_html(render_html(md, "Backdrop report")))
    assert re.findall(r"\{[A-Za-z_]\w*\}", prose) == []


def test_an_unfilled_placeholder_is_found_with_its_line(tmp_path: Path, params: dict[str, Any]) -> None:
    inputs = make_project(tmp_path, params)
    stale = "- a dual attack perturbs the background, which model {model} never sees (`models.{model}`)\n"
    (inputs.tables_dir / "robustness_matrix.md").write_text(MATRIX_MD + "\n" + stale, encoding="utf-8")
    md = build_report(inputs)
    line = next(number for number, text in enumerate(md.splitlines(), 1) if "never sees" in text)
    assert unfilled_placeholders(md) == [(line, "{model}"), (line, "{model}")]
    assert unfilled_placeholders("```\n{model}\n```\n{attack} and {seed_1}, not {} or {1}\n") == [
        (4, "{attack}"),
        (4, "{seed_1}"),
    ]
