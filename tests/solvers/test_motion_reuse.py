"""What the motion model keeps between a solve's rounds (solvers.features.motion_space's geometry,
solvers.motion's neighbour queries) gives exactly what computing afresh gives, and is dropped
as soon as the cells or the cells with a displacement change."""

from __future__ import annotations

import numpy as np

from solvers.features import long_axis, motion_space
from solvers.motion import cell_density, cell_spacing, smooth_shift
from tests.solvers.test_costs import cells_of


def movie(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Frames of 3 to 40 cells (the few-neighbour path too), a displacement for most of them."""
    rng = np.random.default_rng(seed)
    sizes = [40, 3, 25, 1, 30]
    t = np.repeat(np.arange(len(sizes)), sizes)
    c = rng.uniform(0, 300, (len(t), 2))
    u = rng.normal(0, 2, (len(t), 2))
    has = rng.random(len(t)) < 0.8
    return t, c, u, has


def frozen(a: np.ndarray) -> np.ndarray:
    out = np.array(a, copy=True)
    out.setflags(write=False)
    return out


def test_kept_neighbours_give_the_fresh_field_and_follow_has_u() -> None:
    t, c, u, has = movie(0)
    fixed = frozen(c)  # read-only and owning its data: the neighbours are kept
    fresh = smooth_shift(t, c.copy(), u, has, sigma=2.0)
    assert np.array_equal(smooth_shift(t, fixed, u, has, sigma=2.0), fresh)
    assert np.array_equal(smooth_shift(t, fixed, u * 2.0, has, sigma=2.0), smooth_shift(t, c.copy(), u * 2.0, has, 2.0))
    other = has.copy()
    other[:10] = ~other[:10]  # other cells with a displacement: new neighbours
    assert np.array_equal(smooth_shift(t, fixed, u, other, sigma=2.0), smooth_shift(t, c.copy(), u, other, 2.0))
    assert not np.array_equal(smooth_shift(t, fixed, u, other, sigma=2.0), fresh)
    moved = frozen(c + 1.0)  # another array: not the kept one
    assert np.array_equal(smooth_shift(t, moved, u, has, sigma=2.0), smooth_shift(t, np.array(moved), u, has, 2.0))


def test_kept_neighbour_distances_give_the_fresh_density_and_spacing() -> None:
    t, c, _, has = movie(1)
    fixed = frozen(c)
    for counted in (None, has, ~has):
        assert np.array_equal(cell_density(t, fixed, 2, counted), cell_density(t, c.copy(), 2, counted))
    assert cell_spacing(t, fixed) == cell_spacing(t, c.copy())
    assert np.array_equal(cell_density(t, fixed, 2, None), cell_density(t, c.copy(), 2, None))


def test_the_geometry_is_kept_for_the_same_cells_only() -> None:
    cells = cells_of([0, 0, 1, 1], [[10.0, 10.0], [40.0, 12.0], [12.0, 11.0], [41.0, 15.0]], [100.0] * 4)
    g = motion_space(cells)
    assert motion_space(cells) is g
    assert not g.centroid.flags.writeable
    assert not g.cov.flags.writeable
    twin = cells_of([0, 0, 1, 1], [[10.0, 10.0], [40.0, 12.0], [12.0, 11.0], [41.0, 15.0]], [100.0] * 4)
    g2 = motion_space(twin)
    assert g2 is not g
    assert np.array_equal(g2.centroid, g.centroid)


def test_kept_long_axes_are_the_fresh_ones_and_read_only() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(0, 3, (50, 2, 2))
    cov = frozen(a @ a.transpose(0, 2, 1))
    fresh = long_axis(cov.copy())
    kept = long_axis(cov)
    assert long_axis(cov)[0] is kept[0]  # the same cov asks again: kept
    assert np.array_equal(kept[0], fresh[0])
    assert np.array_equal(kept[1], fresh[1])
    assert not kept[0].flags.writeable
    other = frozen(np.asarray(cov) * 2.0)
    assert np.array_equal(long_axis(other)[0], long_axis(np.array(other))[0])


def test_every_cell_counted_is_all_cells() -> None:
    t, c, _, _ = movie(3)
    fixed = frozen(c)
    everyone = np.ones(len(t), bool)
    assert np.array_equal(cell_density(t, fixed, 2, everyone), cell_density(t, c.copy(), 2, None))
    assert np.array_equal(cell_density(t, fixed, 2, None), cell_density(t, c.copy(), 2, everyone))
