"""Tile layout, exact blending, and tiled ≈ whole-image prediction."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from inference.model import BranchedERFNet
from inference.predict import FramePredictor
from inference.tiling import iter_tiles, pad_to_stride, predict_tiled, tile_starts


def test_tile_starts_cover_the_axis() -> None:
    assert tile_starts(100, 128, 16) == [0]
    s = tile_starts(1305, 512, 64)
    assert s[0] == 0
    assert s[-1] + 512 == 1305
    assert all(b - a <= 512 - 64 for a, b in zip(s, s[1:]))


def test_blending_is_exact_for_a_position_only_function() -> None:
    truth = np.random.default_rng(0).random((3, 72, 104)).astype(np.float32)

    def fn(tiles: list[tuple[slice, ...]]) -> list[np.ndarray]:
        return [truth[(slice(None), *sl)] for sl in tiles]

    out = predict_tiled(fn, (72, 104), 3, tile=32, overlap=8, batch=3)
    np.testing.assert_allclose(out, truth, rtol=1e-5, atol=1e-6)
    assert len(list(iter_tiles((72, 104), 32, 8))) > 4


def test_pad_to_stride_roundtrip() -> None:
    img = np.arange(13 * 21, dtype=np.float32).reshape(13, 21)
    padded, crop = pad_to_stride(img, 2)
    assert padded.shape == (16, 24)
    np.testing.assert_array_equal(padded[crop], img)


def test_tiled_matches_whole_image_prediction() -> None:
    torch.manual_seed(0)
    model = BranchedERFNet(2, 1, 0.25)
    for mod in model.modules():  # non-trivial outputs (the offset heads start at zero)
        if isinstance(mod, torch.nn.ConvTranspose2d) and mod.kernel_size == (2, 2):
            torch.nn.init.normal_(mod.weight, std=0.1)
    model.eval()
    img = ndimage.gaussian_filter(np.random.default_rng(0).random((120, 200)).astype(np.float32), 3)
    img = (img - img.min()) / (img.max() - img.min())
    cpu = torch.device("cpu")
    whole = FramePredictor(model, cpu, 1024, 0, False, 4, True)(img, img)
    tiled = FramePredictor(model, cpu, 64, 32, False, 4, True)(img, img)
    assert tiled.shape == whole.shape == (3 * 2 + 1 + model.embedding_dim, 120, 200)
    rel = np.abs(tiled - whole).mean() / whole.std()
    assert rel < 0.02, rel


def test_encoder_cache_gives_the_same_output() -> None:
    torch.manual_seed(0)
    model = BranchedERFNet(2, 1, 0.125).eval()
    rng = np.random.default_rng(0)
    x0, x1 = (ndimage.gaussian_filter(rng.random((40, 56)).astype(np.float32), 2) for _ in range(2))
    cpu = torch.device("cpu")
    plain = FramePredictor(model, cpu, 32, 8, True, 4, True)(x1, x0)
    cached = FramePredictor(model, cpu, 32, 8, True, 4, True)
    cached(x0, x0, 0, 0)
    np.testing.assert_allclose(cached(x1, x0, 1, 0), plain, rtol=1e-4, atol=1e-5)
