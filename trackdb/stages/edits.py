"""Making edits: check that an edit names a cell or link of the movie's current candidate graph
(or an earlier edit, for ``remove``), then append it to the edit log.

An edit is one appended row of ``edit``: pin or forbid a candidate node or link
(``pin_node``, ``forbid_node``, ``pin_edge``, ``forbid_edge``), or ``remove`` an earlier edit
(the log stays append-only; the removed edit's pin stops applying). ``t_start``/``t_end`` are
the frames the edit touches. :mod:`trackdb.stages.resolve` applies them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from trackdb.errors import InputError, NotFoundError
from trackdb.store import edits as log
from trackdb.store import runs
from trackdb.store.core import Store

PIN_KINDS = ("pin_node", "forbid_node", "pin_edge", "forbid_edge")
KINDS = PIN_KINDS + ("remove",)


def _kind(kind: str) -> str:
    k = kind.replace("-", "_")
    if k not in KINDS:
        raise InputError(f"unknown edit kind {kind!r}; choose {', '.join(x.replace('_', '-') for x in KINDS)}")
    return k


def add_edit(store: Store, movie_name: str, kind: str, target: int, author: str | None = None) -> int:
    """Append one edit after checking that ``target`` is a node/link (or edit) of the movie."""
    movie = store.movie(movie_name)
    k = _kind(kind)
    target = int(target)
    payload: dict[str, Any]
    if k == "remove":
        row = log.edit_row(store, movie.id, target)
        if row is None:
            raise NotFoundError(f"no edit {target} in movie {movie.name!r} (see `trackdb edits`)")
        if row["kind"] == "remove":
            raise InputError(f"edit {target} is itself a removal; pin again instead of undoing it")
        if target in log.removed(store, movie.id):
            raise InputError(f"edit {target} of movie {movie.name!r} is already removed")
        payload = {"edit_id": target}
        t0, t1 = row["t_start"], row["t_end"]
    else:
        chain = runs.solve_chain(store, movie)
        if k.endswith("node"):
            row = log.node_row(store, movie.id, target)
            what, run_id = "node", chain.candidate_run
        else:
            row = log.edge_row(store, movie.id, target)
            what, run_id = "link", chain.link_run
        if row is None:
            raise NotFoundError(f"no {what} {target} in movie {movie.name!r}")
        if row["run_id"] != run_id:
            raise InputError(
                f"{what} {target} is not in movie {movie.name!r}'s current candidate graph "
                f"({'candidates' if what == 'node' else 'link'} run {run_id}; it belongs to run "
                f"{row['run_id']})"
            )
        if what == "node":
            payload, t0, t1 = {"node_id": target}, row["t"], row["t"]
        else:
            payload = {"edge_id": target, "source_id": row["source_id"], "target_id": row["target_id"]}
            t0, t1 = row["t"], row["t"] + row["dt"]
    return log.append(store, movie.id, k, payload, t0, t1, author)


def list_edits(store: Store, movie_name: str) -> pd.DataFrame:
    """The movie's edits, oldest first, with what they touch and whether a re-solve applied them."""
    movie = store.movie(movie_name)
    rows = log.all_edits(store, movie.id)
    removed = log.removed(store, movie.id)
    out = []
    for r in rows:
        p = r["payload"] or {}
        target = p.get("node_id", p.get("edge_id", p.get("edit_id")))
        state = "removed" if r["id"] in removed else ("pending" if r["run_id"] is None else "applied")
        out.append(
            {
                "edit_id": r["id"],
                "kind": r["kind"].replace("_", "-"),
                "target": target,
                "t_start": r["t_start"],
                "t_end": r["t_end"],
                "author": r["author"],
                "created_at": None if r["created_at"] is None else str(r["created_at"])[:19],
                "run_id": r["run_id"],
                "state": state,
            }
        )
    cols = ["edit_id", "kind", "target", "t_start", "t_end", "author", "created_at", "run_id", "state"]
    return pd.DataFrame(out, columns=cols)
