"""The review queue: the current solution's doubtful links, divisions and cells, least probable
first, from the stored probabilities (:func:`trackdb.store.probabilities.doubtful`, the query of
``trackdb uncertain``), each marked when an active edit already touches its cell.

Probabilities belong to the solution an uncertainty run was computed on. After a re-solve the
queue keeps using the movie's latest run (its candidate links and cells are the same graph) and
says so, until probabilities of the new solution are stored.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass

import pandas as pd

from trackdb.errors import NotFoundError
from trackdb.stages import pins as pin_rules
from trackdb.store import edits as log
from trackdb.store import probabilities, runs
from trackdb.store.core import Movie, Store
from trackdb.store.runs import RunKind, UncertaintyParams

KINDS = ("link", "division", "cell")
CACHED_TABLES = 8


@dataclass(frozen=True)
class Item:
    """One doubtful place: ``node_id`` is the linked child (link), the mother (division) or the
    cell itself (cell)."""

    kind: str
    node_id: int
    t: int
    mother_id: int | None
    daughters: tuple[int, ...]
    p: float
    reviewed: bool

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.node_id}"


@dataclass(frozen=True)
class Doubt:
    """What the page knows about doubt: the probability run used and the solution it was
    computed on (None: no uncertainty run yet), and the queue."""

    run_id: int | None
    run_solution_id: int | None
    items: list[Item]

    def stale(self, solution_id: int) -> bool:
        return self.run_id is not None and self.run_solution_id != solution_id

    def find(self, kind: str, node_id: int) -> Item | None:
        return next((i for i in self.items if i.kind == kind and i.node_id == node_id), None)


def probability_run(store: Store, movie: Movie) -> tuple[int | None, int | None]:
    """(run id, its solution id) of the uncertainty run to read: the current solution's, else the
    movie's latest; (None, None) when the movie has none."""
    try:
        run_id = runs.latest_uncertainty_run(store, movie)
        return run_id, movie.current_solution_id
    except NotFoundError:
        run = runs.latest_run(store, movie.id, RunKind.UNCERTAINTY)
        if run is None:
            return None, None
        return run.id, run.typed(UncertaintyParams).solution_id


def edited_cells(store: Store, movie: Movie) -> set[int]:
    """Cells the movie's active edits constrain (a pinned or forbidden link: both its ends)."""
    out: set[int] = set()
    for c in pin_rules.constraints(log.all_edits(store, movie.id)):
        if c.family in pin_rules.NODE_FAMILIES:
            out.add(c.target)
        elif c.ends is not None:
            out.update(c.ends)
    return out


def doubt(
    store: Store,
    movie: Movie,
    solution_id: int,
    below: float,
    cache: MutableMapping[tuple[int, int, float], pd.DataFrame] | None = None,
) -> Doubt:
    """The queue of what is less probable than ``below`` in solution ``solution_id``.

    ``cache`` keeps the doubt table per (run, solution, threshold): it changes only with them
    (one query of every probability of the run, 0.3 s on the bacteria movie), while which
    items are edited is read fresh every time."""
    run_id, run_sid = probability_run(store, movie)
    if run_id is None:
        return Doubt(None, None, [])
    key = (run_id, int(solution_id), float(below))
    table = cache.get(key) if cache is not None else None
    if table is None:
        table = probabilities.doubtful(store, run_id, solution_id, below)
        if cache is not None:
            if len(cache) >= CACHED_TABLES:
                cache.pop(next(iter(cache)))
            cache[key] = table
    touched = edited_cells(store, movie)
    items = []
    for r in table.to_dict("records"):
        kind, node = str(r["kind"]), int(r["node_id"])
        daughters = tuple(int(d) for d in r["daughter_ids"].split(",")) if isinstance(r["daughter_ids"], str) else ()
        mother = None if pd.isna(r["mother_id"]) else int(r["mother_id"])
        cells = {node, *daughters} | ({mother} if kind == "link" and mother is not None else set())
        items.append(Item(kind, node, int(r["t"]), mother, daughters, float(r["p"]), bool(cells & touched)))
    return Doubt(run_id, run_sid, items)
