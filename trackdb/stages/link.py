"""The link stage: candidate links from every candidate to its k nearest candidates of the
next ``dt`` frames within a radius, in physical units (the movie's spacing, so an anisotropic z
counts as far as it is).

Without a radius or k the stage chooses them from the cells themselves (:func:`choose_link`):
cell size, nearest-neighbour distance and a first motion estimate, so one default fits bacteria,
nuclei, dense tissue and 3D stacks alike instead of a pixel count tuned to one movie.

The links of a source frame depend only on that frame and the ``dt`` frames after it, so a run
can be written in frame chunks (:func:`link_frames`, the experiment engine's tasks) and gives
the same links as one pass over the movie.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from inference.edges import link_candidates
from inference.types import CandidateEdges, Candidates
from trackdb.errors import InputError
from trackdb.store import ingest, runs
from trackdb.store.core import Movie, Store
from trackdb.store.graph import load_candidates
from trackdb.store.runs import LinkParams, RunKind

# The default radius covers RADIUS_MOTIONS times the 95% quantile of the first motion estimate
# (fast cells' true continuations, which the nearest-neighbour estimate understates where cells
# move more than half their spacing), and at least RADIUS_DIAMETERS cell diameters (slow cells).
RADIUS_MOTIONS = 3.0
RADIUS_DIAMETERS = 2.0
# k: the next-frame cells within K_MOTIONS motion scales of a cell (99% quantile over cells),
# plus one for a division's second daughter, within [K_MIN, K_MAX]. Dense tissue has many cells
# in the radius but few where a cell can plausibly have gone, so the candidate count stays low.
# 2.5: the smallest multiple (of 2, 2.5, 3) that keeps every true link of every case of
# benchmarks/link_defaults.py (at 2, k 9 on the bacteria movie lost 4 of 3,517).
K_MOTIONS = 2.5
K_QUANTILE = 0.99
MOTION_QUANTILE = 0.95
K_MIN, K_MAX = 3, 20


@dataclass(frozen=True)
class LinkChoice:
    """A radius and k chosen from the cells, and the statistics they came from (physical units)."""

    max_distance: float
    k: int
    diameter: float  # median equivalent diameter (disc or ball of the cell's area or volume)
    neighbour: float | None  # median distance to the nearest other cell of the same frame
    motion: float  # 95% quantile of the distance to the nearest cell of the next frame
    cells: int

    def reason(self, radius: bool = True, k: bool = True) -> str:
        """One line: what was chosen (the radius, k or both) and why."""
        nn = "n/a" if self.neighbour is None else f"{self.neighbour:.3g}"
        size = RADIUS_DIAMETERS * self.diameter
        parts = []
        if radius:
            parts.append(
                f"radius {self.max_distance:.3g} = max({RADIUS_MOTIONS:g} x motion {self.motion:.3g}, "
                f"{RADIUS_DIAMETERS:g} x diameter {self.diameter:.3g}) "
                f"[{'motion' if self.max_distance > size else 'size'}]"
            )
        if k:
            parts.append(
                f"k {self.k} = next-frame cells within {K_MOTIONS:g} x motion (99%) + 1, in [{K_MIN}, {K_MAX}]"
            )
        return "; ".join(parts) + f"; nearest neighbour {nn}, {self.cells} cells, physical units"

    def to_json(self) -> dict[str, Any]:
        return {
            "diameter": round(self.diameter, 6),
            "neighbour": None if self.neighbour is None else round(self.neighbour, 6),
            "motion": round(self.motion, 6),
            "cells": self.cells,
        }


def physical(centroid: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Pixel centroids (N, D) in physical units."""
    return np.asarray(centroid, np.float64) * np.asarray(spacing, np.float64)


def equivalent_diameter(size: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Diameter of the disc (2D) or ball (3D) with each object's area or volume (physical)."""
    vol = np.asarray(size, np.float64) * float(np.prod(spacing))
    if len(spacing) == 3:
        return np.asarray(np.cbrt(6.0 * vol / np.pi))
    return np.asarray(np.sqrt(4.0 * vol / np.pi))


def _next_frames(t: np.ndarray, dt: int) -> tuple[list[np.ndarray], list[int]]:
    """The cells of each frame that holds any, and the frames (positions in that list) whose
    nearest later frame with cells lies within ``dt`` (that frame is the next in the list)."""
    if len(t) == 0:
        return [], []
    groups = np.split(*_by_frame(t))
    frames = [int(t[g[0]]) for g in groups]
    return groups, [i for i in range(len(groups) - 1) if frames[i + 1] - frames[i] <= dt]


def choose_link(
    t: np.ndarray, centroid: np.ndarray, size: np.ndarray, spacing: tuple[float, ...], dt: int = 1
) -> LinkChoice:
    """Radius and k from the cells: size, spacing, nearest-neighbour distance, first motion.

    The first motion estimate is the distance from each cell to the nearest cell of the next
    frame (no link needed); its 95% quantile ignores cells that enter or leave. The radius is
    :data:`RADIUS_MOTIONS` times that, at least :data:`RADIUS_DIAMETERS` median diameters; k
    counts the next-frame cells where a cell may plausibly have gone (see the module constants).
    Raises :class:`InputError` where no frame has a later frame with cells within ``dt``.
    """
    t = np.asarray(t, np.int64)
    p = physical(centroid, spacing)
    groups, pairs = _next_frames(t, dt)
    if not pairs:
        frames = len(np.unique(t))
        raise InputError(
            f"no candidate pairs: {frames} frame(s) hold cells and none has cells in the next {dt} frame(s)"
        )
    trees = [cKDTree(p[g]) for g in groups]  # one per frame, for all three statistics
    nearest = np.concatenate([np.asarray(trees[i + 1].query(p[groups[i]], k=1)[0]) for i in pairs])
    motion = float(np.quantile(nearest, MOTION_QUANTILE))
    diameter = float(np.median(equivalent_diameter(size, spacing)))
    radius = max(RADIUS_MOTIONS * motion, RADIUS_DIAMETERS * diameter)
    if not math.isfinite(radius) or radius <= 0:  # every cell 0-sized and still: nothing to scale by
        radius = float(max(spacing))
    reach = max(K_MOTIONS * motion, float(min(spacing)))
    counts = np.concatenate(
        [np.asarray(trees[i + 1].query_ball_point(p[groups[i]], reach, return_length=True)) for i in pairs]
    )
    k = int(np.clip(math.ceil(float(np.quantile(counts, K_QUANTILE))) + 1, K_MIN, K_MAX))
    same = [np.asarray(tr.query(p[g], k=2)[0])[:, 1] for tr, g in zip(trees, groups) if len(g) >= 2]
    neighbour = float(np.median(np.concatenate(same))) if same else None
    return LinkChoice(radius, k, diameter, neighbour, motion, len(t))


def _by_frame(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(t, kind="stable")
    return order, np.unique(t[order], return_index=True)[1][1:]


def check_link(max_distance: float | None, k: int | None, dt: int) -> None:
    """The link parameters' rules (the CLI's and an experiment manifest's); None = choose."""
    if max_distance is not None:
        number = isinstance(max_distance, (int, float, np.integer, np.floating)) and not isinstance(max_distance, bool)
        if not number or not math.isfinite(max_distance) or max_distance <= 0:
            raise InputError(f"--max-distance must be a finite number > 0 (physical units), got {max_distance!r}")
    for name, v in (("k", k), ("dt", dt)):
        if name == "k" and v is None:
            continue
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise InputError(f"--{name} must be an integer >= 1, got {v!r}")


def link_params(
    store: Store,
    movie: Movie,
    *,
    max_distance: float | None = None,
    k: int | None = None,
    dt: int = 1,
    loaded: tuple[int, Candidates] | None = None,
) -> LinkParams:
    """What a link run of ``movie`` records: its candidate set and the checked parameters.

    A radius or k not given is chosen from the candidates (:func:`choose_link`; the statistics
    go into ``chosen``). Raises :class:`InputError` before anything is written where no
    candidate pair lies within the radius, so a refused link leaves the store unchanged.
    ``loaded``: (candidate run, its candidates) already read, so they are not read again.
    """
    check_link(max_distance, k, dt)
    if loaded is None:
        cand_run = runs.candidate_run(store, movie)
        cands, _ = load_candidates(store, cand_run, movie.ndim, with_masks=False)
    else:
        cand_run, cands = loaded
    if len(cands) == 0:
        raise InputError(f"movie {movie.name!r}: the candidate run {cand_run} holds no cells")
    chosen = None
    if max_distance is None or k is None:
        try:
            choice = choose_link(cands.t, cands.centroid, cands.area, movie.spacing, dt)
        except InputError as exc:
            raise InputError(f"movie {movie.name!r}: {exc}") from exc
        chosen = {**choice.to_json(), "reason": choice.reason(radius=max_distance is None, k=k is None)}
        max_distance = choice.max_distance if max_distance is None else float(max_distance)
        k = choice.k if k is None else int(k)
    params = LinkParams(
        candidate_run_id=cand_run,
        max_distance=float(max_distance),
        k=int(k),
        dt=dt,
        units="physical",
        chosen=chosen,
    )
    if not any_pair_within(cands.t, physical(cands.centroid, movie.spacing), params.max_distance, dt):
        raise no_links(movie, params)
    return params


def any_pair_within(t: np.ndarray, points: np.ndarray, radius: float, dt: int) -> bool:
    """Whether some cell has a cell of the next ``dt`` frames within ``radius``."""
    order, cuts = _by_frame(np.asarray(t, np.int64))
    frames = {int(t[g[0]]): g for g in np.split(order, cuts) if len(g)}
    for f, a in frames.items():
        for d in range(1, dt + 1):
            b = frames.get(f + d)
            if b is not None and np.isfinite(cKDTree(points[b]).query(points[a], distance_upper_bound=radius)[0]).any():
                return True
    return False


def scale_for(params: LinkParams, spacing: tuple[float, ...]) -> tuple[float, ...]:
    """Per-axis factor from pixels to the units of ``params`` (old runs linked in pixels)."""
    return tuple(spacing) if params.units == "physical" else (1.0,) * len(spacing)


def link_cells(cands: Candidates, params: LinkParams, spacing: tuple[float, ...]) -> CandidateEdges:
    """The link stage's rule on ``cands`` (pixel coordinates): distances in the run's units."""
    sp = np.asarray(scale_for(params, spacing), np.float64)
    scaled = dataclasses.replace(
        cands,
        centroid=np.asarray(cands.centroid, np.float64) * sp,
        prev_centroid=None if cands.prev_centroid is None else np.asarray(cands.prev_centroid, np.float64) * sp,
    )
    return link_candidates(scaled, max_distance=params.max_distance, k=params.k, dt_max=params.dt)


def link_frames(store: Store, movie: Movie, run_id: int, params: LinkParams, frames: range | None = None) -> int:
    """Write the links whose source lies in ``frames`` (default: every frame) under ``run_id``.

    Frames the run already wrote are skipped (idempotent). Returns the number of links of those
    source frames, written now or before.
    """
    frames = range(movie.n_frames) if frames is None else frames
    if len(frames) == 0:
        return 0
    last = min(frames[-1] + params.dt, movie.n_frames - 1)
    cands, ids = load_candidates(store, params.candidate_run_id, movie.ndim, with_masks=True, frames=(frames[0], last))
    return len(_write_links(store, movie, run_id, params, cands, ids, frames[-1])[0].source)


def _write_links(
    store: Store, movie: Movie, run_id: int, params: LinkParams, cands: Candidates, ids: np.ndarray, last: int
) -> tuple[CandidateEdges, np.ndarray]:
    """Link ``cands`` and write the links whose source frame is ``<= last``; returns them and
    their edge ids (-1 for frames the run had written before)."""
    edges = link_cells(cands, params, movie.spacing)
    keep = np.flatnonzero(cands.t[edges.source] <= last) if len(edges.source) else np.zeros(0, np.int64)
    edges = _subset(edges, keep)
    edge_ids = np.zeros(0, np.int64)
    if len(edges.source):
        with store.begin() as c:
            edge_ids = ingest.insert_edges(c, movie.id, run_id, ids, cands.t, edges)
    return edges, edge_ids


def _subset(edges: CandidateEdges, keep: np.ndarray) -> CandidateEdges:
    def opt(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[keep]

    return CandidateEdges(
        source=edges.source[keep],
        target=edges.target[keep],
        dt=edges.dt[keep],
        distance=edges.distance[keep],
        iou=edges.iou[keep],
        offset_vote=opt(edges.offset_vote),
        embedding_distance=opt(edges.embedding_distance),
    )


def no_links(movie: Movie, params: LinkParams) -> InputError:
    unit = "physical units" if params.units == "physical" else "px"
    return InputError(
        f"movie {movie.name!r}: no candidate pairs within {params.max_distance:.6g} {unit} "
        f"(spacing {','.join(f'{s:g}' for s in movie.spacing)}) in the next {params.dt} frame(s); "
        "raise --max-distance or --dt"
    )


def run_link(
    store: Store, movie_name: str, *, max_distance: float | None = None, k: int | None = None, dt: int = 1
) -> int:
    """Candidate links from every node to its k nearest candidates in the next ``dt`` frames.

    ``max_distance`` is in physical units (the movie's spacing); it and ``k`` are chosen from
    the cells when not given (:func:`choose_link`, recorded in the run's params and summary).
    """
    return link_movie(store, movie_name, max_distance=max_distance, k=k, dt=dt).run_id


@dataclass(frozen=True)
class Linked:
    """A finished link run and what it linked, so that a solve in the same process (``trackdb
    track``) starts from them instead of reading the candidates and links back from the store.
    The same rows, in the order :func:`load_candidates` and :func:`load_edges` return them."""

    run_id: int
    params: LinkParams
    cands: Candidates  # with masks
    node_ids: np.ndarray
    edges: CandidateEdges  # endpoints as indices into cands
    edge_ids: np.ndarray


def link_movie(
    store: Store, movie_name: str, *, max_distance: float | None = None, k: int | None = None, dt: int = 1
) -> Linked:
    """:func:`run_link`, returning the run with its candidates and links (read once, with masks:
    the radius and k are chosen from the same rows the links are built from)."""
    movie = store.movie(movie_name)
    check_link(max_distance, k, dt)
    cand_run = runs.candidate_run(store, movie)
    cands, ids = load_candidates(store, cand_run, movie.ndim, with_masks=True)
    params = link_params(store, movie, max_distance=max_distance, k=k, dt=dt, loaded=(cand_run, cands))
    with runs.record(store, movie.id, RunKind.LINK, params, parent_run_id=params.candidate_run_id) as run_id:
        edges, edge_ids = _write_links(store, movie, run_id, params, cands, ids, movie.n_frames - 1)
        if len(edges.source) == 0:
            raise no_links(movie, params)
        with store.begin() as c:
            runs.set_summary(c, run_id, link_summary(params, len(edges.source)))
    return Linked(run_id, params, cands, ids, edges, edge_ids)


def link_summary(params: LinkParams, n_links: int) -> dict[str, Any]:
    """The run summary: the links written and where the radius and k came from."""
    out: dict[str, Any] = {"links": n_links, "max_distance": params.max_distance, "k": params.k, "dt": params.dt}
    out["chosen"] = "from the cells" if params.chosen else "given"
    if params.chosen:
        out["reason"] = params.chosen.get("reason")
    return out
