"""Shapes, parameter counts and output initialisation of the branched ERFNet."""

from __future__ import annotations

import torch

from inference.model import BranchedERFNet, count_parameters


def test_parameter_counts_match_docstring() -> None:
    # EmbedTrack's TrackERFNet has about 2.51M parameters (methods.md A1).
    assert count_parameters(BranchedERFNet(2, 1, 1.0)) == 2_514_749
    assert count_parameters(BranchedERFNet(2, 1, 0.5)) == 632_797


def test_shapes_2d() -> None:
    torch.manual_seed(0)
    m = BranchedERFNet(2, 1, 0.25).eval()
    x = torch.randn(2, 1, 32, 48)
    seg_t, seg_p, trk = m(x, x)
    assert seg_t.shape == (2, 5, 32, 48)
    assert seg_p.shape == (2, 5, 32, 48)
    assert trk.shape == (2, 2, 32, 48)
    raw = m.predict_raw(x, x, with_embedding=True)
    assert raw.shape == (2, 5 + 2 + m.embedding_dim, 32, 48)


def test_shapes_3d() -> None:
    m = BranchedERFNet(3, 1, 0.125).eval()
    x = torch.randn(1, 1, 8, 16, 16)
    seg_t, _, trk = m(x, x)
    assert seg_t.shape == (1, 7, 8, 16, 16)
    assert trk.shape == (1, 3, 8, 16, 16)


def test_output_initialisation() -> None:
    # EmbedSeg init_output: offsets start at 0, bandwidth logits at 1.
    m = BranchedERFNet(2, 1, 0.25).eval()
    x = torch.randn(1, 1, 16, 16)
    seg_t, _, trk = m(x, x)
    assert torch.allclose(seg_t[:, :2], torch.zeros(1))
    assert torch.allclose(trk, torch.zeros(1))
    assert torch.allclose(seg_t[:, 2:4], torch.ones(1))
