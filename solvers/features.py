r"""Per-candidate geometry that the costs and the motion estimates read, and the rod geometry
derived from it.

A cell is summarised by its frame, centre :math:`c`, area :math:`A`, pixel covariance
:math:`\Sigma` (second central moments) and bounding box (:class:`CellFeatures`). A rod-shaped
cell of uniform density and length :math:`L` has the variance :math:`L^2/12` along its long axis,
so :math:`L = \sqrt{12\lambda_1}` and the long axis :math:`a` is the eigenvector of the largest
eigenvalue :math:`\lambda_1` of :math:`\Sigma` (:func:`long_axis`).

For a mother i and two daughters j, k with :math:`s = c_k - c_j` (:func:`daughter_offsets`), in
units of half the mother's length :math:`h_i = \max(L_i/2, 1)`:

* separation :math:`\lVert s\rVert / h_i` (about 1 when the mother splits into two halves);
* offset across the long axis :math:`\lVert s - (s\cdot a_i)\,a_i\rVert / h_i` (about 0 when it
  splits along its long axis).

The division cost (:mod:`solvers.costs`) scores these two numbers and the motion estimate
(:mod:`solvers.motion`) measures their spread over the selected divisions; both read them here.

**Physical geometry** (:func:`motion_space`). Positions and boxes are stored in pixels; the costs
and the motion model read them in physical units, measured in the finest pixel of the movie
(``spacing / min(spacing)``): a z step of 3 µm over a 0.5 µm xy pixel counts as 6. The unit is
the finest pixel, not the micrometre, so that a movie given in µm and the same movie given in
pixels (isotropic spacing) are costed identically (the Gaussian NLLs hold a ``log σ`` term that
depends on the unit). An axis that the cells *span* (:func:`spanned_axes`: a shallow stack's z)
is no degree of freedom: its coordinate is set to 0, so it adds nothing to a residual, to a
division's geometry or to the dimension of the motion model, and no cell crosses it.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CellFeatures:
    """Per-candidate geometry the costs use (plain arrays, aligned, length N)."""

    t: np.ndarray  # (N,) int
    centroid: np.ndarray  # (N, D) float, (z,) y, x
    area: np.ndarray  # (N,) float
    cov: np.ndarray  # (N, D, D) covariance of the pixel coordinates (second central moments)
    bbox: np.ndarray  # (N, 2D) mins then exclusive maxes
    image_shape: tuple[int, ...]  # (Z,) Y, X
    # physical size of a pixel along each axis ((z,) y, x); None = 1 on every axis. The arrays
    # above stay in pixels: costs that need distances scale by it.
    spacing: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        n, d = np.shape(self.centroid)
        if np.shape(self.cov) != (n, d, d) or np.shape(self.bbox) != (n, 2 * d):
            raise ValueError("cov must be (N, D, D) and bbox (N, 2D)")
        if len(self.image_shape) != d:
            raise ValueError("image_shape must have one entry per spatial axis")
        if self.spacing is not None:
            sp = tuple(float(s) for s in self.spacing)
            if len(sp) != d or not all(np.isfinite(s) and s > 0 for s in sp):
                raise ValueError(f"spacing must be {d} positive numbers, got {self.spacing}")
            object.__setattr__(self, "spacing", sp)

    @property
    def scale(self) -> np.ndarray:
        """(D,) physical size of a pixel per axis (ones when no spacing is given)."""
        d = len(self.image_shape)
        return np.ones(d) if self.spacing is None else np.asarray(self.spacing, float)

    def subset(self, keep: np.ndarray) -> CellFeatures:
        """The same features for the candidates ``keep`` selects (a boolean mask or indices)."""
        return CellFeatures(
            t=self.t[keep],
            centroid=self.centroid[keep],
            area=self.area[keep],
            cov=self.cov[keep],
            bbox=self.bbox[keep],
            image_shape=self.image_shape,
            spacing=self.spacing,
        )


def is_frozen(a: np.ndarray) -> bool:
    """Whether ``a`` is read-only and owns its data, so no one can change it behind a cache
    keyed on the array object (:func:`motion_space` makes its arrays so)."""
    return not a.flags.writeable and a.base is None


def long_axis(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(length, unit long axis) of each cell from its pixel covariance (rod: L = √(12 λ₁)).

    The answer for the last read-only ``cov`` that owns its data (:func:`motion_space`'s) is
    kept, read-only: every pricing round asks for all cells' axes (9 ms on 27k cells)."""
    cov = np.asarray(cov)
    keep = is_frozen(cov)
    if keep and _LAST_AXES and _LAST_AXES[0][0]() is cov:
        return _LAST_AXES[0][1]
    w, vec = np.linalg.eigh(cov)
    out = (np.sqrt(12.0 * np.maximum(w[:, -1], 0.0)), vec[:, :, -1])
    if keep:
        for a in out:
            a.setflags(write=False)
        _LAST_AXES[:] = [(weakref.ref(cov), out)]
    return out


# long_axis's last covariances and answer (a weak reference: a new array at the same address is not them)
_LAST_AXES: list[tuple[weakref.ref[np.ndarray], tuple[np.ndarray, np.ndarray]]] = []


def daughter_offsets(
    mother_cov: np.ndarray | None,
    first: np.ndarray,
    second: np.ndarray,
    axes: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(separation, offset across the long axis) of daughter centres ``first``, ``second`` (P, D),
    both in units of half the length of the mother whose covariance is ``mother_cov`` (P, D, D);
    or ``axes``: the mothers' :func:`long_axis`, when the caller has it per cell already (a
    mother is in many pairs)."""
    if axes is None:
        assert mother_cov is not None
        axes = long_axis(mother_cov)
    length, axis = axes
    half = np.maximum(length / 2.0, 1.0)
    s = second - first
    sep = np.linalg.norm(s, axis=1) / half
    along = np.einsum("pd,pd->p", s, axis)
    perp = np.linalg.norm(s - along[:, None] * axis, axis=1) / half
    return sep, perp


def spanned_axes(cells: CellFeatures) -> np.ndarray:
    """(D,) bool: the axes that the cells span, along which no cell can move or leave.

    An axis is spanned when the typical cell (the median) covers it from one edge of the image
    to the other, or when the image along it is no longer (physically) than the typical cell is
    wide in its other axes (a 5-slice stack of nuclei: every nucleus touches the first and last
    slice, and its z centre is the stack's). Never every axis.
    """
    shape = np.asarray(cells.image_shape, np.int64)
    d = len(shape)
    out = np.zeros(d, bool)
    bbox = np.asarray(cells.bbox, np.int64)
    if len(bbox) == 0 or d < 2:
        return out
    scale = cells.scale
    extent = (bbox[:, d:] - bbox[:, :d]) * scale  # (N, D) physical
    for a in range(d):
        covers = float(np.median((bbox[:, a] <= 0) & (bbox[:, d + a] >= shape[a]))) >= 0.5
        others = np.delete(extent, a, axis=1).max(axis=1)
        thin = shape[a] * scale[a] <= float(np.median(others))
        out[a] = covers or thin
    if out.all():  # cells larger than the image on every axis: nothing is known, keep them all
        out[:] = False
    return out


@dataclass(frozen=True)
class Geometry:
    """Centroids, covariances and boxes in the motion model's units (module docstring)."""

    centroid: np.ndarray  # (N, D), spanned axes 0
    cov: np.ndarray  # (N, D, D), spanned rows/columns 0
    unit: np.ndarray  # (D,) size of a pixel per axis in the finest pixel (spacing / min)
    active: np.ndarray  # (D,) bool: the axes cells move along (not spanned)

    @property
    def dim(self) -> int:
        """Degrees of freedom of a position (the active axes)."""
        return int(self.active.sum())


def motion_space(cells: CellFeatures) -> Geometry:
    """The cells' geometry in the units the costs and the motion model use (docstring).

    The last cells' geometry is kept (their arrays taken as fixed, as the class is frozen; its
    own arrays read-only): a solve asks for it ~30 times of one :class:`CellFeatures` (every
    pricing and motion round), 2 ms each on 27k cells."""
    if _LAST_GEOMETRY and _LAST_GEOMETRY[0][0]() is cells:
        return _LAST_GEOMETRY[0][1]
    scale = cells.scale
    unit = scale / scale.min()
    active = ~spanned_axes(cells)
    w = unit * active
    c = np.asarray(cells.centroid, np.float64) * w
    cov = np.asarray(cells.cov, np.float64) * w[None, :, None] * w[None, None, :]
    for a in (c, cov, unit, active):
        a.setflags(write=False)
    geometry = Geometry(centroid=c, cov=cov, unit=unit, active=active)
    _LAST_GEOMETRY[:] = [(weakref.ref(cells), geometry)]
    return geometry


# motion_space's last cells and their geometry (a weak reference: a new object at the same
# address is not them)
_LAST_GEOMETRY: list[tuple[weakref.ref[CellFeatures], Geometry]] = []
