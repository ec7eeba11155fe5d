#!/usr/bin/env bash
# The main job end to end on the shipped bacteria movie, embedded default (SQLite + local Zarr):
# raw frames → network predictions (Zarr) → candidates → links → joint solve → queries, exports
# and CTC metrics against the ground truth. Without a model folder the probability map is derived
# from the ground truth instead (scripts/gt_probability.py).
set -euo pipefail
OUT=${OUT:-demo-out}; DATA=${DATA:-../shared/data/bacteria-divisualisation}; VENV=${VENV:-.venv}
MODEL=${MODEL:-models/bacteria}
TRACKDB="$VENV/bin/trackdb"; PY="$VENV/bin/python"
if [ ! -f "$DATA/01_GT/TRA/man_track.txt" ]; then
  echo "demo data not found at $DATA (set DATA=...)" >&2; exit 2
fi
rm -rf "$OUT"; mkdir -p "$OUT"
export TRACKDB_DB="sqlite:///$OUT/demo.sqlite"
step() { printf '\n== %s\n' "$*"; }
metrics() { "$PY" -c "import json,sys; m=json.load(open(sys.argv[1])); print(sys.argv[2], {k: round(m[k], 4) for k in ('TRA','DET','LNK','SEG')})" "$1" "$2"; }

step "1. a new store and the raw bacteria movie (53 frames, 1305x1009)"
"$TRACKDB" init
"$TRACKDB" import-ctc "$DATA" --seq 01 --movie bacteria --no-gt

if [ -f "$MODEL/weights.pt" ]; then
  step "2. predictions of the shipped model into Zarr (CPU here, CUDA when present; resumable)"
  "$TRACKDB" predict --movie bacteria --model "$MODEL" --zarr "$OUT/bacteria.zarr"
  step "2b. the network's own clustering + linking (EmbedTrack baseline)"
  "$TRACKDB" solve --movie bacteria --method embedtrack
  "$TRACKDB" evaluate --movie bacteria --gt "$DATA/01_GT" 2>/dev/null > "$OUT/metrics-embedtrack.json"
  step "3. candidates from the predictions (with embeddings) -> links -> joint selection + tracking"
  "$TRACKDB" candidates-from-predictions --movie bacteria
else
  step "2. no model at $MODEL: a probability map derived from the ground truth (merges, splits, noise)"
  "$PY" scripts/gt_probability.py "$DATA/01_GT/TRA" "$OUT/prob.zarr"
  step "3. candidates (H-EMD forest) -> candidate links -> joint selection + tracking"
  "$TRACKDB" candidates --movie bacteria --prob "$OUT/prob.zarr"
fi
"$TRACKDB" link --movie bacteria --max-distance 100 --k 12
"$TRACKDB" solve --movie bacteria --method joint

step "4. store statistics"
"$TRACKDB" stats --movie bacteria

step "5. queries: the lineage of a cell in the last frame, divisions per frame"
NODE=$("$TRACKDB" query "SELECT MIN(sn.node_id) AS id FROM movie m JOIN solution_node sn ON sn.solution_id = m.current_solution_id JOIN node n ON n.id = sn.node_id WHERE m.name = 'bacteria' AND n.t = m.n_frames - 1" --format csv | tail -1)
"$TRACKDB" lineage --node "$NODE" | head -12
"$TRACKDB" query "SELECT t, COUNT(*) AS divisions FROM (SELECT n.t, se.source_id FROM movie m JOIN solution_edge se ON se.solution_id = m.current_solution_id JOIN node n ON n.id = se.source_id WHERE m.name = 'bacteria' GROUP BY n.t, se.source_id HAVING COUNT(*) = 2) d GROUP BY t ORDER BY t DESC LIMIT 5"

step "6. exports: CTC, GEFF, napari tracks"
"$TRACKDB" export-ctc "$OUT/ctc" --movie bacteria
"$TRACKDB" export-geff "$OUT/bacteria.geff" --movie bacteria
"$TRACKDB" export-tracks "$OUT/napari" --movie bacteria --format napari

step "7. CTC metrics of the solution against the ground truth"
"$TRACKDB" evaluate --movie bacteria --gt "$DATA/01_GT" 2>/dev/null > "$OUT/metrics.json"
metrics "$OUT/metrics.json" "joint:"
if [ -f "$OUT/metrics-embedtrack.json" ]; then metrics "$OUT/metrics-embedtrack.json" "embedtrack baseline:"; fi

printf '\nresults are in %s/: demo.sqlite (the store), Zarr arrays, ctc/ (CTC result), bacteria.geff, napari/, metrics*.json\n' "$OUT"
