"""The ALS stage fits on the Spark-indexed matrix exactly what fit_als fits on the pandas frame."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from longtail.als import fit_als
from longtail.config import AlsConfig
from longtail.stages.train_als import ITEM_FACTORS, USER_FACTORS, run
from longtail.warehouse.publish import read_table, write_audit_publish


def test_published_factors_equal_fit_als_on_pandas(spark, tmp_path):
    ds, wh = date(2024, 5, 1), str(tmp_path / "wh")
    rng = np.random.default_rng(2)
    t0 = pd.Timestamp("2024-04-01", tz="UTC")
    rows = [
        (f"u{u}", f"i{i}", float(rng.integers(1, 9)), t0 + pd.Timedelta(hours=u * 9 + i))
        for u in range(12)
        for i in range(9)
        if rng.random() < 0.4
    ]
    frame = pd.DataFrame([r[:3] for r in rows], columns=["user_id", "item_id", "weight"])
    write_audit_publish(
        spark.createDataFrame(
            [(*r[:3], r[3].to_pydatetime()) for r in rows],
            "user_id string, item_id string, weight double, first_ts timestamp",
        ),
        wh,
        "interactions",
        ds,
    )
    # a weekly selection (select_every_days 7) chooses on the interactions rebuilt from the
    # silver events before its Monday, 2024-04-29: one event a pair, at its first time
    write_audit_publish(
        spark.createDataFrame(
            [(*r[:2], r[3].to_pydatetime(), "view", r[2]) for r in rows],
            "user_id string, item_id string, ts timestamp, event_type string, weight double",
        ),
        wh,
        "silver_events",
        ds,
    )
    cfg = AlsConfig(
        ds=ds, warehouse=wh, factors=4, iterations=3, seed=5, num_threads=1, select_every_days=7
    )
    out = run(spark, cfg)
    # 12 users cannot judge a choice: the configured settings are fitted, and the record says why
    assert out["chosen"] == {"regularization": cfg.regularization, "alpha": cfg.alpha}
    assert "fewer than 50" in out["selection"]["kept_configured"]
    assert out["cadence"]["anchor"] == "2024-04-29" and out["cadence"]["reused_from"] is None
    assert out["cadence"]["events"]["events"] == len(rows)  # every pair's event precedes it
    want = fit_als(frame, factors=4, iterations=3, seed=5, num_threads=1)
    assert out["counts"] == {
        "users": len(want.user_ids),
        "items": len(want.item_ids),
        "nnz": len(rows),
    }
    for table, key, ids, vectors in (
        (USER_FACTORS, "user_id", want.user_ids, want.user_factors),
        (ITEM_FACTORS, "item_id", want.item_ids, want.item_factors),
    ):
        got = read_table(spark, wh, table, ds).toPandas().sort_values(key)
        assert got[key].tolist() == ids.tolist()
        np.testing.assert_array_equal(np.stack(got["factors"].to_numpy()), vectors)
