#!/usr/bin/env bash
# The main job on the embedded default model (all-MiniLM-L6-v2, offline): the whole product in a few
# minutes on a CPU. Everything lands in one run directory, RUN=${RUN:-runs/main-<timestamp>}:
#   sts_default.json     STS table of the default model through its own modules (mean pooling)
#   train/               short unsup SimCSE run: metrics.jsonl, summary.json (STS test table before
#                        and after training, printed at the end of the run),
#                        best/ and final/ (sentence-transformers directories), checkpoints/
#   geometry/            before/after geometry report (report.md, report.json, PNG figures)
#   export/              the trained model exported as a sentence-transformers directory (verified)
#   index-wiki/          faiss index of the 11,914 wiki sentences
#   searches.jsonl       a few example searches
set -euo pipefail
RUN="${RUN:-runs/main-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$RUN"
echo "== run directory: $RUN"

echo; echo "== 1/6 STS table of the default model (its own mean pooling; test; Spearman x100)"
simcse-lab eval --model all-MiniLM-L6-v2 --output "$RUN/sts_default.json"

echo; echo "== 2/6 short unsupervised SimCSE run ([CLS] + MLP-only-train, 60 steps of wiki); STS before -> after"
simcse-lab train --config configs/unsup-quick.yaml --output-dir "$RUN/train" --no-progress

echo; echo "== 3/6 geometry before vs after (untrained [CLS] -> trained [CLS])"
simcse-lab analyze --model all-MiniLM-L6-v2@cls_before_pooler --compare "$RUN/train/best" \
    --no-tokens --trajectory "$RUN/train/metrics.jsonl" --output-dir "$RUN/geometry"

echo; echo "== 4/6 export (sentence-transformers directory, verified on reload)"
simcse-lab export --model "$RUN/train" --format sentence-transformers --output-dir "$RUN/export"

echo; echo "== 5/6 faiss index of the wiki sentences"
simcse-lab index build --model "$RUN/export" --corpus wiki --output-dir "$RUN/index-wiki" --index flat

echo; echo "== 6/6 example searches"
printf '%s\n' "a famous physicist" "The river flows into the sea." "football club founded in the 19th century" \
    > "$RUN/queries.txt"
simcse-lab search --index "$RUN/index-wiki" --queries "$RUN/queries.txt" -k 3 --output "$RUN/searches.jsonl"
python - "$RUN/searches.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"\nquery: {r['query']}")
    for hit in r["results"]:
        print(f"  {hit['score']:.3f}  {hit['text'][:110]}")
PY
echo; echo "== done: everything is in $RUN (see README: 'The main job')"
