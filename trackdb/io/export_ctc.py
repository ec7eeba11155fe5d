"""Write any stored solution as a CTC result folder: ``maskTTT.tif`` and ``res_track.txt``.

Tracks are split at gaps when a solution is materialised (see ``trackdb.solutions``), so the
table written here is already what the CTC evaluation expects: a link that skips frames starts
a new track whose parent is the track before the gap.
"""

from __future__ import annotations

from pathlib import Path

from trackdb.io import ctc
from trackdb.io.render import render_labels
from trackdb.store.core import Store
from trackdb.store.solutions import solution_tracks


def export_ctc(store: Store, outdir: Path, movie_name: str, solution: str | int | None = None) -> Path:
    movie = store.movie(movie_name)
    sid = store.solution_id(movie, solution)
    labels = render_labels(store, movie, sid)
    tracks = solution_tracks(store, sid)
    outdir = Path(outdir)
    ctc.write_masks(outdir, labels, prefix="mask")
    ctc.write_man_track(outdir / "res_track.txt", tracks)
    return outdir
