#!/usr/bin/env bash
# `make demo`, the main job: an embedded morphogenetic run on scikit-learn's digits, trained
# beside its static baseline, with a progress bar, a one-screen summary and a run folder.
# The first run on a machine also compiles and characterizes the catalog's SAFE kernels
# (about a minute, cached under ~/.cache/esper/assets for later runs).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${ESPER_DEMO_OUT:-runs/demo}"
rm -rf "$OUT"
.venv/bin/esper run --dataset digits --seed 0 --out "$OUT"
echo
echo "In $OUT: report.png (accuracy, loss and parameters with seed events), summary.json,"
echo "metrics.jsonl, events.jsonl (every transition and decision with its reason), lineage.json,"
echo "model.pt (reload with esper.load_model(\"$OUT\")) and baseline/ (the static host's run)."
