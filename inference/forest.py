"""The instance candidate forest of H-EMD (Liang et al., TMI 2022, Sec. III-A), built in one sweep.

Every connected component (face connectivity, as ``scipy.ndimage.label``) of ``{p >= v}`` for
every threshold ``v >= tau`` among the map's distinct values rounded to ``decimals`` is a
candidate; containment makes them a forest (``hier_parent`` = the containing component at the
next lower threshold that yields a *different* set). Components identical over several
thresholds appear once (chains collapsed), with the highest such threshold (= the minimum
rounded probability inside it) as ``threshold``. Components smaller than ``min_area`` are dropped.

How (a component tree / max-tree built level by level, vectorised): pixels and pixel-adjacency
edges are bucketed by rounded level; sweeping levels downwards, the new pixels of level ``k`` and
the current roots they touch are joined with one ``scipy.sparse.csgraph.connected_components``
call; each component becomes a node whose children are the roots it swallowed. A node-level
union-find ``up`` is re-compressed after every level (``up = up[up]``), so finding a pixel's current
root is one lookup. Features are per-node reductions over own pixels (``reduceat``) pushed up the
tree level by level; nodes are renumbered in depth-first preorder so that every subtree is a
contiguous index range, which makes a node's mask one comparison on a crop of ``pixel_node``.

Speed (``benchmarks/forest_speed.py``, its figures in ``benchmarks/README.md``): on a 1305×1009
frame (19,256 nodes) the features take less time than ``ndimage.label`` over its levels alone
(no features, no hierarchy), every bbox mask as well about as long; time grows with the
number of nodes (~cells × levels). The level loop (one csgraph call per level) is about half of
the feature time; a compiled union-find would remove most of it but would add a dependency this
room does not have.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from inference.types import Candidates


@dataclass(frozen=True)
class ForestIndex:
    """Pixel-level view of a forest: ``pixel_node[p]`` = deepest kept node containing ``p`` (−1 none).

    Nodes are in preorder, so node ``n``'s pixels are those with
    ``n <= pixel_node < n + subtree_size[n]``; solvers use this to intersect masks in bulk.
    """

    pixel_node: np.ndarray  # ([Z,]Y,X) int32
    subtree_size: np.ndarray  # (N,) int64, number of nodes in the subtree (itself included)


def _validate(prob: np.ndarray) -> np.ndarray:
    prob = np.asarray(prob)
    if prob.ndim not in (2, 3):
        raise ValueError(f"probability map must be 2D (Y,X) or 3D (Z,Y,X), got shape {prob.shape}")
    if not np.issubdtype(prob.dtype, np.floating):
        raise ValueError(f"probability map must be floating point, got {prob.dtype}")
    if np.isnan(prob).any():
        raise ValueError("probability map contains NaN")
    if prob.size and (prob.min() < 0.0 or prob.max() > 1.0):
        raise ValueError(f"probability map values must lie in [0, 1], got [{prob.min():.4g}, {prob.max():.4g}]")
    return prob


def _empty(t: int, ndim: int, shape: tuple[int, ...]) -> tuple[Candidates, ForestIndex]:
    z = np.zeros(0, np.int64)
    c = Candidates(
        t=z,
        label=z,
        centroid=np.zeros((0, ndim)),
        area=z,
        bbox=np.zeros((0, 2 * ndim), np.int64),
        masks=[],
        hier_parent=z,
        threshold=np.zeros(0),
        score=np.zeros(0),
        max_prob=np.zeros(0),
    )
    return c, ForestIndex(np.full(shape, -1, np.int32), z)


def _edges(pid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face-adjacent foreground pixel pairs as compact pixel ids."""
    us, vs = [], []
    for ax in range(pid.ndim):
        a = np.moveaxis(pid, ax, 0)
        lo, hi = a[:-1], a[1:]
        m = (lo >= 0) & (hi >= 0)
        us.append(lo[m])
        vs.append(hi[m])
    return np.concatenate(us), np.concatenate(vs)


def build_forest_index(
    prob: np.ndarray,
    t: int = 0,
    tau: float = 0.5,
    decimals: int = 2,
    min_area: int = 10,
    with_masks: bool = True,
) -> tuple[Candidates, ForestIndex]:
    """:func:`build_forest` plus the :class:`ForestIndex` (pixel → deepest node) it was built from."""
    prob = _validate(prob)
    if not (0 <= decimals <= 4) or min_area < 1 or not (0.0 <= tau <= 1.0):
        raise ValueError("need 0 <= decimals <= 4, min_area >= 1 and 0 <= tau <= 1")
    shape, ndim = prob.shape, prob.ndim
    scale = 10**decimals
    q = np.rint(prob * scale).astype(np.int16)
    fg = q >= math.ceil(tau * scale - 1e-9)
    idx = np.flatnonzero(fg)
    if len(idx) == 0:
        return _empty(t, ndim, shape)
    P = len(idx)
    plev = q.ravel()[idx]
    pid = np.full(shape, -1, np.int32)
    pid.ravel()[idx] = np.arange(P, dtype=np.int32)
    eu, ev = _edges(pid)
    elev = np.minimum(plev[eu], plev[ev])

    # bucket pixels and edges by level, highest first (stable int sorts are radix sorts)
    porder = np.argsort(-plev, kind="stable")
    eorder = np.argsort(-elev, kind="stable")
    plev = plev.astype(np.int32)
    eu, ev, elev = eu[eorder], ev[eorder], elev[eorder]
    plev_sorted = plev[porder]
    levels = np.unique(plev)[::-1]
    p_start = np.searchsorted(-plev_sorted, -levels, "left")
    p_end = np.searchsorted(-plev_sorted, -levels, "right")
    e_start = np.searchsorted(-elev, -levels, "left")
    e_end = np.searchsorted(-elev, -levels, "right")

    # loop-invariant edge bookkeeping: which endpoint is new at the edge's level, and its
    # rank among that level's new pixels (= its vertex id in the level graph)
    rank = np.empty(P, np.int64)
    rank[porder] = np.arange(P) - np.repeat(p_start, p_end - p_start)
    u_old, v_old = plev[eu] > elev, plev[ev] > elev

    own = np.full(P, -1, np.int64)  # pixel -> node created at its own level
    up = np.arange(P, dtype=np.int64)  # node union-find, re-compressed after each level
    parent = np.full(P, -1, np.int64)
    node_level = np.zeros(P, np.int32)
    level_first = np.zeros(len(levels) + 1, np.int64)  # node id range of each level
    pix_sorted_parts = []
    touched = np.zeros(P, bool)
    slot = np.zeros(P, np.int64)
    n_nodes = 0
    for li, k in enumerate(levels):
        new = porder[p_start[li] : p_end[li]]
        m = len(new)
        es, ee = e_start[li], e_end[li]
        u, v = eu[es:ee], ev[es:ee]
        # vertices: new pixels 0..m-1, then the current roots they touch; every touched root
        # shares a component with a new pixel, and csgraph numbers components by their lowest
        # vertex, so the new nodes are exactly labels 0..ncomp-1
        a = rank[u]
        b = rank[v]
        uo, vo = u_old[es:ee], v_old[es:ee]
        ru, rv = up[own[u[uo]]], up[own[v[vo]]]
        # compact the touched roots to vertices m.. (a flag array, not a sort: the graph's
        # size, not the number of nodes so far, then sets the cost of the csgraph call)
        touched[ru] = True
        touched[rv] = True
        roots = np.flatnonzero(touched[:n_nodes])
        touched[roots] = False
        slot[roots] = np.arange(m, m + len(roots))
        a[uo] = slot[ru]
        b[vo] = slot[rv]
        nv = m + len(roots)
        g = sparse.csr_matrix((np.ones(len(a), np.int8), (a, b)), shape=(nv, nv))
        _, comp = csgraph.connected_components(g, directed=False)
        ncomp = int(comp[:m].max()) + 1
        own[new] = n_nodes + comp[:m]
        parent[roots] = n_nodes + comp[m:]
        up[roots] = parent[roots]
        node_level[n_nodes : n_nodes + ncomp] = k
        pix_sorted_parts.append(new[np.argsort(comp[:m], kind="stable")])
        n_nodes += ncomp
        level_first[li + 1] = n_nodes
        up[:n_nodes] = up[up[:n_nodes]]

    N = n_nodes
    parent, node_level = parent[:N], node_level[:N]
    pix_order = np.concatenate(pix_sorted_parts)  # own[pix_order] is non-decreasing
    own_sorted = own[pix_order]
    starts = np.searchsorted(own_sorted, np.arange(N))

    # own-pixel reductions, then pushed to ancestors level by level (children are created first)
    coords = np.unravel_index(idx[pix_order], shape)
    pv = prob.ravel()[idx[pix_order]].astype(np.float64)
    cnt = np.diff(np.append(starts, P)).astype(np.float64)
    sums = np.column_stack(
        [cnt] + [np.add.reduceat(c.astype(np.float64), starts) for c in coords] + [np.add.reduceat(pv, starts)]
    )
    mins = np.column_stack([np.minimum.reduceat(c, starts) for c in coords]).astype(np.int64)
    maxs = np.column_stack([np.maximum.reduceat(c, starts) for c in coords]).astype(np.float64)
    maxs = np.column_stack([maxs, np.maximum.reduceat(pv, starts)])
    nsub = np.ones(N, np.int64)
    for li in range(len(levels)):
        s, e = level_first[li], level_first[li + 1]
        par = parent[s:e]
        has_parent = par >= 0
        if not has_parent.any():
            continue
        par, src = par[has_parent], np.arange(s, e)[has_parent]
        np.add.at(sums, par, sums[src])
        np.add.at(nsub, par, nsub[src])
        np.minimum.at(mins, par, mins[src])
        np.maximum.at(maxs, par, maxs[src])

    # drop small components (area is monotone, so the dropped set is closed under descent)
    keep = sums[:, 0] >= min_area
    if not keep.all():
        target = np.where(keep, np.arange(N), parent)
        while True:
            bad = (target >= 0) & ~keep[np.maximum(target, 0)]
            if not bad.any():
                break
            target[bad] = parent[target[bad]]
        own_sorted = target[own_sorted]
        # recount subtree sizes over kept nodes only
        nsub = keep.astype(np.int64)
        for li in range(len(levels)):
            s, e = level_first[li], level_first[li + 1]
            par = parent[s:e]
            kept_child = (par >= 0) & keep[s:e]
            np.add.at(nsub, par[kept_child], nsub[s:e][kept_child])

    # preorder numbering over kept nodes: subtree(n) = [pre[n], pre[n] + nsub[n])
    kept = np.flatnonzero(keep)
    pre = np.full(N, -1, np.int64)
    nonroot = kept[parent[kept] >= 0]
    root = kept[parent[kept] < 0]
    pre[root] = np.concatenate([[0], np.cumsum(nsub[root])[:-1]]) if len(root) else root
    if len(nonroot):
        o = nonroot[np.argsort(parent[nonroot], kind="stable")]
        sz = nsub[o]
        csum = np.cumsum(sz) - sz
        grp_first = np.r_[True, parent[o][1:] != parent[o][:-1]]
        base = np.maximum.accumulate(np.where(grp_first, csum, 0))
        offset = np.empty(N, np.int64)
        offset[o] = csum - base
        for li in range(len(levels) - 1, -1, -1):  # parents (lower levels) first
            s, e = level_first[li], level_first[li + 1]
            ids = np.arange(s, e)
            ids = ids[keep[s:e] & (parent[s:e] >= 0)]
            pre[ids] = pre[parent[ids]] + 1 + offset[ids]
    order = np.empty(len(kept), np.int64)
    order[pre[kept]] = kept  # new id -> old id

    pixel_node = np.full(shape, -1, np.int32)
    valid = own_sorted >= 0
    pixel_node.ravel()[idx[pix_order][valid]] = pre[own_sorted[valid]]

    area = sums[order, 0].astype(np.int64)
    centroid = sums[order, 1 : 1 + ndim] / area[:, None]
    bbox = np.concatenate([mins[order], maxs[order, :ndim].astype(np.int64) + 1], axis=1)
    score = sums[order, 1 + ndim] / area
    max_prob = maxs[order, ndim]
    hier_parent = np.where(parent[order] >= 0, pre[np.maximum(parent[order], 0)], -1)
    subtree = nsub[order]
    masks = _masks(pixel_node, bbox, subtree, hier_parent) if with_masks else []
    n = len(order)
    cands = Candidates(
        t=np.full(n, t, np.int64),
        label=np.arange(1, n + 1, dtype=np.int64),
        centroid=centroid,
        area=area,
        bbox=bbox,
        masks=masks,
        hier_parent=hier_parent.astype(np.int64),
        threshold=node_level[order] / scale,
        score=score,
        max_prob=max_prob,
    )
    return cands, ForestIndex(pixel_node, subtree)


def _masks(
    pixel_node: np.ndarray, bbox: np.ndarray, subtree: np.ndarray, hier_parent: np.ndarray, budget: int = 4_000_000
) -> list[np.ndarray]:
    """Bool mask of every node inside its bbox, from the preorder ids in ``pixel_node``.

    Node n's mask is the unsigned range test ``0 <= pixel_node - n < subtree[n]``. Doing it for a
    whole tree at once on the root's crop (S x crop broadcast) then slicing each node was 1.4-1.7x
    faster than one test per node (0.18 vs 0.29 s for 22.8k nodes); huge merged trees fall back
    to per-node tests to bound memory by ``budget`` elements.
    """
    ndim = pixel_node.ndim
    u = pixel_node.view(np.uint32)  # -1 wraps to 2**32-1, never inside a range
    bl = bbox.tolist()
    sz = subtree.astype(np.uint32)
    out: list[np.ndarray] = [np.zeros(0, bool)] * len(bl)
    roots = np.flatnonzero(hier_parent < 0).tolist()
    for r, e in zip(roots, roots[1:] + [len(bl)]):
        rb = bl[r]
        crop = u[tuple(slice(rb[d], rb[d + ndim]) for d in range(ndim))]
        if (e - r) * crop.size <= budget:
            ids = np.arange(r, e, dtype=np.uint32).reshape((-1,) + (1,) * ndim)
            block = (crop[None] - ids) < sz[r:e].reshape(ids.shape)
            if e - r == 1:  # a single-node tree: the crop is its bbox
                out[r] = block[0]
                continue
            if ndim == 2:  # the common case without per-node tuple building (~20% of the loop)
                y0, x0 = rb[0], rb[1]
                for i in range(r, e):
                    b = bl[i]
                    out[i] = block[i - r, b[0] - y0 : b[2] - y0, b[1] - x0 : b[3] - x0].copy()
                continue
            for i in range(r, e):
                b = bl[i]
                sl = tuple(slice(b[d] - rb[d], b[d + ndim] - rb[d]) for d in range(ndim))
                out[i] = block[(i - r,) + sl].copy()
        else:
            for i in range(r, e):
                b = bl[i]
                c = u[tuple(slice(b[d], b[d + ndim]) for d in range(ndim))] - np.uint32(i)
                out[i] = c < sz[i]
    return out


def paint_pixel_node(c: Candidates, shape: tuple[int, ...]) -> np.ndarray:
    """The ``ForestIndex.pixel_node`` image of one frame's candidates, rebuilt from their masks.

    For candidates that come back from the store (masks, no index): nodes are painted parents
    first, so each pixel ends up with the deepest node containing it. ``hier_parent`` may be in
    any order.
    """
    parent = np.asarray(c.hier_parent, np.int64)
    depth = np.zeros(len(parent), np.int64)
    cur = parent.copy()
    while (cur >= 0).any():
        m = cur >= 0
        depth[m] += 1
        cur[m] = parent[cur[m]]
    out = np.full(shape, -1, np.int32)
    d = len(shape)
    for i in np.argsort(depth, kind="stable").tolist():
        sl = tuple(slice(int(c.bbox[i, a]), int(c.bbox[i, a + d])) for a in range(d))
        out[sl][c.masks[i]] = i
    return out


def build_forest(
    prob: np.ndarray,
    t: int = 0,
    tau: float = 0.5,
    decimals: int = 2,
    min_area: int = 10,
    with_masks: bool = True,
) -> Candidates:
    """Candidate forest of one frame's probability map ([Z,]Y,X in [0, 1]); nodes in preorder.

    Raises ValueError for NaN, values outside [0, 1], non-float or non-2D/3D input; an empty
    frame (nothing >= ``tau``) gives zero candidates.
    """
    return build_forest_index(prob, t, tau, decimals, min_area, with_masks)[0]
