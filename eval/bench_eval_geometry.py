"""Benchmark: what the geometry beside the STS scores (alignment, uniformity per task; isotropy of every sentence)
costs ``simcse-lab eval``.

The full 7-task suite (test split) on the offline all-MiniLM-L6-v2, ``simcse_lab.evaluation.sts.evaluate`` with
``geometry=False`` and ``geometry=True`` on the same encoder, interleaved over ``--rounds`` rounds in one process
(the shared machine's load hits both alike); data reading is outside the timers (the registry's files are read
once before the first round). Reported for each: wall-clock seconds and the process's CPU seconds
(``time.process_time``, every thread of the process: on a machine shared with other jobs the CPU seconds are
the work done, the wall clock also counts the waiting), their medians and ratios, and the geometry's own
seconds inside the runs with it. The STS numbers of both runs must be identical (checked).

    python eval/bench_eval_geometry.py --rounds 2 --output eval/eval_geometry.json

It writes eval/eval_geometry.json and eval/eval_geometry.md (``render``: every number in it from the JSON).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
import sys
import time

from simcse_lab.evaluation.sts import TASKS, evaluate, format_geometry, format_table, load_task
from simcse_lab.modeling.encoder import load_encoder
from simcse_lab.runtime.benchmark import command_line, machine, write_report


RUNS = (("without", "without geometry"), ("with", "with geometry"),
        ("geometry_part", "the geometry itself (inside the runs with it)"))


def _row(report: dict, key: str, name: str, digits: int) -> str:
    sec, median = report["seconds"], report["median_seconds"]
    cpu = f"**{median['cpu_' + key]:.{digits}f}**" if key == "geometry_part" else f"{median['cpu_' + key]:.1f}"
    return (f"| {name} | {', '.join(f'{v:.{digits}f}' for v in sec[key])} | "
            f"{', '.join(f'{v:.{digits}f}' for v in sec['cpu_' + key])} | {cpu} |")


def render(report: dict) -> str:
    """eval/eval_geometry.md from its JSON alone."""
    median, m, n = report["median_seconds"], report["machine"], report["rounds"]
    walls = report["seconds"]["without"] + report["seconds"]["with"]
    same = "identical" if report["sts_identical"] else "NOT identical"
    lines = ["# What the geometry beside the STS scores costs `simcse-lab eval`", "",
             "Command (from the repository root, `SIMCSE_LAB_DATA=../shared/data HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1`):",
             "", f"    {report['command']}", "",
             f"The full 7-task suite (test, {report['sentences_encoded']:,} distinct sentences), {report['model']} "
             f"through its own modules, `--precision auto` ({report['precision']} here, on {report['device']}), "
             "`evaluate(..., geometry=False)` against `geometry=True` on the same encoder, interleaved in one process "
             f"(data reading outside the timers). Machine: {m['cpus']} CPUs, torch threads: {m['torch_threads']}, "
             f"{m['platform']}. The wall clock of the evaluations ranged from {min(walls):.1f} s to "
             f"{max(walls):.1f} s (on a shared machine it also counts the waiting); the process's CPU seconds "
             "(`time.process_time`) measure the work done.", "",
             f"| run | wall s ({n} runs) | CPU s ({n} runs) | median CPU s |", "|---|---|---|---|",
             *(_row(report, key, name, 2 if key == "geometry_part" else 1) for key, name in RUNS), "",
             f"**The geometry costs {median['cpu_geometry_part']:.2f} CPU seconds, "
             f"{100 * report['cpu_geometry_share_of_run_without']:.1f}% of the {median['cpu_without']:.1f} CPU seconds "
             f"of the evaluation without it** (wall clock {median['geometry_part']:.1f} s of the run's "
             f"{median['without']:.0f} s: {100 * report['geometry_share_of_run_without']:.1f}%); the whole runs' CPU "
             f"ratio, with/without, is {report['cpu_ratio_with_over_without']:.2f}. The STS numbers are {same} with "
             "and without (checked by the script). What it takes: alignment (the pairs with gold > 4), uniformity "
             "over every pair of each task's sentences (exact; float32 Gram blocks, the upper triangle only), and the "
             f"isotropy of all {report['sentences_encoded']:,} sentences from two dim × dim Gram matrices (exact; no "
             "SVD of the rows, no sampling).", "",
             "Not measured: a GPU." if m.get("cuda") is None else f"GPU: {m['cuda']}.", "",
             "The tables printed by the run:", "", "```", report["table"], "", report["geometry_table"], "```"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--output", default=None)
    args = ap.parse_args()

    for task in TASKS:  # warm the registry's file reads: the timers see encoding and scoring only
        load_task(task, "test")
    encoder = load_encoder(args.model, precision=args.precision)
    evaluate(encoder, ["stsb"], "test", geometry=True)  # warm-up: first-call allocations, kernels
    runs = {"without": [], "with": [], "geometry_part": [], "cpu_without": [], "cpu_with": [], "cpu_geometry_part": []}
    results = {}
    for r in range(args.rounds):
        for mode in (("without", "with") if r % 2 == 0 else ("with", "without")):
            start, cpu = time.perf_counter(), time.process_time()
            result = evaluate(encoder, list(TASKS), "test", geometry=mode == "with")
            runs[mode].append(time.perf_counter() - start)
            runs[f"cpu_{mode}"].append(time.process_time() - cpu)
            if mode == "with":
                runs["geometry_part"].append(result["geometry"]["seconds"])
                runs["cpu_geometry_part"].append(result["geometry"]["cpu_seconds"])
            results[mode] = result
            print(f"round {r + 1} {mode:<8} {runs[mode][-1]:.1f} s, cpu {runs[f'cpu_{mode}'][-1]:.1f} s",
                  file=sys.stderr, flush=True)
    same = all(results["with"]["tasks"][t]["spearman"] == results["without"]["tasks"][t]["spearman"] for t in TASKS)
    if not same:
        raise SystemExit("the STS numbers differ with and without the geometry")
    median = {k: statistics.median(v) for k, v in runs.items()}
    report = {
        "command": command_line("eval/bench_eval_geometry.py", sys.argv[1:]),
        "model": args.model, "precision": results["with"]["precision"], "device": results["with"]["device"],
        "sentences_encoded": results["with"]["sentences_encoded"], "rounds": args.rounds,
        "machine": machine(),
        "seconds": runs, "median_seconds": median,
        "ratio_with_over_without": median["with"] / median["without"],
        "geometry_share_of_run_without": median["geometry_part"] / median["without"],
        "cpu_ratio_with_over_without": median["cpu_with"] / median["cpu_without"],
        "cpu_geometry_share_of_run_without": median["cpu_geometry_part"] / median["cpu_without"],
        "sts_identical": same,
        "table": format_table([results["with"]]), "geometry_table": format_geometry([results["with"]]),
    }
    print(report["table"] + "\n\n" + report["geometry_table"])
    for kind, key in (("wall", ""), ("cpu", "cpu_")):
        print(f"{kind} median: without {median[key + 'without']:.2f} s, with {median[key + 'with']:.2f} s, ratio "
              f"{report[key + 'ratio_with_over_without']:.3f}; geometry itself {median[key + 'geometry_part']:.2f} s"
              f" = {100 * report[key + 'geometry_share_of_run_without']:.1f}% of the run without it")
    if args.output:
        output = Path(args.output)
        write_report(output.parent, output.stem, report, render, indent=2)


if __name__ == "__main__":
    main()
