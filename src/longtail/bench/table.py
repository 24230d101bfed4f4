"""Markdown results table from reports/bench/*/metrics.json (README's results section)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = (
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
)
SYSTEMS = ("popularity", "als", "spark_als", "content", "cooccurrence", "fusion", "published")


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def table(reports: Path) -> str:
    lines = []
    for path in sorted(reports.glob("*/metrics.json")):
        data = json.loads(path.read_text())
        p = data["protocol"]
        lines.append(
            f"**{data['dataset']}** (cutoff {p['cutoff'][:10]}, {p['n_eval_users']} eval users, "
            f"{p['n_test_pairs']} held-out pairs, {p['n_tail_items']} tail / "
            f"{p['n_cold_items']} cold items; {p.get('machine', '')}, {p.get('date', '')})"
        )
        lines.append("")
        lines.append("| system | " + " | ".join(COLUMNS) + " |")
        lines.append("|---|" + "---:|" * len(COLUMNS))
        for name in SYSTEMS:
            row = data["systems"].get(name)
            if row:
                lines.append(f"| {name} | " + " | ".join(_fmt(row.get(c)) for c in COLUMNS) + " |")
        als, pub = data["systems"].get("als", {}), data["systems"].get("published", {})
        ratios = []
        for metric in ("ndcg@10", "aplt@10", "tail_recall@20", "coverage@10"):
            a, b = als.get(metric), pub.get(metric)
            if a and b is not None:
                ratios.append(f"{metric} {b / a:.2f}x")
        if ratios:
            lines.append("")
            lines.append("published vs tuned als: " + ", ".join(ratios))
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/bench")))
