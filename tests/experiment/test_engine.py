"""The engine on PostgreSQL with 2 workers and on SQLite with 1: every movie from masks to
solved lineages with probabilities, conditions in SQL, a re-run that changes nothing, a failing
movie that fails alone, and ``trackdb experiment status``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from synthetic.movies import MovieSpec, generate
from synthetic.simulate import Dynamics
from tests.helpers import snapshot, trackdb
from trackdb.store import Store, experiments, runs
from trackdb.store.runs import RunKind

from .conftest import FRAMES_PER_TASK, N_FRAMES


def store_state(url: str, name: str = "plate-1") -> dict[str, Any]:
    """Per movie: row counts and the selected lineage's digest; and the store's defects."""
    with Store(url) as s:
        movies = experiments.experiment_movies(s, name)
        return {
            "movies": {
                m.name: {"rows": experiments.row_counts(s, m.id), "lineage": experiments.lineage_digest(s, m.id)}
                for m in movies
            },
            "defects": experiments.defects(s),
        }


def _summary(stdout: str) -> dict:
    return json.loads(stdout)


def test_plate_on_postgresql_two_workers(plate: Path, pg_url: str) -> None:
    r = trackdb("experiment", "run", str(plate), "--workers", "2", db=pg_url)
    assert r.returncode == 0, (r.stderr, r.exception)
    out = _summary(r.stdout)
    chunks = -(-N_FRAMES // FRAMES_PER_TASK)
    # per movie: import begin + chunks + finish, link begin + chunks + finish, solve, uncertainty
    assert out["tasks"] == 3 * (2 * (chunks + 2) + 2)
    assert (out["movies"], out["movies_failed"], out["tasks_failed"], out["workers"]) == (3, 0, 0, 2)
    assert len(out["worker_peak_rss_mb"]) == 2
    assert all(v > 50 for v in out["worker_peak_rss_mb"].values())
    busy = out["compute_seconds"]
    assert set(busy) == {"import", "link", "solve", "uncertainty"}
    assert busy["solve"]["tasks"] == 3
    assert busy["import"]["tasks"] == 3 * (chunks + 2)
    assert all(0 < b["per_movie_mean"] <= b["per_movie_max"] <= b["total"] for b in busy.values())
    assert "dashboard: " in r.stderr
    assert "movies 3/3 done, 0 failed" in r.stderr

    state = store_state(pg_url)
    assert set(state["movies"]) == {"A01", "A02", "A03"}
    assert all(v == 0 for v in state["defects"].values()), state["defects"]
    with Store(pg_url) as s:
        for m in experiments.experiment_movies(s, "plate-1"):
            rows = experiments.row_counts(s, m.id)
            assert rows["run"] == 4  # import, link, solve, uncertainty: one run each
            assert rows["node"] > 50
            assert rows["edge"] > rows["node"]
            assert rows["edge_probability"] == rows["edge"]  # a probability for every candidate link
            for kind in (RunKind.IMPORT, RunKind.LINK, RunKind.SOLVE, RunKind.UNCERTAINTY):
                assert len(runs.runs_of(s, m.id, kind)) == 1
        # conditions in SQL: numbers compare as numbers
        with s.engine.connect() as c:
            wells = c.execute(
                sa.text(
                    "SELECT m.name FROM movie m JOIN movie_condition mc ON mc.movie_id = m.id "
                    "WHERE mc.key = 'dose_um' AND mc.value_num >= 0.5 ORDER BY m.name"
                )
            ).scalars()
            assert list(wells) == ["A02", "A03"]

    # a re-run finds everything done and changes nothing
    before = snapshot(Store(pg_url))
    again = trackdb("experiment", "run", str(plate), "--workers", "2", db=pg_url)
    assert again.returncode == 0, again.stderr
    assert _summary(again.stdout)["tasks_failed"] == 0
    assert store_state(pg_url) == state
    with Store(pg_url) as s:  # the experiment's meta (manifest path) is rewritten, nothing else
        assert snapshot(s) == before

    st = trackdb("experiment", "status", "plate-1", "--format", "json", db=pg_url)
    assert st.returncode == 0, st.stderr
    table = pd.DataFrame(json.loads(st.stdout))
    assert list(table["movie"]) == ["A01", "A02", "A03"]
    assert list(table["drug"]) == ["DMSO", "taxol", "DMSO"]
    for column in ("import", "link", "solve", "uncertainty"):
        assert set(table[column]) == {"succeeded"}
    assert set(table["error"]) == {""}


def test_accuracy_against_the_synthetic_truth(plate: Path, pg_url: str) -> None:
    """The stored lineages are the truth's: every GT mask a cell, nearly every GT link selected."""
    r = trackdb("experiment", "run", str(plate), "--workers", "2", "--no-progress", db=pg_url)
    assert r.returncode == 0, r.stderr
    for i, name in enumerate(["A01", "A02", "A03"]):
        ev = trackdb("evaluate", "--movie", name, "--gt", str(plate.parent / f"m{i}" / "01_GT"), db=pg_url)
        assert ev.returncode == 0, ev.stderr
        scores = json.loads(ev.stdout)
        assert scores["LNK"] > 0.9, (name, scores)
        assert scores["TRA"] > 0.9, (name, scores)


def corrupt_frame(dataset: Path, t: int = 7) -> Path:
    f = dataset / "01_GT" / "TRA" / f"man_track{t:03d}.tif"
    f.write_bytes(f.read_bytes()[:120])
    return f


def test_a_failing_movie_fails_alone(plate: Path, pg_url: str) -> None:
    bad = corrupt_frame(plate.parent / "m1")
    r = trackdb("experiment", "run", str(plate), "--workers", "2", "--no-progress", db=pg_url)
    assert r.returncode == 1, (r.stderr, r.exception)
    out = _summary(r.stdout)
    assert list(out["failed"]) == ["A02"]
    assert out["movies_failed"] == 1
    assert f"cannot read TIFF {bad}" in out["failed"]["A02"]
    assert f"failed: movie 'A02': cannot read TIFF {bad}" in r.stderr
    with Store(pg_url) as s:
        a02 = s.movie("A02")
        failed = runs.runs_of(s, a02.id, RunKind.IMPORT, status=runs.RunStatus.FAILED)
        assert len(failed) == 1
        assert f"cannot read TIFF {bad}" in (failed[0].message or "")
        assert runs.runs_of(s, a02.id, RunKind.LINK, status=None) == []  # its later stages never started
        for name in ("A01", "A03"):
            assert runs.latest_run(s, s.movie(name).id, RunKind.UNCERTAINTY) is not None
    st = trackdb("experiment", "status", "plate-1", "--format", "json", db=pg_url)
    rows = {row["movie"]: row for row in json.loads(st.stdout)}
    assert rows["A02"]["import"] == "failed"
    assert "cannot read TIFF" in rows["A02"]["error"]
    assert rows["A01"]["uncertainty"] == "succeeded"

    # the frame repaired, a re-run finishes the failed movie in its own import run
    spec = MovieSpec(Dynamics(n_frames=N_FRAMES, n_cells=8, diameter=10.0, division_rate=0.02, seed=101), (64, 64))
    import tifffile

    tifffile.imwrite(bad, generate(spec).masks[7], compression="zlib")
    again = trackdb("experiment", "run", str(plate), "--workers", "2", "--no-progress", db=pg_url)
    assert again.returncode == 0, again.stderr
    with Store(pg_url) as s:
        a02 = s.movie("A02")
        assert len(runs.runs_of(s, a02.id, RunKind.IMPORT, status=None)) == 1
        assert runs.latest_run(s, a02.id, RunKind.UNCERTAINTY) is not None
        assert all(v == 0 for v in experiments.defects(s).values())


def test_sqlite_one_worker(plate: Path, tmp_path: Path) -> None:
    """SQLite's rule: one worker process with one thread (the default there) runs the plate."""
    url = f"sqlite:///{tmp_path / 'plate.sqlite'}"
    r = trackdb("experiment", "run", str(plate), "--no-progress", db=url)
    assert r.returncode == 0, (r.stderr, r.exception)
    out = _summary(r.stdout)
    assert out["workers"] == 1
    assert out["movies_failed"] == 0
    state = store_state(url)
    assert all(v == 0 for v in state["defects"].values())
    with Store(url) as s:
        cond = experiments.conditions(s, "plate-1")
        dose = cond[cond.key == "dose_um"].set_index("movie")["value"]
        assert dose.to_dict() == {"A01": 0, "A02": 0.5, "A03": 1}
        with s.engine.connect() as c:  # numbers compare as numbers in movie_condition.value too
            n = c.execute(sa.text("SELECT COUNT(*) FROM movie_condition WHERE key = 'dose_um' AND value > 0.25"))
            assert n.scalar_one() == 2
    assert np.all([m["rows"]["run"] == 4 for m in state["movies"].values()])


def test_one_movie_as_ctc_tiff_stack_and_zarr(tmp_path: Path) -> None:
    """masks = "gt" (CTC folder) and masks = "labels" (a TIFF stack, a Zarr array) of the same
    label movie give the same lineage (SQLite, one worker)."""
    import tifffile
    import zarr

    spec = MovieSpec(Dynamics(n_frames=N_FRAMES, n_cells=8, diameter=10.0, division_rate=0.02, seed=7), (64, 64))
    movie = generate(spec)
    from synthetic.ctc_io import write_ctc

    write_ctc(movie, tmp_path / "ctc", raw=False)
    tifffile.imwrite(tmp_path / "stack.tif", movie.masks)
    z = zarr.open_array(str(tmp_path / "labels.zarr"), mode="w", shape=movie.masks.shape, dtype=movie.masks.dtype)
    z[:] = movie.masks
    (tmp_path / "plate.toml").write_text(
        '[experiment]\nname = "formats"\nframes_per_task = 5\n\n'
        '[[movie]]\nname = "ctc"\nsource = "ctc"\nseq = "01"\nmasks = "gt"\n\n'
        '[[movie]]\nname = "stack"\nsource = "stack.tif"\nmasks = "labels"\n\n'
        '[[movie]]\nname = "zarr"\nsource = "labels.zarr"\nmasks = "labels"\n\n'
        '[stages]\nlink = {}\nsolve = { method = "joint" }\n'
    )
    url = f"sqlite:///{tmp_path / 'formats.sqlite'}"
    r = trackdb("experiment", "run", str(tmp_path / "plate.toml"), "--no-progress", db=url)
    assert r.returncode == 0, (r.stderr, r.exception)
    state = store_state(url, "formats")
    digests = {name: m["lineage"] for name, m in state["movies"].items()}
    assert digests["ctc"] == digests["stack"] == digests["zarr"], digests
    nodes = {name: m["rows"]["node"] for name, m in state["movies"].items()}
    assert nodes["stack"] == nodes["zarr"] == int(sum(len(np.unique(f)) - 1 for f in movie.masks))


def test_probability_map_movie_through_the_candidates_stage(tmp_path: Path) -> None:
    """masks = "prob": the candidates stage builds the forests in frame chunks, then link and solve."""
    import tifffile
    from scipy import ndimage as ndi

    spec = MovieSpec(Dynamics(n_frames=N_FRAMES, n_cells=8, diameter=10.0, division_rate=0.02, seed=7), (64, 64))
    masks = generate(spec).masks
    inner = np.stack([(f > 0) & (ndi.grey_erosion(f, size=(3, 3)) == ndi.grey_dilation(f, size=(3, 3))) for f in masks])
    prob = np.where(inner, 0.9, 0.05).astype(np.float32)  # cells apart by a 1-px seam
    tifffile.imwrite(tmp_path / "prob.tif", prob)
    (tmp_path / "plate.toml").write_text(
        '[experiment]\nname = "maps"\nframes_per_task = 5\n\n'
        '[[movie]]\nname = "p1"\nsource = "prob.tif"\nmasks = "prob"\nconditions = { well = "B01" }\n\n'
        '[stages]\ncandidates = { tau = 0.5, min_area = 3 }\nlink = {}\nsolve = { method = "joint" }\n'
    )
    url = f"sqlite:///{tmp_path / 'maps.sqlite'}"
    r = trackdb("experiment", "run", str(tmp_path / "plate.toml"), "--no-progress", db=url)
    assert r.returncode == 0, (r.stderr, r.exception)
    with Store(url) as s:
        movie = s.movie("p1")
        assert runs.latest_run(s, movie.id, RunKind.CANDIDATES) is not None
        assert runs.latest_run(s, movie.id, RunKind.SOLVE) is not None
        rows = experiments.row_counts(s, movie.id)
    # about one selected cell per true cell and frame (border slivers eroded to nothing are lost)
    true_cells = int(sum(len(np.unique(f)) - 1 for f in masks))
    assert rows["node"] >= 0.9 * true_cells
    selected = rows["solution_node"]
    assert 0.9 * true_cells <= selected <= 1.05 * true_cells, (selected, true_cells)
