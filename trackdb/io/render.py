"""Render a stored solution back to label images.

Each selected node's packed mask is painted with its track id, so the image of an imported
ground truth is identical pixel for pixel to the file it came from.
"""

from __future__ import annotations

import numpy as np

from trackdb.store.codecs import paint
from trackdb.store.core import Movie, Store
from trackdb.store.solutions import cell_masks


def render_labels(store: Store, movie: Movie, solution_id: int) -> np.ndarray:
    """``(T, [Z,] Y, X)`` label images of a solution, pixel value = track id (uint32)."""
    labels = np.zeros((movie.n_frames,) + movie.shape, dtype=np.uint32)
    for t, track_id, mask, lo in cell_masks(store, movie, solution_id):
        paint(labels[t], mask, lo, track_id)
    return labels
