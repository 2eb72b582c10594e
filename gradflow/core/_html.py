"""The one place result objects build their JupyterLab HTML: escaping, badges, tables, inline SVG.

Every ``_repr_html_`` in gradflow is a `card`: a title, a coloured regime badge, a table of
the object's own numbers and, where a picture says more, a small inline SVG chart drawn
here without matplotlib (a few kB, no image files, nothing for the numeric core to import).
Strings are escaped at the last moment; only `Raw` (HTML built by this module) passes through.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

# Shared with the matplotlib plots (gradflow.core._plot), so a badge and a line agree in colour.
REGIME_COLORS = {
    "vanishing": "#3b6fb6",
    "neutral": "#6b6b6b",
    "exploding": "#c0503a",
    "inconclusive": "#a0a0a0",
}
MAX_POINTS = 300  # a sparkline never needs more vertices than it has pixels
MAX_DOT_LABELS = 12  # dots with labels get them written beside them up to this many (else tooltips)

# JupyterLab's theme variables, with the light theme's values as fallbacks (other front ends):
# the same display reads in light and dark themes. SVG presentation attributes do not take
# var(), so every colour below goes into a style attribute.
INK = "var(--jp-ui-font-color1, #333)"  # text, axis labels, reference lines drawn in "ink"
MUTED = "var(--jp-ui-font-color2, #666)"  # notes under a card
GUIDE = "var(--jp-ui-font-color3, #999)"  # reference lines, the unit circle
PLOT_AREA = "var(--jp-layout-color1, #f7f7f7)"  # white in light, dark grey in dark themes
FRAME = "var(--jp-border-color1, #ccc)"
BAND = "var(--jp-layout-color3, #e2e2e2)"
_INKS = {"#000", "#000000", "#111", "#222", "#333", "black", "k"}  # dark colours mean "ink"


def _paint(color: str) -> str:
    """A series colour for a style attribute: near-black becomes the theme's text colour."""
    return INK if color.lower() in _INKS else color


class Raw(str):
    """HTML made by this module: passed through by `cell`, `table` and `card` unescaped."""


def esc(value: object) -> str:
    """Escape any value's ``str`` for HTML text and attributes."""
    return html.escape(str(value), quote=True)


def cell(value: object) -> str:
    return value if isinstance(value, Raw) else esc(value)


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two ``#rrggbb`` (or ``#rgb``) colours (1 to 21; text wants >= 4.5)."""

    def luminance(colour: str) -> float:
        digits = colour[1:] if len(colour) == 7 else "".join(c * 2 for c in colour[1:])  # #rgb too
        channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def text_colour_on(background: str) -> str:
    """White or near-black, whichever reads better on ``background`` (the badges' colours are
    shared with the plots, so the text adapts to them, not the other way round)."""
    return max(("#fff", "#111"), key=lambda text: contrast_ratio(text, background))


def badge(regime: str | None, text: str | None = None) -> Raw:
    """A coloured pill for ``"vanishing"``, ``"neutral"``, ``"exploding"``; grey for no verdict."""
    key = regime if regime in REGIME_COLORS else "inconclusive"
    label = text if text is not None else (regime or "inconclusive")
    background = REGIME_COLORS[key]
    return Raw(
        f'<span style="background:{background};color:{text_colour_on(background)};border-radius:0.7em;'
        f'padding:0.05em 0.6em;font-size:0.85em;white-space:nowrap">{esc(label)}</span>'
    )


def table(
    rows: Iterable[Sequence[object]],
    header: Sequence[object] | None = None,
    bold: Iterable[bool] | None = None,
) -> Raw:
    """An HTML table; two-column rows without a header read as ``key | value``."""
    rows = [list(r) for r in rows]
    weights = list(bold) if bold is not None else [False] * len(rows)
    style = "text-align:left;padding:0.1em 0.6em;vertical-align:top"
    head = (
        ("<thead><tr>" + "".join(f'<th style="{style}">{cell(h)}</th>' for h in header) + "</tr></thead>")
        if header
        else ""
    )
    body = []
    for row, strong in zip(rows, weights, strict=True):
        lead = "th" if header is None else "td"
        cells = [f'<{lead} style="{style}">{cell(row[0])}</{lead}>']
        cells += [f'<td style="{style}">{cell(v)}</td>' for v in row[1:]]
        weight = ' style="font-weight:bold"' if strong else ""
        body.append(f"<tr{weight}>{''.join(cells)}</tr>")
    return Raw(
        f'<table style="border-collapse:collapse;margin:0">{head}<tbody>{"".join(body)}</tbody></table>'
    )


def card(
    title: str,
    subject: str | None,
    rows: Iterable[Sequence[object]],
    *,
    regime: str | bool | None = False,
    figure: Raw | None = None,
    note: str | None = None,
    header: Sequence[object] | None = None,
    bold: Iterable[bool] | None = None,
    badge_text: str | None = None,
) -> str:
    """A result's whole HTML: title, subject, badge (``regime=False``: none; ``badge_text`` in place
    of the regime's name), table, figure, note."""
    top = f"<b>{esc(title)}</b>"
    if subject is not None:
        top += f" &middot; <code>{esc(subject)}</code>"
    if regime is not False:
        top += " " + badge(regime if isinstance(regime, str) else None, badge_text)
    side = f'<div style="flex:0 0 auto">{cell(figure)}</div>' if figure else ""  # escaped unless Raw
    foot = f'<div style="color:{MUTED};font-size:0.85em;margin-top:0.3em">{esc(note)}</div>' if note else ""
    return (
        f'<div style="font-family:inherit;line-height:1.35">'
        f'<div style="margin-bottom:0.3em">{top}</div>'
        f'<div style="display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start">'
        f"<div>{table(rows, header, bold)}</div>{side}</div>{foot}</div>"
    )


def number(value: float, fmt: str = "+.4g", unit: str = "") -> str:
    """A float for a table: ``-inf`` and NaN spelt out, never an exception."""
    if value is None or np.isnan(value):
        return "n/a"
    text = "-inf" if value == -np.inf else "+inf" if value == np.inf else format(value, fmt)
    return f"{text} {unit}".rstrip()


# ---------------------------------------------------------------- inline SVG charts


@dataclass
class Series:
    """One thing a chart draws: a line (gaps at non-finite values) or dots."""

    x: np.ndarray
    y: np.ndarray
    color: str = "#333"  # near-black: the theme's text colour
    kind: str = "line"  # "line", "dash" or "dot"
    labels: Sequence[str] | None = None  # per dot: written beside it when few, and its tooltip
    tips: Sequence[str] | None = None  # per dot: a longer tooltip than its label


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= MAX_POINTS:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, MAX_POINTS).astype(int))
    return x[keep], y[keep]


def _fmt(v: float, span: float = 1.0) -> str:
    # Rounding noise (a log-norm of 1e-16 at lag 0) reads as 0 on an axis spanning 40 nats.
    return f"{0.0 if abs(v) < 1e-9 * max(abs(span), 1e-300) else v:.3g}"


def chart(
    series: Sequence[Series],
    *,
    xlabel: str,
    ylabel: str,
    width: int = 260,
    height: int = 120,
    hlines: Sequence[float] = (),
    vlines: Sequence[float] = (),
    band: tuple[float, float] | None = None,
    vertical_band: bool = False,
    unit_circle: bool = False,
    yticks: bool = True,
) -> Raw:
    """A small SVG chart with the data's ranges written on its axes, in the theme's colours.

    ``band`` shades a range of y (x when ``vertical_band``), e.g. the neutral band of rates; it is
    always within the axes (at least 2 px wide), so a caption may speak of it. ``unit_circle``
    draws it over the points and keeps the aspect ratio equal (a spectrum in the complex plane).
    Dots never reach the frame; labelled dots (few) have their label written beside them.
    """
    left, right, top, bottom = 46, 8, 8, 26
    w, h = width - left - right, height - top - bottom
    # A rate of -inf (exact vanishing) has no place on an axis: reference lines must be finite.
    hlines = [v for v in hlines if np.isfinite(v)]
    vlines = [v for v in vlines if np.isfinite(v)]
    if band is not None and not all(np.isfinite(band)):
        band = None
    xs = [np.asarray(s.x, dtype=float) for s in series]
    ys = [np.asarray(s.y, dtype=float) for s in series]
    fx = np.concatenate([a[np.isfinite(a)] for a in xs] + [np.array(vlines, dtype=float)])
    fy = np.concatenate([b[np.isfinite(b)] for b in ys] + [np.array(hlines, dtype=float)])
    if band is not None:  # the band is on the chart: the caption that mentions it is right
        if vertical_band:
            fx = np.append(fx, band)
        else:
            fy = np.append(fy, band)
    if unit_circle:
        fx, fy = np.append(fx, [-1.0, 1.0]), np.append(fy, [-1.0, 1.0])
    x0, x1 = (float(fx.min()), float(fx.max())) if fx.size else (0.0, 1.0)
    y0, y1 = (float(fy.min()), float(fy.max())) if fy.size else (0.0, 1.0)
    dots = [s for s in series if s.kind == "dot"]
    many = sum(len(s.x) for s in dots) > 40
    radius = 1.8 if many else 2.6
    if unit_circle:  # equal scales: widen the narrower range about its centre, room for a dot's disc
        span = max(x1 - x0, (y1 - y0) * w / h) * 1.04 * min(w, h) / (min(w, h) - 2 * (radius + 2))
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        x0, x1 = cx - span / 2, cx + span / 2
        y0, y1 = cy - span * h / w / 2, cy + span * h / w / 2
    if x1 - x0 <= 0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 - y0 <= 0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    ylo, yhi = y0, y1  # the labels name the data's range, not the padding around it
    xlo, xhi = x0, x1
    if not unit_circle:
        pad = 0.05 * (y1 - y0)
        y0, y1 = y0 - pad, y1 + pad
        if dots:  # a dot's whole disc inside the frame
            xpad = (radius + 2) / w * (x1 - x0)
            x0, x1 = x0 - xpad, x1 + xpad

    def px(v):
        return left + (np.asarray(v, dtype=float) - x0) / (x1 - x0) * w

    def py(v):
        return top + (y1 - np.asarray(v, dtype=float)) / (y1 - y0) * h

    parts = [f'<rect x="{left}" y="{top}" width="{w}" height="{h}" style="fill:{PLOT_AREA};stroke:{FRAME}"/>']
    if band is not None:
        lo, hi = band
        shade = f'style="fill:{BAND}"'
        if vertical_band:
            a, b = np.clip(px([lo, hi]), left, left + w)
            a, b = min(a, (a + b) / 2 - 1), max(b, (a + b) / 2 + 1)  # never thinner than 2 px
            parts.append(f'<rect x="{a:.1f}" y="{top}" width="{b - a:.1f}" height="{h}" {shade}/>')
        else:
            a, b = np.clip(py([hi, lo]), top, top + h)
            a, b = min(a, (a + b) / 2 - 1), max(b, (a + b) / 2 + 1)
            parts.append(f'<rect x="{left}" y="{a:.1f}" width="{w}" height="{b - a:.1f}" {shade}/>')
    for v in hlines:
        if y0 <= v <= y1:
            parts.append(
                f'<line x1="{left}" x2="{left + w}" y1="{py(v):.1f}" y2="{py(v):.1f}" '
                f'style="stroke:{GUIDE}" stroke-width="0.8"/>'
            )
    for v in vlines:
        parts.append(
            f'<line x1="{px(v):.1f}" x2="{px(v):.1f}" y1="{top}" y2="{top + h}" '
            f'style="stroke:{INK}" stroke-width="1.2" stroke-dasharray="4 3"/>'
        )
    text = f'font-size="9" font-family="sans-serif" style="fill:{INK}"'
    labelled = sum(len(s.x) for s in dots if s.labels is not None) <= MAX_DOT_LABELS
    for s, x, y in zip(series, xs, ys, strict=True):
        color = _paint(s.color)
        if s.kind == "dot":
            ok = np.isfinite(x) & np.isfinite(y)
            labels = s.labels if s.labels is not None else [""] * len(x)
            tips = s.tips if s.tips is not None else labels
            for xi, yi, label, tip in zip(
                px(x[ok]),
                py(y[ok]),
                np.asarray(labels, dtype=object)[ok],
                np.asarray(tips, dtype=object)[ok],
                strict=True,
            ):
                title = f"<title>{esc(tip)}</title>" if tip else ""
                parts.append(
                    f'<circle cx="{xi:.1f}" cy="{yi:.1f}" r="{radius}" style="fill:{color}" '
                    f'fill-opacity="{0.6 if many else 0.85}">{title}</circle>'
                )
                if label and labelled:  # beside the dot, on the side with more room
                    east = xi < left + w / 2
                    parts.append(
                        f'<text x="{xi + (5 if east else -5):.1f}" y="{yi + 3:.1f}" '
                        f'text-anchor="{"start" if east else "end"}" {text}>{esc(label)}</text>'
                    )
            continue
        x, y = _thin(x, y)
        ok = np.isfinite(x) & np.isfinite(y)
        path, pen = [], "M"
        for xi, yi, good in zip(px(x), py(y), ok, strict=True):
            if good:
                path.append(f"{pen}{xi:.1f} {yi:.1f}")
                pen = "L"
            else:
                pen = "M"  # a gap where the value is not finite (an exact zero: ln = -inf)
        dash = ' stroke-dasharray="4 3"' if s.kind == "dash" else ""
        if path:
            parts.append(
                f'<path d="{" ".join(path)}" fill="none" style="stroke:{color}" stroke-width="1.5"{dash}/>'
            )
    if unit_circle:  # over the points: a dense spectrum must not hide it
        parts.append(
            f'<ellipse cx="{px(0):.1f}" cy="{py(0):.1f}" rx="{px(1) - px(0):.1f}" '
            f'ry="{py(0) - py(1):.1f}" fill="none" style="stroke:{INK}" stroke-opacity="0.7" '
            f'stroke-width="1" stroke-dasharray="3 2"/>'
        )
    yspan, xspan = (yhi - ylo), (xhi - xlo)
    if yticks:  # off where y is only a row number
        parts += [
            f'<text x="{left - 3}" y="{py(v) + 3:.1f}" text-anchor="end" {text}>{esc(_fmt(v, yspan))}</text>'
            for v in (yhi, ylo)
        ]
    parts += [
        f'<text x="{left}" y="{top + h + 11}" {text}>{esc(_fmt(xlo, xspan))}</text>',
        f'<text x="{left + w}" y="{top + h + 11}" text-anchor="end" {text}>{esc(_fmt(xhi, xspan))}</text>',
        f'<text x="{left + w / 2:.0f}" y="{height - 3}" text-anchor="middle" {text}>{esc(xlabel)}</text>',
        f'<text x="9" y="{top + h / 2:.0f}" text-anchor="middle" {text} '
        f'transform="rotate(-90 9 {top + h / 2:.0f})">{esc(ylabel)}</text>',
    ]
    return Raw(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" class="gradflow-chart">{"".join(parts)}</svg>'
    )


def indexed(values: np.ndarray, ylabel: str, color: str = "#3b6fb6") -> Raw:
    """Values against their index 1..k, joined dots, beside zero (spectra of exponents)."""
    idx = np.arange(1, len(values) + 1)
    return chart(
        [Series(idx, values, color), Series(idx, values, color, "dot")],
        xlabel="index i",
        ylabel=ylabel,
        hlines=[0.0],
    )
