"""Projection arithmetic on made-up stage times with answers worked out by hand."""

from __future__ import annotations

import pytest

from bench.projection import fit_rates, markdown, project

SCALES = [
    {"factor": 1, "stages": {"score": 20.0, "content": 110.0, "ingest": 50.0}},
    {"factor": 4, "stages": {"score": 50.0, "content": 410.0, "ingest": 50.0}},
]


def test_rates_are_fixed_plus_rate_times_factor() -> None:
    r = fit_rates(SCALES)
    assert r["score"].fixed_s == pytest.approx(10.0) and r["score"].per_factor_s == pytest.approx(
        10.0
    )
    assert r["content"].fixed_s == pytest.approx(10.0)
    assert r["content"].per_factor_s == pytest.approx(100.0)
    assert r["ingest"].per_factor_s == 0.0 and r["ingest"].fixed_s == pytest.approx(50.0)


def test_projection_scales_each_stage_by_its_own_size() -> None:
    p = project(fit_rates(SCALES), users=1_000_000, items=50_000, cores=2, hours=(1.0,))
    # score: 10 s x 100 (users / 10k) x 2 cores; content: 100 s x 10 (items / 5k) x 2 cores
    assert p["core_hours"]["score"] == pytest.approx(2000 / 3600)
    assert p["core_hours"]["content"] == pytest.approx(2000 / 3600)
    assert p["fixed_s"] == pytest.approx(70.0)
    assert p["cores_needed"][1.0] == 2  # 4000 core-s over 3530 s
    assert "1,000,000 users" in markdown(
        {"machine": "2 cores", "scales": SCALES}, [(10**6, 5 * 10**4)]
    )
