#!/usr/bin/env bash
# The main job on the embedded default model (all-MiniLM-L6-v2, offline).
# Everything lands in one run directory: RUN=${RUN:-runs/main-<timestamp>}.
set -euo pipefail
RUN="${RUN:-runs/main-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$RUN"
echo "== run directory: $RUN"

echo "== 1. STS table of the default model (7 tasks, test, Spearman x100)"
simcse-lab eval --model all-MiniLM-L6-v2 --output "$RUN/sts_default.json"
