"""The review web app (Starlette): the doubtful places of a movie, least probable first, each with
crops of its frames, its lineage, and buttons that edit and re-solve.

Routes (``M`` a movie name or id, ``N`` a candidate cell id):

* ``GET /`` → the movie given to ``trackdb review``; ``GET /movie/M`` → its first unreviewed item
* ``GET /movie/M/cell/N?kind=link|division|cell`` the review of one place
* ``GET /movie/M/crop/N/T.png`` frame T around cell N, outlines and ids drawn (current solution)
* ``GET /movie/M/lineage/N.svg`` the lineage tree of cell N (two generations up, all the way down)
* ``GET /movie/M/lineage-figure/N.png|svg`` the whole family as ``trackdb plot lineage`` draws it
* ``POST /movie/M/edit`` one action of :mod:`trackdb.review.actions` (form fields ``action``,
  ``node``, ``kind``, ``based_on``, ``other``, ``line``), then 303 to the page to show next
* ``POST /movie/M/probabilities`` compute the current solution's probabilities (``sm``)

Plain HTML forms do the work (the page works without JavaScript); ``static/review.js`` adds the
keyboard shortcuts and drawing the split line on a crop. Every refused request is an HTML page
with the reason and a 4xx status (404 unknown movie or cell, 400 malformed form or bad edit, 409
conflict, 422 infeasible re-solve), and leaves the store as it was.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from trackdb.errors import ConflictError, InputError, NotFoundError, SolveFailed, TrackdbError
from trackdb.io.pixels import MoviePixels
from trackdb.review import actions
from trackdb.review.crops import CropBox, render_crop
from trackdb.review.lineage import lineage_svg
from trackdb.review.queue import KINDS, Doubt, Item, doubt, probability_run
from trackdb.stages.edits import list_edits
from trackdb.store import review as reads
from trackdb.store.core import Movie, Store

HERE = Path(__file__).parent
QUEUE_SHOWN = 200
NEIGHBOURS = 8
LOCAL_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


@dataclass
class ReviewState:
    """What the app holds between requests: the store, who edits, the queue threshold, the
    re-solve margin, pixel readers per movie, the outcome of recent actions (for the page
    after the redirect), and one lock so that this app's edits re-solve one at a time."""

    store: Store
    movie: str
    author: str
    below: float = 0.8
    margin: int = 2
    refresh: bool = False
    pixels: dict[int, MoviePixels] = field(default_factory=dict)
    outcomes: dict[int, actions.Outcome] = field(default_factory=dict)
    doubt_tables: dict[tuple[int, int, float], Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def doubt(self, movie: Movie, solution_id: int) -> Doubt:
        return doubt(self.store, movie, solution_id, self.below, self.doubt_tables)

    def movie_pixels(self, movie: Movie) -> MoviePixels:
        if movie.id not in self.pixels:
            self.pixels[movie.id] = MoviePixels(movie)
        return self.pixels[movie.id]


def status_of(exc: TrackdbError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, SolveFailed):
        return 422
    return 400


templates = Jinja2Templates(directory=str(HERE / "templates"))


def _state(request: Request) -> ReviewState:
    state: ReviewState = request.app.state.review
    return state


def _movie(request: Request) -> Movie:
    return _state(request).store.movie(request.path_params["movie"])


def _solution(movie: Movie) -> int:
    if movie.current_solution_id is None:
        raise InputError(f"movie {movie.name!r} has no solution to review: run `trackdb solve --movie {movie.name}`")
    return int(movie.current_solution_id)


def _cell(state: ReviewState, movie: Movie, node: int, sid: int) -> reads.Cell:
    cell = reads.cell(state.store, movie, node, sid)
    if cell is None:
        raise NotFoundError(f"no cell {node} in movie {movie.name!r}")
    return cell


def cell_url(movie: Movie, node: int, kind: str | None = None, **query: Any) -> str:
    q = {"kind": kind, **query} if kind else query
    suffix = ("?" + urlencode({k: v for k, v in q.items() if v is not None})) if q else ""
    return f"/movie/{movie.name}/cell/{int(node)}{suffix}"


def _item_title(item: Item | None, cell: reads.Cell) -> str:
    if item is None:
        return f"cell {cell.node_id} at frame {cell.t}"
    if item.kind == "link":
        return f"link {item.mother_id} → {item.node_id} into frame {item.t}"
    if item.kind == "division":
        return f"division of {item.node_id} into {' and '.join(map(str, item.daughters))} after frame {item.t}"
    return f"cell {item.node_id} at frame {item.t}"


def _neighbours(cells: list[reads.CellMask], exclude: int, centre: tuple[float, ...], n: int = NEIGHBOURS) -> list[int]:
    """The ``n`` cells nearest ``centre`` (the choices offered for relink and merge)."""
    near = sorted((sum((a - b) ** 2 for a, b in zip(c.centroid, centre)), c.node_id) for c in cells)
    return [node for _, node in near if node != exclude][:n]


async def index(request: Request) -> Response:
    return RedirectResponse(f"/movie/{_state(request).movie}", status_code=307)


async def movie_page(request: Request) -> Response:
    return await run_in_threadpool(_movie_page, request)


def _movie_page(request: Request) -> Response:
    state = _state(request)
    movie = _movie(request)
    sid = _solution(movie)
    queue = state.doubt(movie, sid)
    first = next((i for i in queue.items if not i.reviewed), None)
    if first is not None:
        return RedirectResponse(cell_url(movie, first.node_id, first.kind), status_code=303)
    return templates.TemplateResponse(request, "review.html", _context(state, movie, sid, queue, None, None, request))


async def cell_page(request: Request) -> Response:
    return await run_in_threadpool(_cell_page, request)


def _cell_page(request: Request) -> Response:
    state = _state(request)
    movie = _movie(request)
    sid = _solution(movie)
    node = _path_int(request, "node")
    kind = request.query_params.get("kind")
    if kind is not None and kind not in KINDS:
        raise InputError(f"unknown item kind {kind[:40]!r}; one of {', '.join(KINDS)}")
    cell = _cell(state, movie, node, sid)
    queue = state.doubt(movie, sid)
    item = queue.find(kind, node) if kind else next((i for i in queue.items if i.node_id == node), None)
    ctx = _context(state, movie, sid, queue, cell, item, request, kind=kind)
    return templates.TemplateResponse(request, "review.html", ctx)


def _context(
    state: ReviewState,
    movie: Movie,
    sid: int,
    queue: Doubt,
    cell: reads.Cell | None,
    item: Item | None,
    request: Request,
    kind: str | None = None,
) -> dict[str, Any]:
    store = state.store
    ctx: dict[str, Any] = {
        "movie": movie,
        "sid": sid,
        "author": state.author,
        "below": state.below,
        "queue": queue.items[:QUEUE_SHOWN],
        "n_items": len(queue.items),
        "n_reviewed": sum(i.reviewed for i in queue.items),
        "prob_run": queue.run_id,
        "prob_stale": queue.stale(sid),
        "prob_solution": queue.run_solution_id,
        "cell": cell,
        "item": item,
        "kind": (item.kind if item else kind) or "cell",
        "outcomes": _outcomes(state, request),
        "edits": list_edits(store, movie.name).tail(6).iloc[::-1].to_dict("records"),
        "cell_url": lambda n, k=None: cell_url(movie, n, k),
        "fmt_p": lambda p: "–" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.3f}",
    }
    if cell is None:
        return ctx
    mothers, daughters = reads.solution_links(store, sid, cell.node_id)
    if item is None:  # not (or no longer) doubtful: act on what the solution has here
        wanted = ctx["kind"]
        holds = {"link": bool(mothers), "division": len(daughters) == 2, "cell": True}
        ctx["kind"] = wanted if holds.get(wanted, False) else "cell"
    box = CropBox.around(cell.centroid, cell.lo, cell.hi, movie.shape)
    frames = [t for t in (cell.t - 1, cell.t, cell.t + 1) if 0 <= t < movie.n_frames]
    prev_cells = reads.frame_cells(store, movie, sid, cell.t - 1, box_lo(cell, box), box_hi(cell, box))
    same_cells = reads.frame_cells(store, movie, sid, cell.t, box_lo(cell, box), box_hi(cell, box))
    pos = next((k for k, i in enumerate(queue.items) if item is not None and i.key == item.key), None)
    unreviewed = [(k, i) for k, i in enumerate(queue.items) if not i.reviewed and (item is None or i.key != item.key)]
    after = [i for k, i in unreviewed if pos is None or k > pos]
    ctx.update(
        title=_item_title(item, cell),
        mothers=mothers,
        daughters=daughters,
        frames=frames,
        box=box,
        parents=_neighbours(prev_cells, -1, cell.centroid) if cell.t > 0 else [],
        partners=_neighbours(same_cells, cell.node_id, cell.centroid),
        lineage=_lineage(state, movie, sid, cell, queue.run_id),
        next_item=after[0] if after else (unreviewed[0][1] if unreviewed else None),
        prev_item=queue.items[pos - 1] if pos else None,
    )
    return ctx


def box_lo(cell: reads.Cell, box: CropBox) -> tuple[int, ...]:
    return (*cell.lo[:-2], *box.lo) if len(cell.lo) == 3 else box.lo


def box_hi(cell: reads.Cell, box: CropBox) -> tuple[int, ...]:
    return (*cell.hi[:-2], *box.hi) if len(cell.hi) == 3 else box.hi


def _lineage(state: ReviewState, movie: Movie, sid: int, cell: reads.Cell, run_id: int | None) -> str | None:
    if cell.track_id is None:
        return None
    tracks = reads.family(state.store, sid, cell.track_id)
    mothers = [int(n) for n in tracks["last_node_id"]] if len(tracks) and run_id is not None else []
    return lineage_svg(
        tracks,
        division_p=reads.division_probabilities(state.store, run_id, sid, mothers) if run_id is not None else {},
        focus=(cell.track_id, cell.t),
        href=lambda n: cell_url(movie, n),
    )


def _outcomes(state: ReviewState, request: Request) -> list[actions.Outcome]:
    done = request.query_params.get("done", "")
    ids = [int(x) for x in done.split(",") if x.strip().isdigit()]
    return [state.outcomes[i] for i in ids if i in state.outcomes]


def _path_int(request: Request, name: str) -> int:
    raw = request.path_params[name]
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"{name} must be an integer id, got {str(raw)[:40]!r}") from None


async def crop(request: Request) -> Response:
    return await run_in_threadpool(_crop, request)


def _crop(request: Request) -> Response:
    state = _state(request)
    movie = _movie(request)
    sid = _solution(movie)
    node, t = _path_int(request, "node"), _path_int(request, "t")
    if not 0 <= t < movie.n_frames:
        raise NotFoundError(f"frame {t} is outside movie {movie.name!r} (0-{movie.n_frames - 1})")
    cell = _cell(state, movie, node, sid)
    box = CropBox.around(cell.centroid, cell.lo, cell.hi, movie.shape)
    cells = reads.frame_cells(state.store, movie, sid, t, box_lo(cell, box), box_hi(cell, box))
    mothers, daughters = reads.solution_links(state.store, sid, node)
    roles = {m: "mother" for m in mothers} | {d: "daughter" for d in daughters} | {node: "focus"}
    z = int(round(cell.centroid[0])) if movie.ndim == 3 else None
    png = render_crop(state.movie_pixels(movie).frame(t), cells, box, roles, z=z)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


async def lineage(request: Request) -> Response:
    return await run_in_threadpool(_lineage_route, request)


def _lineage_route(request: Request) -> Response:
    state = _state(request)
    movie = _movie(request)
    sid = _solution(movie)
    cell = _cell(state, movie, _path_int(request, "node"), sid)
    svg = _lineage(state, movie, sid, cell, probability_run(state.store, movie)[0])
    if svg is None:
        raise NotFoundError(f"cell {cell.node_id} is not in the current solution (id {sid}) of movie {movie.name!r}")
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


async def lineage_figure(request: Request) -> Response:
    return await run_in_threadpool(_lineage_figure, request)


def _lineage_figure(request: Request) -> Response:
    """The whole family as ``trackdb plot lineage`` draws it (PNG or SVG), for download."""
    from trackdb.io.lineage_plot import lineage_figure as figure

    state = _state(request)
    movie = _movie(request)
    sid = _solution(movie)
    cell = _cell(state, movie, _path_int(request, "node"), sid)
    if cell.track_id is None:
        raise NotFoundError(f"cell {cell.node_id} is not in the current solution (id {sid}) of movie {movie.name!r}")
    fmt = request.path_params["fmt"]
    data = figure(state.store, movie.name, cell.track_id, solution=sid, fmt=fmt)
    media = "image/png" if fmt == "png" else "image/svg+xml"
    return Response(data, media_type=media, headers={"Cache-Control": "no-store"})


def _same_origin(request: Request) -> None:
    """Refuse posts from other sites' pages (a browser sends their Origin)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, f"cross-site form post from {origin[:80]} refused")


async def edit(request: Request) -> Response:
    _same_origin(request)
    form = await request.form()
    fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    return await run_in_threadpool(_edit, request, fields)


def _edit(request: Request, fields: dict[str, str]) -> Response:
    state = _state(request)
    movie = _movie(request)
    req = actions.Request.from_form(fields)
    with state.lock:
        outcome = actions.apply(state.store, movie.name, req, state.author, margin=state.margin, refresh=state.refresh)
    state.outcomes[outcome.edit_id] = outcome
    kind = req.kind if outcome.follow == req.node and req.verb is not actions.Verb.UNDO else None
    return RedirectResponse(cell_url(movie, outcome.follow, kind, done=outcome.edit_id), status_code=303)


async def probabilities(request: Request) -> Response:
    _same_origin(request)
    return await run_in_threadpool(_probabilities, request)


def _probabilities(request: Request) -> Response:
    from trackdb.stages.uncertainty import run_uncertainty

    state = _state(request)
    movie = _movie(request)
    _solution(movie)
    with state.lock:
        run_uncertainty(state.store, movie.name, "sm")
    back = request.headers.get("referer")
    target = back if back and urlsplit(back).netloc == request.headers.get("host") else f"/movie/{movie.name}"
    return RedirectResponse(target, status_code=303)


def _error_page(request: Request, status: int, reason: str) -> Response:
    back = request.headers.get("referer")
    if not back or urlsplit(back).netloc != request.headers.get("host"):
        back = "/"
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "reason": reason, "back": back}, status_code=status
    )


async def on_trackdb_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TrackdbError)
    return _error_page(request, status_of(exc), str(exc))


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error_page(request, exc.status_code, str(exc.detail))


def create_app(
    store: Store,
    movie: str,
    *,
    author: str,
    below: float = 0.8,
    margin: int = 2,
    refresh: bool = False,
    hosts: list[str] | None = None,
) -> Starlette:
    """The review app of ``movie`` (checked now: an unknown movie fails before serving).

    ``refresh``: every re-solve also refreshes the probabilities of the windows it re-solved
    (else the queue keeps the latest stored probabilities, says so, and offers to recompute);
    ``hosts``: Host header values accepted besides the loopback names (the address bound when it
    is not a loopback one)."""
    if not 0.0 <= float(below) <= 1.0:
        raise InputError(f"--below must lie in [0, 1], got {below}")
    if margin < 0:
        raise InputError(f"--margin must be >= 0, got {margin}")
    found = store.movie(movie)
    _solution(found)
    routes = [
        Route("/", index),
        Route("/movie/{movie}", movie_page),
        Route("/movie/{movie}/cell/{node}", cell_page),
        Route("/movie/{movie}/crop/{node}/{t}.png", crop),
        Route("/movie/{movie}/lineage/{node}.svg", lineage),
        Route("/movie/{movie}/lineage-figure/{node}.{fmt:str}", lineage_figure),
        Route("/movie/{movie}/edit", edit, methods=["POST"]),
        Route("/movie/{movie}/probabilities", probabilities, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=LOCAL_HOSTS + list(hosts or []))],
        exception_handlers={TrackdbError: on_trackdb_error, HTTPException: on_http_error},
    )
    app.state.review = ReviewState(store, found.name, author, float(below), int(margin), bool(refresh))
    return app
