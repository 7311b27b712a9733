"""Inline SVG charts, drawn in Python: no script, no font or file from anywhere.

Pixel positions are floats (geometry only); every figure a reader sees, in a tooltip (<title>) or a
label, is the exact Decimal formatted by `money`. Each chart is an <svg data-chart="..."> whose data
marks carry class "mark" (and data-value, the exact amount), so a test can count them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html import escape

PROVIDER_COLOURS = {"retell": "#4e79a7", "twilio": "#e15759", "openrouter": "#59a14f"}
OTHER_COLOURS = ("#f28e2b", "#76b7b2", "#edc948", "#b07aa1", "#9c755f")
SERIES_COLOURS = ("#4e79a7", "#a0cbe8", "#bab0ac")
FONT = "font-family:system-ui,sans-serif"
LABEL_CHARS = 34  # longer group labels are cut in the chart (the tooltip and the table have them whole)


def money(value: Decimal | None, unit: str = "USD") -> str:
    """The exact amount with thousands separators and at least two decimals: 1,234.5678 USD."""
    if value is None:
        return "unpriced"
    exponent = value.normalize().as_tuple().exponent  # 1.86520 has four significant decimals, 0E-7 none
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    return f"{value:,.{places}f} {unit}".strip()


def provider_colour(provider: str, providers: Sequence[str]) -> str:
    if provider in PROVIDER_COLOURS:
        return PROVIDER_COLOURS[provider]
    others = [p for p in providers if p not in PROVIDER_COLOURS]
    return OTHER_COLOURS[others.index(provider) % len(OTHER_COLOURS)] if provider in others else OTHER_COLOURS[0]


def _nice_ticks(maximum: float, count: int = 4) -> list[float]:
    """Round axis values from 0 covering `maximum`."""
    if maximum <= 0:
        return [0.0, 1.0]
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [step * n for n in range(math.ceil(maximum / step) + 1)]


def _axis_label(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == 0 else f"{value:,.2f}".rstrip("0").rstrip(".")


def _svg_open(chart: str, width: int, height: int, title: str) -> list[str]:
    chart_id = f"chart-{chart}"
    return [f'<svg xmlns="http://www.w3.org/2000/svg" data-chart="{escape(chart)}" role="img" '
            f'aria-labelledby="{chart_id}-title" viewBox="0 0 {width} {height}" width="100%" '
            f'style="max-width:{width}px;{FONT}" font-size="11">',
            f'<title id="{chart_id}-title">{escape(title)}</title>']


def _empty(parts: list[str], width: int, height: int, message: str) -> str:
    parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#666">{escape(message)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


@dataclass(frozen=True)
class DayStack:
    day: date
    values: dict[str, Decimal]  # provider -> settled cost
    unpriced_events: int  # pending or expired events that day: its bar is not the whole cost yet


def daily_cost_chart(days: Sequence[DayStack], providers: Sequence[str], title: str) -> str:
    """Stacked bars: cost per provider per UTC day; a marker above a day whose prices are not all in."""
    width, height = 760, 300
    left, right, top, bottom = 64, 12, 34, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = _svg_open("daily-cost", width, height, title)
    totals = [sum(d.values.values(), Decimal(0)) for d in days]
    if not days or not any(totals) and not any(d.unpriced_events for d in days):
        return _empty(parts, width, height, "no usage in this window")
    ticks = _nice_ticks(float(max(totals)))
    scale = plot_h / ticks[-1]
    for tick in ticks:
        y = top + plot_h - tick * scale
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">'
                     f'{_axis_label(tick)}</text>')
    parts.append(f'<text x="{left - 6}" y="{top - 12}" text-anchor="end" fill="#555">USD</text>')
    slot = plot_w / len(days)
    bar = max(min(slot * 0.72, 40), 1)
    label_every = max(1, math.ceil(len(days) / 12))
    for index, day in enumerate(days):
        x = left + index * slot + (slot - bar) / 2
        y = top + plot_h
        for provider in providers:
            value = day.values.get(provider)
            if not value:
                continue
            h = float(value) * scale
            y -= h
            parts.append(
                f'<rect class="mark" data-day="{day.day.isoformat()}" data-provider="{escape(provider)}" '
                f'data-value="{value}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{max(h, 0.5):.1f}" '
                f'fill="{provider_colour(provider, providers)}"><title>{day.day.isoformat()} {escape(provider)}: '
                f'{escape(money(value))}</title></rect>')
        if day.unpriced_events:
            cx = x + bar / 2
            parts.append(
                f'<path class="pending-marker" data-day="{day.day.isoformat()}" '
                f'd="M{cx - 5:.1f},{y - 10:.1f} L{cx + 5:.1f},{y - 10:.1f} L{cx:.1f},{y - 3:.1f} Z" '
                f'fill="#f2a900"><title>{day.day.isoformat()}: {day.unpriced_events} event(s) not priced yet; '
                f'the bar shows settled costs only</title></path>')
        if index % label_every == 0 or index == len(days) - 1:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                         f'fill="#555">{day.day:%m-%d}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#999"/>')
    legend_x = left
    for provider in [*providers, "not all priced"]:
        if provider == "not all priced":
            parts.append(f'<path d="M{legend_x},{8} L{legend_x + 10},{8} L{legend_x + 5},{15} Z" fill="#f2a900"/>')
        else:
            parts.append(f'<rect x="{legend_x}" y="5" width="10" height="10" '
                         f'fill="{provider_colour(provider, providers)}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="14">{escape(provider)}</text>')
        legend_x += 24 + 7 * len(provider)
    parts.append("</svg>")
    return "\n".join(parts)


@dataclass(frozen=True)
class BarGroup:
    label: str
    values: Sequence[Decimal | None]  # one per series; None: nothing to draw


def grouped_bar_chart(chart: str, groups: Sequence[BarGroup], series: Sequence[str], title: str) -> str:
    """Horizontal bars, one group per label and one bar per series (e.g. this cycle to date, the
    previous cycle at the same point, the previous cycle in full)."""
    label_w, right, top, bar_h, gap = 220, 150, 30, 14, 12
    width = 760
    group_h = bar_h * len(series) + gap
    height = top + max(1, len(groups)) * group_h + 8
    parts = _svg_open(chart, width, height, title)
    values = [v for g in groups for v in g.values if v is not None]
    if not groups or not values:
        return _empty(parts, width, height, "nothing to compare")
    maximum = max(float(max(values)), 0.0)
    plot_w = width - label_w - right
    scale = plot_w / maximum if maximum > 0 else 0
    legend_x = label_w
    for index, name in enumerate(series):
        parts.append(f'<rect x="{legend_x}" y="6" width="10" height="10" fill="{SERIES_COLOURS[index]}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="15">{escape(name)}</text>')
        legend_x += 30 + 7 * len(name)
    for row, group in enumerate(groups):
        y0 = top + row * group_h
        label = group.label if len(group.label) <= LABEL_CHARS else group.label[:LABEL_CHARS - 1] + "…"
        parts.append(f'<text x="{label_w - 8}" y="{y0 + bar_h * len(series) / 2 + 4:.1f}" text-anchor="end">'
                     f'{escape(label)}</text>')
        for index, value in enumerate(group.values):
            y = y0 + index * bar_h
            if value is None:
                parts.append(f'<text x="{label_w + 4}" y="{y + bar_h - 3}" fill="#888">none</text>')
                continue
            w = max(float(value) * scale, 0)
            parts.append(f'<rect class="mark" data-group="{escape(group.label)}" data-series="{escape(series[index])}" '
                         f'data-value="{value}" x="{label_w}" y="{y + 1}" width="{max(w, 1):.1f}" '
                         f'height="{bar_h - 2}" fill="{SERIES_COLOURS[index]}"><title>{escape(group.label)}, '
                         f'{escape(series[index])}: {escape(money(value))}</title></rect>')
            parts.append(f'<text x="{label_w + max(w, 1) + 4:.1f}" y="{y + bar_h - 3}" fill="#333">'
                         f'{escape(money(value))}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
