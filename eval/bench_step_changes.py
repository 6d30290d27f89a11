"""Benchmark: each change to the training step measured alone against the plain step, and the loss curve
of the optimised step against the plain one (dropout off).

The plain step is the loop before issue 11: one padded batch, torch's default (for-loop) AdamW on CPU,
autocast with its weight-cast cache, dropout on, the process's threads. Each variant changes one thing.
All runners live in one process and step in turn (one step each per round, A B C ... A B C ...), so load
drifts on a shared machine hit them alike; a variant's speed-up is the median over rounds of
(plain step / variant step) of the same round. The matmul peak is measured in the same run (before and
after), so every rate stands next to the limit of the machine as it was.

Semantics: ``--curve-steps`` steps of the plain and of the optimised step (TrainConfig's defaults) with
dropout off, from the same weights and batches; their losses must agree to float tolerance.

    python eval/bench_step_changes.py --rounds 12 --curve-steps 50      # writes eval/step_changes.{json,md}
    python eval/bench_step_changes.py --objective sup --variants chunks2,chunks4,chunks8 --curve-steps 0
                                                                        # writes eval/step_changes_sup.{json,md}
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import fields
from pathlib import Path

from step_timing import StepRunner  # eval/step_timing.py, beside this script

from simcse_lab.runtime.benchmark import (command_line, interleaved, load_note, machine, measure_peaks, median,
                                          paired_ratio, write_report)
from simcse_lab.training.config import TrainConfig

PLAIN = {"length_chunks": 1, "pack_width": 0, "adamw": "for-loop"}
# name -> (what changes, TrainConfig fields, StepRunner options); each is the plain step with one change
VARIANTS = {
    "plain": ("one padded batch, for-loop AdamW, autocast cache on, dropout on", {}, {}),
    "chunks2": ("rows as 2 length-sorted chunks", {"length_chunks": 2}, {}),
    "chunks4": ("rows as 4 length-sorted chunks", {"length_chunks": 4}, {}),
    "chunks8": ("rows as 8 length-sorted chunks", {"length_chunks": 8}, {}),
    "packed64": ("sentences packed into rows of 64 positions", {"pack_width": 64}, {}),
    "packed128": ("sentences packed into rows of 128 positions", {"pack_width": 128}, {}),
    "adamw_foreach": ("AdamW foreach (grouped tensors)", {"adamw": "foreach"}, {}),
    "adamw_fused": ("AdamW fused (one kernel)", {"adamw": "fused"}, {}),
    "compiled": ("torch.compile of the backbone (dynamic=False; nearly every padded batch is 128 x 32)", {},
                 {"compile_backbone": True}),
    "autocast_no_cache": ("autocast without its weight-cast cache", {}, {"autocast_cache": False}),
    "threads1": ("1 intra-op thread instead of the process's", {}, {"threads": 1}),
    "dropout_off": ("dropout off: the cost of dropout's RNG (not a valid change)", {}, {"dropout": False}),
}




def speed_config(cfg: TrainConfig) -> dict:
    return {f.name: getattr(cfg, f.name) for f in fields(TrainConfig) if f.name in ("length_chunks", "pack_width", "adamw")}


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    ap.add_argument("--objective", choices=("unsup", "sup", "esimcse"), default="unsup")
    ap.add_argument("--data", default=None, help="default: wiki (nli for sup)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset (plain always runs)")
    ap.add_argument("--curve-steps", type=int, default=50, help="0: skip the loss-curve check")
    ap.add_argument("--curve-precisions", default="fp32,bf16", help="precisions of the loss-curve check")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent))
    return ap.parse_args()


def _rows(results: dict, defaults: TrainConfig, peak_bf16: float) -> dict:
    rows = {}
    for name, steps in results.items():
        what = VARIANTS[name][0] if name in VARIANTS else f"TrainConfig defaults together: {speed_config(defaults)}"
        rate = median(steps, "flops_real") / median(steps)
        rows[name] = {"what": what, "median_seconds": median(steps), "speedup_vs_plain": paired_ratio(results["plain"], steps),
                      "median_forward": median(steps, "forward"), "median_backward": median(steps, "backward"),
                      "median_optimizer": median(steps, "optimizer"), "median_cpu_seconds": median(steps, "cpu_seconds"),
                      "tflops_real": rate / 1e12, "share_of_bf16_peak_real": rate / 1e12 / peak_bf16,
                      "padded_flops_per_step": median(steps, "flops_padded"), "real_flops_per_step": median(steps, "flops_real"),
                      "seconds_all": [s["seconds"] for s in steps]}
    return rows


def _loss_curves(args, base: dict, defaults: TrainConfig) -> list:
    """The same weights and batches, dropout off, for each precision: the optimised step must compute the same
    function as the plain one."""
    curves = []
    for precision in (args.curve_precisions.split(",") if args.curve_steps else []):
        still = {"plain": StepRunner(TrainConfig(**base, **PLAIN, precision=precision), dropout=False),
                 "optimised": StepRunner(TrainConfig(**base, precision=precision), dropout=False)}
        losses = {name: [] for name in still}
        for _ in range(args.curve_steps):
            for name, runner in still.items():
                losses[name].append(runner.run()["loss"])
        diffs = [abs(a - b) for a, b in zip(losses["plain"], losses["optimised"])]
        curves.append({"steps": args.curve_steps, "dropout": "off", "precision": still["plain"].precision,
                       "optimised": speed_config(defaults), "max_abs_loss_diff": max(diffs),
                       "max_rel_loss_diff": max(d / abs(a) for d, a in zip(diffs, losses["plain"])),
                       "losses": losses})
    return curves


def main() -> int:
    args = _parse()
    command = command_line("eval/bench_step_changes.py", sys.argv[1:])
    args.data = args.data or ("nli" if args.objective == "sup" else "wiki")
    base = dict(objective=args.objective, model=args.model, data=args.data, batch_size=args.batch_size, max_seq_len=32,
                lr=3e-5, eval_steps=0, test_tasks="none", progress=False, seed=42)
    start_machine = machine()
    peaks = {"before": measure_peaks(4096, 384, 1536, seconds=0.5)}
    names = ["plain"] + [n for n in args.variants.split(",") if n in VARIANTS and n != "plain"]
    runners = {n: StepRunner(TrainConfig(**base, **{**PLAIN, **VARIANTS[n][1]}), **VARIANTS[n][2]) for n in names}
    defaults = TrainConfig(**base)
    runners["defaults"] = StepRunner(defaults)  # every change kept in TrainConfig's defaults, together
    t0 = time.perf_counter()
    results = interleaved(runners, args.rounds, log=lambda line: print(line, flush=True))
    timed_seconds = time.perf_counter() - t0
    peaks["after"] = measure_peaks(4096, 384, 1536, seconds=0.5)
    rows = _rows(results, defaults, min(p["bf16"]["peak_tflops"] for p in peaks.values()))
    curves = _loss_curves(args, base, defaults)
    report = {"command": command, "machine_start": start_machine, "machine_end": machine(),
              "model": args.model, "objective": args.objective, "data": args.data, "batch_size": args.batch_size, "rounds": args.rounds,
              "precision": runners["plain"].precision, "timed_seconds": timed_seconds, "peaks": peaks,
              "variants": rows, "loss_curves": curves}
    stem = "step_changes" if args.objective == "unsup" else f"step_changes_{args.objective}"
    print(write_report(args.out, stem, report, render))
    return 0


def render(r: dict) -> str:
    peak = r["peaks"]
    lines = [f"# Training-step changes, each measured alone ({r['model']}, {r.get('objective', 'unsup')}, batch {r['batch_size']}, {r['precision']})",
             "", f"Command: `{r['command']}`", "",
             f"Machine: {r['machine_start']['cores']} cores ({r['machine_start']['cpu']}, AMX: {r['machine_start']['amx']}), "
             f"torch {r['machine_start']['torch']}, {r['machine_start']['torch_threads']} threads; {load_note(r['machine_start'], r['machine_end'])}; the runners step in turn, one step "
             f"each per round, {r['rounds']} rounds, and a speed-up is the median over rounds of plain / variant in "
             f"the same round.", "",
             f"Matmul peak of the model's shapes, same run: bf16 {peak['before']['bf16']['peak_tflops']:.3f} → "
             f"{peak['after']['bf16']['peak_tflops']:.3f} TFLOP/s, fp32 {peak['before']['fp32']['peak_tflops']:.3f} → "
             f"{peak['after']['fp32']['peak_tflops']:.3f} TFLOP/s (start → end of the run); shares below use the lower "
             f"bf16 value.", "",
             "| variant | what changes | median s/step | speed-up vs plain | forward | backward | optimizer | "
             "TFLOP/s (real tokens) | share of bf16 peak | helps |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, v in r["variants"].items():
        lines.append(f"| {name} | {v['what']} | {v['median_seconds']:.2f} | {v['speedup_vs_plain']:.2f}× | "
                     f"{v['median_forward']:.2f} | {v['median_backward']:.2f} | {v['median_optimizer']:.2f} | "
                     f"{v['tflops_real']:.3f} | {100 * v['share_of_bf16_peak_real']:.1f}% | "
                     f"{'yes' if v['speedup_vs_plain'] > 1 else 'no'} |")
    for c in r.get("loss_curves", []):
        lines += ["", f"Loss curve, {c['steps']} steps, dropout off, {c['precision']}: plain vs optimised "
                  f"({c['optimised']}) from the same weights and batches: max abs loss diff {c['max_abs_loss_diff']:.2e} "
                  f"(max relative {c['max_rel_loss_diff']:.2e}); first losses {c['losses']['plain'][0]:.5f} / "
                  f"{c['losses']['optimised'][0]:.5f}, last {c['losses']['plain'][-1]:.5f} / {c['losses']['optimised'][-1]:.5f}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
