"""Benchmark: how close the STS encode and the training steps come to the machine's own matmul limit.

In one run: the peak matmul rate (fp32 and bf16) of the model's shapes (simcse_lab/runtime/benchmark.py), measured
again in every round; the STS suite encode (every distinct sentence of the 7 test tasks, ``--precision
auto``) with its scores; one training step each of unsup, sup and ESimCSE, before (the plain step: one
padded batch, for-loop AdamW) and after (TrainConfig's defaults: length-sorted chunks, fused AdamW), all
stepping in turn. Each rate is matmul FLOPs (simcse_lab/runtime/flops.py) per second, counted over the
real tokens and over the padded positions the kernels run, and given as a share of the bf16 peak of the
same round. Then a profile (torch.profiler, a few steps of each) says where the rest of the time goes:
matmul, attention, dropout RNG, LayerNorm/GELU, dtype casts, the dense word-embedding gradient, the
optimizer, other ops, and Python/framework time (step wall time minus every op's own time).

    python eval/bench_roofline.py --rounds 4          # writes eval/roofline.json and eval/roofline.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


from step_timing import StepRunner  # eval/step_timing.py, beside this script

from simcse_lab.evaluation.sts import TASKS, evaluate, load_task
from simcse_lab.modeling.encoder import Encoder
from simcse_lab.modeling.families import family_of
from simcse_lab.runtime.benchmark import (command_line, load_note, machine, measure_peaks, median, paired_ratio,
                                          write_report)
from simcse_lab.runtime.flops import forward_flops
from simcse_lab.training.config import TrainConfig

PLAIN = {"length_chunks": 1, "pack_width": 0, "adamw": "for-loop"}
STEPS = {"unsup": {"objective": "unsup", "data": "wiki", "pooler": "cls", "mlp_only_train": True},
         "sup": {"objective": "sup", "data": "nli", "pooler": "cls", "mlp_only_train": False},
         "esimcse": {"objective": "esimcse", "data": "wiki", "pooler": "cls", "mlp_only_train": True}}

# profile groups: (group, op names); an op under the "optimizer" range is optimizer time whatever its name,
# and every op under embedding_dense_backward is the dense gradient of the word-embedding matrix
GROUPS = (
    ("matmul", {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm", "aten::matmul"}),
    ("attention (softmax, masks, fused SDPA)", {"aten::_softmax", "aten::_softmax_backward_data", "aten::softmax",
                                                "aten::_scaled_dot_product_flash_attention_for_cpu",
                                                "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
                                                "aten::masked_fill", "aten::masked_fill_", "aten::isneginf",
                                                "aten::where", "aten::all", "aten::logical_not"}),
    ("dropout RNG", {"aten::bernoulli_", "aten::bernoulli", "aten::native_dropout", "aten::native_dropout_backward",
                     "aten::uniform_", "aten::rand", "aten::empty_like"}),
    ("LayerNorm/GELU", {"aten::native_layer_norm", "aten::native_layer_norm_backward", "aten::gelu",
                        "aten::gelu_backward"}),
    ("dtype casts (autocast)", {"aten::copy_", "aten::_to_copy", "aten::to"}),
)
ORDER = ["matmul", "attention (softmax, masks, fused SDPA)", "dropout RNG", "LayerNorm/GELU", "dtype casts (autocast)",
         "word-embedding gradient (dense)", "optimizer (clip, AdamW, zero_grad)", "other ops", "Python/framework"]



# -- the STS encode ---------------------------------------------------------------------------------------
def sts_sentences() -> list[str]:
    pairsets = [ps for task in TASKS for ps in load_task(task, "test").values()]
    return sorted({s for ps in pairsets for s in ps.sent1 + ps.sent2})


def encode_flops(encoder: Encoder, sentences: list[str]) -> tuple[int, float, float]:
    """(real tokens, real FLOPs, padded FLOPs) of encoding ``sentences`` as encode_texts batches them."""
    ids = encoder.tokenizer(sentences, truncation=True, max_length=encoder.max_length)["input_ids"]
    lengths = sorted((len(i) for i in ids), reverse=True)
    model = encoder.st_model[0].auto_model if encoder.backend == "sentence-transformers" else encoder.hf_model
    config = model.config
    shape = family_of(config).flop_shape(config)
    padded = []
    for start in range(0, len(lengths), encoder.batch_size):
        batch = lengths[start: start + encoder.batch_size]
        padded += [batch[0]] * len(batch)
    return sum(lengths), forward_flops(lengths, *shape, padded=False), forward_flops(padded, *shape, padded=False)


# -- the profile ----------------------------------------------------------------------------------------
def group_of(event) -> str:
    names = set()
    parent = event.cpu_parent
    while parent is not None:
        names.add(parent.name)
        parent = parent.cpu_parent
    if "optimizer" in names:
        return "optimizer (clip, AdamW, zero_grad)"
    if "aten::embedding_dense_backward" in names or event.name == "aten::embedding_dense_backward":
        return "word-embedding gradient (dense)"
    for group, ops in GROUPS:
        if event.name in ops:
            return group
    return "other ops"


def profile_steps(runner: StepRunner, steps: int) -> dict:
    """Seconds per step by group (see GROUPS), from torch.profiler over ``steps`` steps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            runner.run()
        wall = time.perf_counter() - t0
    groups = dict.fromkeys(ORDER, 0.0)
    op_total = 0.0
    for event in prof.events():
        if event.name.startswith("aten::"):  # self time: nested ops are not counted twice
            seconds = event.self_cpu_time_total / 1e6
            groups[group_of(event)] += seconds
            op_total += seconds
    groups["Python/framework"] = max(wall - op_total, 0.0)
    return {"wall_seconds_per_step": wall / steps, "seconds_per_step": {g: v / steps for g, v in groups.items()},
            "share": {g: v / wall for g, v in groups.items()}}


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=4, help="rounds of: peak, steps (one each, in turn)")
    ap.add_argument("--encode-rounds", type=int, default=2, help="rounds that also time the STS encode")
    ap.add_argument("--profile-steps", type=int, default=2)
    ap.add_argument("--objectives", default="unsup,sup,esimcse")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent))
    return ap.parse_args()


def _timed_rounds(args, runners: dict, encoder: Encoder) -> tuple[list, list, dict]:
    """Each round: the matmul peak, then (the first ``--encode-rounds``) the STS encode, then one step of each
    runner in turn; (peaks, encodes, {runner: steps})."""
    for runner in runners.values():  # warm-up
        runner.run()
    peaks, encodes, steps = [], [], {name: [] for name in runners}
    for r in range(args.rounds):
        peaks.append(measure_peaks(4096, 384, 1536, seconds=0.5))
        if r < args.encode_rounds:
            result = evaluate(encoder, TASKS, "test")
            encodes.append({"seconds": result["seconds"], "avg": result["avg"], "peak": peaks[-1]})
        for name, runner in runners.items():
            out = runner.run(phases=True)
            out["peak_bf16"] = peaks[-1]["bf16"]["peak_tflops"]
            steps[name].append(out)
        print(f"round {r + 1}/{args.rounds}: bf16 peak {peaks[-1]['bf16']['peak_tflops']:.3f} TFLOP/s; "
              + ", ".join(f"{n} {v[-1]['seconds']:.2f}s" for n, v in steps.items()), flush=True)
    return peaks, encodes, steps


def _step_rows(steps: dict) -> dict:
    rows = {}
    for name, results in steps.items():
        seconds = median(results)
        shares = [s["flops_real"] / s["seconds"] / 1e12 / s["peak_bf16"] for s in results]
        padded_shares = [s["flops_padded"] / s["seconds"] / 1e12 / s["peak_bf16"] for s in results]
        rows[name] = {"median_seconds": seconds, "tokens": results[0]["tokens"],
                      "tflop_real": median(results, "flops_real") / 1e12,
                      "tflop_padded": median(results, "flops_padded") / 1e12,
                      "tflops_real": median(results, "flops_real") / seconds / 1e12,
                      "tflops_padded": median(results, "flops_padded") / seconds / 1e12,
                      "share_of_peak_real": statistics.median(shares),
                      "share_of_peak_padded": statistics.median(padded_shares),
                      "tokens_per_s": results[0]["tokens"] / seconds,
                      "seconds_all": [s["seconds"] for s in results]}
        objective, when = name.split()
        if when == "after":
            rows[name]["speedup_vs_before"] = paired_ratio(steps[f"{objective} before"], results)
    return rows


def _encode_row(encoder: Encoder, sentences: list[str], encodes: list) -> dict:
    enc_tokens, enc_real, enc_padded = encode_flops(encoder, sentences)
    encode_seconds = statistics.median(e["seconds"] for e in encodes)

    def share(flop: float) -> float:
        return statistics.median(flop / e["seconds"] / 1e12 / e["peak"]["bf16"]["peak_tflops"] for e in encodes)

    return {"precision": encoder.precision, "sentences": len(sentences), "tokens": enc_tokens,
            "tflop_real": enc_real / 1e12, "tflop_padded": enc_padded / 1e12, "median_seconds": encode_seconds,
            "tflops_real": enc_real / encode_seconds / 1e12, "tflops_padded": enc_padded / encode_seconds / 1e12,
            "share_of_peak_real": share(enc_real), "share_of_peak_padded": share(enc_padded),
            "bf16_peak_tflops": statistics.median(e["peak"]["bf16"]["peak_tflops"] for e in encodes),
            "sts_avg": [e["avg"] for e in encodes], "seconds_all": [e["seconds"] for e in encodes]}


def main() -> int:
    args = _parse()
    command = command_line("eval/bench_roofline.py", sys.argv[1:])
    start_machine = machine()
    runners = {}
    for objective in args.objectives.split(","):
        common = dict(model=args.model, batch_size=args.batch_size, max_seq_len=32, lr=3e-5, eval_steps=0,
                      test_tasks="none", progress=False, seed=42, **STEPS[objective])
        runners[f"{objective} before"] = StepRunner(TrainConfig(**common, **PLAIN))
        runners[f"{objective} after"] = StepRunner(TrainConfig(**common))
    encoder = Encoder(args.model, precision="auto")
    sentences = sts_sentences()
    peaks, encodes, steps = _timed_rounds(args, runners, encoder)
    rows, encode = _step_rows(steps), _encode_row(encoder, sentences, encodes)
    profiles = {}
    for name in runners:
        profiles[name] = profile_steps(runners[name], args.profile_steps)
        print(f"profiled {name}", flush=True)
    report = {"command": command, "machine_start": start_machine, "machine_end": machine(),
              "model": args.model, "batch_size": args.batch_size, "rounds": args.rounds,
              "peaks": {"fp32": [p["fp32"]["peak_tflops"] for p in peaks], "bf16": [p["bf16"]["peak_tflops"] for p in peaks],
                        "shapes_last_round": peaks[-1]},
              "encode": encode, "steps": rows, "profiles": profiles}
    print(write_report(args.out, "roofline", report, render))
    return 0


def render(r: dict) -> str:
    m0, m1 = r["machine_start"], r["machine_end"]
    peaks = r["peaks"]
    e = r["encode"]
    lines = [f"# Roofline: achieved matmul rate vs the machine's peak ({r['model']})", "",
             f"Command: `{r['command']}`", "",
             f"Machine: {m0['cores']} cores ({m0['cpu']}, AMX: {m0['amx']}, native bf16: {m0['native_bf16']}), torch "
             f"{m0['torch']}, {m0['torch_threads']} threads; {load_note(m0, m1)}. Everything below "
             f"was measured in turn within each of {r['rounds']} rounds (peak, encode, one step of each), medians; "
             f"each share divides a round's rate by the same round's peak.", "",
             f"Peak matmul, model shapes (4096×384·384×1536 and its backward layouts, 4096×384·384×384): "
             f"bf16 median {statistics.median(peaks['bf16']):.3f} TFLOP/s (rounds: "
             f"{', '.join(f'{p:.3f}' for p in peaks['bf16'])}), fp32 median {statistics.median(peaks['fp32']):.3f} "
             f"(bf16 / fp32 = {statistics.median(peaks['bf16']) / statistics.median(peaks['fp32']):.1f}×).", "",
             "| work | s | TFLOP (real / padded) | TFLOP/s real | share of bf16 peak, real | share, padded | tokens/s | "
             "speed-up |",
             "|---|---|---|---|---|---|---|---|",
             f"| STS suite encode ({e['sentences']} sentences, {e['precision']}) | {e['median_seconds']:.1f} | "
             f"{e['tflop_real']:.2f} / {e['tflop_padded']:.2f} | {e['tflops_real']:.3f} | "
             f"{100 * e['share_of_peak_real']:.0f}% | {100 * e['share_of_peak_padded']:.0f}% | "
             f"{e['tokens'] / e['median_seconds']:.0f} | |"]
    for name, s in r["steps"].items():
        speedup = f"{s['speedup_vs_before']:.2f}×" if "speedup_vs_before" in s else ""
        lines.append(f"| {name} (batch {r['batch_size']}) | {s['median_seconds']:.2f} | {s['tflop_real']:.3f} / "
                     f"{s['tflop_padded']:.3f} | {s['tflops_real']:.3f} | {100 * s['share_of_peak_real']:.0f}% | "
                     f"{100 * s['share_of_peak_padded']:.0f}% | {s['tokens_per_s']:.0f} | {speedup} |")
    lines += ["", f"STS average of the encode (auto = {e['precision']}): {', '.join(f'{a:.4f}' for a in e['sts_avg'])}.",
              "", "Where a step's time goes (torch.profiler, share of step wall time; profiling slows ops a little):", "",
              "| step | s/step (profiled) | " + " | ".join(ORDER) + " |",
              "|---|---|" + "---|" * len(ORDER)]
    for name, p in r["profiles"].items():
        lines.append(f"| {name} | {p['wall_seconds_per_step']:.2f} | "
                     + " | ".join(f"{100 * p['share'][g]:.0f}%" for g in ORDER) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
