"""Self-contained HTML report for the benchmark: one file, inline SVG, no scripts, no network.

Charts are drawn by hand so the nightly job needs no plotting stack and the artefact opens
anywhere (mail attachment, object-store preview) exactly as it was written. Reports written
before the confidence intervals, tuning blocks and cold-start protocol existed still render:
every section but the systems table is optional.
"""

from __future__ import annotations

import contextlib
import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.uncertainty import best_peer as _best_peer_of
from bench.uncertainty import finite

# Known metrics first, in reading order; anything else a system reports follows.
METRIC_ORDER = (
    "ndcg@10",
    "recall@20",
    "aplt@10",
    "tail_recall@20",
    "cold_item_recall@20",
    "coverage@10",
    "gini@10",
    "novelty@10",
    "fit_s",
    "score_s",
    "peak_mem_mb",
)
LOWER_IS_BETTER = frozenset({"gini@10", "fit_s", "score_s", "peak_mem_mb"})
PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
)
MISSING = "\u2013"  # en dash for None / NaN
INFINITY = "\u221e"
N_CURVE_POINTS = 400
PUBLISHED = "published"

_W, _H = 760, 420
_LEFT, _RIGHT, _TOP, _BOTTOM = 78, 190, 24, 58

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #222; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f3f3f3; }
table.protocol td, table.protocol th { text-align: left; }
table.tuning td:nth-child(2) { text-align: left; }
tr.skipped td { color: #777; font-style: italic; }
tr.skipped td.reason { text-align: left; }
tr.vs-peer td { background: #f7f7ff; border-top: 2px solid #999; }
td span.peer { display: block; color: #555; font-size: 0.8rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 0.4rem; }
tr.best td { font-weight: bold; }
details { margin: 0.4rem 0 1rem; } summary { cursor: pointer; color: #333; }
p.note { color: #555; font-size: 0.9rem; }
svg { display: block; margin: 0.5rem 0; }
svg text { font-family: inherit; font-size: 12px; fill: #222; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER or metric.startswith("gini") or metric.endswith(("_s", "_mb"))


def _fmt(metric: str, value: object) -> str:
    """Cell text: integers with separators, timings/memory to 0.1, ranking metrics to 4 dp."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return f"{int(value):,}"
    number = finite(value)
    if number is None:
        return MISSING if value is None or isinstance(value, float | np.floating) else str(value)
    if metric.endswith(("_s", "_mb")):
        return f"{number:,.1f}" if abs(number) >= 10 else f"{number:.2f}"
    return f"{number:.4f}"


def _columns(systems: Mapping[str, Mapping[str, object]]) -> list[str]:
    seen = dict.fromkeys(name for row in systems.values() for name in row)
    return [m for m in METRIC_ORDER if m in seen] + [m for m in seen if m not in METRIC_ORDER]


def _best(systems: Mapping[str, Mapping[str, object]], metric: str) -> float | None:
    """Best value of a column, or None when fewer than two systems have a number to compare."""
    values = [v for v in (finite(row.get(metric)) for row in systems.values()) if v is not None]
    if len(values) < 2:
        return None
    return min(values) if _lower_is_better(metric) else max(values)


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

# Shown in their own section, not as a dict dump in the protocol table.
_PROTOCOL_ELSEWHERE = frozenset({"als_tuning"})


def _is_skipped(row: object) -> bool:
    return isinstance(row, Mapping) and "skipped" in row


def _measured(systems: Mapping[str, Mapping[str, object]]) -> dict[str, Mapping[str, object]]:
    return {name: row for name, row in systems.items() if not _is_skipped(row)}


def _protocol_value(key: str, value: object) -> str:
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_fmt(str(k), v)}" for k, v in value.items()) or MISSING
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(key, v) for v in value) or MISSING
    return _fmt(key, value)


def _protocol_table(protocol: Mapping[str, object]) -> str:
    items = [(k, v) for k, v in protocol.items() if k not in _PROTOCOL_ELSEWHERE]
    if not items:
        return f"<p>{MISSING}</p>"
    rows = "".join(
        f"<tr><th>{_esc(key)}</th><td>{_esc(_protocol_value(str(key), value))}</td></tr>"
        for key, value in items
    )
    return f'<table class="protocol"><tbody>{rows}</tbody></table>'


def _ci_bound(value: object) -> str:
    """A ratio to 2 dp; +inf, or None standing for it (JSON has no inf), as the infinity sign."""
    if value is None:
        return INFINITY
    number = finite(value)
    if number is None:
        return INFINITY if value == math.inf else MISSING
    return f"{number:.2f}"


def _ci_text(ci: object) -> str | None:
    """'median [low, high]', or None when there is no usable interval.

    JSON writers turn +inf into null, so a missing median or high bound after a numeric low bound
    is read as +inf (the peer scored 0 in enough draws).
    """
    if not isinstance(ci, Sequence) or isinstance(ci, str) or len(ci) != 3:
        return None
    if finite(ci[0]) is None:
        return None
    low, mid, high = (_ci_bound(v) for v in ci)
    return f"{mid} [{low}, {high}]"


def _peers(metrics: Mapping[str, Any]) -> dict[str, str]:
    """metric -> best peer: as recorded, else picked from the systems (old reports)."""
    recorded = metrics.get("best_peer")
    if isinstance(recorded, Mapping) and recorded:
        return {str(k): str(v) for k, v in recorded.items()}
    return _best_peer_of(metrics.get("systems") or {})


def _vs_peer_cell(
    metric: str, systems: Mapping[str, Mapping[str, object]], peer: str | None, ci: object
) -> str:
    if peer is None:
        return "<td></td>"
    main = _ci_text(ci)
    if main is None:
        pub = finite((systems.get(PUBLISHED) or {}).get(metric))
        ref = finite((systems.get(peer) or {}).get(metric))
        if pub is None or ref is None or (pub == 0 and ref == 0):
            main = MISSING
        else:
            main = (INFINITY if ref == 0 else f"{pub / ref:.2f}") + " (no CI)"
    return f'<td>{_esc(main)}<span class="peer">vs {_esc(peer)}</span></td>'


def _systems_table(
    systems: Mapping[str, Mapping[str, object]],
    peers: Mapping[str, str] | None = None,
    ci: Mapping[str, object] | None = None,
    ci_protocol: Mapping[str, object] | None = None,
) -> str:
    measured = _measured(systems)
    if not systems:
        return f"<p>No systems were evaluated {MISSING} nothing to compare.</p>"
    columns = _columns(measured) if measured else ["ndcg@10"]
    best = {metric: _best(measured, metric) for metric in columns}
    head = "".join(f"<th>{_esc(m)}</th>" for m in ["system", *columns])
    body = []
    for name, row in systems.items():
        if _is_skipped(row):
            body.append(
                f'<tr class="skipped"><td>{_esc(name)}</td><td class="reason" '
                f'colspan="{len(columns)}">skipped: {_esc(row.get("skipped"))}</td></tr>'
            )
            continue
        label = name
        if isinstance(row, Mapping) and "reference_only" in row:
            label = f"{name} ({row['reference_only']})"
        cells = [f"<td>{_esc(label)}</td>"]
        for metric in columns:
            value = row.get(metric)
            text = _esc(_fmt(metric, value))
            number, target = finite(value), best[metric]
            if number is not None and target is not None and math.isclose(number, target):
                text = f"<b>{text}</b>"
            cells.append(f"<td>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    peers = {m: p for m, p in (peers or {}).items() if m in columns}
    note_ci = ""
    if PUBLISHED in measured and peers:
        ci = ci or {}
        cells = "".join(_vs_peer_cell(m, measured, peers.get(m), ci.get(m)) for m in columns)
        body.append(f'<tr class="vs-peer"><td>{PUBLISHED} / best peer</td>{cells}</tr>')
        cp = ci_protocol or {}
        level = finite(cp.get("level"))
        note_ci = (
            f" Last row: {PUBLISHED} divided by the best peer on that metric (the best system "
            f"other than {PUBLISHED} and its parts content, cooccurrence and fusion); with a "
            f"confidence interval it reads median [low, high] of a "
            f"{_esc(f'{level:.0%}' if level is not None else '95%')} paired bootstrap over "
            f"{_esc(cp.get('unit', 'eval user'))}s ({_esc(_fmt('draws', cp.get('draws')))} draws"
            f", seed {_esc(_fmt('seed', cp.get('seed')))}); {INFINITY}: the peer scored 0 in "
            "enough draws. Above 1 favours published."
        )
    lower = ", ".join(m for m in columns if _lower_is_better(m)) or "none"
    return (
        f'<table class="systems"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
        f'<p class="note">Bold: best value in the column (higher is better, except for '
        f"{_esc(lower)}). {MISSING}: not measured or undefined (e.g. no cold items held out)."
        f"{note_ci}</p>"
    )


def _tuning_blocks(metrics: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """system -> tuning block; an old report's protocol.als_tuning becomes the "als" block."""
    tuning = metrics.get("tuning")
    blocks = dict(tuning) if isinstance(tuning, Mapping) else {}
    old = (metrics.get("protocol") or {}).get("als_tuning")
    if isinstance(old, Mapping) and "als" not in blocks:
        blocks["als"] = old
    return {str(k): v for k, v in blocks.items() if isinstance(v, Mapping)}


def _yes_no(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    return MISSING


def _param(value: object) -> str:
    """A hyper-parameter value as written in a grid: 0.01, 10, 128 (not 0.0100, 10.0000)."""
    if isinstance(value, float | np.floating) and not isinstance(value, bool):
        return f"{float(value):g}"
    return MISSING if value is None else str(value)


def _grid(block: Mapping[str, Any]) -> dict[str, list[object]]:
    """param -> values tried: the recorded grid, else the distinct values of the trials."""
    grid = block.get("grid")
    if isinstance(grid, Mapping) and grid:
        return {str(k): list(v) if isinstance(v, list | tuple) else [v] for k, v in grid.items()}
    best = block.get("best") if isinstance(block.get("best"), Mapping) else {}
    trials = [t for t in block.get("trials") or [] if isinstance(t, Mapping)]
    out: dict[str, list[object]] = {}
    for param in best:
        values = list(dict.fromkeys(t[param] for t in trials if param in t))
        with contextlib.suppress(TypeError):  # mixed types keep the order they were tried in
            values.sort()  # type: ignore[call-arg]
        out[str(param)] = values
    return out


def _tuning_table(name: str, block: Mapping[str, Any]) -> str:
    best = block.get("best") if isinstance(block.get("best"), Mapping) else {}
    grid = _grid(block)
    at_bound = block.get("at_bound")
    bound = set(map(str, at_bound)) if isinstance(at_bound, list | tuple) else None
    params = list(dict.fromkeys([*grid, *map(str, best)]))
    rows = []
    for param in params:
        tried = ", ".join(_param(v) for v in grid.get(param, [])) or MISSING
        flag = MISSING if bound is None else ("yes" if param in bound else "no")
        rows.append(
            f"<tr><td>{_esc(param)}</td><td>{_esc(tried)}</td>"
            f"<td>{_esc(_param(best.get(param)))}</td><td>{flag}</td></tr>"
        )
    trials = [t for t in block.get("trials") or [] if isinstance(t, Mapping)]
    evaluations = block.get("evaluations", len(trials) if trials else None)
    facts = [
        f"evaluations: {_fmt('evaluations', evaluations)}",
        f"seconds: {_fmt('tuning_s', block.get('seconds'))}",
        f"best on the edge of the grid: {_yes_no(block.get('best_on_edge'))}",
    ]
    if block.get("validation_cutoff"):
        facts.append(f"validation cutoff: {_fmt('cutoff', block['validation_cutoff'])}")
    out = [
        f"<h3>{_esc(name)}</h3>",
        f'<p class="note">{_esc("; ".join(facts))}</p>',
        '<table class="tuning"><thead><tr><th>parameter</th><th>values tried</th><th>best</th>'
        f"<th>best at a grid bound</th></tr></thead><tbody>{''.join(rows)}</tbody></table>",
    ]
    if trials:
        out.append(_trials_details(trials, params, best))
    return "".join(out)


def _trials_details(
    trials: Sequence[Mapping[str, Any]], params: Sequence[str], best: Mapping[str, Any]
) -> str:
    scores = list(dict.fromkeys(k for t in trials for k in t if k not in params))
    key = scores[0] if scores else None

    def order(trial: Mapping[str, Any]) -> float:
        value = finite(trial.get(key)) if key else None
        return -value if value is not None else math.inf

    ranked = sorted(trials, key=order) if key else list(trials)
    head = "".join(f"<th>{_esc(c)}</th>" for c in [*params, *scores])
    body = []
    for trial in ranked:
        cells = "".join(f"<td>{_esc(_param(trial.get(c)))}</td>" for c in params) + "".join(
            f"<td>{_esc(_fmt(c, trial.get(c)))}</td>" for c in scores
        )
        is_best = bool(best) and all(trial.get(p) == v for p, v in best.items())
        css = ' class="best"' if is_best else ""
        body.append(f"<tr{css}>{cells}</tr>")
    return (
        f"<details><summary>all {len(trials)} trials"
        f"{f', best {_esc(key)} first' if key else ''}</summary>"
        f'<table class="trials"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></details>"
    )


def _tuning_section(metrics: Mapping[str, Any]) -> str:
    blocks = _tuning_blocks(metrics)
    if not blocks:
        return f"<p>{MISSING} no tuning recorded.</p>"
    return "".join(_tuning_table(name, block) for name, block in blocks.items())


def _cold_start_section(cold: object) -> str:
    if not isinstance(cold, Mapping) or not cold.get("systems"):
        return f"<p>{MISSING} no cold-start protocol in this report.</p>"
    protocol = cold.get("protocol") or {}
    systems = {str(k): v for k, v in cold["systems"].items() if isinstance(v, Mapping)}
    out = _protocol_table(protocol) + _systems_table(systems)
    audiences = cold.get("audiences")
    if isinstance(audiences, Mapping) and isinstance(audiences.get("systems"), Mapping):
        out += "<h3>Audiences of the cold items (item_audiences)</h3>"
        out += _protocol_table(audiences.get("protocol") or {})
        out += _systems_table(
            {str(k): v for k, v in audiences["systems"].items() if isinstance(v, Mapping)}
        )
    return out


# --------------------------------------------------------------------------------------------
# SVG primitives
# --------------------------------------------------------------------------------------------


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values (1, 2, 5 x 10^k steps) covering [lo, hi]."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / n
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = start
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _nice_max(hi: float) -> float:
    """Upper axis bound: a nice tick a little above hi, so the top point and its label fit."""
    if hi <= 0:
        return 1.0
    ticks = _nice_ticks(0.0, hi)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else hi
    return math.ceil(hi * 1.08 / step - 1e-9) * step


def _tick_label(value: float) -> str:
    if value == int(value) and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.3g}"


class _Plot:
    """Linear data -> pixel mapping plus axes for one chart."""

    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float]) -> None:
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        self.left, self.right = _LEFT, _W - _RIGHT
        self.top, self.bottom = _TOP, _H - _BOTTOM

    def px(self, x: float) -> float:
        span = self.x1 - self.x0
        frac = 0.5 if span <= 0 else (x - self.x0) / span
        return self.left + frac * (self.right - self.left)

    def py(self, y: float) -> float:
        span = self.y1 - self.y0
        frac = 0.5 if span <= 0 else (y - self.y0) / span
        return self.bottom - frac * (self.bottom - self.top)

    def axes(
        self,
        x_label: str,
        y_label: str,
        x_fmt: Callable[[float], str] = _tick_label,
        y_fmt: Callable[[float], str] = _tick_label,
    ) -> list[str]:
        out = [
            f'<rect x="{self.left}" y="{self.top}" width="{self.right - self.left}" '
            f'height="{self.bottom - self.top}" fill="none" stroke="#999"/>'
        ]
        for tick in _nice_ticks(self.x0, self.x1):
            x = self.px(tick)
            out.append(
                f'<line x1="{x:.1f}" y1="{self.bottom}" x2="{x:.1f}" y2="{self.bottom + 5}" '
                f'stroke="#999"/><text x="{x:.1f}" y="{self.bottom + 18}" '
                f'text-anchor="middle">{_esc(x_fmt(tick))}</text>'
            )
        for tick in _nice_ticks(self.y0, self.y1):
            y = self.py(tick)
            out.append(
                f'<line x1="{self.left}" y1="{y:.1f}" x2="{self.right}" y2="{y:.1f}" '
                f'stroke="#eee"/><text x="{self.left - 8}" y="{y + 4:.1f}" '
                f'text-anchor="end">{_esc(y_fmt(tick))}</text>'
            )
        mid_x = (self.left + self.right) / 2
        mid_y = (self.top + self.bottom) / 2
        out.append(
            f'<text x="{mid_x:.1f}" y="{_H - 14}" text-anchor="middle">{_esc(x_label)}</text>'
            f'<text x="18" y="{mid_y:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 18 {mid_y:.1f})">{_esc(y_label)}</text>'
        )
        return out


def _legend(entries: Sequence[tuple[str, str, bool]]) -> list[str]:
    """Legend in the right margin; entries are (label, colour, dashed)."""
    out = []
    x = _W - _RIGHT + 16
    for i, (label, colour, dashed) in enumerate(entries):
        y = _TOP + 10 + 20 * i
        dash = ' stroke-dasharray="5 3"' if dashed else ""
        # The margin holds ~24 characters; the full name stays available as a tooltip.
        short = label if len(label) <= 24 else label[:23] + "\u2026"
        out.append(
            f'<line x1="{x}" y1="{y}" x2="{x + 22}" y2="{y}" stroke="{_esc(colour)}" '
            f'stroke-width="2.5"{dash}/><text x="{x + 28}" y="{y + 4}">{_esc(short)}'
            f"<title>{_esc(label)}</title></text>"
        )
    return out


def _svg(title: str, body: Iterable[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
        f'viewBox="0 0 {_W} {_H}" role="img" aria-label="{_esc(title)}">'
        f"<title>{_esc(title)}</title>{''.join(body)}</svg>"
    )


def _colours(names: Iterable[str]) -> dict[str, str]:
    ordered = list(dict.fromkeys(names))
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(ordered)}


# --------------------------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------------------------


def _cumulative(curve: pd.DataFrame, n_points: int = N_CURVE_POINTS) -> tuple[np.ndarray, ...]:
    """(catalogue share, cumulative share of top-k slots) from (0, 0), at most n_points + 1 points.

    Items are taken most popular first (``popularity_rank``). The curve is monotone, so reading it
    at evenly spaced catalogue shares loses nothing a reader could see; empty when nothing was
    recommended.
    """
    ordered = curve.sort_values("popularity_rank", kind="stable")
    counts = ordered["rec_count"].to_numpy(dtype=np.float64)
    total = counts.sum()
    n = len(counts)
    if n == 0 or not total > 0:
        return np.empty(0), np.empty(0)
    cum = np.concatenate([[0.0], np.cumsum(counts) / total])
    at = np.unique(np.linspace(0, n, min(n, n_points) + 1).round().astype(np.int64))
    return at / n, cum[at]


def _train_cumulative(curve: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    frame = curve.drop(columns="rec_count").rename(columns={"train_count": "rec_count"})
    return _cumulative(frame)


def _n_head(curves: Mapping[str, pd.DataFrame], protocol: Mapping[str, object]) -> int | None:
    """Number of head items: from a curve's is_head, else the protocol's n_head_items."""
    for curve in curves.values():
        if len(curve) and "is_head" in curve.columns:
            return int(curve["is_head"].astype(bool).sum())
    n_head = finite(protocol.get("n_head_items"))
    return None if n_head is None else int(n_head)


def _tail_share(curve: pd.DataFrame, n_head: int) -> float | None:
    """Share of all top-k slots that go to items after the first n_head by popularity."""
    counts = curve.sort_values("popularity_rank", kind="stable")["rec_count"].to_numpy(np.float64)
    total = counts.sum()
    return float(counts[n_head:].sum() / total) if total > 0 else None


def _percent(value: float) -> str:
    return f"{value:.0%}"


def _polyline(plot: _Plot, xs: Iterable[float], ys: Iterable[float], attrs: str, title: str) -> str:
    coords = " ".join(f"{plot.px(x):.1f},{plot.py(y):.1f}" for x, y in zip(xs, ys, strict=True))
    return (
        f'<polyline points="{coords}" fill="none" {attrs}><title>{_esc(title)}</title></polyline>'
    )


def _long_tail(
    curves: Mapping[str, pd.DataFrame],
    colours: Mapping[str, str],
    protocol: Mapping[str, object] | None = None,
) -> str:
    """The long-tail chart plus a line giving each system's share of slots on tail items."""
    title = (
        "Long-tail curve: cumulative share of top-10 recommendations over the catalogue, "
        "items sorted by training popularity"
    )
    lines = {name: _cumulative(df) for name, df in curves.items() if len(df)}
    lines = {name: xy for name, xy in lines.items() if len(xy[0])}
    if not lines:
        return _svg(title, [f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle">no data</text>'])
    plot = _Plot((0.0, 1.0), (0.0, 1.0))
    body = plot.axes(
        "share of catalogue, most popular items first",
        "cumulative share of top-10 slots",
        x_fmt=_percent,
        y_fmt=_percent,
    )
    reference = next(df for df in curves.values() if len(df))
    n_head = _n_head(curves, protocol or {})
    head = None if n_head is None else n_head / len(reference)
    if head is not None and 0.0 < head < 1.0:
        # Light tint over the tail, drawn first so grid, reference lines and systems stay on top.
        x = plot.px(head)
        body.append(
            f'<rect x="{x:.1f}" y="{plot.top}" width="{plot.right - x:.1f}" '
            f'height="{plot.bottom - plot.top}" fill="#000" fill-opacity="0.045"/>'
            f'<line x1="{x:.1f}" y1="{plot.top}" x2="{x:.1f}" y2="{plot.bottom}" stroke="#888" '
            f'stroke-width="1.5"/><text x="{x - 6:.1f}" y="{plot.bottom - 8}" '
            f'text-anchor="end">head ({_percent(head)} of items)</text>'
            f'<text x="{x + 6:.1f}" y="{plot.bottom - 8}">tail</text>'
        )
    legend: list[tuple[str, str, bool]] = [("equal exposure", "#bbb", True)]
    diagonal = 'stroke="#bbb" stroke-width="1.5" stroke-dasharray="2 4"'
    body.append(_polyline(plot, [0.0, 1.0], [0.0, 1.0], diagonal, "equal exposure for every item"))
    tx, ty = _train_cumulative(reference)
    if len(tx):
        attrs = 'stroke="#555" stroke-width="1.5" stroke-dasharray="6 3"'
        body.append(_polyline(plot, tx, ty, attrs, "training interactions"))
        legend.append(("training interactions", "#555", True))
    shares = []
    for i, (name, (xs, ys)) in enumerate(lines.items()):
        colour = colours.get(name, "#555")
        dashed = i >= len(PALETTE)  # a second round of colours is told apart by dashes
        share = None if n_head is None else _tail_share(curves[name], n_head)
        if share is not None:
            shares.append(f"{name} {share:.1%}")
        attrs = f'stroke="{_esc(colour)}" stroke-width="2" stroke-linejoin="round"'
        if dashed:
            attrs += ' stroke-dasharray="8 3"'
        label = name if share is None else f"{name}, {_percent(share)} of slots on tail"
        body.append(_polyline(plot, xs, ys, attrs, label))
        legend.append((name, colour, dashed))
    body += _legend(legend)
    chart = _svg(title, body)
    if shares:
        chart += (
            '<p class="note">Share of all top-10 slots on tail items (every list pooled): '
            f"{_esc(', '.join(shares))}.</p>"
        )
    return chart


def _tradeoff_lines(tradeoff: Sequence[Mapping[str, object]]) -> dict[str, list[tuple[float, ...]]]:
    """system -> [(tail_target, aplt, ndcg)] sorted by target, dropping points without numbers."""
    lines: dict[str, list[tuple[float, ...]]] = {}
    for row in tradeoff:
        x, y = finite(row.get("aplt@10")), finite(row.get("ndcg@10"))
        if x is None or y is None:
            continue
        target = finite(row.get("tail_target"))
        point = (math.nan if target is None else target, x, y)
        lines.setdefault(str(row.get("system", "")), []).append(point)
    for points in lines.values():
        points.sort(key=lambda p: (math.isnan(p[0]), p[0]))
    return lines


def _scatter_svg(
    systems: Mapping[str, Mapping[str, object]],
    tradeoff: Sequence[Mapping[str, object]],
    colours: Mapping[str, str],
) -> str:
    title = "Accuracy vs tail share: NDCG@10 against APLT@10 per system"
    points = {
        name: (x, y)
        for name, row in systems.items()
        if (x := finite(row.get("aplt@10"))) is not None
        and (y := finite(row.get("ndcg@10"))) is not None
    }
    lines = _tradeoff_lines(tradeoff)
    xs = [p[0] for p in points.values()] + [p[1] for line in lines.values() for p in line]
    ys = [p[1] for p in points.values()] + [p[2] for line in lines.values() for p in line]
    if not xs:
        return _svg(title, [f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle">no data</text>'])
    plot = _Plot((0.0, _nice_max(max(xs))), (0.0, _nice_max(max(ys))))
    body = plot.axes("APLT@10 (share of top-10 slots given to tail items)", "NDCG@10")
    legend: list[tuple[str, str, bool]] = []
    for name, line in lines.items():
        colour = colours.get(name, "#555")
        coords = " ".join(f"{plot.px(x):.1f},{plot.py(y):.1f}" for _, x, y in line)
        body.append(
            f'<polyline points="{coords}" fill="none" stroke="{_esc(colour)}" '
            f'stroke-width="1.5" stroke-dasharray="5 3"/>'
        )
        for target, x, y in line:
            label = "" if math.isnan(target) else f"tail target {target:g}: "
            body.append(
                f'<circle cx="{plot.px(x):.1f}" cy="{plot.py(y):.1f}" r="3" fill="{_esc(colour)}">'
                f"<title>{_esc(f'{name} {label}APLT {x:.4f}, NDCG {y:.4f}')}</title></circle>"
            )
        legend.append((f"trade-off: {name}", colour, True))
    for name, (x, y) in points.items():
        cx, cy = plot.px(x), plot.py(y)
        colour = colours.get(name, "#555")
        body.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="{_esc(colour)}" stroke="#fff">'
            f"<title>{_esc(f'{name}: APLT {x:.4f}, NDCG {y:.4f}')}</title></circle>"
            f'<text x="{cx + 9:.1f}" y="{cy - 8:.1f}">{_esc(name)}</text>'
        )
    body += _legend(legend)
    return _svg(title, body)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def write_report(
    metrics: Mapping[str, Any],
    curves: Mapping[str, pd.DataFrame],
    out_html: str | PathLike[str],
) -> None:
    """Write the benchmark as one self-contained HTML page.

    Sections: protocol; systems (skipped ones with their reason, plus a row "published / best
    peer" with the bootstrap interval of ``ci``); hyper-parameter tuning per tuned system; the
    long-tail curve; the cold-start protocol; accuracy vs tail share. ``metrics`` is the
    metrics.json dict ("dataset", "protocol", "systems"; optionally "best_peer", "ci",
    "ci_protocol", "tuning", "cold_start", "tradeoff"); ``curves`` maps a system name to its
    ``metrics.popularity_curve`` frame. All text is HTML-escaped, since system and dataset names
    come from configuration.
    """
    dataset = str(metrics.get("dataset", "unknown dataset"))
    protocol: Mapping[str, object] = metrics.get("protocol") or {}
    systems: Mapping[str, Mapping[str, object]] = metrics.get("systems") or {}
    tradeoff: Sequence[Mapping[str, object]] = metrics.get("tradeoff") or []
    ci = metrics.get("ci") if isinstance(metrics.get("ci"), Mapping) else {}
    ci_protocol = (
        metrics.get("ci_protocol") if isinstance(metrics.get("ci_protocol"), Mapping) else {}
    )

    tradeoff_names = [str(row.get("system", "")) for row in tradeoff]
    colours = _colours([*map(str, systems), *map(str, curves), *tradeoff_names])
    title = f"Longtail benchmark: {dataset}"
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{_esc(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{_esc(title)}</h1>
<h2>Protocol</h2>
{_protocol_table(protocol)}
<h2>Systems</h2>
{_systems_table(systems, _peers(metrics), ci, ci_protocol)}
<h2>Hyper-parameter tuning</h2>
<p class="note">Tuned on a validation window carved from the training period. A best value at a
bound of its grid means a wider grid might do better.</p>
{_tuning_section(metrics)}
<h2>Long-tail curve</h2>
<p class="note">Items sorted by training popularity, most popular first (x); each line climbs by
the share of all top-10 slots a system gives to those items (y). A line that hugs the top-left
corner spends its slots on a few popular items; one close to the dotted diagonal spreads them
evenly over the catalogue. Where a line crosses into the shaded tail, 100% minus its height is
the share of slots given to tail items.</p>
{_long_tail(curves, colours, protocol)}
<h2>Cold start</h2>
<p class="note">Held-out interactions with items that had no training interactions.</p>
{_cold_start_section(metrics.get("cold_start"))}
<h2>Accuracy vs tail share</h2>
<p class="note">Up is more accurate, right gives more slots to tail items.</p>
{_scatter_svg(_measured(systems), tradeoff, colours)}
</body>
</html>
"""
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
