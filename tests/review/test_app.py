"""The review app through HTTP (Starlette's test client) on both engines: the queue, crops,
lineage, every action's edit and re-solve, and bad input refused with a 4xx and the store unchanged."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image
from starlette.testclient import TestClient

from trackdb.review.crops import ROLE_COLOURS
from trackdb.stages.uncertainty import uncertain
from trackdb.store import Store, schema

from ..helpers import snapshot, trackdb
from .conftest import AUTHOR, MOVIE


def current(store: Store) -> int:
    sid = store.movie(MOVIE).current_solution_id
    assert sid is not None
    return int(sid)


def links(store: Store) -> set[tuple[int, int]]:
    se = schema.solution_edge.c
    with store.engine.connect() as c:
        rows = c.execute(sa.select(se.source_id, se.target_id).where(se.solution_id == current(store)))
        return {(int(a), int(b)) for a, b in rows}


def cells(store: Store) -> set[int]:
    sn = schema.solution_node.c
    with store.engine.connect() as c:
        return {int(n) for n in c.execute(sa.select(sn.node_id).where(sn.solution_id == current(store))).scalars()}


def cell_at(store: Store, t: int, y: float, x: float) -> int:
    """The candidate of frame ``t`` whose centre is nearest ``(y, x)``."""
    n = schema.node.c
    with store.engine.connect() as c:
        rows = c.execute(sa.select(n.id, n.y, n.x).where(n.t == t)).all()
    return int(min(rows, key=lambda r: (r[1] - y) ** 2 + (r[2] - x) ** 2)[0])


def edit_rows(store: Store) -> list[dict]:
    with store.engine.connect() as c:
        return [dict(r) for r in c.execute(sa.select(schema.edit).order_by(schema.edit.c.id)).mappings()]


def post(client: TestClient, store: Store, action: str, node: int, kind: str = "cell", **fields: object):
    data = {"action": action, "node": str(node), "kind": kind, "based_on": str(current(store))}
    data.update({k: str(v) for k, v in fields.items()})
    return client.post(f"/movie/{MOVIE}/edit", data=data)


def follow(client: TestClient, response):
    assert response.status_code == 303, response.text[:500]
    return client.get(response.headers["location"])


def test_queue_lists_the_least_probable_first(client: TestClient, reviewed: Store) -> None:
    table = uncertain(reviewed, MOVIE, 0.8)
    r = client.get("/", follow_redirects=True)
    assert r.status_code == 200
    keys = re.findall(r'class="item [^"]*"\s+data-key="([a-z]+:\d+)"', r.text)
    assert keys == [f"{k}:{n}" for k, n in zip(table["kind"], table["node_id"])]
    first = table.iloc[0]
    assert str(r.url).endswith(f"/movie/{MOVIE}/cell/{first['node_id']}?kind={first['kind']}")
    assert f'data-node="{first["node_id"]}"' in r.text
    assert "<svg" in r.text  # the lineage, drawn inline


def test_crop_is_a_png_with_the_cells_outlined(client: TestClient, reviewed: Store) -> None:
    mother = cell_at(reviewed, 2, 20, 19)  # the elongated cell before the division
    r = client.get(f"/movie/{MOVIE}/crop/{mother}/2.png")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    img = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    assert img.shape[0] == img.shape[1] >= 256
    focus = np.all(img == ROLE_COLOURS["focus"], axis=2).sum()
    daughters = np.all(img == ROLE_COLOURS["daughter"], axis=2).sum()
    assert focus > 50  # the outline (and id) of the cell under review
    assert daughters == 0  # its daughters live in frame 3, not here
    r3 = np.asarray(Image.open(io.BytesIO(client.get(f"/movie/{MOVIE}/crop/{mother}/3.png").content)).convert("RGB"))
    assert np.all(r3 == ROLE_COLOURS["daughter"], axis=2).sum() > 50
    assert client.get(f"/movie/{MOVIE}/crop/{mother}/99.png").status_code == 404


def test_lineage_svg_draws_the_family(client: TestClient, reviewed: Store) -> None:
    mother = cell_at(reviewed, 2, 20, 19)
    r = client.get(f"/movie/{MOVIE}/lineage/{mother}.svg")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("image/svg+xml")
    # tracks 1 -> (2, 3) and 3 -> 4 after a gap: four tracks, one division dot
    assert 'data-tracks="4"' in r.text
    assert r.text.count('class="division"') == 1
    assert 'class="focus-cell"' in r.text


def test_lineage_figure_for_download(client: TestClient, reviewed: Store) -> None:
    mother = cell_at(reviewed, 2, 20, 19)
    png = client.get(f"/movie/{MOVIE}/lineage-figure/{mother}.png")
    assert png.status_code == 200
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"/movie/{MOVIE}/lineage-figure/{mother}.svg").text.lstrip().startswith("<?xml")
    bad = client.get(f"/movie/{MOVIE}/lineage-figure/{mother}.gif")
    assert bad.status_code == 400
    assert "png or svg" in bad.text


def test_reject_a_link_forbids_it_and_resolves(client: TestClient, reviewed: Store) -> None:
    table = uncertain(reviewed, MOVIE, 0.8)
    link = table[table["kind"] == "link"].iloc[0]
    child, mother = int(link["node_id"]), int(link["mother_id"])
    sid0 = current(reviewed)
    assert (mother, child) in links(reviewed)
    page = follow(client, post(client, reviewed, "reject", child, "link"))
    assert page.status_code == 200
    assert current(reviewed) != sid0
    assert (mother, child) not in links(reviewed)
    [row] = edit_rows(reviewed)
    assert row["kind"] == "forbid_edge"
    assert row["author"] == AUTHOR
    assert row["payload"]["source_id"] == mother
    assert row["payload"]["target_id"] == child
    assert row["run_id"] is not None
    assert f'data-edit="{row["id"]}"' in page.text  # the outcome, with an undo button
    assert f'id="solution">{current(reviewed)}<' in page.text
    # the child is still doubtful (now as a cell that appears), and marked as edited
    assert re.findall(rf'data-key="[a-z]+:{child}" data-reviewed="(yes|no)"', page.text) == ["yes"]


def test_undo_restores_the_link(client: TestClient, reviewed: Store) -> None:
    table = uncertain(reviewed, MOVIE, 0.8)
    link = table[table["kind"] == "link"].iloc[0]
    child, mother = int(link["node_id"]), int(link["mother_id"])
    follow(client, post(client, reviewed, "reject", child, "link"))
    edit_id = edit_rows(reviewed)[0]["id"]
    follow(client, post(client, reviewed, "undo", child, "link", other=edit_id))
    assert (mother, child) in links(reviewed)
    assert [r["kind"] for r in edit_rows(reviewed)] == ["forbid_edge", "remove"]


def test_accept_a_link_pins_it(client: TestClient, reviewed: Store) -> None:
    table = uncertain(reviewed, MOVIE, 0.8)
    link = table[table["kind"] == "link"].iloc[0]
    child, mother = int(link["node_id"]), int(link["mother_id"])
    follow(client, post(client, reviewed, "accept", child, "link"))
    [row] = edit_rows(reviewed)
    assert row["kind"] == "relink"
    assert (row["payload"]["child_id"], row["payload"]["parent_id"]) == (child, mother)
    assert (mother, child) in links(reviewed)


def test_division_false_leaves_at_most_one_daughter(client: TestClient, reviewed: Store) -> None:
    mother = cell_at(reviewed, 2, 20, 19)
    assert sum(s == mother for s, _ in links(reviewed)) == 2
    follow(client, post(client, reviewed, "division-false", mother, "division"))
    assert sum(s == mother for s, _ in links(reviewed)) <= 1
    assert [r["kind"] for r in edit_rows(reviewed)] == ["division"]


def test_relink_to_another_parent(client: TestClient, reviewed: Store) -> None:
    # the cell that appears late (track 5, from frame 2) gets the gap track's cell as parent instead
    child = cell_at(reviewed, 3, 50, 54)
    parent = cell_at(reviewed, 2, 50, 56)
    follow(client, post(client, reviewed, "relink", child, other=parent))
    assert (parent, child) in links(reviewed)
    [row] = edit_rows(reviewed)
    assert (row["kind"], row["payload"]["child_id"], row["payload"]["parent_id"]) == ("relink", child, parent)


def test_split(client: TestClient, reviewed: Store) -> None:
    mother = cell_at(reviewed, 1, 20, 17)  # ellipse centred (20, 17), 8 px half-width along x
    page = follow(client, post(client, reviewed, "split", mother, line="12,17,28,17"))
    [split] = edit_rows(reviewed)
    halves = split["payload"]["cells"]
    assert split["kind"] == "split_cell"
    assert len(halves) == 2
    assert set(halves) <= cells(reviewed)
    assert mother not in cells(reviewed)
    assert f'data-node="{halves[0]}"' in page.text  # the page follows the new cell


def test_merge(client: TestClient, reviewed: Store) -> None:
    a, b = cell_at(reviewed, 4, 19, 15), cell_at(reviewed, 4, 21, 28)  # the two daughters, a frame on
    page = follow(client, post(client, reviewed, "merge", a, other=b))
    [merge] = edit_rows(reviewed)
    assert merge["kind"] == "merge_cells"
    [whole] = merge["payload"]["cells"]
    assert whole in cells(reviewed)
    assert not {a, b} & cells(reviewed)
    assert f'data-node="{whole}"' in page.text


def test_end_track(client: TestClient, reviewed: Store) -> None:
    node = cell_at(reviewed, 5, 50, 50)  # track 5 runs to the last frame
    assert any(s == node for s, _ in links(reviewed))
    follow(client, post(client, reviewed, "end-track", node))
    assert not any(s == node for s, _ in links(reviewed))
    assert node in cells(reviewed)


@pytest.mark.parametrize(
    ("method", "path", "form", "status", "reason"),
    [
        ("get", "/movie/nope", None, 404, "no movie &#39;nope&#39;"),
        ("get", "/movie/nope/cell/1", None, 404, "no movie &#39;nope&#39;"),
        ("get", f"/movie/{MOVIE}/cell/999999", None, 404, "no cell 999999"),
        ("get", f"/movie/{MOVIE}/cell/abc", None, 400, "node must be an integer id"),
        ("get", f"/movie/{MOVIE}/cell/1?kind=bogus", None, 400, "unknown item kind"),
        ("get", f"/movie/{MOVIE}/nothing", None, 404, "Not Found"),
        ("post", "/movie/nope/edit", {"action": "accept", "node": "1", "based_on": "1"}, 404, "no movie"),
        ("post", f"/movie/{MOVIE}/edit", {"action": "fly", "node": "1", "based_on": "1"}, 400, "unknown action"),
        ("post", f"/movie/{MOVIE}/edit", {"action": "accept", "based_on": "1"}, 400, "lacks the field &#39;node&#39;"),
        ("post", f"/movie/{MOVIE}/edit", {"action": "accept", "node": "x1", "based_on": "1"}, 400, "integer id"),
        ("post", f"/movie/{MOVIE}/edit", {"action": "relink", "node": "1", "based_on": "1"}, 400, "&#39;other&#39;"),
        ("post", f"/movie/{MOVIE}/edit", {"action": "split", "node": "1", "based_on": "1"}, 400, "draw the cut"),
        (
            "post",
            f"/movie/{MOVIE}/edit",
            {"action": "split", "node": "1", "line": "a,b", "based_on": "1"},
            400,
            "numbers",
        ),
        (
            "post",
            f"/movie/{MOVIE}/edit",
            {"action": "accept", "node": "999999", "based_on": "1"},
            404,
            "no cell 999999",
        ),
        ("post", f"/movie/{MOVIE}/edit", {"action": "reject", "node": "1", "kind": "x", "based_on": "1"}, 400, "kind"),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(
    client: TestClient, reviewed: Store, method: str, path: str, form: dict | None, status: int, reason: str
) -> None:
    before = snapshot(reviewed)
    if form is not None and "based_on" in form:
        form = {**form, "based_on": str(current(reviewed))}
    r = client.get(path) if method == "get" else client.post(path, data=form)
    assert r.status_code == status
    assert reason in r.text
    assert "Refused" in r.text
    assert snapshot(reviewed) == before


def test_bad_edits_are_refused_and_change_nothing(client: TestClient, reviewed: Store) -> None:
    a, b = cell_at(reviewed, 1, 20, 17), cell_at(reviewed, 2, 50, 56)  # different frames
    mother = cell_at(reviewed, 1, 20, 17)
    before = snapshot(reviewed)
    r = post(client, reviewed, "merge", a, other=b)
    assert r.status_code == 400
    assert "different frames" in r.text
    r = post(client, reviewed, "split", mother, line="0,0,0,5")  # far from the cell
    assert r.status_code == 400
    assert "does not cross" in r.text
    r = post(client, reviewed, "relink", a, other=cell_at(reviewed, 3, 20, 14))  # a later "parent"
    assert r.status_code == 400
    assert "earlier frame" in r.text
    assert snapshot(reviewed) == before


def test_an_edit_on_a_replaced_solution_is_a_conflict(client: TestClient, reviewed: Store) -> None:
    node = cell_at(reviewed, 5, 50, 50)
    seen = current(reviewed)
    follow(client, post(client, reviewed, "end-track", node))  # another editor's re-solve
    before = snapshot(reviewed)
    r = client.post(
        f"/movie/{MOVIE}/edit", data={"action": "accept", "node": str(node), "kind": "cell", "based_on": str(seen)}
    )
    assert r.status_code == 409
    assert f"solution {current(reviewed)} is current now" in r.text
    assert snapshot(reviewed) == before


def test_cross_site_posts_are_refused(client: TestClient, reviewed: Store) -> None:
    before = snapshot(reviewed)
    data = {"action": "accept", "node": "1", "kind": "cell", "based_on": str(current(reviewed))}
    r = client.post(f"/movie/{MOVIE}/edit", data=data, headers={"origin": "http://evil.example"})
    assert r.status_code == 403
    assert snapshot(reviewed) == before


def test_review_command_refuses_an_unknown_movie(reviewed: Store) -> None:
    url = reviewed.engine.url.render_as_string(hide_password=False)
    r = trackdb("review", "--movie", "nope", db=url)
    assert r.returncode == 2
    assert "no movie 'nope'" in r.stderr


def test_review_command_refuses_a_taken_port(reviewed: Store) -> None:
    import socket

    url = reviewed.engine.url.render_as_string(hide_password=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = trackdb("review", "--movie", MOVIE, "--port", str(port), db=url)
    assert r.returncode == 2
    assert f"cannot serve on 127.0.0.1:{port}" in r.stderr


def test_review_command_serves_the_page_and_records_the_os_user(reviewed: Store) -> None:
    import getpass
    import subprocess
    import sys
    import time

    import httpx2 as httpx

    from trackdb.review.server import free_port

    url = reviewed.engine.url.render_as_string(hide_password=False)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trackdb", "review", "--movie", MOVIE, "--port", str(port), "--db", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                page = httpx.get(base + "/", follow_redirects=True, timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("trackdb review did not answer")
        assert page.status_code == 200
        assert f'id="solution">{current(reviewed)}<' in page.text
        node = cell_at(reviewed, 5, 50, 50)
        data = {"action": "end-track", "node": str(node), "kind": "cell", "based_on": str(current(reviewed))}
        assert httpx.post(base + f"/movie/{MOVIE}/edit", data=data, timeout=120).status_code == 303
        [row] = edit_rows(reviewed)
        assert row["author"] == getpass.getuser()
        assert row["run_id"] is not None
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"reviewing movie '{MOVIE}' at http://127.0.0.1:{port}/" in out
