"""The edit verbs exactly as the issue writes them, through the CLI on both engines: each prints
its edit id and is applied by `trackdb resolve`; bad input prints one line, exits 2 and leaves
the store unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import tifffile

from trackdb.store import Store, schema

from ..conftest import ellipse
from ..helpers import snapshot, trackdb

MOVIE = "det"
SHAPE = (64, 80)


@pytest.fixture
def solved_db(db_url: str, synthetic_ctc: Path) -> str:
    assert trackdb("import-ctc", str(synthetic_ctc), "--movie", MOVIE, "--masks-only", db=db_url).returncode == 0
    assert trackdb("link", "--movie", MOVIE, "--max-distance", "30", "--k", "5", "--dt", "3", db=db_url).returncode == 0
    assert trackdb("solve", "--movie", MOVIE, db=db_url).returncode == 0
    return db_url


def cell(db: str, t: int, y: float, x: float) -> int:
    n = schema.node.c
    with Store(db) as s, s.engine.connect() as c:
        rows = c.execute(sa.select(n.id, n.y, n.x).where(n.t == t)).all()
    return int(min(rows, key=lambda r: abs(r[1] - y) + abs(r[2] - x))[0])


def test_every_verb_as_written(solved_db: str, tmp_path: Path) -> None:
    db = solved_db
    mask = tmp_path / "cell.tif"
    tifffile.imwrite(mask, ellipse(SHAPE, (8, 8), 3, 3).astype(np.uint8) * 255)
    commands = [
        ["relink", str(cell(db, 7, 24, 30)), str(cell(db, 6, 17, 17))],
        ["division", str(cell(db, 2, 20, 19)), "real"],
        ["delete-cell", str(cell(db, 9, 50, 42))],
        ["add-cell", "--t", "5", "--mask", str(mask)],
        ["merge-cells", str(cell(db, 8, 50, 44)), str(cell(db, 8, 25, 31))],
        ["split-cell", str(cell(db, 6, 50, 48)), "--line", "40,48,60,48"],
        ["end-track", str(cell(db, 4, 50, 52))],
    ]
    ids = []
    for args in commands:
        r = trackdb("edit", "--movie", MOVIE, *args, "--author", "cli", db=db)
        assert r.returncode == 0, (args, r.stderr)
        ids.append(int(r.stdout.strip()))
    assert ids == list(range(1, len(commands) + 1))
    rows = json.loads(trackdb("edits", "--movie", MOVIE, "--format", "json", db=db).stdout)
    assert [x["kind"] for x in rows] == [c[0] for c in commands]
    assert {x["state"] for x in rows} == {"pending"}
    assert {x["author"] for x in rows} == {"cli"}
    r = trackdb("resolve", "--movie", MOVIE, db=db)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["edits"] == ids
    assert out["costs"] == "stored"
    rows = json.loads(trackdb("edits", "--movie", MOVIE, "--format", "json", db=db).stdout)
    assert {x["state"] for x in rows} == {"applied"}
    r = trackdb("edit", "--movie", MOVIE, "remove", str(ids[3]), db=db)
    assert r.returncode == 0, r.stderr
    assert trackdb("resolve", "--movie", MOVIE, db=db).returncode == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["relink", "999999", "1"], "error: no node 999999 in movie 'det'"),
        (["division", "1", "maybe"], None),  # click refuses the choice (usage error, exit 2)
        (["delete-cell", "999999"], "error: no node 999999 in movie 'det'"),
        (["add-cell", "--t", "3", "--mask", "missing.tif"], "error: mask file missing.tif does not exist"),
        (["merge-cells", "1", "2"], "different frames"),
        (["split-cell", "1", "--line", "0,0,1"], "error: split-cell: the line must be 4 numbers"),
        (["split-cell", "1", "--line", "a,b,c,d"], "error: --line must be comma-separated numbers"),
        (["end-track", "999999"], "error: no node 999999 in movie 'det'"),
        (["forbid-edge", "1", "--on", "999"], "error: no solution 999 for movie 'det'"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(solved_db: str, args: list[str], message: str | None) -> None:
    with Store(solved_db) as s:
        before = snapshot(s)
    r = trackdb("edit", "--movie", MOVIE, *args, db=solved_db)
    assert r.returncode == 2
    if message is not None:
        assert message in r.stderr.strip()
        assert len(r.stderr.strip().splitlines()) == 1
    with Store(solved_db) as s:
        assert snapshot(s) == before


def test_add_cell_mask_of_another_shape(solved_db: str, tmp_path: Path) -> None:
    mask = tmp_path / "small.tif"
    tifffile.imwrite(mask, np.ones((10, 10), np.uint8))
    with Store(solved_db) as s:
        before = snapshot(s)
    r = trackdb("edit", "--movie", MOVIE, "add-cell", "--t", "3", "--mask", str(mask), db=solved_db)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: add-cell: the mask has shape (10, 10), but movie 'det''s frames are (64, 80)"
    with Store(solved_db) as s:
        assert snapshot(s) == before
