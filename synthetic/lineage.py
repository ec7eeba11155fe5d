"""CTC lineage tables derived from simulated cells (agents), for any subset of frames.

A simulated cell (an *agent*) lives from its birth frame to its last frame and has one parent
agent (or none). What an annotator sees is different: a cell outside the field of view is not
there, a missed detection leaves a hole. The CTC table (``label start end parent``) is derived
from what is seen, by the rules an annotator follows:

* a cell seen in two consecutive (kept) frames continues its track;
* a cell seen again after frames in which it was *missed* (in view, not detected) starts a new
  track whose parent is its previous track (CTC's way of writing a gap);
* a cell seen again after being *out of view* starts a new track without parent (nobody can tell
  it is the same cell);
* a newborn cell whose nearest ancestor alive in the previous kept frame was seen there starts a
  track whose parent is that ancestor's track; otherwise it has no parent (it was born unseen).

Because the rules only look at the previous kept frame, subsampling a movie (keeping every k-th
frame) and deriving the table again gives the lineage of the subsampled movie: a division between
two kept frames links the mother's last seen track to every descendant seen next.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Bool2D = NDArray[np.bool_]
Int1D = NDArray[np.int64]
Int2D = NDArray[np.int64]


@dataclass(frozen=True)
class AgentHistory:
    """Per frame and agent: alive, seen (has pixels in the labels) and missed (in view, dropped).

    ``parent[a]`` is the agent that ``a`` was born from, or -1.
    """

    alive: Bool2D  # (T, A)
    seen: Bool2D  # (T, A)
    missed: Bool2D  # (T, A)
    parent: Int1D  # (A,)

    def __post_init__(self) -> None:
        shape = self.alive.shape
        if self.seen.shape != shape or self.missed.shape != shape or self.parent.shape != (shape[1],):
            raise ValueError("alive, seen, missed must share one (T, A) shape and parent must be (A,)")
        if (self.seen & ~self.alive).any():
            raise ValueError("an agent is seen while not alive")
        if (self.seen & self.missed).any():
            raise ValueError("an agent is both seen and missed in one frame")
        if (self.parent >= shape[1]).any():
            raise ValueError("a parent index lies outside the agents")

    def frames(self, keep: NDArray[np.int64] | slice) -> AgentHistory:
        """The same agents on a subset of frames (e.g. ``slice(None, None, 2)``)."""
        return AgentHistory(self.alive[keep], self.seen[keep], self.missed[keep], self.parent)


def _ancestor_alive(parent: Int1D, alive_prev: NDArray[np.bool_], agents: Int1D) -> Int1D:
    """For each agent, its nearest ancestor (itself excluded) alive in the previous frame, or -1."""
    out = np.full(len(agents), -1, np.int64)
    cur = parent[agents].copy()
    todo = cur >= 0
    while todo.any():
        hit = todo & alive_prev[np.maximum(cur, 0)]
        out[hit] = cur[hit]
        todo &= ~hit
        cur[todo] = parent[cur[todo]]
        todo &= cur >= 0
    return out


def derive_tracks(history: AgentHistory) -> tuple[Int2D, Int2D]:
    """The CTC table and, per (frame, agent), the track label (0 where the agent is not seen).

    Returns ``(track_of, tracks)``: ``track_of`` is (T, A), ``tracks`` is (K, 4) with rows
    ``label start end parent`` and labels 1..K in order of first appearance.
    """
    alive, seen, missed, parent = history.alive, history.seen, history.missed, history.parent
    n_frames, n_agents = alive.shape
    track_of = np.zeros((n_frames, n_agents), np.int64)
    capacity = int(seen.sum())  # at most one new track per seen (frame, agent)
    start = np.zeros(capacity, np.int64)
    end = np.zeros(capacity, np.int64)
    track_parent = np.zeros(capacity, np.int64)
    n_tracks = 0
    last_track = np.zeros(n_agents, np.int64)  # track of the agent's last seen frame
    only_missed = np.zeros(n_agents, bool)  # every frame since it was last seen was a miss
    for t in range(n_frames):
        now = np.flatnonzero(seen[t])
        parents = np.zeros(len(now), np.int64)
        if t == 0:
            new = np.ones(len(now), bool)
        else:
            new = ~seen[t - 1, now]
            track_of[t, now[~new]] = track_of[t - 1, now[~new]]
            gap = new & alive[t - 1, now] & only_missed[now] & (last_track[now] > 0)
            parents[gap] = last_track[now[gap]]
            born = new & ~alive[t - 1, now]
            anc = _ancestor_alive(parent, alive[t - 1], now[born])
            anc_track = np.zeros(len(anc), np.int64)
            has = anc >= 0
            anc_track[has] = track_of[t - 1, anc[has]]  # 0 where the ancestor was not seen
            parents[born] = anc_track
        k = int(new.sum())
        ids = np.arange(n_tracks + 1, n_tracks + k + 1)
        start[n_tracks : n_tracks + k] = t
        track_parent[n_tracks : n_tracks + k] = parents[new]
        n_tracks += k
        track_of[t, now[new]] = ids
        end[track_of[t, now] - 1] = t
        last_track[now] = track_of[t, now]
        only_missed[now] = True
        unseen_alive = alive[t] & ~seen[t]
        only_missed[unseen_alive] &= missed[t, unseen_alive]
        only_missed[~alive[t]] = False
    labels = np.arange(1, n_tracks + 1, dtype=np.int64)
    tracks = np.stack([labels, start[:n_tracks], end[:n_tracks], track_parent[:n_tracks]], axis=1)
    return track_of, tracks


def relabel(agent_labels: NDArray[np.integer], track_of: Int2D) -> NDArray[np.unsignedinteger]:
    """Agent label movie (agent index + 1, 0 background) → track label movie, frame by frame."""
    dtype = np.uint16 if track_of.max(initial=0) < 2**16 else np.uint32
    out = np.zeros(agent_labels.shape, dtype)
    for t in range(len(agent_labels)):
        lut = np.concatenate([[0], track_of[t]]).astype(dtype)
        out[t] = lut[agent_labels[t]]
    return out


def division_count(tracks: Int2D) -> int:
    """Number of parents with two or more daughters (what traccuracy counts as divisions)."""
    par = tracks[tracks[:, 3] > 0, 3]
    if len(par) == 0:
        return 0
    _, n = np.unique(par, return_counts=True)
    return int((n >= 2).sum())
