"""Shared fixtures: every store test runs on SQLite and on PostgreSQL.

PostgreSQL tests get a fresh schema each (``search_path`` in the URL), so they are isolated and
cheap; when the server is unreachable they are skipped with a reason that says so.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import tifffile

os.environ.setdefault("OMP_NUM_THREADS", "1")

PG_URL = os.environ.get("TRACKDB_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_state: dict[str, object] = {}


def _pg_engine() -> sa.Engine | None:
    if "engine" not in _pg_state:
        try:
            eng = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with eng.connect():
                pass
            _pg_state["engine"] = eng
        except Exception as exc:  # unreachable server: skip, and say so
            _pg_state["engine"] = None
            _pg_state["error"] = str(exc).splitlines()[0]
    return _pg_state["engine"]  # type: ignore[return-value]


def pytest_report_header(config: pytest.Config) -> str:
    eng = _pg_engine()
    if eng is None:
        return (
            f"trackdb: PostgreSQL NOT reachable at {PG_URL} ({_pg_state['error']}): PostgreSQL store tests are SKIPPED"
        )
    return f"trackdb: store tests run on SQLite and PostgreSQL ({PG_URL})"


def pytest_terminal_summary(terminalreporter) -> None:
    """Say at the end (also under -q) whether the PostgreSQL half ran."""
    terminalreporter.write_line(pytest_report_header(terminalreporter.config))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database (no schema yet) on each engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite'}"
        return
    eng = _pg_engine()
    if eng is None:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {_pg_state['error']}")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with eng.begin() as c:
        c.exec_driver_sql(f"CREATE SCHEMA {name}")
    yield f"{PG_URL}?options=-csearch_path%3D{name}"
    with eng.begin() as c:
        c.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture
def store(db_url: str):
    from trackdb.store import Store

    s = Store(db_url, create=True)
    yield s
    s.close()


def ellipse(shape: tuple[int, int], center: tuple[float, float], ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - center[0]) / ry) ** 2 + ((xx - center[1]) / rx) ** 2 <= 1.0


# A small lineage with everything CTC allows: a division (1 -> 2, 3: an elongated mother whose
# two halves move apart), a parent with a single daughter after a gap of two frames (3 -> 4),
# and an independent track (5) that appears late.
SYNTH_TRACKS = np.array([[1, 0, 2, 0], [2, 3, 7, 1], [3, 3, 4, 1], [4, 7, 9, 3], [5, 2, 9, 0]])
SYNTH_CELLS = {  # track -> t -> (cy, cx, ry, rx)
    1: lambda t: (20, 15 + 2 * t, 4, 8),
    2: lambda t: (20 - (t - 3), 14 + (t - 3), 4.5, 4.5),
    3: lambda t: (20 + (t - 3), 27 + (t - 3), 4.5, 4.5),
    4: lambda t: (24 + (t - 7), 30 + (t - 7), 4.5, 4.5),
    5: lambda t: (50, 60 - 2 * t, 5, 5),
}


def write_synthetic_ctc(
    root: Path, n_frames: int = 10, shape: tuple[int, int] = (64, 80), with_raw: bool = True
) -> Path:
    """Write DATASET/01 (raw) and DATASET/01_GT/TRA (masks + man_track.txt); returns DATASET."""
    tra = root / "01_GT" / "TRA"
    tra.mkdir(parents=True)
    raw_dir = root / "01"
    if with_raw:
        raw_dir.mkdir()
    rng = np.random.default_rng(0)
    for t in range(n_frames):
        lab = np.zeros(shape, np.uint16)
        for k, s, e, _ in SYNTH_TRACKS.tolist():
            if s <= t <= e:
                cy, cx, ry, rx = SYNTH_CELLS[k](t)
                lab[ellipse(shape, (cy, cx), ry, rx)] = k
        tifffile.imwrite(tra / f"man_track{t:03d}.tif", lab)
        if with_raw:
            img = (lab > 0) * 150 + rng.integers(0, 40, shape)
            tifffile.imwrite(raw_dir / f"t{t:03d}.tif", img.astype(np.uint8))
    (tra / "man_track.txt").write_text("\n".join(" ".join(map(str, r)) for r in SYNTH_TRACKS.tolist()) + "\n")
    return root


@pytest.fixture
def synthetic_ctc(tmp_path: Path) -> Path:
    return write_synthetic_ctc(tmp_path / "synth")


BACTERIA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bacteria-divisualisation"


@pytest.fixture
def bacteria() -> Path:
    if not (BACTERIA / "01_GT" / "TRA" / "man_track.txt").exists():
        pytest.skip(f"shipped bacteria data not found at {BACTERIA}")
    return BACTERIA
