"""The monitor report as one self-contained HTML page: verdicts, plots (inline SVG, drawn by matplotlib), tables.

Everything taken from posts (slang, examples) is HTML-escaped; the page loads nothing from the network.
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

__all__ = ["write_html"]

_COLOURS = {"ok": "#2e7d32", "watch": "#ef6c00", "alert": "#c62828"}
_STYLE = """
body{font-family:-apple-system,"Segoe UI","Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
th{background:#f3f3f3}.verdict{color:#fff;padding:2px 8px;border-radius:4px;font-weight:bold}
.plots{display:flex;flex-wrap:wrap;gap:1em}.plots svg{max-width:560px;height:auto}.ex{color:#555;font-size:90%}
"""


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _plots(report: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    windows = report["windows"]
    names = [w["name"] for w in windows]
    x = list(range(len(windows)))
    figures = []
    figure, axis = plt.subplots(figsize=(6, 3.2))
    for decision, colour in (("review", "#ef6c00"), ("block", "#c62828")):
        rates = [w["rates"].get("default", {}).get(decision) for w in windows]
        shares = [r["share"] if r else 0 for r in rates]
        low = [max(0.0, s - (r["low"] if r else 0.0)) for s, r in zip(shares, rates)]  # Wilson: never negative
        high = [max(0.0, (r["high"] if r else 0.0) - s) for s, r in zip(shares, rates)]
        errors = [low, high]
        axis.errorbar(x, shares, yerr=errors, marker="o", capsize=3, label=decision, color=colour)
    axis.set_title("decision rates, default policy (99% intervals)")
    figures.append(_finish(axis, x, names, figure, percent=True))
    figure, axis = plt.subplots(figsize=(6, 3.2))
    for step in windows[0]["input"]["steps"] if windows else ():
        axis.plot(x, [w["input"]["steps"][step]["share"] for w in windows], marker="o", label=step)
    axis.set_title("share of posts each normalization step changed")
    figures.append(_finish(axis, x, names, figure, percent=True))
    figure, axis = plt.subplots(figsize=(6, 3.2))
    for w in windows:
        hist = w["risk"].get("default", {}).get("histogram")
        if hist and sum(hist):
            total = sum(hist)
            axis.step(
                [i / len(hist) for i in range(len(hist))],
                [max(h / total, 1e-6) for h in hist],
                where="post",
                label=w["name"],
            )
    axis.set_yscale("log")
    axis.set_xlabel("risk")
    axis.set_title("risk distribution per window (share of posts)")
    axis.legend(fontsize=7)
    figures.append(_svg(figure))
    figure, axis = plt.subplots(figsize=(6, 3.2))
    axis.plot(x, [w["input"]["oov_words"] for w in windows], marker="o", label="words")
    axis.plot(x, [w["input"]["oov_char_ngrams"] for w in windows], marker="o", label="char n-grams")
    axis.set_title("out-of-vocabulary share")
    figures.append(_finish(axis, x, names, figure, percent=True))
    return figures


def _finish(axis: Any, x: list[int], names: list[str], figure: Any, percent: bool) -> str:
    from matplotlib.ticker import PercentFormatter

    axis.set_xticks(x, [n[:16] for n in names], rotation=30, ha="right", fontsize=8)
    if percent:
        axis.yaxis.set_major_formatter(PercentFormatter(1.0))
    axis.legend(fontsize=7)
    return _svg(figure)


def _e(value: Any) -> str:
    return html.escape(str(value))


def _badge(verdict: str) -> str:
    return f'<span class="verdict" style="background:{_COLOURS.get(verdict, "#555")}">{_e(verdict)}</span>'


def _summary(report: dict[str, Any]) -> str:
    rows = []
    for w in report["windows"]:
        default = w["rates"].get("default", {})
        flagged = sum(default.get(d, {}).get("share", 0) for d in ("review", "block"))
        reasons = "<br>".join(_e(r) for r in w["reasons"]) or "nothing moved"
        rows.append(
            f"<tr><td>{_e(w['name'])}</td><td>{_badge(w['verdict'])}</td><td>{w['rows']:,}</td><td>{w['errors']:,}</td>"
            f"<td>{flagged:.2%}</td><td>{default.get('block', {}).get('share', 0):.2%}</td><td>{reasons}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("window", "verdict", "posts", "errors", "flagged", "blocked", "why"))
    head = f"<tr>{head}</tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _slang(window: dict[str, Any]) -> str:
    if not window["slang"]:
        return "<p>No new slang.</p>"
    rows = []
    for e in window["slang"]:
        examples = "<br>".join(f'<span class="ex">{_e(t)}</span>' for t in e.get("examples", []))
        rows.append(
            f"<tr><td><b>{_e(e['term'])}</b></td><td>{e['g2']:.1f}</td><td>{e['posts']}</td><td>{e['share']:.2%}</td>"
            f"<td>{e['earlier_share']:.2%}</td><td>{e['model_weight']:.3f}</td><td>{examples}</td></tr>"
        )
    head = (
        "<tr><th>term</th><th>G²</th><th>signal posts</th><th>share</th><th>earlier share</th><th>model weight</th>"
        "<th>examples</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>"


def _window_section(window: dict[str, Any]) -> str:
    stopped = "".join(
        f"<li>{_e(s['kind'])} <b>{_e(s['name'])}</b>: expected {s['expected']}, seen 0</li>" for s in window["stopped"]
    )
    steps = ", ".join(f"{_e(k)} {v['share']:.2%}" for k, v in window["input"]["steps"].items())
    drift = "; ".join(
        f"{_e(p)}: PSI {d['psi_previous']:.3f} (noise {d['psi_noise_previous']:.3f})"
        for p, d in window["risk"].items()
        if "psi_previous" in d
    )
    return (
        f"<h3>{_e(window['name'])} {_badge(window['verdict'])}</h3>"
        f"<p>{window['rows']:,} posts, {window['input']['posts_read']:,} read for text (rate {window['text_rate']}), "
        f"{window['signal_posts']:,} signal posts. Steps: {steps}. "
        f"OOV words {window['input']['oov_words']:.1%}, char n-grams {window['input']['oov_char_ngrams']:.1%}. "
        f"{('Risk shift: ' + drift) if drift else ''}</p>"
        f"<h4>New slang</h4>{_slang(window)}" + (f"<h4>Stopped firing</h4><ul>{stopped}</ul>" if stopped else "")
    )


def _reference(report: dict[str, Any]) -> str:
    if not report["reference"]:
        return "none in this artifact (trained before monitoring, or no model given)"
    return f"{report['reference']['rows']:,} validation rows"


def write_html(report: dict[str, Any], path: str | Path) -> Path:
    """Write ``report`` (from :func:`duanka.adapters.monitor.build_report`) as one HTML page."""
    model = report.get("model") or {}
    plots = "".join(f"<div>{svg}</div>" for svg in _plots(report)) if report["windows"] else ""
    thresholds = ", ".join(f"{_e(k)} {_e(v)}" for k, v in report["thresholds"].items())
    problems = "".join(f"<li>{_e(p)}</li>" for p in report["unreadable_rows"])
    page = (
        "<!DOCTYPE html><html lang='zh'><head><meta charset='utf-8'><title>duanka monitor</title>"
        f"<style>{_STYLE}</style></head><body><h1>duanka monitor</h1>"
        f"<p>model {_e(model.get('model_version', 'none'))}; reference: {_reference(report)}</p>"
        f"<h2>Verdicts</h2>{_summary(report)}<h2>Over the windows</h2><div class='plots'>{plots}</div>"
        f"<h2>Windows</h2>{''.join(_window_section(w) for w in report['windows'])}"
        + (f"<h2>Unreadable rows</h2><ul>{problems}</ul>" if problems else "")
        + f"<h2>Thresholds</h2><p>{thresholds}</p></body></html>"
    )
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path
