"""Benchmark: our unsupervised SimCSE loop vs sentence-transformers' trainer with
MultipleNegativesRankingLoss (scale 20 = τ 0.05, CLS pooling) on the same data, batch, lr and steps.

Records, for each, the 7-task STS test average (cls_before_pooler / CLS pooling) and seconds per
training step, next to the untrained model. Writes eval/train_bench.json and eval/train_bench.md.

    python eval/bench_train.py [--steps 186] [--st-precision bf16|fp32]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_ours(args, out: Path) -> dict:
    from simcse_lab.training.config import TrainConfig
    from simcse_lab.training.loop import train

    cfg = TrainConfig(objective="unsup", model=args.model, data="wiki", output_dir=str(out), pooler="cls",
                      mlp_only_train=True, temperature=0.05, max_seq_len=32, batch_size=args.batch_size, lr=3e-5,
                      max_steps=args.steps, seed=args.seed, precision=args.precision, eval_steps=args.eval_steps,
                      save_steps=args.steps, test_tasks="none", progress=False)
    start = time.perf_counter()
    summary = train(cfg)
    # final (not best) for the comparison: the same number of steps as the sentence-transformers run
    return {"model_dir": str(out / "final"), "best_dir": str(out / "best"), "best_step": summary["best_step"],
            "best_dev_spearman": summary["best_dev_spearman"], "seconds_per_step": summary["seconds_per_step"],
            "wall_seconds": time.perf_counter() - start, "precision": summary["precision"]}


def run_st(args, out: Path) -> dict:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    from simcse_lab.data import registry
    from simcse_lab.modeling.resolve import resolve_model

    transformer = Transformer(resolve_model(args.model), max_seq_length=32)
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "cls")],
                                device="cpu")
    sentences = registry.load_split("wiki", "train")
    data = Dataset.from_dict({"anchor": sentences, "positive": sentences})
    training_args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "trainer"), per_device_train_batch_size=args.batch_size, learning_rate=3e-5,
        max_steps=args.steps, lr_scheduler_type="linear", warmup_steps=0, bf16=args.st_precision == "bf16",
        use_cpu=True, seed=args.seed, save_strategy="no", eval_strategy="no", logging_steps=10,
        dataloader_drop_last=True, report_to="none", disable_tqdm=True)
    trainer = SentenceTransformerTrainer(model=model, args=training_args, train_dataset=data,
                                         loss=MultipleNegativesRankingLoss(model, scale=20.0))
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    model.save(str(out / "st-final"))
    return {"model_dir": str(out / "st-final"), "seconds_per_step": seconds / args.steps, "wall_seconds": seconds,
            "precision": args.st_precision}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="all-MiniLM-L6-v2")
    p.add_argument("--steps", type=int, default=186, help="186 = one epoch of the 11,914 wiki sentences at batch 64")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--precision", default="auto", help="ours: auto = bf16 autocast where the CPU has it")
    p.add_argument("--st-precision", choices=("bf16", "fp32"), default="bf16")
    p.add_argument("--eval-steps", type=int, default=125,
                   help="ours: STS-B dev every N steps, keeping RUN/best (excluded from its seconds per step)")
    p.add_argument("--ours-dir", default=str(ROOT / "runs" / "unsup-wiki"), help="our run directory (kept)")
    p.add_argument("--out", default=str(ROOT / "eval"))
    args = p.parse_args()

    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.io import write_json, write_text
    from simcse_lab.evaluation.sts import TASKS, evaluate, format_table

    command = "python eval/bench_train.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    work = Path(tempfile.mkdtemp(prefix="bench-train-", dir=ROOT / "runs" if (ROOT / "runs").is_dir() else None))
    results = {"command": command, "steps": args.steps, "batch_size": args.batch_size, "lr": 3e-5,
               "data": "wiki train (11,914 sentences)", "work_dir": str(work)}
    results["ours"] = run_ours(args, Path(args.ours_dir))
    results["sentence_transformers"] = run_st(args, work)
    evals = {"untrained": evaluate(Encoder(args.model, pooler="cls_before_pooler"), TASKS, "test"),
             "ours": evaluate(Encoder(results["ours"]["model_dir"]), TASKS, "test"),
             "sentence_transformers": evaluate(Encoder(results["sentence_transformers"]["model_dir"]), TASKS, "test")}
    for name, r in evals.items():
        results.setdefault(name, {})["sts"] = r
        results[name]["sts_avg"] = r["avg"]
    results["speedup"] = results["sentence_transformers"]["seconds_per_step"] / results["ours"]["seconds_per_step"]
    table = format_table(list(evals.values()), [
        "untrained (cls_before_pooler)",
        f"ours unsup ({results['ours']['precision']}, {results['ours']['seconds_per_step']:.2f} s/step)",
        f"ST MNRL ({args.st_precision}, {results['sentence_transformers']['seconds_per_step']:.2f} s/step)"])
    results["table"] = table
    write_json(Path(args.out) / "train_bench.json", results)
    write_text(Path(args.out) / "train_bench.md",
               f"# Unsup SimCSE vs sentence-transformers MNRL ({args.steps} steps, batch {args.batch_size}, lr 3e-5)\n\n"
               f"Command: `{command}`\n\n```\n{table}\n```\n\nSpeed-up (ST s/step / ours s/step): "
               f"{results['speedup']:.2f}x. Ours: seconds per optimizer step inside the loop (dev evaluations excluded); "
               f"ST: trainer.train() wall time / steps (it evaluates nothing). Both on this shared 2-core CPU, "
               f"one after the other; other users' load is not controlled.\n")
    print(table)
    print(f"speed-up {results['speedup']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
