"""Tracking from fixed masks, trackdb's CLI beside laptrack, both scored by one CTC scorer.

Shared by ``generalise.py`` and ``track_speed.py`` (not a pytest module, not the product).

* trackdb runs as a new user would run it: ``init``, ``import-ctc --masks-only``, ``link``,
  ``solve``, ``export-ctc``, each a CLI subprocess (``--pythonpath`` picks the code: a frozen
  worktree while the package is being moved), with the documented defaults.
* laptrack runs on the centroids of the same masks (physical units when the spacing is known).
  Its radius follows one rule for every case: ``LAPTRACK_RADIUS`` × the median equivalent
  diameter of the objects (ball of the same area or volume), for linking and for gap closing
  (laptrack's default window of 2 frames, or the case's ``dt``); splitting is enabled with twice
  that radius, the proportion of laptrack's cell-segmentation example; merging stays off.
* Both results are CTC folders scored by traccuracy exactly as ``trackdb evaluate`` scores
  (CTC matcher + CTC metrics; one-to-one IoU ≥ 0.5 matcher + division metrics).
* ``link_errors`` sorts the missing and wrong links against the ground truth by what they have in
  common (a cell at the image border, beyond the link radius, a gap, a division), to find causes.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

# × median equivalent diameter, the same for every case: the usual assumption that a cell moves less
# than its own diameter between frames. Measured on the mouse epidermis (link recall of laptrack's
# frame-to-frame links with gap closing and splitting): 0.94 / 0.91 / 0.85 at 0.75 / 1.0 / 1.5.
LAPTRACK_RADIUS = 1.0
TRACKDB_LINK_RADIUS = 60.0  # px: `trackdb link --max-distance` default, for the error breakdown
BORDER_PX = 2  # px: "touches the border" in the error breakdown (a reporting band, not a cost rule)
_CLI = "import sys; from trackdb.cli import main; sys.argv[0] = 'trackdb'; main()"


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


# --- reading and writing CTC folders -------------------------------------------------------------


def read_frames(folder: Path, prefix: str) -> np.ndarray:
    files = sorted(p for p in Path(folder).iterdir() if p.name.startswith(prefix) and p.suffix in (".tif", ".tiff"))
    return np.stack([tifffile.imread(p) for p in files])


def read_table(path: Path) -> np.ndarray:
    rows = [[int(v) for v in line.split()] for line in Path(path).read_text().splitlines() if line.strip()]
    return np.array(rows, np.int64).reshape(-1, 4)


def write_result(folder: Path, masks: np.ndarray, tracks: np.ndarray) -> Path:
    """``maskTTT.tif`` + ``res_track.txt`` (CTC result layout)."""
    folder.mkdir(parents=True, exist_ok=True)
    digits = max(3, len(str(len(masks) - 1)))
    dtype = np.uint16 if masks.max(initial=0) < 2**16 else np.uint32
    for t, frame in enumerate(masks):
        tifffile.imwrite(folder / f"mask{t:0{digits}d}.tif", frame.astype(dtype), compression="zlib")
    (folder / "res_track.txt").write_text("".join(f"{a} {b} {c} {d}\n" for a, b, c, d in tracks.tolist()))
    return folder


def object_table(masks: np.ndarray, spacing: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Frame, label, physical centroid, size (voxels) and at-border flags (y/x and z) of every object."""
    t_all, lab_all, cen_all, size_all, border_all, border_z_all = [], [], [], [], [], []
    sp = np.asarray(spacing, float)
    for t, frame in enumerate(masks):
        flat = frame.ravel().astype(np.int64)
        n = np.bincount(flat)
        labs = np.flatnonzero(n[1:]) + 1
        if len(labs) == 0:
            continue
        idx = np.indices(frame.shape).reshape(frame.ndim, -1)
        sums = np.stack([np.bincount(flat, weights=(ax + 0.5) * s)[labs] for ax, s in zip(idx, sp)], axis=1)
        cen = sums / n[labs, None]
        edge = np.zeros((frame.ndim, len(n)), bool)
        for ax in range(frame.ndim):
            for k in range(BORDER_PX):
                edge[ax, np.take(frame, [k, frame.shape[ax] - 1 - k], axis=ax).ravel()] = True
        t_all.append(np.full(len(labs), t))
        lab_all.append(labs)
        cen_all.append(cen)
        size_all.append(n[labs])
        border_all.append(edge[-2:, labs].any(axis=0))
        border_z_all.append(edge[0, labs] if frame.ndim == 3 else np.zeros(len(labs), bool))
    return {
        "t": np.concatenate(t_all),
        "label": np.concatenate(lab_all),
        "centroid": np.concatenate(cen_all),
        "size": np.concatenate(size_all),
        "border": np.concatenate(border_all),
        "border_z": np.concatenate(border_z_all),
    }


def equivalent_diameter(size: np.ndarray, spacing: tuple[float, ...]) -> float:
    """Median diameter of the disc (2D) or ball (3D) with each object's area or volume."""
    vol = size * float(np.prod(spacing))
    d = np.cbrt(6.0 * vol / np.pi) if len(spacing) == 3 else np.sqrt(4.0 * vol / np.pi)
    return float(np.median(d))


# --- scoring (the same for every tracker) ---------------------------------------------------------


def ctc_scores(pred_dir: Path, gt_tra: Path) -> dict[str, Any]:
    """traccuracy's CTC and division metrics, matched as ``trackdb evaluate`` matches."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    from traccuracy import run_metrics
    from traccuracy.loaders import load_ctc_data
    from traccuracy.matchers import CTCMatcher, IOUMatcher
    from traccuracy.metrics import CTCMetrics, DivisionMetrics

    def load() -> tuple[Any, Any]:
        gt = load_ctc_data(str(gt_tra), str(gt_tra / "man_track.txt"), name="gt")
        pred = load_ctc_data(str(pred_dir), str(pred_dir / "res_track.txt"), name="pred")
        return gt, pred

    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res, _ = run_metrics(*load(), CTCMatcher(), [CTCMetrics()])
        div, _ = run_metrics(*load(), IOUMatcher(iou_threshold=0.5, one_to_one=True), [DivisionMetrics()])
    r = res[0]["results"]
    out.update({k: float(r[k]) for k in ("LNK", "TRA", "DET")})
    out.update({k: int(r[k]) for k in ("fp_edges", "fn_edges", "ws_edges", "fp_nodes", "fn_nodes", "ns_nodes")})
    d = div[0]["results"]
    d = d.get("Frame Buffer 0", d)
    out["division_f1"] = float(d["Division F1"])
    out["division_precision"] = float(d["Division Precision"])
    out["division_recall"] = float(d["Division Recall"])
    out["divisions_gt"] = int(d["Total GT Divisions"])
    out["divisions_pred"] = int(d["Total Predicted Divisions"])
    return out


# --- links and their errors -----------------------------------------------------------------------


def ctc_links(tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(t, label, t', label') of every link a CTC table implies (continuations and parent → child)."""
    rows = [(t, k, t + 1, k) for k, s, e, _ in tracks.tolist() for t in range(s, e)]
    end = dict(zip(tracks[:, 0].tolist(), tracks[:, 2].tolist()))
    rows += [(end[p], p, s, k) for k, s, _e, p in tracks.tolist() if p and p in end]
    a = np.array(rows, np.int64).reshape(-1, 4)
    return a[:, 0], a[:, 1], a[:, 2], a[:, 3]


def link_errors(
    gt_masks: np.ndarray, gt_tracks: np.ndarray, pred_masks: np.ndarray, pred_tracks: np.ndarray
) -> dict[str, Any]:
    """Missing (in GT, not predicted) and wrong (predicted, not in GT) links, by category.

    The prediction's objects are the GT objects (fixed masks), so each predicted label maps to the
    GT label with the same pixels. Categories overlap; ``border``: either cell's box touches the
    y or x image edge (within ``BORDER_PX``), ``border_z``: the first or last z-slice;
    ``beyond_link_radius``: centroids further apart than the default link radius in pixels (z
    slices counted as pixels, as ``link`` does); ``gap``: the link skips frames; ``division``:
    parent → child of a parent with two or more children.
    """
    t0, l0, t1, l1 = ctc_links(gt_tracks)
    gt_div = np.zeros(len(t0), bool)
    n_cont = int(sum(e - s for _, s, e, _ in gt_tracks.tolist()))
    gt_div[n_cont:] = True
    division_parents = {p for p, c in zip(*np.unique(gt_tracks[gt_tracks[:, 3] > 0, 3], return_counts=True)) if c >= 2}
    gt_div &= np.isin(l0, list(division_parents))
    pmap: dict[tuple[int, int], int] = {}
    for t in range(len(gt_masks)):
        fg = pred_masks[t] > 0
        pairs = np.unique(np.stack([pred_masks[t][fg].astype(np.int64), gt_masks[t][fg].astype(np.int64)]), axis=1)
        for p, g in pairs.T.tolist():
            pmap[(t, p)] = g
    p0, q0, p1, q1 = ctc_links(pred_tracks)
    pred_set = {(a, pmap.get((a, b), -1), c, pmap.get((c, d), -1)) for a, b, c, d in zip(p0, q0, p1, q1)}
    gt_set = set(zip(t0.tolist(), l0.tolist(), t1.tolist(), l1.tolist()))
    objs = object_table(gt_masks, (1.0,) * (gt_masks.ndim - 1))
    key = {(int(t), int(lab)): i for i, (t, lab) in enumerate(zip(objs["t"], objs["label"]))}
    is_div = {k: bool(v) for k, v in zip(zip(t0.tolist(), l0.tolist(), t1.tolist(), l1.tolist()), gt_div)}

    def describe(links: set[tuple[int, int, int, int]]) -> dict[str, int]:
        out = dict.fromkeys(("border", "border_z", "beyond_link_radius", "gap", "division", "other"), 0)
        out["total"] = len(links)
        for a, b, c, d in links:
            i, j = key.get((a, b)), key.get((c, d))
            cats = []
            if i is not None and j is not None:
                if objs["border"][i] or objs["border"][j]:
                    cats.append("border")
                if objs["border_z"][i] or objs["border_z"][j]:
                    cats.append("border_z")
                if np.linalg.norm(objs["centroid"][i] - objs["centroid"][j]) > TRACKDB_LINK_RADIUS:
                    cats.append("beyond_link_radius")
            if c - a > 1:
                cats.append("gap")
            if is_div.get((a, b, c, d)):
                cats.append("division")
            for k in cats or ["other"]:
                out[k] += 1
        return out

    return {"missing": describe(gt_set - pred_set), "wrong": describe(pred_set - gt_set), "gt": describe(gt_set)}


# --- trackdb through its CLI ----------------------------------------------------------------------


# trackdb's CTC result folder; not named "trackdb": `python -c` puts the working folder on
# sys.path, where a folder of that name would be imported as the package by later commands
RESULT_DIR = "ctc-trackdb"


class TrackdbCLI:
    """``trackdb`` subcommands as subprocesses on one SQLite store, one core."""

    def __init__(self, db_path: Path, pythonpath: str | None) -> None:
        self.env = dict(os.environ, OMP_NUM_THREADS="1", TRACKDB_DB=f"sqlite:///{db_path}", TQDM_DISABLE="1")
        if pythonpath:
            self.env["PYTHONPATH"] = pythonpath
        self.cwd = db_path.parent  # not the repository: its trackdb/ would shadow PYTHONPATH
        self.last_cpu = 0.0

    def run(self, *args: str, timeout: float = 3600) -> tuple[int, str, str, float]:
        """(exit code, stdout, stderr, wall seconds); the command's CPU seconds (user + system,
        load-independent where the wall is not) go to ``last_cpu``."""
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        p = subprocess.run(
            [sys.executable, "-c", _CLI, *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.last_cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        return p.returncode, p.stdout, p.stderr, wall

    def has_option(self, command: str, option: str) -> bool:
        rc, out, _, _ = self.run(command, "--help")
        return rc == 0 and option in out


def code_version(pythonpath: str | None) -> str:
    """Git revision (+ '-dirty') of the trackdb the CLI runs."""
    where = Path(pythonpath.split(os.pathsep)[0]) if pythonpath else Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(where),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                "trackdb",
                "solvers",
                "inference",
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


def _last_json(text: str) -> dict[str, Any] | None:
    import json

    start = text.rfind("\n{")
    start = 0 if start < 0 and text.startswith("{") else start + 1
    try:
        value = json.loads(text[start:]) if start >= 0 else None
        return value if isinstance(value, dict) else None
    except json.JSONDecodeError:
        return None


def run_trackdb(
    dataset: Path,
    work: Path,
    pythonpath: str | None,
    *,
    spacing: tuple[float, ...] | None,
    dt: int = 1,
    evaluate: bool = True,
) -> dict[str, Any]:
    """Default pipeline on ``dataset/01`` (GT masks as detections); the result CTC folder is work/trackdb."""
    cli = TrackdbCLI(work / "trackdb.sqlite", pythonpath)
    out: dict[str, Any] = {"commands": []}

    def step(name: str, *args: str) -> tuple[bool, str]:
        rc, so, se, sec = cli.run(*args)
        out["commands"].append("trackdb " + " ".join(args))
        out[f"{name}_seconds"] = round(sec, 3)
        out[f"{name}_cpu_seconds"] = round(cli.last_cpu, 3)
        if rc != 0:
            out["error"] = f"{name}: exit {rc}: " + (se.strip().splitlines() or ["(no message)"])[-1]
            log(f"  trackdb {name} failed: {out['error']}")
        return rc == 0, so

    ok, _ = step("init", "init")
    out["cli_help_seconds"] = round(cli.run("--help")[3], 3)  # the interpreter + CLI start every command pays
    out["cli_help_cpu_seconds"] = round(cli.last_cpu, 3)
    imp = ["import-ctc", str(dataset), "--seq", "01", "--movie", "m", "--masks-only"]
    out["spacing_supported"] = cli.has_option("import-ctc", "--spacing")
    if spacing is not None and out["spacing_supported"]:
        imp += ["--spacing", ",".join(f"{s:g}" for s in spacing)]
    ok = ok and step("import", *imp)[0]
    link = ["link", "--movie", "m"] + (["--dt", str(dt)] if dt > 1 else [])
    ok = ok and step("link", *link)[0]
    if ok:
        ok, so = step("solve", "solve", "--movie", "m")
        summary = _last_json(so) or {}
        out["solve_reported"] = {
            k: summary.get(k) for k in ("status", "cells", "links", "tracks", "solve_seconds", "solver", "joint_reason")
        }
    if ok:
        out["link_solve_seconds"] = round(out["link_seconds"] + out["solve_seconds"], 3)
        out["link_solve_cpu_seconds"] = round(out["link_cpu_seconds"] + out["solve_cpu_seconds"], 3)
        ok = step("export", "export-ctc", str(work / RESULT_DIR), "--movie", "m")[0]
    if ok and evaluate:
        ok2, so = step("evaluate", "evaluate", "--movie", "m", "--gt", str(dataset / "01_GT"))
        ev = _last_json(so) or {}
        out["evaluate"] = {k: ev.get(k) for k in ("LNK", "TRA", "DET", "division_Division F1")} if ok2 else None
    out["ok"] = ok
    return out


# --- laptrack -------------------------------------------------------------------------------------


def edges_to_ctc(node_t: np.ndarray, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Track id per node and the CTC table of a forest of links (at most one parent per node).

    A node continues its parent's track when that parent has one child in the next frame; any
    other link (a division, a gap) starts a new track whose parent is the parent's track.
    """
    n = len(node_t)
    pred = np.full(n, -1, np.int64)
    pred[dst] = src
    n_children = np.bincount(src, minlength=n)
    track = np.zeros(n, np.int64)
    rows: list[list[int]] = []
    for i in np.argsort(node_t, kind="stable").tolist():
        p = int(pred[i])
        if p >= 0 and n_children[p] == 1 and node_t[i] - node_t[p] == 1:
            track[i] = track[p]
            rows[track[i] - 1][2] = int(node_t[i])
        else:
            rows.append([len(rows) + 1, int(node_t[i]), int(node_t[i]), int(track[p]) if p >= 0 else 0])
            track[i] = len(rows)
    return track, np.array(rows, np.int64).reshape(-1, 4)


def relabel_frames(masks: np.ndarray, node_t: np.ndarray, node_label: np.ndarray, track: np.ndarray) -> np.ndarray:
    out = np.zeros(masks.shape, np.uint32)
    for t in range(len(masks)):
        here = node_t == t
        lut = np.zeros(int(masks[t].max()) + 1, np.uint32)
        lut[node_label[here]] = track[here]
        out[t] = lut[masks[t]]
    return out


def run_laptrack(
    gt_tra: Path, work: Path, spacing: tuple[float, ...], *, dt: int = 1, radius_factor: float = LAPTRACK_RADIUS
) -> dict[str, Any]:
    """laptrack on the centroids of the GT masks; the result CTC folder is work/laptrack."""
    from laptrack import LapTrack

    masks = read_frames(gt_tra, "man_track")
    t0, c0 = time.perf_counter(), time.process_time()
    objs = object_table(masks, spacing)
    features_seconds, features_cpu = time.perf_counter() - t0, time.process_time() - c0
    diameter = equivalent_diameter(objs["size"], spacing)
    radius = radius_factor * diameter
    params: dict[str, Any] = {
        "cutoff": radius**2,
        "gap_closing_cutoff": radius**2,
        "gap_closing_max_frame_count": max(2, dt),
        "splitting_cutoff": (2 * radius) ** 2,
    }
    order = np.lexsort((objs["label"], objs["t"]))
    node_t, node_label, cen = objs["t"][order], objs["label"][order], objs["centroid"][order]
    n_frames = len(masks)
    first = np.searchsorted(node_t, np.arange(n_frames + 1))
    coords = [cen[first[t] : first[t + 1]] for t in range(n_frames)]
    t0, c0 = time.perf_counter(), time.process_time()
    tree = LapTrack(**params).predict(coords)
    track_seconds, track_cpu = time.perf_counter() - t0, time.process_time() - c0
    e = np.array([(first[a[0]] + a[1], first[b[0]] + b[1]) for a, b in tree.edges()], np.int64).reshape(-1, 2)
    fwd = node_t[e[:, 0]] < node_t[e[:, 1]]
    src, dst = np.where(fwd, e[:, 0], e[:, 1]), np.where(fwd, e[:, 1], e[:, 0])
    track, tracks = edges_to_ctc(node_t, src, dst)
    write_result(work / "laptrack", relabel_frames(masks, node_t, node_label, track), tracks)
    return {
        "radius": round(radius, 3),
        "median_equivalent_diameter": round(diameter, 3),
        "params": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in params.items()},
        "features_seconds": round(features_seconds, 3),
        "track_seconds": round(track_seconds, 3),
        "features_cpu_seconds": round(features_cpu, 3),
        "track_cpu_seconds": round(track_cpu, 3),
        "n_links": len(src),
    }


def score_both(
    dataset: Path,
    work: Path,
    spacing: tuple[float, ...],
    pythonpath: str | None,
    *,
    dt: int,
    spacing_known: bool,
    evaluate: bool = True,
    radius_factor: float = LAPTRACK_RADIUS,
) -> dict[str, Any]:
    """Run and score trackdb and laptrack on ``dataset`` (GT masks as detections)."""
    gt_tra = dataset / "01_GT" / "TRA"
    gt_masks = read_frames(gt_tra, "man_track")
    gt_tracks = read_table(gt_tra / "man_track.txt")
    result: dict[str, Any] = {}
    log("  trackdb ...")
    td = run_trackdb(dataset, work, pythonpath, spacing=spacing if spacing_known else None, dt=dt, evaluate=evaluate)
    if td["ok"]:
        td.update(ctc_scores(work / RESULT_DIR, gt_tra))
        pm, pt = read_frames(work / RESULT_DIR, "mask"), read_table(work / RESULT_DIR / "res_track.txt")
        td["link_errors"] = link_errors(gt_masks, gt_tracks, pm, pt)
    result["trackdb"] = td
    log("  laptrack ...")
    lt = run_laptrack(gt_tra, work, spacing, dt=dt, radius_factor=radius_factor)
    lt.update(ctc_scores(work / "laptrack", gt_tra))
    pm, pt = read_frames(work / "laptrack", "mask"), read_table(work / "laptrack" / "res_track.txt")
    lt["link_errors"] = link_errors(gt_masks, gt_tracks, pm, pt)
    result["laptrack"] = lt
    return result


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
