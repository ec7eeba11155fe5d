"""Test-time augmentation: de-augmentation restores an equivariant network's output exactly."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from inference.predict import FramePredictor
from inference.train import dihedral_array
from inference.tta import VARIANTS, augment, deaugment, output_groups


class EquivariantNet(nn.Module):
    """Rotation/flip-equivariant stand-in with the output layout of ``predict_raw``:
    offsets = image gradient (a vector field), bandwidths = |gradient| per axis (an axis pair),
    seed = blurred image, tracking = gradient of the frame difference, embedding = the image."""

    ndim = 2
    embedding_dim = 1

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    @staticmethod
    def _grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ky = torch.tensor([[0.0, -0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.5, 0.0]])[None, None]
        return (nn.functional.conv2d(x, ky, padding=1), nn.functional.conv2d(x, ky.transpose(-1, -2), padding=1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def predict_raw(self, x_t: torch.Tensor, x_prev: torch.Tensor, with_embedding: bool = False) -> torch.Tensor:
        return self.predict_from_features(x_t, x_prev, with_embedding)

    def predict_from_features(
        self, x_t: torch.Tensor, x_prev: torch.Tensor, with_embedding: bool = False
    ) -> torch.Tensor:
        gy, gx = self._grad(x_t)
        dy, dx = self._grad(x_t - x_prev)
        seed = nn.functional.avg_pool2d(x_t, 3, stride=1, padding=1)
        parts = [gy, gx, gy.abs(), gx.abs(), seed, dy, dx]
        if with_embedding:
            parts.append(x_t)
        return torch.cat(parts, dim=1)


def _frames() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 1, 24, 24, generator=g), torch.rand(1, 1, 24, 24, generator=g)


def test_augment_matches_training_augmentation() -> None:
    x = np.random.default_rng(0).random((5, 7))
    for k, f in VARIANTS:
        np.testing.assert_array_equal(augment(torch.from_numpy(x), k, f).numpy(), dihedral_array(x, k, f))


def test_rotate_input_90_then_deaugment_equals_plain_output() -> None:
    net = EquivariantNet()
    xt, xp = _frames()
    ref = net.predict_raw(xt, xp, True)
    vectors, pairs = output_groups(2)
    for k, f in VARIANTS:
        out = net.predict_raw(augment(xt, k, f), augment(xp, k, f), True)
        back = deaugment(out, k, f, vectors, pairs)
        torch.testing.assert_close(back, ref, atol=1e-6, rtol=1e-5)
    # the rotation alone really changes the raw output (the test is not vacuous)
    assert not torch.allclose(net.predict_raw(augment(xt, 1, False), augment(xp, 1, False)), net.predict_raw(xt, xp))


def test_tta_average_equals_plain_prediction_for_equivariant_net() -> None:
    net = EquivariantNet()
    xt, xp = _frames()
    cpu = torch.device("cpu")
    a = FramePredictor(net, cpu, 1024, 0, False, 4, True)(xt[0, 0].numpy(), xp[0, 0].numpy())
    b = FramePredictor(net, cpu, 1024, 0, True, 4, True)(xt[0, 0].numpy(), xp[0, 0].numpy())
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_tta_on_non_square_frames() -> None:
    net = EquivariantNet()
    g = torch.Generator().manual_seed(1)
    xt, xp = torch.rand(20, 36, generator=g).numpy(), torch.rand(20, 36, generator=g).numpy()
    cpu = torch.device("cpu")
    a = FramePredictor(net, cpu, 1024, 0, False, 8, True)(xt, xp)
    b = FramePredictor(net, cpu, 1024, 0, True, 8, True)(xt, xp)
    np.testing.assert_allclose(a, b, atol=1e-5)
