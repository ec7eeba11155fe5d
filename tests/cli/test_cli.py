"""The CLI end to end: exit codes, one-line errors, --db and TRACKDB_DB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..helpers import trackdb


def test_import_query_lineage_export_evaluate(db_url: str, synthetic_ctc: Path, tmp_path: Path) -> None:
    r = trackdb("import-ctc", str(synthetic_ctc), "--movie", "synth", db=db_url)
    assert r.returncode == 0, r.stderr
    assert "5 links" not in r.stdout
    assert "solution 'gt'" in r.stdout
    r = trackdb("query", "SELECT COUNT(*) AS n FROM track", "--format", "json", db=db_url)
    assert json.loads(r.stdout) == [{"n": 5}]
    r = trackdb("query", "SELECT MAX(id) AS id FROM node WHERE label = 4", "--format", "csv", db=db_url)
    node = r.stdout.strip().splitlines()[-1]
    r = trackdb("lineage", "--node", node, "--format", "json", db=db_url)
    rows = json.loads(r.stdout)
    # track 4 (frames 7-9) <- gap <- track 3 (3-4) <- track 1 (0-2): 3 + 2 + 3 cells
    assert [row["track_id"] for row in rows] == [4, 4, 4, 3, 3, 1, 1, 1]
    assert [row["t"] for row in rows] == [9, 8, 7, 4, 3, 2, 1, 0]
    r = trackdb("export-ctc", str(tmp_path / "out"), "--movie", "synth", db=db_url)
    assert r.returncode == 0
    assert (tmp_path / "out" / "res_track.txt").exists()
    r = trackdb("evaluate", "--movie", "synth", "--gt", str(synthetic_ctc / "01_GT"), db=db_url)
    scores = json.loads(r.stdout)
    assert scores["TRA"] == pytest.approx(1.0)
    assert scores["LNK"] == pytest.approx(1.0)
    assert scores["SEG"] == 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        (("export-ctc", "/tmp/x", "--movie", "ghost"), "no movie 'ghost'"),
        (("lineage", "--node", "123456"), "no node with id 123456"),
        (("query", "SELECT * FROM no_such_table"), "query failed"),
    ],
)
def test_errors_are_one_line_and_nonzero(db_url: str, synthetic_ctc: Path, args: tuple[str, ...], message: str) -> None:
    assert trackdb("import-ctc", str(synthetic_ctc), "--movie", "synth", db=db_url).returncode == 0
    r = trackdb(*args, db=db_url)
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_url_and_uninitialised_db(tmp_path: Path) -> None:
    r = trackdb("movies", db="postgresql://nobody@127.0.0.1:1/none")
    assert r.returncode == 2
    assert "cannot connect" in r.stderr
    r = trackdb("movies", db=f"sqlite:///{tmp_path / 'empty.sqlite'}")
    assert r.returncode == 2
    assert "trackdb init" in r.stderr
