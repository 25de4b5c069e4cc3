"""The demo's one self-contained page: what ran, tables with CIs, plots, overlays, findings, timings.

Stage records carry their content in ``results``: ``findings`` (sentences: results that meet
their aim), ``warnings`` (sentences: results below their aim, a gap found, something not
measured), ``tables`` (title -> DataFrame), ``sources`` (title -> the file holding the whole
table), ``figures`` (title -> PNG bytes) and ``files`` (paths written). A stage that finished
with warnings is shown as "done, with N warning(s)" in amber, never as a plain green "done".
Tables longer than :data:`TABLE_ROWS` show their first rows and say where the rest is. Images
are embedded as data URIs: the page loads nothing from the network.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from radseg.demo.stages import StageLog

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1150px;color:#222;line-height:1.45}"
    "table{border-collapse:collapse;font-size:13px;margin:.6em 0}td,th{padding:3px 9px;border-bottom:1px solid #ddd;"
    "text-align:right}th{background:#f4f4f4}code,pre{background:#f6f6f6;padding:2px 4px;font-size:12px}"
    "pre{padding:8px;overflow-x:auto}.finding{background:#eef6ee;border-left:4px solid #3a3;padding:6px 10px;margin:6px 0}"
    ".warning{background:#fdf3e1;border-left:4px solid #d80;padding:6px 10px;margin:6px 0}.cut{font-size:12px;color:#555}"
    ".failed{background:#fbeaea;border-left:4px solid #c33;padding:6px 10px}figure{display:inline-block;margin:6px}"
    "figcaption{font-size:12px;color:#555}img{max-width:100%}"
)


TABLE_ROWS = 15


def _table(frame, digits: int = 4, source: str = "") -> str:
    if frame is None or len(frame) == 0:
        return "<p>(empty)</p>"
    shown = frame.head(TABLE_ROWS)
    out = shown.to_html(index=False, float_format=lambda v: f"{v:.{digits}g}", na_rep="–", border=0, escape=True)
    if len(shown) < len(frame):
        where = f" in <code>{html.escape(source)}</code>" if source else " not shown"
        out += (f"<p class='cut'>Table cut: {len(shown)} of {len(frame)} rows shown; "
                f"{len(frame) - len(shown)} more row(s){where}.</p>")
    return out


def _status(record) -> str:
    count = len(record.results.get("warnings", []))
    if record.status == "done" and count:
        return f"<span style='color:#b60'>done, with {count} warning(s)</span>"
    return html.escape(record.status)


def _figure(title: str, png: bytes) -> str:
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    return f"<figure><img alt='{html.escape(title)}' src='{uri}'><figcaption>{html.escape(title)}</figcaption></figure>"


def render(log: StageLog, settings: dict[str, Any]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>radseg demo</title><style>{_STYLE}</style>"
             "</head><body><h1>radseg demo report</h1>"]
    parts.append("<p>Everything on this page was computed on phantoms radseg synthesised itself, with exact "
                 "labels, on this machine, offline.</p>")
    parts.append("<h2>Run</h2><table>" + "".join(
        f"<tr><th>{html.escape(str(k))}</th><td style='text-align:left'>{html.escape(str(v))}</td></tr>"
        for k, v in settings.items()) + "</table>")
    warnings = [(r.title, w) for r in log.records for w in r.results.get("warnings", [])]
    findings = [(r.title, f) for r in log.records for f in r.results.get("findings", [])]
    if warnings:
        parts.append("<h2>Warnings: results below their aim</h2>" + "".join(
            f"<div class='warning'><b>{html.escape(t)}</b>: {html.escape(w)}</div>" for t, w in warnings))
    if findings:
        parts.append("<h2>Findings</h2>" + "".join(
            f"<div class='finding'><b>{html.escape(t)}</b>: {html.escape(f)}</div>" for t, f in findings))
    parts.append("<h2>Timings</h2><table><tr><th>stage</th><th>status</th><th>seconds</th></tr>" + "".join(
        f"<tr><td style='text-align:left'>{html.escape(r.title)}</td><td>{_status(r)}</td><td>{r.seconds:.1f}</td></tr>"
        for r in log.records) + f"<tr><th>total</th><th></th><th>{log.total_seconds():.1f}</th></tr></table>")
    for number, record in enumerate(log.records, start=1):
        parts.append(f"<h2 id='{record.name}'>{number}. {html.escape(record.title)}</h2>")
        if record.status == "failed":
            parts.append(f"<div class='failed'>failed: {html.escape(record.note)}</div>")
        elif record.note:
            parts.append(f"<p>{html.escape(record.note)}</p>")
        parts += [f"<div class='warning'>{html.escape(w)}</div>" for w in record.results.get("warnings", [])]
        if record.commands:
            parts.append("<p>Equivalent commands:</p><pre>" + html.escape("\n".join(record.commands)) + "</pre>")
        sources = record.results.get("sources", {})
        for title, frame in record.results.get("tables", {}).items():
            parts.append(f"<h3>{html.escape(title)}</h3>{_table(frame, source=sources.get(title, ''))}")
        figures = record.results.get("figures", {})
        if figures:
            parts.append("<div>" + "".join(_figure(t, png) for t, png in figures.items()) + "</div>")
        files = record.results.get("files", [])
        if files:
            parts.append("<p>Files: " + ", ".join(f"<code>{html.escape(str(f))}</code>" for f in files) + "</p>")
    parts.append("</body></html>")
    return "\n".join(parts)
