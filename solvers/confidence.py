r"""Track confidence: how sure the model is of each track of a solution, from option probabilities.

A track k (:func:`solvers.tracks.tracks_from_solution`) is a chain of selected cells. Each of its
cells took one *option* (:mod:`solvers.uncertainty`): a selected link from its mother (the link
into the track's first cell from its parent track included), or, for a cell with no selected
incoming link, "appears". With :math:`P(o)` the probability of option o (clipped to [0, 1])::

    conf_min(k)  = min_{o ∈ options(k)} P(o)
    conf_prod(k) = Π_{o ∈ options(k)} P(o)

The minimum flags the track's weakest link; the product is the probability that every choice of
the track is right if they were independent. The "appears" option counts too, so a track that
starts mid-movie because a link was doubtful is flagged as well (appearing in the first frame has
probability 1).
"""

from __future__ import annotations

import numpy as np

from solvers.types import CandidateGraph


def track_confidence(
    graph: CandidateGraph,
    track_of: np.ndarray,
    tracks: np.ndarray,
    edge_selected: np.ndarray,
    edge_p: np.ndarray,
    appear_p: np.ndarray,
) -> np.ndarray:
    """``(K, 2)`` min and product of the probabilities of each track's chosen options.

    ``track_of`` (N,) and ``tracks`` (K, 4) sorted by id are :func:`solvers.tracks.tracks_from_solution`'s
    answer; ``edge_p`` (E,) and ``appear_p`` (N,) the probabilities of the links and of "appears".
    A track's options are its selected links (the link into it from its parent included); a
    root track's first cell contributes its "appears" probability instead (1 in the first
    frame), so a track that starts mid-movie because a link was doubtful is flagged too.
    """
    sel_nodes = track_of > 0
    e = np.flatnonzero(edge_selected & sel_nodes[graph.edge_source] & sel_nodes[graph.edge_target])
    has_mother = np.zeros(graph.n_nodes, bool)
    has_mother[graph.edge_target[e]] = True
    starts = np.flatnonzero(sel_nodes & ~has_mother)
    tid = np.concatenate([track_of[graph.edge_target[e]], track_of[starts]])
    p = np.clip(np.concatenate([edge_p[e], appear_p[starts]]), 0.0, 1.0)
    row = np.searchsorted(tracks[:, 0], tid)  # ``tracks`` is sorted by track id
    k = len(tracks)
    lo = np.ones(k)
    np.minimum.at(lo, row, p)
    with np.errstate(divide="ignore"):
        prod = np.exp(np.bincount(row, weights=np.log(p), minlength=k))
    return np.column_stack([lo, prod])
