"""A movie's pixels for display: its raw frames, else its predicted seediness map.

The raw frames stay where the movie was imported from (``movie.uri``, a CTC sequence folder of
``tTTT.tif``); a movie imported without them but predicted on has ``pred/seediness`` in its Zarr
group. Frames are read one at a time on demand (a page shows a crop, a viewer a frame), and a
few recent ones are kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from trackdb.errors import InputError
from trackdb.io import ctc
from trackdb.store.core import Movie

CACHED_FRAMES = 8


class MoviePixels:
    """Frame ``t`` of a movie as an array of the movie's shape; ``source`` says where from
    (``"raw"``, ``"seediness"``, or None when the store knows no pixels for this movie)."""

    def __init__(self, movie: Movie) -> None:
        self.movie = movie
        self.files: list[Path] | None = None
        self.seediness: Any = None
        self.source: str | None = None
        if movie.uri and Path(movie.uri).is_dir():
            files = ctc.frame_files(Path(movie.uri), "t")
            if len(files) != movie.n_frames:
                raise InputError(f"{movie.uri} holds {len(files)} frames, the movie has {movie.n_frames}")
            self.files, self.source = files, "raw"
        elif movie.zarr_uri and Path(movie.zarr_uri).exists():
            from inference.pred_store import child_array, open_pred

            try:
                self.seediness = child_array(open_pred(movie.zarr_uri), "seediness")
                self.source = "seediness"
            except (KeyError, ValueError, FileNotFoundError):
                self.seediness = None
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.movie.n_frames

    @property
    def dtype(self) -> np.dtype:
        if self.files is not None:
            return self.frame(0).dtype
        return np.dtype(np.float32)

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` (zeros when the movie has no pixels in the store)."""
        t = int(t)
        if not 0 <= t < self.movie.n_frames:
            raise InputError(f"frame {t} is outside movie {self.movie.name!r} (0-{self.movie.n_frames - 1})")
        with self._lock:
            if t in self._cache:
                self._cache.move_to_end(t)
                return self._cache[t]
        img = self._read(t)
        with self._lock:
            self._cache[t] = img
            while len(self._cache) > CACHED_FRAMES:
                self._cache.popitem(last=False)
        return img

    def _read(self, t: int) -> np.ndarray:
        if self.files is not None:
            img = ctc.read_tiff(self.files[t])
        elif self.seediness is not None:
            img = np.asarray(self.seediness[t], dtype=np.float32)
        else:
            return np.zeros(self.movie.shape, np.uint8)
        if img.shape != self.movie.shape:
            raise InputError(
                f"frame {t} of movie {self.movie.name!r} has shape {img.shape}, the movie {self.movie.shape}"
            )
        return img

    def lazy(self) -> Any:
        """The whole movie as a lazy ``(T, [Z,] Y, X)`` dask array (one chunk per frame)."""
        import dask
        import dask.array as da

        sample = self.frame(0)
        frames = [
            da.from_delayed(dask.delayed(self._read)(t), shape=sample.shape, dtype=sample.dtype)
            for t in range(self.movie.n_frames)
        ]
        return da.stack(frames)
