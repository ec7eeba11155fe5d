"""Plain data produced by inference and consumed by the store and the solvers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candidates:
    """Candidate cells of one movie (or one frame): a forest of competing segmentations.

    Arrays are aligned (length N). ``bbox`` is ``(N, 2*D)``: mins then exclusive maxes in
    (z,) y, x order. ``masks[i]`` is a bool array of the bbox's shape. ``hier_parent`` holds
    the *local index* of the containing candidate, −1 for roots. ``label`` is the id the cell
    has in its source label image (or a per-frame forest id). Optional per-node extras may be
    None: ``embedding`` (N, C) float32, ``prev_centroid`` (N, D) the previous-frame centre
    the pixels vote for.
    """

    t: np.ndarray  # (N,) int64
    label: np.ndarray  # (N,) int64
    centroid: np.ndarray  # (N, D) float64, (z,) y, x
    area: np.ndarray  # (N,) int64 (pixels/voxels)
    bbox: np.ndarray  # (N, 2D) int64
    masks: list[np.ndarray]
    hier_parent: np.ndarray  # (N,) int64 local index or -1
    threshold: np.ndarray  # (N,) float64 inducing threshold (1.0 for label images)
    score: np.ndarray  # (N,) float64 mean probability inside the mask (1.0 for labels)
    max_prob: np.ndarray  # (N,) float64
    embedding: np.ndarray | None = None
    prev_centroid: np.ndarray | None = None

    @property
    def ndim(self) -> int:
        return int(self.centroid.shape[1])

    def __len__(self) -> int:
        return len(self.t)


@dataclass(frozen=True)
class CandidateEdges:
    """Candidate links between candidates (local indices into a :class:`Candidates`)."""

    source: np.ndarray  # (E,) int64
    target: np.ndarray  # (E,) int64
    dt: np.ndarray  # (E,) int64, t[target] - t[source] >= 1
    distance: np.ndarray  # (E,) float64 centroid distance (pixels)
    iou: np.ndarray  # (E,) float64 mask IoU at the same position
    offset_vote: np.ndarray | None = None  # (E,) distance of target's voted prev centre to source
    embedding_distance: np.ndarray | None = None  # (E,) 1 - cosine similarity
