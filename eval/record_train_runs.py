"""Collect finished training runs (their summary.json and metrics.jsonl) into eval/train_runs.{json,md}.

    python eval/record_train_runs.py NAME=RUN_DIR [NAME=RUN_DIR ...]

Each run's summary.json holds the exact command that produced it. ``render`` writes the markdown from
eval/train_runs.json alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from simcse_lab.runtime.benchmark import write_report

ROOT = Path(__file__).resolve().parents[1]


def _run_lines(name: str, run: dict) -> list[str]:
    from simcse_lab.evaluation.sts import format_table

    summary, metrics = run["summary"], run["metrics"]
    results = [r for r in (summary.get("test_before"), summary.get("test_after")) if r]
    lines = [f"## {name}", "", f"Command: `{summary['command']}`", "",
             f"{summary['steps']} steps of batch {summary['config']['batch_size']}, world size "
             f"{summary['world_size']}, {summary['precision']}: {summary['seconds_per_step']:.2f} s/step, "
             f"{summary['sentences_per_s']:.1f} sentences/s, peak memory {summary['peak_memory_mb']:.0f} MB; "
             f"best STS-B dev {summary['best_dev_spearman']} at step {summary['best_step']}.", "",
             "Dev curve (step: loss / dev Spearman / alignment / uniformity):", ""]
    lines += [f"- {m['step']}: {format(m['loss'], '.4f') if 'loss' in m else '-'} / {m['dev_spearman']:.2f} / "
              f"{m['alignment']:.4f} / {m['uniformity']:.4f}" for m in metrics if "dev_spearman" in m]
    if results:
        lines += ["", "```", format_table(results, ["before training", "after (" + summary["test_after"]["model"] + ")"]),
                  "```"]
    return lines + [""]


def render(runs: dict) -> str:
    argv = [f"{name}={run['run_dir']}" for name, run in runs.items()]
    lines = ["# Training runs (this shared 2-core CPU)", "",
             "Recorded with `python eval/record_train_runs.py " + " ".join(argv) + "`. The runs were started "
             "under `nice -n 19` while other work shared the CPU, so their s/step are not clean timings "
             "(see eval/train_bench.md for the timed comparison). '-': no training loss logged at that step.", ""]
    for name, run in runs.items():
        lines += _run_lines(name, run)
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    runs = {}
    for item in argv:
        name, _, run = item.partition("=")
        summary = json.loads((Path(run) / "summary.json").read_text())
        metrics = [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines()]
        runs[name] = {"run_dir": run, "summary": summary, "metrics": metrics}
    print(write_report(ROOT / "eval", "train_runs", runs, render, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
