"""A solved synthetic movie with probabilities, and the review app over it (both engines)."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from trackdb.io.import_ctc import import_ctc
from trackdb.review import create_app
from trackdb.stages.link import run_link
from trackdb.stages.solve import run_solve
from trackdb.stages.uncertainty import run_uncertainty
from trackdb.store import Store

MOVIE = "det"
AUTHOR = "tester"


@pytest.fixture
def reviewed(store: Store, synthetic_ctc: Path) -> Store:
    """The synthetic movie (10 frames, a division, a gap) with GT masks as candidates, linked,
    solved jointly, and with ``sm`` probabilities of that solution."""
    import_ctc(store, synthetic_ctc, "01", MOVIE, masks_only=True)
    run_link(store, MOVIE, max_distance=30, k=5, dt=3)
    run_solve(store, MOVIE, method="joint", time_limit=60)
    run_uncertainty(store, MOVIE, "sm")
    return store


@pytest.fixture
def client(reviewed: Store) -> TestClient:
    app = create_app(reviewed, MOVIE, author=AUTHOR, hosts=["testserver"])
    return TestClient(app, follow_redirects=False)
