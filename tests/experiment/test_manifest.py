"""The manifest: the issue's keys work as written, and every bad input is refused before any
work with one line per problem, exit 2 and nothing written (on SQLite and PostgreSQL)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import snapshot, trackdb
from trackdb.experiment import manifest as mf
from trackdb.stages import link
from trackdb.store import Store

from .conftest import manifest_text

ISSUE_STAGES = '[stages]\nlink = {}\nsolve = { method = "joint" }\nuncertainty = { method = "as", k = 10 }\n'


def test_issue_keys_parse_as_written(plate: Path) -> None:
    m = mf.load(plate)
    assert m.name == "plate-1"
    assert [e.name for e in m.movies] == ["A01", "A02", "A03"]
    a02 = m.movies[1]
    assert a02.source == (plate.parent / "m1").resolve()
    assert (a02.seq, a02.masks) == ("01", mf.Masks.GT)
    assert a02.conditions == {"drug": "taxol", "dose_um": 0.5, "well": "A02"}
    assert a02.frames().n_frames == 12
    assert list(m.stages) == [mf.Stage.LINK, mf.Stage.SOLVE, mf.Stage.UNCERTAINTY]
    assert m.stages[mf.Stage.UNCERTAINTY] == {"method": "as", "k": 10}
    # the stage functions' defaults fill in what the manifest leaves out (the CLI's defaults)
    defaults = inspect.signature(link.run_link).parameters
    assert m.params(mf.Stage.LINK) == {k: p.default for k, p in defaults.items() if k not in ("store", "movie_name")}
    assert m.params(mf.Stage.SOLVE)["method"] == "joint"
    assert m.frames_per_task == 4


def _write(tmp: Path, text: str) -> Path:
    p = tmp / "bad.toml"
    p.write_text(text)
    return p


BAD_MANIFESTS: dict[str, tuple[Callable[[str], str], str]] = {
    "missing file": (lambda t: t.replace('source = "m1"', 'source = "nowhere"'), "source"),
    "unknown movie key": (lambda t: t.replace('masks = "gt"\n', 'masks = "gt"\nsauce = 1\n', 1), "unknown key 'sauce'"),
    "unknown experiment key": (lambda t: t.replace('name = "plate-1"', 'name = "plate-1"\nowner = "x"'), "'owner'"),
    "unknown top-level table": (lambda t: t + "\n[extra]\na = 1\n", "unknown key 'extra'"),
    "duplicate movie": (lambda t: t.replace('name = "A02"', 'name = "A01"'), "duplicate movie name"),
    "unknown stage": (lambda t: t.replace("link = {}", "link = {}\ntrack = {}"), "unknown stage 'track'"),
    "stage out of order": (
        lambda t: t.replace(ISSUE_STAGES, '[stages]\nsolve = { method = "joint" }\nlink = {}\n'),
        "out of order",
    ),
    "stage needs another": (lambda t: t.replace("link = {}\n", ""), "needs stage 'link'"),
    "unknown parameter": (lambda t: t.replace("link = {}", "link = { max_dist = 40 }"), "unknown parameter"),
    "bad parameter value": (lambda t: t.replace("link = {}", "link = { max_distance = -4 }"), "--max-distance"),
    "bad parameter type": (lambda t: t.replace("k = 10 }", 'k = "ten" }'), "k must be int"),
    "bad method": (lambda t: t.replace('method = "joint"', 'method = "magic"'), "magic"),
    "bad masks": (lambda t: t.replace('masks = "gt"', 'masks = "truth"', 1), "masks must be one of"),
    "not TOML": (lambda t: t.replace("[stages]", "[stages"), "not valid TOML"),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_bad_manifest_is_one_line_exit_2_nothing_written(case: str, plate: Path, tmp_path: Path) -> None:
    edit, expect = BAD_MANIFESTS[case]
    bad = _write(tmp_path, edit(manifest_text()))
    assert bad.read_text() != manifest_text(), "the edit must change the manifest"
    db = tmp_path / "new.sqlite"
    r = trackdb("experiment", "run", str(bad), db=f"sqlite:///{db}")
    assert r.returncode == 2, (r.stdout, r.stderr, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert expect in lines[0], lines[0]
    assert not db.exists(), "a refused manifest must not create the store"


def test_every_problem_is_listed(plate: Path, tmp_path: Path) -> None:
    text = manifest_text().replace('source = "m1"', 'source = "gone"').replace('name = "A03"', 'name = "A01"')
    text = text.replace("link = {}", "link = { max_distance = 0 }\nextra = {}")
    r = trackdb("experiment", "run", str(_write(tmp_path, text)), db=f"sqlite:///{tmp_path / 's.sqlite'}")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 4, r.stderr
    assert all(line.startswith("error: ") for line in lines)
    joined = "\n".join(lines)
    for expect in ("does not exist", "duplicate movie name", "--max-distance", "unknown stage 'extra'"):
        assert expect in joined


def test_sqlite_with_more_than_one_worker_is_refused(plate: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    Store(url, create=True).close()
    before = snapshot(Store(url))
    for extra in (["--workers", "2"], ["--threads-per-worker", "2"], ["--scheduler", "tcp://127.0.0.1:1"]):
        r = trackdb("experiment", "run", str(plate), *extra, db=url)
        assert r.returncode == 2, (extra, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert "SQLite is a one-process store" in lines[0], lines
        assert "PostgreSQL" in lines[0], lines
        if extra[0] != "--scheduler":
            assert len(lines) == 1, r.stderr
    assert snapshot(Store(url)) == before


def test_scheduler_that_does_not_answer(plate: Path, pg_url: str) -> None:
    r = trackdb("experiment", "run", str(plate), "--scheduler", "tcp://127.0.0.1:9", db=pg_url)
    assert r.returncode == 2, (r.stderr, r.exception)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "scheduler tcp://127.0.0.1:9 does not answer" in lines[0], r.stderr
    with sa.create_engine(pg_url).connect() as c:  # nothing written: not even the schema
        assert sa.inspect(c).get_table_names() == []


def test_postgresql_url_that_cannot_connect(plate: Path) -> None:
    r = trackdb("experiment", "run", str(plate), db="postgresql://postgres@127.0.0.1:9/nothere")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "cannot connect to database" in lines[0], r.stderr


def test_bad_manifest_leaves_postgresql_unwritten(plate: Path, tmp_path: Path, pg_url: str) -> None:
    bad = _write(tmp_path, manifest_text().replace('name = "A02"', 'name = "A01"'))
    r = trackdb("experiment", "run", str(bad), db=pg_url)
    assert r.returncode == 2
    assert "duplicate movie name" in r.stderr
    with sa.create_engine(pg_url).connect() as c:
        assert sa.inspect(c).get_table_names() == []


def test_status_of_an_unknown_experiment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    Store(url, create=True).close()
    r = trackdb("experiment", "status", "nope", db=url)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: no experiment 'nope' in this database (run `trackdb experiment run PLATE.toml`)"
