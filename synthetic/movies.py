"""A synthetic movie from a specification: simulate, render, add annotation flaws, derive the CTC lineage.

The flaws are those of real data and annotations: missed detections (a cell absent from 1 to
``max_missed`` frames while in view, then back; CTC writes it as a new track whose parent is the
old one), stray fragments (a few pixels of a cell's label apart from its body) and 1-pixel objects
(each its own one-frame track). Subsampling keeps every k-th frame and derives the lineage again
(see :mod:`synthetic.lineage`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from .lineage import AgentHistory, derive_tracks, division_count, relabel
from .render import render_agents
from .simulate import Dynamics, simulate

Labels = NDArray[np.unsignedinteger]


@dataclass(frozen=True)
class MovieSpec:
    """Everything that determines a synthetic movie (with ``dynamics.seed``)."""

    dynamics: Dynamics
    shape: tuple[int, ...]  # pixels per frame, ([Z,] Y, X)
    spacing: tuple[float, ...] = ()  # physical size of a pixel per axis; () = 1 on every axis
    missed_rate: float = 0.0  # per cell and frame: chance that a gap starts there
    max_missed: int = 2  # longest gap (frames absent)
    fragment_rate: float = 0.0  # per cell and frame: chance of a stray fragment of its label
    speck_rate: float = 0.0  # 1-pixel objects per frame, per cell in view
    every: int = 1  # keep every k-th frame

    def __post_init__(self) -> None:
        sp = self.spacing or (1.0,) * len(self.shape)
        if len(sp) != len(self.shape) or min(sp) <= 0:
            raise ValueError(f"spacing {self.spacing} must be positive with one value per axis of {self.shape}")
        if len(self.shape) not in (2, 3):
            raise ValueError("frames must be 2D or 3D")
        if self.every < 1 or self.max_missed < 1:
            raise ValueError("every and max_missed must be >= 1")

    @property
    def pixel(self) -> tuple[float, ...]:
        return self.spacing or (1.0,) * len(self.shape)


@dataclass(frozen=True)
class SyntheticMovie:
    """Label movie (track ids, CTC semantics), its lineage table and spacing."""

    masks: Labels  # (T, [Z,] Y, X)
    tracks: NDArray[np.int64]  # (K, 4): label, start, end, parent
    spacing: tuple[float, ...]
    info: dict[str, Any] = field(default_factory=dict)  # the specification and counts

    @property
    def n_divisions(self) -> int:
        return division_count(self.tracks)


def _seen(labels: Labels, n_agents: int) -> NDArray[np.bool_]:
    seen = np.zeros((len(labels), n_agents), bool)
    for t, frame in enumerate(labels):
        seen[t] = np.bincount(frame.ravel(), minlength=n_agents + 1)[1 : n_agents + 1] > 0
    return seen


def _drop_detections(
    labels: Labels, hist: AgentHistory, rate: float, max_len: int, rng: np.random.Generator
) -> AgentHistory:
    """Remove cells from 1..max_len frames where they are in view on both sides (in place on labels)."""
    seen, missed = hist.seen.copy(), hist.missed.copy()
    n_frames, n_agents = seen.shape
    taken = np.zeros_like(seen)  # frames already in or beside a gap
    start_t, start_a = np.nonzero(rng.random(seen.shape) < rate)
    order = rng.permutation(len(start_t))
    lengths = rng.integers(1, max_len + 1, len(start_t))
    for i in order.tolist():
        t, a, n = int(start_t[i]), int(start_a[i]), int(lengths[i])
        if t < 1 or t + n >= n_frames:
            continue
        span = slice(t - 1, t + n + 1)  # seen before, during (in view) and after the gap
        if not seen[span, a].all() or taken[span, a].any():
            continue
        taken[span, a] = True
        seen[t : t + n, a] = False
        missed[t : t + n, a] = True
        for f in range(t, t + n):
            frame = labels[f]
            frame[frame == a + 1] = 0
    return AgentHistory(hist.alive, seen, missed, hist.parent)


def _free_pixels(frame: Labels, points: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Points whose whole 3×3(×3) neighbourhood is background: a label set there stays apart."""
    occupied = ndi.maximum_filter(frame > 0, size=3)
    inside = ((points >= 0) & (points < np.asarray(frame.shape))).all(axis=1)
    ok = np.zeros(len(points), bool)
    ok[inside] = ~occupied[tuple(points[inside].T)]
    return ok


def _add_fragments(labels: Labels, seen: NDArray[np.bool_], rate: float, rng: np.random.Generator) -> int:
    """Stray 1-3 pixel pieces of a cell's label, a little beyond its body (in place); returns the count."""
    count = 0
    for t, frame in enumerate(labels):
        ids = np.flatnonzero(seen[t] & (rng.random(seen.shape[1]) < rate))
        if len(ids) == 0:
            continue
        objs = ndi.find_objects(frame)
        for a in ids.tolist():
            box = objs[a]
            if box is None:
                continue
            lo = np.array([s.start for s in box])
            hi = np.array([s.stop for s in box])
            centre, half = (lo + hi) / 2, (hi - lo) / 2
            u = rng.normal(size=frame.ndim)
            u /= max(float(np.linalg.norm(u)), 1e-9)
            p = np.rint(centre + u * half * rng.uniform(1.2, 1.8)).astype(np.int64)
            size = int(rng.integers(1, 4))
            step = np.zeros(frame.ndim, np.int64)
            step[rng.integers(frame.ndim)] = 1
            pts = p + np.arange(size)[:, None] * step
            if _free_pixels(frame, pts).all():
                frame[tuple(pts.T)] = a + 1
                count += 1
    return count


def _add_specks(labels: Labels, hist: AgentHistory, rate: float, rng: np.random.Generator) -> AgentHistory:
    """1-pixel objects on isolated background pixels, each a new agent alive in one frame."""
    n_frames, n_agents = hist.seen.shape
    per_frame = rng.poisson(rate * hist.seen.sum(axis=1))
    placed: list[tuple[int, NDArray[np.int64]]] = []
    for t, n in enumerate(per_frame.tolist()):
        if n == 0:
            continue
        pts = (rng.random((n, labels.ndim - 1)) * np.asarray(labels.shape[1:])).astype(np.int64)
        pts = pts[_free_pixels(labels[t], pts)]
        placed.append((t, pts))
    n_new = sum(len(p) for _, p in placed)
    if n_new == 0:
        return hist
    if n_agents + n_new >= np.iinfo(labels.dtype).max:
        raise ValueError("too many objects for the label dtype")
    extra = np.zeros((n_frames, n_new), bool)
    k = 0
    for t, pts in placed:
        ids = n_agents + k + np.arange(len(pts))
        labels[t][tuple(pts.T)] = ids + 1
        extra[t, ids - n_agents] = True
        k += len(pts)
    return AgentHistory(
        np.concatenate([hist.alive, extra], axis=1),
        np.concatenate([hist.seen, extra], axis=1),
        np.concatenate([hist.missed, np.zeros_like(extra)], axis=1),
        np.concatenate([hist.parent, np.full(n_new, -1, np.int64)]),
    )


def generate(spec: MovieSpec) -> SyntheticMovie:
    """The movie of ``spec``: same spec, same movie (every random draw is seeded from it)."""
    dyn = spec.dynamics
    sp = spec.pixel
    extent = tuple(n * s for n, s in zip(spec.shape, sp))
    cells = simulate(dyn, extent)
    labels = render_agents(cells, spec.shape, sp, columns=dyn.fixed_axes)
    n_agents = cells.radius.shape[1]
    hist = AgentHistory(cells.alive, _seen(labels, n_agents), np.zeros((dyn.n_frames, n_agents), bool), cells.parent)
    last = dyn.n_frames - 1 - np.argmax(cells.alive[::-1], axis=0)  # each agent's last frame
    deaths_in_view = int((cells.died & hist.seen[last, np.arange(n_agents)]).sum())
    rng = np.random.default_rng([dyn.seed, 1])
    if spec.missed_rate > 0:
        hist = _drop_detections(labels, hist, spec.missed_rate, spec.max_missed, rng)
    n_fragments = _add_fragments(labels, hist.seen, spec.fragment_rate, rng) if spec.fragment_rate > 0 else 0
    if spec.speck_rate > 0:
        hist = _add_specks(labels, hist, spec.speck_rate, rng)
    if spec.every > 1:
        labels, hist = labels[:: spec.every], hist.frames(slice(None, None, spec.every))
    track_of, tracks = derive_tracks(hist)
    masks = relabel(labels, track_of)
    per_frame = hist.seen.sum(axis=1)
    info: dict[str, Any] = {
        **asdict(spec),
        "n_frames": int(len(masks)),
        "cells_per_frame": [int(per_frame.min()), int(np.median(per_frame)), int(per_frame.max())],
        "n_cells": int(hist.seen.sum()),
        "n_tracks": int(len(tracks)),
        "n_divisions": division_count(tracks),
        "n_deaths_in_view": deaths_in_view,
        "n_missed": int(hist.missed.sum()),
        "n_fragments": n_fragments,
        "n_specks": int(hist.seen.shape[1] - n_agents),
    }
    return SyntheticMovie(masks, tracks, sp, info)
