"""The quality site: every gate result of every night, and the nightly quality trend, browsable.

Great Expectations' own page per gate (`_runs/ds=<ds>/gates/<table>.html`) pulls its styles and
scripts from CDNs and links a "Home" that does not exist. This site is built from the gate records
(`gates/<table>.json`) and the quality and publish run records instead, and is self-contained: one
stylesheet under `assets/`, the trend an inline SVG, no external link. Layout, under
`<warehouse>/_data_docs/`:

- `index.html`: the nights whose last attempt of a stage failed (`<stage>.failed.json`: error and
  message, also for a night that stopped before its first gate, e.g. a landing without a
  required column), the warnings stages recorded (their run records' `warnings`, e.g. a
  catalogue the text encoder cannot read), the quality trend, then nights x tables (pass/fail,
  expectations passed), the published row counts and model version of each night;
- `nights/<ds>/<table>.html`: one gate's expectations, their arguments and observed values;
- `quality.html`: the `quality_metrics` rows as a table.

Stdlib only (the DAG's `data_docs` task runs it in the Airflow worker, no Spark).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from longtail import registry, tables
from longtail.warehouse.files import glob, read_json, write_text
from longtail.warehouse.layout import (
    FAILED_SUFFIX,
    failure_record_name,
    gate_record_name,
    gate_table,
    parse_run_record_path,
    run_record_path,
)

SITE = "_data_docs"
TREND_METRICS = ("ndcg@10", "recall@20", "aplt@10", "coverage@10", "tail_recall@20")
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222;
  padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.ok { background: #e6f4ea; } td.fail { background: #fce8e6; } td.none { color: #999; }
td.warn, p.warn { background: #fff4ce; }
a { color: #0b57d0; text-decoration: none; } a:hover { text-decoration: underline; }
code { font-size: 0.85rem; } .muted { color: #666; font-size: 0.85rem; }
nav { margin-bottom: 1rem; } svg text { font-size: 11px; font-family: system-ui, sans-serif; }
.wide { overflow-x: auto; } .wide td, .wide th { white-space: nowrap; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str, depth: int) -> str:
    up = "../" * depth
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title>"
        f"<link rel='stylesheet' href='{up}assets/style.css'></head><body>"
        f"<nav><a href='{up}index.html'>Longtail data quality</a> · "
        f"<a href='{up}quality.html'>nightly quality</a></nav>"
        f"<h1>{_e(title)}</h1>{body}</body></html>\n"
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (list, dict)):
        text = json.dumps(value, default=str)
        return text if len(text) <= 200 else text[:200] + "…"
    return str(value)


def _observed(result: Mapping[str, Any]) -> str:
    if "observed_value" in result:
        return _fmt(result["observed_value"])
    if "unexpected_count" in result:
        examples = result.get("partial_unexpected_list") or []
        return f"{result['unexpected_count']} unexpected" + (
            f", e.g. {_fmt(examples[:5])}" if examples else ""
        )
    return ""


def gate_page(ds: str, table: str, record: Mapping[str, Any]) -> str:
    """One gate's result: verdict, statistics, then every expectation."""
    ok = bool(record.get("success"))
    result = record.get("result") or {}
    stats = result.get("statistics") or {}
    body = [
        f"<p>Night <b>{_e(ds)}</b>, table <b>{_e(table)}</b>: "
        f"<b>{'passed' if ok else 'FAILED'}</b>"
        + (
            f" ({stats.get('successful_expectations')} of "
            f"{stats.get('evaluated_expectations')} expectations met)"
            if stats
            else ""
        )
        + "</p>"
    ]
    if record.get("error"):
        body.append(f"<p>Error: <code>{_e(record['error'])}</code></p>")
    rows = []
    for exp in result.get("expectations") or []:
        kwargs = {k: v for k, v in (exp.get("kwargs") or {}).items() if k != "batch_id"}
        cls = "ok" if exp.get("success") else "fail"
        rows.append(
            f"<tr><td class='{cls}'>{'✓' if exp.get('success') else '✗'}</td>"
            f"<td><code>{_e(exp.get('expectation_type'))}</code></td>"
            f"<td><code>{_e(_fmt(kwargs))}</code></td>"
            f"<td>{_e(_observed(exp.get('result') or {}))}</td></tr>"
        )
    if rows:
        body.append(
            "<table><tr><th></th><th>expectation</th><th>arguments</th><th>observed</th></tr>"
            + "".join(rows)
            + "</table>"
        )
    elif not record.get("error"):
        body.append("<p class='muted'>No expectation details were recorded.</p>")
    body.append(
        f"<p class='muted'>Source: <code>_runs/ds={_e(ds)}/gates/{_e(table)}.json</code></p>"
    )
    return _page(f"{table} · {ds}", "".join(body), depth=2)


def trend_svg(quality: Mapping[str, Mapping[str, Any]], width: int = 720, height: int = 260) -> str:
    """The nightly quality metrics as lines over the nights (all in [0, 1]); inline SVG."""
    nights = sorted(quality)
    left, right, top, bottom = 40, 150, 10, 40
    w, h = width - left - right, height - top - bottom
    if not nights:
        return "<p class='muted'>No quality_metrics yet.</p>"

    def x(i: int) -> float:
        return left + (w * i / (len(nights) - 1) if len(nights) > 1 else w / 2)

    def y(v: float) -> float:
        return top + h * (1 - max(0.0, min(1.0, v)))

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"role='img' aria-label='nightly quality metrics'>",
        f"<rect x='{left}' y='{top}' width='{w}' height='{h}' fill='none' stroke='#ccc'/>",
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f"<line x1='{left}' x2='{left + w}' y1='{y(tick):.1f}' y2='{y(tick):.1f}' "
            f"stroke='#eee'/><text x='{left - 6}' y='{y(tick) + 4:.1f}' text-anchor='end'>"
            f"{tick:g}</text>"
        )
    step = max(1, len(nights) // 8)
    for i, night in enumerate(nights):
        if i % step == 0 or i == len(nights) - 1:
            parts.append(
                f"<text x='{x(i):.1f}' y='{top + h + 16}' text-anchor='middle'>{_e(night)}</text>"
            )
    for k, (metric, colour) in enumerate(zip(TREND_METRICS, COLOURS, strict=True)):
        points = [
            (x(i), y(float(quality[n][metric])), n, float(quality[n][metric]))
            for i, n in enumerate(nights)
            if quality[n].get(metric) is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in points)
            parts.append(f"<polyline points='{path}' fill='none' stroke='{colour}'/>")
        for px, py, night, value in points:
            parts.append(
                f"<circle cx='{px:.1f}' cy='{py:.1f}' r='3' fill='{colour}'>"
                f"<title>{_e(metric)} {_e(night)}: {value:.4f}</title></circle>"
            )
        ly = top + 14 + 18 * k
        parts.append(
            f"<line x1='{left + w + 12}' x2='{left + w + 30}' y1='{ly - 4}' y2='{ly - 4}' "
            f"stroke='{colour}' stroke-width='2'/>"
            f"<text x='{left + w + 36}' y='{ly}'>{_e(metric)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def quality_page(quality: Mapping[str, Mapping[str, Any]]) -> str:
    cols = ("evaluated_run", "n_eval_users", "n_test_pairs", *TREND_METRICS)
    rows = "".join(
        f"<tr><td>{_e(n)}</td>"
        + "".join(
            f"<td>{_e(_fmt(quality[n].get(c)) if quality[n].get(c) is not None else '')}</td>"
            for c in cols
        )
        + "</tr>"
        for n in sorted(quality, reverse=True)
    )
    body = (
        trend_svg(quality)
        + "<table><tr><th>night</th>"
        + "".join(f"<th>{_e(c)}</th>" for c in cols)
        + f"</tr>{rows}</table>"
        + "<p class='muted'>From <code>quality_metrics/ds=*/</code> (run records "
        "<code>_runs/ds=*/quality.json</code>). Each night scores the newest earlier list "
        "against the pairs that arrived since.</p>"
    )
    return _page("Nightly quality", body, depth=0)


def warnings_section(warnings: Mapping[str, Sequence[tuple[str, str]]]) -> str:
    """Every night's stage warnings, newest first; nothing when there are none."""
    rows = [
        f"<tr><td class='warn'>⚠ {_e(night)}</td><td>{_e(stage)}</td><td>{_e(message)}</td></tr>"
        for night in sorted(warnings, reverse=True)
        for stage, message in warnings[night]
    ]
    if not rows:
        return ""
    return (
        "<h2>Warnings</h2><p class='warn'>Stages flagged these nights: the run went through, "
        "but what it published may be weaker than usual.</p>"
        "<table><tr><th>night</th><th>stage</th><th>warning</th></tr>"
        + "".join(rows)
        + "</table><p class='muted'>From <code>_runs/ds=&lt;night&gt;/&lt;stage&gt;.json</code>"
        " (<code>warnings</code>).</p>"
    )


def failures_section(failures: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """Every night with a failed stage, newest first: stage, error class, message, when."""
    rows = [
        f"<tr><td class='fail'>✗ {_e(night)}</td><td>{_e(f.get('stage'))}</td>"
        f"<td><code>{_e(f.get('error'))}</code></td><td>{_e(f.get('message'))}</td>"
        f"<td>{_e(f.get('failed_at', ''))}</td></tr>"
        for night in sorted(failures, reverse=True)
        for f in failures[night]
    ]
    if not rows:
        return ""
    return (
        "<h2>Failed nights</h2><p class='muted'>The last attempt of these stages failed; a failed "
        "night published nothing new (what was published before stays).</p>"
        "<table><tr><th>night</th><th>stage</th><th>error</th><th>message</th><th>at</th></tr>"
        + "".join(rows)
        + "</table><p class='muted'>From <code>_runs/ds=&lt;night&gt;/&lt;stage&gt;.failed.json"
        "</code>, removed when the stage next succeeds.</p>"
    )


def index_page(
    gates: Mapping[str, Mapping[str, Mapping[str, Any]]],
    quality: Mapping[str, Mapping[str, Any]],
    published: Mapping[str, Mapping[str, Mapping[str, Any]]],
    warnings: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    failures: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> str:
    """Failures; warnings; trend; one row per night (newest first) with each table's gate; what
    each night published."""
    warnings = warnings or {}
    failures = failures or {}
    nights = sorted(set(gates) | set(published) | set(warnings) | set(failures), reverse=True)
    seen = {t for night in gates.values() for t in night}
    order = [t for t in (*tables.INTERMEDIATE, *tables.PUBLISHED) if t in seen]
    order += sorted(seen - set(order))
    head = "".join(f"<th>{_e(t)}</th>" for t in order)
    rows = []
    for night in nights:
        cells = []
        for table in order:
            rec = gates.get(night, {}).get(table)
            if rec is None:
                cells.append("<td class='none'>–</td>")
                continue
            ok = bool(rec.get("success"))
            stats = (rec.get("result") or {}).get("statistics") or {}
            label = ("✓" if ok else "✗ failed") + (
                f" {stats.get('successful_expectations')}/{stats.get('evaluated_expectations')}"
                if stats
                else ""
            )
            href = f"nights/{_e(night)}/{_e(table)}.html"
            cells.append(f"<td class='{'ok' if ok else 'fail'}'><a href='{href}'>{label}</a></td>")
        if failures.get(night):
            stages = ", ".join(str(f.get("stage")) for f in failures[night])
            night_cell = (
                f"<td class='fail' title='failed: {_e(stages)} (listed above)'>"
                f"✗ {_e(night)} failed</td>"
            )
        elif warnings.get(night):
            night_cell = (
                f"<td class='warn' title='{len(warnings[night])} warning(s), listed above'>"
                f"⚠ {_e(night)}</td>"
            )
        else:
            night_cell = f"<td>{_e(night)}</td>"
        rows.append(f"<tr>{night_cell}{''.join(cells)}</tr>")
    pub_rows = []
    for night in sorted(published, reverse=True):
        out = published[night]
        cells = [
            f"<td>{_e(out[t].get('rows'))} row{'' if out[t].get('rows') == 1 else 's'}"
            + (f" ({_e(out[t]['model_version'])})" if out[t].get("model_version") else "")
            + "</td>"
            if t in out
            else "<td class='none'>–</td>"
            for t in tables.PUBLISHED
        ]
        pub_rows.append(f"<tr><td>{_e(night)}</td>{''.join(cells)}</tr>")
    pub_head = "".join(f"<th>{_e(t)}</th>" for t in tables.PUBLISHED)
    body = (
        failures_section(failures)
        + warnings_section(warnings)
        + "<h2>Nightly quality</h2>"
        + trend_svg(quality)
        + "<p><a href='quality.html'>the numbers</a></p>"
        + "<h2>Gates by night</h2><p class='muted'>Each cell: the table's Great Expectations "
        "gate for that night (expectations met / evaluated); a failed gate published nothing."
        "</p>"
        + f"<div class='wide'><table><tr><th>night</th>{head}</tr>{''.join(rows)}</table></div>"
        + "<h2>Published</h2><p class='muted'>Rows and model version of each published "
        "partition, from its manifest (<code>&lt;table&gt;/ds=&lt;night&gt;/_manifest.json</code>)."
        "</p>" + f"<div class='wide'><table><tr><th>night</th>{pub_head}</tr>{''.join(pub_rows)}"
        "</table></div>"
    )
    return _page("Longtail data quality", body, depth=0)


def render_site(
    gates: Mapping[str, Mapping[str, Mapping[str, Any]]],
    quality: Mapping[str, Mapping[str, Any]],
    published: Mapping[str, Mapping[str, Mapping[str, Any]]],
    warnings: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    failures: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> dict[str, str]:
    """Every file of the site, by path relative to its root (pure: records in, text out).

    gates: night -> table -> gate record; quality: night -> metrics; published: night -> table ->
    manifest summary; warnings: night -> (stage, message) pairs; failures: night -> failure
    records.
    """
    site = {
        "assets/style.css": STYLE.lstrip(),
        "index.html": index_page(gates, quality, published, warnings, failures),
        "quality.html": quality_page(quality),
    }
    for night, by_table in gates.items():
        for table, record in by_table.items():
            site[f"nights/{night}/{table}.html"] = gate_page(night, table, record)
    return site


def collect(warehouse: str) -> tuple[dict, dict, dict]:
    """Gate records, quality metrics and published manifests of every night, from `_runs/`."""
    gates: dict[str, dict[str, dict]] = {}
    for uri in glob(run_record_path(warehouse, "*", gate_record_name("*"))):
        night, name = parse_run_record_path(uri) or ("", "")
        table = gate_table(name)
        record = read_json(uri) if table else None
        if table and record is not None:
            gates.setdefault(night, {})[table] = record
    quality: dict[str, dict] = {}
    published: dict[str, dict[str, dict]] = {}
    for stage in registry.PUBLISHED_BY:
        for uri in glob(run_record_path(warehouse, "*", stage)):
            record = read_json(uri) or {}
            night = str((record.get("config") or {}).get("ds", ""))
            if not night:
                continue
            if registry.PUBLISHED_BY[stage] == tables.QUALITY_METRICS and record.get("metrics"):
                quality[night] = record["metrics"]
            for table, summary in (record.get("manifests") or {}).items():
                published.setdefault(night, {})[table] = summary
    return gates, quality, published


def collect_warnings(warehouse: str) -> dict[str, list[tuple[str, str]]]:
    """night -> (stage, message) for every warning a stage's run record holds."""
    out: dict[str, list[tuple[str, str]]] = {}
    for uri in glob(run_record_path(warehouse, "*", "*")):
        night, name = parse_run_record_path(uri) or ("", "")
        record = read_json(uri) if night and not name.endswith(FAILED_SUFFIX) else None
        if not isinstance(record, dict):
            continue
        for message in record.get("warnings") or []:
            out.setdefault(night, []).append((str(record.get("stage", name)), message))
    return out


def collect_failures(warehouse: str) -> dict[str, list[dict[str, Any]]]:
    """night -> the failure records of its stages (`_runs/ds=<night>/<stage>.failed.json`), by
    stage name."""
    out: dict[str, list[dict[str, Any]]] = {}
    for uri in glob(run_record_path(warehouse, "*", failure_record_name("*"))):
        night, name = parse_run_record_path(uri) or ("", "")
        record = read_json(uri) if night else None
        if isinstance(record, dict):
            stage = name.removesuffix(FAILED_SUFFIX)
            out.setdefault(night, []).append({"stage": stage, **record})
    return out


def build_site(warehouse: str) -> str:
    """Rebuild `<warehouse>/_data_docs/`; returns the index page's location."""
    root = f"{warehouse.rstrip('/')}/{SITE}"
    site = render_site(
        *collect(warehouse),
        warnings=collect_warnings(warehouse),
        failures=collect_failures(warehouse),
    )
    for path, text in site.items():
        write_text(f"{root}/{path}", text)
    return f"{root}/index.html"
