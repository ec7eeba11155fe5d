"""Label images and raw-like intensity images of simulated cells.

Each cell is a ball (physical units, so anisotropic voxels give flattened pixel shapes), or, in a
layer the cells span (``columns``), a disc through every slice. Where
balls overlap, a voxel goes to the cell of smallest power distance |x − c|² − r² (a power
diagram): every cell's region is then the intersection of its ball with a convex cell, hence one
connected piece that contains its centre whenever the centres are further apart than the larger
radius, which the simulation's repulsion keeps. Voxel ``i`` of an axis has its centre at
``(i + 0.5) * spacing``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage as ndi

from .simulate import CellHistory


def _label_dtype(n_agents: int) -> type[np.unsignedinteger]:
    return np.uint16 if n_agents < 2**16 - 1 else np.uint32


def render_agents(
    history: CellHistory, shape: tuple[int, ...], spacing: tuple[float, ...], columns: tuple[int, ...] = ()
) -> NDArray[np.unsignedinteger]:
    """(T, [Z,] Y, X) labels: agent index + 1 where a cell covers the voxel, 0 elsewhere.

    ``columns``: axes along which each cell fills the whole image (a cell of a layer no deeper
    than the cells, e.g. a 5-slice stack: it spans the layer like a column, with its disc in the
    other axes at every slice, so its volume is its area times the depth and a division that
    halves the volume halves the area, as cells confined to a layer do)."""
    n_frames, n_agents, dim = history.center.shape
    if len(shape) != dim or len(spacing) != dim:
        raise ValueError(f"shape {shape} and spacing {spacing} must have {dim} axes like the cells")
    sp = np.asarray(spacing, float)
    size = np.asarray(shape)
    out = np.zeros((n_frames, *shape), _label_dtype(n_agents))
    best = np.empty(shape, np.float64)
    for t in range(n_frames):
        best.fill(np.inf)
        frame = out[t]
        ids = np.flatnonzero(history.alive[t])
        c, r = history.center[t, ids], history.radius[t, ids]
        lo = np.clip(np.floor((c - r[:, None]) / sp - 0.5).astype(int), 0, size)
        hi = np.clip(np.ceil((c + r[:, None]) / sp + 0.5).astype(int), 0, size)
        for a in columns:
            lo[:, a], hi[:, a] = 0, size[a]
        inside = (hi > lo).all(axis=1)
        for a, ci, ri, l, h in zip(ids[inside], c[inside], r[inside], lo[inside], hi[inside]):
            box = tuple(slice(int(a0), int(b0)) for a0, b0 in zip(l, h))
            axes = np.ogrid[box]
            moved = [(ax, s, x) for a0, (ax, s, x) in enumerate(zip(axes, sp, ci)) if a0 not in columns]
            d2 = sum(np.square((ax + 0.5) * s - x) for ax, s, x in moved)
            sub = best[box]
            power = np.broadcast_to(d2 - ri * ri, sub.shape)
            take = (power < 0) & (power < sub)
            sub[take] = power[take]
            frame[box][take] = a + 1
    return out


def raw_intensity(
    labels: NDArray[np.integer],
    seed: int,
    *,
    background: float = 100.0,
    contrast: float = 400.0,
    noise: float = 20.0,
    blur: float = 1.0,
) -> NDArray[np.uint16]:
    """A fluorescence-like image per frame: blurred cells of random brightness on noise (uint16)."""
    rng = np.random.default_rng(seed)
    n = int(labels.max(initial=0)) + 1
    bright = np.concatenate([[0.0], rng.uniform(0.5, 1.5, n - 1)]) * contrast
    out = np.empty(labels.shape, np.uint16)
    for t, frame in enumerate(labels):  # frame by frame: a float copy of the movie can be large
        img = ndi.gaussian_filter(bright[frame], blur) + background
        img += rng.normal(0.0, noise, frame.shape)
        out[t] = np.clip(np.rint(img), 0, 2**16 - 1)
    return out
