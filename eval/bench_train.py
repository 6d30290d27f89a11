"""Benchmark: our unsupervised SimCSE loop vs sentence-transformers' trainer with
MultipleNegativesRankingLoss (scale 20 = τ 0.05, CLS pooling) on the same data, batch, lr and steps.

Speed (the acceptance number): in one process, ``--rounds`` rounds of a block of ``--block-steps`` steps
of sentence-transformers' trainer, then a block of our loop (``simcse_lab.training.loop.train``, the
product path with its defaults), each from the same pretrained weights on the same wiki batches size, both
at their best precision (bf16 autocast where the CPU has it); the matmul peak is measured in every round.
Seconds per step are taken inside each loop (ours: the loop's own per-step timer, ``log_steps`` 1; theirs:
the time between consecutive ``on_step_end`` callbacks, so their data loading counts as ours does); the
first ``--warmup-steps`` of every block are dropped. The speed-up is the median over rounds of
(their median step / our median step) of the same round.

Quality: one full run of each (``--steps``, 186 = one epoch), then the 7-task STS test average of each
(cls_before_pooler / CLS pooling) next to the untrained model. Writes eval/train_bench.json and .md.

    python eval/bench_train.py [--steps 186] [--rounds 3] [--block-steps 12] [--st-precision bf16|fp32]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from simcse_lab.runtime.benchmark import command_line, load_note, machine, measure_peaks, write_report

ROOT = Path(__file__).resolve().parents[1]


def ours_config(args, out: Path, steps: int, quality: bool):
    from simcse_lab.training.config import TrainConfig

    # configs/unsup.yaml's settings (all-MiniLM-L6-v2, wiki, cls + MLP only in training, τ 0.05, 32 tokens)
    return TrainConfig(objective="unsup", model=args.model, data="wiki", output_dir=str(out), pooler="cls",
                       mlp_only_train=True, temperature=0.05, max_seq_len=32, batch_size=args.batch_size, lr=3e-5,
                       max_steps=steps, seed=args.seed, precision=args.precision,
                       eval_steps=args.eval_steps if quality else 0, save_steps=steps, test_tasks="none",
                       log_steps=10 if quality else 1, progress=False)


def run_ours(args, out: Path) -> dict:
    from simcse_lab.training.loop import train

    cfg = ours_config(args, out, args.steps, quality=True)
    start = time.perf_counter()
    summary = train(cfg)
    # final (not best) for the comparison: the same number of steps as the sentence-transformers run
    return {"model_dir": str(out / "final"), "best_dir": str(out / "best"), "best_step": summary["best_step"],
            "best_dev_spearman": summary["best_dev_spearman"], "seconds_per_step": summary["seconds_per_step"],
            "tokens_per_s": summary["tokens_per_s"], "achieved_tflops": summary["achieved_tflops"],
            "wall_seconds": time.perf_counter() - start, "precision": summary["precision"],
            "speed_settings": {"length_chunks": cfg.length_chunks, "pack_width": cfg.pack_width, "adamw": cfg.adamw}}


def ours_block(args, out: Path, steps: int) -> list[float]:
    """Seconds of each step of a fresh ``steps``-step run of our loop (its own per-step timer)."""
    from simcse_lab.training.loop import train

    train(ours_config(args, out, steps, quality=False))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [1.0 / r["steps_per_s"] for r in records if "steps_per_s" in r]


def st_trainer(args, out: Path, steps: int, callbacks=()):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    try:
        from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
        from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    except ImportError:  # sentence-transformers' layout before the sentence_transformer subpackage (a GPU image's)
        from sentence_transformers.losses import MultipleNegativesRankingLoss
        from sentence_transformers.models import Pooling, Transformer

    from simcse_lab.data import registry
    from simcse_lab.modeling.resolve import resolve_model

    device = getattr(args, "device", "cpu")  # eval/gpu_check.py runs it on a GPU
    transformer = Transformer(resolve_model(args.model), max_seq_length=32)
    dim = (getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension)()
    model = SentenceTransformer(modules=[transformer, Pooling(dim, "cls")],
                                device=device)
    sentences = registry.load_split("wiki", "train")
    data = Dataset.from_dict({"anchor": sentences, "positive": sentences})
    training_args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "trainer"), per_device_train_batch_size=args.batch_size, learning_rate=3e-5,
        max_steps=steps, lr_scheduler_type="linear", warmup_steps=0, bf16=args.st_precision == "bf16",
        use_cpu=device == "cpu", seed=args.seed, save_strategy="no", eval_strategy="no", logging_steps=10,
        dataloader_drop_last=True, report_to="none", disable_tqdm=True)
    trainer = SentenceTransformerTrainer(model=model, args=training_args, train_dataset=data,
                                         loss=MultipleNegativesRankingLoss(model, scale=20.0), callbacks=list(callbacks))
    return model, trainer


def run_st(args, out: Path) -> dict:
    model, trainer = st_trainer(args, out, args.steps)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    model.save(str(out / "st-final"))
    return {"model_dir": str(out / "st-final"), "seconds_per_step": seconds / args.steps, "wall_seconds": seconds,
            "precision": args.st_precision, "optimizer": trainer.args.optim}


def st_block(args, out: Path, steps: int) -> tuple[list[float], str]:
    """Seconds of each step of a fresh ``steps``-step trainer run: the time between consecutive on_step_end
    callbacks (the first from on_train_begin), so data loading is inside a step as it is in ours."""
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self):
            self.marks = []

        def on_train_begin(self, *a, **k):
            self.marks.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            self.marks.append(time.perf_counter())

    clock = StepClock()
    _, trainer = st_trainer(args, out, steps, callbacks=[clock])
    trainer.train()
    return [b - a for a, b in zip(clock.marks, clock.marks[1:])], str(trainer.args.optim)


def speed(args, work: Path) -> dict:
    import torch

    per_round = []
    for r in range(args.rounds):
        peak = measure_peaks(4096, 384, 1536, seconds=0.5)
        theirs, optim = st_block(args, work / f"st-speed-{r}", args.block_steps + args.warmup_steps)
        ours = ours_block(args, work / f"ours-speed-{r}", args.block_steps + args.warmup_steps)
        theirs, ours = theirs[args.warmup_steps:], ours[args.warmup_steps:]
        per_round.append({"peak_bf16_tflops": peak["bf16"]["peak_tflops"], "peak_fp32_tflops": peak["fp32"]["peak_tflops"],
                          "st_seconds": theirs, "ours_seconds": ours, "st_median": statistics.median(theirs),
                          "ours_median": statistics.median(ours),
                          "speedup": statistics.median(theirs) / statistics.median(ours), "st_optimizer": optim,
                          "load_average_1min": os.getloadavg()[0]})
        print(f"speed round {r + 1}/{args.rounds}: ST {per_round[-1]['st_median']:.3f} s/step, ours "
              f"{per_round[-1]['ours_median']:.3f} s/step, {per_round[-1]['speedup']:.2f}x; bf16 peak "
              f"{peak['bf16']['peak_tflops']:.3f} TFLOP/s", flush=True)
    return {"rounds": per_round, "speedup": statistics.median(p["speedup"] for p in per_round),
            "st_seconds_per_step": statistics.median(p["st_median"] for p in per_round),
            "ours_seconds_per_step": statistics.median(p["ours_median"] for p in per_round),
            "peak_bf16_tflops": statistics.median(p["peak_bf16_tflops"] for p in per_round),
            "peak_fp32_tflops": statistics.median(p["peak_fp32_tflops"] for p in per_round),
            "block_steps": args.block_steps, "warmup_steps": args.warmup_steps, "torch_threads": torch.get_num_threads()}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="all-MiniLM-L6-v2")
    p.add_argument("--steps", type=int, default=186, help="186 = one epoch of the 11,914 wiki sentences at batch 64")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--precision", default="auto", help="ours: auto = bf16 autocast where the CPU has it")
    p.add_argument("--st-precision", choices=("bf16", "fp32"), default="bf16")
    p.add_argument("--eval-steps", type=int, default=125,
                   help="ours: STS-B dev every N steps, keeping RUN/best (excluded from its seconds per step)")
    p.add_argument("--rounds", type=int, default=3, help="speed: rounds of one ST block and one block of ours")
    p.add_argument("--block-steps", type=int, default=12, help="speed: timed steps per block")
    p.add_argument("--warmup-steps", type=int, default=2, help="speed: untimed first steps of every block")
    p.add_argument("--skip-quality", action="store_true", help="speed only: no full runs, no STS")
    p.add_argument("--ours-dir", default=str(ROOT / "runs" / "unsup-wiki"), help="our run directory (kept)")
    p.add_argument("--out", default=str(ROOT / "eval"))
    return p


def quality(args, work: Path, results: dict) -> str:
    """One full run of each, then the STS test of each beside the untrained model; the table (also in
    ``results``)."""
    from simcse_lab.evaluation.sts import TASKS, evaluate, format_table
    from simcse_lab.modeling.encoder import Encoder

    results["ours"] = run_ours(args, Path(args.ours_dir))
    results["sentence_transformers"] = run_st(args, work)
    evals = {"untrained": evaluate(Encoder(args.model, pooler="cls_before_pooler"), TASKS, "test"),
             "ours": evaluate(Encoder(results["ours"]["model_dir"]), TASKS, "test"),
             "sentence_transformers": evaluate(Encoder(results["sentence_transformers"]["model_dir"]), TASKS, "test")}
    for name, r in evals.items():
        results.setdefault(name, {})["sts"] = r
        results[name]["sts_avg"] = r["avg"]
    results["table"] = format_table(list(evals.values()), [
        "untrained (cls_before_pooler)",
        f"ours unsup ({results['ours']['precision']}, {results['ours']['seconds_per_step']:.2f} s/step)",
        f"ST MNRL ({args.st_precision}, {results['sentence_transformers']['seconds_per_step']:.2f} s/step)"])
    return results["table"]


def main() -> int:
    args = parser().parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-train-", dir=ROOT / "runs" if (ROOT / "runs").is_dir() else None))
    results = {"command": command_line("eval/bench_train.py", sys.argv[1:]), "steps": args.steps,
               "batch_size": args.batch_size, "lr": 3e-5, "data": "wiki train (11,914 sentences)",
               "work_dir": str(work), "machine": machine()}
    results["speed"] = speed(args, work)
    if not args.skip_quality:
        quality(args, work, results)
    results["machine_end"] = machine()
    results["speedup"] = results["speed"]["speedup"]
    print(write_report(args.out, "train_bench", results, render))
    return 0


def _machines(r: dict) -> tuple[dict, dict]:
    """The machine at the start and at the end of the run (recorded before the harness: one dict with the load
    average at the start and at the end)."""
    m = r["machine"]
    if "machine_end" in r:
        return m, r["machine_end"]
    return tuple({"cores": m["cores"], "load_average_1min": m[f"load_average_1min_{when}"]} for when in ("start", "end"))


def render(r: dict) -> str:
    """The markdown of a report; the flags it names are those of its recorded command."""
    args = parser().parse_args(shlex.split(r["command"])[2:])
    s = r["speed"]
    start, end = _machines(r)
    rounds = "; ".join(f"{p['st_median']:.2f} / {p['ours_median']:.2f} s = {p['speedup']:.2f}× (bf16 peak "
                       f"{p['peak_bf16_tflops']:.3f})" for p in s["rounds"])
    lines = [f"# Unsup SimCSE vs sentence-transformers MNRL (batch {r['batch_size']}, lr 3e-5, wiki)", "",
             f"Command: `{r['command']}`", "",
             f"## Speed: **{s['speedup']:.2f}×** (ST s/step / ours s/step, median of {len(s['rounds'])} rounds)", "",
             f"Each round: {s['block_steps']} timed steps (after {s['warmup_steps']} untimed) of sentence-transformers' "
             f"trainer (MNRL, {args.st_precision}, its default optimizer {s['rounds'][0]['st_optimizer']}), then the same "
             f"of our loop (its defaults, {args.precision} precision), from the same pretrained weights; the matmul "
             f"peak measured in the round. ST {s['st_seconds_per_step']:.3f} s/step, ours {s['ours_seconds_per_step']:.3f} "
             f"s/step (medians); bf16 peak {s['peak_bf16_tflops']:.3f} TFLOP/s, fp32 {s['peak_fp32_tflops']:.3f}. "
             f"Per round (ST / ours): {rounds}.", "",
             f"Machine: {r['machine']['cores']} cores (AMX: {r['machine']['amx']}), {s['torch_threads']} torch threads; "
             f"{load_note(start, end)}; the two trainers alternate, so load drifts reach both."]
    if r.get("table"):
        o = r["ours"]
        lines += ["", f"## Quality: one run of {r['steps']} steps each", "", "```", r["table"], "```", "",
                  f"Ours: the product loop with {o['speed_settings']}; {o['tokens_per_s']:.0f} tokens/s, "
                  f"{o['achieved_tflops']:.3f} TFLOP/s over real tokens (its summary.json), dev evaluations excluded "
                  f"from its seconds per step. ST: trainer.train() wall time / steps. These two full runs ran one after "
                  f"the other, not interleaved: their s/step in the table are not the speed comparison above."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
