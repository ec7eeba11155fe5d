"""Persistence of a cell's own residual motion (solvers.motion.persistence): estimated from
the selected links, > 0 where walkers keep their heading and 0 where they do not."""

from __future__ import annotations

import numpy as np

from solvers.assignment import solve_fixed_or_joint
from solvers.features import CellFeatures
from solvers.motion import persistence
from solvers.refine import refine_cost_model


def _walkers(phi: float, n: int = 60, frames: int = 12, seed: int = 0):
    """``n`` walkers far apart, displacement d_t = phi d_(t-1) + N(0, 3²) per axis, linked
    by their true links (every one selected)."""
    rng = np.random.default_rng(seed)
    start = np.stack(np.meshgrid(np.arange(10) * 500.0, np.arange(n // 10) * 500.0), -1).reshape(-1, 2)
    d = rng.normal(0.0, 3.0, (n, 2))
    pos = [start]
    for _ in range(frames - 1):
        d = phi * d + rng.normal(0.0, 3.0, (n, 2))
        pos.append(pos[-1] + d)
    c = np.concatenate(pos)
    t = np.repeat(np.arange(frames), n)
    src = np.arange((frames - 1) * n)
    dst = src + n
    esel = np.ones(len(src), bool)
    n_out = np.bincount(src, minlength=len(t))
    return c, t, src, dst, esel, n_out


def _fit(phi: float):
    c, t, src, dst, esel, n_out = _walkers(phi)
    shift = np.zeros_like(c)  # the field: no common motion
    extra, fit = persistence(c, t, src, dst, esel, n_out, shift, 4.0, np.ones(len(t), bool))
    return c, src, dst, extra, fit


def test_persistent_walkers_are_estimated_and_predicted() -> None:
    c, src, dst, extra, fit = _fit(0.7)
    assert 0.55 < fit.estimate < 0.85
    assert 0.0 < fit.alpha <= fit.estimate  # the lower confidence bound
    # the persistent prediction is nearer each walker's true next position than the field's
    has_prev = np.isin(src, dst)
    e = np.flatnonzero(has_prev)
    plain = np.linalg.norm(c[dst[e]] - c[src[e]], axis=1)
    pers = np.linalg.norm(c[dst[e]] - c[src[e]] - extra[src[e]], axis=1)
    assert np.median(pers) < 0.9 * np.median(plain)


def test_random_walkers_have_no_persistence() -> None:
    _, _, _, extra, fit = _fit(0.0)
    assert abs(fit.estimate) < 3.0 * fit.se
    assert fit.alpha == 0.0
    assert np.all(extra == 0.0)


def _cells(c: np.ndarray, t: np.ndarray) -> CellFeatures:
    """Discs of radius 5 at ``c`` in an image large enough that no edge cuts one."""
    n = len(t)
    lo = np.floor(c - 5).astype(np.int64)
    shift = -lo.min(axis=0) + 10
    c = c + shift
    lo = lo + shift
    shape = tuple(int(v) for v in (lo.max(axis=0) + 30))
    return CellFeatures(
        t=t,
        centroid=c,
        area=np.full(n, 78.0),
        cov=np.repeat(np.eye(2)[None] * 6.25, n, axis=0),
        bbox=np.hstack([lo, lo + 11]),
        image_shape=shape,
    )


def test_the_solve_rounds_report_the_persistence_they_used() -> None:
    for phi, persistent in ((0.7, True), (0.0, False)):
        c, t, src, dst, _, _ = _walkers(phi, seed=1)
        refined = refine_cost_model(_cells(c, t), src, dst, solve_fixed_or_joint, n_iter=3)
        first, last = refined.history[0], refined.history[-1]
        assert np.isnan(float(first["persistence"]))  # before any solution
        assert len(refined.history) >= 2
        assert refined.solution.edge_selected.all()  # walkers far apart: every link is right
        alpha, estimate = float(last["persistence"]), float(last["persistence_estimate"])
        if persistent:
            assert 0.0 < alpha <= estimate < 0.9
            assert float(last["persistence_pairs"]) > 100
        else:
            assert alpha == 0.0
