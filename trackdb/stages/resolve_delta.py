"""A re-solve's new solution as the few rows that change: windows read by id, tracks kept.

A re-solve changes a handful of cells and links; reading the whole current solution to merge
the windows into it and writing it all back cost more than the re-solve. Here the current
solution is read only where a window needs it (:func:`window_base`), the windows' changes are
kept as an :class:`Overlay`, and :func:`retrack` recomputes the CTC tracks only around the
changed links: a track keeps its id when it still starts at the same cell, so the tracks an
edit does not touch keep their ids and rows (a track split by a removed link keeps its id for
its first part, the rest gets a new one). The result is stored as a delta of the current
solution's base (:mod:`trackdb.store.deltas`).

Why only those tracks can change: a cell starts a track unless its one incoming link comes from
the frame before and that cell has no other outgoing link. A changed link alters that only for
its target and for the other children of its source; their old tracks are re-cut (with every
cell of them), and the tracks starting right after them may only get another parent id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from solvers.types import CandidateGraph, Solution, SolveStatus
from trackdb.store import deltas
from trackdb.store.core import Connection
from trackdb.store.graph import positions

Row = tuple


@dataclass
class Overlay:
    """The windows' changes to the current solution: ``nodes[id]`` the cell's frame when now
    selected, None when dropped; ``edges[id]`` the link's (source, target) or None; ``was``
    whether each changed item was in the current solution (to count real changes)."""

    nodes: dict[int, int | None] = field(default_factory=dict)
    edges: dict[int, tuple[int, int] | None] = field(default_factory=dict)
    was_node: dict[int, bool] = field(default_factory=dict)
    was_edge: dict[int, bool] = field(default_factory=dict)

    def n_changed(self) -> tuple[int, int]:
        """(cells, links) whose selection differs from the current solution."""
        cells = sum(1 for i, t in self.nodes.items() if (t is not None) != self.was_node[i])
        links = sum(1 for i, e in self.edges.items() if (e is not None) != self.was_edge[i])
        return cells, links


def window_base(
    conn: Connection, solution_id: int, graph: CandidateGraph, node_ids: np.ndarray, edge_ids: np.ndarray, ov: Overlay
) -> Solution:
    """The current solution (with the earlier windows' changes) on a window's graph, read for
    the graph's frames only."""
    if len(node_ids) == 0:
        return Solution(np.zeros(0, bool), np.zeros(len(edge_ids), bool), float("nan"), SolveStatus.OPTIMAL)
    t = graph.node_t
    have_n, have_e = deltas.window_selection(conn, solution_id, int(t.min()), int(t.max()))
    node_sel = np.isin(node_ids, have_n)
    edge_sel = np.isin(edge_ids, have_e)
    for ids, sel, changes in ((node_ids, node_sel, ov.nodes), (edge_ids, edge_sel, ov.edges)):
        if changes:
            keys = np.fromiter(changes.keys(), np.int64, len(changes))
            now = np.array([changes[k] is not None for k in keys.tolist()], bool)
            pos, found = positions(ids, keys)
            sel[pos[found]] = now[found]
    return Solution(node_sel, edge_sel, float("nan"), SolveStatus.OPTIMAL)


def record(
    ov: Overlay, node_ids: np.ndarray, edge_ids: np.ndarray, graph: CandidateGraph, base: Solution, new: Solution
) -> None:
    """Add a window's new selection (against ``base``, its current one) to the overlay."""
    node_t, src, dst = graph.node_t, graph.edge_source, graph.edge_target
    for i in np.flatnonzero(base.node_selected != new.node_selected).tolist():
        nid = int(node_ids[i])
        ov.was_node.setdefault(nid, bool(base.node_selected[i]))
        ov.nodes[nid] = int(node_t[i]) if new.node_selected[i] else None
    for i in np.flatnonzero(base.edge_selected != new.edge_selected).tolist():
        eid = int(edge_ids[i])
        ov.was_edge.setdefault(eid, bool(base.edge_selected[i]))
        ov.edges[eid] = (int(node_ids[src[i]]), int(node_ids[dst[i]])) if new.edge_selected[i] else None


def retrack(conn: Connection, solution_id: int, ov: Overlay) -> tuple[dict[int, Row | None], dict[int, Row | None]]:
    """The cell rows ``{node id: (track id, t) | None}`` and track rows ``{track id: (start,
    end, parent, confidence min, product) | None}`` that the overlay changes."""
    old_links = deltas.rows(conn, solution_id, "edge", ov.edges)
    touched = [v for v in ov.edges.values() if v is not None] + [tuple(old_links[e]) for e in old_links]
    sources = {int(s) for s, _ in touched}
    seeds = {int(x) for link in touched for x in link} | set(ov.nodes)
    seeds |= {d for s, d in deltas.links_touching(conn, solution_id, sources).values() if s in sources}
    seed_cells = deltas.rows(conn, solution_id, "node", seeds)
    affected = {int(r[0]) for r in seed_cells.values()}
    cells = deltas.cells_of_tracks(conn, solution_id, affected)  # {node: (old track, t)}
    old_tracks = deltas.rows(conn, solution_id, "track", affected)
    links = deltas.links_touching(conn, solution_id, cells)
    for e, v in ov.edges.items():
        links.pop(e, None)
        if v is not None:
            links[e] = v
    t_of: dict[int, int] = {n: t for n, (_, t) in cells.items() if ov.nodes.get(n, t) is not None}
    t_of.update({n: t for n, t in ov.nodes.items() if t is not None})
    pred: dict[int, int] = {}
    n_out: dict[int, int] = {}
    outside_kids: list[tuple[int, int]] = []
    for s, d in links.values():
        if s in t_of:
            n_out[s] = n_out.get(s, 0) + 1
        if d in t_of:
            if d in pred:
                raise ValueError(f"node {d} has more than one selected incoming link")
            pred[d] = s
        elif s in t_of:
            outside_kids.append((s, d))
    outer = deltas.rows(
        conn, solution_id, "node", {p for p in pred.values() if p not in t_of} | {d for _, d in outside_kids}
    )
    head: dict[int, int] = {}
    for n in sorted(t_of, key=lambda x: (t_of[x], x)):
        p = pred.get(n)
        go_on = p is not None and p in t_of and n_out.get(p) == 1 and t_of[n] - t_of[p] == 1
        head[n] = head[p] if go_on and p is not None else n
    next_id = deltas.max_track_id(conn, solution_id)
    seg_id: dict[int, int] = {}
    used: set[int] = set()
    for n in sorted({h for h in head.values()}, key=lambda x: (t_of[x], x)):
        o = cells[n][0] if n in cells else None
        if o is not None and o in old_tracks and int(old_tracks[o][0]) == t_of[n] and o not in used:
            seg_id[n] = o
        else:
            next_id += 1
            seg_id[n] = next_id
        used.add(seg_id[n])
    end: dict[int, int] = {}
    for n, h in head.items():
        end[h] = max(end.get(h, t_of[n]), t_of[n])
    node_rows: dict[int, Row | None] = {n: None for n, t in ov.nodes.items() if t is None}
    for n, h in head.items():
        if n not in cells or cells[n][0] != seg_id[h]:
            node_rows[n] = (seg_id[h], t_of[n])
    track_rows: dict[int, Row | None] = {o: None for o in old_tracks if o not in used}
    for h, tid in seg_id.items():
        p = pred.get(h)
        parent = (seg_id[head[p]] if p in t_of else int(outer[p][0])) if p is not None else None
        old = old_tracks.get(tid)
        row = (t_of[h], end[h], parent)
        if old is None or tuple(old[:3]) != row:
            same_cells = old is not None and (old[0], old[1]) == row[:2]
            track_rows[tid] = (*row, *(old[3:] if same_cells and old is not None else (None, None)))
    for s, d in outside_kids:  # tracks right after the re-cut ones: only their parent may change
        tid = int(outer[d][0])
        old_row = deltas.rows(conn, solution_id, "track", [tid]).get(tid)
        parent = seg_id[head[s]]
        if old_row is not None and old_row[2] != parent and tid not in track_rows:
            track_rows[tid] = (old_row[0], old_row[1], parent, *old_row[3:])
    return node_rows, track_rows


def new_delta(conn: Connection, solution_id: int, ov: Overlay) -> deltas.Delta:
    """The re-solved solution as a delta of the current one's base."""
    node_rows, track_rows = retrack(conn, solution_id, ov)
    edge_rows: Mapping[int, Row | None] = {e: (None if v is None else tuple(v)) for e, v in ov.edges.items()}
    return deltas.changed(
        conn, deltas.delta_of(conn, solution_id), {"node": node_rows, "edge": dict(edge_rows), "track": track_rows}
    )
