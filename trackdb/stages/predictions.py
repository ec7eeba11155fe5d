"""Stages that use the network's predictions: predict to Zarr, candidates from clusters, and the
EmbedTrack baseline (clustering + backward majority-vote linking) as a solution.

The raw frames stay where the movie was imported from (``movie.uri``); predictions go to the
movie's Zarr group (``movie.zarr_uri``, set by the first ``predict``), one frame chunk at a time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trackdb.errors import InputError, NotFoundError
from trackdb.io.import_ctc import write_lineage
from trackdb.io.pixels import MoviePixels
from trackdb.stages.candidates import ingest_frames
from trackdb.store import runs
from trackdb.store.core import Movie, Store
from trackdb.store.runs import CandidatesParams, InferenceParams, RunKind, SolveParams


def raw_frames(movie: Movie) -> MoviePixels:
    """The movie's raw frames, read one at a time (never all at once), or a clear error."""
    if not movie.uri:
        raise NotFoundError(f"movie {movie.name!r} has no raw frames (imported without them)")
    pixels = MoviePixels(movie)
    if pixels.source != "raw":
        raise InputError(f"movie {movie.name!r}: its raw frames are not at {movie.uri} any more")
    return pixels


def default_zarr(store: Store, movie: Movie) -> Path:
    db_path = store.sqlite_path
    base = db_path.parent if db_path else Path.cwd()
    return base / f"{movie.name}.zarr"


def run_predict(
    store: Store,
    movie_name: str,
    model_dir: Path,
    *,
    zarr_path: Path | None = None,
    tta: bool = False,
    tile: int = 1024,
    overlap: int = 128,
    batch: int = 4,
    device: str | None = None,
) -> dict[str, Any]:
    """Predict every frame into the movie's Zarr group; re-runs skip finished frames."""
    from inference.predict import predict_movie

    movie = store.movie(movie_name)
    frames = raw_frames(movie)
    target = Path(zarr_path or movie.zarr_uri or default_zarr(store, movie))
    params = InferenceParams(
        model=str(Path(model_dir).resolve()), zarr=str(target.resolve()), tta=tta, tile=tile, overlap=overlap
    )
    with runs.record(store, movie.id, RunKind.INFERENCE, params, resume=True):
        result = predict_movie(
            frames.frame,
            target,
            model_dir,
            n_frames=len(frames),
            tile=tile,
            overlap=overlap,
            tta=tta,
            batch=batch,
            device=device,
            spacing=movie.spacing,
        )
        store.set_zarr_uri(movie.id, str(target.resolve()))
    return {"zarr": str(target), **result}


def _zarr_of(movie: Movie) -> str:
    if not movie.zarr_uri:
        raise NotFoundError(f"movie {movie.name!r} has no predictions: run `trackdb predict` first")
    return movie.zarr_uri


def model_min_size(zarr_path: str, default: int = 10) -> int:
    """The smallest object the predictions' model was trained to keep.

    Read from the Zarr attributes (``min_object_size``, written by ``predict``), else from the
    config of the model folder they name. Older predictions name it by the path ``predict`` was
    given, possibly relative to the folder it ran in: that path is resolved against the Zarr
    group's folder and its parents, and accepted only where the weights have the recorded
    model id, so the result never depends on the working directory. A named model that cannot
    be found is refused (the caller may pass the size); ``default`` only when none is named.
    """
    import zarr

    from inference.model_io import model_id, read_config

    try:
        attrs = dict(zarr.open_group(zarr_path, mode="r")["pred"].attrs)
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(f"cannot read the predictions' attributes in {zarr_path}: {exc}") from exc
    stored = attrs.get("min_object_size")
    if isinstance(stored, int):
        return stored
    named = attrs.get("model_dir")
    if not isinstance(named, str) or not named:
        return default
    path = Path(named)
    tries = [path] if path.is_absolute() else [base / path for base in Path(zarr_path).resolve().parents]
    for folder in tries:
        try:
            if attrs.get("model_id") in (None, model_id(folder)):
                return int(read_config(folder).get("min_object_size", default))
        except (OSError, ValueError):
            continue
    raise InputError(
        f"the predictions in {zarr_path} come from model folder {named!r}, which cannot be found "
        f"{'' if path.is_absolute() else 'from the Zarr group or its parent folders '}with model id "
        f"{attrs.get('model_id')}: pass --min-size, or run `trackdb predict` again"
    )


def run_candidates_from_predictions(
    store: Store,
    movie_name: str,
    *,
    min_object_size: int | None = None,
    fg_thresh: float = 0.5,
    merges: bool = True,
    progress: bool = True,
) -> int:
    """Clusters of every frame as candidates, with mean-mask embeddings and voted previous centres.

    ``min_object_size`` defaults to the model's own (its config), else 10 pixels. ``merges``
    adds the union of touching cluster pairs as competing candidates (:mod:`inference.merges`).
    """
    from inference.candidates_from_pred import candidates_from_zarr

    movie = store.movie(movie_name)
    zarr_path = _zarr_of(movie)
    min_object_size = model_min_size(zarr_path) if min_object_size is None else min_object_size
    params = CandidatesParams(
        source=zarr_path, kind="predictions", min_object_size=min_object_size, fg_thresh=fg_thresh, merges=merges
    )
    with runs.record(store, movie.id, RunKind.CANDIDATES, params, resume=True) as run_id:
        total = ingest_frames(
            store,
            movie,
            run_id,
            lambda t: candidates_from_zarr(
                zarr_path, t, min_object_size=min_object_size, fg_thresh=fg_thresh, merges=merges
            )[0],
            "cluster",
            progress,
        )
        if total == 0:
            raise InputError(f"{zarr_path}: the predictions hold no cells in any frame")
    return run_id


def run_embedtrack(store: Store, movie_name: str, *, min_object_size: int | None = None, fg_thresh: float = 0.5) -> int:
    """EmbedTrack's own clustering and linking as a solution (the baseline the joint solver beats)."""
    from inference.embedtrack_link import embedtrack_solve

    movie = store.movie(movie_name)
    zarr_path = _zarr_of(movie)
    min_object_size = model_min_size(zarr_path) if min_object_size is None else min_object_size
    params = SolveParams(method="embedtrack", zarr=zarr_path, min_object_size=min_object_size, fg_thresh=fg_thresh)
    with runs.record(store, movie.id, RunKind.SOLVE, params) as run_id:
        labels, tracks = embedtrack_solve(zarr_path, min_object_size=min_object_size, fg_thresh=fg_thresh)
        with store.begin() as c:
            _, _, sid = write_lineage(
                store, c, movie.id, run_id, np.asarray(labels), tracks, "cluster", "embedtrack", spacing=movie.spacing
            )
    return sid
