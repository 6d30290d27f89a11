#!/usr/bin/env bash
# compare (issue 19) over the trials of eval/papers/isotropy-temperature.yaml: unsup SimCSE at temperature 0.01,
# 0.05 and 0.1, 3 seeds each, 7-task STS test table of each trial's best-on-dev checkpoint (summary.json's
# test_after), chosen by their training options; only finished trials (those with a summary.json) are read.
#   eval/papers/isotropy-temperature-compare.sh [SWEEP_DIR]     (default /work/runs/isotropy-temperature)
set -euo pipefail
DIR=${1:-/work/runs/isotropy-temperature}
T="$DIR/trials/*/summary.json"
simcse-lab compare \
  --group "t0.05=$T:temperature=0.05" \
  --group "t0.01=$T:temperature=0.01" \
  --group "t0.1=$T:temperature=0.1" \
  --output eval/papers/isotropy-temperature-compare.json --output eval/papers/isotropy-temperature-compare.md
