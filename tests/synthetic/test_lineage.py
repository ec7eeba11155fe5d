"""CTC lineage rules on hand-built agent histories (divisions, gaps, leaving view, subsampling)."""

from __future__ import annotations

import numpy as np
import pytest

from synthetic.lineage import AgentHistory, derive_tracks, division_count, relabel


def history(alive: list[str], seen: list[str], parent: list[int], missed: list[str] | None = None) -> AgentHistory:
    """One string per agent, one character per frame: '1' true, '0' false."""

    def grid(rows: list[str]) -> np.ndarray:
        return np.array([[c == "1" for c in row] for row in rows], bool).T

    miss = grid(missed) if missed is not None else np.zeros_like(grid(alive))
    return AgentHistory(grid(alive), grid(seen), miss, np.asarray(parent, np.int64))


def test_division_gives_two_daughter_tracks() -> None:
    h = history(["11100", "00011", "00011"], ["11100", "00011", "00011"], [-1, 0, 0])
    track_of, tracks = derive_tracks(h)
    assert tracks.tolist() == [[1, 0, 2, 0], [2, 3, 4, 1], [3, 3, 4, 1]]
    assert track_of[:, 0].tolist() == [1, 1, 1, 0, 0]
    assert division_count(tracks) == 1


def test_missed_detection_is_a_gap_with_parent_but_leaving_view_is_not() -> None:
    # agent 0 missed in frames 2-3 (in view); agent 1 out of view in frames 2-3
    h = history(["111111", "111111"], ["110011", "110011"], [-1, -1], missed=["001100", "000000"])
    _, tracks = derive_tracks(h)
    assert tracks.tolist() == [[1, 0, 1, 0], [2, 0, 1, 0], [3, 4, 5, 1], [4, 4, 5, 0]]


def test_daughter_born_unseen_has_no_parent() -> None:
    # the mother divides out of view; its daughters come into view later
    h = history(["11000", "00111", "00111"], ["10000", "00011", "00111"], [-1, 0, 0])
    _, tracks = derive_tracks(h)
    assert tracks.tolist() == [[1, 0, 0, 0], [2, 2, 4, 0], [3, 3, 4, 0]]


def test_subsampling_links_mother_to_grand_daughters() -> None:
    # frames 0..4: mother 0 until 1, daughters 1, 2 at 2, daughter 1 divides into 3, 4 at 3
    alive = ["11000", "00100", "00111", "00011", "00011"]
    h = history(alive, alive, [-1, 0, 0, 1, 1])
    _, full = derive_tracks(h)
    assert division_count(full) == 2
    _, sub = derive_tracks(h.frames(slice(None, None, 2)))  # keeps frames 0, 2, 4
    # frame 0: mother; frame 1 (orig 2): daughters 1, 2; frame 2 (orig 4): 2 continues, 3, 4 new
    assert sub.tolist() == [[1, 0, 0, 0], [2, 1, 1, 1], [3, 1, 2, 1], [4, 2, 2, 2], [5, 2, 2, 2]]
    _, sub4 = derive_tracks(h.frames(slice(None, None, 4)))  # frames 0 and 4: three descendants
    assert sub4.tolist() == [[1, 0, 0, 0], [2, 1, 1, 1], [3, 1, 1, 1], [4, 1, 1, 1]]


def test_relabel_maps_agents_to_tracks_per_frame() -> None:
    h = history(["111", "011"], ["111", "011"], [-1, -1])
    track_of, _ = derive_tracks(h)
    agents = np.array([[[1, 0]], [[1, 2]], [[2, 1]]])
    assert relabel(agents, track_of).tolist() == [[[1, 0]], [[1, 2]], [[2, 1]]]


def test_history_rejects_seen_while_dead() -> None:
    with pytest.raises(ValueError, match="not alive"):
        history(["10"], ["11"], [-1])
