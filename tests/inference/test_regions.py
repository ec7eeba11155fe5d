"""Region features of label images, 2D and 3D, against direct per-object computation."""

from __future__ import annotations

import numpy as np
import pytest

from inference.regions import candidates_from_components, candidates_from_labels, mask_covariance


def movie_2d() -> np.ndarray:
    lab = np.zeros((2, 20, 30), np.uint16)
    lab[0, 2:6, 3:10] = 1
    lab[0, 10:15, 20:22] = 4  # labels need not be consecutive
    lab[1, 0:3, 0:3] = 2
    lab[1, 12, 25] = 7  # a single pixel
    return lab


def test_features_2d_match_direct_computation() -> None:
    lab = movie_2d()
    c = candidates_from_labels(lab, t0=5)
    assert c.t.tolist() == [5, 5, 6, 6]
    assert c.label.tolist() == [1, 4, 2, 7]
    assert c.area.tolist() == [28, 10, 9, 1]
    for i in range(len(c)):
        f = c.t[i] - 5
        pts = np.argwhere(lab[f] == c.label[i])
        assert np.allclose(c.centroid[i], pts.mean(axis=0))
        assert c.bbox[i].tolist() == [*pts.min(axis=0), *(pts.max(axis=0) + 1)]
        y0, x0, y1, x1 = c.bbox[i]
        assert np.array_equal(c.masks[i], lab[f, y0:y1, x0:x1] == c.label[i])
    assert np.all(c.hier_parent == -1)
    assert np.all(c.score == 1)
    assert np.all(c.threshold == 1)
    assert c.ndim == 2


def test_features_3d() -> None:
    lab = np.zeros((1, 4, 10, 10), np.int32)
    lab[0, 1:3, 2:5, 6:9] = 3
    c = candidates_from_labels(lab)
    assert c.ndim == 3
    assert c.area.tolist() == [18]
    assert np.allclose(c.centroid[0], [1.5, 3.0, 7.0])
    assert c.bbox[0].tolist() == [1, 2, 6, 3, 5, 9]
    assert c.masks[0].shape == (2, 3, 3)
    assert c.masks[0].all()


def test_components_give_the_same_features_as_labels() -> None:
    lab = movie_2d()
    c = candidates_from_labels(lab)
    d = candidates_from_components(c.t, c.bbox[:, :2], c.masks)
    assert np.allclose(d.centroid, c.centroid)
    assert np.array_equal(d.bbox, c.bbox)
    assert np.array_equal(d.area, c.area)


def test_covariance_of_a_rod() -> None:
    lab = np.zeros((1, 20, 40), np.uint8)
    lab[0, 8:12, 5:35] = 1
    cov = mask_covariance(candidates_from_labels(lab))
    assert cov.shape == (1, 2, 2)
    assert cov[0, 1, 1] == pytest.approx((30**2 - 1) / 12)  # discrete uniform variance
    assert cov[0, 0, 0] == pytest.approx((4**2 - 1) / 12)


def test_empty_movie_and_bad_input() -> None:
    c = candidates_from_labels(np.zeros((3, 5, 5), np.uint8))
    assert len(c) == 0
    assert c.centroid.shape == (0, 2)
    with pytest.raises(ValueError):
        candidates_from_labels(np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError):
        candidates_from_labels(np.zeros((1, 5, 5), np.float32))


@pytest.mark.parametrize("ndim", [2, 3])
def test_covariance_of_many_shapes_equals_the_per_mask_moments(ndim: int) -> None:
    rng = np.random.default_rng(ndim)
    lab = np.zeros((2,) + (24,) * ndim, np.uint16)
    for k in range(1, 40):  # random boxes, some overlapping (later labels win), some one pixel
        lo = rng.integers(0, 20, ndim)
        hi = lo + rng.integers(1, 5, ndim)
        lab[(int(rng.integers(0, 2)),) + tuple(slice(a, b) for a, b in zip(lo, hi))] = k
    c = candidates_from_labels(lab)
    cov = mask_covariance(c)
    assert len({m.shape for m in c.masks}) > 5
    for i, m in enumerate(c.masks):
        x = np.argwhere(m).astype(float)
        want = np.cov(x.T, bias=True).reshape(ndim, ndim) if len(x) >= 2 else np.zeros((ndim, ndim))
        assert np.allclose(cov[i], want, atol=1e-9)
