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
    assert f1_score(gt, relabelled) == 1.0
    assert aji(gt, relabelled) == 1.0
    empty = np.zeros_like(gt)
    assert f1_score(gt, empty) == 0.0
    assert aji(gt, empty) == 0.0
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


def test_baselines_separate_two_blobs_only_when_the_valley_is_deep_enough() -> None:
    from inference.baselines import threshold_components, watershed_segmentation

    yy, xx = np.mgrid[:32, :48]

    def blob(cx: float) -> np.ndarray:
        peak: np.ndarray = np.exp(-((yy - 16) ** 2 + (xx - cx) ** 2) / 60.0)
        return peak

    prob = np.clip(blob(16) + blob(30), 0, 1)  # two peaks joined above 0.5
    cc = threshold_components(prob)
    assert cc.max() == 1  # one merged component at 0.5
    ws = watershed_segmentation(prob, h=0.05, sigma=0.0)
    assert ws.max() == 2  # the watershed splits it at the valley
    assert set(np.unique(ws[prob >= 0.5])) == {1, 2}


def test_synthetic_maps_are_reproducible_and_in_range() -> None:
    from inference.synthetic import disk_movie, prob_from_labels

    labels = disk_movie(n_frames=1, shape=(40, 40), seed=1)[0]
    p1 = prob_from_labels(labels, seed=4)
    p2 = prob_from_labels(labels, seed=4)
    np.testing.assert_array_equal(p1, p2)
    assert p1.dtype == np.float32
    assert p1.min() >= 0.0
    assert p1.max() <= 1.0
    assert (p1[labels > 0] >= 0.5).mean() > 0.5
    assert (p1[labels == 0] < 0.5).all()
