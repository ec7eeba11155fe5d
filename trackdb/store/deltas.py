"""Solutions stored as a delta of a full one (revision 0011), and reading a few of their rows.

A re-solve changes a few cells, links and tracks; writing its whole solution again cost more than
the re-solve itself. A *delta* solution stores only the rows that are new or differ from its
*base* (a full solution) in ``*_stored`` with its own id, and names in ``solution_hidden`` every
base row it drops or replaces; ``solution_layer`` says a solution reads its own rows and (for a
delta) its base's. The views ``solution_node``, ``solution_edge`` and ``track`` resolve that,
so readers never see the difference. There is one level only: a delta of a delta is written as
its whole difference from the same base (:func:`write_delta`), and a delta that grew past a
quarter of its base is written out in full (:func:`materialize`).

The readers here take a few ids and read them through the views (the window of a re-solve, the
tracks an edit touches), so a re-solve's work grows with its window, not the movie.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import sqlalchemy as sa

from trackdb.store import schema
from trackdb.store.bulk import bulk_insert, bulk_insert_columns, refresh_statistics
from trackdb.store.core import Connection

KINDS = ("node", "edge", "track")
CHUNK = 5000  # ids per IN list (SQLite allows 32,766 variables)
COMPACT_FRACTION = 0.25  # a delta larger than this share of its base is written in full

# the stored table, its key and the columns after the key, per kind
_TABLES = {
    "node": (schema.solution_node_stored, "node_id", ("track_id", "t")),
    "edge": (schema.solution_edge_stored, "edge_id", ("source_id", "target_id")),
    "track": (
        schema.track_stored,
        "track_id",
        ("start_t", "end_t", "parent_track_id", "confidence_min", "confidence_product"),
    ),
}
_VIEWS = {"node": schema.solution_node, "edge": schema.solution_edge, "track": schema.track}

Row = tuple  # the columns after the key, in _TABLES order


def base_of(conn: Connection, solution_id: int) -> int | None:
    """The full solution a delta solution reads beside its own rows; None for a full solution."""
    la = schema.solution_layer.c
    return conn.execute(
        sa.select(la.layer_id).where(la.solution_id == solution_id, la.layer_id != solution_id)
    ).scalar_one_or_none()


def _chunks(ids: Iterable[int]) -> Iterable[list[int]]:
    out = sorted({int(i) for i in ids})
    for a in range(0, len(out), CHUNK):
        yield out[a : a + CHUNK]


def rows(conn: Connection, solution_id: int, kind: str, ids: Iterable[int]) -> dict[int, Row]:
    """The named items a solution holds (through the views): ``{id: columns after the key}``."""
    return _by_ids(conn, _VIEWS[kind], solution_id, kind, ids)


def stored_rows(conn: Connection, solution_id: int, kind: str, ids: Iterable[int]) -> dict[int, Row]:
    """Like :func:`rows`, but of one solution's own stored rows (a base's, before any delta)."""
    return _by_ids(conn, _TABLES[kind][0], solution_id, kind, ids)


def _by_ids(conn: Connection, source: sa.Table, solution_id: int, kind: str, ids: Iterable[int]) -> dict[int, Row]:
    _, key, cols = _TABLES[kind]
    out: dict[int, Row] = {}
    for part in _chunks(ids):
        q = sa.select(source.c[key], *(source.c[c] for c in cols)).where(
            source.c.solution_id == solution_id, source.c[key].in_(part)
        )
        out.update({int(r[0]): tuple(r[1:]) for r in conn.execute(q)})
    return out


def links_touching(conn: Connection, solution_id: int, node_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """``{edge id: (source, target)}`` of a solution's links into or out of the given cells."""
    se = schema.solution_edge.c
    ids = list(node_ids)
    out: dict[int, tuple[int, int]] = {}
    for col in (se.source_id, se.target_id):
        for part in _chunks(ids):
            q = sa.select(se.edge_id, se.source_id, se.target_id).where(se.solution_id == solution_id, col.in_(part))
            out.update({int(e): (int(s), int(d)) for e, s, d in conn.execute(q)})
    return out


def cells_of_tracks(conn: Connection, solution_id: int, track_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """``{node id: (track id, t)}`` of every cell of the given tracks of a solution."""
    sn = schema.solution_node.c
    out: dict[int, tuple[int, int]] = {}
    for part in _chunks(track_ids):
        q = sa.select(sn.node_id, sn.track_id, sn.t).where(sn.solution_id == solution_id, sn.track_id.in_(part))
        out.update({int(n): (int(k), int(t)) for n, k, t in conn.execute(q)})
    return out


def max_track_id(conn: Connection, solution_id: int) -> int:
    """The largest track id of a solution (0 without tracks)."""
    tr = schema.track.c
    return int(conn.execute(sa.select(sa.func.max(tr.track_id)).where(tr.solution_id == solution_id)).scalar() or 0)


@dataclass
class Delta:
    """A solution as its base plus rows: ``own[kind]`` the rows it holds itself (new or differing
    from the base), ``hidden[kind]`` the base ids it drops or replaces."""

    base_id: int
    own: dict[str, dict[int, Row]] = field(default_factory=lambda: {k: {} for k in KINDS})
    hidden: dict[str, set[int]] = field(default_factory=lambda: {k: set() for k in KINDS})

    def size(self) -> int:
        return sum(len(self.own[k]) + len(self.hidden[k]) for k in KINDS)


def delta_of(conn: Connection, solution_id: int) -> Delta:
    """A solution as a delta: its own rows and hidden ids, or an empty delta on itself when full."""
    base = base_of(conn, solution_id)
    if base is None:
        return Delta(solution_id)
    d = Delta(base)
    for kind, (table, key, cols) in _TABLES.items():
        q = sa.select(table.c[key], *(table.c[c] for c in cols)).where(table.c.solution_id == solution_id)
        d.own[kind] = {int(r[0]): tuple(r[1:]) for r in conn.execute(q)}
    h = schema.solution_hidden.c
    for kind, item in conn.execute(sa.select(h.kind, h.item_id).where(h.solution_id == solution_id)):
        d.hidden[kind].add(int(item))
    return d


def changed(conn: Connection, old: Delta, changes: dict[str, dict[int, Row | None]]) -> Delta:
    """``old`` with items replaced: ``changes[kind][id]`` is the item's new row, None when the
    new solution lacks it. Each row is compared with the base's, so an item changed back to
    the base's row stops being part of the delta."""
    new = Delta(old.base_id, {k: dict(v) for k, v in old.own.items()}, {k: set(v) for k, v in old.hidden.items()})
    for kind, items in changes.items():
        base = stored_rows(conn, old.base_id, kind, items)
        for i, row in items.items():
            new.own[kind].pop(i, None)
            new.hidden[kind].discard(i)
            if i in base and (row is None or not _same(base[i], row)):
                new.hidden[kind].add(i)
            if row is not None and (i not in base or not _same(base[i], row)):
                new.own[kind][i] = row
    return new


def _same(a: Row, b: Row) -> bool:
    return all(
        (x is None and y is None) or (x is not None and y is not None and float(x) == float(y)) for x, y in zip(a, b)
    )


def base_counts(conn: Connection, base_id: int) -> dict[str, int]:
    """How many cells, links and tracks a full solution stores."""
    out = {}
    for kind, (table, _, _) in _TABLES.items():
        q = sa.select(sa.func.count()).select_from(table).where(table.c.solution_id == base_id)
        out[kind] = int(conn.execute(q).scalar_one())
    return out


def counts(delta: Delta, base: dict[str, int]) -> dict[str, int]:
    """Cells, links and tracks of a delta solution (hidden ids are all base ids)."""
    return {k: base[k] - len(delta.hidden[k]) + len(delta.own[k]) for k in KINDS}


def write_delta(
    conn: Connection,
    delta: Delta,
    *,
    run_id: int,
    movie_id: int,
    status: str,
    name: str | None = None,
    objective: float | None = None,
    rank: int = 0,
    weight: float | None = None,
    base_rows: int | None = None,
) -> int:
    """A new solution stored as ``delta`` of its base; written out in full instead when the
    delta holds more than :data:`COMPACT_FRACTION` of the base's rows. ``rank`` / ``weight``: a
    ranked alternative's (uncertainty's ``<method>-rank<k>``); ``base_rows``: the base's rows
    (:func:`base_counts` summed) when the caller writes several deltas of it."""
    s = schema.solution

    def _f(v: float | None) -> float | None:
        return None if v is None or not np.isfinite(v) else float(v)

    sid = int(
        conn.execute(
            s.insert()
            .values(
                run_id=run_id,
                movie_id=movie_id,
                name=name,
                rank=int(rank),
                objective=_f(objective),
                weight=_f(weight),
                status=status,
            )
            .values(created_at=sa.func.now())
            .returning(s.c.id)
        ).scalar_one()
    )
    la = schema.solution_layer
    conn.execute(la.insert(), [{"solution_id": sid, "layer_id": sid}, {"solution_id": sid, "layer_id": delta.base_id}])
    refresh_statistics(conn, la)
    for kind, (table, key, cols) in _TABLES.items():
        own = delta.own[kind]
        if not own:
            continue
        if kind == "track":
            bulk_insert(conn, table, ("solution_id", key, *cols), [(sid, i, *r) for i, r in own.items()])
        else:
            ids = np.fromiter(own.keys(), np.int64, len(own))
            vals = np.array(list(own.values()), np.int64).reshape(len(own), len(cols))
            data: dict[str, object] = {"solution_id": sid, key: ids}
            data.update({c: vals[:, j] for j, c in enumerate(cols)})
            bulk_insert_columns(conn, table, data, len(own))
    hidden = [(sid, k, i) for k in KINDS for i in sorted(delta.hidden[k])]
    if hidden:
        bulk_insert(conn, schema.solution_hidden, ("solution_id", "kind", "item_id"), hidden)
    if base_rows is None:
        base_rows = sum(base_counts(conn, delta.base_id).values())
    if delta.size() > COMPACT_FRACTION * base_rows:
        materialize(conn, sid)
    return sid


def materialize(conn: Connection, solution_id: int) -> None:
    """Turn a delta solution into a full one in place: copy in the base rows it does not hide,
    then forget the base (the rows read through the views stay the same)."""
    base = base_of(conn, solution_id)
    if base is None:
        return
    h = schema.solution_hidden.c
    for kind, (table, key, cols) in _TABLES.items():
        names = ", ".join(cols)
        conn.execute(
            sa.text(
                f"INSERT INTO {table.name} (solution_id, {key}, {names}) "
                f"SELECT :sid, r.{key}, {', '.join('r.' + c for c in cols)} FROM {table.name} r "
                f"WHERE r.solution_id = :base AND NOT EXISTS (SELECT 1 FROM solution_hidden h "
                f"WHERE h.solution_id = :sid AND h.kind = :kind AND h.item_id = r.{key})"
            ),
            {"sid": solution_id, "base": base, "kind": kind},
        )
    conn.execute(schema.solution_hidden.delete().where(h.solution_id == solution_id))
    la = schema.solution_layer.c
    conn.execute(schema.solution_layer.delete().where(la.solution_id == solution_id, la.layer_id == base))


def dependents(conn: Connection, solution_id: int) -> list[int]:
    """The delta solutions that read ``solution_id`` as their base."""
    la = schema.solution_layer.c
    q = sa.select(la.solution_id).where(la.layer_id == solution_id, la.solution_id != solution_id)
    return sorted(int(i) for i in conn.execute(q).scalars())


def delete_solution(conn: Connection, solution_id: int) -> None:
    """Delete a solution and its rows; the deltas based on it are first written out in full
    (:func:`materialize`), since deleting a base would otherwise take their base rows along."""
    for sid in dependents(conn, solution_id):
        materialize(conn, sid)
    conn.execute(schema.solution.delete().where(schema.solution.c.id == solution_id))


def own_tracks(conn: Connection, solution_id: int, track_ids: Sequence[int]) -> None:
    """Copy a delta solution's base track rows among ``track_ids`` into its own rows (hiding the
    base's), so that updating them (their confidences) leaves the base untouched."""
    base = base_of(conn, solution_id)
    if base is None:
        return
    d_own = stored_rows(conn, solution_id, "track", track_ids)
    want = [int(t) for t in track_ids if int(t) not in d_own]
    from_base = rows(conn, solution_id, "track", want)  # only those the delta does not hide
    if not from_base:
        return
    table, key, cols = _TABLES["track"]
    bulk_insert(conn, table, ("solution_id", key, *cols), [(solution_id, i, *r) for i, r in from_base.items()])
    bulk_insert(
        conn, schema.solution_hidden, ("solution_id", "kind", "item_id"), [(solution_id, "track", i) for i in from_base]
    )


def window_selection(conn: Connection, solution_id: int, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
    """(cell ids, link ids) of a solution in frames ``t0..t1``: its cells there and its links
    out of them, by the ``(solution_id, t)`` index (a re-solve's window, not the movie)."""
    sn, se = schema.solution_node.c, schema.solution_edge.c
    in_window = (sn.solution_id == solution_id) & sn.t.between(int(t0), int(t1))
    cells = conn.execute(sa.select(sn.node_id).where(in_window))
    links = conn.execute(
        sa.select(se.edge_id)
        .select_from(schema.solution_edge.join(schema.solution_node, sn.node_id == se.source_id))
        .where(in_window, se.solution_id == solution_id)
    )
    return _ids(cells), _ids(links)


def _ids(result: sa.CursorResult) -> np.ndarray:
    """One integer column fetched from the DBAPI cursor as plain tuples."""
    got = result.cursor.fetchall() if result.cursor is not None else []
    return np.array(got, np.int64).reshape(-1) if got else np.zeros(0, np.int64)
