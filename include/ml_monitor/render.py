"""The ML monitor page, rendered from :class:`~include.ml_monitor.data.MonitorData`; no I/O but reading
its stylesheet (static/monitor.css) once, at import.

:func:`render_html` turns the data into one self-contained page: the stylesheet inline, SVG charts, no
script, nothing fetched from elsewhere; every value it shows is escaped, and :data:`CSP` is the
Content-Security-Policy it is served with. A part of the data that could not be read shows its error in
its own section; the page still renders. The drift heatmap's colours follow the PSI levels the data
carries (the monitoring configuration's); without them the cells are grey and the section says why.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from include.config import LABEL_DELAY_DAYS
from include.drift.performance import CHAMPION_ROLE, SHADOW_ROLE
from include.ml_monitor.data import ALIASES, SCORE_BINS, MonitorData, VersionInfo, daily_scoring, read_json

# Datasets validated by include.validation.datasets, in pipeline order (others are listed after them).
DATASETS = ("raw_transactions", "raw_labels", "features_baseline", "predictions")
METRICS = (  # (tag key in the version's ``metrics`` JSON, label, format)
    ("average_precision", "Average precision", "{:.4f}"),
    ("auc_roc", "AUC ROC", "{:.4f}"),
    ("card_precision", "Card precision@k", "{:.4f}"),
    ("brier_score", "Brier score", "{:.4f}"),
    ("precision_at_threshold", "Precision at threshold", "{:.3f}"),
    ("recall_at_threshold", "Recall at threshold", "{:.3f}"),
    ("expected_cost", "Expected cost", "{:,.0f}"),
    ("n_transactions", "Evaluation rows", "{:,.0f}"),
    ("n_frauds", "Evaluation frauds", "{:,.0f}"),
)
# newest rows shown in the page's tables (the JSON has more: data.MAX_PROMOTIONS, data.MAX_ALERTS)
PAGE_ROWS, MAX_DQ_FAILURES, RECENT_SCORING_DAYS = 10, 20, 14
NO_VALUE = "#d0d0d0"  # a cell without a PSI, or without the thresholds to colour it

LABEL_W = 180  # width of the row labels of the day grids
CHART_W = 1100  # width the day columns share


def psi_colour(psi: float | None, warn: float, alert: float) -> str:
    """Green below ``warn`` (darker as it grows), amber up to ``alert``, red from ``alert`` (dark red from
    twice ``alert``); grey when there is no value. ``warn`` and ``alert`` are the monitoring
    configuration's ``psi_warn`` and ``psi_alert``."""
    if not isinstance(psi, int | float) or not math.isfinite(psi):  # None, NaN, or not a number at all
        return NO_VALUE
    if psi < warn:
        return _mix((0xe3, 0xf4, 0xe1), (0x5c, 0xb8, 0x5c), max(psi, 0.0) / warn)
    if psi < alert:
        return _mix((0xff, 0xd5, 0x4f), (0xfb, 0x8c, 0x00), (psi - warn) / (alert - warn))
    return _mix((0xe5, 0x39, 0x35), (0x8b, 0x00, 0x00), min((psi - alert) / alert, 1.0))


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> str:
    t = min(max(t, 0.0), 1.0)
    r, g, b_ = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return f"#{r:02x}{g:02x}{b_:02x}"


def _share_colour(share: float) -> str:
    """Blue intensity of a score bin's share of the day; log scale (most scores sit in the first bin)."""
    if share <= 0:
        return "#f4f6f8"
    return _mix((0xde, 0xeb, 0xf7), (0x08, 0x30, 0x6b), math.log10(1 + 999 * share) / 3)


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _num(v: Any, pattern: str = "{:.4f}") -> str:
    """``v`` formatted as text (not HTML): "–" for no value, the value itself when it is not a number."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    try:
        return pattern.format(v)
    except (TypeError, ValueError):
        return str(v)


def _fmt(v: Any, pattern: str = "{:.4f}") -> str:
    """``v`` formatted for HTML: :func:`_num`, escaped (a registry tag or a warehouse row may hold anything)."""
    return _e(_num(v, pattern))


def _swatch(colour: str) -> str:
    """A legend's colour square, drawn as SVG (``fill``) rather than with a ``style`` attribute: the page's
    Content-Security-Policy allows no inline style but its own stylesheet."""
    return (f'<svg class="swatch" width="12" height="12" aria-hidden="true"><rect width="12" height="12" rx="2" '
            f'fill="{_e(colour)}"/></svg>')


def _geometry(n_days: int) -> tuple[int, int]:
    """(cell width, label step in days) for ``n_days`` columns."""
    cell = max(3, min(16, CHART_W // max(n_days, 1)))
    return cell, max(1, math.ceil(46 / cell))


def _day_labels(days: list[dt.date], cell: int, step: int, y: int = 12) -> str:
    """Every ``step``-th day as MM-DD, the first one and each new year's with the year; a label that
    would overlap the previous one is left out."""
    out, free_x = [], 0
    for i, d in enumerate(days):
        x = LABEL_W + i * cell
        if i % step or x < free_x:
            continue
        text = d.isoformat() if i == 0 or (d.month == 1 and d.day <= step) else d.strftime("%m-%d")
        out.append(f'<text x="{x}" y="{y}" class="axis">{text}</text>')
        free_x = x + 6.2 * len(text) + 8
    return "".join(out)


def _grid_svg(kind: str, days: list[dt.date], rows: list[tuple[str, str]], height: int,
              cell_of: Callable[[str, dt.date], tuple[str, str, dict[str, Any]] | None],
              right: dict[str, str] | None = None) -> str:
    """A day-by-row grid: ``rows`` are (key, label); ``cell_of(key, day)`` gives (colour, tooltip,
    data attributes) or None (no data: a light grey cell); ``right`` an optional text after each row."""
    cell, step = _geometry(len(days))
    top = 18
    width, total_h = LABEL_W + cell * len(days) + 50, top + height * len(rows) + 4
    parts = [f'<svg class="grid {kind}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_h}" '
             f'role="img" aria-label="{_e(kind)} by day">', _day_labels(days, cell, step)]
    size = f'width="{cell - 1}" height="{height - 1}"'  # the same for every cell
    for r, (key, label) in enumerate(rows):
        y = top + r * height
        shown = _e(label)
        parts.append(f'<text x="{LABEL_W - 6}" y="{y + height - 4}" class="label" text-anchor="end">{shown}</text>')
        if right and key in right:
            parts.append(f'<text x="{LABEL_W + cell * len(days) + 6}" y="{y + height - 4}" class="axis">'
                         f'{_e(right[key])}</text>')
        for i, day in enumerate(days):
            found = cell_of(key, day)
            x = LABEL_W + i * cell
            if found is None:
                parts.append(f'<rect x="{x}" y="{y}" {size} fill="#f1f1f1"><title>{shown} {day}: no data</title></rect>')
                continue
            colour, title, attrs = found
            data = "".join([f' data-{k}="{_e(v)}"' for k, v in attrs.items()])
            parts.append(f'<rect class="cell" x="{x}" y="{y}" {size} fill="{colour}"{data}><title>{_e(title)}</title></rect>')
    parts.append("</svg>")
    return "".join(parts)


def _drift_section(data: MonitorData, days: list[dt.date]) -> str:
    problem = ""  # the thresholds colour the cells: without them the page says why, whatever else it shows
    if "thresholds" in data.errors:
        problem = _error_box("the monitoring configuration", data.errors["thresholds"])
    if "drift" in data.errors:
        return problem + _error_box("drift", data.errors["drift"])
    if not data.drift:
        return problem + (f'<p class="empty" id="drift-empty">No drift rows for {_e(data.model_name)} between '
                f'{data.window.start} and {data.window.end}. The monitoring DAG writes one row per monitored '
                'column and scored day.</p>')
    by_key = {(r["column_name"], r["ds"]): r for r in data.drift}
    columns = sorted({r["column_name"] for r in data.drift}, key=lambda c: (c == "score", c))
    latest = {}
    for r in data.drift:  # rows come ordered by day: the last one of a column is its newest
        latest[r["column_name"]] = r
    warn, alert = data.psi_warn, data.psi_alert
    levels = warn is not None and alert is not None

    def colour(psi: Any) -> str:
        return psi_colour(psi, warn, alert) if levels else NO_VALUE

    def cell(column: str, day: dt.date):
        r = by_key.get((column, day))
        if r is None:
            return None
        psi = r["psi"]
        ks_text = "" if r["ks_statistic"] is None else f", KS D {_num(r['ks_statistic'], '{:.3f}')} p {_num(r['ks_p_value'], '{:.2g}')}"
        title = (f"{column} {day}: PSI {_num(psi)} ({r['psi_level']}){ks_text}"
                 f"{', drifted' if r['drifted'] else ''} (version {r['model_version']})")
        return (colour(psi), title,
                {"column": column, "ds": day.isoformat(), "psi": _num(psi), "drifted": str(bool(r["drifted"])).lower()})

    labels = [(c, c) for c in columns]
    newest = {c: _num(latest[c]["psi"], "{:.3f}") for c in columns}
    if levels:
        legend = "".join(
            f'{_swatch(colour(v))}{_e(t)} '
            for v, t in ((0.0, "0"), (warn * 0.99, f"< {warn:g}"), (warn, f"{warn:g}–{alert:g} warn"),
                         (alert, f">= {alert:g} alert"), (alert * 2, f">= {2 * alert:g}"), (None, "no PSI")))
    else:  # the configuration's levels are the only ones: grey cells, the values still in their tooltips
        legend = (f"{_swatch(NO_VALUE)}not coloured: no PSI levels (<code>psi_warn</code>, <code>psi_alert</code> "
                  "of the monitoring configuration) ")
    drifted_days = len({r["ds"] for r in data.drift if r["drifted"]})
    return (f'{problem}<p class="legend">PSI against the reference of the version that scored the day (right: the '
            f'newest value). {legend}{_swatch("#f1f1f1")}not monitored</p>'
            f'<p>{len(columns)} columns, {len({r["ds"] for r in data.drift})} monitored days, '
            f'{drifted_days} with a drifted column.</p>'
            f'<div class="scroll">{_grid_svg("drift-heatmap", days, labels, 15, cell, newest)}</div>')


def _quality_section(data: MonitorData, days: list[dt.date]) -> str:
    if "data_quality" in data.errors:
        return _error_box("data quality", data.errors["data_quality"])
    if not data.data_quality:
        return (f'<p class="empty" id="dq-empty">No validation results between {data.window.start} and '
                f'{data.window.end}. Every Great Expectations checkpoint (ingest, features, scoring) records '
                'its verdict here.</p>')
    by_key = {(r["dataset"], r["ds"]): r for r in data.data_quality}
    seen = {r["dataset"] for r in data.data_quality}
    datasets = [d for d in DATASETS if d in seen] + sorted(seen - set(DATASETS))

    def cell(dataset: str, day: dt.date):
        r = by_key.get((dataset, day))
        if r is None:
            return None
        verdict = "passed" if r["success"] else "FAILED"
        title = f"{dataset} {day}: {verdict}, {r['failed']} of {r['evaluated']} expectations failed, {r['rows']} rows"
        if r["failures"]:
            title += "\n" + r["failures"][:600]
        return ("#43a047" if r["success"] else "#e53935", title,
                {"dataset": dataset, "ds": day.isoformat(), "success": str(bool(r["success"])).lower()})

    failed = [r for r in reversed(data.data_quality) if not r["success"]]
    n_pass = sum(1 for r in data.data_quality if r["success"])
    table = ""
    if failed:
        rows = "".join(
            f'<tr class="fail"><td>{_e(r["ds"])}</td><td>{_e(r["dataset"])}</td><td>{_e(r["failed"])} of {_e(r["evaluated"])}</td>'
            f'<td><pre>{_e(r["failures"])}</pre></td></tr>' for r in failed[:MAX_DQ_FAILURES])
        table = ('<h3>Failed validations, newest first</h3><table class="dq-failures"><tr><th>day</th><th>dataset</th>'
                 f'<th>failed</th><th>expectations</th></tr>{rows}</table>')
    return (f'<p class="legend">{_swatch("#43a047")}passed {_swatch("#e53935")}failed '
            f'{_swatch("#f1f1f1")}not validated</p>'
            f'<p>{n_pass} passed, {len(failed)} failed validations.</p>'
            f'<div class="scroll">{_grid_svg("dq-grid", days, [(d, d) for d in datasets], 18, cell)}</div>{table}')


def _scoring_section(data: MonitorData, days: list[dt.date]) -> str:
    parts = []
    if "predictions" in data.errors:
        parts.append(_error_box("predictions", data.errors["predictions"]))
    per_day = daily_scoring(data)
    if not per_day and not data.histogram:
        return "".join(parts) + (f'<p class="empty" id="scoring-empty">No predictions between {data.window.start} and '
                                 f'{data.window.end}. The scoring DAG writes them.</p>')
    cell, step = _geometry(len(days))
    peak = max((d["rows"] for d in per_day.values()), default=0) or 1
    bar_h = 60
    bars = [f'<svg class="bars" xmlns="http://www.w3.org/2000/svg" width="{LABEL_W + cell * len(days) + 70}" '
            f'height="{bar_h + 22}" role="img" aria-label="rows scored by day">', _day_labels(days, cell, step),
            f'<text x="{LABEL_W - 6}" y="{18 + bar_h // 2}" class="label" text-anchor="end">rows scored (max {peak:,})</text>']
    for i, day in enumerate(days):
        d = per_day.get(day)
        if not d:
            continue
        h = max(1, round(bar_h * d["rows"] / peak))
        fh = min(h, max(1 if d["flagged"] else 0, round(bar_h * d["flagged"] / peak)))
        x = LABEL_W + i * cell
        title = (f"{day}: {d['rows']:,} rows, {d['flagged']:,} flagged, mean score {_num(d['mean_score'])}, "
                 f"version {', '.join(d['versions'])}")
        bars.append(f'<rect class="bar" x="{x}" y="{18 + bar_h - h}" width="{cell - 1}" height="{h}" fill="#90a4ae" '
                    f'data-ds="{day}" data-rows="{d["rows"]}"><title>{_e(title)}</title></rect>')
        if fh:
            bars.append(f'<rect x="{x}" y="{18 + bar_h - fh}" width="{cell - 1}" height="{fh}" fill="#e53935">'
                        f'<title>{_e(title)}</title></rect>')
    bars.append("</svg>")
    parts.append(f'<p class="legend">{_swatch("#90a4ae")}rows scored {_swatch("#e53935")}flagged (score &gt;= the '
                 'version\'s threshold)</p>')
    parts.append(f'<div class="scroll">{"".join(bars)}</div>')
    if data.histogram:
        labels = [(str(b), f"score {b / SCORE_BINS:.1f}–{(b + 1) / SCORE_BINS:.1f}") for b in reversed(range(SCORE_BINS))]

        def hist_cell(b: str, day: dt.date):
            counts = data.histogram.get(day)
            if not counts:
                return None
            total = sum(counts) or 1
            n = counts[int(b)]
            return (_share_colour(n / total), f"{day}, score {int(b) / SCORE_BINS:.1f}–{(int(b) + 1) / SCORE_BINS:.1f}: "
                    f"{n:,} of {total:,} rows ({100 * n / total:.2f} %)", {"ds": day.isoformat(), "bin": b, "n": n})

        parts.append('<h3>Score distribution by day</h3><p class="legend">Share of the day\'s predictions in each '
                     f'tenth of [0, 1], log colour scale: {_swatch(_share_colour(0.001))}0.1 % '
                     f'{_swatch(_share_colour(0.01))}1 % {_swatch(_share_colour(0.1))}10 % '
                     f'{_swatch(_share_colour(1.0))}100 %</p>')
        parts.append(f'<div class="scroll">{_grid_svg("score-histogram", days, labels, 11, hist_cell)}</div>')
    recent = sorted(per_day.items(), reverse=True)[:RECENT_SCORING_DAYS]
    rows = "".join(
        f'<tr><td>{_e(day)}</td><td>{_e(", ".join(d["versions"]))}</td><td class="num">{d["rows"]:,}</td>'
        f'<td class="num">{d["flagged"]:,}</td><td class="num">{_fmt(d["flagged"] / d["rows"] if d["rows"] else None, "{:.2%}")}</td>'
        f'<td class="num">{_fmt(d["mean_score"])}</td></tr>' for day, d in recent)
    parts.append(f'<h3>Newest {len(recent)} scored days</h3><table class="scoring"><tr><th>day</th><th>version</th>'
                 f'<th>rows</th><th>flagged</th><th>flag rate</th><th>mean score</th></tr>{rows}</table>')
    return "".join(parts)


# (column of performance_days, label, format, has an estimate, reference key in the version's metrics tag)
LIVE_METRICS = (
    ("auc_roc", "AUC ROC", "{:.3f}", True, "auc_roc"),
    ("average_precision", "Average precision", "{:.3f}", True, "average_precision"),
    ("precision_at_threshold", "Precision at threshold", "{:.3f}", True, "precision_at_threshold"),
    ("recall_at_threshold", "Recall at threshold", "{:.3f}", True, "recall_at_threshold"),
    ("card_precision", "CP@100", "{:.3f}", False, "card_precision"),
    # the evaluation's cost is that of a whole week of another size: no per-day reference
    ("expected_cost", "Cost per day", "{:,.0f}", True, None),
)
ROLE_COLOURS = {CHAMPION_ROLE: "#1565c0", SHADOW_ROLE: "#6a1b9a"}
LIVE_H, LIVE_TOP = 70, 16


def _live_chart(metric: str, label: str, pattern: str, has_estimate: bool, reference_key: str | None,
                days: list[dt.date], rows: list[dict[str, Any]], day_labels: bool = False) -> str:
    """One metric by scored day: per role a solid line of the realised figures, a dashed one of the
    estimates, the version's offline figure as a grey line, and a red mark on days with a performance
    alert; ``day_labels``: the dates above it (the first of the stacked charts)."""
    cell, step = _geometry(len(days))
    index = {d: i for i, d in enumerate(days)}
    rows = [r for r in rows if r["scored_day"] in index]
    real = [(r, r.get(metric)) for r in rows]
    est = [(r, r.get(f"est_{metric}")) for r in rows] if has_estimate else []
    refs = [(r, r["reference"].get(reference_key)) for r in rows] if reference_key else []
    values = [v for _, v in real + est + refs if isinstance(v, int | float) and math.isfinite(v)]
    width = LABEL_W + cell * len(days) + 70
    out = [f'<svg class="live" data-metric="{_e(metric)}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{LIVE_TOP + LIVE_H + 6}" role="img" aria-label="{_e(label)} by scored day">',
           _day_labels(days, cell, step) if day_labels else "",
           f'<text x="{LABEL_W - 6}" y="{LIVE_TOP + LIVE_H // 2 + 4}" class="label" text-anchor="end">{_e(label)}</text>']
    if not values:
        out.append(f'<text x="{LABEL_W}" y="{LIVE_TOP + LIVE_H // 2}" class="axis">no figures</text></svg>')
        return "".join(out)
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad

    def x(day: dt.date) -> float:
        return LABEL_W + index[day] * cell + (cell - 1) / 2

    def y(v: float) -> float:
        return LIVE_TOP + LIVE_H - (v - lo) / (hi - lo) * LIVE_H

    out.append(f'<text x="{LABEL_W + cell * len(days) + 4}" y="{LIVE_TOP + 8}" class="axis">{_e(_num(hi - pad, pattern))}</text>'
               f'<text x="{LABEL_W + cell * len(days) + 4}" y="{LIVE_TOP + LIVE_H}" class="axis">{_e(_num(lo + pad, pattern))}</text>')
    for role in sorted({r["role"] for r in rows}, key=lambda r: (r != CHAMPION_ROLE, r)):
        colour = ROLE_COLOURS.get(role, "#455a64")
        mine = [(r, v) for r, v in refs if r["role"] == role]
        runs: list[list[tuple[dt.date, float]]] = []  # the reference: a step line, one run per value
        for r, v in mine:
            if not isinstance(v, int | float):
                continue
            if runs and runs[-1][-1][1] == v and index[runs[-1][-1][0]] + 1 == index[r["scored_day"]]:
                runs[-1].append((r["scored_day"], v))
            else:
                runs.append([(r["scored_day"], v)])
        for run in runs:
            x0, x1 = x(run[0][0]) - cell / 2, x(run[-1][0]) + cell / 2
            out.append(f'<line class="reference" data-role="{_e(role)}" x1="{x0:.1f}" x2="{x1:.1f}" y1="{y(run[0][1]):.1f}" '
                       f'y2="{y(run[0][1]):.1f}" stroke="#9e9e9e" stroke-width="1">'
                       f'<title>{_e(role)}: offline evaluation {_e(label)} {_e(_num(run[0][1], pattern))}</title></line>')
        for kind, series, dash in (("realised", real, ""), ("estimate", est, ' stroke-dasharray="4 3"')):
            segment: list[str] = []
            segments = []
            last = None
            for r, v in series:
                if r["role"] != role:
                    continue
                if not isinstance(v, int | float) or not math.isfinite(v):
                    continue
                i = index[r["scored_day"]]
                if segment and last is not None and i != last + 1:
                    segments.append(segment)
                    segment = []
                segment.append(f"{x(r['scored_day']):.1f},{y(v):.1f}")
                last = i
            if segment:
                segments.append(segment)
            for seg in segments:
                if len(seg) == 1:  # a lone day: a dot
                    cx, cy = seg[0].split(",")
                    out.append(f'<circle class="{kind}" data-role="{_e(role)}" cx="{cx}" cy="{cy}" r="2" fill="{colour}"/>')
                else:
                    out.append(f'<polyline class="{kind}" data-role="{_e(role)}" points="{" ".join(seg)}" fill="none" '
                               f'stroke="{colour}" stroke-width="1.5"{dash}/>')
        for r in rows:  # the day's performance alert, on every chart (its tooltip says which figure)
            if r["role"] == role and r.get("alerts"):
                out.append(f'<path class="alert-mark" data-ds="{r["scored_day"]}" d="M{x(r["scored_day"]):.1f} {LIVE_TOP - 1} '
                           f'l-4 -7 h8 z" fill="#e53935"><title>{_e(r["scored_day"])} ({_e(role)} version '
                           f'{_e(r["model_version"])}): {_e(r["alerts"])}</title></path>')
    out.append("</svg>")
    return "".join(out)


def _roles_legend(data: MonitorData, rows: list[dict[str, Any]]) -> str:
    """Which line is which model: the champion's and, when monitoring measured one, the shadow's
    (docs/shadow.md), each with the version(s) of its rows and the version behind its registry alias."""
    items = []
    for role in sorted({r["role"] for r in rows}, key=lambda r: (r != CHAMPION_ROLE, r)):
        versions = sorted({str(r["model_version"]) for r in rows if r["role"] == role}, key=lambda v: (len(v), v))
        alias = data.registry.versions.get(role)
        now = f", alias <code>{_e(role)}</code> now on version {_e(alias.version)}" if alias else ""
        what = " (scored beside the champion; not the decision)" if role == SHADOW_ROLE else ""
        items.append(f'<span class="role" id="role-{_e(role)}" data-versions="{_e(" ".join(versions))}">'
                     f'<svg width="26" height="8" aria-hidden="true"><line x1="0" x2="26" y1="4" y2="4" '
                     f'stroke="{ROLE_COLOURS.get(role, "#455a64")}" stroke-width="2"/></svg> {_e(role)}: version '
                     f'{_e(", ".join(versions))}{now}{what}</span>')
    return f'<p class="legend" id="performance-roles">{" ".join(items)}</p>'


def _performance_section(data: MonitorData, days: list[dt.date]) -> str:
    if "performance" in data.errors:
        return _error_box("live performance", data.errors["performance"])
    if not data.performance:
        return (f'<p class="empty" id="performance-empty">No live performance between {data.window.start} and '
                f'{data.window.end}. The monitoring DAG estimates each scored day from its scores and measures it '
                f'when its labels arrive ({LABEL_DELAY_DAYS} days later).</p>')
    rows = data.performance
    legend = (f'<p class="legend">By the day the transactions were scored. <svg width="26" height="8" aria-hidden="true">'
              f'<line x1="0" x2="26" y1="4" y2="4" stroke="{ROLE_COLOURS[CHAMPION_ROLE]}" stroke-width="2"/></svg> realised '
              f'on the arrived labels <svg width="26" height="8" aria-hidden="true"><line x1="0" x2="26" y1="4" y2="4" '
              f'stroke="{ROLE_COLOURS[CHAMPION_ROLE]}" stroke-width="2" stroke-dasharray="4 3"/></svg> estimated from the '
              'calibrated scores before the labels arrive (CBPE) <svg width="26" height="8" aria-hidden="true"><line x1="0" '
              'x2="26" y1="4" y2="4" stroke="#9e9e9e" stroke-width="1"/></svg> the version\'s offline evaluation figure '
              '<svg width="10" height="8" aria-hidden="true"><path d="M1 0 h8 l-4 7 z" fill="#e53935"/></svg> '
              'performance alert</p>')
    legend += _roles_legend(data, rows)
    charts = "".join(_live_chart(*m, days, rows, day_labels=i == 0) for i, m in enumerate(LIVE_METRICS))
    both = [r for r in rows if not r["estimated"] and r.get("estimated_at") is not None]
    mae = []
    for metric, label, pattern, has_estimate, _ in LIVE_METRICS:
        errs = [abs(r[f"err_{metric}"]) for r in both if has_estimate and r.get(f"err_{metric}") is not None]
        if errs:
            mae.append(f"{_e(label)} {_e(_num(sum(errs) / len(errs), pattern))}")
    error_line = (f'<p id="estimate-error">Mean absolute error of the estimate over the {len(both)} days with both: '
                  f'{", ".join(mae)}.</p>' if mae else
                  '<p class="muted" id="estimate-error">No day has both an estimate and its labels yet.</p>')
    waiting = {r["scored_day"] for r in rows if r["estimated"]}  # a row per day and role: count days
    notes = sorted({r["estimate_note"] for r in rows if r.get("estimate_note")})
    note = "".join(f'<p class="muted estimate-note">No estimate: {_e(n)}</p>' for n in notes[-3:])
    calibrated = [r for r in rows if r.get("calibration")]
    if calibrated:  # the rows come by scored day: the last is the newest estimate
        note += (f'<p class="muted" id="calibration">Newest estimate ({_e(calibrated[-1]["scored_day"])}): scores '
                 f'calibrated by {_e(calibrated[-1]["calibration"])}.</p>')

    def pair(r: dict[str, Any], metric: str, pattern: str) -> str:
        real, est, err = r.get(metric), r.get(f"est_{metric}"), r.get(f"err_{metric}")
        shown = _fmt(real, pattern) if real is not None else ""
        if est is not None:
            shown += (f' <span class="est">est. {_fmt(est, pattern)}'
                      + (f" ({_fmt(err, '{:+' + pattern[2:])})" if err is not None else "") + "</span>")
        return shown or "–"

    def frauds(r: dict[str, Any]) -> str:
        shown = _fmt(r.get("n_frauds"), "{:,}") if r.get("n_frauds") is not None else ""
        if r.get("est_expected_frauds") is not None:
            shown += f' <span class="est">est. {_fmt(r["est_expected_frauds"], "{:.1f}")}</span>'
        return shown or "–"

    recent = sorted(rows, key=lambda r: (r["scored_day"], r["role"]), reverse=True)[:RECENT_SCORING_DAYS]
    table = "".join(
        f'<tr class="{"estimated" if r["estimated"] else "realised"}{" alert" if r.get("alerts") else ""}" '
        f'data-ds="{_e(r["scored_day"])}"><td>{_e(r["scored_day"])}</td><td>{_e(r["ds"])}</td><td>{_e(r["role"])} '
        f'{_e(r["model_version"])}</td><td class="num">{frauds(r)}</td>'
        + "".join(f'<td class="num">{pair(r, m, p)}</td>' for m, _, p, _, _ in LIVE_METRICS)
        + f'<td>{_e(r.get("alerts") or r.get("verdict") or ("labels not arrived" if r["estimated"] else ""))}</td></tr>'
        for r in recent)
    head = "".join(f"<th>{_e(label)}</th>" for _, label, _, _, _ in LIVE_METRICS)
    return (f'{legend}<p>{len({r["scored_day"] for r in rows})} days, {len(waiting)} still waiting for their labels (estimate only).</p>{note}'
            f'<div class="scroll">{charts}</div>{error_line}'
            f'<h3>Newest {len(recent)} scored days</h3><div class="scroll"><table class="performance"><tr><th>scored</th>'
            f'<th>labels</th><th>version</th><th>frauds</th>{head}<th>verdict</th></tr>{table}</table></div>')


def _error_box(what: str, message: str) -> str:
    return f'<div class="error" data-section="{_e(what)}"><b>Could not read {_e(what)}:</b> {_e(message)}</div>'


def _version_card(v: VersionInfo, main: bool, since: str | None = None) -> str:
    metrics = "".join(
        f'<tr><th>{_e(label)}</th><td class="num">{_fmt(v.metrics.get(key), pattern)}</td></tr>'
        for key, label, pattern in METRICS if key in v.metrics)
    facts = [("model", f"{v.model or '?'} ({v.family or '?'})"), ("champion since", since), ("trained as of", v.as_of),
             ("decision threshold", _num(v.threshold)), ("training window", v.training_window),
             ("evaluation window", v.evaluation_window), ("registered", v.created),
             ("gate", f"{v.gate_decision}: {v.gate_reason}" if v.gate_decision else None),
             ("rolled back", v.rolled_back), ("run", v.run_id), *(("unreadable tag", p) for p in v.problems)]
    facts_html = "".join(f"<tr><th>{_e(k)}</th><td>{_e(val)}</td></tr>" for k, val in facts if val)
    title = v.alias.replace("_", " ")
    return (f'<div class="card {"champion" if main else "other"}" id="{_e(v.alias)}" data-version="{_e(v.version)}">'
            f'<div class="alias">{_e(title)}</div><div class="version">version {_e(v.version)}</div>'
            f'<table class="facts">{facts_html}</table>'
            f'<table class="metrics">{metrics or "<tr><td>no metrics tag</td></tr>"}</table></div>')


def _models_section(data: MonitorData) -> str:
    reg = data.registry
    parts = [f'<p class="muted">Registered model <b>{_e(reg.model_name)}</b> in {_e(reg.tracking_uri)}</p>']
    if "registry" in data.errors:
        parts.append(_error_box("the registry", data.errors["registry"]))
    if reg.error:
        parts.append(f'<div class="error" id="registry-error"><b>Registry unreachable:</b> {_e(reg.error)}. '
                     'The warehouse sections below do not depend on it.</div>')
    elif reg.note:
        parts.append(f'<p class="empty" id="no-champion">{_e(reg.note)}</p>')
    elif "champion" not in reg.versions:
        parts.append('<p class="empty" id="no-champion">No champion yet: the registered model has no '
                     '<code>champion</code> alias. The training DAG sets it when a challenger passes the gate.</p>')
    cards = []
    champion = reg.versions.get("champion")
    for alias in ALIASES:
        v = reg.versions.get(alias)
        if v is None:
            continue
        if alias != "champion" and champion is not None and v.version == champion.version:
            cards.append(f'<div class="card other same" id="{alias}" data-version="{_e(v.version)}"><div class="alias">'
                         f'{alias.replace("_", " ")}</div><div class="version">version {_e(v.version)}</div>'
                         '<p>the champion itself</p></div>')
            continue
        cards.append(_version_card(v, alias == "champion", _since(data, v) if alias == "champion" else None))
    if cards:
        parts.append(f'<div class="cards">{"".join(cards)}</div>')
    return "".join(parts)


def _since(data: MonitorData, v: VersionInfo) -> str | None:
    """When ``v`` last became champion, from the promotion history (promotion or rollback)."""
    for p in data.promotions:  # newest first
        if p["promoted"] and str(p["challenger_version"]) == v.version:
            return f"{_day(p['promoted_at'] or p['decided_at'])} ({p['decision']} as of {p['as_of']})"
    return None


def _promotions_section(data: MonitorData) -> str:
    parts = []
    if "promotions" in data.errors:
        parts.append(_error_box("promotions", data.errors["promotions"]))
    elif not data.promotions:
        parts.append('<p class="empty" id="promotions-empty">No gate decisions recorded yet. Every training run '
                     'records one in the warehouse <code>promotions</code> table.</p>')
    else:
        rows = "".join(
            f'<tr class="{_decision_class(p["decision"])}"><td>{_e(_day(p["decided_at"]))}</td><td>{_e(p["as_of"])}</td>'
            f'<td><b>{_e(p["decision"])}</b>{" (done)" if p["promoted"] and p["decision"] == "promote" else ""}</td>'
            f'<td>{_e(p["challenger_version"])}</td><td>{_e(p["champion_version"] or "–")}</td>'
            f'<td>{_e(p["primary_metric"])}</td><td class="num">{_fmt(p["challenger_value"])}</td>'
            f'<td class="num">{_fmt(p["champion_value"])}</td><td>{_e(p["reason"])}</td></tr>'
            for p in data.promotions[:PAGE_ROWS])
        more = (f'<p class="muted">Newest {PAGE_ROWS} of {data.promotions_total} decisions (the JSON has '
                f'{len(data.promotions)}).</p>' if data.promotions_total > PAGE_ROWS else "")
        parts.append('<table class="promotions"><tr><th>decided</th><th>as of</th><th>decision</th><th>challenger</th>'
                     '<th>champion then</th><th>metric</th><th>challenger</th><th>champion</th><th>reason</th></tr>'
                     f'{rows}</table>{more}{_slices_table(data)}')
    return "".join(parts)


def _slices_table(data: MonitorData) -> str:
    """The newest decision with slices (``metrics_json.slices``, include/training/slices.py, docs/slices.md):
    the challenger per band, the champion's primary metric, the drop and the gate's verdict."""
    for p in data.promotions:  # newest first
        metrics, why = read_json(p.get("metrics_json") or "null")
        rows = metrics.get("slices") if not why and isinstance(metrics, dict) else None
        if isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows):
            break
    else:
        return ""
    primary = p["primary_metric"]
    body = "".join(
        f'<tr><td>{_e(r.get("slice"))}</td><td>{_e(r.get("band"))}</td><td class="num">{_fmt(r.get("n_frauds"), "{:,}")}'
        f'</td><td class="num">{_fmt(r.get("auc_roc"))}</td><td class="num">{_fmt(r.get(primary))}</td>'
        f'<td class="num">{_fmt(r.get(f"champion_{primary}"))}</td><td class="num">{_fmt(r.get("drop"))}</td>'
        f'<td>{"<b>refused</b>" if r.get("verdict") == "refused" else _e(r.get("verdict"))}</td></tr>' for r in rows)
    return (f'<h3 id="slices">By slice: the decision as of {_e(p["as_of"])} on version {_e(p["challenger_version"])}</h3>'
            f'<p class="muted">The gate refuses a challenger whose {_e(primary)} drops more than '
            f'{_fmt(metrics.get("slice_tolerance"), "{}")} below the champion\'s on a band with at least '
            f'{_fmt(metrics.get("slice_min_positives"), "{}")} frauds (docs/slices.md).</p>'
            f'<table class="promotions slices"><tr><th>slice</th><th>band</th><th>frauds</th><th>AUC ROC</th>'
            f'<th>{_e(primary)}</th><th>champion</th><th>drop</th><th>gate</th></tr>{body}</table>')


DECISIONS = ("promote", "reject", "rollback")  # include.warehouse promotions.decision


def _decision_class(decision: Any) -> str:
    """The row's class: the decision when it is one the gate writes, else "other" (a value from the
    warehouse in a class attribute could borrow the page's own styles: ``error``, ``card champion``)."""
    return decision if decision in DECISIONS else "other"


def _day(v: Any) -> str:
    return v.strftime("%Y-%m-%d %H:%M") if isinstance(v, dt.datetime) else str(v)


def _alerts_section(data: MonitorData) -> str:
    if "alerts" in data.errors:
        return _error_box("alerts", data.errors["alerts"])
    if not data.alerts:
        return (f'<p class="empty" id="alerts-empty">No alerts between {data.window.start} and {data.window.end}.</p>')
    rows = "".join(
        f'<tr><td>{_e(a["ds"])}</td><td>{_e(a["kind"])}</td><td>{_e(a["model_version"])}</td>'
        f'<td>{"yes" if a["triggered_training"] else "no"}</td><td>{_e(a["message"])}</td></tr>'
        for a in data.alerts[:PAGE_ROWS])
    more = (f'<p class="muted">Newest {PAGE_ROWS} of {data.alerts_total} alerts in the window (the JSON has '
            f'{len(data.alerts)}).</p>' if data.alerts_total > PAGE_ROWS else "")
    return ('<table class="alerts"><tr><th>day</th><th>kind</th><th>version</th><th>triggered training</th>'
            f'<th>message</th></tr>{rows}</table>{more}')


# The stylesheet, read once. It is inlined in the page's <style> element, which the Content-Security-Policy
# allows by its hash, so that the page stays one self-contained file.
STYLESHEET = Path(__file__).with_name("static") / "monitor.css"
CSS = STYLESHEET.read_text(encoding="utf-8")
# The page's Content-Security-Policy: no script at all, no style but the page's own <style> element
# (allowed by its hash, so that the page stays one self-contained file), nothing fetched from elsewhere,
# framed only by its own origin (the Airflow UI). An escaping slip would still not run a script.
CSP = "; ".join([
    "default-src 'none'", "script-src 'none'", "object-src 'none'", "base-uri 'none'", "form-action 'none'",
    f"style-src 'sha256-{base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()}'",
    "img-src 'self' data:", "frame-ancestors 'self'",
])


def render_html(data: MonitorData, base: str = "") -> str:
    """The whole page; ``base`` is the URL prefix of the view's links (the plugin's mount point)."""
    days = data.axis()
    w = data.window
    links = []
    for n in (30, 90, 180, 365):
        cls = ' class="current"' if n == w.days else ""
        links.append(f'<a{cls} href="{_e(base)}/?days={n}&amp;end={w.end}">{n} days</a>')
    window_errors = _error_box("the window", data.errors["window"]) if "window" in data.errors else ""
    if data.warehouse_note:
        window_errors += f'<p class="empty" id="no-warehouse">{_e(data.warehouse_note)}</p>'
    timings = ", ".join(f"{k} {v:.0f} ms" for k, v in data.timings_ms.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ML monitor: {_e(data.model_name)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body>
<h1>ML monitor: {_e(data.model_name)}</h1>
<p class="nav muted">Days {w.start} to {w.end} ({w.days} days; the newest day with data unless <code>end</code> is
given) · {" ".join(links)} · <a href="{_e(base)}/api/summary?days={w.days}&amp;end={w.end}">JSON</a></p>
{window_errors}
<section id="models"><h2>Champion and challenger</h2>{_models_section(data)}</section>
<section id="alerts"><h2>Alerts</h2>{_alerts_section(data)}</section>
<section id="performance"><h2>Live performance</h2>{_performance_section(data, days)}</section>
<section id="drift"><h2>Drift by day (PSI)</h2>{_drift_section(data, days)}</section>
<section id="data-quality"><h2>Data quality by day</h2>{_quality_section(data, days)}</section>
<section id="scoring"><h2>Scoring by day</h2>{_scoring_section(data, days)}</section>
<section id="promotions"><h2>Promotion history</h2>{_promotions_section(data)}</section>
<footer>Generated {data.generated_at:%Y-%m-%d %H:%M:%S} UTC in {timings}.</footer>
</body></html>
"""
