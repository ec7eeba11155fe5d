"""A track's lineage tree as a picture (PNG or SVG): time left to right, one row per track of
the family, a division drawn where a mother's row forks into its daughters' and coloured by how
probable it is (red doubtful → green sure, from the solution's latest uncertainty run; grey when
none was run). ``trackdb plot lineage`` and the review page's
download link call :func:`lineage_figure`; the page's inline tree shares its layout
(:mod:`trackdb.io.lineage_layout`).
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from trackdb.errors import InputError, NotFoundError
from trackdb.io.lineage_layout import leaf_rows
from trackdb.store import queries, runs
from trackdb.store.core import Store
from trackdb.store.lineage import division_probabilities

FORMATS = ("png", "svg")
CMAP = "RdYlGn"
UNSCORED = "0.55"  # grey: divisions of a solution without an uncertainty run


def _rows(tree: pd.DataFrame) -> dict[int, float]:
    parents = [None if p is None or pd.isna(p) else int(p) for p in tree["parent_track_id"].tolist()]
    return leaf_rows(zip(tree["track_id"].astype(int).tolist(), parents))


def lineage_figure(
    store: Store,
    movie: str,
    track_id: int,
    *,
    solution: str | int | None = None,
    fmt: str = "png",
    dpi: int = 120,
) -> bytes:
    """The lineage tree of the family ``track_id`` belongs to, as PNG or SVG bytes."""
    if fmt not in FORMATS:
        raise InputError(f"unknown picture format {fmt!r}; choose {' or '.join(FORMATS)}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    m = store.movie(movie)
    sid = store.solution_id(m, solution)
    tree = queries.lineage_tree(store, m.name, int(track_id), sid)
    try:
        unc_run = runs.latest_uncertainty_run(store, m) if sid == m.current_solution_id else None
    except NotFoundError:
        unc_run = None
    div_p = division_probabilities(store, sid, unc_run) if unc_run is not None else {}
    rows = _rows(tree)
    span = tree[["start_t", "end_t"]].to_numpy()
    height = max(2.0, 0.32 * len(rows) + 1.2)
    fig, ax = plt.subplots(figsize=(8.0, height))
    cmap = plt.get_cmap(CMAP)
    norm = Normalize(0.0, 1.0)
    start = dict(zip(tree["track_id"].astype(int).tolist(), tree["start_t"].astype(int).tolist()))
    end = dict(zip(tree["track_id"].astype(int).tolist(), tree["end_t"].astype(int).tolist()))
    parent_of = {
        int(t): int(p)
        for t, p in zip(tree["track_id"].tolist(), tree["parent_track_id"].tolist())
        if p is not None and not pd.isna(p) and int(p) in start
    }
    for tid in start:
        y = rows[tid]
        lw = 3.0 if tid == int(track_id) else 1.6
        ax.plot([start[tid], end[tid]], [y, y], color="0.15", lw=lw, solid_capstyle="butt", zorder=2)
        ax.text(start[tid] + 0.2, y - 0.12, str(tid), va="bottom", fontsize=8, zorder=3)
        if tid in parent_of:
            mother = parent_of[tid]
            ax.plot([end[mother], start[tid]], [rows[mother], y], color="0.15", lw=1.0, zorder=1)
    for tid in start:
        if sum(1 for m in parent_of.values() if m == tid) != 2:
            continue
        p = div_p.get(tid)
        color = UNSCORED if p is None else cmap(norm(p))
        ax.scatter([end[tid]], [rows[tid]], s=70, color=color, edgecolor="0.1", zorder=4)
        if p is not None:
            ax.text(end[tid], rows[tid] - 0.32, f"{p:.2f}", ha="center", fontsize=7, zorder=4)
    ax.set_xlabel("frame")
    ax.set_yticks([])
    lo, hi = int(span.min()), int(span.max())
    ax.set_xlim(lo - 1, hi + 3)
    ax.set_ylim(max(rows.values()) + 0.8, -0.8)
    title = f"{m.name}: lineage of track {int(track_id)} (solution {sid})"
    ax.set_title(title if unc_run is not None else title + ", divisions unscored", fontsize=10)
    if unc_run is not None:
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=norm)
        fig.colorbar(sm, ax=ax, fraction=0.04, pad=0.02, label="division probability")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def write_lineage(
    store: Store, movie: str, track_id: int, path: Path | str, *, solution: str | int | None = None
) -> Path:
    """:func:`lineage_figure` written to ``path`` (its suffix chooses PNG or SVG)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise InputError(f"{path}: the picture must end in .png or .svg")
    if not path.parent.exists():
        raise InputError(f"cannot write {path}: folder {path.parent} does not exist")
    data = lineage_figure(store, movie, track_id, solution=solution, fmt=fmt)
    path.write_bytes(data)
    return path
