"""`make bench-scale`: the nightly DAG on generated shops of growing size, timed stage by stage.

For each factor f the sample generator (longtail.sample) writes a shop of f x 10,000 users and
f x 5,000 items over 60 days (about 300,000 events at 1x); the whole DAG then runs once for the
last day through `airflow dags test` (longtail.airflow_run, as `make run`). Recorded per factor:
wall time of the DAG run, each stage's own seconds (its run record), and the peak resident
memory summed over the whole process tree (Airflow, every spark-submit, JVM and Python worker),
sampled every 0.2 s. Then the steady state (`second_night`): the landing gains the next day (the
last day's traffic replayed one day on, and `NEW_ITEMS_PER_10K` new items per 10,000 listed
that day, with texts of their own) and the DAG runs for it on the same warehouse, as a shop's
every night does: what a shop pays once its first night is behind it (its embedding cache
included).

Output: `reports/scale/metrics.json` (`{"machine", "scales": [...], "steps": [...]}`; a step
compares two consecutive factors: how much more data and how much more time, in total and per
stage) and `reports/scale/scale.svg` (log-log seconds against factor).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq

from bench.memory import PeakMemory
from longtail.sample import SampleConfig, generate
from longtail.session.client import stop_server

REPO = Path(__file__).resolve().parents[1]
BASE_USERS = 10_000
BASE_ITEMS = 5_000
DAYS = 60
SEED = 7
# A stage counts in the step check once it takes this long (shorter ones are Spark start-up).
STAGE_FLOOR_S = 30.0
# New items listed on the second night, per 10,000 items of the shop (at least 3).
NEW_ITEMS_PER_10K = 20


@dataclass(frozen=True)
class ScaleRun:
    factor: float
    users: int
    items: int
    events: int
    wall_s: float
    stages: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    commit: str = ""  # the code that was measured: factors may be measured on different days
    # The next night on the same warehouse: {"wall_s", "stages", "events_added", "new_items"}.
    second_night: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, entry: Mapping[str, Any]) -> ScaleRun:
        return cls(
            factor=float(entry["factor"]),
            users=int(entry["users"]),
            items=int(entry["items"]),
            events=int(entry["events"]),
            wall_s=float(entry["wall_s"]),
            stages={k: float(v) for k, v in entry.get("stages", {}).items()},
            peak_rss_mb=float(entry.get("peak_rss_mb", 0.0)),
            commit=str(entry.get("commit", "")),
            second_night=entry.get("second_night"),
        )


def shop_config(factor: float) -> SampleConfig:
    """The generated shop at `factor` x (10,000 users, 5,000 items), 60 days, fixed seed."""
    if factor <= 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    return SampleConfig(
        n_users=max(10, round(BASE_USERS * factor)),
        n_items=max(48, round(BASE_ITEMS * factor)),
        n_days=DAYS,
        seed=SEED,
    )


def stage_seconds(warehouse: Path, ds: str) -> dict[str, float]:
    """Each stage's own seconds from its run record (`_runs/ds=<ds>/<stage>.json`)."""
    out = {}
    for record in sorted((warehouse / "_runs" / f"ds={ds}").glob("*.json")):
        seconds = json.loads(record.read_text()).get("seconds")
        if isinstance(seconds, int | float):
            out[record.stem] = round(float(seconds), 1)
    return out


def events_in(warehouse: Path, ds: str) -> int:
    """Events the run read from the landing (the clean stage's accounting)."""
    record = warehouse / "_runs" / f"ds={ds}" / "clean.json"
    return int(json.loads(record.read_text())["counts"]["events_in"])


def run_dag(landing: Path, warehouse: Path, ds: str, log_path: Path) -> tuple[float, float]:
    """One nightly run through Airflow: (wall seconds, peak RSS MB of the process tree)."""
    cmd = [
        sys.executable,
        "-m",
        "longtail.airflow_run",
        "--ds",
        ds,
        "--landing",
        str(landing),
        "--warehouse",
        str(warehouse),
        # on this machine's processes, never on a running deployment: the figures are this box's
        "--via",
        "dags-test",
        "--log",
        str(log_path.with_suffix(".airflow.log")),
    ]
    started = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        with PeakMemory(proc.pid, every_s=0.2) as mem:
            rc = proc.wait()
    wall = time.perf_counter() - started
    if rc != 0:
        raise RuntimeError(f"the nightly DAG failed at this scale (exit {rc}); see {log_path}")
    return wall, mem.peak_mb


def code_commit(repo: Path = REPO) -> str:
    """The checked-out commit (with `+changes` when the tree differs from it), or "" outside git."""

    def git(*args: str) -> str:
        cmd = ["git", "-C", str(repo), *args]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return ""
    return head + ("+changes" if dirty else "")


def kept_runs(report: Path, remeasured: Sequence[float]) -> list[ScaleRun]:
    """Factors of an earlier report that this run does not measure again, if it was measured on
    a machine like this one (figures from another machine would make false steps)."""
    if not report.is_file():
        return []
    saved = json.loads(report.read_text())
    if saved.get("machine") != machine():
        raise SystemExit(
            f"{report} was measured on {saved.get('machine')!r}, this is {machine()!r}: "
            "re-run every factor here instead of keeping its figures"
        )
    return [
        ScaleRun.from_dict(e)
        for e in saved.get("scales", [])
        if float(e["factor"]) not in remeasured
    ]


def add_next_day(landing: Path, ds: str) -> tuple[str, int, int]:
    """Give the landing the day after `ds`: that day's events replayed one day later (rows whose
    time does not parse as ISO-8601 are left out) and a few new items listed that day (copies of
    late-listed items under new ids, with texts of their own). Returns (next day, events, items)."""
    import pandas as pd

    day = pd.Timestamp(ds) + pd.Timedelta(days=1)
    next_ds = day.date().isoformat()
    src = landing / "events" / f"dt={ds}" / "part-0.csv.gz"
    events = pd.read_csv(src, dtype=str, keep_default_na=False)
    ts = pd.to_datetime(events["ts"], utc=True, errors="coerce", format="ISO8601")
    keep = ts.notna() & (ts.dt.strftime("%Y-%m-%d") == ds)
    shifted = (ts[keep] + pd.Timedelta(days=1)).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out = events[keep].assign(ts=shifted.to_numpy())
    dest = landing / "events" / f"dt={next_ds}" / "part-0.csv.gz"
    dest.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(dest, index=False, compression={"method": "gzip", "mtime": 0}, lineterminator="\n")
    late_path = landing / "items" / "late_items.jsonl"
    late = [json.loads(line) for line in late_path.read_text(encoding="utf-8").splitlines() if line]
    n_items = len(pq.read_table(landing / "items" / "items.parquet", columns=["item_id"]))
    n_new = min(len(late), max(3, round((n_items + len(late)) * NEW_ITEMS_PER_10K / 10_000)))
    with open(late_path, "a", encoding="utf-8", newline="\n") as f:
        for i, item in enumerate(late[:n_new]):
            new = {
                **item,
                "item_id": f"N{day:%Y%m%d}{i:04d}",
                "title": f"{item['title']} ({day:%B} {day.day} release)",
                "first_seen": next_ds,
            }
            f.write(json.dumps(new, ensure_ascii=False) + "\n")
    return next_ds, len(out), n_new


def run_scale(factor: float, work: Path) -> ScaleRun:
    cfg = shop_config(factor)
    folder = work / f"x{factor:g}"
    landing, warehouse = folder / "landing", folder / "warehouse"
    shutil.rmtree(folder, ignore_errors=True)
    summary = generate(landing, cfg)
    ds = summary["end_date"]
    print(
        f"[scale x{factor:g}] {summary['users']} users, {summary['items']} items, "
        f"{summary['events']} events; nightly DAG for {ds}",
        flush=True,
    )
    # the first night starts its own Spark session (its start-up counted, its memory in the
    # tree); the second finds it running, as every later night of a shop does
    session = Path(os.environ.get("AIRFLOW_HOME", ".airflow")) / "session"
    stop_server(session)
    wall, peak = run_dag(landing, warehouse, ds, folder / "dag.log")
    next_ds, added, new_items = add_next_day(landing, ds)
    wall2, _ = run_dag(landing, warehouse, next_ds, folder / "dag-second.log")
    stop_server(session)
    second = {
        "wall_s": round(wall2, 1),
        "stages": stage_seconds(warehouse, next_ds),
        "events_added": added,
        "new_items": new_items,
    }
    print(f"[scale x{factor:g}] second night {next_ds}: {second}", flush=True)
    run = ScaleRun(
        factor=factor,
        users=int(summary["users"]),
        items=int(summary["items"]),
        events=events_in(warehouse, ds),
        wall_s=round(wall, 1),
        stages=stage_seconds(warehouse, ds),
        peak_rss_mb=round(peak, 0),
        commit=code_commit(),
        second_night=second,
    )
    print(
        f"[scale x{factor:g}] {run.wall_s:.0f}s, peak {run.peak_rss_mb:.0f} MB, "
        f"stages {run.stages}",
        flush=True,
    )
    return run


def steps(runs: Sequence[ScaleRun], floor_s: float = STAGE_FLOOR_S) -> list[dict[str, Any]]:
    """Consecutive factors compared: data growth (events) against time growth, in total and
    for every stage that takes at least `floor_s` at the larger factor."""
    out = []
    for small, big in itertools.pairwise(runs):
        stages = {
            name: round(big.stages[name] / small.stages[name], 2)
            for name in sorted(big.stages)
            if big.stages[name] >= floor_s and small.stages.get(name)
        }
        out.append(
            {
                "from": small.factor,
                "to": big.factor,
                "events_ratio": round(big.events / max(small.events, 1), 2),
                "wall_ratio": round(big.wall_s / max(small.wall_s, 1e-9), 2),
                "stage_ratios": stages,
                "peak_rss_ratio": round(big.peak_rss_mb / max(small.peak_rss_mb, 1e-9), 2),
            }
        )
    return out


def machine() -> str:
    return f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB"


def metrics(runs: Sequence[ScaleRun]) -> dict[str, Any]:
    return {
        "machine": machine(),
        "protocol": {
            "shop": f"longtail.sample at factor x ({BASE_USERS} users, {BASE_ITEMS} items), "
            f"{DAYS} days, seed {SEED}",
            "run": "one nightly DAG run for the last day via airflow dags test, default config",
            "second_night": "the day after on the same warehouse: the last day's events replayed "
            f"one day later and {NEW_ITEMS_PER_10K} new items per 10,000 listed that day",
            "peak_rss": "summed over the whole process tree, sampled every 0.2 s",
        },
        "scales": [asdict(r) for r in runs],
        "steps": steps(runs),
    }


# --- plot ---------------------------------------------------------------------------------

_W, _H, _L, _R, _T, _B = 640, 380, 60, 150, 30, 45
_COLOURS = (
    "#222",
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
)


def svg_plot(runs: Sequence[ScaleRun]) -> str:
    """Seconds against factor, both log scales: the DAG's wall time and every stage's."""
    series: dict[str, list[tuple[float, float]]] = {
        "DAG wall": [(r.factor, r.wall_s) for r in runs]
    }
    names = sorted(
        {s for r in runs for s in r.stages}, key=lambda s: -max(r.stages.get(s, 0.0) for r in runs)
    )
    for name in names:
        series[name] = [(r.factor, r.stages[name]) for r in runs if r.stages.get(name)]
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts if y > 0]
    if not xs or not ys:
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}"></svg>'
    x0, x1 = math.log10(min(xs)) - 0.1, math.log10(max(xs)) + 0.1
    y0, y1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    y1 = max(y1, y0 + 1)

    def px(x: float) -> float:
        return _L + (math.log10(x) - x0) / (x1 - x0) * (_W - _L - _R)

    def py(y: float) -> float:
        return _H - _B - (math.log10(max(y, 10**y0)) - y0) / (y1 - y0) * (_H - _T - _B)

    body = [
        f'<rect x="{_L}" y="{_T}" width="{_W - _L - _R}" height="{_H - _T - _B}" fill="none" '
        'stroke="#999"/>',
        f'<text x="{(_W - _R + _L) / 2}" y="{_H - 8}" text-anchor="middle">shop size factor '
        "(1x = 10k users, 5k items, ~300k events)</text>",
        f'<text x="14" y="{(_H - _B + _T) / 2}" transform="rotate(-90 14 {(_H - _B + _T) / 2})" '
        'text-anchor="middle">seconds</text>',
    ]
    for e in range(y0, y1 + 1):
        body.append(f'<text x="{_L - 6}" y="{py(10**e) + 4}" text-anchor="end">{10**e:g}</text>')
    for r in runs:
        body.append(
            f'<text x="{px(r.factor)}" y="{_H - _B + 16}" text-anchor="middle">{r.factor:g}x</text>'
        )
    for i, (name, pts) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        width = 2.5 if i == 0 else 1.2
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        body.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="{width}">'
            f"<title>{name}</title></polyline>"
        )
        ly = _T + 14 * i + 8
        body.append(
            f'<line x1="{_W - _R + 10}" y1="{ly}" x2="{_W - _R + 28}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="{width}"/>'
            f'<text x="{_W - _R + 32}" y="{ly + 4}">{name}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'font-family="sans-serif" font-size="11">'
        "<title>Nightly DAG seconds by shop size</title>" + "".join(body) + "</svg>\n"
    )


# the keys of metrics.json that `make bench-backfill` writes
BACKFILL_KEYS = ("sample_night_s", "sample_night", "backfill", "backfill_spark_submit")


def write_report(runs: Sequence[ScaleRun], out: Path) -> Mapping[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    result = metrics(runs)
    path = out / "metrics.json"
    if path.exists():  # what `make bench-backfill` measured stays (bench/backfill.py)
        earlier = json.loads(path.read_text())
        result.update({k: earlier[k] for k in BACKFILL_KEYS if k in earlier})
    path.write_text(json.dumps(result, indent=2) + "\n")
    (out / "scale.svg").write_text(svg_plot(runs))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--factors", type=float, nargs="+", default=[1.0, 4.0, 16.0])
    parser.add_argument("--work-dir", default=str(REPO / "data" / "scale"))
    parser.add_argument("--out", default=str(REPO / "reports" / "scale"))
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the other factors of the existing report (same machine); each scale records "
        "the commit it measured",
    )
    args = parser.parse_args(argv)
    factors = sorted(set(args.factors))
    kept = kept_runs(Path(args.out) / "metrics.json", factors) if args.keep else []
    runs = [run_scale(f, Path(args.work_dir)) for f in factors]
    runs = sorted([*kept, *runs], key=lambda r: r.factor)
    result = write_report(runs, Path(args.out))
    for step in result["steps"]:
        print(
            f"[scale] x{step['from']:g} -> x{step['to']:g}: events x{step['events_ratio']}, "
            f"wall x{step['wall_ratio']}, stages {step['stage_ratios']}"
        )
    print(f"[scale] wrote {Path(args.out) / 'metrics.json'} and {Path(args.out) / 'scale.svg'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
