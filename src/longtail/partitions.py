"""mapInPandas helpers: a Spark partition as one pandas frame."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd


def whole_partition(batches: Iterator[pd.DataFrame]) -> pd.DataFrame | None:
    """The partition's Arrow batches as one frame (None when it has no rows).

    mapInPandas hands a partition over in batches of spark.sql.execution.arrow.maxRecordsPerBatch
    rows; work whose cost or output is per unit (a block of shoppers searched, a batch of texts
    padded) must see the partition, not each batch, or it grows with the number of batches.
    """
    frames = [b for b in batches if len(b)]
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
