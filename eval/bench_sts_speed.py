"""Benchmark: the simcse-lab STS harness against the straightforward sentence-transformers path.

Peer ("baseline"): what a user would write by hand: ``SentenceTransformer(model).encode`` per task
(each side of every task's pairs, fp32, default batch size), cosine, Spearman over the task's
concatenated subsets. Ours: ``simcse_lab.evaluation.sts.evaluate`` with the same model modules, once in fp32 and
once in bf16. All three run in the same process, interleaved over ``--rounds`` rounds, so the ratio
is measured on the same (noisy, shared) machine at the same time. Data reading is outside the timers
for every path.

    python eval/bench_sts_speed.py --output eval/sts_speed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from simcse_lab.modeling.encoder import Encoder
from simcse_lab.modeling.resolve import resolve_model
from simcse_lab.evaluation.sts import TASKS, aggregate, evaluate, load_task
from simcse_lab.evaluation.vectors import cosine_rows
from simcse_lab.runtime.benchmark import command_line, machine, write_json


def baseline(model, data) -> tuple[dict, float]:
    start = time.perf_counter()
    scores = {}
    for task, subsets in data.items():
        s1 = [s for ps in subsets.values() for s in ps.sent1]
        s2 = [s for ps in subsets.values() for s in ps.sent2]
        e1, e2 = model.encode(s1), model.encode(s2)
        per_subset, offset = {}, 0
        for name, ps in subsets.items():
            n = len(ps)
            pred = cosine_rows(e1[offset:offset + n], e2[offset:offset + n])
            per_subset[name] = (pred, np.asarray(ps.scores, dtype=np.float64))
            offset += n
        scores[task] = aggregate(per_subset, "all")["spearman"]
    return scores, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--output", default=None)
    args = ap.parse_args()

    from sentence_transformers import SentenceTransformer

    data = {task: load_task(task, "test") for task in TASKS}
    st_model = SentenceTransformer(resolve_model(args.model), device="cpu")
    ours = {p: Encoder(args.model, precision=p) for p in ("fp32", "bf16")}
    times = {"baseline_st_fp32": [], "ours_fp32": [], "ours_bf16": []}
    scores = {}
    for r in range(args.rounds):
        scores["baseline_st_fp32"], t = baseline(st_model, data)
        times["baseline_st_fp32"].append(t)
        for p, enc in ours.items():
            res = evaluate(enc, TASKS, "test", "all")
            scores[f"ours_{p}"] = {k: v["spearman"] for k, v in res["tasks"].items()}
            times[f"ours_{p}"].append(res["seconds"])
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()), flush=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    base = scores["baseline_st_fp32"]
    report = {
        "command": command_line("eval/bench_sts_speed.py", sys.argv[1:]),
        "machine": machine(),
        "model": args.model,
        "pairs": {t: sum(len(ps) for ps in d.values()) for t, d in data.items()},
        "seconds_median": med,
        "seconds_all": times,
        "speedup_vs_baseline": {k: med["baseline_st_fp32"] / v for k, v in med.items() if k != "baseline_st_fp32"},
        "spearman_x100": scores,
        "max_abs_spearman_diff_vs_baseline": {
            k: max(abs(scores[k][t] - base[t]) for t in TASKS) for k in scores if k != "baseline_st_fp32"
        },
    }
    print(json.dumps({k: report[k] for k in ("seconds_median", "speedup_vs_baseline",
                                             "max_abs_spearman_diff_vs_baseline")}, indent=2))
    if args.output:
        write_json(args.output, report, indent=2)


if __name__ == "__main__":
    main()
