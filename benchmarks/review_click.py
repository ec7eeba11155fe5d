"""Review page on the bacteria movie: time from a click to the page showing the re-solved lineage.

Ground-truth masks as detections → link (100 px, k 12) → joint solve → ``sm`` probabilities,
then ``trackdb review``'s app in this process and headless Debian chromium (Playwright) on it.
Each round opens the least probable unedited doubtful link and presses ``R`` (reject: forbid
that link, one-link edit), and times, from the key press:

* ``to_lineage_s``: the new page's DOM is ready (its inline SVG is the re-solved lineage);
* ``to_loaded_s``: the page and its three crops are loaded;
* ``server_s``: edit + re-solve as the page reports it, and ``resolve_s`` (the re-solve alone,
  from the run it made: graph build + HiGHS).

``--screenshots DIR`` saves the page after the last round (``review.png``) and a refused request
(``review-conflict.png``). Runs on SQLite in a temporary folder unless ``--db`` is given.

    OMP_NUM_THREADS=1 python benchmarks/review_click.py [--data DIR] [--rounds 5] [--screenshots docs]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")

from benchmarks.common import DEFAULT_DATA, emit, log, restore_stdout, stdout_to_stderr
from trackdb.io.import_ctc import import_ctc
from trackdb.review import create_app
from trackdb.review.server import serving
from trackdb.stages.link import run_link
from trackdb.stages.solve import run_solve
from trackdb.stages.uncertainty import run_uncertainty
from trackdb.store import Store

MOVIE = "bact"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--db", default=None, help="Database URL (default: SQLite in a temporary folder).")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--screenshots", type=Path, default=None)
    ap.add_argument("--refresh", action="store_true", help="Re-solves refresh probabilities (review --refresh).")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    saved = stdout_to_stderr()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.db or f"sqlite:///{tmp}/review.sqlite", create=True)
        t0 = time.perf_counter()
        import_ctc(store, args.data, "01", MOVIE, masks_only=True)
        run_link(store, MOVIE, max_distance=100, k=12)
        run_solve(store, MOVIE, method="joint")
        run_uncertainty(store, MOVIE, "sm")
        log("store ready", round(time.perf_counter() - t0, 1), "s")
        app = create_app(store, MOVIE, author="benchmark", refresh=args.refresh)
        rounds: list[dict[str, Any]] = []
        with serving(app) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(300_000)
            for k in range(args.rounds):
                page.goto(f"{url}/movie/{MOVIE}")  # the least probable unedited item
                item = page.locator("nav li.item.link:not(.reviewed) a").first
                item.click()
                page.wait_for_load_state("load")
                node = page.get_attribute("#title", "data-node")
                t_press = time.perf_counter()
                with page.expect_navigation(wait_until="domcontentloaded"):
                    page.keyboard.press("r")
                to_lineage = time.perf_counter() - t_press
                page.wait_for_load_state("load")
                to_loaded = time.perf_counter() - t_press
                outcome = page.locator("#outcome")

                def attr(name: str, cast: type = float, outcome: object = outcome) -> float | int | None:
                    v = outcome.get_attribute(name)  # type: ignore[attr-defined]
                    return None if v is None else cast(v)

                rounds.append(
                    {
                        "node": int(node or 0),
                        "edit": attr("data-edit", int),
                        "to_lineage_s": round(to_lineage, 3),
                        "to_loaded_s": round(to_loaded, 3),
                        "server_s": attr("data-seconds"),
                        "resolve_build_s": attr("data-build-seconds"),
                        "resolve_solve_s": attr("data-solve-seconds"),
                        "links_changed": attr("data-links-changed", int),
                    }
                )
                log(f"round {k}", rounds[-1])
            if args.screenshots:
                shots(browser, url, args.screenshots)
            browser.close()
        store.close()
    restore_stdout(saved)

    def median(key: str) -> float | None:
        values = [float(r[key]) for r in rounds if r[key] is not None]
        return round(statistics.median(values), 3) if values else None

    emit(
        "review_click_refresh" if args.refresh else "review_click",
        {
            "movie": "bacteria-divisualisation 01, GT masks, SQLite",
            "edit": "reject (forbid) the least probable doubtful link, key R",
            "refresh_probabilities": args.refresh,
            "rounds": len(rounds),
            "median_to_lineage_s": median("to_lineage_s"),
            "median_to_loaded_s": median("to_loaded_s"),
            "median_server_s": median("server_s"),
            "per_round": rounds,
        },
    )


def shots(browser: Any, url: str, folder: Path) -> None:
    """``review.png``: the least probable division, before and (``review-edited.png``) after
    accepting it; ``review-conflict.png``: a second tab acting on the replaced solution."""
    folder.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(f"{url}/movie/{MOVIE}")
    page.locator("nav li.item.division:not(.reviewed) a").first.click()
    page.wait_for_load_state("load")
    page.screenshot(path=str(folder / "review.png"), full_page=True)
    stale = browser.new_page(viewport={"width": 1000, "height": 420})
    stale.goto(page.url)
    with page.expect_navigation(wait_until="load"):
        page.keyboard.press("a")
    page.screenshot(path=str(folder / "review-edited.png"), full_page=True)
    with stale.expect_navigation(wait_until="load"):
        stale.keyboard.press("r")
    stale.screenshot(path=str(folder / "review-conflict.png"))


if __name__ == "__main__":
    main()
