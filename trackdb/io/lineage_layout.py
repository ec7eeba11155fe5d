"""Where each track of a lineage sits in a tree picture, shared by the PNG/SVG plot and the
review page's SVG so that both draw one family the same way."""

from __future__ import annotations

from collections.abc import Iterable


def leaf_rows(tracks: Iterable[tuple[int, int | None]]) -> dict[int, float]:
    """Track id → row, from (track id, parent track id) pairs.

    Leaves take rows 0, 1, 2, … in depth-first order (children by id) and a mother sits midway
    between her first and last daughter. A parent outside the family makes its child a root.
    """
    pairs = [(int(t), None if p is None else int(p)) for t, p in tracks]
    ids = {t for t, _ in pairs}
    children: dict[int, list[int]] = {}
    roots = []
    for tid, parent in pairs:
        if parent is None or parent not in ids:
            roots.append(tid)
        else:
            children.setdefault(parent, []).append(tid)
    rows: dict[int, float] = {}
    next_row = 0

    def place(tid: int) -> float:
        nonlocal next_row
        kids = sorted(children.get(tid, []))
        if not kids:
            rows[tid] = float(next_row)
            next_row += 1
        else:
            ys = [place(k) for k in kids]
            rows[tid] = (ys[0] + ys[-1]) / 2
        return rows[tid]

    for r in sorted(roots):
        place(r)
    return rows
