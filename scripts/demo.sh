#!/usr/bin/env bash
# The main job end to end on the shipped bacteria movie, embedded default (SQLite + local Zarr).
set -euo pipefail
OUT=${OUT:-demo-out}; DATA=${DATA:-../shared/data/bacteria-divisualisation}; VENV=${VENV:-.venv}
TRACKDB="$VENV/bin/trackdb"
if [ ! -f "$DATA/01_GT/TRA/man_track.txt" ]; then
  echo "demo data not found at $DATA (set DATA=...)" >&2; exit 2
fi
rm -rf "$OUT"; mkdir -p "$OUT"
export TRACKDB_DB="sqlite:///$OUT/demo.sqlite"
step() { printf '\n== %s\n' "$*"; }

step "1. import the bacteria sequence (raw frames + ground-truth lineage)"
"$TRACKDB" init
"$TRACKDB" import-ctc "$DATA" --seq 01 --movie bacteria

step "2. store statistics"
"$TRACKDB" stats --movie bacteria

step "3. a lineage query: ancestors of the first cell of the last frame"
NODE=$("$TRACKDB" query "SELECT MIN(n.id) AS id FROM node n JOIN movie m ON m.id = n.movie_id WHERE m.name = 'bacteria' AND n.t = m.n_frames - 1" --format csv | tail -1)
"$TRACKDB" lineage --node "$NODE" | head -12
"$TRACKDB" query "SELECT t, COUNT(*) AS cells FROM node GROUP BY t ORDER BY t DESC LIMIT 5"

step "4. exports: CTC and GEFF"
"$TRACKDB" export-ctc "$OUT/ctc" --movie bacteria
if "$TRACKDB" export-geff --help >/dev/null 2>&1; then "$TRACKDB" export-geff "$OUT/bacteria.geff" --movie bacteria; fi

step "5. evaluate the stored solution against ground truth (CTC metrics)"
"$TRACKDB" evaluate --movie bacteria --gt "$DATA/01_GT" > "$OUT/metrics.json"
cat "$OUT/metrics.json"

printf '\nresults are in %s/: demo.sqlite (the store), ctc/ (CTC result), bacteria.geff, metrics.json\n' "$OUT"
