"""A profile written out: collapsed stacks, speedscope JSON, an SVG flame graph, an HTML page.

- collapsed: Brendan Gregg's folded format, `frame;frame;frame count` per stack, root first,
  which flamegraph.pl, inferno and speedscope all read.
- speedscope: the sampled-profile file format of https://www.speedscope.app (its
  file-format-schema.json), one profile of every sample and one per agent, weights in seconds.
- svg: a flame graph drawn here (root at the bottom, width = samples, a tooltip per box).
  It is a few dozen lines of layout with no script, so it opens anywhere, and it saves a
  dependency on flamegraph.pl (Perl) or a JavaScript bundle.
- html: the flame graph and the summary tables in one page, nothing loaded from elsewhere.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from swarmperf.profiling.stacks import AWAITING, Profile, frame_label

FORMATS = ("speedscope", "svg", "collapsed", "html")
SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"
SUFFIXES = {
    "speedscope": ".speedscope.json",
    "svg": ".svg",
    "collapsed": ".folded",
    "html": ".html",
}

WIDTH = 1200.0
ROW = 17.0
TOP_MARGIN = 44.0
BOTTOM_MARGIN = 10.0
CHAR_PX = 7.0  # about a character of 12px Verdana: how much of a name fits in a box
MIN_BOX_PX = 0.3  # narrower boxes are left out (they could not be seen or pointed at)


def render(profile: Profile, fmt: str, title: str = "swarmperf profile") -> str:
    if fmt == "collapsed":
        return collapsed(profile)
    if fmt == "speedscope":
        return json.dumps(speedscope(profile, title))
    if fmt == "svg":
        return flame_svg(profile, title)
    if fmt == "html":
        return html_page(profile, title)
    raise ValueError(fmt)


def collapsed(profile: Profile) -> str:
    lines = []
    for stack, count in sorted(profile.folded().items()):
        text = ";".join(frame_label(profile.frames[i]).replace(";", ":") for i in stack)
        lines.append(f"{text} {count}")
    return "\n".join(lines) + ("\n" if lines else "")


def speedscope(profile: Profile, title: str) -> dict[str, Any]:
    frames = []
    for name, file, line in profile.frames:
        frame: dict[str, Any] = {"name": name}
        if file:
            frame["file"] = file
            frame["line"] = line
        frames.append(frame)
    period = 1.0 / profile.rate if profile.rate > 0 else 1.0
    groups: list[tuple[str, Counter[tuple[int, ...]]]] = [("all samples", profile.folded())]
    by_agent: dict[str, Counter[tuple[int, ...]]] = {}
    for key, count in profile.stacks.items():
        if key.agent is not None:
            by_agent.setdefault(key.agent, Counter())[key.frames] += count
    groups += [(f"agent {agent}", stacks) for agent, stacks in sorted(by_agent.items())]
    profiles = []
    for name, stacks in groups:
        ordered = sorted(stacks.items())
        weights = [count * period for _, count in ordered]
        profiles.append(
            {
                "type": "sampled",
                "name": name,
                "unit": "seconds",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": [list(stack) for stack, _ in ordered],
                "weights": weights,
            }
        )
    return {
        "$schema": SPEEDSCOPE_SCHEMA,
        "shared": {"frames": frames},
        "profiles": profiles,
        "name": title,
        "activeProfileIndex": 0,
        "exporter": "swarmperf profile-performance",
    }


@dataclass
class _Node:
    count: int = 0
    children: dict[int, _Node] = field(default_factory=dict)


def _tree(profile: Profile) -> tuple[_Node, int]:
    root = _Node()
    depth = 0
    for stack, count in profile.folded().items():
        root.count += count
        node = root
        for i in stack:
            node = node.children.setdefault(i, _Node())
            node.count += count
        depth = max(depth, len(stack))
    return root, depth


def _colour(name: str) -> str:
    """A warm colour from the name (the same function, the same colour, in every graph)."""
    digest = hashlib.blake2b(name.encode(), digest_size=3).digest()
    return f"rgb({205 + digest[0] % 50},{digest[1] % 230},{digest[2] % 55})"


def flame_svg(profile: Profile, title: str) -> str:
    root, depth = _tree(profile)
    height = TOP_MARGIN + (depth + 1) * ROW + BOTTOM_MARGIN
    total = root.count
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH:g}" height="{height:g}" '
        f'viewBox="0 0 {WIDTH:g} {height:g}" font-family="Verdana, sans-serif" font-size="12">',
        f'<rect x="0" y="0" width="{WIDTH:g}" height="{height:g}" fill="#fdf6ec"/>',
        f'<text x="{WIDTH / 2:g}" y="20" text-anchor="middle" font-size="16">'
        f"{html.escape(title)}</text>",
        f'<text x="{WIDTH / 2:g}" y="36" text-anchor="middle" fill="#555">'
        f"{total:,} samples at {profile.rate:g} Hz over {profile.duration_s:.1f} s; "
        f"width = share of samples, root at the bottom; {AWAITING}: handlers suspended in "
        "an await</text>",
    ]
    if total:
        scale = (WIDTH - 20) / total
        parts.append(_box("all", total, total, 10.0, height - BOTTOM_MARGIN - ROW, total * scale))
        _draw(profile, root, 10.0, 1, scale, total, height, parts)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _draw(
    profile: Profile,
    node: _Node,
    x: float,
    level: int,
    scale: float,
    total: int,
    height: float,
    parts: list[str],
) -> None:
    y = height - BOTTOM_MARGIN - (level + 1) * ROW
    for i, child in sorted(node.children.items(), key=lambda kv: profile.frames[kv[0]]):
        width = child.count * scale
        if width >= MIN_BOX_PX:
            parts.append(_box(frame_label(profile.frames[i]), child.count, total, x, y, width))
            _draw(profile, child, x, level + 1, scale, total, height, parts)
        x += width


def _box(label: str, count: int, total: int, x: float, y: float, width: float) -> str:
    tip = f"{label} ({count:,} samples, {100 * count / total:.2f}%)"
    fits = int((width - 6) / CHAR_PX)
    text = ""
    if fits >= 3:
        shown = label if len(label) <= fits else label[: fits - 2] + ".."
        text = f'<text x="{x + 3:.2f}" y="{y + ROW - 5:.2f}">{html.escape(shown)}</text>'
    return (
        f"<g><title>{html.escape(tip)}</title>"
        f'<rect x="{x:.2f}" y="{y:.2f}" width="{width:.2f}" height="{ROW - 1:g}" '
        f'fill="{_colour(label)}" rx="2"/>{text}</g>'
    )


def html_page(profile: Profile, title: str) -> str:
    summary = profile.summary()
    svg = flame_svg(profile, title).split("\n", 1)[1]  # without the XML declaration

    def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns)
            + "</tr>"
            for row in rows
        )
        return f"<table><tr>{head}</tr>{body}</table>"

    memory = summary["memory"]
    memory_html = ""
    if memory:
        memory_html = "<h2>Memory growth over the window</h2>" + table(
            memory["top_growth"], ["file", "line", "size_diff_bytes", "size_bytes", "count_diff"]
        )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font-family:Verdana,sans-serif;margin:1em}table{border-collapse:collapse;"
        "margin-bottom:1em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{svg}"
        "<h2>Top self time</h2>"
        + table(summary["top_self"], ["function", "file", "line", "self_share", "total_share"])
        + "<h2>By agent</h2>"
        + table(summary["agents"], ["agent", "samples", "share"])
        + "<h2>By handler</h2>"
        + table(summary["handlers"], ["handler", "samples", "share"])
        + memory_html
        + "</body></html>\n"
    )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
