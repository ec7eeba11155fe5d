"""``trackdb uncertain``: what the latest uncertainty run of the current solution doubts.

A module of its own so that listing doubts, one SQL query, does not import the solvers: the
uncertainty stage pulls in scipy, the cost model and HiGHS, about half a second of every
``trackdb uncertain`` (``benchmarks/doubt_workflow.py``). :mod:`trackdb.stages.uncertainty`
re-exports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trackdb.errors import InputError
from trackdb.store import probabilities, runs
from trackdb.store.core import Store

if TYPE_CHECKING:
    import pandas as pd


def uncertain(store: Store, movie_name: str, below: float = 0.8) -> pd.DataFrame:
    """Links, divisions and cells of the current solution with probability below ``below``,
    from the latest uncertainty run of that solution (one SQL query)."""
    if not 0.0 <= float(below) <= 1.0:
        raise InputError(f"--below must lie in [0, 1], got {below}")
    movie = store.movie(movie_name)
    run_id = runs.latest_uncertainty_run(store, movie)
    return probabilities.doubtful(store, run_id, store.solution_id(movie), below)
