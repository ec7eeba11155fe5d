"""Plate-wide SQL (docs/plate_queries.md) on both engines: the docs' text, its values on a plate
of known lineages, and plans that reach every table through an index."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from trackdb.cli import cli
from trackdb.errors import NotFoundError
from trackdb.stages.uncertainty import uncertain
from trackdb.store import Store, db, queries, schema

from ..plate_fixture import A01, A02, B01, EXPERIMENT, TIME_INTERVAL, plate_store, rows

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plate_queries.md"
DOC_PARAMS: dict[str, object] = {
    "experiment": EXPERIMENT,
    "below": 0.8,
    "well_key": "well",
    "key": "drug",
    "margin": 2,
    "node_id": 3162,
}
# tables whose rows grow with the movies: never read whole
BIG = ("movie", "node", "edge", "solution_node", "solution_edge", "track", "edge_probability", "node_probability")


def doc_queries() -> dict[str, str]:
    text = DOCS.read_text()
    return dict(re.findall(r"<!-- query: (\w+) -->\n```sql\n(.*?)```", text, flags=re.S))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def plate(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The three-movie plate, built once per engine for this module."""
    with plate_store(request.param, tmp_path_factory.mktemp("plate")) as store:
        yield store


def run_doc(store: Store, name: str, **replace: str) -> pd.DataFrame:
    """A query as the docs show it, through the read-only path `trackdb query` takes."""
    sql = doc_queries()[name]
    for old, new in replace.items():
        sql = sql.replace(old, new)
    return queries.run_sql(store, sql)


def test_docs_show_the_queries_text() -> None:
    docs = doc_queries()
    assert set(docs) == set(queries.PLATE_SQL)
    for name, sql in queries.PLATE_SQL.items():
        assert docs[name] == queries.inline(sql, DOC_PARAMS).lstrip("\n"), name


def test_inline_quotes_text_and_keeps_numbers() -> None:
    sql = queries.inline("WHERE a = :key AND b < :k AND c = :keyed", {"k": 2, "key": "it's", "keyed": 0.5})
    assert sql == "WHERE a = 'it''s' AND b < 2 AND c = 0.5"


def test_uncertain_divisions_per_well(plate: Store) -> None:
    doc = run_doc(plate, "uncertain_divisions")
    assert doc["well"].tolist() == ["A01", "A02", "B01"]
    assert doc["movie"].tolist() == ["A01", "A02", "B01"]
    assert [int(v) for v in doc["divisions"]] == [A01.divisions, A02.divisions, B01.divisions] == [1, 0, 2]
    assert [int(v) for v in doc["scored"]] == [1, 0, 2]
    for movie, p_min, n_below in zip(doc["movie"], doc["p_min"], doc["uncertain"]):
        # the same divisions and probabilities as `trackdb uncertain` reads movie by movie
        every = uncertain(plate, movie, below=1.0)
        p = sorted(every.loc[every["kind"] == "division", "p"].tolist())
        if not p:
            assert p_min is None or math.isnan(p_min)
            assert int(n_below) == 0
            continue
        assert math.isclose(float(p_min), p[0], rel_tol=1e-12)
        assert int(n_below) == sum(q < 0.8 for q in p)
    # the function with another threshold: just above each well's lowest, one more is uncertain
    lowest = dict(zip(doc["movie"], doc["p_min"]))
    fn = queries.plate_uncertain_divisions(plate, EXPERIMENT, below=float(lowest["B01"]) + 1e-9)
    assert int(fn["uncertain"].tolist()[2]) >= 1
    fn = queries.plate_uncertain_divisions(plate, EXPERIMENT, below=0.0)
    assert [int(v) for v in fn["uncertain"]] == [0, 0, 0]


def test_division_rate_and_cell_cycle_per_condition(plate: Store) -> None:
    doc = run_doc(plate, "division_rate")
    assert doc["condition"].tolist() == ["DMSO", "taxol"]
    dmso, taxol = (dict(r) for r in doc.to_dict("records"))
    assert int(dmso["movies"]) == 2
    assert int(taxol["movies"]) == 1
    assert int(dmso["divisions"]) == A01.divisions + A02.divisions == 1
    assert int(taxol["divisions"]) == B01.divisions == 2
    assert int(dmso["cell_frames"]) == A01.cell_frames + A02.cell_frames == 69
    assert int(taxol["cell_frames"]) == B01.cell_frames == 45
    assert math.isclose(float(dmso["division_rate"]), 1 / 69)
    assert math.isclose(float(taxol["division_rate"]), 2 / 45)
    # B01's track 2: born at the first division (frame 2), divides after frame 6: 5 frames
    assert int(dmso["cycles"]) == 0
    assert int(taxol["cycles"]) == 1
    assert dmso["cycle_frames"] is None or math.isnan(dmso["cycle_frames"])
    assert float(taxol["cycle_frames"]) == 5.0
    assert math.isclose(float(taxol["cycle_time"]), 5 * TIME_INTERVAL["B01"])
    # by a numeric condition: doses sort as numbers, through condition_num
    dose = queries.plate_division_rate(plate, EXPERIMENT, key="dose_um")
    assert [float(v) for v in dose["condition_num"]] == [0.0, 1.5]
    assert [int(v) for v in dose["divisions"]] == [1, 2]


def test_lineage_tree_of_a_cell_in_any_movie(plate: Store) -> None:
    # a cell of B01's track 4 (a granddaughter) at frame 9: its family is all of 1..5
    (node,) = rows(
        plate,
        "SELECT sn.node_id FROM movie m JOIN solution_node sn ON sn.solution_id = m.current_solution_id "
        "JOIN track t ON t.solution_id = sn.solution_id AND t.track_id = sn.track_id "
        "WHERE m.name = 'B01' AND sn.t = 9 AND t.start_t = 7 ORDER BY sn.node_id LIMIT 1",
    )[0]
    doc = run_doc(plate, "lineage", **{"3162": str(node)})
    assert set(doc["movie"]) == {"B01"}
    gens = [(int(g), int(s), int(e)) for g, s, e in zip(doc["generation"], doc["start_t"], doc["end_t"])]
    assert sorted(gens) == [(0, 0, 1), (1, 2, 6), (1, 2, 11), (2, 7, 11), (2, 7, 11)]
    assert int(doc["has_cell"].sum()) == 1
    assert int(doc.loc[doc["has_cell"] == 1, "generation"].iloc[0]) == 2
    fn = queries.plate_lineage(plate, node)
    assert fn["track_id"].tolist() == doc["track_id"].tolist()
    # a cell of A02 (no division): its tree is its own track
    (other,) = rows(
        plate,
        "SELECT MIN(sn.node_id) FROM movie m JOIN solution_node sn ON sn.solution_id = m.current_solution_id "
        "WHERE m.name = 'A02' AND sn.t = 0",
    )[0]
    tree = queries.plate_lineage(plate, other)
    assert tree["movie"].tolist() == ["A02"]
    assert tree["generation"].tolist() == [0]
    with pytest.raises(NotFoundError, match="no node 999999999"):
        queries.plate_lineage(plate, 999_999_999)


def test_cells_per_frame_per_well(plate: Store) -> None:
    doc = run_doc(plate, "cells_per_frame")
    got = {(w, int(t)): int(n) for w, t, n in zip(doc["well"], doc["t"], doc["cells"])}
    for movie in (A01, A02, B01):
        for t in range(12):
            alive = sum(s <= t <= e for _, s, e, _ in movie.tracks.tolist())
            assert got[(movie.name, t)] == alive, (movie.name, t)
    assert len(got) == 36
    fn = queries.plate_cells_per_frame(plate, EXPERIMENT)
    assert fn["cells"].astype(int).tolist() == doc["cells"].astype(int).tolist()


def test_tracks_that_end_early_per_condition(plate: Store) -> None:
    doc = run_doc(plate, "early_ends")
    got = {
        str(c): [int(v) for v in r]
        for c, *r in doc[["condition", "movies", "tracks", "deaths", "exits"]].itertuples(False)
    }
    # DMSO: A01's track 4 dies in the field at frame 6, A02's track 2 leaves through the right
    # edge at frame 8; taxol: B01's track 6 dies at frame 5. Mothers and last-frame tracks do not count.
    assert got == {"DMSO": [2, 8, 1, 1], "taxol": [1, 7, 1, 0]}
    assert math.isclose(doc["death_fraction"].tolist()[1], 1 / 7)
    # a margin wider than the dying cells' distance to the edge calls them exits
    wide = queries.plate_early_ends(plate, EXPERIMENT, margin=40)
    assert [int(v) for v in wide["exits"]] == [2, 1]
    assert [int(v) for v in wide["deaths"]] == [0, 0]


def test_trackdb_query_over_the_whole_experiment(plate: Store) -> None:
    url = plate.engine.url.render_as_string(hide_password=False)
    res = CliRunner().invoke(cli, ["query", doc_queries()["cells_per_frame"], "--format", "csv", "--db", url])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[0] == "well,t,cells"
    assert len(lines) == 37
    conds = CliRunner().invoke(
        cli,
        [
            "query",
            "SELECT m.name, d.value_num AS dose_um FROM movie m JOIN movie_condition d ON d.movie_id = m.id "
            "AND d.key = 'dose_um' WHERE d.value_num >= 1",
            "--format",
            "csv",
            "--db",
            url,
        ],
    )
    assert conds.exit_code == 0
    assert conds.output.strip().splitlines() == ["name,dose_um", "B01,1.5"]


def test_unknown_experiment_is_one_clear_error(plate: Store) -> None:
    for fn in (queries.plate_division_rate, queries.plate_cells_per_frame, queries.plate_early_ends):
        with pytest.raises(NotFoundError, match="no experiment 'plate-9'"):
            fn(plate, "plate-9")


def plan(store: Store, sql: str) -> list[str]:
    """The plan, one line per step: EXPLAIN QUERY PLAN on SQLite; on PostgreSQL EXPLAIN (FORMAT
    JSON) with sequential scans priced out (enable_seqscan = off), each table read as
    ``<node type> on <table> [cond]`` (cond: the step has an index or recheck condition)."""
    with store.engine.begin() as c:
        if not store.is_postgres:
            return [r[3] for r in c.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]
        c.exec_driver_sql("SET LOCAL enable_seqscan = off")
        (doc,) = c.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql).scalar_one()
    out: list[str] = []

    def walk(node: dict) -> None:
        if "Relation Name" in node:
            cond = any(k in node for k in ("Index Cond", "Recheck Cond"))
            out.append(f"{node['Node Type']} on {node['Relation Name']}" + (" cond" if cond else ""))
        for child in node.get("Plans", []):
            walk(child)

    walk(doc["Plan"])
    return out


def full_scans(store: Store, sql: str) -> list[str]:
    """Plan steps that read a stored table whole: a sequential scan, or an index walked from end
    to end (no index condition); CTEs, derived tables and work tables aside."""
    lines = plan(store, sql)
    watched = set(BIG) | {"experiment", "run"}
    if store.is_postgres:
        return [ln for ln in lines if ln.split(" on ")[-1].split()[0] in watched and not ln.endswith(" cond")]
    # SQLite names tables by their alias: SCAN x (the whole table, or a whole index: USING ...)
    tables = {alias: table for table, alias in re.findall(r"\b(?:FROM|JOIN)\s+(\w+)\s+(?:AS\s+)?(\w+)", sql, re.I)}
    tables.update({t: t for t in watched})
    scanned = [re.match(r"SCAN (\w+)", ln) for ln in lines]
    return [ln for ln, m in zip(lines, scanned) if m and tables.get(m.group(1)) in watched]


@pytest.mark.parametrize("name", sorted(queries.PLATE_SQL))
def test_plans_reach_tables_by_index(plate: Store, name: str) -> None:
    sql = doc_queries()[name]
    if name == "lineage":
        (node,) = rows(plate, "SELECT MIN(node_id) FROM solution_node")[0]
        sql = sql.replace("3162", str(node))
    assert full_scans(plate, sql) == [], "\n".join(plan(plate, sql))


def test_without_the_experiment_index_movie_is_read_whole(plate: Store) -> None:
    """The check above can fail: drop revision 0009's index and the movie table is scanned."""
    sql = doc_queries()["cells_per_frame"].replace("JOIN movie_condition w", "LEFT JOIN movie_condition w")
    with plate.engine.begin() as c:
        c.exec_driver_sql("DROP INDEX ix_movie_experiment_id")
    try:
        scans = full_scans(plate, sql)
        assert any("movie" in ln or ln.startswith("SCAN m") for ln in scans), plan(plate, sql)
    finally:
        with plate.engine.begin() as c:
            c.exec_driver_sql("CREATE INDEX ix_movie_experiment_id ON movie (experiment_id)")


def test_revision_0009_adds_the_index(plate: Store) -> None:
    idx = {i["name"]: i["column_names"] for i in sa.inspect(plate.engine).get_indexes("movie")}
    assert idx["ix_movie_experiment_id"] == ["experiment_id"]
    assert any(i.name == "ix_movie_experiment_id" for i in schema.movie.indexes)


def test_revision_0009_upgrades_and_downgrades_with_data(db_url: str) -> None:
    from alembic import command

    engine = db.make_engine(db_url)
    db.upgrade(engine, "0008")
    with engine.begin() as c:
        c.exec_driver_sql("INSERT INTO experiment (id, name) VALUES (1, 'p')")
        c.exec_driver_sql(
            "INSERT INTO movie (id, experiment_id, name, ndim, n_frames, size_y, size_x, spacing_y, spacing_x) "
            "VALUES (1, 1, 'm', 2, 2, 8, 8, 1, 1)"
        )
    db.upgrade(engine, "0009")
    assert "ix_movie_experiment_id" in {i["name"] for i in sa.inspect(engine).get_indexes("movie")}
    cfg = db.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0008")
    assert "ix_movie_experiment_id" not in {i["name"] for i in sa.inspect(engine).get_indexes("movie")}
    with engine.connect() as c:
        assert c.exec_driver_sql("SELECT name, experiment_id FROM movie").all() == [("m", 1)]
    engine.dispose()


def test_probabilities_come_from_a_run_of_the_current_solution(plate: Store) -> None:
    """A newer uncertainty run of another solution of B01 is not read: its divisions stay scored
    by the run of the current solution (as `trackdb uncertain` picks it)."""
    movie = plate.movie("B01")
    with plate.begin() as c:
        fake = c.execute(
            schema.run.insert()
            .values(movie_id=movie.id, kind="uncertainty", status="succeeded", params={"solution_id": 10**6})
            .returning(schema.run.c.id)
        ).scalar_one()
    try:
        got = queries.plate_uncertain_divisions(plate, EXPERIMENT)
        assert [int(v) for v in got["scored"]] == [1, 0, 2]
    finally:
        with plate.begin() as c:
            c.execute(schema.run.delete().where(schema.run.c.id == fake))
