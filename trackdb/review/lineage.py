"""The lineage tree of the reviewed cell as an SVG drawn on the server: time to the right, one row
per leaf track, each division a dot coloured by its probability, the reviewed cell marked.

Every track is a link to the review of its last cell (where it divides or ends), so the tree is
also how one walks a lineage on the page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape

import pandas as pd

from trackdb.io.lineage_layout import leaf_rows

WIDTH = 560
ROW = 22
LEFT, RIGHT, TOP, BOTTOM = 16, 40, 14, 30


def probability_colour(p: float | None) -> str:
    """Red (0) through amber (0.5) to green (1); grey when unknown."""
    if p is None or p != p:
        return "#8a8a8a"
    p = min(max(float(p), 0.0), 1.0)
    if p < 0.5:
        r, g = 220, int(60 + 2 * p * 150)
    else:
        r, g = int(220 - 2 * (p - 0.5) * 170), 210
    return f"#{r:02x}{g:02x}40"


@dataclass(frozen=True)
class Track:
    track_id: int
    start_t: int
    end_t: int
    parent: int | None
    first_node: int
    last_node: int


def _tracks(table: pd.DataFrame) -> list[Track]:
    out = []
    for r in table.to_dict("records"):
        parent = None if pd.isna(r["parent_track_id"]) else int(r["parent_track_id"])
        out.append(
            Track(
                int(r["track_id"]),
                int(r["start_t"]),
                int(r["end_t"]),
                parent,
                int(r["first_node_id"]),
                int(r["last_node_id"]),
            )
        )
    return out


def lineage_svg(
    tracks: pd.DataFrame,
    *,
    division_p: Mapping[int, float],
    focus: tuple[int, int] | None,
    href: Callable[[int], str],
) -> str:
    """SVG of a family of tracks (:func:`trackdb.store.review.family`'s table).

    ``division_p``: mother node id → probability of its division; ``focus``: (track id, frame) of
    the reviewed cell; ``href``: node id → the page of that cell.
    """
    if tracks.empty:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="30" role="img"></svg>'
    family = _tracks(tracks)
    rows = leaf_rows((t.track_id, t.parent) for t in family)
    t0, t1 = min(t.start_t for t in family), max(t.end_t for t in family)
    span = max(1, t1 - t0)
    n_rows = int(max(rows.values())) + 1
    height = TOP + n_rows * ROW + BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) * (WIDTH - LEFT - RIGHT) / span

    def y(tid: int) -> float:
        return TOP + ROW / 2 + rows[tid] * ROW

    by_id = {t.track_id: t for t in family}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" class="lineage" data-tracks="{len(tracks)}">',
        "<title>lineage tree: tracks by frame, divisions coloured by probability</title>",
    ]
    for r in by_id.values():  # connectors first, under the tracks
        if r.parent is None or r.parent not in by_id:
            continue
        m = by_id[r.parent]
        parts.append(
            f'<path class="connector" d="M{x(m.end_t):.1f},{y(r.parent):.1f} V{y(r.track_id):.1f} '
            f'H{x(r.start_t):.1f}" fill="none" stroke="#9aa" stroke-width="1.5"/>'
        )
    for tid, r in by_id.items():
        cls = "track focus" if focus and focus[0] == tid else "track"
        parts.append(
            f'<a href="{escape(href(r.last_node))}" class="{cls}" data-track="{tid}">'
            f"<title>track {tid}: frames {r.start_t}-{r.end_t} (cells {r.first_node}…{r.last_node})</title>"
            f'<line x1="{x(r.start_t):.1f}" y1="{y(tid):.1f}" x2="{max(x(r.end_t), x(r.start_t) + 3):.1f}" '
            f'y2="{y(tid):.1f}" stroke="{"#ffd500" if "focus" in cls else "#dfe6e6"}" stroke-width="5" '
            f'stroke-linecap="round"/>'
            f'<text x="{max(x(r.end_t), x(r.start_t) + 3) + 9:.1f}" y="{y(tid) + 4:.1f}" font-size="11" '
            f'fill="#cfd8d8">{tid}</text></a>'
        )
    n_children: dict[int, int] = {}
    for r in by_id.values():
        if r.parent is not None:
            n_children[r.parent] = n_children.get(r.parent, 0) + 1
    for tid, r in by_id.items():
        if n_children.get(tid, 0) < 2:
            continue
        p = division_p.get(r.last_node)
        label = "unknown" if p is None else f"{p:.2f}"
        parts.append(
            f'<a href="{escape(href(r.last_node))}" class="division" data-node="{r.last_node}">'
            f"<title>division of cell {r.last_node} at frame {r.end_t}: p = {label}</title>"
            f'<circle cx="{x(r.end_t):.1f}" cy="{y(tid):.1f}" r="6" fill="{probability_colour(p)}" '
            f'stroke="#111" stroke-width="1"/></a>'
        )
    if focus is not None and focus[0] in rows:
        parts.append(
            f'<circle class="focus-cell" cx="{x(focus[1]):.1f}" cy="{y(focus[0]):.1f}" r="8" fill="none" '
            f'stroke="#ffd500" stroke-width="2.5"><title>this cell, frame {focus[1]}</title></circle>'
        )
    axis_y = height - BOTTOM + 12
    step = max(1, span // 8)
    for t in range(t0, t1 + 1, step):
        parts.append(
            f'<text x="{x(t):.1f}" y="{axis_y + 10}" text-anchor="middle" font-size="10" fill="#9aa">{t}</text>'
            f'<line x1="{x(t):.1f}" y1="{axis_y - 6}" x2="{x(t):.1f}" y2="{axis_y - 2}" stroke="#9aa"/>'
        )
    parts.append("</svg>")
    return "".join(parts)
