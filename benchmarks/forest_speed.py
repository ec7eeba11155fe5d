"""Speed of the candidate forest (issue 3: <= 0.3 s for a 1305x1009 frame with node features).

Probability map: :func:`inference.synthetic.prob_from_labels` of bacteria GT frame 52 (358 cells,
the fullest frame). Reports the median of ``--repeats`` runs of

* ``forest_features``: :func:`inference.forest.build_forest_index` without masks (parents,
  centroid, area, bbox, mean/max probability, threshold, the pixel → node index);
* ``forest_with_masks``: the same plus every node's bbox mask (the ``Candidates`` contract);
* ``ndimage_label_all_levels``: ``scipy.ndimage.label`` of every level >= 0.5 (labels only, no
  features, no hierarchy: the issue's reference, 0.54 s on its machine);
* ``max_tree`` (``--max-tree``): ``skimage.morphology.max_tree`` (6.6 s in the issue);

and how the time grows with the number of cells (frames 10..52) and with the crop size.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/forest_speed.py [--repeats 5] [--max-tree]

Prints ONE JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from inference.forest import build_forest_index
from inference.synthetic import prob_from_labels

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import DEFAULT_DATA, emit, log


def median_time(fn: Callable[[], object], repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return round(float(np.median(ts)), 4)


def label_all_levels(prob: np.ndarray) -> None:
    q = np.rint(prob * 100)
    for k in range(50, 101):
        ndi.label(q >= k)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--max-tree", action="store_true")
    args = ap.parse_args()
    import tifffile

    files = sorted(glob.glob(str(args.data / "01_GT" / "TRA" / "man_track*.tif")))
    gt52 = tifffile.imread(files[52])
    prob = prob_from_labels(gt52, seed=2026 + 52)
    c, _ = build_forest_index(prob)  # warm-up, and the node count
    res: dict[str, Any] = {
        "frame": 52,
        "shape": list(prob.shape),
        "cells": int(len(np.unique(gt52)) - 1),
        "levels": int(len(np.unique(np.rint(prob[prob >= 0.5] * 100)))),
        "nodes": len(c),
        "repeats": args.repeats,
    }
    res["forest_features_s"] = median_time(lambda: build_forest_index(prob, with_masks=False), args.repeats)
    res["forest_with_masks_s"] = median_time(lambda: build_forest_index(prob), args.repeats)
    res["ndimage_label_all_levels_s"] = median_time(lambda: label_all_levels(prob), args.repeats)
    # the machine is shared: ratios to the reference measured in the same run travel better
    ref = res["ndimage_label_all_levels_s"]
    res["features_over_ndimage"] = round(res["forest_features_s"] / ref, 3)
    res["with_masks_over_ndimage"] = round(res["forest_with_masks_s"] / ref, 3)
    log(res)
    if args.max_tree:
        from skimage.morphology import max_tree

        res["skimage_max_tree_s"] = median_time(lambda: max_tree(prob), 1)

    growth = []
    for f in (5, 15, 25, 35, 45, 52):
        g = tifffile.imread(files[f])
        p = prob_from_labels(g, seed=2026 + f)
        n = len(build_forest_index(p, with_masks=False)[0])
        growth.append(
            {
                "frame": f,
                "cells": int(len(np.unique(g)) - 1),
                "nodes": n,
                "features_s": median_time(partial(build_forest_index, p, with_masks=False), 3),
                "with_masks_s": median_time(partial(build_forest_index, p), 3),
            }
        )
        log(growth[-1])
    res["by_cells"] = growth
    size = []
    cy, cx = (int(v) for v in np.argwhere(prob >= 0.5).mean(0))  # centre of the colony
    for side in (256, 512, 768, 1009):
        y0 = max(0, min(cy - side // 2, prob.shape[0] - side))
        x0 = max(0, min(cx - side // 2, prob.shape[1] - side))
        p = np.ascontiguousarray(prob[y0 : y0 + side, x0 : x0 + side])
        size.append(
            {
                "crop": list(p.shape),
                "nodes": len(build_forest_index(p, with_masks=False)[0]),
                "features_s": median_time(partial(build_forest_index, p, with_masks=False), 3),
                "with_masks_s": median_time(partial(build_forest_index, p), 3),
            }
        )
        log(size[-1])
    res["by_size"] = size
    emit("forest_speed", res)


if __name__ == "__main__":
    main()
