"""Cell Tracking Challenge (CTC) files: read and validate, write. Nothing else.

A CTC sequence is ``DATASET/SEQ/tTTT.tif`` (raw frames) and ``DATASET/SEQ_GT/TRA/`` with
``man_trackTTT.tif`` label images plus ``man_track.txt`` (``label start end parent`` per line).
Every check here names the file or frame at fault, because users fix data by hand.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from trackdb.errors import InputError

_FRAME_RE = re.compile(r"^(?:t|man_track|mask)(\d+)\.tiff?$")


def frame_files(folder: Path, prefix: str) -> list[Path]:
    """Frame files ``<prefix>NNN.tif`` sorted by frame index; frames must be 0..T-1 without holes."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"folder {folder} does not exist")
    files = []
    for p in folder.iterdir():
        m = _FRAME_RE.match(p.name)
        if m and p.name.startswith(prefix) and (prefix != "t" or p.name[1].isdigit()):
            files.append((int(m.group(1)), p))
    if not files:
        raise InputError(f"folder {folder} holds no {prefix}NNN.tif frames")
    files.sort()
    idx = [i for i, _ in files]
    if idx != list(range(len(idx))):
        missing = sorted(set(range(max(idx) + 1)) - set(idx))
        raise InputError(f"folder {folder}: frames are not consecutive from 0 (missing {missing[:5]})")
    return [p for _, p in files]


def read_tiff(path: Path) -> np.ndarray:
    try:
        return tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types for truncated/corrupt files
        raise InputError(f"cannot read TIFF {path}: {exc}") from exc


def check_frame_shapes(files: list[Path], shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """Read every frame once and check that all share one 2D/3D shape (``shape`` if given)."""
    first = read_tiff(files[0]).shape if shape is None else shape
    if len(first) not in (2, 3):
        raise InputError(f"{files[0]}: expected a 2D or 3D frame, got shape {first}")
    for f in files:
        s = read_tiff(f).shape
        if s != first:
            what = "frame 0" if shape is None else "the masks"
            raise InputError(f"{f}: frame shape {s} differs from {what} ({first})")
    return first


def read_stack(files: list[Path], *, labels: bool) -> np.ndarray:
    """Read frames into one (T, [Z,] Y, X) array, checking shapes (and integer dtype for labels)."""
    first = read_tiff(files[0])
    if first.ndim not in (2, 3):
        raise InputError(f"{files[0]}: expected a 2D or 3D frame, got shape {first.shape}")
    if labels and not np.issubdtype(first.dtype, np.integer):
        raise InputError(f"{files[0]}: label masks must be integers, got {first.dtype}")
    stack = np.empty((len(files),) + first.shape, dtype=first.dtype)
    stack[0] = first
    for i, f in enumerate(files[1:], start=1):
        img = read_tiff(f)
        if img.shape != first.shape:
            raise InputError(f"{f}: frame {i} has shape {img.shape}, frame 0 has {first.shape}")
        if labels and not np.issubdtype(img.dtype, np.integer):
            raise InputError(f"{f}: label masks must be integers, got {img.dtype}")
        stack[i] = img
    if labels and stack.min() < 0:
        raise InputError(f"{files[0].parent}: label masks contain negative values")
    if labels:
        check_label_range(stack, files)
    return stack


def check_label_range(stack: np.ndarray, where: list[Path] | Path) -> None:
    """Refuse a label no frame could hold (more labels than a frame has pixels) before anything
    sized by the largest label is allocated: CTC labels number objects, and a stray value
    like 4,000,000,000 would otherwise ask for a 30 GiB table."""
    if stack.size == 0:
        return
    limit = int(np.prod(stack.shape[1:]))
    top = stack.reshape(len(stack), -1).max(axis=1)
    bad = np.flatnonzero(top > limit)
    if len(bad):
        t = int(bad[0])
        name = where[t] if isinstance(where, list) else f"{where} frame {t}"
        raise InputError(
            f"{name}: label {int(top[t])} exceeds the {limit} pixels a frame of shape "
            f"{stack.shape[1:]} holds; labels number objects (renumber them from 1)"
        )


@dataclass(frozen=True)
class LabelFlaws:
    """Objects real annotations hold that are not cells as drawn: a label in more than one
    connected piece (a stray fragment apart from its body) and 1-pixel objects. Kept as they
    are (they are the annotation), counted and warned about."""

    fragmented: int
    one_pixel: int
    first_fragmented: tuple[int, int] | None  # (frame, label)
    first_one_pixel: tuple[int, int] | None

    def warnings(self, where: object, min_area: int = 1) -> list[str]:
        """One line per kind of flaw; ``min_area`` > 1: 1-pixel objects are dropped, not kept."""
        out = []
        if self.fragmented:
            t, lab = self.first_fragmented or (0, 0)
            out.append(
                f"{where}: {self.fragmented} object(s) in more than one piece (stray fragments; first: label {lab} "
                f"in frame {t}); kept as annotated, their centre is that of all their pixels"
            )
        if self.one_pixel:
            t, lab = self.first_one_pixel or (0, 0)
            fate = f"dropped (below --min-area {min_area})" if min_area > 1 else "kept as annotated"
            out.append(f"{where}: {self.one_pixel} 1-pixel object(s) (first: label {lab} in frame {t}); {fate}")
        return out

    def to_json(self) -> dict[str, int]:
        return {"fragmented_objects": self.fragmented, "one_pixel_objects": self.one_pixel}


def label_flaws(stack: np.ndarray) -> LabelFlaws:
    """Count fragmented and 1-pixel objects of a (T, [Z,] Y, X) label stack, one pass a frame
    (pixels of one label touching on a face, edge or corner are one piece)."""
    from skimage.measure import label as components

    fragmented = one_pixel = 0
    first_frag: tuple[int, int] | None = None
    first_pix: tuple[int, int] | None = None
    for t, frame in enumerate(stack):
        if not frame.any():
            continue
        flat = frame.ravel()
        counts = np.bincount(flat)
        single = np.flatnonzero(counts[1:] == 1) + 1
        if len(single):
            one_pixel += len(single)
            first_pix = first_pix or (t, int(single[0]))
        comp = components(frame, background=0, connectivity=frame.ndim).ravel()
        if int(comp.max()) == int(np.count_nonzero(counts[1:])):  # one piece per label: the usual case
            continue
        fg = flat != 0
        pairs = np.unique(np.stack([flat[fg].astype(np.int64), comp[fg].astype(np.int64)]), axis=1)
        labs, pieces = np.unique(pairs[0], return_counts=True)
        split = labs[pieces > 1]
        if len(split):
            fragmented += len(split)
            first_frag = first_frag or (t, int(split[0]))
    return LabelFlaws(fragmented, one_pixel, first_frag, first_pix)


def read_man_track(path: Path) -> np.ndarray:
    """The lineage table ``(K, 4)``: label, start, end, parent (0 = none)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"lineage file {path} does not exist")
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4 or not all(p.lstrip("-").isdigit() for p in parts):
            raise InputError(f"{path}:{lineno}: expected 'label start end parent' integers, got {line!r}")
        rows.append([int(p) for p in parts])
    tracks = np.array(rows, dtype=np.int64).reshape(-1, 4)
    if len(tracks) and (tracks[:, 0] <= 0).any():
        raise InputError(f"{path}: track labels must be positive")
    if len(np.unique(tracks[:, 0])) != len(tracks):
        raise InputError(f"{path}: a track label is listed twice")
    negative = tracks[:, 1:] < 0
    if negative.any():
        row, col = (int(i) for i in np.argwhere(negative)[0])
        what = ("starts at frame", "ends at frame", "names parent")[col]
        raise InputError(
            f"{path}: track {tracks[row, 0]} {what} {tracks[row, col + 1]}: frames count from 0 and parent 0 means none"
        )
    bad = tracks[:, 1] > tracks[:, 2]
    if bad.any():
        raise InputError(f"{path}: track {tracks[bad][0, 0]} ends before it starts")
    return tracks


def check_lineage(
    masks: np.ndarray, tracks: np.ndarray, where: Path, counts: Sequence[np.ndarray] | None = None
) -> None:
    """The masks and the lineage table must agree exactly (CTC rules). ``counts``: the frames'
    pixels per label (:func:`label_counts`), when the caller has them already."""
    known = set(tracks[:, 0].tolist())
    unknown_parent = tracks[(tracks[:, 3] != 0) & ~np.isin(tracks[:, 3], tracks[:, 0])]
    if len(unknown_parent):
        raise InputError(f"{where}: track {unknown_parent[0, 0]} names unknown parent {unknown_parent[0, 3]}")
    late = tracks[tracks[:, 3] != 0]
    if len(late):
        end_of = dict(zip(tracks[:, 0].tolist(), tracks[:, 2].tolist()))
        for lab, start, _end, parent in late.tolist():
            if end_of[parent] >= start:
                raise InputError(
                    f"{where}: track {lab} starts at frame {start} but its parent {parent} "
                    f"lives until frame {end_of[parent]}"
                )
    if len(tracks) and tracks[:, 2].max() >= len(masks):
        bad = tracks[tracks[:, 2] >= len(masks)][0]
        raise InputError(f"{where}: track {bad[0]} ends at frame {bad[2]} but there are only {len(masks)} frames")
    span = {int(k): (int(s), int(e)) for k, s, e, _ in tracks.tolist()}
    for t in range(len(masks)):
        if counts is not None:
            present = (np.flatnonzero(counts[t][1:]) + 1).tolist()
        else:
            present = frame_labels(masks[t]).tolist()
        for lab in present:
            if lab not in known:
                raise InputError(f"{where}: label {lab} in frame {t} is not in man_track.txt")
            s, e = span[lab]
            if not s <= t <= e:
                raise InputError(f"{where}: label {lab} in frame {t} lies outside its span {s}-{e}")
        expected = [k for k, (s, e) in span.items() if s <= t <= e]
        if len(expected) != len(present):
            absent = sorted(set(expected) - set(present))
            raise InputError(f"{where}: label {absent[0]} is absent from frame {t} inside its span {span[absent[0]]}")


def frame_labels(frame: np.ndarray) -> np.ndarray:
    """The sorted nonzero labels of one label image. A count per label value (one linear pass)
    where the labels are small non-negative integers, as checked CTC masks are (no label above
    the frame's pixel count); a sort only for other values."""
    flat = frame.ravel()
    if flat.size == 0:
        return np.zeros(0, np.int64)
    lo, hi = int(flat.min()), int(flat.max())
    if lo >= 0 and hi <= max(flat.size, 1 << 16):
        present = np.flatnonzero(np.bincount(flat.astype(np.intp, copy=False), minlength=1))
    else:
        present = np.unique(flat)
    return present[present != 0]


def label_counts(masks: np.ndarray) -> list[np.ndarray]:
    """Pixels per label value (index = label), frame by frame, of masks that passed
    :func:`check_label_range` (so no table is longer than a frame has pixels)."""
    return [np.bincount(f.ravel().astype(np.intp, copy=False), minlength=1) for f in masks]


def write_man_track(path: Path, tracks: np.ndarray) -> None:
    lines = [f"{a} {b} {c} {d}" for a, b, c, d in np.asarray(tracks, np.int64).reshape(-1, 4).tolist()]
    Path(path).write_text("\n".join(lines) + ("\n" if lines else ""))


def write_masks(folder: Path, masks: np.ndarray, prefix: str = "mask") -> None:
    """Write ``prefixTTT.tif`` label images (uint16 if the labels fit, else uint32)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if masks.max(initial=0) < 2**16 else np.uint32
    digits = max(3, len(str(len(masks) - 1)))
    for t, frame in enumerate(masks):
        tifffile.imwrite(folder / f"{prefix}{t:0{digits}d}.tif", frame.astype(dtype, copy=False), compression="zlib")
