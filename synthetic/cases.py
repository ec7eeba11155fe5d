"""The named synthetic cases of the generalisation benchmark (issue 11), full size and quick.

Each case isolates something real data lacks or has too little of; the parameters sit inside the
ranges of real time-lapse data (cell diameter 8-30 px, mean displacement 0.2-0.5 diameters per
frame plus drift, 20-300 cells per frame) and were set from those ranges before any tracker was
run on them. Seeds are fixed so that every run sees the same movies.

* ``nuclei_border`` sparse nuclei that drift, divide and cross the image border;
* ``enter_leave_die`` a flow of cells through the field (many enter and leave), deaths, and the
  annotation flaws of real data (stray fragments, 1-pixel objects) at the rate found in the
  mouse-epidermis annotations (0.22% and 0.07% of objects);
* ``stack_shallow`` 5 z-slices, z spacing 6x the pixel, every cell spans every slice (a column
  through the layer);
* ``stack_deep`` 40 z-slices, z spacing 4x the pixel, cells move and leave along z too;
* ``gaps`` missed detections: cells absent 1-2 frames while in view, then back;
* ``every2nd`` / ``every4th`` one 120-frame movie of slow persistent cells, subsampled;
* ``speed`` 86 frames x ~300 small nuclei with ~100 divisions (~26,000 cells), for timing.
"""

from __future__ import annotations

from dataclasses import replace

from .movies import MovieSpec
from .simulate import Dynamics

CASES = ("nuclei_border", "enter_leave_die", "stack_shallow", "stack_deep", "gaps", "every2nd", "every4th")


def _subsample_base(quick: bool) -> MovieSpec:
    dyn = Dynamics(
        n_frames=24 if quick else 120,
        n_cells=15 if quick else 60,
        diameter=14.0,
        step=0.2,
        persistence=0.7,
        drift=(0.4, 0.3),
        division_rate=0.006,
        min_cycle=20,
        seed=105,
    )
    return MovieSpec(dyn, (192, 192) if quick else (384, 384))


def case(name: str, quick: bool = False) -> MovieSpec:
    """The specification of case ``name`` (``quick``: a few small frames for a smoke run)."""
    if name == "nuclei_border":
        dyn = Dynamics(
            n_frames=20 if quick else 65,
            n_cells=15 if quick else 45,
            diameter=16.0,
            step=0.3,
            drift=(0.6, -0.8),
            division_rate=0.012,
            min_cycle=15,
            seed=101,
        )
        return MovieSpec(dyn, (192, 192) if quick else (384, 384))
    if name == "enter_leave_die":
        dyn = Dynamics(
            n_frames=20 if quick else 60,
            n_cells=30 if quick else 120,
            diameter=12.0,
            step=0.35,
            drift=(2.4, 4.2),
            division_rate=0.008,
            min_cycle=15,
            death_rate=0.01,
            seed=102,
        )
        return MovieSpec(dyn, (256, 256) if quick else (512, 512), fragment_rate=0.0022, speck_rate=0.0007)
    if name == "stack_shallow":
        # 5 slices x 3.0 um: a layer no deeper than the cells, which span it as columns (a disc
        # at every slice, synthetic.render), so a division halves the area as it halves the
        # volume (balls wide enough to cross all five slices forced daughters to 0.81 of their
        # mother's area each, 1.6x the mother together)
        dyn = Dynamics(
            n_frames=10 if quick else 40,
            n_cells=8 if quick else 25,
            diameter=16.0,
            step=0.25,
            drift=(0.0, 0.4, -0.3),
            division_rate=0.01,
            min_cycle=12,
            fixed_axes=(0,),
            seed=103,
        )
        return MovieSpec(dyn, (5, 128, 128) if quick else (5, 256, 256), spacing=(3.0, 0.5, 0.5))
    if name == "stack_deep":
        dyn = Dynamics(
            n_frames=8 if quick else 30,
            n_cells=8 if quick else 60,
            diameter=10.0,
            step=0.3,
            drift=(0.3, 0.3, -0.3),
            division_rate=0.01,
            min_cycle=12,
            seed=104,
        )
        shape = (16, 64, 64) if quick else (40, 160, 160)
        return MovieSpec(dyn, shape, spacing=(2.0, 0.5, 0.5))
    if name == "gaps":
        dyn = Dynamics(
            n_frames=15 if quick else 50,
            n_cells=15 if quick else 60,
            diameter=14.0,
            step=0.25,
            drift=(0.5, 0.5),
            division_rate=0.01,
            min_cycle=15,
            seed=106,
        )
        return MovieSpec(dyn, (192, 192) if quick else (384, 384), missed_rate=0.02, max_missed=2)
    if name == "every2nd":
        return replace(_subsample_base(quick), every=2)
    if name == "every4th":
        return replace(_subsample_base(quick), every=4)
    if name == "speed":
        dyn = Dynamics(
            n_frames=20 if quick else 86,
            n_cells=30 if quick else 258,
            diameter=9.0,
            step=0.3,
            drift=(0.5, 0.3),
            division_rate=0.0045,
            min_cycle=15,
            seed=107,
        )
        return MovieSpec(dyn, (256, 256) if quick else (1024, 1024))
    raise ValueError(f"unknown synthetic case {name!r}; known: {', '.join(CASES + ('speed',))}")
