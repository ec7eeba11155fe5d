"""CTC track segments from a selection: chains, divisions, gaps, unselected nodes."""

from __future__ import annotations

import numpy as np
import pytest

from solvers.tracks import tracks_from_solution


def test_chain_division_gap_and_unselected() -> None:
    # 0 -> 1 -> 2 (chain, t0..t2); 2 -> 3, 2 -> 4 (division at t3); 4 -> 5 over a gap (t5);
    # 6 at t1 is not selected; 7 at t0 appears alone
    t = np.array([0, 1, 2, 3, 3, 5, 1, 0])
    src = np.array([0, 1, 2, 2, 4, 6])
    dst = np.array([1, 2, 3, 4, 5, 3])
    node_sel = np.array([1, 1, 1, 1, 1, 1, 0, 1], bool)
    edge_sel = np.array([1, 1, 1, 1, 1, 1], bool)  # the last edge touches an unselected node
    tid, tracks = tracks_from_solution(t, src, dst, node_sel, edge_sel)
    assert tid[0] == tid[1] == tid[2]
    assert tid[6] == 0
    assert len({tid[0], tid[3], tid[4], tid[5], tid[7]}) == 5
    rows = {int(r[0]): r[1:].tolist() for r in tracks}
    assert rows[tid[0]] == [0, 2, 0]
    assert rows[tid[3]] == [3, 3, tid[0]]
    assert rows[tid[4]] == [3, 3, tid[0]]
    assert rows[tid[5]] == [5, 5, tid[4]]  # after the gap: a new track, parent before the gap
    assert rows[tid[7]] == [0, 0, 0]
    assert tracks[:, 0].tolist() == list(range(1, len(tracks) + 1))
    assert np.all(np.diff(tracks[:, 1]) >= 0)  # numbered by start frame


def test_two_parents_is_an_error() -> None:
    with pytest.raises(ValueError, match="node 2"):
        tracks_from_solution(
            np.array([0, 0, 1]), np.array([0, 1]), np.array([2, 2]), np.ones(3, bool), np.ones(2, bool)
        )


def test_nothing_selected() -> None:
    tid, tracks = tracks_from_solution(
        np.array([0, 1]), np.array([0]), np.array([1]), np.zeros(2, bool), np.zeros(1, bool)
    )
    assert tid.tolist() == [0, 0]
    assert tracks.shape == (0, 4)
