"""A movie read one frame at a time: a CTC sequence's ground-truth masks, a TIFF stack, a folder
of TIFFs or a Zarr array, each ``(T, [Z,] Y, X)``.

Opening reads only what says how big the movie is (file names, TIFF page headers, Zarr
metadata), so an experiment manifest of hundreds of movies is checked in seconds; frames are
decoded when a task asks for them, each checked where it is read (shape, integer labels,
probabilities in [0, 1]) with the file and frame named.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from trackdb.errors import InputError
from trackdb.io import ctc
from trackdb.io.sources import check_probability


class Content(enum.Enum):
    """What the pixels are."""

    LABELS = "labels"  # integer label images, 0 = background
    PROB = "prob"  # foreground probability in [0, 1]


class Layout(enum.Enum):
    FILES = "files"  # one TIFF per frame
    STACK = "stack"  # one multi-page TIFF
    ZARR = "zarr"


@dataclass(frozen=True)
class FrameSource:
    """Where a movie's frames are and how big they are; :meth:`frame` reads one."""

    path: Path
    layout: Layout
    content: Content
    n_frames: int
    shape: tuple[int, ...]  # spatial ([Z,] Y, X)
    files: tuple[Path, ...] = ()  # Layout.FILES

    def frame(self, t: int) -> np.ndarray:
        if not 0 <= t < self.n_frames:
            raise InputError(f"{self.path}: no frame {t} (it has {self.n_frames})")
        where = self.files[t] if self.layout is Layout.FILES else self.path
        if self.layout is Layout.FILES:
            img = ctc.read_tiff(self.files[t])
        elif self.layout is Layout.STACK:
            pages = int(np.prod(self.shape[:-2], dtype=np.int64))
            try:
                img = tifffile.imread(self.path, key=range(t * pages, (t + 1) * pages))
            except Exception as exc:  # a truncated or corrupt page
                raise InputError(f"cannot read frame {t} of TIFF {self.path}: {exc}") from exc
            img = img.reshape(self.shape) if img.size == int(np.prod(self.shape)) else img
        else:
            import zarr

            try:
                img = np.asarray(zarr.open_array(str(self.path), mode="r")[t])
            except Exception as exc:  # a missing or corrupt chunk
                raise InputError(f"cannot read frame {t} of Zarr array {self.path}: {exc}") from exc
        if img.shape != self.shape:
            raise InputError(f"{where}: frame {t} has shape {img.shape}, the movie's frames are {self.shape}")
        if self.content is Content.LABELS:
            if not np.issubdtype(img.dtype, np.integer):
                raise InputError(f"{where}: frame {t}: label images must be integers, got {img.dtype}")
            if img.min(initial=0) < 0:
                raise InputError(f"{where}: frame {t}: label images contain negative values")
        else:
            try:
                check_probability(img[None], where)
            except InputError as exc:
                raise InputError(str(exc).replace("frame 0", f"frame {t}")) from None
        return img

    def frames(self, frames: range) -> np.ndarray:
        """Frames ``frames`` stacked ``(len, [Z,] Y, X)``."""
        return np.stack([self.frame(t) for t in frames]) if len(frames) else np.zeros((0, *self.shape))


def ctc_masks(dataset: Path, seq: str) -> FrameSource:
    """The ground-truth tracking masks of ``DATASET/SEQ_GT/TRA`` (one TIFF per frame)."""
    tra = Path(dataset) / f"{seq}_GT" / "TRA"
    files = ctc.frame_files(tra, "man_track")
    return FrameSource(tra, Layout.FILES, Content.LABELS, len(files), _tiff_frame_shape(files[0]), tuple(files))


def open_frames(path: Path, content: Content) -> FrameSource:
    """A TIFF stack, a folder of per-frame TIFFs or a Zarr array, ``(T, [Z,] Y, X)``."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    files: tuple[Path, ...] = ()
    if path.is_dir() and ((path / "zarr.json").exists() or (path / ".zarray").exists()):
        import zarr

        try:
            arr = zarr.open_array(str(path), mode="r")
        except Exception as exc:
            raise InputError(f"cannot open Zarr array {path}: {exc}") from exc
        shape = tuple(int(s) for s in arr.shape)
        layout = Layout.ZARR
    elif path.is_dir():
        files = tuple(sorted(p for p in path.iterdir() if p.suffix.lower() in (".tif", ".tiff")))
        if not files:
            raise InputError(f"folder {path} holds no .tif files")
        shape = (len(files), *_tiff_frame_shape(files[0]))
        layout = Layout.FILES
    else:
        try:
            with tifffile.TiffFile(path) as tif:
                shape = tuple(int(s) for s in tif.series[0].shape)
                n_pages = len(tif.pages)
        except Exception as exc:
            raise InputError(f"cannot read TIFF {path}: {exc}") from exc
        if len(shape) >= 3 and n_pages != int(np.prod(shape[:-2], dtype=np.int64)):
            raise InputError(f"{path}: {n_pages} pages do not make {shape} frames; write one page per 2D plane")
        layout = Layout.STACK
    if len(shape) not in (3, 4):
        raise InputError(f"{path}: expected a (T, [Z,] Y, X) movie, got shape {shape}")
    return FrameSource(path, layout, content, shape[0], shape[1:], files)


def _tiff_frame_shape(path: Path) -> tuple[int, ...]:
    try:
        with tifffile.TiffFile(path) as tif:
            shape = tuple(int(s) for s in tif.series[0].shape)
    except Exception as exc:
        raise InputError(f"cannot read TIFF {path}: {exc}") from exc
    if len(shape) not in (2, 3):
        raise InputError(f"{path}: expected a 2D or 3D frame, got shape {shape}")
    return shape


__all__ = ["Content", "FrameSource", "Layout", "ctc_masks", "open_frames"]
