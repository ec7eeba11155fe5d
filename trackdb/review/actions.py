"""What a button of the review page does: one edit of :mod:`trackdb.stages.edits`, made on the
solution the page showed, then the incremental re-solve.

The page's words are about the doubtful thing under review (a link, a division, a cell):
*accept* pins what the solution chose there, *reject* forbids it; *relink*, *division false*,
*split*, *merge*, *end track* and *undo* are the edit verbs of the same names. A form is checked
completely before anything is written, and the edit functions check the rest (unknown cell,
contradiction, a solution that is no longer current) before they append, so a refused request
leaves the store as it was.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from trackdb.errors import ConflictError, InputError, NotFoundError, SolveFailed
from trackdb.review.queue import KINDS
from trackdb.stages import edits
from trackdb.stages.resolve import ResolveResult, resolve
from trackdb.store import review as reads
from trackdb.store.core import Store


class Verb(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    RELINK = "relink"
    DIVISION_FALSE = "division-false"
    SPLIT = "split"
    MERGE = "merge"
    END_TRACK = "end-track"
    UNDO = "undo"


NEEDS_OTHER = {Verb.RELINK: "parent", Verb.MERGE: "partner", Verb.UNDO: "edit"}


class FormError(InputError):
    """A form post the page itself would never send (missing or malformed field)."""


def _int(form: Mapping[str, str], name: str) -> int:
    raw = form.get(name)
    if raw is None or str(raw).strip() == "":
        raise FormError(f"the form lacks the field {name!r}")
    try:
        return int(str(raw).strip())
    except ValueError:
        raise FormError(f"field {name!r} must be an integer id, got {str(raw)[:40]!r}") from None


@dataclass(frozen=True)
class Request:
    """A checked form post: the verb, the reviewed cell and item kind, the solution shown, and the
    verb's argument (parent / partner / edit id, or the split line in pixels)."""

    verb: Verb
    node: int
    kind: str
    based_on: int
    other: int | None = None
    line: tuple[float, ...] | None = None

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> Request:
        raw_verb = str(form.get("action", "")).strip()
        try:
            verb = Verb(raw_verb)
        except ValueError:
            raise FormError(
                f"unknown action {raw_verb[:40]!r}; the page sends one of {', '.join(v.value for v in Verb)}"
            ) from None
        kind = str(form.get("kind", "cell")).strip() or "cell"
        if kind not in KINDS:
            raise FormError(f"unknown item kind {kind[:40]!r}; one of {', '.join(KINDS)}")
        node, based_on = _int(form, "node"), _int(form, "based_on")
        other = None
        if verb in NEEDS_OTHER:  # a chip button names the cell ("choice"), else the typed field
            other = _int(form, "choice") if str(form.get("choice", "")).strip() else _int(form, "other")
        line = None
        if verb is Verb.SPLIT:
            text = str(form.get("line", "")).strip()
            if not text:
                raise FormError("split: draw the cut on the middle crop (two clicks) or type Y0,X0,Y1,X1")
            try:
                line = tuple(float(v) for v in text.replace(" ", "").split(","))
            except ValueError:
                raise FormError(f"split: the line must be comma-separated numbers, got {text[:60]!r}") from None
        return cls(verb, node, kind, based_on, other, line)


@dataclass(frozen=True)
class Outcome:
    """What a request did: the edit appended, the re-solve's result (None: nothing changed), the
    cell to show next, and how long edit + re-solve took."""

    edit_id: int
    verb: Verb
    result: ResolveResult | None
    follow: int
    seconds: float


def _mother(store: Store, solution_id: int, node: int) -> int:
    mothers, _ = reads.solution_links(store, solution_id, node)
    if not mothers:
        raise InputError(f"cell {node} has no incoming link in solution {solution_id}: nothing to accept or reject")
    return mothers[0]


def make_edit(store: Store, movie_name: str, req: Request, author: str) -> int:
    """Append the request's edit (checked by the edit functions); returns its id."""
    m, n, on = movie_name, req.node, req.based_on
    if req.verb is Verb.ACCEPT:
        if req.kind == "link":
            return edits.relink(store, m, n, _mother(store, on, n), author=author, based_on=on)
        if req.kind == "division":
            return edits.division(store, m, n, True, author=author, based_on=on)
        return edits.add_edit(store, m, "pin-node", n, author=author, based_on=on)
    if req.verb is Verb.REJECT:
        if req.kind == "link":
            edge = reads.solution_edge_id(store, on, _mother(store, on, n), n)
            assert edge is not None  # _mother found it in the same solution
            return edits.add_edit(store, m, "forbid-edge", edge, author=author, based_on=on)
        if req.kind == "division":
            return edits.division(store, m, n, False, author=author, based_on=on)
        return edits.delete_cell(store, m, n, author=author, based_on=on)
    if req.verb is Verb.RELINK:
        assert req.other is not None
        return edits.relink(store, m, n, req.other, author=author, based_on=on)
    if req.verb is Verb.DIVISION_FALSE:
        return edits.division(store, m, n, False, author=author, based_on=on)
    if req.verb is Verb.SPLIT:
        assert req.line is not None
        return edits.split_cell(store, m, n, req.line, author=author, based_on=on)
    if req.verb is Verb.MERGE:
        assert req.other is not None
        return edits.merge_cells(store, m, n, req.other, author=author, based_on=on)
    if req.verb is Verb.END_TRACK:
        return edits.end_track(store, m, n, author=author, based_on=on)
    assert req.other is not None
    return edits.remove(store, m, req.other, author=author, based_on=on)


def apply(
    store: Store, movie_name: str, req: Request, author: str, *, margin: int = 2, refresh: bool = False
) -> Outcome:
    """Make the edit and re-solve (``refresh``: also recompute the re-solved windows'
    probabilities and alternatives, which takes most of a re-solve's time on a large movie). When
    the re-solve cannot honour the edit (infeasible with the fixed frames around it), the edit is
    withdrawn by a ``remove`` and the error says so."""
    t0 = time.perf_counter()
    movie = store.movie(movie_name)
    if movie.current_solution_id != req.based_on:  # the edit functions check it again when they write
        raise ConflictError(
            f"the page showed solution {req.based_on} of movie {movie.name!r}, but solution "
            f"{movie.current_solution_id} is current now (another edit re-solved it): reload the page, "
            "check the place again and repeat the edit",
            current_solution_id=movie.current_solution_id,
        )
    for node in (req.node, req.other if req.verb in (Verb.RELINK, Verb.MERGE) else None):
        if node is not None and reads.cell(store, movie, node, None) is None:
            raise NotFoundError(f"no cell {node} in movie {movie.name!r}")
    edit_id = make_edit(store, movie_name, req, author)
    try:
        result = resolve(store, movie_name, margin=margin, refresh=refresh)
    except SolveFailed as exc:
        undo = edits.remove(store, movie_name, edit_id, author=author)
        raise SolveFailed(f"{exc} — the page withdrew edit {edit_id} (edit {undo} removes it)") from exc
    follow = req.node
    if req.verb in (Verb.SPLIT, Verb.MERGE):
        made = edits.edit_cells(store, movie_name, edit_id)
        follow = made[0] if made else req.node
    return Outcome(edit_id, req.verb, result, follow, time.perf_counter() - t0)
