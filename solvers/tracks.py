"""Track segments (CTC lineage semantics) from a selection of nodes and links.

A track is a maximal chain of selected nodes in which each link continues the cell into the
next frame. A new track starts at a node that has no selected incoming link, whose predecessor
divides (two selected outgoing links), or whose incoming link skips frames (a gap: the CTC
format needs every track to be present in every frame of its span, so the part after the gap
is a new track whose parent is the part before it). Track ids are 1..K, numbered by
(start frame, node index); parent 0 means none.
"""

from __future__ import annotations

import numpy as np


def tracks_from_solution(
    node_t: np.ndarray,
    edge_source: np.ndarray,
    edge_target: np.ndarray,
    node_selected: np.ndarray,
    edge_selected: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(track id per node, 0 for unselected nodes; tracks ``(K, 4)`` [id, start, end, parent]).

    Raises ``ValueError`` if a node has two selected incoming links (not a lineage).
    """
    node_t = np.asarray(node_t, np.int64)
    n = len(node_t)
    sel = np.asarray(node_selected, bool)
    esel = np.asarray(edge_selected, bool) & sel[edge_source] & sel[edge_target]
    src = np.asarray(edge_source, np.int64)[esel]
    dst = np.asarray(edge_target, np.int64)[esel]
    if np.any(np.bincount(dst, minlength=n) > 1):
        bad = int(np.flatnonzero(np.bincount(dst, minlength=n) > 1)[0])
        raise ValueError(f"node {bad} has more than one selected incoming link")
    pred = np.full(n, -1, np.int64)
    pred[dst] = src
    n_out = np.bincount(src, minlength=n)
    has_pred = pred >= 0
    continues = has_pred.copy()
    continues[has_pred] = (n_out[pred[has_pred]] == 1) & (node_t[has_pred] - node_t[pred[has_pred]] == 1)
    start = sel & ~continues
    # head[n] = first node of n's track: pointer doubling along continuing links
    head = np.where(continues, pred, np.arange(n))
    while True:
        nxt = head[head]
        if np.array_equal(nxt, head):
            break
        head = nxt
    starts = np.flatnonzero(start)
    starts = starts[np.lexsort((starts, node_t[starts]))]
    tid_of_start = np.zeros(n, np.int64)
    tid_of_start[starts] = np.arange(1, len(starts) + 1)
    track_id = np.where(sel, tid_of_start[head], 0)
    k = len(starts)
    begin = np.full(k + 1, np.iinfo(np.int64).max)
    end = np.full(k + 1, -1, np.int64)
    np.minimum.at(begin, track_id[sel], node_t[sel])
    np.maximum.at(end, track_id[sel], node_t[sel])
    parent_node = pred[starts]
    parent = np.where(parent_node >= 0, track_id[np.maximum(parent_node, 0)], 0)
    tracks = np.stack([np.arange(1, k + 1), begin[1:], end[1:], parent], axis=1).astype(np.int64)
    return track_id, tracks
