"""Write any stored solution as a CTC result folder: ``maskTTT.tif`` and ``res_track.txt``.

Tracks are split at gaps when a solution is materialised (see ``trackdb.solutions``), so the
table written here is already what the CTC evaluation expects: a link that skips frames starts
a new track whose parent is the track before the gap.

An export is complete or refused: a folder that holds anything is refused unless
``overwrite``, which first removes what an export owns there (``mask*.tif`` and
``res_track.txt``; other files stay), so stale masks of a longer movie never sit beside a new
``res_track.txt``. Everything is rendered before the folder is touched.
"""

from __future__ import annotations

import re
from pathlib import Path

from trackdb.errors import InputError
from trackdb.io import ctc
from trackdb.io.render import render_labels
from trackdb.store.core import Store
from trackdb.store.solutions import solution_tracks

_OWNED = re.compile(r"^(mask\d+\.tiff?|res_track\.txt)$")


def owned_files(outdir: Path) -> list[Path]:
    """The files of ``outdir`` that a CTC export writes (and ``overwrite`` removes)."""
    return sorted(p for p in outdir.iterdir() if p.is_file() and _OWNED.match(p.name))


def check_outdir(outdir: Path, overwrite: bool) -> None:
    """Refuse a file, or a folder with anything in it unless ``overwrite``."""
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"{outdir} is a file, not a folder for CTC results")
    if outdir.is_dir() and any(outdir.iterdir()) and not overwrite:
        n = len(owned_files(outdir))
        what = f"an earlier CTC export ({n} files)" if n else "other files"
        raise InputError(
            f"{outdir} is not empty (it holds {what}): choose an empty folder, or pass --overwrite "
            "to replace its mask*.tif and res_track.txt"
        )


def export_ctc(
    store: Store, outdir: Path, movie_name: str, solution: str | int | None = None, *, overwrite: bool = False
) -> Path:
    """Write a solution (default: the current one) to ``outdir`` (see the module docstring)."""
    outdir = Path(outdir)
    movie = store.movie(movie_name)
    sid = store.solution_id(movie, solution)
    check_outdir(outdir, overwrite)
    labels = render_labels(store, movie, sid)
    tracks = solution_tracks(store, sid)
    if outdir.is_dir():
        for old in owned_files(outdir):
            old.unlink()
    ctc.write_masks(outdir, labels, prefix="mask")
    ctc.write_man_track(outdir / "res_track.txt", tracks)
    return outdir
