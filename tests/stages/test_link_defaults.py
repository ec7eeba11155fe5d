"""The link stage in physical units, and the radius and k it chooses from the cells (issue 11).

Known answers: a lattice of discs of known size moving a known step gives the radius of the rule
exactly; the spacing scales it; an anisotropic 3D stack imported with its spacing gets every
true continuation and division link within the chosen radius. Store tests run on both engines.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from synthetic.cases import case
from synthetic.ctc_io import write_ctc
from synthetic.movies import generate
from trackdb.errors import InputError
from trackdb.io.import_ctc import import_ctc, lineage_links
from trackdb.stages.link import K_MIN, RADIUS_DIAMETERS, RADIUS_MOTIONS, choose_link, link_cells, run_link
from trackdb.store import Store, runs
from trackdb.store.graph import load_candidates, load_edges
from trackdb.store.runs import LinkParams

from ..helpers import trackdb


def lattice(
    step: tuple[float, float], n_frames: int = 4, gap: float = 100.0, n: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n x n cells ``gap`` px apart, each of area 25π px² (diameter 10 px), all moving ``step``
    px per frame: (t, centroid, area)."""
    yy, xx = np.meshgrid(np.arange(n) * gap, np.arange(n) * gap, indexing="ij")
    base = np.column_stack([yy.ravel(), xx.ravel()])
    t = np.repeat(np.arange(n_frames), len(base))
    cen = np.concatenate([base + f * np.asarray(step) for f in range(n_frames)])
    return t, cen, np.full(len(t), 25.0 * math.pi)


def test_radius_from_size_for_slow_cells_and_from_motion_for_fast_ones() -> None:
    slow = choose_link(*lattice((0.0, 3.0)), spacing=(1.0, 1.0))
    assert slow.diameter == pytest.approx(10.0)
    assert slow.motion == pytest.approx(3.0)
    assert slow.neighbour == pytest.approx(100.0)
    assert slow.max_distance == pytest.approx(RADIUS_DIAMETERS * 10.0)  # 2 diameters > 3 x 3 px
    assert slow.k == K_MIN  # one cell where a cell can go, + 1, raised to the floor
    fast = choose_link(*lattice((0.0, 12.0)), spacing=(1.0, 1.0))
    assert fast.max_distance == pytest.approx(RADIUS_MOTIONS * 12.0)  # 36 > 20
    assert "radius 36" in fast.reason()
    assert "[motion]" in fast.reason()
    assert "k " not in fast.reason(k=False)  # only what was chosen is explained
    assert "radius" not in fast.reason(radius=False)


def test_spacing_changes_the_chosen_radius() -> None:
    """Half-size pixels halve every physical length, so the radius; k does not change."""
    one = choose_link(*lattice((0.0, 12.0)), spacing=(1.0, 1.0))
    half = choose_link(*lattice((0.0, 12.0)), spacing=(0.5, 0.5))
    assert half.max_distance == pytest.approx(one.max_distance / 2)
    assert half.diameter == pytest.approx(5.0)
    assert half.k == one.k
    # an anisotropic spacing stretches the motion along x only: 12 px x 2.0 = 24
    wide = choose_link(*lattice((0.0, 12.0)), spacing=(1.0, 2.0))
    assert wide.motion == pytest.approx(24.0)
    assert wide.max_distance == pytest.approx(72.0)


def test_no_frame_with_a_next_frame_is_refused() -> None:
    t, cen, area = lattice((0.0, 1.0), n_frames=1)
    with pytest.raises(InputError, match="no candidate pairs"):
        choose_link(t, cen, area, (1.0, 1.0))
    # frames 0 and 2 hold cells: only --dt 2 reaches across
    t2 = np.where(t == 0, 0, 2)
    t2 = np.concatenate([t2, np.full(len(t), 2)])
    with pytest.raises(InputError, match="next 1 frame"):
        choose_link(t2, np.concatenate([cen, cen]), np.concatenate([area, area]), (1.0, 1.0), dt=1)
    assert choose_link(t2, np.concatenate([cen, cen]), np.concatenate([area, area]), (1.0, 1.0), dt=2).k >= 1


def test_old_link_rows_keep_pixels_and_round_trip() -> None:
    old = {"candidate_run_id": 3, "max_distance": 60.0, "k": 10, "dt": 1}
    p = LinkParams.from_json(old)
    assert p.units is None
    assert p.chosen is None
    assert p.to_json() == old  # a row written before this change reads and writes as it was
    from inference.regions import candidates_from_labels

    lab = np.zeros((2, 1, 40, 40), np.uint16)
    lab[0, 0, 10:14, 10:14] = 1
    lab[1, 0, 10:14, 20:24] = 1  # 10 px along x
    cands = candidates_from_labels(lab)
    # a z spacing changes nothing here; x spacing 3 makes the 10 px step 30 physical units
    assert len(link_cells(cands, LinkParams(1, 12.0, 5), (5.0, 1.0, 3.0)).source) == 1  # pixels
    new = LinkParams(1, 12.0, 5, units="physical")
    assert len(link_cells(cands, new, (5.0, 1.0, 3.0)).source) == 0
    edges = link_cells(cands, LinkParams(1, 31.0, 5, units="physical"), (5.0, 1.0, 3.0))
    assert edges.distance.tolist() == pytest.approx([30.0])


@pytest.fixture
def stack(tmp_path: Path) -> tuple[Path, tuple[float, ...]]:
    """The quick shallow 3D stack (5 slices, z spacing 6x the pixel) as a CTC folder."""
    movie = generate(case("stack_shallow", quick=True))
    assert movie.spacing[0] / movie.spacing[1] == 6.0
    return write_ctc(movie, tmp_path / "stack", raw=False), movie.spacing


def test_anisotropic_stack_links_every_true_continuation(store: Store, stack: tuple[Path, tuple[float, ...]]) -> None:
    ds, spacing = stack
    import_ctc(store, ds, "01", "gt", spacing=spacing)  # lineage: the true links
    import_ctc(store, ds, "01", "m", masks_only=True, spacing=spacing)
    movie = store.movie("m")
    assert movie.spacing == spacing
    run_id = run_link(store, "m")
    p = runs.get_run(store, run_id).typed(LinkParams)
    assert p.units == "physical"
    assert p.chosen is not None
    assert "physical units" in p.chosen["reason"]
    summary = runs.get_run(store, run_id).summary
    assert summary is not None
    assert summary["chosen"] == "from the cells"

    cands, ids = load_candidates(store, p.candidate_run_id, 3, with_masks=False)
    edges, _ = load_edges(store, run_id, ids)
    have = set(
        zip(cands.t[edges.source].tolist(), cands.label[edges.source].tolist(), cands.label[edges.target].tolist())
    )
    from trackdb.io import ctc

    tracks = ctc.read_man_track(ds / "01_GT" / "TRA" / "man_track.txt")
    src, dst = lineage_links(cands.t, cands.label, tracks)
    assert len(src) > 50
    true = set(zip(cands.t[src].tolist(), cands.label[src].tolist(), cands.label[dst].tolist()))
    assert true <= have  # every true continuation and division link is a candidate
    # distances are physical: z steps count 6x an x step
    phys = np.linalg.norm((cands.centroid[edges.target] - cands.centroid[edges.source]) * np.asarray(spacing), axis=1)
    assert edges.distance == pytest.approx(phys)
    assert edges.distance.max() <= p.max_distance
    assert len(edges.source) <= p.k * len(cands)
    # k given, the radius chosen: the params keep the given k and explain the radius only
    given = runs.get_run(store, run_link(store, "m", k=7)).typed(LinkParams)
    assert given.k == 7
    assert given.max_distance == p.max_distance
    assert given.chosen is not None
    assert given.chosen["reason"].startswith("radius")
    assert "k 7" not in given.chosen["reason"]


def test_spacing_changes_the_radius_the_cli_chooses(db_url: str, synthetic_ctc: Path) -> None:
    """The same masks imported with half-size pixels: the CLI's chosen radius halves, and an
    explicit --max-distance is in physical units."""
    chosen = {}
    for name, spacing in (("one", "1,1"), ("half", "0.5,0.5")):
        r = trackdb("import-ctc", str(synthetic_ctc), "--movie", name, "--masks-only", "--spacing", spacing, db=db_url)
        assert r.returncode == 0, r.stderr
        assert f"spacing {spacing}" in r.stdout
        r = trackdb("link", "--movie", name, db=db_url)
        assert r.returncode == 0, r.stderr
        assert "chosen from the cells: radius" in r.stdout
        with Store(db_url) as store:
            run = runs.latest_run(store, store.movie(name).id, runs.RunKind.LINK)
            assert run is not None
            chosen[name] = run.typed(LinkParams).max_distance
    assert chosen["half"] == pytest.approx(chosen["one"] / 2)
    listed = trackdb("movies", db=db_url).stdout
    assert "0.5,0.5" in listed
    # an explicit radius is physical: 5 units at 0.5 per pixel reach as far as 10 at 1 per pixel
    distances = {}
    for name, radius in (("one", "10"), ("half", "5")):
        r = trackdb("link", "--movie", name, "--max-distance", radius, "--k", "5", db=db_url)
        assert r.returncode == 0, r.stderr
        assert "chosen" not in r.stdout
        with Store(db_url) as store:
            run = runs.latest_run(store, store.movie(name).id, runs.RunKind.LINK)
            assert run is not None
            assert run.typed(LinkParams).max_distance == float(radius)
            _, ids = load_candidates(store, run.typed(LinkParams).candidate_run_id, 2, with_masks=False)
            distances[name] = load_edges(store, run.id, ids)[0].distance
    assert len(distances["one"]) > 10
    assert distances["half"] == pytest.approx(distances["one"] / 2)


def test_gap_linking_with_chosen_radius(db_url: str, synthetic_ctc: Path) -> None:
    """--dt 3 with the chosen radius still closes the fixture's two-frame gap (3 -> 4)."""
    assert trackdb("import-ctc", str(synthetic_ctc), "--movie", "m", "--masks-only", db=db_url).returncode == 0
    r = trackdb("link", "--movie", "m", "--dt", "3", db=db_url)
    assert r.returncode == 0, r.stderr
    with Store(db_url) as store:
        run = runs.latest_run(store, store.movie("m").id, runs.RunKind.LINK)
        assert run is not None
        cands, ids = load_candidates(store, run.typed(LinkParams).candidate_run_id, 2, with_masks=False)
        edges, _ = load_edges(store, run.id, ids)
    pairs = set(zip(cands.label[edges.source].tolist(), cands.label[edges.target].tolist(), edges.dt.tolist()))
    assert (3, 4, 3) in pairs  # track 3 ends at frame 4, its daughter 4 starts at frame 7
