#!/usr/bin/env bash
# compare (issue 19) over the trials of eval/papers/esimcse-vs-unsup.yaml: unsup vs ESimCSE as configured vs
# ESimCSE with its momentum from a half-life of 6 steps, 5 seeds each, 7-task STS test table of each trial's
# best-on-dev checkpoint (summary.json's test_after). A sweep numbers its trials (DIR/trials/NNNN), so the
# variants are chosen by their training options; only finished trials (those with a summary.json) are read.
#   eval/papers/esimcse-vs-unsup-compare.sh [SWEEP_DIR]     (default /work/runs/esimcse-vs-unsup)
set -euo pipefail
DIR=${1:-/work/runs/esimcse-vs-unsup}
T="$DIR/trials/*/summary.json"
simcse-lab compare \
  --group "unsup=$T:objective=unsup" \
  --group "esimcse=$T:objective=esimcse,momentum_half_life=0" \
  --group "esimcse-hl6=$T:objective=esimcse,momentum_half_life=6" \
  --output eval/papers/esimcse-vs-unsup-compare.json --output eval/papers/esimcse-vs-unsup-compare.md
