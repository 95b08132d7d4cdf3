"""The monthly report as one self-contained HTML file: inline CSS and SVG charts, no
scripts, no fonts or images fetched, so it can be published as it is and read offline."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

RATES: tuple[tuple[str, str, str], ...] = (
    (
        "response_rate",
        "Response rate",
        "Dispatched cases that were signed for and whose citizen was first contacted by the "
        "first-response deadline (the clock starts at intake, not at sign-for), over the "
        "dispatched cases with a policy whose verdict is known.",
    ),
    (
        "resolution_rate",
        "Resolution rate (citizen-confirmed)",
        "Cases whose citizen said on the callback that the problem is solved, over the "
        "cases whose citizen answered that question (not the agency's own claim).",
    ),
    (
        "satisfaction_rate",
        "Satisfaction rate",
        "Ratings 'satisfied' or 'basically satisfied', over the cases that were rated "
        "(actual raters, not all cases).",
    ),
    (
        "participation_rate",
        "Participation rate",
        "Finished (resolved or closed) cases that received a rating, over the finished "
        "cases: how many citizens the satisfaction rate speaks for.",
    ),
)
RANKING_INPUTS = ("response_rate", "resolution_rate", "satisfaction_rate", "participation_rate")
LEVEL_TITLES = {"sub_district": "Sub-districts", "agency": "Agencies"}
BAR = "#2b6cb0"
MUTED = "#a0aec0"


def _pct(value: float | None) -> str:
    return "suppressed" if value is None else f"{value * 100:.1f}%"


def _rate_cell(rate: dict[str, Any] | None) -> str:
    if not rate:
        return "<td>-</td>"
    num = "-" if rate.get("numerator") is None else str(rate["numerator"])
    return (
        f"<td><b>{_pct(rate.get('rate'))}</b>"
        f'<span class="nd">{num} / {rate.get("denominator", 0)}</span></td>'
    )


def bar_chart(
    rows: Sequence[tuple[str, float | None, str]],
    *,
    maximum: float,
    label: str,
    width: int = 720,
) -> str:
    """Horizontal bars: (name, value or None for suppressed, caption at the bar's end)."""
    bar_h, gap, caption_w = 22, 8, 170
    # ~7.5 px per character of 13 px text: names are never cut off on the left.
    name_w = min(width // 2, 16 + int(7.5 * max((len(r[0]) for r in rows), default=10)))
    height = max(1, len(rows)) * (bar_h + gap) + gap
    plot_w = width - name_w - caption_w
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(label)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
    ]
    for i, (name, value, caption) in enumerate(rows):
        y = gap + i * (bar_h + gap)
        length = 0.0 if value is None or maximum <= 0 else max(0.0, value) / maximum * plot_w
        parts.append(
            f'<text x="{name_w - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end">'
            f"{escape(name)}</text>"
        )
        parts.append(
            f'<rect class="track" x="{name_w}" y="{y}" width="{plot_w}" height="{bar_h}" '
            f'fill="#edf2f7"/>'
        )
        if value is not None:
            parts.append(
                f'<rect class="bar" x="{name_w}" y="{y}" width="{length:.1f}" '
                f'height="{bar_h}" fill="{BAR}"/>'
            )
        parts.append(
            f'<text x="{name_w + plot_w + 8}" y="{y + bar_h * 0.7:.1f}" '
            f'fill="{MUTED if value is None else "#1a202c"}">{escape(caption)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _unit_name(entry: dict[str, Any], level: str) -> str:
    if level == "sub_district":
        return f"{entry.get('sub_district') or '?'} ({entry.get('district') or '?'})"
    return str(entry.get("agency") or "?")


def _ranking_section(ranking: dict[str, Any], level: str) -> str:
    ranked = ranking.get("ranked", [])
    unranked = ranking.get("unranked", [])
    weights = ranking.get("config", {}).get("normalized_weights", {})
    formula = " + ".join(f"{w:.2f} x {escape(name)}" for name, w in weights.items())
    chart = bar_chart(
        [(f"{e['rank']}. {_unit_name(e, level)}", e["index"], f"{e['index']:.1f}") for e in ranked],
        maximum=100.0,
        label=f"Composite index of {LEVEL_TITLES[level].lower()}",
    )
    header = "".join(f"<th>{escape(name.replace('_', ' '))}</th>" for name in RANKING_INPUTS)
    body = []
    for entry in ranked + unranked:
        inputs = entry.get("inputs", {})
        rank = entry.get("rank", "not ranked")
        index = "-" if entry.get("index") is None else f"{entry['index']:.1f}"
        cells = "".join(_rate_cell(inputs.get(name)) for name in RANKING_INPUTS)
        body.append(
            f"<tr><td>{rank}</td><td>{escape(_unit_name(entry, level))}</td>"
            f"<td>{entry.get('cases', '-')}</td><td><b>{index}</b></td>{cells}</tr>"
        )
    return (
        f"<h2>Ranking: {LEVEL_TITLES[level]}</h2>"
        f'<p class="formula">index = 100 x ({formula or "no weights"})</p>'
        f'<figure data-chart="ranking-{level}">{chart}</figure>'
        f"<table><thead><tr><th>rank</th><th>{LEVEL_TITLES[level][:-1]}</th><th>cases</th>"
        f"<th>index</th>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f'<p class="note">{len(unranked)} unit(s) not ranked: fewer than '
        f"{ranking.get('min_cases')} cases, or a weighted rate suppressed.</p>"
    )


def render_report(data: dict[str, Any]) -> str:
    """The report for ``streams.reporting.monthly.monthly_report_data``'s result."""
    month = escape(str(data["month"]))
    city = data.get("city") or {}
    rate_rows = []
    definitions = []
    for key, title, definition in RATES:
        rate = city.get(key) or {}
        value = rate.get("rate")
        caption = (
            f"{_pct(value)} ({rate.get('numerator', '-')} / {rate.get('denominator', 0)})"
            if value is not None
            else f"suppressed (n = {rate.get('denominator', 0)})"
        )
        rate_rows.append((title, value, caption))
        definitions.append(
            f"<dt>{escape(title)}</dt><dd>{escape(definition)} "
            f"This month: numerator {rate.get('numerator', '-')}, denominator "
            f"{rate.get('denominator', 0)}.</dd>"
        )
    city_chart = bar_chart(rate_rows, maximum=1.0, label=f"City-wide rates, {month}")
    agencies = data.get("by_agency", [])
    agency_rows = "".join(
        f"<tr><td>{escape(str(a['group'].get('agency') or '?'))}</td><td>{a.get('cases', '-')}</td>"
        + "".join(_rate_cell(a.get(key)) for key, _, _ in RATES)
        + "</tr>"
        for a in agencies
    )
    on_time = data.get("on_time") or {}
    on_time_text = ", ".join(
        f"{label}: {_pct((on_time.get(key) or {}).get('rate'))}"
        for key, label in (("first_response", "first response"), ("resolution", "resolution"))
    )
    rankings = "".join(
        _ranking_section(data["ranking"][level], level) for level in ("sub_district", "agency")
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>civicpulse monthly report {month}</title>
<style>
body {{ font-family: system-ui, sans-serif; color: #1a202c; max-width: 1100px;
       margin: 2rem auto; padding: 0 1rem; }}
h1 {{ margin-bottom: .2rem; }} .meta {{ color: #4a5568; }}
table {{ border-collapse: collapse; width: 100%; margin: .8rem 0; font-size: .9rem; }}
th, td {{ border-bottom: 1px solid #e2e8f0; padding: .3rem .5rem; text-align: left; }}
td .nd {{ display: block; color: #718096; font-size: .8rem; }}
svg.chart text {{ font: 13px system-ui, sans-serif; }}
.formula, .note {{ color: #4a5568; font-size: .9rem; }}
dt {{ font-weight: 600; margin-top: .6rem; }}
</style></head>
<body>
<h1>How the city answered its citizens: {month}</h1>
<p class="meta">Cases opened in {month} ({escape(str(data.get("timezone")))}), as recorded
by {data.get("generated_at")}. Cases: {city.get("cases", 0)}. Groups with fewer than
{data.get("min_cases")} cases and rates with smaller denominators are suppressed to protect
the people behind them. On time: {on_time_text}.</p>
<h2>The three rates, city-wide</h2>
<figure data-chart="city-rates">{city_chart}</figure>
<h2>By agency</h2>
<table><thead><tr><th>agency</th><th>cases</th>
{"".join(f"<th>{escape(t)}</th>" for _, t, _ in RATES)}</tr></thead>
<tbody>{agency_rows}</tbody></table>
{rankings}
<h2>Definitions</h2>
<dl>{"".join(definitions)}</dl>
<p class="note">Numerators and denominators are counts of cases. Full definitions, clocks
and the ranking formula: docs/metrics.md of the civicpulse project. Callbacks and ratings
arrive after resolution, so a month's rates can still move for some weeks; the time of
this report is stated above.</p>
</body></html>
"""
