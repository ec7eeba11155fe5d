"""A tiny plate for the plate-wide queries and exports: three movies with hand-made lineages.

Each movie is drawn from a CTC track table (``label start end parent``) and one ellipse per
cell and frame, so every division, death, exit and cell cycle is known. The pipeline runs on
them as a plate would (GT masks as detections, link, joint solve, AS uncertainty); the fixture
checks that the solve recovered the drawn lineage, so the queries' expected values are the
drawing's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import tifffile

from trackdb.io.import_ctc import import_ctc
from trackdb.stages.link import run_link
from trackdb.stages.solve import run_solve
from trackdb.stages.uncertainty import run_uncertainty
from trackdb.store import Store, schema, solutions

from .conftest import PG_URL, _pg_engine, _pg_state, ellipse

Cell = Callable[[int], tuple[float, float, float, float]]  # t -> (cy, cx, ry, rx)
SHAPE = (64, 96)
N_FRAMES = 12
EXPERIMENT = "plate-1"
TIME_INTERVAL = {"A01": 0.5, "A02": 0.5, "B01": 0.25}  # hours per frame


@dataclass(frozen=True)
class PlateMovie:
    name: str
    conditions: dict[str, str | float]
    tracks: np.ndarray  # (K, 4): label, start, end, parent (0 = none)
    cells: dict[int, Cell]

    @property
    def divisions(self) -> int:
        parents = self.tracks[:, 3][self.tracks[:, 3] > 0]
        return int(sum(np.count_nonzero(parents == p) == 2 for p in np.unique(parents)))

    @property
    def cell_frames(self) -> int:
        return int((self.tracks[:, 2] - self.tracks[:, 1] + 1).sum())


def _grow(t0: int, t1: int, t: int, a: float, b: float) -> float:
    return a + (b - a) * (t - t0) / (t1 - t0)


# A01: one division (1 -> 2, 3), a death in the middle of the field (4), a cell to the end (5).
A01 = PlateMovie(
    "A01",
    {"well": "A01", "drug": "DMSO", "dose_um": 0.0},
    np.array([[1, 0, 2, 0], [2, 3, 11, 1], [3, 3, 11, 1], [4, 0, 6, 0], [5, 0, 11, 0]]),
    {
        1: lambda t: (20, 15 + 2 * t, 4, 8),
        2: lambda t: (20 - 0.7 * (t - 3), 14 + 0.5 * (t - 3), 4.5, 4.5),
        3: lambda t: (20 + 0.7 * (t - 3), 27 + 0.5 * (t - 3), 4.5, 4.5),
        4: lambda t: (45, 60, 5, 5),
        5: lambda t: (50, 20 + 0.5 * t, 5, 5),
    },
)
# A02: no division; a cell that leaves through the right border (2), one that appears late (3).
A02 = PlateMovie(
    "A02",
    {"well": "A02", "drug": "DMSO", "dose_um": 0.0},
    np.array([[1, 0, 11, 0], [2, 0, 8, 0], [3, 4, 11, 0]]),
    {
        1: lambda t: (30, 30 + t, 5, 5),
        2: lambda t: (45, 58.5 + 4 * t, 5, 5),
        3: lambda t: (12, 70, 5, 5),
    },
)
# B01: two generations (1 -> 2, 3; 2 -> 4, 5: track 2 is one whole cell cycle of 5 frames),
# a death (6) and a cell to the end (7).
B01 = PlateMovie(
    "B01",
    {"well": "B01", "drug": "taxol", "dose_um": 1.5},
    np.array([[1, 0, 1, 0], [2, 2, 6, 1], [3, 2, 11, 1], [4, 7, 11, 2], [5, 7, 11, 2], [6, 0, 5, 0], [7, 0, 11, 0]]),
    {
        1: lambda t: (20, 30, 4, 8),
        2: lambda t: (20 - (t - 2), 24.5 - (t - 2), _grow(2, 6, t, 4.5, 4), _grow(2, 6, t, 4.5, 8)),
        3: lambda t: (20 + (t - 2), 35.5 + (t - 2), 4.5, 4.5),
        4: lambda t: (16 - 0.5 * (t - 7), 15.5 - 0.5 * (t - 7), 4.5, 4.5),
        5: lambda t: (16 + 0.5 * (t - 7), 25.5 + 0.5 * (t - 7), 4.5, 4.5),
        6: lambda t: (45, 50, 5, 5),
        7: lambda t: (50, 80, 5, 5),
    },
)
MOVIES = (A01, A02, B01)


def write_movie(movie: PlateMovie, root: Path) -> Path:
    """DATASET/01_GT/TRA (masks + man_track.txt) of one plate movie; returns DATASET."""
    tra = root / "01_GT" / "TRA"
    tra.mkdir(parents=True)
    for t in range(N_FRAMES):
        lab = np.zeros(SHAPE, np.uint16)
        for k, s, e, _ in movie.tracks.tolist():
            if s <= t <= e:
                cy, cx, ry, rx = movie.cells[k](t)
                lab[ellipse(SHAPE, (cy, cx), ry, rx)] = k
        tifffile.imwrite(tra / f"man_track{t:03d}.tif", lab)
    (tra / "man_track.txt").write_text("\n".join(" ".join(map(str, r)) for r in movie.tracks.tolist()) + "\n")
    return root


def set_conditions(store: Store, movie_id: int, conditions: dict[str, str | float]) -> None:
    """The manifest's conditions of a movie, as the experiment engine stores them."""
    with store.begin() as c:
        c.execute(
            schema.movie_condition.insert(),
            [
                {
                    "movie_id": movie_id,
                    "key": k,
                    "value": v if c.dialect.name == "sqlite" else str(v),  # as trackdb.store.experiments
                    "value_num": float(v) if isinstance(v, int | float) else None,
                }
                for k, v in conditions.items()
            ],
        )


def build_plate(store: Store, root: Path) -> dict[str, int]:
    """Import, link, solve and score the plate's movies; returns movie name -> uncertainty run."""
    out = {}
    for movie in MOVIES:
        ds = write_movie(movie, root / movie.name)
        res = import_ctc(store, ds, "01", movie.name, masks_only=True, experiment=EXPERIMENT)
        set_conditions(store, res.movie_id, movie.conditions)
        run_link(store, movie.name, max_distance=20, k=5, dt=1)
        sid = run_solve(store, movie.name, method="joint").solution_id
        got = solutions.solution_tracks(store, sid)
        assert sorted(map(tuple, got[:, 1:].tolist())) == sorted(map(tuple, _relabel(got, movie))), (
            f"{movie.name}: the solve did not recover the drawn lineage: {got.tolist()}"
        )
        out[movie.name] = run_uncertainty(store, movie.name, "as", k=5)
    return out


def _relabel(got: np.ndarray, movie: PlateMovie) -> list[tuple[int, int, int]]:
    """The drawn tracks as (start, end, parent) in the solve's track ids (matched by start/end)."""
    ids: dict[int, int] = {}
    for k, s, e, _ in movie.tracks.tolist():
        match = [int(g[0]) for g in got.tolist() if g[1] == s and g[2] == e and int(g[0]) not in ids.values()]
        ids[k] = match[0] if match else -k
    return [(s, e, ids[p] if p else 0) for _, s, e, p in movie.tracks.tolist()]


def rows(store: Store, sql: str, **params: object) -> list[tuple]:
    with store.engine.connect() as c:
        return [tuple(r) for r in c.execute(sa.text(sql), params)]


@contextmanager
def plate_store(engine: str, root: Path) -> Iterator[Store]:
    """The built plate in a new store on ``engine`` (sqlite or postgresql: a schema of its own,
    dropped after; skipped when the server is unreachable), with each movie's time interval."""
    schema_name = None
    if engine == "sqlite":
        url = f"sqlite:///{root / 'plate.sqlite'}"
    else:
        eng = _pg_engine()
        if eng is None:
            pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {_pg_state['error']}")
        schema_name = f"t_{uuid.uuid4().hex[:12]}"
        with eng.begin() as c:
            c.exec_driver_sql(f"CREATE SCHEMA {schema_name}")
        url = f"{PG_URL}?options=-csearch_path%3D{schema_name}"
    store = Store(url, create=True)
    try:
        build_plate(store, root)
        m = schema.movie.c
        with store.begin() as c:
            for name, dt in TIME_INTERVAL.items():
                c.execute(schema.movie.update().where(m.name == name).values(time_interval=dt))
        yield store
    finally:
        store.close()
        if schema_name is not None:
            with _pg_engine().begin() as c:  # type: ignore[union-attr]
                c.exec_driver_sql(f"DROP SCHEMA {schema_name} CASCADE")
