"""Node costs for competing candidates (a forest): how much selecting each one is worth.

``cost_i = -(appear + disappear + 5) · (area_i / median root area) · (2·score_i − 1) − bonus``
(nats). Proportional to area, so splitting a region into its children is neither rewarded nor
punished by node costs alone (the tracking costs decide); weighted by how far the map's mean
probability lies above 0.5; minus a per-detection ``bonus`` (default 5 nats, the margin of the
default node cost in :mod:`solvers.costs`). Without the bonus the joint model kept two
just-divided, touching daughters as one region (bacteria selection, ``benchmarks/selection.py``:
F1 0.960 / AJI 0.850 instead of 0.966 / 0.857).
"""

from __future__ import annotations

import numpy as np

from solvers.costs import DEFAULT_COST_PARAMS, CostParams

DEFAULT_BONUS = 5.0


def forest_node_cost(
    area: np.ndarray,
    score: np.ndarray,
    hier_parent: np.ndarray,
    params: CostParams = DEFAULT_COST_PARAMS,
    bonus: float = DEFAULT_BONUS,
) -> np.ndarray:
    area = np.asarray(area, np.float64)
    roots = np.asarray(hier_parent) < 0
    ref_area = float(np.median(area[roots])) if roots.any() else 1.0
    return -(params.appear + params.disappear + 5.0) * (area / ref_area) * (2.0 * np.asarray(score) - 1.0) - bonus
