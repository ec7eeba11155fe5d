"""H-EMD instance candidate selection (Liang et al., IEEE TMI 2022, Sec. III-B), on plain arrays.

Input: one :class:`HemdFrame` per frame (a candidate forest: parents, areas, boxes and the
pixel → deepest-node image). Output: a bool selection per node. The algorithm, as in the paper:

1. **Initial state** (Eqs. 1-3): the root of every tree with a single leaf-to-root path is
   selected; its whole tree leaves the forest.
2. **T iterations** (default 10), each on the state at its start:

   - EMD matching (Eqs. 4-8) between the selected sets of frames w and w+1, score = IoU at the
     same position, pairs allowed when ``2|r-d| / (|r|+|d|) < delta`` (delta = 0.35). Matched
     instances are "occupied" for that direction (Eqs. 9-10).
   - H-EMD matching (Eqs. 11-15) of the unoccupied selected instances of w into the remaining
     forest of w+1, and symmetrically w+1 → w: pairs allowed when ``|r-d| / |r| < delta``, at
     most one node per instance and one flow per leaf-to-root path (:mod:`solvers.emd`).
   - State update (Eqs. 16-18): per tree of the remaining forest of frame w, the left-right
     competing rule keeps the flows from w-1 if their summed score is >= that of the flows
     from w+1, else those from w+1; the kept targets are selected and every node on a
     leaf-to-root path through them (their ancestors and descendants) leaves the forest.

3. **Padding** (Eq. 19): the roots of what remains of every forest are selected.

Deviations from the paper, and why:

- Iterations stop early when one adds nothing: the state and the forests are then unchanged,
  so every later iteration would repeat it exactly (same result, less time).
- Only pairs with IoU > 0 are matching variables: a zero-score flow adds nothing to either
  objective, and the paper's ILP is indifferent to it; creating none keeps a zero-overlap
  "match" from occupying an instance arbitrarily.
- EMD matching is a pure assignment and is solved exactly with ``linear_sum_assignment`` per
  connected component instead of a generic ILP; H-EMD components with a single instance take
  their best pair (exact), the others are MIPs through OR-Tools ``pywraplp``. CBC is the
  default: HiGHS and SCIP took the same time (within 3% on 6 bacteria frames, 48 MIPs), and
  pywraplp's HiGHS prints a banner on stdout that ``SuppressOutput`` does not silence, which
  would corrupt the benchmarks' JSON.
- Path rows of Eq. (13) are restricted to the nodes that occur in some pair; rows that are
  subsets of another row are implied by it and dropped (same feasible set).
- "Trees of F_t^w" in the left-right rule are the trees of the *remaining* forest (a removed
  path can split an original tree in two; flows in different pieces cannot conflict).

Speed: the 53-frame bacteria movie (191k forest nodes) is selected in seconds on one thread,
where the paper reports 1-2 hours per test set for its implementation (``benchmarks/selection.py``,
figures in ``benchmarks/README.md``).

Overlaps: the intersection of instance r (frame w) with every node of frame w±1 comes from
one lookup of r's pixels in the neighbour's ``pixel_node`` image followed by summing counts up
the neighbour's tree; results are cached across iterations since the forests never change.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from solvers.emd import emd_matching, hemd_matching


@dataclass(frozen=True)
class HemdFrame:
    """One frame's candidate forest.

    ``hier_parent[i]``: index of the node containing i (−1 for roots). ``area``: pixels per
    node. ``bbox``: (N, 2D) mins then exclusive maxes. ``pixel_node``: ([Z,]Y,X) image of the
    deepest node containing each pixel (−1 outside every node); a node's pixels are those whose
    ``pixel_node`` lies in its subtree. All frames must share the image shape.
    """

    hier_parent: np.ndarray
    area: np.ndarray
    bbox: np.ndarray
    pixel_node: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.hier_parent)
        parent = np.asarray(self.hier_parent, np.int64)
        if parent.ndim != 1 or (n and (parent.min() < -1 or parent.max() >= n)):
            raise ValueError("hier_parent must be a 1-D array of indices in [-1, N)")
        area = np.asarray(self.area, np.int64)
        if area.shape != (n,) or (n and area.min() <= 0):
            raise ValueError(f"area must have shape ({n},) and be positive")
        pn = np.asarray(self.pixel_node)
        bbox = np.asarray(self.bbox, np.int64)
        if bbox.shape != (n, 2 * pn.ndim):
            raise ValueError(f"bbox has shape {bbox.shape}, expected ({n}, {2 * pn.ndim})")
        if pn.size and pn.max() >= n:
            raise ValueError("pixel_node refers to a node that does not exist")
        object.__setattr__(self, "hier_parent", parent)
        object.__setattr__(self, "area", area)
        object.__setattr__(self, "bbox", bbox)
        object.__setattr__(self, "pixel_node", pn)


@dataclass(frozen=True)
class HemdResult:
    """Selection per frame (bool per node, input order) and how each node got selected."""

    selected: list[np.ndarray]
    phase: list[np.ndarray]  # per node: 0 not selected, 1 initial, 2 matching, 3 padding
    iterations: int
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


class _Forest:
    """A frame's forest renumbered in preorder (subtree = contiguous id range) plus its state."""

    def __init__(self, f: HemdFrame) -> None:
        parent0 = f.hier_parent
        n = len(parent0)
        depth = np.zeros(n, np.int64)
        cur = parent0.copy()
        while (cur >= 0).any():
            m = cur >= 0
            depth[m] += 1
            cur[m] = parent0[cur[m]]
        size = np.ones(n, np.int64)
        for dpt in range(int(depth.max(initial=0)), 0, -1):
            ids = np.flatnonzero(depth == dpt)
            np.add.at(size, parent0[ids], size[ids])
        pre = np.zeros(n, np.int64)
        roots = np.flatnonzero(parent0 < 0)
        pre[roots] = np.cumsum(size[roots]) - size[roots]
        kids = np.flatnonzero(parent0 >= 0)
        kids = kids[np.argsort(parent0[kids], kind="stable")]
        csum = np.cumsum(size[kids]) - size[kids]
        first = np.r_[True, parent0[kids][1:] != parent0[kids][:-1]] if len(kids) else kids
        offset = np.zeros(n, np.int64)
        offset[kids] = csum - np.maximum.accumulate(np.where(first, csum, 0))
        for dpt in range(1, int(depth.max(initial=0)) + 1):
            ids = np.flatnonzero(depth == dpt)
            pre[ids] = pre[parent0[ids]] + 1 + offset[ids]
        self.orig = np.empty(n, np.int64)
        self.orig[pre] = np.arange(n)  # preorder id -> input index
        self.parent = np.where(parent0[self.orig] >= 0, pre[np.maximum(parent0[self.orig], 0)], -1)
        self.size = size[self.orig]
        self.area = f.area[self.orig].astype(np.float64)
        self.bbox = f.bbox[self.orig]
        pn = np.asarray(f.pixel_node, np.int64)
        if n:
            self.pimg = np.where(pn >= 0, pre[np.maximum(pn, 0)], -1).astype(np.int32)
        else:
            self.pimg = np.full(pn.shape, -1, np.int32)
        self.n = n
        self.remaining = np.ones(n, bool)
        self.selected = np.zeros(n, bool)
        self.phase = np.zeros(n, np.int8)

    def ancestors_or_self(self, nodes: np.ndarray) -> np.ndarray:
        out = [nodes]
        cur = self.parent[nodes]
        while len(cur):
            cur = cur[cur >= 0]
            out.append(cur)
            cur = self.parent[cur]
        return np.unique(np.concatenate(out))

    def remove_paths_through(self, nodes: np.ndarray) -> None:
        """Eq. (18): drop every node on a leaf-to-root path through one of ``nodes``."""
        if len(nodes) == 0:
            return
        diff = np.zeros(self.n + 1, np.int64)
        np.add.at(diff, nodes, 1)
        np.add.at(diff, nodes + self.size[nodes], -1)
        self.remaining[np.cumsum(diff[:-1]) > 0] = False  # descendants (and the node)
        self.remaining[self.ancestors_or_self(nodes)] = False

    def remaining_tree(self, nodes: np.ndarray) -> np.ndarray:
        """Topmost remaining ancestor of each remaining node (its tree in F_t)."""
        top = nodes.copy()
        while True:
            p = self.parent[top]
            up = (p >= 0) & self.remaining[np.maximum(p, 0)]
            if not up.any():
                return top
            top[up] = p[up]

    def path_rows(self, nodes: np.ndarray) -> list[np.ndarray]:
        """Eq. (13) rows restricted to ``nodes``: ancestors-or-self ∩ nodes of each deepest node."""
        member = set(nodes.tolist())
        rows = []
        for c in nodes.tolist():
            # c is deepest when no other member lies in its subtree
            lo, hi = c, c + int(self.size[c])
            if any(lo < o < hi for o in member):
                continue
            row, x = [], c
            while x >= 0:
                if x in member:
                    row.append(x)
                x = int(self.parent[x])
            rows.append(np.asarray(row, np.int64))
        return rows


class _Overlaps:
    """IoU of instances of frame a with every node of frame b, cached per (a, b, instance)."""

    def __init__(self, forests: list[_Forest]) -> None:
        self.f = forests
        self.cache: dict[tuple[int, int], dict[int, tuple[np.ndarray, np.ndarray]]] = {}

    def pairs(self, a: int, b: int, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(r, d, iou) for every node r in ``nodes`` of frame a and node d of frame b with IoU > 0."""
        cache = self.cache.setdefault((a, b), {})
        missing = [int(r) for r in nodes if int(r) not in cache]
        if missing:
            self._compute(a, b, np.asarray(missing, np.int64), cache)
        rs, ds, ious = [], [], []
        for r in nodes.tolist():
            d, iou = cache[r]
            rs.append(np.full(len(d), r, np.int64))
            ds.append(d)
            ious.append(iou)
        if not rs:
            z = np.zeros(0, np.int64)
            return z, z, np.zeros(0)
        return np.concatenate(rs), np.concatenate(ds), np.concatenate(ious)

    def _compute(self, a: int, b: int, nodes: np.ndarray, cache: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
        fa, fb = self.f[a], self.f[b]
        nd = fa.pimg.ndim
        rr, vv = [], []
        for r in nodes.tolist():
            bb = fa.bbox[r]
            sl = tuple(slice(int(bb[k]), int(bb[k + nd])) for k in range(nd))
            inside = (fa.pimg[sl].view(np.uint32) - np.uint32(r)) < np.uint32(fa.size[r])
            v = fb.pimg[sl][inside]
            v = v[v >= 0]
            rr.append(np.full(len(v), r, np.int64))
            vv.append(v.astype(np.int64))
        r_all, v_all = np.concatenate(rr), np.concatenate(vv)
        code, cnt = np.unique(r_all * fb.n + v_all, return_counts=True)
        r_u, x = code // fb.n, code % fb.n
        # push each (r, deepest node, count) up to all ancestors of that node
        parts_r, parts_d, parts_c = [r_u], [x], [cnt]
        while len(x):
            p = fb.parent[x]
            keep = p >= 0
            r_u, x, cnt = r_u[keep], p[keep], cnt[keep]
            parts_r.append(r_u)
            parts_d.append(x)
            parts_c.append(cnt)
        code = np.concatenate(parts_r) * fb.n + np.concatenate(parts_d)
        uniq, inv = np.unique(code, return_inverse=True)
        inter = np.bincount(inv.ravel(), weights=np.concatenate(parts_c))
        r_u, d_u = uniq // fb.n, uniq % fb.n
        iou = inter / (fa.area[r_u] + fb.area[d_u] - inter)
        bounds = np.searchsorted(r_u, nodes, "left"), np.searchsorted(r_u, nodes, "right")
        for r, s, e in zip(nodes.tolist(), *bounds):
            cache[r] = (d_u[s:e], iou[s:e])


def select_hemd(
    frames: Sequence[HemdFrame],
    iterations: int = 10,
    delta: float = 0.35,
    backend: str = "CBC",
) -> HemdResult:
    """Run H-EMD selection over a movie (or a 3D stack, frames = slices); see module docstring."""
    t0 = time.perf_counter()
    if len(frames) == 0:
        return HemdResult([], [], 0, 0.0)
    shapes = {np.shape(f.pixel_node) for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"all frames must share one image shape, got {sorted(shapes)}")
    F = [_Forest(f) for f in frames]
    W = len(F)
    ov = _Overlaps(F)

    for f in F:  # initial state, Eqs. (1)-(3)
        leaf = f.size == 1
        root_of = _root_of(f)
        n_leaves = np.bincount(root_of[leaf], minlength=f.n)
        easy = np.flatnonzero((f.parent < 0) & (n_leaves == 1))
        f.selected[easy] = True
        f.phase[easy] = 1
        f.remaining[np.isin(root_of, easy)] = False

    n_mip = 0
    it_done = 0
    for _ in range(iterations):
        # flows[w] = list of (target nodes, scores) arriving from the left (0) and right (1)
        flows: list[list[tuple[np.ndarray, np.ndarray]]] = [[_empty(), _empty()] for _ in F]
        for w in range(W - 1):
            sa, sb = np.flatnonzero(F[w].selected), np.flatnonzero(F[w + 1].selected)
            # EMD matching between selected sets (Eqs. 4-10)
            r, d, iou = ov.pairs(w, w + 1, sa)
            ok = F[w + 1].selected[d] & _size_ok_sym(F[w].area[r], F[w + 1].area[d], delta)
            r, d, iou = r[ok], d[ok], iou[ok]
            chosen = emd_matching(r, d, iou)
            free_a = np.setdiff1d(sa, r[chosen])
            free_b = np.setdiff1d(sb, d[chosen])
            # H-EMD matching both ways (Eqs. 11-15)
            for src, dst, nodes, side in ((w, w + 1, free_a, 0), (w + 1, w, free_b, 1)):
                r, d, iou = ov.pairs(src, dst, nodes)
                fd = F[dst]
                ok = fd.remaining[d] & (np.abs(F[src].area[r] - fd.area[d]) < delta * F[src].area[r])
                r, d, iou = r[ok], d[ok], iou[ok]
                tree = fd.remaining_tree(d)
                pick, k = hemd_matching(r, d, iou, tree, fd.path_rows, backend)
                n_mip += k
                flows[dst][side] = (d[pick], iou[pick])
        added = 0
        for w, f in enumerate(F):  # state update with the left-right competing rule (16-18)
            (dl, sl), (dr, sr) = flows[w]
            if len(dl) == 0 and len(dr) == 0:
                continue
            tl, tr = f.remaining_tree(dl), f.remaining_tree(dr)
            trees = np.unique(np.concatenate([tl, tr]))
            suml = np.zeros(len(trees))
            sumr = np.zeros(len(trees))
            np.add.at(suml, np.searchsorted(trees, tl), sl)
            np.add.at(sumr, np.searchsorted(trees, tr), sr)
            left_wins = suml >= sumr
            keep_l = left_wins[np.searchsorted(trees, tl)]
            keep_r = ~left_wins[np.searchsorted(trees, tr)]
            new = np.unique(np.concatenate([dl[keep_l], dr[keep_r]]))
            f.selected[new] = True
            f.phase[new] = 2
            f.remove_paths_through(new)
            added += len(new)
        it_done += 1
        if added == 0:
            break

    for f in F:  # padding, Eq. (19): roots of what remains
        idx = np.flatnonzero(f.remaining)
        top = idx[(f.parent[idx] < 0) | ~f.remaining[np.maximum(f.parent[idx], 0)]]
        f.selected[top] = True
        f.phase[top] = 3

    selected, phase = [], []
    for f in F:
        s = np.zeros(f.n, bool)
        s[f.orig] = f.selected
        p = np.zeros(f.n, np.int8)
        p[f.orig] = f.phase
        selected.append(s)
        phase.append(p)
    counts = np.bincount(np.concatenate(phase), minlength=4) if phase else np.zeros(4, int)
    info = {"n_initial": int(counts[1]), "n_matched": int(counts[2]), "n_padded": int(counts[3]), "n_mip": n_mip}
    return HemdResult(selected, phase, it_done, time.perf_counter() - t0, info)


def _empty() -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, np.int64), np.zeros(0)


def _size_ok_sym(a: np.ndarray, b: np.ndarray, delta: float) -> np.ndarray:
    """Eq. (7): 2|a-b| / (a+b) < delta."""
    ok: np.ndarray = 2.0 * np.abs(a - b) < delta * (a + b)
    return ok


def _root_of(f: _Forest) -> np.ndarray:
    root = np.arange(f.n)
    while True:
        p = f.parent[root]
        m = p >= 0
        if not m.any():
            return root
        root[m] = p[m]
