"""The spatial-embedding loss on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.loss import (
    DEFAULT_PIXEL_SCALE,
    FrameTargets,
    SpatialEmbeddingLoss,
    coordinate_grid,
    instance_iou,
    lovasz_hinge_batched,
)


def test_lovasz_tiny_case() -> None:
    labels = torch.tensor([[1.0, 0.0]])
    assert float(lovasz_hinge_batched(torch.tensor([[1.0, -1.0]]), labels)) == pytest.approx(0.0)
    # errors [0.5 (fg), 1.2 (bg)] sorted [1.2, 0.5]; Jaccard grads [0.5, 0.5] -> 0.85
    assert float(lovasz_hinge_batched(torch.tensor([[0.5, 0.2]]), labels)) == pytest.approx(0.85)
    assert float(lovasz_hinge_batched(torch.tensor([[-1.0, 1.0]]), labels)) > 1.5


def _two_touching() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    inst = np.zeros((32, 48), np.int64)
    inst[8:24, 8:24] = 1
    inst[8:24, 24:40] = 2  # touching along x = 24
    centres = np.array([[15.5, 15.5], [15.5, 31.5]])
    prev = np.array([[14.0, 17.0], [np.nan, np.nan]])  # cell 2 has no predecessor
    return inst, centres, prev


def _perfect_raw(inst: np.ndarray, centres: np.ndarray, prev: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    s = DEFAULT_PIXEL_SCALE
    xy = coordinate_grid(inst.shape, s, torch.device("cpu")).reshape(2, *inst.shape).numpy()
    target = np.where(inst[None] > 0, 0.0, 0.0) + xy + 0.5  # background: far from any centre
    track = np.full_like(xy, -0.5)  # pixels without predecessor vote far away
    for k, c in enumerate(centres, start=1):
        m = inst == k
        target[:, m] = (c * s)[:, None]
        if not np.isnan(prev[k - 1]).any():
            track[:, m] = xy[:, m] - (prev[k - 1] * s)[:, None]
    seg = np.zeros((5, *inst.shape), np.float32)
    seg[:2] = np.arctanh(target - xy)
    seg[2:4] = 20.0  # S = e^10: the narrowest kernel
    seg[4] = np.where(inst > 0, 20.0, -20.0)
    return torch.from_numpy(seg), torch.from_numpy(np.arctanh(track).astype(np.float32))


def test_loss_low_for_perfect_and_high_for_wrong() -> None:
    inst, centres, prev = _two_touching()
    tgt = FrameTargets(torch.from_numpy(inst), torch.tensor([1, 2]), torch.from_numpy(centres), torch.from_numpy(prev))
    seg, trk = _perfect_raw(inst, centres, prev)
    loss = SpatialEmbeddingLoss()
    good = loss.image_terms(seg, tgt, trk)
    assert all(float(v) < 0.02 for v in good.values()), good
    bad = loss.image_terms(torch.zeros_like(seg), tgt, torch.zeros_like(trk))
    assert float(bad["inst"]) > 0.5
    assert float(bad["seed"]) > 0.1
    assert float(bad["track"]) > 0.5
    # wrong tracking vote only: pixels point to the other cell's centre
    wrong_trk = trk.clone()
    wrong_trk[:, inst == 1] = torch.arctanh(torch.tensor(0.01))
    assert float(loss.image_terms(seg, tgt, wrong_trk)["track"]) > 0.5
    # variance term: non-constant bandwidth inside an instance is penalised
    seg_var = seg.clone()
    seg_var[2, :, :20] = -3.0
    assert float(loss.image_terms(seg_var, tgt, trk)["var"]) > 1e-3
    ious = instance_iou(seg, tgt)
    assert min(ious) > 0.99


def test_batch_loss_backpropagates() -> None:
    inst, centres, prev = _two_touching()
    tgt = FrameTargets(torch.from_numpy(inst), torch.tensor([1, 2]), torch.from_numpy(centres), torch.from_numpy(prev))
    seg = torch.zeros(1, 5, 32, 48, requires_grad=True)
    trk = torch.zeros(1, 2, 32, 48, requires_grad=True)
    total, logs = SpatialEmbeddingLoss()(seg, seg, trk, [tgt], [tgt])
    total.backward()
    assert seg.grad is not None
    assert float(seg.grad.abs().sum()) > 0
    assert trk.grad is not None
    assert float(trk.grad.abs().sum()) > 0
    assert set(logs) == {"inst", "var", "seed", "track"}
