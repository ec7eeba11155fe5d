"""F1 (IoU > 0.5) and AJI on hand-made label images with known values."""

from __future__ import annotations

import numpy as np
import pytest

from inference.segmetrics import aji, contingency, f1_score, movie_scores


def _pair() -> tuple[np.ndarray, np.ndarray]:
    gt = np.zeros((10, 10), int)
    gt[:5, :5] = 1  # 25 px
    gt[5:, 5:] = 2  # 25 px
    pred = np.zeros((10, 10), int)
    pred[:5, :4] = 30  # 20 px inside gt 1: IoU 0.8
    pred[5:, 5:] = 7  # identical to gt 2
    pred[0, 9] = 9  # a 1-px false positive
    return gt, pred


def test_known_f1_and_aji() -> None:
    gt, pred = _pair()
    assert f1_score(gt, pred) == pytest.approx(2 * 2 / (2 + 3))
    # C = 20 + 25, U = 25 + 25 + 1 (unused prediction)
    assert aji(gt, pred) == pytest.approx(45 / 51)


def test_iou_of_exactly_one_half_is_not_a_match() -> None:
    gt = np.zeros((2, 4), int)
    gt[:, :2] = 1  # 4 px
    pred = np.zeros((2, 4), int)
    pred[0, :2] = 5  # 2 px inside: IoU 0.5
    assert f1_score(gt, pred) == 0.0
    assert aji(gt, pred) == pytest.approx(2 / 4)


def test_merge_counts_against_both_scores() -> None:
    gt = np.zeros((4, 8), int)
    gt[:, :4] = 1
    gt[:, 4:] = 2
    merged = (gt > 0).astype(int)
    assert f1_score(gt, merged) == 0.0  # IoU of each cell with the merge is exactly 0.5
    # both cells pick the merged object: C = 16 + 16, U = 32 + 32
    assert aji(gt, merged) == pytest.approx(0.5)


def test_perfect_and_empty_cases() -> None:
    gt, _ = _pair()
    relabelled = np.where(gt > 0, gt + 100, 0)
    assert f1_score(gt, relabelled) == 1.0 and aji(gt, relabelled) == 1.0
    empty = np.zeros_like(gt)
    assert f1_score(gt, empty) == 0.0 and aji(gt, empty) == 0.0
    assert f1_score(empty, empty) == 1.0


def test_contingency_is_sparse_and_exact() -> None:
    gt, pred = _pair()
    c = contingency(gt, pred)
    assert sorted(c.gt_area.tolist()) == [25, 25]
    assert sorted(c.pair_inter.tolist()) == [20, 25]


def test_movie_scores_pool_counts_over_frames() -> None:
    gt, pred = _pair()
    s = movie_scores(np.stack([gt, gt]), np.stack([pred, gt]))
    assert s["f1"] == pytest.approx((4 + 4) / (5 + 4))
    assert s["aji"] == pytest.approx((45 + 50) / (51 + 50))


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        f1_score(np.zeros((3, 3), int), np.zeros((3, 4), int))
