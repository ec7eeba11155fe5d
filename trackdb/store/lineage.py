"""What a lineage plot needs beyond the family's tracks (:func:`trackdb.store.queries.lineage_tree`):
how probable each division of the family is, from an uncertainty run of the solution."""

from __future__ import annotations

import sqlalchemy as sa

from trackdb.store.core import Store

# A division's probability is the product of its two daughters' incoming link probabilities
# (as `trackdb uncertain` scores it, trackdb.store.probabilities): the daughter track's first
# cell, the selected link into it, that link's probability in the run.
DIVISION_P_SQL = """
SELECT t.parent_track_id AS mother, t.track_id AS daughter, ep.p
FROM track t
JOIN solution_node sn ON sn.solution_id = t.solution_id AND sn.track_id = t.track_id AND sn.t = t.start_t
JOIN solution_edge se ON se.solution_id = t.solution_id AND se.target_id = sn.node_id
JOIN edge_probability ep ON ep.edge_id = se.edge_id AND ep.run_id = :run_id
WHERE t.solution_id = :solution_id AND t.parent_track_id IS NOT NULL
"""


def division_probabilities(store: Store, solution_id: int, run_id: int) -> dict[int, float]:
    """Mother track id → probability of its division (tracks with two scored daughters)."""
    by_mother: dict[int, list[float]] = {}
    with store.engine.connect() as c:
        for mother, _daughter, p in c.execute(sa.text(DIVISION_P_SQL), {"run_id": run_id, "solution_id": solution_id}):
            by_mother.setdefault(int(mother), []).append(float(p))
    return {m: ps[0] * ps[1] for m, ps in by_mother.items() if len(ps) == 2}
