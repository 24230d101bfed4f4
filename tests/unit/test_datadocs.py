"""The quality site: self-contained pages, every gate result reachable from the index, the trend.

Built from run records written here by hand (the shapes the pipeline writes: a GX
`describe_dict()` under `result`, the quality stage's `metrics`, manifest summaries).
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from longtail.datadocs import build_site

NIGHTS = ("2026-01-30", "2026-01-31")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append(value)


def _links(text: str) -> list[str]:
    parser = _Links()
    parser.feed(text)
    return parser.links


def _gate(success: bool, observed: Any = 3) -> dict:
    return {
        "table": "catalogue",
        "success": success,
        "result": {
            "success": success,
            "statistics": {"evaluated_expectations": 2, "successful_expectations": 1 + success},
            "expectations": [
                {
                    "expectation_type": "expect_column_values_to_be_unique",
                    "success": success,
                    "kwargs": {"batch_id": "x", "column": "item_id"},
                    "result": {
                        "unexpected_count": 0 if success else 2,
                        "partial_unexpected_list": [] if success else ["i1", "i1"],
                    },
                },
                {
                    "expectation_type": "expect_table_row_count_to_be_between",
                    "success": True,
                    "kwargs": {"min_value": 1},
                    "result": {"observed_value": observed},
                },
            ],
        },
    }


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def _warehouse(tmp_path: Path) -> Path:
    wh = tmp_path / "wh"
    metrics = {"2026-01-30": 0.11, "2026-01-31": 0.17}
    for night in NIGHTS:
        runs = wh / "_runs" / f"ds={night}"
        _write(runs / "gates" / "catalogue.json", _gate(success=night == NIGHTS[1]))
        _write(runs / "gates" / "recommendations.json", _gate(success=True, observed=40))
        _write(
            runs / "quality.json",
            {
                "config": {"ds": night},
                "metrics": {
                    "ndcg@10": metrics[night],
                    "recall@20": 0.2,
                    "aplt@10": 0.3,
                    "coverage@10": 0.4,
                    "tail_recall@20": None,
                    "n_eval_users": 5,
                },
            },
        )
        _write(
            runs / "publish.json",
            {
                "config": {"ds": night},
                "manifests": {"recommendations": {"rows": 40, "model_version": f"fusion-{night}"}},
            },
        )
    return wh


def test_site_is_self_contained_and_every_gate_is_linked(tmp_path: Path) -> None:
    wh = _warehouse(tmp_path)
    index = Path(build_site(str(wh)))
    site = wh / "_data_docs"
    assert index == site / "index.html"
    pages = sorted(site.rglob("*.html"))
    assert {p.relative_to(site).as_posix() for p in pages} == {
        "index.html",
        "quality.html",
        *(f"nights/{n}/{t}.html" for n in NIGHTS for t in ("catalogue", "recommendations")),
    }
    reached = set()
    for page in pages:
        text = page.read_text()
        for link in _links(text):
            assert not re.match(r"^[a-z]+:|^//", link), f"{page}: external link {link}"
            target = (page.parent / link).resolve()
            assert target.is_file(), f"{page}: broken link {link}"
            reached.add(target)
    assert {p.resolve() for p in pages} <= reached | {index.resolve()}
    assert (site / "assets" / "style.css").resolve() in reached


def test_index_shows_verdicts_and_the_trend(tmp_path: Path) -> None:
    wh = _warehouse(tmp_path)
    text = Path(build_site(str(wh))).read_text()
    assert "✗ failed 1/2" in text and "✓ 2/2" in text
    assert "<td>40 rows (fusion-2026-01-31)</td>" in text
    # one point per night and metric that has a value; tail_recall@20 has none
    assert text.count("<circle") == 2 * 4
    assert "ndcg@10 2026-01-31: 0.1700" in text


def test_gate_page_lists_expectations_and_observed_values(tmp_path: Path) -> None:
    wh = _warehouse(tmp_path)
    build_site(str(wh))
    failed = (wh / "_data_docs" / "nights" / NIGHTS[0] / "catalogue.html").read_text()
    assert "FAILED" in failed
    assert "expect_column_values_to_be_unique" in failed
    assert "2 unexpected, e.g. [&quot;i1&quot;, &quot;i1&quot;]" in failed
    assert "batch_id" not in failed
    passed = (wh / "_data_docs" / "nights" / NIGHTS[0] / "recommendations.html").read_text()
    assert "passed" in passed and "<td>40</td>" in passed


def test_an_empty_warehouse_gives_an_empty_site(tmp_path: Path) -> None:
    text = Path(build_site(str(tmp_path / "nothing"))).read_text()
    assert "No quality_metrics yet" in text


def test_a_stage_warning_is_shown_for_its_night(tmp_path: Path) -> None:
    wh = _warehouse(tmp_path)
    message = "66.7% of catalogue text tokens are unknown to encoder all-MiniLM-L6-v2"
    runs = wh / "_runs" / f"ds={NIGHTS[1]}"
    _write(runs / "content.json", {"stage": "content", "warnings": [message]})
    _write(wh / "_runs" / f"ds={NIGHTS[0]}" / "content.json", {"stage": "content", "warnings": []})
    text = Path(build_site(str(wh))).read_text()
    assert "<h2>Warnings</h2>" in text
    assert f"<tr><td class='warn'>⚠ {NIGHTS[1]}</td><td>content</td><td>{message}</td></tr>" in text
    assert f"⚠ {NIGHTS[0]}" not in text  # no warning that night
    assert "<h2>Warnings</h2>" not in Path(build_site(str(_warehouse(tmp_path / "b")))).read_text()


def test_a_night_that_fails_before_its_first_gate_is_shown_with_its_reason(
    spark: Any, tmp_path: Path, tmp_landing: Any
) -> None:
    """The ingest stage stops on a landing without user_id before writing anything: its failure
    record names the night and the reason on the site; the next successful run clears it."""
    from longtail.config import IngestConfig
    from longtail.landing import LandingContractError
    from longtail.stages import ingest
    from longtail.stages.common import run_and_record

    ds = "2026-02-01"
    tmp_landing("items/part.csv", ["item_id", "title"], [["i1", "A lamp"], ["i2", "A chair"]])
    landing = tmp_landing(
        "events/part.csv", ["customer_id", "item_id", "ts"], [["u1", "i1", "2026-02-01T10:00:00Z"]]
    )
    wh = tmp_path / "wh"
    cfg = IngestConfig(ds=ds, warehouse=str(wh), landing=str(landing))
    with pytest.raises(LandingContractError):
        run_and_record(spark, "ingest", cfg, ingest.run)
    runs = wh / "_runs" / f"ds={ds}"
    failed = json.loads((runs / "ingest.failed.json").read_text())
    assert (failed["stage"], failed["error"], failed["permanent"]) == (
        "ingest",
        "LandingContractError",
        True,
    )
    assert "'user_id'" in failed["message"] and failed["failed_at"].endswith("Z")
    assert not (runs / "ingest.json").exists()

    text = Path(build_site(str(wh))).read_text()
    assert "<h2>Failed nights</h2>" in text and f"✗ {ds} failed" in text
    assert "<code>LandingContractError</code>" in text and "user_id" in text
    assert "<h2>Warnings</h2>" not in text  # a failure record holds no warnings

    tmp_landing(
        "events/part.csv", ["user_id", "item_id", "ts"], [["u1", "i1", "2026-02-01T10:00:00Z"]]
    )
    run_and_record(spark, "ingest", cfg, ingest.run)
    assert (runs / "ingest.json").is_file() and not (runs / "ingest.failed.json").exists()
    assert "Failed nights" not in Path(build_site(str(wh))).read_text()
