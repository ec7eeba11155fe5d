"""The review page end to end in a real browser: Debian's chromium, headless, driven by Playwright,
clicking and typing through a review of the synthetic movie and checking the store afterwards;
on the bacteria movie it measures the time from a click to the page with the new lineage.

Set-up installs chromium with apt-get when it is missing (root on Debian, as in CI) and skips
with the reason when that is impossible. Playwright's own browser download is never used.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from trackdb.io.import_ctc import import_ctc
from trackdb.review import create_app
from trackdb.review.server import serving
from trackdb.stages.link import run_link
from trackdb.stages.solve import run_solve
from trackdb.stages.uncertainty import run_uncertainty, uncertain
from trackdb.store import Store, probabilities, runs, schema

from ..helpers import snapshot
from .conftest import AUTHOR, MOVIE
from .test_app import cell_at, cells, current, edit_rows, links

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _install_chromium() -> str | None:
    """apt-get update + install chromium; None when it worked, else why not."""
    if shutil.which("apt-get") is None:
        return "chromium is missing and there is no apt-get to install it"
    if os.geteuid() != 0:
        return "chromium is missing and installing it needs root (apt-get install chromium chromium-driver)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium", "chromium-driver"]):
        try:
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
        except subprocess.TimeoutExpired:
            return f"{' '.join(cmd)} did not finish in 20 minutes"
        if r.returncode != 0:
            tail = (r.stderr.strip().splitlines() or ["no message"])[-1]
            return f"{' '.join(cmd)} failed ({r.returncode}): {tail}"
    return None if CHROMIUM.exists() else f"apt-get installed chromium but {CHROMIUM} is not there"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian chromium under Playwright, for the whole session."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the test extra's playwright is not installed")
    if not CHROMIUM.exists():
        why = _install_chromium()
        if why:
            pytest.skip(why)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def site(reviewed: Store) -> Iterator[str]:
    with serving(create_app(reviewed, MOVIE, author=AUTHOR)) as url:
        yield url


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


def timed(page: Any, act: Any) -> float:
    """Seconds from an action (a click, a key) to the loaded page it leads to (crops and all)."""
    t0 = time.perf_counter()
    with page.expect_navigation(wait_until="load"):
        act()
    return time.perf_counter() - t0


def images_loaded(page: Any) -> bool:
    return bool(page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"))


def test_click_through_a_review(page: Any, site: str, reviewed: Store) -> None:
    table = uncertain(reviewed, MOVIE, 0.8)
    # the least confident division (the movie's divisions may all be confident)
    divisions = probabilities.doubtful(
        reviewed, runs.latest_uncertainty_run(reviewed, reviewed.movie(MOVIE)), current(reviewed), 1.0 + 1e-9
    )
    first = table.iloc[0]
    page.goto(site)
    assert page.get_attribute("#title", "data-node") == str(first["node_id"])
    assert page.locator("#lineage svg").count() == 1
    assert images_loaded(page)

    # reject the least probable link with its keyboard shortcut
    assert first["kind"] == "link"
    child, mother = int(first["node_id"]), int(first["mother_id"])
    sid0 = current(reviewed)
    seconds = timed(page, lambda: page.keyboard.press("r"))
    assert page.locator("#outcome").is_visible()
    assert page.inner_text("#solution") == str(current(reviewed)) != str(sid0)
    assert (mother, child) not in links(reviewed)
    [row] = edit_rows(reviewed)
    assert (row["kind"], row["author"], row["payload"]["edge_id"] is not None) == ("forbid_edge", AUTHOR, True)
    print(f"\nclick to updated lineage (synthetic, reject a link): {seconds:.3f} s", file=sys.stderr)

    # the division: say it is none with the button
    div = next(r for r in divisions.to_dict("records") if r["kind"] == "division")
    page.goto(f"{site}/movie/{MOVIE}/cell/{div['node_id']}?kind=division")
    timed(page, lambda: page.click("#f-division-false button"))
    assert sum(s == div["node_id"] for s, _ in links(reviewed)) <= 1
    assert edit_rows(reviewed)[-1]["kind"] == "division"

    # split the elongated cell of frame 1 by drawing the cut on its crop, then undo it
    elongated = cell_at(reviewed, 1, 20, 17)
    page.goto(f"{site}/movie/{MOVIE}/cell/{elongated}")
    img = page.locator("#crop-this")
    y0, x0, scale = (float(img.get_attribute(a) or 0) for a in ("data-y0", "data-x0", "data-scale"))
    for y, x in ((12.0, 17.0), (28.0, 17.0)):
        img.click(position={"x": (x - x0 + 0.5) * scale, "y": (y - y0 + 0.5) * scale})
    drawn = [float(v) for v in page.input_value("#split-line").split(",")]
    assert drawn == pytest.approx([12.0, 17.0, 28.0, 17.0], abs=1.0)
    timed(page, lambda: page.keyboard.press("s"))
    split = edit_rows(reviewed)[-1]
    assert split["kind"] == "split_cell"
    assert set(split["payload"]["cells"]) <= cells(reviewed)
    assert elongated not in cells(reviewed)
    assert page.get_attribute("#title", "data-node") == str(split["payload"]["cells"][0])
    timed(page, lambda: page.keyboard.press("u"))
    assert edit_rows(reviewed)[-1]["kind"] == "remove"
    assert elongated in cells(reviewed)

    # relink by clicking a parent chip
    late = cell_at(reviewed, 3, 50, 54)
    parent = cell_at(reviewed, 2, 50, 56)
    page.goto(f"{site}/movie/{MOVIE}/cell/{late}")
    timed(page, lambda: page.click(f'#f-relink button.chip[value="{parent}"]'))
    assert (parent, late) in links(reviewed)
    page.screenshot(path=str(Path(os.environ.get("TRACKDB_SCREENSHOTS", "/tmp")) / "review-synthetic.png"))


def test_a_stale_page_is_a_conflict_in_the_browser(browser: Any, site: str, reviewed: Store) -> None:
    node = cell_at(reviewed, 5, 50, 50)
    context = browser.new_context()
    one, two = context.new_page(), context.new_page()
    one.goto(f"{site}/movie/{MOVIE}/cell/{node}")
    two.goto(f"{site}/movie/{MOVIE}/cell/{node}")
    timed(one, lambda: one.click("#f-end-track button"))  # the first editor re-solves
    before = snapshot(reviewed)
    with two.expect_navigation(wait_until="load") as nav:
        two.click("#f-accept button")  # the second still shows the old solution
    assert nav.value.status == 409
    assert "is current now" in two.inner_text("#reason")
    assert snapshot(reviewed) == before
    context.close()


def test_unknown_movie_and_cell_pages(page: Any, site: str, reviewed: Store) -> None:
    r = page.goto(f"{site}/movie/nope")
    assert r.status == 404
    assert "no movie 'nope'" in page.inner_text("#reason")
    r = page.goto(f"{site}/movie/{MOVIE}/cell/999999")
    assert r.status == 404
    assert "no cell 999999" in page.inner_text("#reason")


@pytest.mark.slow
def test_click_to_lineage_on_the_bacteria_movie(browser: Any, bacteria: Path, tmp_path: Path) -> None:
    """The figure of issue 13: click → page with the re-solved lineage, one-link edit (forbid the
    least probable selected link), bacteria movie with GT masks, SQLite. Printed, not asserted."""
    store = Store(f"sqlite:///{tmp_path / 'bact.sqlite'}", create=True)
    import_ctc(store, bacteria, "01", "bact", masks_only=True)
    run_link(store, "bact", max_distance=100, k=12)
    run_solve(store, "bact", method="joint")
    run_uncertainty(store, "bact", "sm")
    first = uncertain(store, "bact", 0.8).query("kind == 'link'").iloc[0]
    se = schema.solution_edge.c
    with serving(create_app(store, "bact", author=AUTHOR)) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        pg = context.new_page()
        pg.set_default_timeout(120_000)
        pg.goto(f"{url}/movie/bact/cell/{int(first['node_id'])}?kind=link")
        seconds = timed(pg, lambda: pg.keyboard.press("r"))
        context.close()
    with store.engine.connect() as c:
        kept = c.execute(
            sa.select(sa.func.count()).where(
                se.solution_id == store.movie("bact").current_solution_id,
                se.source_id == int(first["mother_id"]),
                se.target_id == int(first["node_id"]),
            )
        ).scalar_one()
    assert kept == 0
    print("\n" + json.dumps({"click_to_lineage_s": round(seconds, 3), "movie": "bacteria"}), file=sys.stderr)
    store.close()
