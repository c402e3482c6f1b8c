"""The front drawn: cost against p99 latency, as terminal text and as a small SVG.

Both are drawn here: a scatter of a few dozen points with two axes does not justify a
plotting library (matplotlib is not a dependency of swarmperf), and the SVG is one
self-contained file that fetches nothing.
"""

from __future__ import annotations

import html
from collections.abc import Sequence


def _scale(value: float, low: float, high: float, size: int) -> float:
    return 0.0 if high <= low else (value - low) / (high - low) * size


def terminal(
    costs: Sequence[float],
    p99s: Sequence[float],
    chosen: int | None,
    *,
    width: int = 60,
    height: int = 14,
) -> str:
    """A text scatter: cost across, p99 up; `*` the front, `@` the recommended point."""
    grid = [[" "] * width for _ in range(height)]
    c_lo, c_hi = min(costs), max(costs)
    p_lo, p_hi = min(p99s), max(p99s)
    for i, (c, p) in enumerate(zip(costs, p99s, strict=True)):
        x = min(width - 1, round(_scale(c, c_lo, c_hi, width - 1)))
        y = height - 1 - min(height - 1, round(_scale(p, p_lo, p_hi, height - 1)))
        grid[y][x] = "@" if i == chosen else ("*" if grid[y][x] != "@" else "@")
    lines = [f"p99 {p_hi * 1e3:,.0f} ms"]
    lines += ["  |" + "".join(row) for row in grid]
    lines.append("  +" + "-" * width)
    lines.append(f"   {c_lo:,.4g}/h{' ' * max(1, width - 20)}{c_hi:,.4g}/h  (cost)")
    lines.append(f"p99 {p_lo * 1e3:,.0f} ms at the bottom; @ recommended, * the front")
    return "\n".join(lines)


def svg(
    costs: Sequence[float],
    p99s: Sequence[float],
    chosen: int | None,
    *,
    currency: str = "USD",
    width: int = 640,
    height: int = 400,
) -> str:
    """The front as an SVG scatter with axes, the recommended point in its own colour."""
    left, right, top, bottom = 70, 20, 30, 50
    w, h = width - left - right, height - top - bottom
    c_lo, c_hi = min(costs), max(costs)
    p_lo, p_hi = min(p99s), max(p99s)
    if c_hi <= c_lo:
        c_lo, c_hi = c_lo * 0.9, c_hi * 1.1 + 1e-9
    if p_hi <= p_lo:
        p_lo, p_hi = p_lo * 0.9, p_hi * 1.1 + 1e-9
    # A margin, so that the end points do not sit on the axes.
    pad_c, pad_p = (c_hi - c_lo) * 0.05, (p_hi - p_lo) * 0.05
    c_lo, c_hi, p_lo, p_hi = c_lo - pad_c, c_hi + pad_c, max(0.0, p_lo - pad_p), p_hi + pad_p
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="14">Pareto front: cost against p99 latency</text>',
        f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" stroke="black"/>',
    ]
    for j in range(5):
        cv = c_lo + (c_hi - c_lo) * j / 4
        pv = p_lo + (p_hi - p_lo) * j / 4
        x = left + w * j / 4
        y = top + h - h * j / 4
        parts.append(f'<text x="{x:.1f}" y="{top + h + 16}" text-anchor="middle">{cv:.3g}</text>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{pv * 1e3:.0f}</text>'
        )
    parts.append(
        f'<text x="{left + w / 2}" y="{height - 10}" text-anchor="middle">'
        f"cost per hour ({html.escape(currency)})</text>"
    )
    parts.append(
        f'<text x="14" y="{top + h / 2}" transform="rotate(-90 14 {top + h / 2})" '
        'text-anchor="middle">p99 latency (ms)</text>'
    )
    points = sorted(zip(costs, p99s, strict=True))
    path = " ".join(
        f"{left + _scale(c, c_lo, c_hi, w):.1f},{top + h - _scale(p, p_lo, p_hi, h):.1f}"
        for c, p in points
    )
    parts.append(f'<polyline points="{path}" fill="none" stroke="#9ab" stroke-dasharray="4 3"/>')
    for i, (c, p) in enumerate(zip(costs, p99s, strict=True)):
        x = left + _scale(c, c_lo, c_hi, w)
        y = top + h - _scale(p, p_lo, p_hi, h)
        colour, r = ("#d33", 7) if i == chosen else ("#247", 4)
        title = f"{c:.4g} {currency}/h, p99 {p * 1e3:.1f} ms"
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{colour}">'
            f"<title>{html.escape(title)}</title></circle>"
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
