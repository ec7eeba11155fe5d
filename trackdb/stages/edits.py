"""Making edits: check that an edit names cells and links of the movie's current candidate graph
(or an earlier edit, for ``remove``) and does not contradict the active edits, then append it to
the edit log. One function per verb, each returning the new edit's id; none re-solves
(:func:`trackdb.stages.resolve.resolve` does). The vocabulary, what each verb constrains and where
edit-made cells live: ``docs/architecture.md``, "Edits and re-solving"; constraints:
:mod:`trackdb.stages.pins`.

Every edit records the solution it was made on (``payload.based_on``). An editor that names it
(``based_on=``) gets :class:`~trackdb.errors.ConflictError` when that solution is no longer
current, checked in the transaction that appends the edit, so two editors never apply an edit
to a lineage they did not see.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from inference.edges import mask_iou
from inference.regions import candidates_from_components
from inference.types import Candidates
from trackdb.errors import ConflictError, InputError, NotFoundError
from trackdb.stages import pins as pin_rules
from trackdb.stages.link import link_cells
from trackdb.store import edits as log
from trackdb.store import runs
from trackdb.store.core import Connection, Movie, Store
from trackdb.store.graph import load_candidates
from trackdb.store.locks import movie_transaction
from trackdb.store.runs import LinkParams, SolveChain

PIN_KINDS = ("pin_node", "forbid_node", "pin_edge", "forbid_edge")
CELL_KINDS = ("relink", "division", "delete_cell", "add_cell", "merge_cells", "split_cell", "end_track")
KINDS = PIN_KINDS + CELL_KINDS + ("remove",)
REPLACE_OVERLAP = 0.25  # a candidate an added cell overlaps by >= this share of the smaller is replaced


def _kind(kind: str) -> str:
    k = kind.replace("-", "_")
    if k not in PIN_KINDS + ("remove",):
        raise InputError(
            f"unknown edit kind {kind!r}; choose {', '.join(x.replace('_', '-') for x in PIN_KINDS + ('remove',))} "
            "(or the verbs relink, division, delete-cell, add-cell, merge-cells, split-cell, end-track)"
        )
    return k


def _author(author: str | None) -> str:
    if author:
        return str(author)[:100]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in this environment
        return "unknown"


# --- checks ------------------------------------------------------------------------------------
def _node(store: Store, movie: Movie, chain: SolveChain, node_id: int) -> dict[str, Any]:
    row = log.node_row(store, movie.id, int(node_id))
    if row is None:
        raise NotFoundError(f"no node {int(node_id)} in movie {movie.name!r}")
    if row["run_id"] != chain.candidate_run:
        raise InputError(
            f"node {int(node_id)} is not in movie {movie.name!r}'s current candidate graph "
            f"(candidates run {chain.candidate_run}; it belongs to run {row['run_id']})"
        )
    return row


def _edge(store: Store, movie: Movie, chain: SolveChain, edge_id: int) -> dict[str, Any]:
    row = log.edge_row(store, movie.id, int(edge_id))
    if row is None:
        raise NotFoundError(f"no link {int(edge_id)} in movie {movie.name!r}")
    if row["run_id"] != chain.link_run:
        raise InputError(
            f"link {int(edge_id)} is not in movie {movie.name!r}'s current candidate graph "
            f"(link run {chain.link_run}; it belongs to run {row['run_id']})"
        )
    return row


def _check_solution(store: Store, movie: Movie, based_on: int | None) -> None:
    if based_on is not None:
        store.solution_id(movie, int(based_on))  # NotFoundError for a solution of no such id


def _append(
    store: Store,
    movie: Movie,
    kind: str,
    payload: dict[str, Any],
    frames: tuple[int, int],
    author: str | None,
    based_on: int | None,
    make: Callable[[Connection], dict[str, Any]] | None = None,
) -> int:
    """Check the conflict and contradiction rules and append, in one movie transaction; ``make``
    writes what the edit creates (cells, links) in that transaction and returns payload entries."""
    _check_solution(store, movie, based_on)
    with movie_transaction(store, movie.id) as (conn, current):
        if based_on is not None and int(based_on) != current:
            raise ConflictError(
                f"edit made on solution {int(based_on)} of movie {movie.name!r}, but solution {current} is "
                f"current now (a re-solve replaced it): look at solution {current} and repeat the edit on it"
                f" (--on {current})",
                current_solution_id=current,
            )
        payload = {**payload, "based_on": current}
        if make is not None:
            payload.update(make(conn))
        edits = log.all_edits(store, movie.id, conn)
        row = {"id": THIS_EDIT, "kind": kind, "payload": payload}
        clash = pin_rules.contradiction(pin_rules.constraints([*edits, row]))
        if clash:
            first, second, why = clash
            if first == THIS_EDIT:
                first, second = second, first
            a, b = (("this edit" if x == THIS_EDIT else f"edit {x}") for x in (first, second))
            raise InputError(
                f"contradictory edits in movie {movie.name!r}: {why} ({a} and {b}); "
                f"undo one with `trackdb edit --movie {movie.name} remove EDIT_ID` first"
            )
        return log.insert(conn, movie.id, kind, payload, int(frames[0]), int(frames[1]), _author(author))


THIS_EDIT = -1  # the id the edit being checked has in contradiction messages


# --- the verbs ---------------------------------------------------------------------------------
def add_edit(
    store: Store,
    movie_name: str | int,
    kind: str,
    target: int,
    author: str | None = None,
    *,
    based_on: int | None = None,
) -> int:
    """Pin or forbid a candidate node / link (``target``: its id), or ``remove`` an earlier edit."""
    k = _kind(kind)
    if k == "remove":
        return remove(store, movie_name, target, author=author, based_on=based_on)
    movie = store.movie(movie_name)
    chain = runs.solve_chain(store, movie)
    target = int(target)
    if k.endswith("node"):
        row = _node(store, movie, chain, target)
        return _append(store, movie, k, {"node_id": target}, (row["t"], row["t"]), author, based_on)
    row = _edge(store, movie, chain, target)
    payload = {"edge_id": target, "source_id": row["source_id"], "target_id": row["target_id"]}
    return _append(store, movie, k, payload, (row["t"], row["t"] + row["dt"]), author, based_on)


def remove(
    store: Store, movie_name: str | int, edit_id: int, *, author: str | None = None, based_on: int | None = None
) -> int:
    """Undo an earlier edit (applied by the next re-solve); the log keeps both rows."""
    movie = store.movie(movie_name)
    target = int(edit_id)
    row = log.edit_row(store, movie.id, target)
    if row is None:
        raise NotFoundError(f"no edit {target} in movie {movie.name!r} (see `trackdb edits`)")
    if row["kind"] == "remove":
        raise InputError(f"edit {target} is itself a removal; make the edit again instead of undoing it")
    if target in log.removed(store, movie.id):
        raise InputError(f"edit {target} of movie {movie.name!r} is already removed")
    return _append(store, movie, "remove", {"edit_id": target}, (row["t_start"], row["t_end"]), author, based_on)


def relink(
    store: Store,
    movie_name: str | int,
    child: int,
    parent: int,
    *,
    author: str | None = None,
    based_on: int | None = None,
) -> int:
    """``child``'s parent is ``parent`` (a cell of an earlier frame): pins the link parent →
    child, adding it to the candidate graph when the link stage did not propose it."""
    movie = store.movie(movie_name)
    chain = runs.solve_chain(store, movie)
    c, p = _node(store, movie, chain, child), _node(store, movie, chain, parent)
    if int(child) == int(parent):
        raise InputError(f"relink: cell {int(child)} cannot be its own parent")
    if p["t"] >= c["t"]:
        raise InputError(
            f"relink: the parent must be in an earlier frame than the child; cell {int(parent)} is in frame "
            f"{p['t']}, cell {int(child)} in frame {c['t']}"
        )
    payload: dict[str, Any] = {"child_id": int(child), "parent_id": int(parent), "source_id": int(parent)}
    payload["target_id"] = int(child)
    edge_id = log.find_edge(store, chain.link_run, int(parent), int(child))
    frames = (int(p["t"]), int(c["t"]))
    if edge_id is not None:
        payload.update(edge_id=edge_id, created_link=False)
        return _append(store, movie, "relink", payload, frames, author, based_on)
    # the link stage did not propose it: the edit writes it, with its features
    cands, ids = load_candidates(store, chain.candidate_run, movie.ndim, node_ids=np.array([int(parent), int(child)]))
    a, b = (0, 1) if ids[0] == int(parent) else (1, 0)
    dist = float(np.linalg.norm(cands.centroid[b] - cands.centroid[a]))
    iou = float(mask_iou(cands.bbox, cands.masks, cands.area, np.array([a]), np.array([b]))[0])

    def make(conn: Connection) -> dict[str, Any]:
        new = log.insert_links(
            conn,
            movie.id,
            chain.link_run,
            np.array([int(parent)]),
            np.array([int(child)]),
            np.array([p["t"]]),
            np.array([c["t"] - p["t"]]),
            np.array([dist]),
            np.array([iou]),
        )
        return {"edge_id": int(new[0]), "created_link": True, "links": [int(new[0])]}

    return _append(store, movie, "relink", payload, frames, author, based_on, make)


def division(
    store: Store,
    movie_name: str | int,
    node: int,
    real: bool,
    *,
    author: str | None = None,
    based_on: int | None = None,
) -> int:
    """The cell divides here (``real``: exactly two daughters in the next frame) or does not
    (at most one successor)."""
    movie = store.movie(movie_name)
    chain = runs.solve_chain(store, movie)
    row = _node(store, movie, chain, node)
    if not isinstance(real, (bool, np.bool_)):
        raise InputError(f"division: say real or false, got {real!r}")
    if real and log.out_degree(store, chain.link_run, int(node)) < 2:
        raise InputError(
            f"division: cell {int(node)} has fewer than two candidate daughters in frame {row['t'] + 1}; "
            "add the missing daughter (add-cell) or relink one first"
        )
    payload = {"node_id": int(node), "real": bool(real)}
    return _append(store, movie, "division", payload, (row["t"], row["t"] + 1), author, based_on)


def delete_cell(
    store: Store, movie_name: str | int, node: int, *, author: str | None = None, based_on: int | None = None
) -> int:
    """The candidate is not a cell: never selected."""
    movie = store.movie(movie_name)
    chain = runs.solve_chain(store, movie)
    row = _node(store, movie, chain, node)
    return _append(store, movie, "delete_cell", {"node_id": int(node)}, (row["t"], row["t"]), author, based_on)


def end_track(
    store: Store, movie_name: str | int, node: int, *, author: str | None = None, based_on: int | None = None
) -> int:
    """The track ends at this cell (death or exit): the cell is kept and has no successor."""
    movie = store.movie(movie_name)
    chain = runs.solve_chain(store, movie)
    row = _node(store, movie, chain, node)
    return _append(store, movie, "end_track", {"node_id": int(node)}, (row["t"], row["t"] + 1), author, based_on)


def add_cell(
    store: Store,
    movie_name: str | int,
    t: int,
    mask: np.ndarray,
    *,
    author: str | None = None,
    based_on: int | None = None,
) -> int:
    """A cell the candidates missed: ``mask`` (the frame's shape, non-zero = the cell) becomes a
    kept candidate; candidates it overlaps are replaced."""
    movie = store.movie(movie_name)
    chain = runs.solve_chain(store, movie)
    t = _frame(movie, t)
    m = np.asarray(mask)
    if m.shape != movie.shape:
        raise InputError(f"add-cell: the mask has shape {m.shape}, but movie {movie.name!r}'s frames are {movie.shape}")
    m = m != 0
    if not m.any():
        raise InputError("add-cell: the mask has no non-zero pixel (it must cover the new cell)")
    n_parts = int(ndimage.label(m)[1])
    if n_parts > 1:
        raise InputError(f"add-cell: the mask has {n_parts} separate pieces; give one cell per add-cell")
    cells = _cells(t, [m])
    payload = {"t": t, "area": int(m.sum())}
    return _append(store, movie, "add_cell", payload, (t, t), author, based_on, _maker(store, movie, chain, cells))


def merge_cells(
    store: Store, movie_name: str | int, a: int, b: int, *, author: str | None = None, based_on: int | None = None
) -> int:
    """Two candidates of one frame are one cell: their union becomes a kept candidate and
    replaces both."""
    movie = store.movie(movie_name)
    chain = runs.solve_chain(store, movie)
    ra, rb = _node(store, movie, chain, a), _node(store, movie, chain, b)
    if int(a) == int(b):
        raise InputError(f"merge-cells: give two different cells (got {int(a)} twice)")
    if ra["t"] != rb["t"]:
        raise InputError(
            f"merge-cells: cells {int(a)} (frame {ra['t']}) and {int(b)} (frame {rb['t']}) are in different "
            "frames; only cells of one frame can be merged"
        )
    full = _frame_masks(store, movie, chain, [int(a), int(b)])
    union = full[0] | full[1]
    cells = _cells(int(ra["t"]), [union])
    payload = {"a": int(a), "b": int(b), "t": int(ra["t"])}
    frames = (int(ra["t"]), int(ra["t"]))
    return _append(store, movie, "merge_cells", payload, frames, author, based_on, _maker(store, movie, chain, cells))


def split_cell(
    store: Store,
    movie_name: str | int,
    node: int,
    line: Sequence[float],
    *,
    author: str | None = None,
    based_on: int | None = None,
) -> int:
    """One candidate is two cells: its pixels on either side of ``line`` ((y0, x0, y1, x1), or
    (z0, y0, x0, z1, y1, x1) in 3D: the plane through it parallel to Z) become two kept
    candidates that replace it. The segment must cross the cell."""
    movie = store.movie(movie_name)
    chain = runs.solve_chain(store, movie)
    row = _node(store, movie, chain, node)
    d = movie.ndim
    try:
        pts = np.asarray([float(v) for v in line], np.float64)
    except (TypeError, ValueError):
        raise InputError(f"split-cell: the line must be {2 * d} numbers, got {line!r}") from None
    if pts.shape != (2 * d,) or not np.all(np.isfinite(pts)):
        raise InputError(
            f"split-cell: the line must be {2 * d} numbers ({'Z0,Y0,X0,Z1,Y1,X1' if d == 3 else 'Y0,X0,Y1,X1'}), "
            f"got {len(pts)}"
        )
    full = _frame_masks(store, movie, chain, [int(node)])[0]
    halves = split_mask(full, pts[:d], pts[d:])
    if halves is None:
        raise InputError(
            f"split-cell: the line {tuple(pts.tolist())} does not cross cell {int(node)} "
            f"(frame {row['t']}) into two parts"
        )
    cells = _cells(int(row["t"]), list(halves))
    payload = {"node_id": int(node), "line": pts.tolist(), "t": int(row["t"])}
    frames = (int(row["t"]), int(row["t"]))
    return _append(store, movie, "split_cell", payload, frames, author, based_on, _maker(store, movie, chain, cells))


def split_mask(mask: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The two parts of a frame-shaped mask on either side of the line p0–p1 (in 3D the plane
    through it parallel to Z, so only the Y, X components count); None when the segment does not
    cross the mask or one side is empty."""
    yx0, yx1 = np.asarray(p0, np.float64)[-2:], np.asarray(p1, np.float64)[-2:]
    direction = yx1 - yx0
    length = float(np.hypot(*direction))
    if length < 1e-9:
        return None
    plane = np.asarray(mask.any(axis=0) if mask.ndim == 3 else mask, bool)
    steps = np.linspace(0.0, 1.0, max(2, int(np.ceil(2 * length)) + 1))
    on = np.rint(yx0[None, :] + steps[:, None] * direction[None, :]).astype(np.int64)
    inside = np.all((on >= 0) & (on < np.asarray(plane.shape)), axis=1)
    on = on[inside]
    if len(on) == 0 or not plane[on[:, 0], on[:, 1]].any():
        return None
    yy, xx = np.indices(plane.shape, dtype=np.float64)
    side = direction[0] * (xx - yx0[1]) - direction[1] * (yy - yx0[0]) > 0
    if mask.ndim == 3:
        side = np.broadcast_to(side, mask.shape)
    a, b = mask & side, mask & ~side
    if not a.any() or not b.any():
        return None
    return a, b


def _frame(movie: Movie, t: int) -> int:
    try:
        t = int(t)
    except (TypeError, ValueError):
        raise InputError(f"the frame must be an integer, got {t!r}") from None
    if not 0 <= t < movie.n_frames:
        raise InputError(f"frame {t} is outside movie {movie.name!r} (frames 0..{movie.n_frames - 1})")
    return t


def _cells(t: int, masks: list[np.ndarray]) -> Candidates:
    """Candidates (features from the pixels) of frame-shaped masks."""
    lo, crops = [], []
    for m in masks:
        sl = ndimage.find_objects(m.astype(np.int8))[0]
        lo.append([s.start for s in sl])
        crops.append(np.ascontiguousarray(m[sl]))
    return candidates_from_components(np.full(len(masks), t), np.array(lo, np.int64), crops)


def _frame_masks(store: Store, movie: Movie, chain: SolveChain, node_ids: list[int]) -> list[np.ndarray]:
    """Frame-shaped masks of candidates, in the order asked."""
    cands, ids = load_candidates(store, chain.candidate_run, movie.ndim, node_ids=np.array(node_ids))
    out = []
    for nid in node_ids:
        i = int(np.flatnonzero(ids == nid)[0])
        out.append(_paint(movie.shape, cands.bbox[i], cands.masks[i]))
    return out


def _paint(shape: tuple[int, ...], bbox: np.ndarray, crop: np.ndarray) -> np.ndarray:
    d = len(shape)
    full = np.zeros(shape, bool)
    full[tuple(slice(int(bbox[i]), int(bbox[d + i])) for i in range(d))] = crop
    return full


def _maker(store: Store, movie: Movie, chain: SolveChain, cells: Candidates) -> Callable[[Connection], dict[str, Any]]:
    return lambda conn: _write_cells(store, conn, movie, chain, cells)


def _write_cells(store: Store, conn: Connection, movie: Movie, chain: SolveChain, cells: Candidates) -> dict[str, Any]:
    """Write an edit's cells into the candidate run and their candidate links into the link run
    (the link stage's rules on the frames around them); returns the payload entries: the new
    cell ids, the candidates they replace and the links made."""
    link = runs.get_run(store, chain.link_run).typed(LinkParams)
    t = int(cells.t[0])
    near, near_ids = load_candidates(store, chain.candidate_run, movie.ndim, frames=(t - link.dt, t + link.dt))
    replaced = _overlapping(near, near_ids, cells)
    emb_dim = None if near.embedding is None else int(near.embedding.shape[1])
    new_ids = log.insert_cells(conn, movie.id, chain.candidate_run, cells, emb_dim)
    both = _concat(near, cells)
    all_ids = np.concatenate([near_ids, new_ids])
    edges = link_cells(both, link, movie.spacing)  # the link run's rule, in its units
    is_new = np.zeros(len(all_ids), bool)
    is_new[len(near_ids) :] = True
    keep = is_new[edges.source] | is_new[edges.target]
    src, dst = edges.source[keep], edges.target[keep]
    link_ids = log.insert_links(
        conn,
        movie.id,
        chain.link_run,
        all_ids[src],
        all_ids[dst],
        both.t[src],
        edges.dt[keep],
        edges.distance[keep],
        edges.iou[keep],
    )
    return {
        "cells": [int(i) for i in new_ids],
        "replaced": [int(i) for i in replaced],
        "links": [int(i) for i in link_ids],
    }


def _overlapping(near: Candidates, near_ids: np.ndarray, cells: Candidates) -> list[int]:
    """Candidates of the new cells' frame that share at least REPLACE_OVERLAP of the smaller."""
    t = int(cells.t[0])
    idx = np.flatnonzero(near.t == t)
    out: set[int] = set()
    d = cells.ndim
    for j in range(len(cells)):
        for i in idx.tolist():
            lo = np.maximum(near.bbox[i, :d], cells.bbox[j, :d])
            hi = np.minimum(near.bbox[i, d:], cells.bbox[j, d:])
            if np.any(hi <= lo):
                continue
            sa = tuple(slice(int(lo[k] - near.bbox[i, k]), int(hi[k] - near.bbox[i, k])) for k in range(d))
            sb = tuple(slice(int(lo[k] - cells.bbox[j, k]), int(hi[k] - cells.bbox[j, k])) for k in range(d))
            inter = int(np.count_nonzero(near.masks[i][sa] & cells.masks[j][sb]))
            if inter >= REPLACE_OVERLAP * min(int(near.area[i]), int(cells.area[j])) and inter > 0:
                out.add(int(near_ids[i]))
    return sorted(out)


def _concat(a: Candidates, b: Candidates) -> Candidates:
    """Candidates a then b (b's forest parents none; features the link stage reads)."""

    def cat(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(x), np.asarray(y)])

    emb = None
    if a.embedding is not None:
        emb = cat(a.embedding, np.zeros((len(b), a.embedding.shape[1]), np.asarray(a.embedding).dtype))
    prev = None
    if a.prev_centroid is not None:
        prev = cat(a.prev_centroid, np.full((len(b), a.ndim), np.nan))
    return Candidates(
        t=cat(a.t, b.t),
        label=cat(a.label, -np.arange(1, len(b) + 1)),
        centroid=cat(a.centroid, b.centroid),
        area=cat(a.area, b.area),
        bbox=cat(a.bbox, b.bbox),
        masks=list(a.masks) + list(b.masks),
        hier_parent=cat(a.hier_parent, np.full(len(b), -1, np.int64)),
        threshold=cat(a.threshold, b.threshold),
        score=cat(a.score, b.score),
        max_prob=cat(a.max_prob, b.max_prob),
        embedding=emb,
        prev_centroid=prev,
    )


# --- reading the log ---------------------------------------------------------------------------
def edit_cells(store: Store, movie_name: str | int, edit_id: int) -> list[int]:
    """The candidate cells an add-cell / merge-cells / split-cell edit made."""
    movie = store.movie(movie_name)
    row = log.edit_row(store, movie.id, int(edit_id))
    if row is None:
        raise NotFoundError(f"no edit {int(edit_id)} in movie {movie.name!r} (see `trackdb edits`)")
    return [int(i) for i in (row["payload"] or {}).get("cells", [])]


def _target(kind: str, p: dict[str, Any]) -> Any:
    if kind == "relink":
        return f"{p['child_id']}<-{p['parent_id']}"
    if kind == "division":
        return f"{p['node_id']}:{'real' if p['real'] else 'false'}"
    if kind == "merge_cells":
        return f"{p['a']}+{p['b']}"
    if kind == "add_cell":
        return f"t{p['t']}"
    return p.get("node_id", p.get("edge_id", p.get("edit_id")))


def list_edits(store: Store, movie_name: str | int) -> pd.DataFrame:
    """The movie's edits, oldest first, with what they touch and whether a (re-)solve applied them."""
    movie = store.movie(movie_name)
    rows = log.all_edits(store, movie.id)
    removed = log.removed(store, movie.id)
    out = []
    for r in rows:
        p = r["payload"] or {}
        state = "removed" if r["id"] in removed else ("pending" if r["run_id"] is None else "applied")
        out.append(
            {
                "edit_id": r["id"],
                "kind": r["kind"].replace("_", "-"),
                "target": _target(r["kind"], p),
                "t_start": r["t_start"],
                "t_end": r["t_end"],
                "author": r["author"],
                "created_at": None if r["created_at"] is None else str(r["created_at"])[:19],
                "run_id": r["run_id"],
                "state": state,
                "based_on": p.get("based_on"),
                "cells": ",".join(str(c) for c in p.get("cells", [])) or None,
            }
        )
    cols = [
        "edit_id",
        "kind",
        "target",
        "t_start",
        "t_end",
        "author",
        "created_at",
        "run_id",
        "state",
        "based_on",
        "cells",
    ]
    return pd.DataFrame(out, columns=cols).astype({"run_id": "Int64", "based_on": "Int64"})
