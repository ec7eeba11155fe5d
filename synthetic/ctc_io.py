"""Write a synthetic movie as a Cell Tracking Challenge dataset folder.

``DATASET/SEQ/tTTT.tif`` (raw-like intensity), ``DATASET/SEQ_GT/TRA/man_trackTTT.tif`` and
``man_track.txt`` (``label start end parent``), and ``DATASET/spacing.json`` (the physical pixel
size per axis, which CTC folders do not carry). Frame numbers have at least three digits.
"""

from __future__ import annotations

import json
from pathlib import Path

import tifffile

from .movies import SyntheticMovie
from .render import raw_intensity


def _frame_name(prefix: str, t: int, n_frames: int) -> str:
    return f"{prefix}{t:0{max(3, len(str(n_frames - 1)))}d}.tif"


def write_ctc(movie: SyntheticMovie, dataset: Path, seq: str = "01", *, raw: bool = True, seed: int = 0) -> Path:
    """Write ``movie`` under ``dataset`` (created; existing frames are overwritten); returns ``dataset``."""
    dataset = Path(dataset)
    tra = dataset / f"{seq}_GT" / "TRA"
    tra.mkdir(parents=True, exist_ok=True)
    n_frames = len(movie.masks)
    for t, frame in enumerate(movie.masks):
        tifffile.imwrite(tra / _frame_name("man_track", t, n_frames), frame, compression="zlib")
    lines = [" ".join(str(v) for v in row) for row in movie.tracks.tolist()]
    (tra / "man_track.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    if raw:
        images = raw_intensity(movie.masks, seed)
        raw_dir = dataset / seq
        raw_dir.mkdir(parents=True, exist_ok=True)
        for t, img in enumerate(images):
            tifffile.imwrite(raw_dir / _frame_name("t", t, n_frames), img, compression="zlib")
    (dataset / "spacing.json").write_text(json.dumps({"spacing": list(movie.spacing)}) + "\n")
    return dataset


def read_spacing(dataset: Path) -> tuple[float, ...] | None:
    """The spacing written by :func:`write_ctc`, or None for a folder without one."""
    path = Path(dataset) / "spacing.json"
    if not path.is_file():
        return None
    return tuple(float(v) for v in json.loads(path.read_text())["spacing"])
