"""The dataset table shows, for the COCO-built datasets, the class lists side by side, the
foreground fraction under every crop rule and what the overlap rule blacked out, all read
from the builder's stats (stats written before these were recorded still render)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from stages.data.coco_ic import CocoIcConfig, build_coco_ic
from stages.data.processed import split_stats
from stages.dataset_table import main, parser
from stages.report.dataset_table import (
    PAPER_COCO_IC_COUNTS,
    coco_ic_class_lists,
    foreground_by_crop_frame,
    overlap_frame,
    to_markdown,
)


def prepared(root: Path, name: str, **options: Any) -> dict[str, Any]:
    """The stats record stages.prepare writes for one COCO-built dataset."""
    splits, builder_stats = build_coco_ic(root, CocoIcConfig(name=name, **options), progress=False)
    builder_stats.pop("throughput")
    stats: dict[str, Any] = {"dataset": name, "builder": "coco_ic", **builder_stats}
    for split, processed in splits.items():
        stats[f"{split}_summary"] = split_stats(processed)
    return stats


@pytest.fixture(scope="module")
def stats(synthetic_mirror: Path) -> dict[str, dict[str, Any]]:
    root = synthetic_mirror / "coco"
    return {
        "coco_ic": prepared(root, "coco_ic", min_area=16.0, classes=tuple(PAPER_COCO_IC_COUNTS)),
        "segment6": prepared(root, "segment6", min_area=16.0, classes=("clock", "bird", "train"), crop="pad"),
    }


def test_class_lists_side_by_side(stats: dict[str, dict[str, Any]]) -> None:
    coco = stats["coco_ic"]
    lists = coco_ic_class_lists(coco)
    assert list(lists["paper (Table 1)"]) == list(PAPER_COCO_IC_COUNTS)
    assert list(lists["used (fixed)"]) == [c["name"] for c in coco["classes"]]
    frequency = coco["selection"]["frequency_top_k"]
    assert list(lists["most frequent here"].dropna()) == frequency
    assert frequency != list(PAPER_COCO_IC_COUNTS)  # the synthetic data ranks other classes first


def test_foreground_by_crop_and_overlaps_come_from_the_stats(stats: dict[str, dict[str, Any]]) -> None:
    frame = foreground_by_crop_frame(stats).set_index(["dataset", "split"])
    for name, s in stats.items():
        for split in ("train", "test"):
            row, record = frame.loc[(name, split)], s["splits"][split]
            assert row["used"] == s["crop"]
            assert row[s["crop"]] == pytest.approx(record["foreground_fraction"], abs=5e-4)
            for mode, value in record["foreground_fraction_by_crop"].items():
                assert row[mode] == pytest.approx(value, abs=5e-4)
    overlaps = overlap_frame(stats).set_index(["dataset", "split"])
    for name, s in stats.items():
        record = s["splits"]["train"]["overlap"]
        row = overlaps.loc[(name, "train")]
        assert row["rule"] == "black_out_front" and row["crops"] == s["splits"]["train"]["samples"]
        assert row["heavily covered"] == record["crops_heavily_covered"] <= row["with front objects"]
    md = to_markdown(stats, None, scale="tiny", fetch_reports=Path("results/tiny/raw"))
    for heading in ("Foreground fraction by crop rule", "Overlapping objects", "MS-COCO-IC per class"):
        assert f"{heading}" in md


def test_stats_without_the_new_records_still_render(stats: dict[str, dict[str, Any]]) -> None:
    old = copy.deepcopy(stats)
    for s in old.values():
        for key in ("overlaps", "crop", "test_split"):
            s.pop(key)
        s["selection"].pop("frequency_top_k")
        for split in s["splits"].values():
            split.pop("overlap"), split.pop("foreground_fraction_by_crop")
    md = to_markdown(old, None, scale="tiny", fetch_reports=Path("results/tiny/raw"))
    assert "MS-COCO-IC classes" in md and "Overlapping objects" not in md
    assert foreground_by_crop_frame(old).empty and overlap_frame(old).empty


def test_the_stage_points_at_the_fetch_reports_of_its_scale(
    stats: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    """The plan writes results/<scale>/raw/ (fetch reports) beside results/<scale>/datasets/:
    the table names the reports folder beside the --stats it was given, not a scale-less one."""
    results = tmp_path / "results" / "tiny"
    (results / "datasets").mkdir(parents=True)
    for name, record in stats.items():
        (results / "datasets" / f"{name}.json").write_text(json.dumps(record), encoding="utf-8")
    job = tmp_path / "dataset_table.json"
    tree = {"datasets": {name: {} for name in stats}}
    job.write_text(json.dumps({"job": "dataset_table", "scale": "tiny", "params": tree}), encoding="utf-8")
    out = results / "tables" / "datasets"
    main(parser().parse_args(["--job", str(job), "--stats", str(results / "datasets"), "--out", str(out)]))
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "Scale: **tiny**" in md
    assert f"see the fetch reports, `{(results / 'raw').as_posix()}/`" in md
    assert "results/raw/" not in md
