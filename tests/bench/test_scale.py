"""bench-scale's bookkeeping: shop sizes, run records, step ratios and the plot."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench import scale


def test_shop_sizes_follow_the_factor() -> None:
    one, four = scale.shop_config(1), scale.shop_config(4)
    assert (one.n_users, one.n_items, one.n_days) == (10_000, 5_000, 60)
    assert (four.n_users, four.n_items) == (40_000, 20_000)
    assert four.seed == one.seed
    with pytest.raises(ValueError):
        scale.shop_config(0)


def test_stage_seconds_and_events_come_from_the_run_records(tmp_path: Path) -> None:
    runs = tmp_path / "_runs" / "ds=2026-01-31"
    (runs / "gates").mkdir(parents=True)
    (runs / "score.json").write_text(json.dumps({"seconds": 12.345}))
    (runs / "clean.json").write_text(json.dumps({"seconds": 3, "counts": {"events_in": 987}}))
    (runs / "odd.json").write_text(json.dumps({"note": "no seconds"}))
    assert scale.stage_seconds(tmp_path, "2026-01-31") == {"clean": 3.0, "score": 12.3}
    assert scale.events_in(tmp_path, "2026-01-31") == 987


def _run(factor: float, events: int, wall: float, **stages: float) -> scale.ScaleRun:
    return scale.ScaleRun(factor, 1, 1, events, wall, dict(stages), 100.0 * factor)


def test_steps_compare_consecutive_factors_on_stages_above_the_floor() -> None:
    runs = [
        _run(1, 100, 200, score=20, content=40, ingest=10),
        _run(4, 400, 700, score=90, content=100, ingest=20),
    ]
    (step,) = scale.steps(runs, floor_s=30)
    assert step["from"] == 1 and step["to"] == 4
    assert step["events_ratio"] == 4.0
    assert step["wall_ratio"] == 3.5
    # ingest is under the floor at 4x; score is above it there, so it counts
    assert step["stage_ratios"] == {"content": 2.5, "score": 4.5}
    assert step["peak_rss_ratio"] == 4.0


def test_report_files(tmp_path: Path) -> None:
    runs = [_run(1, 100, 200, score=20), _run(4, 400, 700, score=90)]
    result = scale.write_report(runs, tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert [s["factor"] for s in saved["scales"]] == [1, 4]
    assert set(saved["scales"][0]) == {
        "factor",
        "users",
        "items",
        "events",
        "wall_s",
        "stages",
        "peak_rss_mb",
        "commit",
        "second_night",
    }
    svg = ET.fromstring((tmp_path / "scale.svg").read_text())
    lines = [el for el in svg.iter() if el.tag.endswith("polyline")]
    assert len(lines) == 2  # the DAG's wall time and the one stage


def test_keep_merges_an_earlier_report_on_the_same_machine(tmp_path: Path) -> None:
    earlier = [_run(1, 100, 200, score=20), _run(4, 400, 700, score=90)]
    scale.write_report(earlier, tmp_path)
    report = tmp_path / "metrics.json"
    kept = scale.kept_runs(report, remeasured=[4.0, 16.0])
    assert kept == [earlier[0]]  # 4x is measured again, so the earlier 4x is dropped
    merged = scale.metrics(sorted([*kept, _run(16, 1600, 2400, score=300)], key=lambda r: r.factor))
    assert [s["factor"] for s in merged["scales"]] == [1, 16]
    assert merged["steps"][0]["events_ratio"] == 16.0
    assert scale.kept_runs(tmp_path / "absent.json", [1.0]) == []


def test_keep_refuses_figures_from_another_machine(tmp_path: Path) -> None:
    scale.write_report([_run(1, 100, 200, score=20)], tmp_path)
    report = tmp_path / "metrics.json"
    saved = json.loads(report.read_text())
    report.write_text(json.dumps({**saved, "machine": "64 cores, 512 GiB"}))
    with pytest.raises(SystemExit, match="64 cores"):
        scale.kept_runs(report, [16.0])


def test_scale_entries_round_trip_with_their_commit() -> None:
    run = scale.ScaleRun(16, 160_000, 80_000, 4_500_000, 2000.0, {"score": 500.0}, 9000.0, "abc")
    entry = json.loads(json.dumps(scale.metrics([run])["scales"][0]))
    assert scale.ScaleRun.from_dict(entry) == run
    assert entry["commit"] == "abc"
    # reports written before commits were recorded still load
    del entry["commit"]
    assert scale.ScaleRun.from_dict(entry).commit == ""


def test_code_commit_names_the_head_and_a_changed_tree(tmp_path: Path) -> None:
    import subprocess

    assert scale.code_commit(tmp_path) == ""  # not a git checkout
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "f.txt").write_text("a")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert scale.code_commit(tmp_path) == head[:12]
    (tmp_path / "f.txt").write_text("b")
    assert scale.code_commit(tmp_path) == head[:12] + "+changes"


def test_next_day_replays_the_last_day_one_day_later_with_new_items(tmp_path: Path) -> None:
    import gzip
    import re

    from longtail.sample import SampleConfig, generate

    landing = tmp_path / "landing"
    summary = generate(landing, SampleConfig(n_users=200, n_items=100, n_days=30, seed=7))
    ds = summary["end_date"]
    last = gzip.decompress((landing / "events" / f"dt={ds}" / "part-0.csv.gz").read_bytes())
    rows = last.decode().splitlines()[1:]
    iso = re.compile(rf"^{ds}T(\d\d:\d\d:\d\d)Z$")
    times = sorted(m.group(1) for r in rows if (m := iso.match(r.split(",")[2])))
    late_before = (landing / "items" / "late_items.jsonl").read_text().splitlines()

    next_ds, added, n_new = scale.add_next_day(landing, ds)

    assert next_ds == "2026-02-01" and ds == "2026-01-31"
    new_day = gzip.decompress((landing / "events" / f"dt={next_ds}" / "part-0.csv.gz").read_bytes())
    new_rows = new_day.decode().splitlines()[1:]
    # Every ISO-timed row of the last day, at the same time of day one day later.
    assert added == len(new_rows) == len(times) > 0
    shifted = sorted(r.split(",")[2] for r in new_rows)
    assert shifted == sorted(f"{next_ds}T{t}Z" for t in times)
    late_after = (landing / "items" / "late_items.jsonl").read_text().splitlines()
    assert late_after[: len(late_before)] == late_before
    added_items = [json.loads(line) for line in late_after[len(late_before) :]]
    # At least 3 new items, listed on the new day, with ids and titles nobody had before.
    assert n_new == len(added_items) == 3
    assert all(i["first_seen"] == next_ds for i in added_items)
    old = [json.loads(line) for line in late_before]
    assert not {i["item_id"] for i in added_items} & {i["item_id"] for i in old}
    assert not {i["title"] for i in added_items} & {i["title"] for i in old}


def test_second_night_round_trips_and_old_reports_read_without_it() -> None:
    entry = {"factor": 1, "users": 10, "items": 5, "events": 100, "wall_s": 9.0}
    assert scale.ScaleRun.from_dict(entry).second_night is None
    night = {"wall_s": 4.0, "stages": {"score": 1.0}, "events_added": 7, "new_items": 3}
    run = scale.ScaleRun.from_dict({**entry, "second_night": night})
    assert scale.metrics([run])["scales"][0]["second_night"] == night


def test_a_new_scale_report_keeps_the_backfill_benchs_figures(tmp_path: Path) -> None:
    """`make bench-backfill` writes its keys into the same metrics.json; a later
    `make bench-scale` rewrites the scales and keeps them, and drops nothing else it owns."""
    scale.write_report([_run(1, 100, 200, score=20)], tmp_path)
    path = tmp_path / "metrics.json"
    report = json.loads(path.read_text())
    report["sample_night_s"] = 88.5
    report["backfill"] = {"nights": 7, "wall_s": 600.0}
    report["stray"] = 1
    path.write_text(json.dumps(report))
    scale.write_report([_run(1, 100, 150, score=10)], tmp_path)
    again = json.loads(path.read_text())
    assert again["sample_night_s"] == 88.5
    assert again["backfill"] == {"nights": 7, "wall_s": 600.0}
    assert "stray" not in again
    assert [s["wall_s"] for s in again["scales"]] == [150]
