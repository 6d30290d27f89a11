"""Benchmark: peak memory and step time against the batch size, with every activation kept and with
``--mini-batch-size`` (the step's sentences encoded N at a time and recomputed in the backward pass).

Supervised SimCSE (3 sentences per example) on the shared SNLI triplets (``--data nli``), all-MiniLM-L6-v2,
max length 32, the default precision, ``--steps`` steps per run, each run a fresh process launched by this
script. For each batch size: the defaults (``--length-chunks 2``, everything kept), then the same with
``--mini-batch-size N``. Peak memory is the process's peak RSS (``os.wait4``'s ``ru_maxrss``, what
``/usr/bin/time -v`` reports) and the peak PSS of its process tree sampled every 0.25 s, the larger of the two
(:func:`simcse_lab.runtime.benchmark.measure_process`); seconds per step are the median of the logged steps after the first.
The claim it checks: with mini-batches the peak stops growing with the batch (only the embeddings, the
logits and the model's state do), at the price of one more forward pass per step.

    python eval/bench_mini_batches.py [--batch-sizes 64,128,256,512] [--mini-batch-size 64] [--steps 3]

Writes eval/mini_batches.json and eval/mini_batches.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

from simcse_lab.runtime.benchmark import child_env, command_line, load_note, machine, measure_process, write_report

ROOT = Path(__file__).resolve().parents[1]

MODEL = "all-MiniLM-L6-v2"


def run(workdir: Path, name: str, batch_size: int, steps: int, mini_batch_size: int) -> dict:
    out = workdir / name
    cmd = [sys.executable, "-m", "simcse_lab", "train", "--objective", "sup", "--model", MODEL, "--data", "nli",
           "--pooler", "cls", "--no-mlp-only-train", "--batch-size", str(batch_size), "--max-seq-len", "32",
           "--lr", "5e-5", "--max-steps", str(steps), "--log-steps", "1", "--eval-steps", "0", "--test-tasks", "none",
           "--no-progress", "--output-dir", str(out), "--mini-batch-size", str(mini_batch_size)]
    result = measure_process(cmd, child_env({"SIMCSE_LAB_CACHE": str(workdir / "cache")}, ROOT),
                             (lambda: None, lambda: None), workdir / f"{name}.log", 3600, ROOT)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()] \
        if (out / "metrics.jsonl").is_file() else []
    seconds = [1 / r["steps_per_s"] for r in records[1:] if r.get("steps_per_s")]
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
    return {"name": name, "batch_size": batch_size, "sentences_per_step": 3 * batch_size,
            "mini_batch_size": mini_batch_size, "returncode": result["returncode"], "steps": len(records),
            "precision": summary.get("precision"), "peak_gb": result["peak_gb"],
            "seconds_per_step": round(statistics.median(seconds), 3) if seconds else None,
            "command": shlex.join(cmd[1:])}


def render(report: dict) -> str:
    m = report["machine"]
    mb = report["mini_batch_size"]
    lines = ["# Memory against batch size: every activation kept vs `--mini-batch-size`", "",
             f"Supervised SimCSE on the shared SNLI triplets, {MODEL}, max length 32, {report['precision']}, "
             f"{report['steps']} steps per run, a fresh process per run (peak = the larger of peak RSS and the "
             "process tree's peak PSS). Seconds per step: median of the steps after the first.", "",
             "```bash", report["command"], "```", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}; "
             f"{load_note(m, report['machine_end'])}.", "",
             f"| batch (sentences per step) | kept: peak (GB) | kept: s/step | mini-batch {mb}: peak (GB) | "
             f"mini-batch {mb}: s/step | memory saved | time ratio |", "|---|---|---|---|---|---|---|"]
    for b in report["batch_sizes"]:
        kept, cached = report["runs"][f"kept-{b}"], report["runs"][f"mb{mb}-{b}"]
        ratio = (f"{cached['seconds_per_step'] / kept['seconds_per_step']:.2f}×"
                 if kept["seconds_per_step"] and cached["seconds_per_step"] else "")
        lines.append(f"| {b} ({3 * b}) | {kept['peak_gb']} | {kept['seconds_per_step']} | {cached['peak_gb']} | "
                     f"{cached['seconds_per_step']} | {kept['peak_gb'] - cached['peak_gb']:.2f} GB | {ratio} |")
    first, last = report["batch_sizes"][0], report["batch_sizes"][-1]
    growth = {kind: report["runs"][f"{kind}-{last}"]["peak_gb"] - report["runs"][f"{kind}-{first}"]["peak_gb"]
              for kind in ("kept", f"mb{mb}")}
    lines += ["", f"From batch {first} to {last} the peak grows by {growth['kept']:.2f} GB with every activation kept "
              f"and by {growth[f'mb{mb}']:.2f} GB with mini-batches of {mb} sentences"
              + (" (embeddings, logits and allocator state; the activations no longer grow with the batch)."
                 if growth[f"mb{mb}"] < growth["kept"] / 4 else "."), ""]
    failed = [r["name"] for r in report["runs"].values() if r["returncode"] != 0 or r["steps"] != report["steps"]]
    if failed:
        lines += [f"Runs that did not finish: {', '.join(failed)}.", ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-sizes", default="64,128,256,512")
    p.add_argument("--mini-batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--workdir", type=Path, default=None, help="default: a temporary directory")
    args = p.parse_args()
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    report = {"command": command_line("eval/bench_mini_batches.py", sys.argv[1:]), "machine": machine(),
              "steps": args.steps, "mini_batch_size": args.mini_batch_size, "batch_sizes": sizes, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        for b in sizes:
            for name, mb in ((f"kept-{b}", 0), (f"mb{args.mini_batch_size}-{b}", args.mini_batch_size)):
                print(f"{name} ...", file=sys.stderr, flush=True)
                report["runs"][name] = run(workdir, name, b, args.steps, mb)
                print(f"  {json.dumps({k: v for k, v in report['runs'][name].items() if k != 'command'})}",
                      file=sys.stderr, flush=True)
    report["machine_end"] = machine()
    report["precision"] = next((r["precision"] for r in report["runs"].values() if r["precision"]), "?")
    print(write_report(ROOT / "eval", "mini_batches", report, render))


if __name__ == "__main__":
    main()
