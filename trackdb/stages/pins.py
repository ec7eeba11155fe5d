"""From the edit log to solver constraints: what every active edit requires, in database ids
(:func:`constraints`), whether a set of them contradicts itself (:func:`contradiction`), and the
:class:`solvers.types.Pins` of a candidate graph (:func:`pins_for`).

One edit gives one or more constraints ``(family, id)``; families are the bounds of
:mod:`solvers.model`: ``must_node`` / ``forbid_node`` (x), ``must_edge`` / ``forbid_edge`` (y),
``must_divide`` / ``forbid_divide`` (s), ``must_end`` (d). The table of what each edit kind
means is in ``docs/architecture.md`` ("Edits and re-solving").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from solvers.types import Pins
from trackdb.store.graph import positions

NODE_FAMILIES = ("must_node", "forbid_node", "must_divide", "forbid_divide", "must_end")
EDGE_FAMILIES = ("must_edge", "forbid_edge")
CREATING = ("add_cell", "merge_cells", "split_cell")  # kinds whose payload lists the cells they made


@dataclass(frozen=True)
class Constraint:
    family: str
    target: int  # node or edge id
    edit_id: int  # the edit that asks for it
    ends: tuple[int, int] | None = None  # (source, target) node ids of an edge constraint


def of_edit(row: dict[str, Any]) -> list[Constraint]:
    """What one active edit requires."""
    k, p, eid = row["kind"], row["payload"] or {}, int(row["id"])

    def node(family: str, nid: int) -> Constraint:
        return Constraint(family, int(nid), eid)

    def edge(family: str) -> Constraint:
        return Constraint(family, int(p["edge_id"]), eid, (int(p["source_id"]), int(p["target_id"])))

    if k == "pin_node":
        return [node("must_node", p["node_id"])]
    if k in ("forbid_node", "delete_cell"):
        return [node("forbid_node", p["node_id"])]
    if k in ("pin_edge", "relink"):
        return [edge("must_edge")]
    if k == "forbid_edge":
        return [edge("forbid_edge")]
    if k == "division":
        return [node("must_divide" if p["real"] else "forbid_divide", p["node_id"])]
    if k == "end_track":
        return [node("must_end", p["node_id"])]
    if k in CREATING:
        return [node("must_node", n) for n in p["cells"]] + [node("forbid_node", n) for n in p["replaced"]]
    return []


def constraints(edits: Iterable[dict[str, Any]]) -> list[Constraint]:
    """Everything the movie's edit log requires now: the constraints of every edit not
    removed, and ``forbid_node`` for the cells of removed add/merge/split edits (they exist
    only because of that edit)."""
    rows = list(edits)
    removed = {int(r["payload"]["edit_id"]): int(r["id"]) for r in rows if r["kind"] == "remove"}
    out: list[Constraint] = []
    for r in rows:
        if r["kind"] == "remove":
            continue
        if int(r["id"]) in removed:
            if r["kind"] in CREATING:
                out += [Constraint("forbid_node", int(n), int(r["id"])) for n in r["payload"]["cells"]]
            continue
        out += of_edit(r)
    return out


def contradiction(cons: Iterable[Constraint]) -> tuple[int, int, str] | None:
    """The first two edits whose constraints cannot hold together, with the reason; None if
    none (the checks that need no graph: the solver finds the rest infeasible)."""
    by: dict[tuple[str, int], int] = {}
    parent_of: dict[int, tuple[int, int]] = {}  # child → (edit, edge) of a pinned incoming link
    out_links: dict[int, list[tuple[int, int]]] = {}  # source → [(edit, edge)] of pinned links
    ends: list[tuple[Constraint, tuple[int, int]]] = []
    for c in cons:
        by.setdefault((c.family, c.target), c.edit_id)
        if c.family == "must_edge" and c.ends is not None:
            ends.append((c, c.ends))
    pairs = (
        ("must_node", "forbid_node", "the cell {} is both kept and deleted"),
        ("must_edge", "forbid_edge", "the link {} is both pinned and forbidden"),
        ("must_divide", "forbid_divide", "the cell {} both divides and does not"),
        ("must_divide", "must_end", "the cell {} both divides and ends its track"),
        ("must_divide", "forbid_node", "the cell {} divides but is deleted"),
        ("must_end", "forbid_node", "the cell {} ends a track but is deleted"),
    )
    for a, b, why in pairs:
        for (fam, target), eid in by.items():
            if fam == a and (b, target) in by:
                first, second = sorted((eid, by[(b, target)]))
                return first, second, why.format(target)
    for c, (src, dst) in ends:
        if dst in parent_of and parent_of[dst][1] != c.target:
            return (
                parent_of[dst][0],
                c.edit_id,
                f"the cell {dst} gets two parents (links {parent_of[dst][1]} and {c.target})",
            )
        parent_of[dst] = (c.edit_id, c.target)
        out_links.setdefault(src, [])
        if c.target not in {e for _, e in out_links[src]}:
            out_links[src].append((c.edit_id, c.target))
        for cell in (src, dst):
            if ("forbid_node", cell) in by:
                first, second = sorted((c.edit_id, by[("forbid_node", cell)]))
                return first, second, f"the link {c.target} joins the deleted cell {cell}"
        if ("must_end", src) in by:
            first, second = sorted((c.edit_id, by[("must_end", src)]))
            return first, second, f"the cell {src} ends its track but the link {c.target} leaves it"
    for src, links in out_links.items():
        if len(links) > 2:
            return links[0][0], links[2][0], f"the cell {src} gets three daughters"
        if len(links) == 2 and ("forbid_divide", src) in by:
            first, second = sorted((links[1][0], by[("forbid_divide", src)]))
            return first, second, f"the cell {src} does not divide but two pinned links leave it"
    return None


def pins_for(
    cons: Iterable[Constraint], node_ids: np.ndarray, edge_ids: np.ndarray, *, partial: bool = False
) -> tuple[Pins, list[int], dict[int, list[tuple[str, int]]]]:
    """The graph's pins (local indices), the edits any of whose cells or links the graph lacks
    (stale: skipped whole), and edit id → [(family, local index)] for the pins that were used.

    ``partial``: the graph is a part of the movie (a re-solve's window); constraints on cells
    and links outside it are left out one by one and nothing is stale."""
    cons = list(cons)
    node_c = [c for c in cons if c.family in NODE_FAMILIES]
    edge_c = [c for c in cons if c.family in EDGE_FAMILIES]
    npos, nfound = positions(node_ids, np.array([c.target for c in node_c], np.int64))
    epos, efound = positions(edge_ids, np.array([c.target for c in edge_c], np.int64))
    stale = {c.edit_id for c, ok in zip(node_c, nfound) if not ok} | {
        c.edit_id for c, ok in zip(edge_c, efound) if not ok
    }
    if partial:
        stale = set()
        node_c = [c for c, ok in zip(node_c, nfound) if ok]
        edge_c = [c for c, ok in zip(edge_c, efound) if ok]
        npos, epos = npos[nfound], epos[efound]
    used: dict[int, list[tuple[str, int]]] = {}
    families: dict[str, set[int]] = {f: set() for f in NODE_FAMILIES + EDGE_FAMILIES}
    for group, pos in ((node_c, npos), (edge_c, epos)):
        for c, i in zip(group, pos.tolist()):
            if c.edit_id in stale:
                continue
            families[c.family].add(int(i))
            used.setdefault(c.edit_id, []).append((c.family, int(i)))

    def arr(f: str) -> np.ndarray:
        return np.array(sorted(families[f]), np.int64)

    pins = Pins(
        must_nodes=arr("must_node"),
        forbid_nodes=arr("forbid_node"),
        must_edges=arr("must_edge"),
        forbid_edges=arr("forbid_edge"),
        must_divide=arr("must_divide"),
        forbid_divide=arr("forbid_divide"),
        must_end=arr("must_end"),
    )
    return pins, sorted(stale), used


def violated(
    cons: Iterable[Constraint], node_ids: np.ndarray, edge_ids: np.ndarray, source_ids: np.ndarray
) -> set[int]:
    """Edits a stored solution breaks (its cell ids, link ids and the links' sources)."""
    nodes, links = set(np.asarray(node_ids).tolist()), set(np.asarray(edge_ids).tolist())
    src, n_out = np.unique(np.asarray(source_ids, np.int64), return_counts=True)
    out = dict(zip(src.tolist(), n_out.tolist()))
    bad: set[int] = set()
    for c in cons:
        x, k = c.target, out.get(c.target, 0)
        ok = {
            "must_node": x in nodes,
            "forbid_node": x not in nodes,
            "must_edge": x in links,
            "forbid_edge": x not in links,
            "must_divide": x in nodes and k == 2,
            "forbid_divide": k <= 1,
            "must_end": x in nodes and k == 0,
        }[c.family]
        if not ok:
            bad.add(c.edit_id)
    return bad


def holds(family: str, i: int, node_sel: np.ndarray, edge_sel: np.ndarray, n_out: np.ndarray) -> bool:
    """Whether a selection satisfies one pin (``n_out``: selected outgoing links per node)."""
    if family == "must_node":
        return bool(node_sel[i])
    if family == "forbid_node":
        return not bool(node_sel[i])
    if family == "must_edge":
        return bool(edge_sel[i])
    if family == "forbid_edge":
        return not bool(edge_sel[i])
    if family == "must_divide":
        return bool(node_sel[i]) and int(n_out[i]) == 2
    if family == "forbid_divide":
        return int(n_out[i]) <= 1
    return bool(node_sel[i]) and int(n_out[i]) == 0  # must_end
