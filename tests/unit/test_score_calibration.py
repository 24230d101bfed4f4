"""The night's tail calibration summed in Spark equals the pandas definition in fusion."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from tests.unit.test_fusion import space

from longtail import fusion
from longtail.config import ScoreConfig
from longtail.stages.score import night_tail_calibration


def test_spark_sums_equal_the_pandas_definition(spark) -> None:
    sp = space()  # tail items: c, d, e, f
    rows = [("u1", "a"), ("u1", "c"), ("u2", "c"), ("u2", "d"), ("u2", "e"), ("u3", "b")]
    rows += [("u1", "a")]  # a repeated pair counts once
    frame = spark.createDataFrame(pd.DataFrame(rows, columns=["user_id", "item_id"]))
    cfg = ScoreConfig(ds=date(2024, 1, 1), warehouse="/tmp/unused", tail_target=0.3)
    got = night_tail_calibration(frame, sp, cfg)
    # (tail, items): u1 (1, 2), u2 (3, 3), u3 (0, 1)
    want = fusion.tail_calibration(np.array([[1, 2], [3, 3], [0, 1]], float), 0.3)
    assert got == pytest.approx(want, abs=1e-12)
    assert want[0] == pytest.approx(0.5)  # mean of 1/2, 1, 0
    off = ScoreConfig(ds=date(2024, 1, 1), warehouse="/tmp/unused", calibrate_tail=False)
    assert night_tail_calibration(frame, sp, off) is None
