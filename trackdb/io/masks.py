"""A single mask drawn by a curator: one TIFF of a frame's shape, non-zero = the cell."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trackdb.errors import InputError


def read_mask(path: Path | str) -> np.ndarray:
    """The mask as a boolean array; a missing, unreadable or multi-frame file is refused."""
    import tifffile

    path = Path(path)
    if not path.is_file():
        raise InputError(f"mask file {path} does not exist")
    try:
        data = np.asarray(tifffile.imread(path))
    except Exception as exc:  # tifffile raises many kinds for a file that is not a TIFF
        raise InputError(
            f"cannot read mask {path} as a TIFF: {str(exc).splitlines()[0] if str(exc) else exc!r}"
        ) from exc
    data = np.squeeze(data)
    if data.ndim not in (2, 3):
        raise InputError(f"mask {path} has shape {data.shape}; give one frame (Y, X) or (Z, Y, X)")
    return data != 0
