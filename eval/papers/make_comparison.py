"""Re-make eval/papers/: the seed papers' instruments side by side on all-MiniLM-L6-v2.

    python eval/papers/make_comparison.py            # everything: 3 short training runs, 2 analyses
    python eval/papers/make_comparison.py --reuse    # keep training runs that already finished

Run from the repository root with the shared data (SIMCSE_LAB_DATA, default ../shared/data) and the
offline model. What it runs, in order (each command is recorded in comparison.json / comparison.md):

1. unsup SimCSE, ``configs/unsup-quick.yaml`` (60 steps of batch 64 on the wiki sentences), keeping every
   checkpoint (``--save-steps 10 --keep-checkpoints 0``) for the trajectory;
2. the same with ``--cos-reg W`` for W in SWEEP; the weight with the better STS-B dev Spearman (the run's own
   model selection, never the test sets) is the table's "unsup + cosine regulariser" row;
3. ``analyze`` of the four checkpoints (untrained [CLS], unsup, MiniLM mean pooling, unsup + cos-reg), with
   BERT-whitening and BERT-flow and the 7 STS test sets, into eval/papers/report/;
4. ``analyze --trajectory`` of run 1 into eval/papers/trajectory/;
5. eval/papers/comparison.{md,json}: the comparison table, the sweep and the commands.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "eval" / "papers"
RUNS = Path("runs/papers")
SWEEP = ("0.1", "1")
TASKS = "sts12,sts13,sts14,sts15,sts16,stsb,sickr"
CLI = ["simcse-lab"]
TRAIN = ["train", "--config", "configs/unsup-quick.yaml", "--test-tasks", "none", "--no-progress"]
ANALYSIS = ["--max-sentences", "1000", "--token-dynamics-sentences", "1000", "--no-tokens"]


def run(argv: list[str], log: list[dict]) -> None:
    command = shlex.join(CLI + argv)
    print(f"\n$ {command}", flush=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "simcse_lab", *argv], check=True, cwd=ROOT)
    log.append({"command": command, "seconds": round(time.perf_counter() - start, 1)})


def train(name: str, extra: list[str], log: list[dict], reuse: bool) -> Path:
    out = RUNS / name
    if reuse and (ROOT / out / "summary.json").is_file():
        summary = json.loads((ROOT / out / "summary.json").read_text())
        recorded = shlex.split(summary["command"])  # argv[0] is however the run was started
        log.append({"command": shlex.join(CLI + recorded[1:]), "seconds": None, "reused": str(out)})
        print(f"\nreusing {out} ({summary['command']})")
        return out
    run(TRAIN + extra + ["--output-dir", str(out)], log)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse", action="store_true", help="keep training runs that already finished")
    args = parser.parse_args(argv)
    os.environ.setdefault("SIMCSE_LAB_DATA", str(ROOT.parent / "shared" / "data"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    log: list[dict] = []

    unsup = train("unsup", ["--save-steps", "10", "--keep-checkpoints", "0"], log, args.reuse)
    sweep = {}
    for weight in SWEEP:
        run_dir = train(f"unsup-cosreg-{weight}", ["--cos-reg", weight], log, args.reuse)
        sweep[weight] = {"run": str(run_dir),
                         "best_dev_spearman": json.loads((ROOT / run_dir / "summary.json").read_text())[
                             "best_dev_spearman"]}
    chosen = max(sweep, key=lambda w: sweep[w]["best_dev_spearman"])
    unsup_dev = json.loads((ROOT / unsup / "summary.json").read_text())["best_dev_spearman"]

    checkpoints = ["all-MiniLM-L6-v2@cls_before_pooler", f"{unsup}@cls_before_pooler", "all-MiniLM-L6-v2@avg",
                   f"{sweep[chosen]['run']}@cls_before_pooler"]
    run(["analyze", "--model", checkpoints[0], "--compare", *checkpoints[1:], "--whiten", "--flow",
         "--sts-tasks", TASKS, "--whiten-max", "2000", "--flow-max", "2000", *ANALYSIS,
         "--output-dir", str(OUT.relative_to(ROOT) / "report")], log)
    run(["analyze", "--trajectory", str(unsup), *ANALYSIS, "--output-dir", str(OUT.relative_to(ROOT) / "trajectory")],
        log)
    write_comparison(log, sweep, chosen, unsup_dev)
    return 0


def write_comparison(log: list[dict], sweep: dict, chosen: str, unsup_dev: float) -> None:
    sys.path.insert(0, str(ROOT))
    from simcse_lab.analysis.report import comparison_table, stop_list_sentence
    from simcse_lab.io import write_json, write_text

    report = json.loads((OUT / "report" / "report.json").read_text())
    trajectory = json.loads((OUT / "trajectory" / "report.json").read_text())["trajectory"]
    rows = report["comparison"]
    write_json(OUT / "comparison.json", {"commands": log, "cos_reg_sweep": sweep, "cos_reg_chosen": chosen,
                                         "unsup_best_dev_spearman": unsup_dev, "sts_tasks": TASKS.split(","),
                                         "comparison": rows, "trajectory": trajectory["checkpoints"]})
    lines = ["# The seed papers' instruments on all-MiniLM-L6-v2: the comparison table", "",
             "Made by `python eval/papers/make_comparison.py` (on a 2-core CPU), which ran, in order:", ""]
    lines += [f"    {entry['command']}" for entry in log]
    lines += ["", f"Cosine-regulariser weight: {chosen}, the better STS-B dev Spearman of the sweep "
              + ", ".join(f"W={w}: {s['best_dev_spearman']:.2f}" for w, s in sweep.items())
              + f" (unsup without it: {unsup_dev:.2f}).", "",
              "STS avg: Spearman x100 over the 7 test sets (STS12-16, STS-B, SICK-R; SimCSE's 'all' aggregation). "
              "align / uniform / IsoScore: the L2-normalised vectors of 1,000 STS-B dev sentences (alignment over "
              "their pairs with gold > 4). Token columns: the last layer's token vectors of the same sentences "
              "(intra-sentence similarity to the sentence's mean vector; self-similarity of function / content "
              "token types; mean token norm; norm of the mean token vector). '+ whitening' / '+ flow': the map "
              "fitted on 2,000 wiki sentences' embeddings, applied to the sentence vectors and, for the token "
              "columns, to every last-layer token vector.", "", comparison_table(rows), "",
              stop_list_sentence(), "", "Full reports (per-layer tables, figures): [report/](report/report.md), "
              "[trajectory/](trajectory/report.md). What reproduces: [README.md](README.md).", ""]
    write_text(OUT / "comparison.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
