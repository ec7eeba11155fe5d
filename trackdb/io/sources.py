"""Array inputs given on the command line: a TIFF stack, a folder of TIFFs, or a Zarr array."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trackdb.errors import InputError
from trackdb.io import ctc


def read_movie_array(path: Path, *, labels: bool) -> np.ndarray:
    """``(T, [Z,] Y, X)`` array from a multi-page TIFF, a folder of per-frame TIFFs, or Zarr."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_dir() and ((path / "zarr.json").exists() or (path / ".zarray").exists()):
        import zarr

        try:
            arr = zarr.open_array(str(path), mode="r")
        except Exception as exc:
            raise InputError(f"cannot open Zarr array {path}: {exc}") from exc
        data = np.asarray(arr[...])
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
        if not files:
            raise InputError(f"folder {path} holds no .tif files")
        data = ctc.read_stack(files, labels=labels)
    else:
        data = ctc.read_tiff(path)
    if labels and not np.issubdtype(data.dtype, np.integer):
        raise InputError(f"{path}: label images must be integers, got {data.dtype}")
    if labels and data.ndim >= 3:
        if data.min(initial=0) < 0:
            raise InputError(f"{path}: label images contain negative values")
        ctc.check_label_range(data, path)
    return data


def check_movie_shape(data: np.ndarray, n_frames: int, shape: tuple[int, ...], path: Path) -> None:
    if data.shape != (n_frames, *shape):
        raise InputError(f"{path} has shape {data.shape}, the movie is {(n_frames, *shape)} (T, [Z,] Y, X)")


def check_probability(data: np.ndarray, path: Path) -> np.ndarray:
    """Probability maps are floats in [0, 1] without NaN; integer maps are refused, not rescaled."""
    if not np.issubdtype(data.dtype, np.floating):
        raise InputError(f"{path}: probability maps must be floating point in [0, 1], got {data.dtype}")
    nan = np.isnan(data)
    if nan.any():
        t = int(np.argwhere(nan)[0, 0])
        raise InputError(f"{path}: frame {t} contains NaN")
    bad = (data < 0) | (data > 1)
    if bad.any():
        t = int(np.argwhere(bad)[0, 0])
        raise InputError(
            f"{path}: frame {t} has values outside [0, 1] "
            f"(min {float(data[t].min()):.3g}, max {float(data[t].max()):.3g})"
        )
    return data
