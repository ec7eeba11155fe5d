"""Cell dynamics: drift, random motion, divisions, deaths, in a box larger than the field of view.

Positions are physical (the movie's spacing times the pixel index). Cells live in the field of
view padded by a margin on every axis they move along, with periodic wrap-around at the outer
edge: cells that drift out of view keep moving outside it and others come in, so the density in
view stays steady while cells cross the border in both directions. The margin is wider than any
cell, so a cell never wraps while it is in view.

Per frame, in order: divisions (a mother is replaced by two daughters placed apart along a random
axis, each with half her volume, growing back to her size over ``min_cycle`` frames), deaths (the
cell just ends), motion (a persistent random walk, v ← ρ v + √(1−ρ²) σ ξ, plus a common drift),
and a few rounds of pairwise repulsion so that balls overlap by at most a few percent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

Float = NDArray[np.float64]


@dataclass(frozen=True)
class Dynamics:
    """What the cells do; lengths are physical, rates are per cell and frame."""

    n_frames: int
    n_cells: int  # initial cells in the field of view (the padded box gets the same density)
    diameter: float  # mean cell diameter
    diameter_cv: float = 0.15  # spread of diameters between cells (coefficient of variation)
    step: float = 0.3  # mean displacement per frame, as a fraction of the diameter
    persistence: float = 0.5  # ρ of the velocity's AR(1)
    drift: tuple[float, ...] = ()  # common velocity per frame (physical, per axis); () = none
    division_rate: float = 0.0
    min_cycle: int = 12  # frames between a birth and the next division
    death_rate: float = 0.0
    fixed_axes: tuple[int, ...] = ()  # axes the cells do not move along (z of a shallow stack)
    min_diameter: float = 0.0  # no cell smaller (a shallow stack's cells must span every slice)
    overlap: float = 0.05  # allowed overlap of neighbouring balls, fraction of the radii sum
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_frames < 1 or self.n_cells < 1 or self.diameter <= 0:
            raise ValueError("n_frames, n_cells and diameter must be positive")
        if not 0 <= self.persistence < 1:
            raise ValueError("persistence must lie in [0, 1)")
        if min(self.division_rate, self.death_rate, self.step, self.diameter_cv) < 0:
            raise ValueError("rates, step and diameter_cv must not be negative")


@dataclass
class CellHistory:
    """Every agent's centre and radius per frame (NaN where it is not alive) and its parent."""

    center: Float  # (T, A, D), physical, in field-of-view coordinates
    radius: Float  # (T, A)
    parent: NDArray[np.int64]  # (A,)
    divided: NDArray[np.bool_]  # (A,) ended by a division
    died: NDArray[np.bool_]  # (A,) ended by death

    @property
    def alive(self) -> NDArray[np.bool_]:
        return np.isfinite(self.radius)


def _mean_norm_factor(dim: int) -> float:
    """E|ξ| of a standard normal vector in ``dim`` dimensions (to set σ from a mean step)."""
    return float({1: np.sqrt(2 / np.pi), 2: np.sqrt(np.pi / 2), 3: 2 * np.sqrt(2 / np.pi)}[dim])


def _unit_vectors(rng: np.random.Generator, n: int, moving: NDArray[np.bool_]) -> Float:
    v = rng.normal(size=(n, len(moving))) * moving
    out: Float = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return out


def _repel(pos: Float, rad: Float, box: Float, moving: NDArray[np.bool_], overlap: float, rounds: int) -> float:
    """Push overlapping pairs apart (in place), half the excess each, along the moving axes.

    Returns the smallest centre distance over radii sum left after the last round (1.0 if none is close).
    """
    worst = 1.0
    if len(pos) < 2:
        return worst
    for _ in range(rounds):
        wrapped = np.mod(pos, box)
        tree = cKDTree(wrapped, boxsize=box)
        pairs = tree.query_pairs(2.0 * float(rad.max()), output_type="ndarray")
        if len(pairs) == 0:
            return worst
        i, j = pairs[:, 0], pairs[:, 1]
        d = wrapped[j] - wrapped[i]
        d -= box * np.round(d / box)  # minimum image
        d *= moving
        dist = np.linalg.norm(d, axis=1)
        worst = float((dist / (rad[i] + rad[j])).min())
        excess = (1.0 - overlap) * (rad[i] + rad[j]) - dist
        hit = excess > 0
        if not hit.any():
            return worst
        i, j, d, dist, excess = i[hit], j[hit], d[hit], dist[hit], excess[hit]
        u = d / np.maximum(dist, 1e-9)[:, None]
        push = 0.5 * excess[:, None] * u
        np.add.at(pos, i, -push)
        np.add.at(pos, j, push)
    return worst


def simulate(dyn: Dynamics, extent: tuple[float, ...]) -> CellHistory:
    """Simulate ``dyn`` in a field of view of physical ``extent`` (per axis); seeded by ``dyn.seed``."""
    rng = np.random.default_rng(dyn.seed)
    dim = len(extent)
    moving = np.ones(dim, bool)
    moving[list(dyn.fixed_axes)] = False
    ext = np.asarray(extent, float)
    r_mean = dyn.diameter / 2
    sigma_r = np.sqrt(np.log1p(dyn.diameter_cv**2))
    margin = np.where(moving, 2.5 * dyn.diameter + 4 * dyn.step * dyn.diameter, 0.0)
    box = np.where(moving, ext + 2 * margin, np.inf)
    n0 = int(round(dyn.n_cells * np.prod(box[moving]) / np.prod(ext[moving])))
    drift = np.zeros(dim) if not dyn.drift else np.asarray(dyn.drift, float)
    if len(drift) != dim:
        raise ValueError(f"drift has {len(drift)} axes, the movie has {dim}")
    sigma = dyn.step * dyn.diameter / _mean_norm_factor(int(moving.sum()))

    def new_radii(n: int) -> Float:
        r = r_mean * rng.lognormal(-0.5 * sigma_r**2, sigma_r, n)
        return np.asarray(np.maximum(r, dyn.min_diameter / 2), float)

    # state of the living agents
    agent = np.arange(n0)
    target = new_radii(n0)
    pos = rng.uniform(0, 1, (n0, dim)) * np.where(moving, box, 0) + np.where(moving, 0, ext / 2 + margin)
    vel = rng.normal(size=(n0, dim)) * sigma * moving
    speed = rng.lognormal(-0.5 * 0.25**2, 0.25, n0)  # cells differ in how fast they move
    age = rng.integers(0, max(dyn.min_cycle, 1) * 2, n0)
    birth_rad = target.copy()
    wrap = np.where(moving, box, 1.0)  # period of the wrap-around (fixed axes: unused)
    vol_dim = int(moving.sum()) if dyn.fixed_axes else dim  # a shallow stack's cells grow in the plane
    _repel(pos, target, wrap, moving, dyn.overlap, rounds=50)

    parent: list[int] = [-1] * n0
    ended_div: list[int] = []
    ended_dead: list[int] = []
    centers: list[tuple[NDArray[np.int64], Float, Float]] = []
    growth = 1.0 / max(dyn.min_cycle, 1)
    for t in range(dyn.n_frames):
        if t > 0:
            div = (age >= dyn.min_cycle) & (rng.random(len(agent)) < dyn.division_rate)
            dead = ~div & (rng.random(len(agent)) < dyn.death_rate)
            ended_div += agent[div].tolist()
            ended_dead += agent[dead].tolist()
            m = np.flatnonzero(div)
            new_ids = np.arange(len(parent), len(parent) + 2 * len(m))
            parent += np.repeat(agent[m], 2).tolist()
            # half the volume (the area, in a shallow stack), but never below min_diameter
            r_d = np.maximum(target[m] * 2.0 ** (-1.0 / vol_dim), dyn.min_diameter / 2)
            sep = 1.05 * r_d[:, None] * _unit_vectors(rng, len(m), moving)  # daughters just apart
            d_pos = np.stack([pos[m] - sep, pos[m] + sep], axis=1).reshape(-1, dim)
            keep = ~(div | dead)
            agent = np.concatenate([agent[keep], new_ids])
            pos = np.concatenate([pos[keep], d_pos])
            vel = np.concatenate([vel[keep], np.repeat(vel[m], 2, axis=0)])
            speed = np.concatenate([speed[keep], np.repeat(speed[m], 2)])
            target = np.concatenate([target[keep], np.repeat(target[m], 2)])
            birth_rad = np.concatenate([birth_rad[keep], np.repeat(r_d, 2)])
            age = np.concatenate([age[keep] + 1, np.zeros(len(new_ids), np.int64)])
            noise = rng.normal(size=pos.shape) * moving
            vel = dyn.persistence * vel + np.sqrt(1 - dyn.persistence**2) * sigma * noise
            pos = pos + vel * speed[:, None] + drift * moving
        rad = birth_rad + (target - birth_rad) * np.minimum(1.0, age * growth)
        worst = _repel(pos, rad, wrap, moving, dyn.overlap, rounds=20)
        if worst < 1.0 - 3 * dyn.overlap:  # the cells no longer fit: the movie would be garbage
            raise ValueError(f"frame {t}: cells overlap by {1 - worst:.0%} (density too high for the divisions)")
        pos = np.where(moving, np.mod(pos, wrap), pos)
        centers.append((agent.copy(), pos - margin, rad.copy()))

    n_agents = len(parent)
    center = np.full((dyn.n_frames, n_agents, dim), np.nan)
    radius = np.full((dyn.n_frames, n_agents), np.nan)
    for t, (ids, p, r) in enumerate(centers):
        center[t, ids] = p
        radius[t, ids] = r
    divided = np.zeros(n_agents, bool)
    divided[ended_div] = True
    died = np.zeros(n_agents, bool)
    died[ended_dead] = True
    return CellHistory(center, radius, np.asarray(parent, np.int64), divided, died)
