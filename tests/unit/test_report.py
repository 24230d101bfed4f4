"""The HTML report is one self-contained, escaped file with the table and both charts."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from longtail.bench.metrics import popularity_curve
from longtail.bench.report import write_report

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
    # one long-tail polyline per system plus the dashed trade-off line
    assert page.count("<polyline") == 4
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
