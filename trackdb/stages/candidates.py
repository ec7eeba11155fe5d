"""The candidates stage: candidate cells of every frame, from a probability map (the H-EMD
forest, pruned to split hypotheses) or from label images (each object one candidate).

One transaction per frame; a resumed run skips the frames it already wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from inference.forest import build_forest
from inference.hypotheses import prune_to_hypotheses
from inference.regions import candidates_from_labels
from inference.types import Candidates
from trackdb.errors import InputError
from trackdb.io.ctc import label_flaws
from trackdb.io.frame_source import Content, FrameSource
from trackdb.io.sources import check_movie_shape, check_probability, read_movie_array
from trackdb.store import ingest, runs
from trackdb.store.core import Movie, Store
from trackdb.store.runs import CandidatesParams, RunKind


def ingest_frames(
    store: Store,
    movie: Movie,
    run_id: int,
    frame: Callable[[int], Candidates],
    source: str,
    progress: bool = True,
    frames: range | None = None,
) -> int:
    """Write ``frame(t)``'s candidates for every frame (or those of ``frames``), one transaction
    per frame.

    A resumed run skips the frames it already wrote. Returns the run's candidate count.
    """
    with store.connection() as c:
        done = ingest.node_frames_done(c, run_id)
    total = len(done)
    todo = range(movie.n_frames) if frames is None else frames
    for t in tqdm(todo, desc="candidates", unit="frame", disable=not progress):
        if t in done:
            continue
        cands = frame(t)
        if len(cands):
            with store.begin() as c:
                ingest.insert_nodes(c, movie.id, run_id, cands, source)
        total += len(cands)
    return total


def check_candidates(tau: float, min_area: int) -> None:
    """The candidate parameters' rules (the CLI's and an experiment manifest's)."""
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not 0.0 < tau < 1.0:
        raise InputError(f"--tau must lie in (0, 1), got {tau!r}")
    if isinstance(min_area, bool) or not isinstance(min_area, int) or min_area < 1:
        raise InputError(f"--min-area must be an integer >= 1 (pixels), got {min_area!r}")


def frame_candidates(img: np.ndarray, t: int, content: Content, *, tau: float = 0.5, min_area: int = 10) -> Candidates:
    """One frame's candidates: every object of a label image, or the pruned H-EMD forest of a
    probability map."""
    if content is Content.PROB:
        return prune_to_hypotheses(build_forest(np.asarray(img, np.float32), t=t, tau=tau, min_area=min_area))
    return candidates_from_labels(img[None], t0=t)


def candidates_frames(
    store: Store,
    movie: Movie,
    run_id: int,
    source: FrameSource,
    frames: range,
    *,
    tau: float = 0.5,
    min_area: int = 10,
) -> None:
    """Write the candidates of ``frames``, read from ``source`` one frame at a time, under
    ``run_id`` (a frame chunk of the experiment engine); frames the run already wrote are
    skipped without being read."""
    if source.n_frames != movie.n_frames or source.shape != movie.shape:
        raise InputError(
            f"{source.path} holds {source.n_frames} frames of {source.shape}, the movie "
            f"{movie.name!r} has {movie.n_frames} of {movie.shape}"
        )
    kind = "forest" if source.content is Content.PROB else "labels"

    def frame(t: int) -> Candidates:
        return frame_candidates(source.frame(t), t, source.content, tau=tau, min_area=min_area)

    ingest_frames(store, movie, run_id, frame, kind, progress=False, frames=frames)


def run_candidates(
    store: Store,
    movie_name: str,
    *,
    prob: Path | None = None,
    labels: Path | None = None,
    tau: float = 0.5,
    min_area: int = 10,
    progress: bool = True,
) -> int:
    """Candidate forest from a probability map (or single-node trees from label images)."""
    movie = store.movie(movie_name)
    if (prob is None) == (labels is None):
        raise InputError("give exactly one of --prob or --labels")
    check_candidates(tau, min_area)
    path = Path(prob or labels)  # type: ignore[arg-type]
    params = CandidatesParams(source=str(path.resolve()), kind="prob" if prob else "labels", tau=tau, min_area=min_area)
    with runs.record(store, movie.id, RunKind.CANDIDATES, params, resume=True) as run_id:
        data = read_movie_array(path, labels=labels is not None)
        check_movie_shape(data, movie.n_frames, movie.shape, path)
        if prob is not None:
            check_probability(data, path)
        else:  # annotation flaws: warned about and counted in the run summary, not refused
            flaws = label_flaws(data)
            with store.begin() as c:
                runs.set_summary(c, run_id, {**flaws.to_json(), "warnings": flaws.warnings(path, min_area)})

        content = Content.PROB if prob is not None else Content.LABELS

        def frame(t: int) -> Candidates:
            return frame_candidates(data[t], t, content, tau=tau, min_area=min_area)

        total = ingest_frames(store, movie, run_id, frame, "forest" if prob is not None else "labels", progress)
        if total == 0:
            raise InputError(f"{path}: no candidates in any frame (is the map empty or --tau too high?)")
    return run_id
