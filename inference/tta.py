"""8-fold dihedral test-time augmentation with de-augmentation of vector channels.

EmbedSeg/EmbedTrack (methods.md A5): rotate the input by k·90° (k=0..3) with and without a flip,
undo the geometric transform on the *raw* outputs, fix the channel semantics of vector fields
(offsets) and axis-paired channels (per-axis bandwidths), and average the raw logits before any
activation (pitfall E2). Transforms act on the last two axes (y, x); in 3D the same 8 in-plane
variants are used (EmbedSeg's 16 add z flips — not done here).

Conventions (match :func:`inference.train.dihedral_array`): augment = rot90 k times in (y, x)
(``np.rot90``), then flip y. One rot90 maps a vector (dy, dx) to (-dx, dy); a y flip maps it to
(-dy, dx).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

VARIANTS: tuple[tuple[int, bool], ...] = tuple((k, f) for f in (False, True) for k in range(4))


def augment(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """rot90 ``k`` times in the last two axes, then flip the y axis."""
    x = torch.rot90(x, k, dims=(-2, -1))
    return torch.flip(x, dims=(-2,)) if flip else x


def _unrotate_vectors(v: torch.Tensor, k: int) -> torch.Tensor:
    """Apply the inverse rotation R^-k to (..., dy, dx) stored in dim 1 (last two of the group)."""
    out = v.clone()
    dy, dx = v[:, -2].clone(), v[:, -1].clone()
    for _ in range(k % 4):  # R^-1: (a, b) -> (b, -a)
        dy, dx = dx, -dy
    out[:, -2], out[:, -1] = dy, dx
    return out


def deaugment(
    y: torch.Tensor,
    k: int,
    flip: bool,
    vector_groups: Sequence[Sequence[int]],
    axis_pair_groups: Sequence[Sequence[int]],
) -> torch.Tensor:
    """Undo :func:`augment` on raw outputs (B, C, ..., Y, X).

    ``vector_groups``: channel index lists holding a vector field ((z,) y, x components);
    ``axis_pair_groups``: channel index lists holding per-axis scalars ((z,) y, x), swapped for odd k.
    """
    if flip:
        y = torch.flip(y, dims=(-2,))
    y = torch.rot90(y, -k, dims=(-2, -1))
    if not (flip or k % 4):
        return y
    y = y.clone()
    for g in vector_groups:
        idx = list(g)
        v = y[:, idx]
        if flip:
            v[:, -2] = -v[:, -2]
        y[:, idx] = _unrotate_vectors(v, k)
    if k % 2:
        for g in axis_pair_groups:
            a, b = g[-2], g[-1]
            y[:, [a, b]] = y[:, [b, a]]
    return y


def output_groups(ndim: int) -> tuple[list[list[int]], list[list[int]]]:
    """Vector and axis-pair channel groups of ``BranchedERFNet.predict_raw``'s layout."""
    D = ndim
    vectors = [list(range(0, D)), list(range(2 * D + 1, 3 * D + 1))]
    pairs = [list(range(D, 2 * D))]
    return vectors, pairs
