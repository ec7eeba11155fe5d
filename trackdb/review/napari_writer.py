"""napari writer (npe2): a Labels layer painted in napari goes back into the store as edits.

The layer must come from the trackdb reader (its ``metadata["trackdb"]`` names the movie and the
solution it was painted from). The writer renders that solution again, finds in every frame the
labels whose pixels changed, and turns each into an edit on that solution (``based_on``, so a
solution re-solved meanwhile is a conflict, not a silent overwrite):

* a label whose pixels are all gone → ``delete_cell`` of the cell it was;
* a label that is new or whose pixels changed → ``add_cell`` of each connected piece (the cell
  it was, and any other candidate the piece covers, is replaced);

then re-solves. Labels are track ids, so painting with an existing track's id adds a cell, and
the re-solve decides its links like any other cell's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from trackdb.errors import InputError
from trackdb.io.napari_reader import split_target
from trackdb.io.render import render_labels
from trackdb.stages import edits
from trackdb.stages.resolve import resolve
from trackdb.store.core import Store
from trackdb.store.frames import graph_frames


@dataclass(frozen=True)
class LabelChange:
    """Label ``label`` of frame ``t``: its new pixels (frame-shaped), or None when it is gone."""

    t: int
    label: int
    mask: np.ndarray | None


def label_changes(before: np.ndarray, after: np.ndarray) -> list[LabelChange]:
    """Every (frame, label) whose pixels differ between two ``(T, [Z,] Y, X)`` label movies."""
    if before.shape != after.shape:
        raise InputError(f"the labels have shape {after.shape}, the movie's are {before.shape}")
    out = []
    for t in range(len(before)):
        diff = before[t] != after[t]
        if not diff.any():
            continue
        touched = np.union1d(before[t][diff], after[t][diff])
        for label in touched[touched != 0].tolist():
            mask = after[t] == label
            out.append(LabelChange(t, int(label), mask if mask.any() else None))
    return out


def write_edits(store: Store, movie_name: str, solution_id: int, labels: np.ndarray, author: str | None) -> list[int]:
    """Append the edits that turn solution ``solution_id``'s labels into ``labels``; their ids."""
    movie = store.movie(movie_name)
    data = np.asarray(labels)
    if not np.issubdtype(data.dtype, np.integer):
        raise InputError(f"labels must be integers, got {data.dtype}")
    before = render_labels(store, movie, solution_id)
    changes = label_changes(before, data)
    nodes = graph_frames(store, movie.name, solution_id).nodes
    cell_of = {(int(t), int(k)): int(n) for t, k, n in zip(nodes["t"], nodes["track_id"], nodes["node_id"])}
    made = []
    for ch in changes:
        old = cell_of.get((ch.t, ch.label))
        if ch.mask is not None:
            pieces, n = ndimage.label(ch.mask)
            for k in range(1, n + 1):
                made.append(edits.add_cell(store, movie.name, ch.t, pieces == k, author=author, based_on=solution_id))
        if old is not None and (ch.mask is None or not _replaces(before[ch.t] == ch.label, ch.mask)):
            made.append(edits.delete_cell(store, movie.name, old, author=author, based_on=solution_id))
    return made


def _replaces(old: np.ndarray, new: np.ndarray) -> bool:
    """Whether ``add_cell`` of ``new`` replaces the cell ``old`` (its overlap rule)."""
    inter = int(np.count_nonzero(old & new))
    return inter > 0 and inter >= edits.REPLACE_OVERLAP * min(int(old.sum()), int(new.sum()))


def write_labels(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """npe2 writer hook: save an edited Labels layer as edits of the store ``path`` and re-solve."""
    meta = (attributes.get("metadata") or {}).get("trackdb")
    if not meta or meta.get("solution_id") is None:
        raise InputError(
            "this Labels layer was not opened from a trackdb store; open the store with the trackdb reader"
        )
    url, movie = split_target(path)
    with Store(url) as store:
        name = movie or str(meta["movie"])
        if store.movie(name).id != meta.get("movie_id", store.movie(name).id):
            raise InputError(f"the layer shows movie {meta['movie']!r}, not {name!r} of {path}")
        if write_edits(store, name, int(meta["solution_id"]), data, None):
            resolve(store, name)
    return [str(path)]
