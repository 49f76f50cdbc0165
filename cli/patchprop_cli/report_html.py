"""The patch report as one self-contained HTML file: inline CSS and SVG, no script, no network.

Every figure shown carries `data-figure="<path in the JSON report>"` (and `data-unit="%"` for a
share shown as a percentage), so a test can check what a browser shows against the JSON.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any

OUTCOME_COLOURS = {
    "promoted": "#2e7d32",
    "succeeded": "#66bb6a",
    "blocked": "#f9a825",
    "held": "#8d6e63",
    "failed": "#c62828",
    "stopped": "#757575",
}
W, H, PAD = 560, 220, 40
CSS = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:16px;margin:0 0 8px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:16px}
section{border:1px solid #ddd;border-radius:6px;padding:12px}
table{border-collapse:collapse}td,th{padding:2px 10px 2px 0;text-align:left}
.fig{font-weight:600}.muted{color:#777}svg text{font-size:11px;fill:#444}
"""


def fmt(value: Any) -> str:
    """How a figure is shown: `-` for unknown, numbers without trailing zeros."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return escape(str(value))


def figure(path: str, value: Any, percent: bool = False) -> str:
    if percent and value is not None:
        return f'<span class="fig" data-figure="{path}" data-unit="%">{fmt(round(value * 100, 2))}%</span>'
    return f'<span class="fig" data-figure="{path}">{fmt(value)}</span>'


def _rows(pairs: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{v}</td></tr>" for k, v in pairs) + "</table>"


def _time(stamp: str | None) -> datetime | None:
    return datetime.fromisoformat(stamp) if stamp else None


def _svg(body: str, label: str, height: int = H) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" role="img" '
        f'aria-label="{escape(label)}" data-chart="{escape(label)}">{body}</svg>'
    )


def _axes(y_label: str, y_max: float, height: int = H) -> str:
    bottom = height - PAD
    return (
        f'<line x1="{PAD}" y1="{PAD / 2}" x2="{PAD}" y2="{bottom}" stroke="#999"/>'
        f'<line x1="{PAD}" y1="{bottom}" x2="{W - 10}" y2="{bottom}" stroke="#999"/>'
        f'<text x="4" y="{PAD / 2 - 4}">{escape(y_label)}</text>'
        f'<text x="4" y="{PAD / 2 + 10}">{fmt(round(y_max, 1))}</text><text x="24" y="{bottom}">0</text>'
    )


def time_to_patch_chart(r: dict[str, Any]) -> str:
    """Each landed patch event: when it was detected (x) and its time to patch (y)."""
    events = [e for e in r["events"] if e["minutes"] is not None]
    start, end = _time(r["since"]), _time(r["generated_at"])
    assert start and end
    span = max((end - start).total_seconds(), 1.0)
    top = max((e["minutes"] for e in events), default=1.0) or 1.0
    dots = []
    for e in events:
        detected = _time(e["detected_at"]) or start
        x = PAD + (W - PAD - 20) * (detected - start).total_seconds() / span
        y = (H - PAD) - (H - 1.5 * PAD) * e["minutes"] / top
        dots.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#1565c0" data-minutes="{e["minutes"]}">'
            f"<title>{escape(e['base'])}: {fmt(e['minutes'])} min</title></circle>"
        )
    median = r["time_to_patch"]["median_minutes"]
    if median is not None:
        y = (H - PAD) - (H - 1.5 * PAD) * median / top
        dots.append(
            f'<line x1="{PAD}" y1="{y:.1f}" x2="{W - 10}" y2="{y:.1f}" '
            'stroke="#1565c0" stroke-dasharray="4"/>'
        )
    foot = (
        f'<text x="{PAD}" y="{H - 12}">{r["since"][:10]}</text>'
        f'<text x="{W - 90}" y="{H - 12}">{r["generated_at"][:10]}</text>'
    )
    return _svg(_axes("minutes", top) + "".join(dots) + foot, "time to patch over time")


def coverage_chart(r: dict[str, Any]) -> str:
    """The share of images current at the end of each week."""
    weeks = r["weeks"]
    step = (W - PAD - 20) / max(len(weeks) - 1, 1)
    points = [(PAD + i * step, (H - PAD) - (H - 1.5 * PAD) * w["coverage"]) for i, w in enumerate(weeks)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    body = (
        _axes("coverage", 1.0) + f'<polyline points="{line}" fill="none" stroke="#2e7d32" stroke-width="2"/>'
    )
    for (x, y), w in zip(points, weeks, strict=True):
        body += (
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#2e7d32">'
            f"<title>{w['week']}: {w['coverage']:.0%}</title></circle>"
        )
        body += f'<text x="{x - 14:.1f}" y="{H - 24}">{w["week"][5:]}</text>'
    return _svg(body, "coverage over time")


def outcomes_chart(r: dict[str, Any]) -> str:
    """Rebuild outcomes per week, stacked."""
    weeks = r["weeks"]
    top = max((sum(w["outcomes"].values()) for w in weeks), default=1) or 1
    width = (W - PAD - 20) / max(len(weeks), 1)
    body = _axes("rebuilds", top)
    for i, w in enumerate(weeks):
        y = H - PAD
        for outcome, count in sorted(w["outcomes"].items()):
            tall = (H - 1.5 * PAD) * count / top
            y -= tall
            colour = OUTCOME_COLOURS.get(outcome, "#999")
            body += (
                f'<rect x="{PAD + i * width + 4:.1f}" y="{y:.1f}" '
                f'width="{width - 8:.1f}" height="{tall:.1f}" '
                f'fill="{colour}" data-outcome="{outcome}" data-count="{count}">'
                f"<title>{w['week']} {outcome}: {count}</title></rect>"
            )
        body += f'<text x="{PAD + i * width + 4:.1f}" y="{H - 24}">{w["week"][5:]}</text>'
    legend = "".join(
        f'<rect x="{PAD + 80 * i}" y="{H - 14}" width="10" height="10" fill="{c}"/>'
        f'<text x="{PAD + 80 * i + 14}" y="{H - 5}">{o}</text>'
        for i, (o, c) in enumerate(OUTCOME_COLOURS.items())
    )
    return _svg(body + legend, "outcomes per week")


def timeline_chart(r: dict[str, Any]) -> str:
    """The slowest cascades: each image's rebuild from its start to its promotion, in minutes
    after the patch was detected."""
    rows = [(e, s) for e in r["slowest"] for s in e["timeline"]]
    height = max(60, 24 + 18 * (len(rows) + len(r["slowest"])))
    top = max((e["minutes"] or 0 for e in r["slowest"]), default=1.0) or 1.0
    scale = (W - 200 - 20) / top
    body, y = "", 16
    for e in r["slowest"]:
        detected = _time(e["detected_at"])
        body += f'<text x="4" y="{y}" font-weight="bold">{escape(e["base"])} ({fmt(e["minutes"])} min)</text>'
        y += 18
        for span in e["timeline"]:
            begin, finish = _time(span["started_at"]), _time(span["finished_at"])
            if detected and begin and finish:
                begin = min(begin, finish)  # a record started after it was promoted: a sliver
                x0 = 200 + (begin - detected).total_seconds() / 60 * scale
                x1 = 200 + (finish - detected).total_seconds() / 60 * scale
                colour = OUTCOME_COLOURS.get(span["outcome"] or "", "#999")
                wide = max(x1 - x0, 2)
                body += f'<rect x="{x0:.1f}" y="{y - 11}" width="{wide:.1f}" height="12" fill="{colour}"/>'
            body += f'<text x="12" y="{y}">{escape(span["image"][-30:])}</text>'
            y += 18
    if not rows:
        body = '<text x="4" y="30">No landed patch in this window.</text>'
    return _svg(body, "slowest cascades", height)


def render_html(r: dict[str, Any]) -> str:
    """The whole report page."""
    ttp, cov, out, eff, comp = r["time_to_patch"], r["coverage"], r["outcomes"], r["effort"], r["compliance"]
    numbers = _rows(
        [
            ("patch events", figure("time_to_patch.events", ttp["events"])),
            ("landed / open / not landed / unknown", " / ".join(
                figure(f"time_to_patch.{k}", ttp[k]) for k in ("landed", "open", "not_landed", "unknown"))),
            ("time to patch: median (min)", figure("time_to_patch.median_minutes", ttp["median_minutes"])),
            ("p90 (min)", figure("time_to_patch.p90_minutes", ttp["p90_minutes"])),
            ("max (min)", figure("time_to_patch.max_minutes", ttp["max_minutes"])),
            ("coverage now", figure("coverage.share", cov["share"], percent=True)
             + f' ({figure("coverage.current", cov["current"])} of '
             + f'{figure("coverage.images", cov["images"])})'),
            ("behind / unknown",
             f'{figure("coverage.behind", cov["behind"])} / {figure("coverage.unknown", cov["unknown"])}'),
        ]
        + [(f"coverage: {o}", figure(f"coverage.by_owner.{o}.share", c["share"], percent=True))
           for o, c in cov["by_owner"].items()]
        + [(f"detection delay, {s} (median s)", figure(f"detection.{s}.median_seconds", d["median_seconds"])
            + f' <span class="muted">unknown {figure(f"detection.{s}.unknown", d["unknown"])}</span>')
           for s, d in r["detection"].items()]
    )  # fmt: skip
    work = _rows(
        [("rebuilds", figure("outcomes.rebuilds", out["rebuilds"]))]
        + [(o, figure(f"outcomes.by_outcome.{o}", n)) for o, n in out["by_outcome"].items()]
        + [(f"method: {m}", figure(f"outcomes.by_method.{m}", n)) for m, n in out["by_method"].items()]
        + [(f"fixed {s}", figure(f"outcomes.fixed_by_severity.{s}", n))
           for s, n in out["fixed_by_severity"].items() if n]
        + [("fixed: unknown (rebuilds)", figure("outcomes.fixed_unknown", out["fixed_unknown"]))]
        + [(f"kept off {s}", figure(f"outcomes.kept_off_by_severity.{s}", n))
           for s, n in out["kept_off_by_severity"].items() if n]
        + [
            ("rebuilds without a person", figure("effort.automated_rebuilds", eff["automated_rebuilds"])),
            ("hours saved", figure("effort.hours_saved", eff["hours_saved"])
             + ' <span class="muted">at '
             + figure("effort.minutes_per_manual_patch", eff["minutes_per_manual_patch"])
             + " min each</span>"),
            ("triage avoided (findings)", figure("effort.triage_avoided", eff["triage_avoided"])),
        ]
    )  # fmt: skip
    audit = _rows(
        [(label, figure(f"compliance.{key}", comp.get(key, 0))) for label, key in (
            ("promoted images", "promoted_images"), ("with SBOM", "with_sbom"), ("signed", "with_signature"),
            ("signature unknown", "signature_unknown"), ("base verified", "base_verified"),
            ("base verification unknown", "base_verified_unknown"), ("with provenance", "with_provenance"),
            ("base with no signature key", "base_not_configured"), ("base refused", "base_refused"))]
        + [("FIPS bases", escape(", ".join(comp["fips_bases"]) or "none")),
           ("images on FIPS bases", escape(", ".join(comp["fips_images"]) or "none"))]
    )  # fmt: skip
    slowest = _rows(
        [(f"{e['base']} @ {e['digest'][:19]}", figure(f"slowest.{i}.minutes", e["minutes"]) + " min")
         for i, e in enumerate(r["slowest"])]
    )  # fmt: skip
    owner = f" — owner {escape(r['owner'])}" if r.get("owner") else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>patchprop report</title><style>{CSS}</style></head>
<body>
<h1>patchprop patch report{owner}</h1>
<p class="muted">From {escape(r["since"][:19])} to {escape(r["generated_at"][:19])} UTC.
Definitions: README, “Fleet status and the patch report”.</p>
<div class="grid">
<section><h2>Time to patch and coverage</h2>{numbers}</section>
<section><h2>Time to patch over time</h2>{time_to_patch_chart(r)}</section>
<section><h2>Coverage over time</h2>{coverage_chart(r)}</section>
<section><h2>Outcomes per week</h2>{outcomes_chart(r)}</section>
<section><h2>Slowest cascades</h2>{slowest}{timeline_chart(r)}</section>
<section><h2>Outcomes and effort saved</h2>{work}</section>
<section><h2>Compliance</h2>{audit}</section>
</div>
</body></html>
"""
