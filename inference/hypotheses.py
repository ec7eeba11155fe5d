"""Reduce a candidate forest to its segmentation hypotheses: roots and the nodes below a split.

Between two splits a forest holds a chain of ever-smaller versions of one cell (higher
thresholds shave its border); they are not different segmentations, only eroded copies that
a selection would wrongly favour for their higher mean probability. Keeping the roots and the
first node under every split keeps every distinct way to cut the image into cells.
"""

from __future__ import annotations

import numpy as np

from inference.types import Candidates


def split_hypotheses(c: Candidates) -> np.ndarray:
    """Bool mask: roots and every node whose parent has two or more children."""
    par = np.asarray(c.hier_parent, np.int64)
    n_kids = np.bincount(par[par >= 0], minlength=len(c))
    return (par < 0) | (n_kids[np.maximum(par, 0)] >= 2)


def subset(c: Candidates, keep: np.ndarray) -> Candidates:
    """Candidates restricted to ``keep``, parents re-pointed to the nearest kept ancestor."""
    keep = np.asarray(keep, bool)
    idx = np.flatnonzero(keep)
    new = np.full(len(c), -1, np.int64)
    new[idx] = np.arange(len(idx))
    anc = np.asarray(c.hier_parent, np.int64)[idx].copy()
    while True:
        bad = (anc >= 0) & ~keep[np.maximum(anc, 0)]
        if not bad.any():
            break
        anc[bad] = c.hier_parent[anc[bad]]

    def pick(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else np.asarray(a)[idx]

    return Candidates(
        t=c.t[idx],
        label=c.label[idx],
        centroid=c.centroid[idx],
        area=c.area[idx],
        bbox=c.bbox[idx],
        masks=[c.masks[i] for i in idx.tolist()] if c.masks else [],
        hier_parent=np.where(anc >= 0, new[np.maximum(anc, 0)], -1),
        threshold=c.threshold[idx],
        score=c.score[idx],
        max_prob=c.max_prob[idx],
        embedding=pick(c.embedding),
        prev_centroid=pick(c.prev_centroid),
    )


def prune_to_hypotheses(c: Candidates) -> Candidates:
    return subset(c, split_hypotheses(c))
