"""Charts drawn on the server as SVG text: stacked bars over time, line series and a funnel.

Pure functions from numbers to markup (no I/O, no state): the pages embed the result inline, so
the console needs no chart library and no JavaScript. Every label is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from markupsafe import Markup

PALETTE = ("#d64545", "#e8833a", "#d6b43c", "#3f8fd2", "#7a5cc7", "#2f9e77", "#8c8c8c", "#c2549b")


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _nice_max(value: int) -> int:
    """The axis top: the value rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _legend(names: Sequence[str], x: float, y: float) -> list[str]:
    parts = []
    for i, name in enumerate(names):
        row_y = y + i * 18
        parts.append(f'<rect x="{x:.1f}" y="{row_y:.1f}" width="12" height="12" fill="{_colour(i)}"/>')
        parts.append(f'<text x="{x + 18:.1f}" y="{row_y + 10:.1f}" class="legend">{escape(name)}</text>')
    return parts


def stacked_bars(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[int]]],
    *,
    title: str,
    axis: tuple[str, str] | None = None,
    width: int = 900,
    height: int = 240,
    legend_width: int = 280,
) -> str:
    """One bar per label (a time slice), stacked by series (e.g. failure reason), with a legend.
    `axis` names the two ends of the time axis (by default the first and last labels)."""
    plot_w = width - legend_width - 50
    plot_h = height - 40
    left, top = 40, 10
    totals = [sum(values[i] for _, values in series) for i in range(len(labels))]
    top_value = _nice_max(max(totals, default=0))
    slot = plot_w / max(len(labels), 1)
    bar_w = max(slot * 0.8, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="chart" role="img"'
        f' aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" class="axis"/>',
        f'<text x="{left - 6}" y="{top + 8}" class="tick" text-anchor="end">{top_value}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" class="tick" text-anchor="end">0</text>',
    ]
    for i, label in enumerate(labels):
        x = left + i * slot + (slot - bar_w) / 2
        y: float = top + plot_h
        for s, (name, values) in enumerate(series):
            if not values[i]:
                continue
            h = values[i] / top_value * plot_h
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{_colour(s)}">'
                f"<title>{escape(label)} {escape(name)}: {values[i]}</title></rect>"
            )
    ends = axis or ((labels[0], labels[-1]) if labels else None)
    if ends:
        parts.append(f'<text x="{left}" y="{height - 8}" class="tick">{escape(ends[0])}</text>')
        parts.append(
            f'<text x="{left + plot_w}" y="{height - 8}" class="tick" text-anchor="end">{escape(ends[1])}</text>'
        )
    if not any(totals):
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" class="empty" text-anchor="middle">'
            "nothing in this window</text>"
        )
    parts.extend(_legend([name for name, _ in series], width - legend_width + 10, top))
    parts.append("</svg>")
    return "".join(parts)


def lines(
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    title: str,
    width: int = 900,
    height: int = 220,
    legend_width: int = 160,
) -> str:
    """Line series over the same labels (e.g. messages per minute by status)."""
    plot_w = width - legend_width - 50
    plot_h = height - 40
    left, top = 40, 10
    peak = max((max(values, default=0) for _, values in series), default=0)
    top_value = _nice_max(int(peak) + (0 if peak == int(peak) else 1))
    step = plot_w / max(len(labels) - 1, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="chart" role="img"'
        f' aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" class="axis"/>',
        f'<text x="{left - 6}" y="{top + 8}" class="tick" text-anchor="end">{top_value}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" class="tick" text-anchor="end">0</text>',
    ]
    for s, (name, values) in enumerate(series):
        points = " ".join(
            f"{left + i * step:.1f},{top + plot_h - v / top_value * plot_h:.1f}" for i, v in enumerate(values)
        )
        parts.append(f'<polyline points="{points}" fill="none" stroke="{_colour(s)}" stroke-width="2">')
        parts.append(f"<title>{escape(name)}</title></polyline>")
    if labels:
        parts.append(f'<text x="{left}" y="{height - 8}" class="tick">{escape(labels[0])}</text>')
        parts.append(
            f'<text x="{left + plot_w}" y="{height - 8}" class="tick" text-anchor="end">{escape(labels[-1])}</text>'
        )
    parts.extend(_legend([name for name, _ in series], width - legend_width + 10, top))
    parts.append("</svg>")
    return "".join(parts)


def funnel(stages: Sequence[tuple[str, int]], *, title: str, width: int = 560) -> str:
    """Horizontal bars, one per stage, scaled to the first; each shows its count and its share of
    the stage before it (the conversion from one step to the next)."""
    row_h, label_w = 30, 110
    height = row_h * len(stages) + 10
    first = stages[0][1] if stages else 0
    scale = (width - label_w - 150) / max(first, max((n for _, n in stages), default=0), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="chart funnel" role="img"'
        f' aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    previous: int | None = None
    for i, (name, count) in enumerate(stages):
        y = 5 + i * row_h
        share = "" if previous is None else (f" ({count / previous:.0%})" if previous else " (-)")
        parts.append(f'<text x="{label_w - 8}" y="{y + 18}" class="label" text-anchor="end">{escape(name)}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y}" width="{max(count * scale, 1):.1f}" height="{row_h - 8}"'
            f' fill="{_colour(3 + i)}"><title>{escape(name)}: {count}</title></rect>'
        )
        parts.append(
            f'<text x="{label_w + count * scale + 8:.1f}" y="{y + 18}" class="value">{count}{escape(share)}</text>'
        )
        previous = count
    parts.append("</svg>")
    return "".join(parts)


def as_markup(svg: str) -> Markup:
    # Built by gateway.ui.charts, which escapes every label it draws.
    return Markup(svg)


def time_label(ts: float, span: float) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%H:%M" if span <= 2 * 86400 else "%m-%d %H:%M")
