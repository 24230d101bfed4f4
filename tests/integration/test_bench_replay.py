"""`make bench LANDING=...` on a small generated shop: metrics.json has every system and metric.

A long variant (LONGTAIL_LONG_TESTS=1): about five minutes on two cores. By default the
benchmark's parts are checked by the unit tests (split, peers, tuning, metrics, bootstrap,
report, table, replay); this runs them together end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from longtail.sample import SampleConfig, generate

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.long]

SYSTEMS = (
    "popularity",
    "recent_popularity",
    "als",
    "spark_als",
    "itemknn",
    "rp3beta",
    "ease",
    "published",
)
METRICS = (
    "ndcg@10",
    "recall@20",
    "aplt@10",
    "tail_recall@20",
    "coverage@10",
    "gini@10",
    "novelty@10",
    "cold_item_recall@20",
    "fit_s",
    "score_s",
    "peak_mem_mb",
)
PROTOCOL = (
    "cutoff",
    "n_eval_users",
    "n_test_pairs",
    "n_tail_items",
    "n_cold_items",
    "listing_dates",
    "n_items_listed",
)


def test_bench_on_generated_landing(tmp_path: Path) -> None:
    landing = tmp_path / "shop"
    generate(landing, SampleConfig(n_users=300, n_items=200, n_days=20, seed=11))
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.replay",
            "--landing",
            str(landing),
            "--name",
            "tiny",
            "--work-dir",
            str(tmp_path / "work"),
            "--reports-dir",
            str(tmp_path / "reports"),
        ],
        cwd=REPO,  # bench/ is a package at the repository root, not in the wheel
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = json.loads((tmp_path / "reports" / "tiny" / "metrics.json").read_text())
    assert out["dataset"] == "tiny"
    for key in PROTOCOL:
        assert key in out["protocol"]
    assert out["protocol"]["n_eval_users"] > 0
    assert out["protocol"]["n_test_pairs"] >= out["protocol"]["n_eval_users"]
    for system in SYSTEMS:
        values = out["systems"][system]
        assert set(METRICS) <= set(values), system
        for metric in ("ndcg@10", "recall@20", "aplt@10", "coverage@10", "gini@10"):
            assert 0.0 <= values[metric] <= 1.0, (system, metric)
    # The generated shop has real structure: a learned model beats popularity on it.
    assert out["systems"]["als"]["ndcg@10"] > out["systems"]["popularity"]["ndcg@10"]
    # Quality floor of the published list on this fixed-seed shop: more accurate than
    # popularity, and the default tail target (0.3) puts at least 3 tail items in every top 10.
    published = out["systems"]["published"]
    assert published["ndcg@10"] > out["systems"]["popularity"]["ndcg@10"]
    assert published["aplt@10"] >= 0.3 - 1e-9
    assert published["aplt@10"] > out["systems"]["als"]["aplt@10"]
    assert {"content", "cooccurrence", "fusion"} <= set(out["systems"])
    assert [row["tail_target"] for row in out["tradeoff"]] == sorted(
        row["tail_target"] for row in out["tradeoff"]
    )
    # The honest protocol's parts are all there.
    assert out["protocol"]["listing_dates"] == "auto"
    assert out["protocol"]["split"] == "temporal"  # the generated shop has purchases and views
    assert out["protocol"]["n_items_listed"] == out["protocol"]["n_catalogue_items"]
    for name in ("recent_popularity", "als", "itemknn", "rp3beta", "ease"):
        tuning = out["tuning"][name]
        assert {"grid", "best", "best_on_edge"} <= set(tuning), name
        assert tuning["best_on_edge"] is False, (name, tuning["grid"], tuning["best"])
    # spark_als is shown as a reference, never a peer (its row says why).
    assert out["systems"]["spark_als"].get("reference_only")
    peers = set(SYSTEMS) - {"published", "spark_als"}
    assert set(out["best_peer"]) == {"ndcg@10", "recall@20", "tail_recall@20"}
    for metric, peer in out["best_peer"].items():
        assert peer in peers
        best = max(out["systems"][p][metric] for p in peers if out["systems"][p].get(metric))
        assert out["systems"][peer][metric] == best
        low, median, high = out["ci"][metric]
        assert low <= median <= high
    cold = out["cold_start"]
    assert cold["protocol"]["seed"] == 42 and cold["protocol"]["n_items"] >= 1
    assert {"popularity", "content", "published"} <= set(cold["systems"])
    # Popularity from training interactions cannot name an item that has none.
    assert cold["systems"]["popularity"]["recall@20"] == 0.0
    assert cold["systems"]["content"]["recall@20"] > 0.0
    html = (tmp_path / "reports" / "tiny" / "report.html").read_text()
    assert all(s in html for s in SYSTEMS)
