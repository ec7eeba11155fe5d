"""Import a CTC sequence into the store: movie, nodes, lineage links and the ``gt`` solution.

Everything is read and validated before the first write, and the writes share one transaction,
so bad input leaves the database exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.edges import mask_iou
from inference.regions import candidates_from_labels
from inference.types import CandidateEdges
from trackdb.errors import InputError
from trackdb.io import ctc
from trackdb.store import ingest, runs
from trackdb.store.core import Connection, Store
from trackdb.store.runs import ImportParams, RunKind


@dataclass(frozen=True)
class ImportResult:
    movie_id: int
    run_id: int
    n_frames: int
    n_nodes: int
    n_edges: int
    solution_id: int | None
    spacing: tuple[float, ...] = ()
    warnings: tuple[str, ...] = ()


def check_spacing(spacing: tuple[float, ...] | None, shape: tuple[int, ...]) -> tuple[float, ...]:
    """The physical size of a pixel per axis ([z,] y, x) for frames of ``shape``; ones if None.

    Refused: a value that is not a finite number > 0, and a count other than the frames' axes
    (a 2D spacing on a 3D movie would silently count z slices as pixels)."""
    ndim = len(shape)
    if spacing is None:
        return (1.0,) * ndim
    values = tuple(spacing)
    for v in values:
        number = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        if not number or not np.isfinite(v) or v <= 0:
            raise InputError(f"--spacing values must be finite numbers > 0, got {','.join(map(str, values))}")
    if len(values) != ndim:
        axes = "z,y,x" if ndim == 3 else "y,x"
        raise InputError(
            f"--spacing has {len(values)} value(s) but the frames are {ndim}D (shape {tuple(shape)}): "
            f"give {ndim} ({axes})"
        )
    return tuple(float(v) for v in values)


def lineage_links(t: np.ndarray, label: np.ndarray, tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local (source, target) index pairs implied by a CTC lineage.

    Consecutive frames of a track are linked, and the last node of a parent to the first node of
    each child (a gap of more than one frame, or a single daughter, are both just such links).
    """
    key = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(t.tolist(), label.tolist()))}
    src, dst = [], []
    for lab, start, end, parent in tracks.tolist():
        for f in range(start, end):
            src.append(key[(f, lab)])
            dst.append(key[(f + 1, lab)])
        if parent:
            pend = int(tracks[tracks[:, 0] == parent][0, 2])
            src.append(key[(pend, parent)])
            dst.append(key[(start, lab)])
    return np.array(src, np.int64), np.array(dst, np.int64)


def import_ctc(
    store: Store,
    dataset: Path,
    seq: str,
    movie: str,
    *,
    masks_only: bool = False,
    no_gt: bool = False,
    experiment: str | None = None,
    spacing: tuple[float, ...] | None = None,
) -> ImportResult:
    """Import ``DATASET/SEQ`` (raw, optional) and ``DATASET/SEQ_GT/TRA`` (masks + lineage).

    ``spacing``: the physical size of a pixel per axis ([z,] y, x), stored on the movie (links
    and costs measure distances with it). Masks with stray fragments or 1-pixel objects are
    imported as annotated; they are counted in the import run's summary and in ``warnings``.
    """
    dataset = Path(dataset)
    if not dataset.is_dir():
        raise InputError(f"dataset folder {dataset} does not exist")
    raw_dir, gt_dir = dataset / seq, dataset / f"{seq}_GT" / "TRA"
    raw_files = ctc.frame_files(raw_dir, "t") if (raw_dir.is_dir() or no_gt) else None
    if no_gt:
        assert raw_files is not None
        shape, n_frames, masks, tracks = ctc.check_frame_shapes(raw_files), len(raw_files), None, None
    else:
        masks = ctc.read_stack(ctc.frame_files(gt_dir, "man_track"), labels=True)
        tracks = ctc.read_man_track(gt_dir / "man_track.txt")
        ctc.check_lineage(masks, tracks, gt_dir)
        shape, n_frames = masks.shape[1:], len(masks)
        if raw_files is not None:
            if len(raw_files) != n_frames:
                raise InputError(f"{raw_dir} has {len(raw_files)} frames but {gt_dir} has {n_frames}")
            ctc.check_frame_shapes(raw_files, shape)
    sp = check_spacing(spacing, tuple(int(s) for s in shape))
    flaws = ctc.label_flaws(masks) if masks is not None else None
    warnings = tuple(flaws.warnings(gt_dir)) if flaws is not None else ()

    with store.begin() as conn:
        movie_id = store.add_movie(
            conn,
            movie,
            tuple(int(s) for s in shape),
            n_frames,
            uri=str(raw_dir.resolve()) if raw_files else None,
            experiment=experiment,
            spacing=sp,
        )
        run_id = runs.record_finished(
            conn,
            movie_id,
            RunKind.IMPORT,
            ImportParams(dataset=str(dataset.resolve()), seq=seq, masks_only=masks_only, no_gt=no_gt),
        )
        summary: dict[str, object] = {"spacing": list(sp)}
        if flaws is not None:
            summary.update(flaws.to_json(), warnings=list(warnings))
        runs.set_summary(conn, run_id, summary)
        if masks is None:
            return ImportResult(movie_id, run_id, n_frames, 0, 0, None, sp, warnings)
        if masks_only:
            cands = candidates_from_labels(masks)
            ingest.insert_nodes(conn, movie_id, run_id, cands, "labels")
            return ImportResult(movie_id, run_id, n_frames, len(cands), 0, None, sp, warnings)
        assert tracks is not None
        n_nodes, n_edges, sid = write_lineage(store, conn, movie_id, run_id, masks, tracks, "gt", "gt", spacing=sp)
    return ImportResult(movie_id, run_id, n_frames, n_nodes, n_edges, sid, sp, warnings)


def write_lineage(
    store: Store,
    conn: Connection,
    movie_id: int,
    run_id: int,
    masks: np.ndarray,
    tracks: np.ndarray,
    source: str,
    name: str,
    spacing: tuple[float, ...] | None = None,
) -> tuple[int, int, int]:
    """Store CTC-style label images + lineage table as nodes, links and a current solution.

    Used for imported ground truth and for results that arrive as a CTC lineage (EmbedTrack
    linking); node labels are the track ids; link distances in physical units (``spacing``,
    pixels if None). Returns (nodes, links, solution id).
    """
    cands = candidates_from_labels(masks)
    node_ids = ingest.insert_nodes(conn, movie_id, run_id, cands, source)
    src, dst = lineage_links(cands.t, cands.label, tracks)
    cen = np.asarray(cands.centroid) * np.asarray(spacing or (1.0,) * cands.ndim)
    edges = CandidateEdges(
        source=src,
        target=dst,
        dt=cands.t[dst] - cands.t[src],
        distance=np.linalg.norm(cen[dst] - cen[src], axis=1),
        iou=mask_iou(cands.bbox, cands.masks, cands.area, src, dst),
    )
    edge_ids = ingest.insert_edges(conn, movie_id, run_id, node_ids, cands.t, edges)
    sid = ingest.insert_solution(
        conn,
        run_id=run_id,
        movie_id=movie_id,
        node_ids=node_ids,
        node_t=cands.t,
        track_ids=cands.label,
        edge_ids=edge_ids,
        edge_source_ids=node_ids[src],
        edge_target_ids=node_ids[dst],
        tracks=tracks,
        status="optimal",
        name=name,
    )
    store.set_current_solution(conn, movie_id, sid)
    return len(cands), len(src), sid
