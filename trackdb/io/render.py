"""Render a stored solution back to label images and a CTC track table.

Each selected node's packed mask is painted with its track id, so the image of an imported
ground truth is identical pixel for pixel to the file it came from.
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa

from trackdb.store import schema
from trackdb.store.codecs import decode_mask, paint
from trackdb.store.core import Movie, Store


def solution_tracks(store: Store, solution_id: int) -> np.ndarray:
    """CTC table ``(K, 4)``: track id, start, end, parent (0 = none), sorted by track id."""
    tr = schema.track.c
    with store.engine.connect() as c:
        rows = c.execute(sa.select(tr.track_id, tr.start_t, tr.end_t, tr.parent_track_id)
                         .where(tr.solution_id == solution_id).order_by(tr.track_id)).all()
    out = np.array([[a, b, d, p or 0] for a, b, d, p in rows], dtype=np.int64).reshape(-1, 4)
    return out


def render_labels(store: Store, movie: Movie, solution_id: int) -> np.ndarray:
    """``(T, [Z,] Y, X)`` label images of a solution, pixel value = track id (uint32)."""
    n, sn = schema.node.c, schema.solution_node.c
    cols = [n.t, sn.track_id, n.mask, n.bbox_y0, n.bbox_x0, n.bbox_y1, n.bbox_x1]
    if movie.ndim == 3:
        cols += [n.bbox_z0, n.bbox_z1]
    query = (sa.select(*cols).select_from(schema.solution_node.join(schema.node, n.id == sn.node_id))
             .where(sn.solution_id == solution_id))
    labels = np.zeros((movie.n_frames,) + movie.shape, dtype=np.uint32)
    with store.engine.connect() as c:
        for t, track_id, blob, y0, x0, y1, x1, *zs in c.execute(query):
            lo, hi = ((zs[0], y0, x0), (zs[1], y1, x1)) if zs else ((y0, x0), (y1, x1))
            mask = decode_mask(blob, [b - a for a, b in zip(lo, hi)])
            paint(labels[t], mask, lo, track_id)
    return labels
