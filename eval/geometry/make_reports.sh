#!/usr/bin/env bash
# Geometry reports committed under eval/geometry/. Run from the repository root:
#   bash eval/geometry/make_reports.sh                       # the all-MiniLM-L6-v2 report
#   bash eval/geometry/make_reports.sh runs/unsup-wiki/best  # + before/after of a trained checkpoint
# For the before/after report, the run's metrics.jsonl (next to best/, or given as $2) is plotted as the
# training trajectory. Both checkpoints are read with the same pooler, $POOLER (default
# cls_before_pooler: unsup SimCSE trains with cls + MLP and evaluates without the MLP).
set -euo pipefail
export HF_HUB_OFFLINE=1 SIMCSE_LAB_DATA=${SIMCSE_LAB_DATA:-../shared/data}

if [ "${SKIP_MINILM:-0}" != 1 ]; then
    # 1. untrained [CLS] vs trained mean pooling of all-MiniLM-L6-v2: sentence geometry, per-layer profile,
    #    token-level degeneration and the BERT-whitening baseline (fitted on 5000 wiki sentences)
    simcse-lab analyze --model all-MiniLM-L6-v2 --pooler cls_before_pooler --compare all-MiniLM-L6-v2@avg \
        --whiten --output-dir eval/geometry/minilm-cls-vs-avg
fi

# 2. before/after training: the base model vs the trained checkpoint
if [ $# -ge 1 ]; then
    trained=$1
    pooler=${POOLER:-cls_before_pooler}
    metrics=${2:-$(dirname "$trained")/metrics.jsonl}
    traj=()
    [ -f "$metrics" ] && traj=(--trajectory "$metrics")
    simcse-lab analyze --model "all-MiniLM-L6-v2@$pooler" --compare "$trained@$pooler" \
        --whiten "${traj[@]}" --output-dir "eval/geometry/before-after-$(basename "$(dirname "$trained")")"
fi
