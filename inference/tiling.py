"""Overlapping tiles blended into whole frames (EmbedTrack inference, methods.md A6).

Raw network outputs of overlapping tiles are blended with a separable Gaussian window
(std = tile/4 per axis, as EmbedTrack) and normalised by the summed weights; clustering then runs
once on the stitched map, so no label stitching is needed. Frames are reflect-padded to a multiple
of 8 (ERFNet's output stride) and cropped back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np

STRIDE = 8  # ERFNet downsamples three times


def round_up(n: int, m: int = STRIDE) -> int:
    return -(-n // m) * m


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start positions of tiles of length ``tile`` covering ``[0, size)``, the last flush with the end."""
    if size <= tile:
        return [0]
    step = tile - overlap
    if step <= 0:
        raise ValueError(f"overlap {overlap} must be smaller than the tile {tile}")
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return starts


def gaussian_window(shape: tuple[int, ...]) -> np.ndarray:
    """Separable Gaussian blending weights, std = n/4 per axis, float32."""
    w = np.ones((), np.float32)
    for n in shape:
        x = np.arange(n, dtype=np.float32) - (n - 1) / 2.0
        g = np.exp(-0.5 * (x / max(n / 4.0, 1e-6)) ** 2).astype(np.float32)
        w = np.multiply.outer(w, g)
    return w


def pad_to_stride(img: np.ndarray, ndim: int) -> tuple[np.ndarray, tuple[slice, ...]]:
    """Reflect-pad the last ``ndim`` axes to multiples of 8; returns the crop that undoes it."""
    spatial = img.shape[-ndim:]
    pads: list[tuple[int, int]] = [(0, 0)] * (img.ndim - ndim) + [(0, round_up(n) - n) for n in spatial]
    mode: Literal["reflect", "edge"] = "reflect" if all(n > 1 for n in spatial) else "edge"
    if any(p[1] >= n for p, n in zip(pads[-ndim:], spatial)):
        mode = "edge"  # reflect needs the pad to be shorter than the axis
    out = np.pad(img, pads, mode=mode) if any(p[1] for p in pads) else img
    return out, tuple(slice(0, n) for n in spatial)


def iter_tiles(shape: tuple[int, ...], tile: int, overlap: int) -> Iterator[tuple[slice, ...]]:
    """Tile slices over a (padded) spatial shape; tile sides are min(tile, side)."""
    tile = round_up(tile)
    grids = [[slice(s, s + min(tile, n)) for s in tile_starts(n, tile, overlap)] for n in shape]
    for idx in np.ndindex(*(len(g) for g in grids)):
        yield tuple(g[i] for g, i in zip(grids, idx))


def predict_tiled(
    fn: Callable[[list[tuple[slice, ...]]], list[np.ndarray]],
    shape: tuple[int, ...],
    n_channels: int,
    tile: int,
    overlap: int,
    batch: int,
) -> np.ndarray:
    """Blend ``fn`` over tiles of a padded frame of spatial ``shape`` -> (C, *shape) float32.

    ``fn`` receives up to ``batch`` tile slices and returns one (C, *tile) raw array per slice.
    """
    acc = np.zeros((n_channels, *shape), np.float32)
    wsum = np.zeros(shape, np.float32)
    tiles = list(iter_tiles(shape, tile, overlap))
    windows: dict[tuple[int, ...], np.ndarray] = {}
    for i in range(0, len(tiles), batch):
        chunk = tiles[i : i + batch]
        for sl, out in zip(chunk, fn(chunk)):
            tshape = tuple(s.stop - s.start for s in sl)
            if tshape not in windows:
                windows[tshape] = gaussian_window(tshape) if len(tiles) > 1 else np.ones(tshape, np.float32)
            w = windows[tshape]
            acc[(slice(None), *sl)] += out * w
            wsum[sl] += w
    return acc / wsum
