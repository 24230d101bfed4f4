"""Project a nightly run for a large shop from the stage times `make bench-scale` measured.

Each stage's seconds are fitted as fixed + rate x size over the measured factors, where size is
what the stage's work grows with: users for `score` (per-user retrieval, features and ranker),
items for `content` (first night: every text; later nights only new texts) and `similar_items`,
events (proportional to users in the generated shops) for the rest. The measured machine kept
`cores` busy, so a stage's variable work at the target is rate x size x cores core-seconds;
spread over the cores of a cluster it must fit in the hours left after the fixed parts.

This is arithmetic on measurements, stated with its assumptions, not a measurement: it ignores
the log(items) growth of an HNSW search and assumes Spark spreads every stage's variable work
evenly (the driver-side parts, ALS fit and index build, are listed separately).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_USERS = 10_000
BASE_ITEMS = 5_000
BY_USERS = ("score",)
BY_ITEMS = ("content", "similar_items")
# Bytes per item held by every scoring task: text vector (384 float32) and ALS factors (64) in
# the item space and again in the index, the HNSW links (2 x 32 int32 on the base layer) and the
# nearest-texts table (57 x (int32 + float32)).
BYTES_PER_ITEM = (384 + 64) * 4 * 2 + 2 * 32 * 4 + 57 * 8


@dataclass(frozen=True)
class Rate:
    fixed_s: float
    per_factor_s: float  # seconds per unit of size (1 = the 1x shop) on the measured machine


def fit_rates(scales: Sequence[Mapping[str, Any]]) -> dict[str, Rate]:
    """Least-squares fixed + rate x factor per stage over the measured factors."""
    stages = sorted({s for sc in scales for s in sc["stages"]})
    out = {}
    for stage in stages:
        pts = [(float(sc["factor"]), float(sc["stages"][stage])) for sc in scales]
        n = len(pts)
        mx, my = sum(x for x, _ in pts) / n, sum(y for _, y in pts) / n
        sxx = sum((x - mx) ** 2 for x, _ in pts)
        b = sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else 0.0
        b = max(b, 0.0)
        out[stage] = Rate(fixed_s=max(my - b * mx, 0.0), per_factor_s=b)
    return out


def size_of(stage: str, users: float, items: float) -> float:
    """The target's size for a stage, in units of the 1x shop."""
    if stage in BY_USERS:
        return users / BASE_USERS
    if stage in BY_ITEMS:
        return items / BASE_ITEMS
    return users / BASE_USERS  # events grow with users in the generated shops


def project(
    rates: Mapping[str, Rate], users: float, items: float, cores: int, hours: Sequence[float]
) -> dict[str, Any]:
    """Core-hours of variable work, fixed seconds, and cores needed to finish in each budget."""
    work = {s: r.per_factor_s * size_of(s, users, items) * cores for s, r in rates.items()}
    fixed = sum(r.fixed_s for r in rates.values())
    need = {}
    for h in hours:
        left = h * 3600 - fixed
        need[h] = math.ceil(sum(work.values()) / left) if left > 0 else None
    return {
        "users": users,
        "items": items,
        "core_hours": {s: w / 3600 for s, w in sorted(work.items(), key=lambda kv: -kv[1])},
        "fixed_s": fixed,
        "cores_needed": need,
        "item_tables_gb": items * BYTES_PER_ITEM / 1e9,
    }


def markdown(metrics: Mapping[str, Any], shops: Sequence[tuple[int, int]]) -> str:
    cores = int(str(metrics["machine"]).split()[0])
    rates = fit_rates(metrics["scales"])
    lines = [
        "| shop | core-hours (largest stages) | cores for 1 h | cores for 4 h "
        "| item tables per task |",
        "|---|---|---:|---:|---:|",
    ]
    for users, items in shops:
        p = project(rates, users, items, cores, (1.0, 4.0))
        top = ", ".join(f"{s} {h:.1f}" for s, h in list(p["core_hours"].items())[:4])
        total = sum(p["core_hours"].values())
        lines.append(
            f"| {users:,} users x {items:,} items | {total:.0f} ({top}) "
            f"| {p['cores_needed'][1.0]} | {p['cores_needed'][4.0]} "
            f"| {p['item_tables_gb']:.1f} GB |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.projection", description=__doc__)
    ap.add_argument("metrics", nargs="?", default="reports/scale/metrics.json")
    args = ap.parse_args(argv)
    metrics = json.loads(Path(args.metrics).read_text())
    print(markdown(metrics, [(1_000_000, 200_000), (30_000_000, 2_000_000)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
