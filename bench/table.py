"""Markdown results tables for the README from reports/bench/*/metrics.json.

``python -m bench.table [reports/bench]`` prints, per dataset, a one-line protocol note
and the systems table; then one "published vs best peer" table (point ratio and bootstrap
interval per dataset and metric) and one cold-start table. Reports written before the intervals,
the listing-date protocol or the cold-start protocol existed still print: what they lack shows
as a dash, and their best peer is picked from their systems.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.uncertainty import CI_METRICS, PEER_EXCLUDE, best_peer, finite

COLUMNS = ("ndcg@10", "recall@20", "aplt@10", "tail_recall@20", "coverage@10")
COLD_COLUMNS = ("recall@20", "ndcg@10", "aplt@10", "coverage@10", "cold_items@20")
PUBLISHED = "published"
MISSING = "–"
INFINITY = "∞"


def _fmt(value: object) -> str:
    """Metric cell: floats to 4 dp (1 dp from 10 up), ints as they are, nothing as a dash."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    number = finite(value)
    if number is None:
        return MISSING if value is None or isinstance(value, float) else _cell(value)
    return f"{number:.4f}" if abs(number) < 10 else f"{number:.1f}"


def _cell(value: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _ratio(value: object) -> str:
    number = finite(value)
    if number is None:
        return INFINITY if value is None or value == math.inf else MISSING
    return f"{number:.2f}"


def _point_ratio(published: float | None, peer: float | None) -> str:
    """published / peer to 2 dp; infinite when only the peer is 0; a dash when undefined."""
    if published is None or peer is None or (published == 0 and peer == 0):
        return MISSING
    return INFINITY if peer == 0 else f"{published / peer:.2f}"


def _ci(ci: object) -> str:
    """'median [low, high]'; a null median/high bound after a numeric low one is +inf in JSON."""
    if not isinstance(ci, Sequence) or isinstance(ci, str) or len(ci) != 3:
        return MISSING
    if finite(ci[0]) is None:
        return MISSING
    low, mid, high = (_ratio(v) for v in ci)
    return f"{mid} [{low}, {high}]"


def load(reports: Path) -> list[dict[str, Any]]:
    """Every reports/<dataset>/metrics.json, by folder name."""
    return [json.loads(path.read_text()) for path in sorted(reports.glob("*/metrics.json"))]


def _name(data: Mapping[str, Any]) -> str:
    return _cell(data.get("dataset", "?"))


def protocol_note(data: Mapping[str, Any]) -> str:
    """One line: cutoff, eval users, held-out pairs, listing dates, items listed, tail / cold."""
    p: Mapping[str, Any] = data.get("protocol") or {}
    parts = []
    if p.get("cutoff"):
        parts.append(f"cutoff {str(p['cutoff'])[:10]}")
    for key, label in (
        ("n_eval_users", "eval users"),
        ("n_test_pairs", "held-out pairs"),
    ):
        if p.get(key) is not None:
            parts.append(f"{p[key]} {label}")
    if p.get("listing_dates"):
        parts.append(f"listing dates: {p['listing_dates']}")
    if p.get("n_items_listed") is not None:
        parts.append(f"{p['n_items_listed']} items listed")
    if p.get("n_tail_items") is not None and p.get("n_cold_items") is not None:
        parts.append(f"{p['n_tail_items']} tail / {p['n_cold_items']} cold items")
    where = ", ".join(str(p[k]) for k in ("machine", "date") if p.get(k))
    line = f"**{_name(data)}** ({', '.join(parts) or 'protocol not recorded'}"
    return line + (f"; {where})" if where else ")")


def systems_table(data: Mapping[str, Any], columns: Sequence[str] = COLUMNS) -> str:
    """Every system in report order; a skipped one shows its reason in the first metric cell."""
    lines = ["| system | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, row in (data.get("systems") or {}).items():
        if not isinstance(row, Mapping):
            continue
        if "skipped" in row:
            cells = [f"skipped: {_cell(row['skipped'])}"] + [""] * (len(columns) - 1)
        else:
            cells = [_fmt(row.get(c)) for c in columns]
        label = f"{name} (reference, not a peer)" if "reference_only" in row else name
        lines.append(f"| {_cell(label)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _peers(data: Mapping[str, Any]) -> dict[str, str]:
    recorded = data.get("best_peer")
    if isinstance(recorded, Mapping) and recorded:
        return {str(k): str(v) for k, v in recorded.items()}
    return best_peer(data.get("systems") or {})


def _ci_note(datasets: Sequence[Mapping[str, Any]]) -> str:
    protocols = []
    for data in datasets:
        cp = data.get("ci_protocol")
        if isinstance(cp, Mapping):
            level = finite(cp.get("level"))
            text = (
                f"{f'{level:.0%}' if level is not None else '?'} paired bootstrap over "
                f"{cp.get('unit', 'eval user')}s, {cp.get('draws', '?')} draws, "
                f"seed {cp.get('seed', '?')}"
            )
            if text not in protocols:
                protocols.append(text)
    excluded = ", ".join(PEER_EXCLUDE)
    note = (
        f"ratio = {PUBLISHED} / best peer, the best system other than {excluded} "
        "(the published system and its parts)"
    )
    if protocols:
        note += "; interval: " + "; ".join(protocols) + " (median [low, high])"
    return note + f"; {MISSING}: no interval in that report."


def peer_table(datasets: Sequence[Mapping[str, Any]]) -> str:
    """Per dataset and metric: published, best peer and its value, ratio, bootstrap interval."""
    lines = [
        "| dataset | metric | published | best peer | best peer value | ratio "
        "| bootstrap median [95% CI] |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for data in datasets:
        systems = data.get("systems") or {}
        published = systems.get(PUBLISHED) or {}
        peers = _peers(data)
        ci = data.get("ci") if isinstance(data.get("ci"), Mapping) else {}
        metrics = list(dict.fromkeys([*CI_METRICS, *peers, *ci]))
        for metric in metrics:
            peer = peers.get(metric)
            if peer is None:
                continue
            pub = finite(published.get(metric))
            ref = finite((systems.get(peer) or {}).get(metric))
            lines.append(
                f"| {_name(data)} | {metric} | {_fmt(pub)} | {_cell(peer)} | {_fmt(ref)} "
                f"| {_point_ratio(pub, ref)} | {_ci(ci.get(metric))} |"
            )
    return "\n".join(lines)


def _protocol_rows(
    datasets: Sequence[Mapping[str, Any]],
    block_of: Any,
    sizes: Sequence[str],
    columns: Sequence[str],
    header: str,
    empty: str,
) -> str:
    """One row per (dataset, system) of a protocol block (`block_of(report)`: protocol and
    systems), its sizes on the dataset's first row; `empty` when no report has the block."""
    lines = [header, "|---|" + "---:|" * len(sizes) + "---|" + "---:|" * len(columns)]
    n_rows = len(lines)
    for data in datasets:
        block = block_of(data)
        if not isinstance(block, Mapping) or not isinstance(block.get("systems"), Mapping):
            continue
        p = block.get("protocol") or {}
        first = [_name(data), *(_fmt(p.get(k)) for k in sizes)]
        for name, row in block["systems"].items():
            if not isinstance(row, Mapping):
                continue
            if "skipped" in row:
                values = [f"skipped: {_cell(row['skipped'])}"] + [""] * (len(columns) - 1)
            else:
                values = [_fmt(row.get(c)) for c in columns]
            lines.append("| " + " | ".join([*first, _cell(name), *values]) + " |")
            first = [""] * len(first)
    return empty if len(lines) == n_rows else "\n".join(lines)


def cold_start_table(datasets: Sequence[Mapping[str, Any]]) -> str:
    """One row per (dataset, system) of the cold-start protocol; its sizes on the first row."""
    return _protocol_rows(
        datasets,
        lambda data: data.get("cold_start"),
        ("n_items", "n_test_pairs", "n_eval_users"),
        COLD_COLUMNS,
        "| dataset | cold items | held-out pairs | eval users | system | "
        + " | ".join(COLD_COLUMNS)
        + " |",
        "_No report has the cold-start protocol yet._",
    )


AUDIENCE_COLUMNS = ("micro", "macro", "items_with_audience")


def audience_table(datasets: Sequence[Mapping[str, Any]]) -> str:
    """Audience recall of the cold items' held-out buyers, one row per (dataset, system)."""
    return _protocol_rows(
        datasets,
        lambda data: (data.get("cold_start") or {}).get("audiences"),
        ("n_items_with_buyers", "n_pairs", "audience_size"),
        AUDIENCE_COLUMNS,
        "| dataset | items with buyers | buyer pairs | audience size | system | "
        "recall (pairs) | recall (mean over items) | items with an audience |",
        "_No report has the audience protocol yet._",
    )


def table(reports: Path) -> str:
    """The README's results section: per-dataset tables, then the peer and cold-start tables."""
    datasets = load(reports)
    lines: list[str] = []
    for data in datasets:
        lines += [protocol_note(data), "", systems_table(data), ""]
    lines += [
        "**published vs best peer**",
        "",
        peer_table(datasets),
        "",
        _ci_note(datasets),
        "",
        "**cold start**",
        "",
        cold_start_table(datasets),
        "",
        "**audiences of the cold items**",
        "",
        audience_table(datasets),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    print(table(Path(args[0] if args else "reports/bench")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
