"""Print the last day of a landing folder's events: the default run date of `make run`.

Uses the newest `dt=YYYY-MM-DD` folder when events are partitioned that way; otherwise the latest
parseable timestamp that is not in the future (dirty rows with far-future clocks are ignored).
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

_DT = re.compile(r"dt=(\d{4}-\d{2}-\d{2})")


def _read_ts(path: Path) -> pd.Series:
    name = path.name.lower()
    if name.endswith(".parquet"):
        frame = pd.read_parquet(path)
    elif ".csv" in name:
        frame = pd.read_csv(path, dtype=str, on_bad_lines="skip")
    else:
        frame = pd.read_json(path, lines=True, dtype=False)
    cols = {c.strip().lower(): c for c in frame.columns}
    if "ts" not in cols:
        return pd.Series(dtype="datetime64[ns, UTC]")
    raw = frame[cols["ts"]].astype(str).str.strip()
    numeric = pd.to_numeric(raw, errors="coerce")
    as_epoch = pd.to_datetime(numeric.where(numeric < 1e11), unit="s", utc=True, errors="coerce")
    as_text = pd.to_datetime(raw.where(numeric.isna()), utc=True, errors="coerce", format="mixed")
    return as_epoch.fillna(as_text)


def last_day(landing: str | Path) -> str:
    events = Path(landing) / "events"
    files = [p for p in events.rglob("*") if p.is_file() and not p.name.startswith(("_", "."))]
    if not files:
        raise SystemExit(f"{events}: no event files")
    days = sorted({m.group(1) for p in files for m in [_DT.search(str(p))] if m})
    if days:
        return days[-1]
    now = datetime.now(UTC)
    ts = pd.concat([_read_ts(p) for p in files])
    ts = ts[(ts <= now) & (ts.dt.year >= 1995)]
    if ts.empty:
        raise SystemExit(f"{events}: no parseable timestamps")
    return ts.max().date().isoformat()


if __name__ == "__main__":
    print(last_day(sys.argv[1]))
