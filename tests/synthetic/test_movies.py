"""Synthetic movies: lineage consistent with the masks, CTC round trip, subsampling, 3D, flaws."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import ndimage as ndi

from synthetic.cases import CASES, case
from synthetic.ctc_io import read_spacing, write_ctc
from synthetic.movies import MovieSpec, SyntheticMovie, generate
from synthetic.simulate import Dynamics
from trackdb.io import ctc


def small(**kw: Any) -> MovieSpec:
    dyn = Dynamics(
        n_frames=30, n_cells=12, diameter=12.0, step=0.3, drift=(1.0, 0.5), division_rate=0.03, min_cycle=6, seed=7
    )
    return MovieSpec(
        replace(dyn, **{k: v for k, v in kw.items() if hasattr(dyn, k)}),
        (96, 96),
        **{k: v for k, v in kw.items() if not hasattr(dyn, k)},
    )


def links(movie: SyntheticMovie) -> set[tuple[int, int, int, int]]:
    """(t, label, t', label') of every CTC link: track continuations and parent → child."""
    out = set()
    end = {int(k): int(e) for k, _, e, _ in movie.tracks.tolist()}
    for k, s, e, p in movie.tracks.tolist():
        out |= {(t, k, t + 1, k) for t in range(s, e)}
        if p:
            out.add((end[p], p, s, k))
    return out


@pytest.mark.parametrize("name", CASES)
def test_quick_cases_round_trip_through_the_ctc_reader(name: str, tmp_path: Path) -> None:
    movie = generate(case(name, quick=True))
    root = write_ctc(movie, tmp_path / name)
    tra = root / "01_GT" / "TRA"
    masks = ctc.read_stack(ctc.frame_files(tra, "man_track"), labels=True)
    tracks = ctc.read_man_track(tra / "man_track.txt")
    ctc.check_lineage(masks, tracks, tra)  # raises on any disagreement between masks and table
    assert np.array_equal(masks, movie.masks)
    assert np.array_equal(tracks, movie.tracks)
    raw = ctc.read_stack(ctc.frame_files(root / "01", "t"), labels=False)
    assert raw.shape == masks.shape
    assert raw.dtype == np.uint16
    assert raw[masks > 0].mean() > raw[masks == 0].mean() + 100  # cells are brighter than background
    assert read_spacing(root) == movie.spacing


def test_same_spec_same_movie_and_seed_changes_it() -> None:
    a, b = generate(small()), generate(small())
    assert np.array_equal(a.masks, b.masks)
    assert np.array_equal(a.tracks, b.tracks)
    c = generate(small(seed=8))
    assert not np.array_equal(a.masks, c.masks)


def test_cells_divide_enter_and_leave_the_view() -> None:
    movie = generate(small())
    t_last = len(movie.masks) - 1
    tr = movie.tracks
    children = set(tr[tr[:, 3] > 0, 3].tolist())
    assert movie.n_divisions >= 2
    entering = tr[(tr[:, 1] > 0) & (tr[:, 3] == 0)]
    leaving = tr[(tr[:, 2] < t_last) & ~np.isin(tr[:, 0], list(children))]
    assert len(entering) >= 2
    assert len(leaving) >= 2
    # a cell that leaves is last seen touching the border
    for lab, _s, e, _p in leaving.tolist():
        ys, xs = np.nonzero(movie.masks[e] == lab)
        assert min(ys.min(), xs.min()) == 0 or max(ys.max(), xs.max()) == 95
    # daughters appear in the frame after the mother's last, next to her
    for lab, s, _e, p in tr[tr[:, 3] > 0].tolist():
        pe = int(tr[tr[:, 0] == p][0, 2])
        assert s == pe + 1
        mom = np.argwhere(movie.masks[pe] == p).mean(axis=0)
        kid = np.argwhere(movie.masks[s] == lab).mean(axis=0)
        assert np.linalg.norm(mom - kid) < 2.5 * 12


def test_dying_cells_end_without_daughters() -> None:
    base = generate(small(division_rate=0.0))
    dying = generate(small(division_rate=0.0, death_rate=0.05))
    assert dying.n_divisions == 0
    assert dying.info["n_deaths_in_view"] >= 5
    assert base.info["n_deaths_in_view"] == 0
    assert (dying.tracks[:, 3] == 0).all()
    # deaths shorten tracks: fewer cells in view at the end than without them
    assert (dying.masks[-1] > 0).sum() < (base.masks[-1] > 0).sum()


@pytest.mark.parametrize("every", [2, 4])
def test_subsampled_lineage_matches_paths_in_the_full_movie(every: int) -> None:
    full = generate(small())
    sub = generate(small(every=every))
    assert np.array_equal(sub.masks > 0, full.masks[::every] > 0)  # the same frames, relabelled
    # the label of each subsampled cell in the full movie (same pixels)
    succ: dict[tuple[int, int], set[tuple[int, int]]] = {}
    for t, k, t2, k2 in links(full):
        succ.setdefault((t, k), set()).add((t2, k2))

    def reach(node: tuple[int, int], t_end: int) -> set[tuple[int, int]]:
        front = {node}
        for _ in range(t_end - node[0]):
            front = set().union(*(succ.get(n, set()) for n in front))
        return {n for n in front if n[0] == t_end}

    def full_label(j: int, lab: int) -> int:
        vals = np.unique(full.masks[j * every][sub.masks[j] == lab])
        assert len(vals) == 1
        assert vals[0] > 0
        return int(vals[0])

    def inner(j: int, lab: int) -> bool:
        ys, xs = np.nonzero(sub.masks[j] == lab)
        return bool(min(ys.min(), xs.min()) > 0 and max(ys.max(), xs.max()) < 95)

    # a cell may leave the view between two kept frames and come back (a new track in the full movie,
    # the same one in the subsampled movie): compare links between cells clear of the border
    expected = set()
    for j in range(len(sub.masks) - 1):
        here = [int(v) for v in np.unique(sub.masks[j]) if v]
        there = {full_label(j + 1, int(v)): int(v) for v in np.unique(sub.masks[j + 1]) if v}
        for lab in here:
            for _, k2 in reach((j * every, full_label(j, lab)), (j + 1) * every):
                if k2 in there:
                    expected.add((j, lab, j + 1, there[k2]))
    clear = {lk for lk in links(sub) if inner(lk[0], lk[1]) and inner(lk[2], lk[3])}
    assert clear == {lk for lk in expected if inner(lk[0], lk[1]) and inner(lk[2], lk[3])}
    assert len(clear) > 0.5 * len(links(sub))
    assert sub.n_divisions >= 1


def test_missed_detections_are_gaps_of_one_or_two_frames_with_parent() -> None:
    movie = generate(small(missed_rate=0.03, division_rate=0.0))
    tr = movie.tracks
    end = dict(zip(tr[:, 0].tolist(), tr[:, 2].tolist()))
    gaps = [s - end[p] - 1 for _, s, _, p in tr[tr[:, 3] > 0].tolist()]
    assert movie.info["n_missed"] == sum(gaps) > 0
    assert set(gaps) == {1, 2}
    assert movie.n_divisions == 0  # a gap is a one-child link, not a division


def test_shallow_stack_cells_span_every_slice_and_spacing_is_kept() -> None:
    spec = case("stack_shallow", quick=True)
    movie = generate(replace(spec, dynamics=replace(spec.dynamics, n_frames=30, division_rate=0.02)))
    assert movie.n_divisions >= 3  # daughters, smaller than their mother, must span the slices too
    assert movie.masks.ndim == 4
    assert movie.masks.shape[1] == 5
    assert movie.spacing == (3.0, 0.5, 0.5)
    for frame in movie.masks:
        mid = frame[2]
        edge = set(np.unique(np.concatenate([mid[0], mid[-1], mid[:, 0], mid[:, -1]])).tolist())
        inner = set(np.unique(mid).tolist()) - edge - {0}  # balls cut by the xy border shrink off-centre
        assert len(inner) >= 3
        for z in frame:
            assert inner <= set(np.unique(z).tolist())  # every inner cell is in all five slices
    # anisotropy: a cell is ~6x wider in pixels along x than along z
    lab = int(np.bincount(movie.masks[0].ravel())[1:].argmax()) + 1
    zs, _, xs = np.nonzero(movie.masks[0] == lab)
    assert xs.max() - xs.min() > 3 * (zs.max() - zs.min() + 1)


def test_shallow_stack_daughters_share_their_mothers_volume() -> None:
    # cells of a layer are columns through it: a division halves the volume, so the daughters
    # together are about their mother's size (balls that had to cross all five slices made them
    # 0.81 of her each, 1.6x together)
    spec = case("stack_shallow", quick=True)
    movie = generate(replace(spec, dynamics=replace(spec.dynamics, n_frames=30, division_rate=0.02)))
    sizes = [np.bincount(f.ravel()) for f in movie.masks]
    tr = movie.tracks
    end = dict(zip(tr[:, 0].tolist(), tr[:, 2].tolist()))
    kids: dict[int, list[tuple[int, int]]] = {}
    for lab, s, _e, p in tr.tolist():
        if p > 0:
            kids.setdefault(p, []).append((lab, s))
    ratios = []
    for p, ks in kids.items():
        if len(ks) != 2 or ks[0][1] != end[p] + 1:
            continue
        t = end[p]
        mother = sizes[t][p] if p < len(sizes[t]) else 0
        pair = sum(int(sizes[t + 1][k]) if k < len(sizes[t + 1]) else 0 for k, _ in ks)
        if mother > 0 and pair > 0 and not (movie.masks[t][:, [0, -1]] == p).any():
            ratios.append(pair / mother)
    assert len(ratios) >= 2
    assert 0.75 < float(np.median(ratios)) < 1.25


def test_deep_stack_cells_move_in_z() -> None:
    movie = generate(case("stack_deep", quick=True))
    assert movie.masks.shape[1:] == (16, 64, 64)
    assert movie.spacing == (2.0, 0.5, 0.5)
    z_top = {int(v) for v in np.unique(movie.masks[:, :3]) if v}
    z_bottom = {int(v) for v in np.unique(movie.masks[:, -3:]) if v}
    assert z_top
    assert z_bottom
    assert z_top != z_bottom
    moved = [
        abs(np.argwhere(movie.masks[e] == lab)[:, 0].mean() - np.argwhere(movie.masks[s] == lab)[:, 0].mean())
        for lab, s, e, _ in movie.tracks.tolist()
        if e > s
    ]
    assert max(moved) >= 2.0  # some cell moved by two slices or more


def test_fragments_and_one_pixel_objects_like_real_annotations() -> None:
    movie = generate(small(fragment_rate=0.05, speck_rate=0.02))
    assert movie.info["n_fragments"] > 0
    assert movie.info["n_specks"] > 0
    multi = 0
    for frame in movie.masks:
        for lab, box in enumerate(ndi.find_objects(frame), start=1):
            if box is not None and ndi.label(frame[box] == lab)[1] > 1:
                multi += 1
    assert multi == movie.info["n_fragments"]
    one_px = [k for k, s, e, p in movie.tracks.tolist() if s == e and (movie.masks[s] == k).sum() == 1]
    assert len(one_px) >= movie.info["n_specks"]


def test_overcrowding_is_refused_not_rendered() -> None:
    with pytest.raises(ValueError, match="overlap"):
        generate(small(n_cells=60, division_rate=0.3, min_cycle=1))


def test_bad_spacing_is_refused() -> None:
    dyn = Dynamics(n_frames=2, n_cells=2, diameter=5.0)
    with pytest.raises(ValueError, match="spacing"):
        MovieSpec(dyn, (5, 32, 32), spacing=(1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        MovieSpec(dyn, (32, 32), spacing=(0.0, 1.0))
