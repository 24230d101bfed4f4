"""README tables from metrics.json files: new-shaped and old-shaped reports side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.table import main, table

NEW = {
    "dataset": "shop-new",
    "protocol": {
        "cutoff": "2024-06-01T00:00:00+00:00",
        "n_eval_users": 2500,
        "n_test_pairs": 7321,
        "listing_dates": "first_event",
        "n_items_listed": 1180,
        "n_tail_items": 900,
        "n_cold_items": 40,
        "machine": "2 cores, 24 GiB",
        "date": "2026-12-01",
    },
    "systems": {
        "popularity": {
            "ndcg@10": 0.01,
            "recall@20": 0.02,
            "aplt@10": 0.0,
            "tail_recall@20": 0.0,
            "coverage@10": 0.005,
        },
        "als": {
            "ndcg@10": 0.04,
            "recall@20": 0.05,
            "aplt@10": 0.01,
            "tail_recall@20": 0.002,
            "coverage@10": 0.2,
        },
        "ease": {"skipped": "needs 38 GiB | too big"},
        "published": {
            "ndcg@10": 0.05,
            "recall@20": 0.06,
            "aplt@10": 0.3,
            "tail_recall@20": 0.03,
            "coverage@10": None,
        },
        "fusion": {"ndcg@10": 0.07, "recall@20": 0.08, "aplt@10": 0.1, "tail_recall@20": 0.1},
    },
    "best_peer": {"ndcg@10": "als", "recall@20": "als", "tail_recall@20": "als"},
    "ci": {
        "ndcg@10": [1.1, 1.25, 1.4],
        "recall@20": [0.95, 1.2, 1.5],
        "tail_recall@20": [5.0, 15.0, None],
    },
    "ci_protocol": {"draws": 1000, "seed": 7, "level": 0.95, "unit": "eval user"},
    "cold_start": {
        "protocol": {"n_items": 40, "n_test_pairs": 130, "n_eval_users": 77, "seed": 3},
        "systems": {
            "content": {"recall@20": 0.31, "ndcg@10": 0.12},
            "popularity": {"skipped": "no training counts for new items"},
            "published": {"recall@20": 0.22, "ndcg@10": 0.0},
        },
    },
}

OLD = {
    "dataset": "shop-old",
    "protocol": {
        "cutoff": "2011-11-20T00:00:00+00:00",
        "n_eval_users": 962,
        "n_test_pairs": 17182,
        "n_tail_items": 2601,
        "n_cold_items": 256,
        "als_tuning": {"best": {"factors": 64}},
    },
    "systems": {
        "popularity": {"ndcg@10": 0.02, "recall@20": 0.04, "tail_recall@20": 0.0},
        "als": {"ndcg@10": 0.08, "recall@20": 0.1, "tail_recall@20": 0.0},
        "spark_als": {"ndcg@10": 0.08, "recall@20": 0.12, "tail_recall@20": 0.0},
        "published": {"ndcg@10": 0.1, "recall@20": 0.12, "tail_recall@20": 0.03},
        "content": {"ndcg@10": 0.5, "recall@20": 0.5, "tail_recall@20": 0.5},
    },
}


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    for data in (NEW, OLD):
        folder = tmp_path / data["dataset"]
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps(data))
    return tmp_path


def test_protocol_notes(reports: Path) -> None:
    lines = table(reports).splitlines()
    assert (
        "**shop-new** (cutoff 2024-06-01, 2500 eval users, 7321 held-out pairs, listing dates: "
        "first_event, 1180 items listed, 900 tail / 40 cold items; 2 cores, 24 GiB, 2026-12-01)"
    ) in lines
    assert (
        "**shop-old** (cutoff 2011-11-20, 962 eval users, 17182 held-out pairs, "
        "2601 tail / 256 cold items)"
    ) in lines


def test_systems_tables_with_skipped_reason(reports: Path) -> None:
    text = table(reports)
    assert (
        "| system | ndcg@10 | recall@20 | aplt@10 | tail_recall@20 | coverage@10 |\n"
        "|---|---:|---:|---:|---:|---:|\n"
        "| popularity | 0.0100 | 0.0200 | 0.0000 | 0.0000 | 0.0050 |\n"
        "| als | 0.0400 | 0.0500 | 0.0100 | 0.0020 | 0.2000 |\n"
        "| ease | skipped: needs 38 GiB \\| too big |  |  |  |  |\n"
        "| published | 0.0500 | 0.0600 | 0.3000 | 0.0300 | – |\n"
        "| fusion | 0.0700 | 0.0800 | 0.1000 | 0.1000 | – |\n"
    ) in text
    # old report: every system listed, missing metrics as dashes
    assert "| spark_als | 0.0800 | 0.1200 | – | 0.0000 | – |" in text.splitlines()


def test_published_vs_best_peer_table(reports: Path) -> None:
    lines = table(reports).splitlines()
    header = lines.index("**published vs best peer**")
    body = lines[header + 2 : header + 10]
    assert body == [
        "| dataset | metric | published | best peer | best peer value | ratio "
        "| bootstrap median [95% CI] |",
        "|---|---|---:|---|---:|---:|---:|",
        "| shop-new | ndcg@10 | 0.0500 | als | 0.0400 | 1.25 | 1.25 [1.10, 1.40] |",
        "| shop-new | recall@20 | 0.0600 | als | 0.0500 | 1.20 | 1.20 [0.95, 1.50] |",
        # +inf upper bound arrives as null
        "| shop-new | tail_recall@20 | 0.0300 | als | 0.0020 | 15.00 | 15.00 [5.00, ∞] |",
        # old report: best peer picked here (content is published's own part; ties: first)
        "| shop-old | ndcg@10 | 0.1000 | als | 0.0800 | 1.25 | – |",
        "| shop-old | recall@20 | 0.1200 | spark_als | 0.1200 | 1.00 | – |",
        "| shop-old | tail_recall@20 | 0.0300 | popularity | 0.0000 | ∞ | – |",
    ]
    note = lines[header + 11]
    assert "best system other than published, content, cooccurrence, fusion" in note
    assert "95% paired bootstrap over eval users, 1000 draws, seed 7" in note


def test_cold_start_table(reports: Path) -> None:
    lines = table(reports).splitlines()
    header = lines.index("**cold start**")
    assert lines[header + 2 : header + 7] == [
        "| dataset | cold items | held-out pairs | eval users | system | recall@20 | ndcg@10 "
        "| aplt@10 | coverage@10 | cold_items@20 |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
        "| shop-new | 40 | 130 | 77 | content | 0.3100 | 0.1200 | – | – | – |",
        "|  |  |  |  | popularity | skipped: no training counts for new items |  |  |  |  |",
        "|  |  |  |  | published | 0.2200 | 0.0000 | – | – | – |",
    ]


def test_only_old_reports(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "metrics.json").write_text(json.dumps(OLD))
    text = table(tmp_path)
    assert "_No report has the cold-start protocol yet._" in text
    assert "interval:" not in text  # no ci_protocol anywhere
    empty = table(tmp_path / "missing")
    assert "**published vs best peer**" in empty
    assert "| shop" not in empty


def test_main_prints_the_tables(reports: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(reports)]) == 0
    assert capsys.readouterr().out == table(reports) + "\n"
