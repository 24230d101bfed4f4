"""Self-contained HTML report for the benchmark: one file, inline SVG, no scripts, no network.

Charts are drawn by hand so the nightly job needs no plotting stack and the artefact opens
anywhere (mail attachment, object-store preview) exactly as it was written.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
N_BINS = 50

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
p.note { color: #555; font-size: 0.9rem; }
svg { display: block; margin: 0.5rem 0; }
svg text { font-family: inherit; font-size: 12px; fill: #222; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: object) -> float | None:
    """Finite float or None; None, NaN, infinities, bools and non-numbers are 'no value'."""
    if value is None or isinstance(value, bool | np.bool_):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER or metric.startswith("gini") or metric.endswith(("_s", "_mb"))


def _fmt(metric: str, value: object) -> str:
    """Cell text: integers with separators, timings/memory to 0.1, ranking metrics to 4 dp."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_):
        return f"{int(value):,}"
    number = _num(value)
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
    values = [v for v in (_num(row.get(metric)) for row in systems.values()) if v is not None]
    if len(values) < 2:
        return None
    return min(values) if _lower_is_better(metric) else max(values)


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def _protocol_table(protocol: Mapping[str, object]) -> str:
    if not protocol:
        return f"<p>{MISSING}</p>"
    rows = "".join(
        f"<tr><th>{_esc(key)}</th><td>{_esc(_fmt(str(key), value))}</td></tr>"
        for key, value in protocol.items()
    )
    return f'<table class="protocol"><tbody>{rows}</tbody></table>'


def _systems_table(systems: Mapping[str, Mapping[str, object]]) -> str:
    if not systems:
        return f"<p>No systems were evaluated {MISSING} nothing to compare.</p>"
    columns = _columns(systems)
    best = {metric: _best(systems, metric) for metric in columns}
    head = "".join(f"<th>{_esc(m)}</th>" for m in ["system", *columns])
    body = []
    for name, row in systems.items():
        cells = [f"<td>{_esc(name)}</td>"]
        for metric in columns:
            value = row.get(metric)
            text = _esc(_fmt(metric, value))
            number, target = _num(value), best[metric]
            if number is not None and target is not None and math.isclose(number, target):
                text = f"<b>{text}</b>"
            cells.append(f"<td>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    lower = ", ".join(m for m in columns if _lower_is_better(m)) or "none"
    return (
        f'<table class="systems"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
        f'<p class="note">Bold: best value in the column (higher is better, except for '
        f"{_esc(lower)}). {MISSING}: not measured or undefined (e.g. no cold items held out).</p>"
    )


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

    def axes(self, x_label: str, y_label: str) -> list[str]:
        out = [
            f'<rect x="{self.left}" y="{self.top}" width="{self.right - self.left}" '
            f'height="{self.bottom - self.top}" fill="none" stroke="#999"/>'
        ]
        for tick in _nice_ticks(self.x0, self.x1):
            x = self.px(tick)
            out.append(
                f'<line x1="{x:.1f}" y1="{self.bottom}" x2="{x:.1f}" y2="{self.bottom + 5}" '
                f'stroke="#999"/><text x="{x:.1f}" y="{self.bottom + 18}" '
                f'text-anchor="middle">{_esc(_tick_label(tick))}</text>'
            )
        for tick in _nice_ticks(self.y0, self.y1):
            y = self.py(tick)
            out.append(
                f'<line x1="{self.left}" y1="{y:.1f}" x2="{self.right}" y2="{y:.1f}" '
                f'stroke="#eee"/><text x="{self.left - 8}" y="{y + 4:.1f}" '
                f'text-anchor="end">{_esc(_tick_label(tick))}</text>'
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


def _binned_curve(curve: pd.DataFrame, n_bins: int = N_BINS) -> tuple[np.ndarray, np.ndarray]:
    """(bin centre rank, summed rec_count) over equal-width bins of popularity rank.

    Per-item exposure is far too spiky to read; summing over ~50 rank bins keeps the shape
    (head spike, long flat tail) while staying comparable across systems on one catalogue.
    """
    ordered = curve.sort_values("popularity_rank", kind="stable")
    ranks = ordered["popularity_rank"].to_numpy(dtype=np.float64)
    counts = ordered["rec_count"].to_numpy(dtype=np.float64)
    if len(ranks) == 0:
        return np.empty(0), np.empty(0)
    edges = np.unique(np.linspace(0, len(ranks), min(n_bins, len(ranks)) + 1).round().astype(int))
    starts, ends = edges[:-1], edges[1:]
    sums = np.add.reduceat(counts, starts)
    centres = (ranks[starts] + ranks[ends - 1]) / 2.0
    return centres, sums


def _long_tail_svg(curves: Mapping[str, pd.DataFrame], colours: Mapping[str, str]) -> str:
    title = "Long-tail curve: how often each system recommends items, by training popularity"
    binned = {name: _binned_curve(df) for name, df in curves.items() if len(df)}
    if not binned:
        return _svg(title, [f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle">no data</text>'])
    x_hi = max(float(df["popularity_rank"].max()) for df in curves.values() if len(df))
    y_hi = max(float(y.max()) for _, y in binned.values())
    plot = _Plot((0.0, max(x_hi, 1.0)), (0.0, _nice_max(y_hi)))
    body = plot.axes(
        "item popularity rank in training (1 = most popular), 50 equal bins",
        "top-10 recommendations per bin",
    )
    for name, (xs, ys) in binned.items():
        points = " ".join(f"{plot.px(x):.1f},{plot.py(y):.1f}" for x, y in zip(xs, ys, strict=True))
        body.append(
            f'<polyline points="{points}" fill="none" stroke="{_esc(colours[name])}" '
            f'stroke-width="2" stroke-linejoin="round"><title>{_esc(name)}</title></polyline>'
        )
    body += _legend([(name, colours[name], False) for name in binned])
    return _svg(title, body)


def _tradeoff_lines(tradeoff: Sequence[Mapping[str, object]]) -> dict[str, list[tuple[float, ...]]]:
    """system -> [(tail_target, aplt, ndcg)] sorted by target, dropping points without numbers."""
    lines: dict[str, list[tuple[float, ...]]] = {}
    for row in tradeoff:
        x, y = _num(row.get("aplt@10")), _num(row.get("ndcg@10"))
        if x is None or y is None:
            continue
        target = _num(row.get("tail_target"))
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
        if (x := _num(row.get("aplt@10"))) is not None
        and (y := _num(row.get("ndcg@10"))) is not None
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
    """Write the benchmark as one self-contained HTML page (table, long-tail curve, scatter).

    ``metrics`` holds "dataset", "protocol", "systems" and optionally "tradeoff"; ``curves`` maps
    a system name to its ``metrics.popularity_curve`` frame. All text is HTML-escaped, since
    system and dataset names come from configuration.
    """
    dataset = str(metrics.get("dataset", "unknown dataset"))
    protocol: Mapping[str, object] = metrics.get("protocol") or {}
    systems: Mapping[str, Mapping[str, object]] = metrics.get("systems") or {}
    tradeoff: Sequence[Mapping[str, object]] = metrics.get("tradeoff") or []

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
{_systems_table(systems)}
<h2>Long-tail curve</h2>
<p class="note">Items ordered by training popularity (left = head); each line shows how many
top-10 slots a system gives to each popularity bin. A flatter line reaches further into the
tail.</p>
{_long_tail_svg(curves, colours)}
<h2>Accuracy vs tail share</h2>
<p class="note">Up is more accurate, right gives more slots to tail items.</p>
{_scatter_svg(systems, tradeoff, colours)}
</body>
</html>
"""
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
