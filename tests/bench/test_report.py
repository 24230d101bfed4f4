"""The HTML report is one self-contained, escaped file with its tables and both charts."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd

from bench.report import write_report
from longtail.evaluation.ranking import popularity_curve

EVIL = "<script>alert(1)</script>"
CATALOGUE = [f"i{j}" for j in range(120)]
TRAIN = {f"i{j}": 200 - j for j in range(100)}  # i100..i119 are cold


def _metrics() -> dict:
    return {
        "dataset": "retail & <demo>",
        "protocol": {
            "cutoff": "2024-06-01",
            "n_eval_users": 2500,
            "n_test_pairs": 7321,
            "n_tail_items": 96,
            "n_cold_items": 20,
        },
        "systems": {
            "popularity": {
                "ndcg@10": 0.1,
                "aplt@10": 0.0,
                "gini@10": 0.95,
                "cold_item_recall@20": float("nan"),
                "fit_s": 1.5,
            },
            "als": {
                "ndcg@10": 0.2,
                "aplt@10": 0.15,
                "gini@10": 0.6,
                "cold_item_recall@20": None,
                "fit_s": 12.5,
            },
            EVIL: {
                "ndcg@10": 0.05,
                "aplt@10": 0.4,
                "gini@10": 0.3,
                "cold_item_recall@20": 0.02,
                "fit_s": 30.0,
            },
        },
        "tradeoff": [
            {"system": "als", "tail_target": 0.3, "ndcg@10": 0.17, "aplt@10": 0.3},
            {"system": "als", "tail_target": 0.0, "ndcg@10": 0.2, "aplt@10": 0.15},
            {"system": "als", "tail_target": 0.6, "ndcg@10": 0.11, "aplt@10": 0.55},
        ],
    }


def _curves() -> dict[str, pd.DataFrame]:
    popular = {f"u{j}": [f"i{k}" for k in range(10)] for j in range(30)}
    spread = {f"u{j}": [f"i{(7 * j + k) % 120}" for k in range(10)] for j in range(30)}
    return {
        "popularity": popularity_curve(popular, TRAIN, CATALOGUE),
        "als": popularity_curve(spread, TRAIN, CATALOGUE),
        EVIL: popularity_curve(spread, TRAIN, CATALOGUE),
    }


def _write(tmp_path: Path, metrics: dict, curves: dict[str, pd.DataFrame]) -> str:
    out = tmp_path / "nested" / "report.html"
    write_report(metrics, curves, out)
    assert out.is_file()
    return out.read_text(encoding="utf-8")


def test_report_is_written_with_names_table_and_two_svgs(tmp_path: Path) -> None:
    page = _write(tmp_path, _metrics(), _curves())
    assert page.startswith("<!DOCTYPE html>")
    assert "retail &amp; &lt;demo&gt;" in page
    for name in ("popularity", "als"):
        assert f"<td>{name}</td>" in page
    for key, value in (("cutoff", "2024-06-01"), ("n_eval_users", "2,500"), ("n_cold_items", "20")):
        assert f"<th>{key}</th><td>{value}</td>" in page
    assert page.count("<svg") == 2
    assert page.count("</svg>") == 2
    # long-tail: one polyline per system, training interactions and the diagonal; scatter: the
    # trade-off line
    assert page.count("<polyline") == 6
    assert "stroke-dasharray" in page
    assert "trade-off: als" in page


def test_report_table_cells_best_values_and_missing(tmp_path: Path) -> None:
    page = _write(tmp_path, _metrics(), _curves())
    assert "<th>ndcg@10</th>" in page
    assert "<td><b>0.2000</b></td>" in page  # best ndcg (als)
    assert "<td>0.1000</td>" in page
    assert "<td><b>0.4000</b></td>" in page  # best aplt
    assert "<td><b>0.3000</b></td>" in page  # gini: lower is better
    assert "<td>0.9500</td>" in page
    assert "<td><b>1.50</b></td>" in page  # fit_s: lower is better
    assert "<td>12.5</td>" in page
    assert "<td><b>0.0200</b></td>" not in page  # a lone value has nothing to beat
    assert "<td>0.0200</td>" in page
    assert page.count("<td>\u2013</td>") == 2  # NaN and None cold recall


def test_report_escapes_system_names(tmp_path: Path) -> None:
    page = _write(tmp_path, _metrics(), _curves())
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # self-contained: no external resources
    assert "src=" not in page
    assert "<link" not in page


def test_report_handles_empty_inputs(tmp_path: Path) -> None:
    page = _write(tmp_path, {"dataset": "empty", "protocol": {}, "systems": {}}, {})
    assert page.count("<svg") == 2
    assert "no data" in page


def test_report_skips_systems_without_plot_values(tmp_path: Path) -> None:
    metrics = _metrics()
    metrics["systems"]["als"]["aplt@10"] = math.nan
    del metrics["tradeoff"]
    page = _write(tmp_path, metrics, {})
    scatter = page[page.rindex("<svg") :]
    assert ">popularity</text>" in scatter
    assert ">als</text>" not in scatter
    assert "stroke-dasharray" not in scatter


# --- new-shaped metrics.json ------------------------------------------------------------------


def _new_metrics() -> dict:
    metrics = _metrics()
    metrics["protocol"] |= {
        "listing_dates": "first_event",
        "n_items_listed": 118,
        "als_tuning": {"best": {"factors": 64}},  # an old block next to a new one: not shown
        "clean_counts": {"events_in": 1200, "events_accepted": 1000},
    }
    metrics["systems"]["published"] = {"ndcg@10": 0.25, "recall@20": 0.3, "tail_recall@20": 0.09}
    metrics["systems"]["als"] |= {"recall@20": 0.2, "tail_recall@20": 0.0}
    metrics["systems"]["ease"] = {"skipped": "needs 38 GiB for 60,000 items"}
    metrics["best_peer"] = {"ndcg@10": "als", "recall@20": "als", "tail_recall@20": "als"}
    # ndcg: an interval; recall: none (point ratio only); tail: +inf upper bound, null in JSON
    metrics["ci"] = {"ndcg@10": [1.1, 1.25, 1.4], "tail_recall@20": [2.5, 9.0, None]}
    metrics["ci_protocol"] = {"draws": 1000, "seed": 7, "level": 0.95, "unit": "eval user"}
    metrics["tuning"] = {
        "als": {
            "grid": {"factors": [32, 64, 128], "regularization": [0.01, 0.1]},
            "best": {"factors": 128, "regularization": 0.01},
            "best_on_edge": True,
            "at_bound": ["factors", "regularization"],
            "trials": [
                {"factors": 32, "regularization": 0.01, "val_ndcg@10": 0.05},
                {"factors": 128, "regularization": 0.01, "val_ndcg@10": 0.07},
                {"factors": 64, "regularization": 0.1, "val_ndcg@10": 0.06},
            ],
            "evaluations": 6,
            "seconds": 42.25,
        },
        "rp3beta": {"grid": {"alpha": [0.5, 1.0]}, "best": {"alpha": 0.5}, "best_on_edge": False},
    }
    metrics["cold_start"] = {
        "protocol": {"n_items": 40, "n_test_pairs": 130, "n_eval_users": 77, "seed": 3},
        "systems": {
            "content": {"recall@20": 0.31, "ndcg@10": 0.12},
            "published": {"recall@20": 0.22, "ndcg@10": 0.09},
        },
    }
    return metrics


def _section(page: str, heading: str) -> str:
    start = page.index(f"<h2>{heading}</h2>")
    end = page.find("<h2>", start + 1)
    return page[start : end if end > 0 else len(page)]


def test_report_new_shape_is_well_formed(tmp_path: Path) -> None:
    page = _write(tmp_path, _new_metrics(), _curves())
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S):
        ET.fromstring(svg)  # each inline chart is well-formed XML
    for heading in ("Protocol", "Systems", "Hyper-parameter tuning", "Long-tail curve"):
        assert f"<h2>{heading}</h2>" in page
    assert "<h2>Cold start</h2>" in page
    assert "src=" not in page
    assert "<link" not in page
    protocol = _section(page, "Protocol")
    assert "<th>listing_dates</th><td>first_event</td>" in protocol
    assert "<th>n_items_listed</th><td>118</td>" in protocol
    assert "als_tuning" not in protocol  # shown as the tuning section instead
    assert "<td>events_in: 1,200; events_accepted: 1,000</td>" in protocol


def test_report_skipped_system_row_shows_reason(tmp_path: Path) -> None:
    page = _write(tmp_path, _new_metrics(), _curves())
    systems = _section(page, "Systems")
    head = systems[: systems.index("</thead>")]
    # the measured systems' metrics only: no "skipped" column
    assert head.count("<th>") == 8  # system + ndcg, recall, aplt, tail, cold, gini, fit_s
    assert (
        '<tr class="skipped"><td>ease</td><td class="reason" colspan="7">'
        "skipped: needs 38 GiB for 60,000 items</td></tr>"
    ) in systems
    assert "<th>skipped</th>" not in systems
    assert ">ease</text>" not in _section(page, "Accuracy vs tail share")


def test_report_vs_best_peer_row(tmp_path: Path) -> None:
    page = _write(tmp_path, _new_metrics(), _curves())
    systems = _section(page, "Systems")
    row = systems[systems.index('<tr class="vs-peer">') :]
    row = row[: row.index("</tr>")]
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[0] == "published / best peer"
    # columns: ndcg@10, recall@20, aplt@10, tail_recall@20, cold_item_recall@20, gini, fit_s
    assert cells[1] == '1.25 [1.10, 1.40]<span class="peer">vs als</span>'
    assert cells[2] == '1.50 (no CI)<span class="peer">vs als</span>'  # 0.3 / 0.2, no interval
    assert cells[3] == ""  # aplt has no peer comparison
    assert cells[4] == '9.00 [2.50, \u221e]<span class="peer">vs als</span>'
    assert cells[5:] == ["", "", ""]
    assert "95% paired bootstrap over eval users (1,000 draws, seed 7)" in systems


def test_report_vs_best_peer_for_old_reports_uses_point_ratio(tmp_path: Path) -> None:
    metrics = _metrics()
    metrics["systems"]["published"] = {"ndcg@10": 0.3}
    page = _write(tmp_path, metrics, {})
    systems = _section(page, "Systems")
    # best peer picked from the systems: als (0.2) beats popularity (0.1) and the escaped name
    assert '<td>1.50 (no CI)<span class="peer">vs als</span></td>' in systems
    no_published = _write(tmp_path, _metrics(), {})
    assert '<tr class="vs-peer">' not in no_published


def test_report_tuning_tables(tmp_path: Path) -> None:
    page = _write(tmp_path, _new_metrics(), _curves())
    tuning = _section(page, "Hyper-parameter tuning")
    assert "<h3>als</h3>" in tuning and "<h3>rp3beta</h3>" in tuning
    assert "evaluations: 6; seconds: 42.2; best on the edge of the grid: yes" in tuning
    assert "<tr><td>factors</td><td>32, 64, 128</td><td>128</td><td>yes</td></tr>" in tuning
    assert "<tr><td>regularization</td><td>0.01, 0.1</td><td>0.01</td><td>yes</td></tr>" in (tuning)
    # rp3beta recorded no at_bound list and no trials
    assert "<tr><td>alpha</td><td>0.5, 1</td><td>0.5</td><td>\u2013</td></tr>" in tuning
    assert "best on the edge of the grid: no" in tuning
    assert "all 3 trials, best val_ndcg@10 first" in tuning
    trials = tuning[tuning.index('<table class="trials">') :]
    first_row = trials[trials.index("<tbody>") :]
    assert first_row.startswith(
        '<tbody><tr class="best"><td>128</td><td>0.01</td><td>0.0700</td></tr>'
    )
    assert "{" not in tuning  # no dict dumps


def test_report_tuning_from_old_protocol_block(tmp_path: Path) -> None:
    metrics = _metrics()
    metrics["protocol"]["als_tuning"] = {
        "best": {"factors": 64, "alpha": 1.0},
        "trials": [
            {"factors": 64, "alpha": 10.0, "val_ndcg@10": 0.01},
            {"factors": 32, "alpha": 1.0, "val_ndcg@10": 0.02},
            {"factors": 64, "alpha": 1.0, "val_ndcg@10": 0.03},
        ],
        "seconds": 16.2,
        "validation_cutoff": "2011-11-02T00:00:00+00:00",
    }
    page = _write(tmp_path, metrics, {})
    tuning = _section(page, "Hyper-parameter tuning")
    assert "<h3>als</h3>" in tuning
    assert "<tr><td>factors</td><td>32, 64</td><td>64</td><td>\u2013</td></tr>" in tuning
    assert "<tr><td>alpha</td><td>1, 10</td><td>1</td><td>\u2013</td></tr>" in tuning
    assert "evaluations: 3; seconds: 16.2; best on the edge of the grid: \u2013" in tuning
    assert "validation cutoff: 2011-11-02T00:00:00+00:00" in tuning
    assert "no tuning recorded" in _section(
        _write(tmp_path, _metrics(), {}), "Hyper-parameter tuning"
    )


def test_report_cold_start_table(tmp_path: Path) -> None:
    page = _write(tmp_path, _new_metrics(), _curves())
    cold = _section(page, "Cold start")
    assert "<th>n_items</th><td>40</td>" in cold
    assert "<th>n_eval_users</th><td>77</td>" in cold
    assert "<th>system</th><th>ndcg@10</th><th>recall@20</th>" in cold
    assert "<tr><td>content</td><td><b>0.1200</b></td><td><b>0.3100</b></td></tr>" in cold
    assert "<tr><td>published</td><td>0.0900</td><td>0.2200</td></tr>" in cold
    assert "no cold-start protocol" in _section(_write(tmp_path, _metrics(), {}), "Cold start")


def test_long_tail_curve_hand_coordinates(tmp_path: Path) -> None:
    # 4 items by training count 5, 3, 1, 1 (head: a, b = 80% of 10); top-10 slots 2, 1, 1, 0.
    curve = popularity_curve(
        {"u1": ["a", "b"], "u2": ["a", "c"]}, {"a": 5, "b": 3, "c": 1, "d": 1}, "abcd"
    )
    page = _write(tmp_path, {"dataset": "d", "systems": {}}, {"sys": curve})
    chart = _section(page, "Long-tail curve")
    # plot area x 78..570, y 362..24: px = 78 + 492 x, py = 362 - 338 y
    system = "78.0,362.0 201.0,193.0 324.0,108.5 447.0,24.0 570.0,24.0"  # y 0, .5, .75, 1, 1
    training = "78.0,362.0 201.0,193.0 324.0,91.6 447.0,57.8 570.0,24.0"  # y 0, .5, .8, .9, 1
    assert f'<polyline points="{system}"' in chart
    assert f'<polyline points="{training}"' in chart
    assert '<line x1="324.0" y1="24" x2="324.0" y2="362"' in chart  # head/tail boundary at 50%
    assert "head (50% of items)" in chart
    assert "<title>sys, 25% of slots on tail</title>" in chart  # 1 - 0.75 at the boundary
    assert "(every list pooled): sys 25.0%.</p>" in chart
    assert '<polyline points="78.0,362.0 570.0,24.0"' in chart  # equal-exposure diagonal
    assert ">100%</text>" in chart and ">0%</text>" in chart


def test_long_tail_curve_is_downsampled_and_falls_back_to_protocol_head(tmp_path: Path) -> None:
    items = [f"i{j:05d}" for j in range(5000)]
    recs = {f"u{j}": items[j : j + 10] for j in range(300)}
    curve = popularity_curve(recs, {item: 5000 - j for j, item in enumerate(items)}, items)
    old_style = curve[["popularity_rank", "item_id", "train_count", "rec_count"]]
    protocol = {"n_head_items": 1000, "n_catalogue_items": 5000}
    page = _write(tmp_path, {"dataset": "d", "protocol": protocol}, {"sys": old_style})
    chart = _section(page, "Long-tail curve")
    polyline = re.search(r'<polyline points="([^"]*)"[^>]*><title>sys', chart)
    assert polyline is not None
    assert len(polyline.group(1).split()) == 401  # 400 steps from (0, 0)
    assert "head (20% of items)" in chart
    # every slot goes to the 309 most popular items, all head
    assert "<title>sys, 0% of slots on tail</title>" in chart
    assert "(every list pooled): sys 0.0%.</p>" in chart
