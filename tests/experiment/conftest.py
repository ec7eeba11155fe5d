"""Fixtures of the experiment tests: a tiny plate of synthetic movies (CTC folders with known
lineages) with its manifest, and PostgreSQL databases of their own (created, dropped after)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from synthetic.ctc_io import write_ctc
from synthetic.movies import MovieSpec, generate
from synthetic.simulate import Dynamics
from tests.conftest import PG_URL, _pg_engine, _pg_state

N_FRAMES = 12
FRAMES_PER_TASK = 4


def write_movies(root: Path, n: int = 3, n_frames: int = N_FRAMES, n_cells: int = 8) -> list[Path]:
    """``n`` small movies (64 x 64 px, a few divisions) as CTC folders ``root/mI``."""
    out = []
    for i in range(n):
        spec = MovieSpec(
            Dynamics(n_frames=n_frames, n_cells=n_cells, diameter=10.0, division_rate=0.02, seed=100 + i), (64, 64)
        )
        out.append(write_ctc(generate(spec), root / f"m{i}", raw=False))
    return out


def manifest_text(
    n: int = 3, name: str = "plate-1", stages: str | None = None, frames_per_task: int = FRAMES_PER_TASK
) -> str:
    """The issue's manifest keys, as written, for movies ``m0`` .. ``m{n-1}``."""
    lines = [f'[experiment]\nname = "{name}"\nframes_per_task = {frames_per_task}\n']
    for i in range(n):
        drug = "DMSO" if i % 2 == 0 else "taxol"
        lines.append(
            f'[[movie]]\nname = "A{i + 1:02d}"\nsource = "m{i}"\nseq = "01"\nmasks = "gt"\n'
            f'conditions = {{ drug = "{drug}", dose_um = {i * 0.5}, well = "A{i + 1:02d}" }}\n'
        )
    lines.append(
        stages
        if stages is not None
        else '[stages]\nlink = {}\nsolve = { method = "joint" }\nuncertainty = { method = "as", k = 10 }\n'
    )
    return "\n".join(lines)


@pytest.fixture
def plate(tmp_path: Path) -> Path:
    """A manifest of 3 tiny movies (12 frames, 3 frame chunks each); returns its path."""
    write_movies(tmp_path)
    path = tmp_path / "plate.toml"
    path.write_text(manifest_text())
    return path


def _admin() -> sa.Engine:
    eng = _pg_engine()
    if eng is None:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {_pg_state['error']}")
    return sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture
def new_pg() -> Iterator[Callable[[], str]]:
    """Makes PostgreSQL databases of their own (CREATE DATABASE, as createdb does): worker
    processes connect by URL, so a schema-per-test search_path would do as well, but a database
    is what a lab would give an experiment. Every one is dropped after the test."""
    admin = _admin()
    made: list[str] = []

    def make() -> str:
        name = f"exp_{uuid.uuid4().hex[:10]}"
        with admin.connect() as c:
            c.exec_driver_sql(f"CREATE DATABASE {name}")
        made.append(name)
        return str(sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False))

    yield make
    with admin.connect() as c:
        for name in made:
            c.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


@pytest.fixture
def pg_url(new_pg: Callable[[], str]) -> str:
    return new_pg()
