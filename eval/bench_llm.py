"""Benchmark: peak memory and seconds per step of a ~0.5B decoder trained with unsupervised SimCSE: full
fine-tuning, LoRA, LoRA with bf16 frozen weights, with gradient checkpointing and with ``--mini-batch-size``, and
the peer, sentence-transformers + peft with MultipleNegativesRankingLoss, on the same shapes and batch.

The model is a randomly initialised Qwen2 with Qwen2-0.5B's config shapes (hidden 896, 24 layers, feed-forward
4864, 14 heads, 2 key/value heads, vocabulary 151,936; nothing downloaded: the values of the weights do not
change speed or memory) and a word-level tokenizer trained on the sentences (its ids are a small part of the
vocabulary; the embedding table has the full 151,936 rows). Unsupervised SimCSE on the shared wiki sentences,
batch 32 (64 rows: each sentence twice), max length 64, fp32 compute (``--precision fp32``), mean pooling, LoRA
r 16 / alpha 32 / dropout 0.05 on q,k,v,o,gate,up,down_proj. Every configuration is its own fresh process;
its peak is the process's peak RSS (``ru_maxrss``) when its last training step is done (metrics.jsonl's
``peak_memory_mb``; the peer reports its own the same way), and the process's whole-life peak (export included)
beside it. Seconds per step: the median of the steps after the first (the first is a warm-up).

    python eval/bench_llm.py [--steps 3]

Writes eval/bench_llm.json and eval/bench_llm.md (``--stem``: other names), after each configuration, so a cut run
keeps what it has. ``--layers`` fewer than 24 and ``--only`` a subset are for a machine too slow or too small
for the whole: the report says which it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from simcse_lab.runtime.benchmark import (child_env, command_line, cpu_model, load_note, machine, measure_process,
                                          write_report)

ROOT = Path(__file__).resolve().parents[1]

QWEN2_05B = dict(hidden_size=896, num_hidden_layers=24, intermediate_size=4864, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, rope_theta=1000000.0,
                 tie_word_embeddings=True)
BATCH, SEQ, LR = 32, 64, 3e-5
LORA = dict(r=16, alpha=32, dropout=0.05)
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CORPUS = "wiki-fallback/wiki1m_for_simcse.first11914lines.txt"  # in the data mirror (SIMCSE_LAB_DATA)
LORA_FLAGS = ["--lora-r", str(LORA["r"]), "--lora-alpha", str(LORA["alpha"]), "--lora-dropout", str(LORA["dropout"])]
CONFIGS = {  # name: (description, extra simcse-lab flags)
    "full-fp32": ("full fine-tuning, fp32", []),
    "lora-fp32": ("LoRA, fp32 weights", LORA_FLAGS),
    "lora-bf16": ("LoRA, bf16 frozen weights", [*LORA_FLAGS, "--weights-dtype", "bf16"]),
    "lora-gc": ("LoRA + gradient checkpointing", [*LORA_FLAGS, "--gradient-checkpointing"]),
    "lora-mb8": ("LoRA + --mini-batch-size 8", [*LORA_FLAGS, "--mini-batch-size", "8"]),
    "lora-bf16-mb8": ("LoRA + bf16 weights + --mini-batch-size 8", [*LORA_FLAGS, "--weights-dtype", "bf16",
                                                                    "--mini-batch-size", "8"]),
}
PEER = "st-peft-fp32"


def corpus_path() -> Path:
    return Path(os.environ.get("SIMCSE_LAB_DATA", ROOT.parent / "shared" / "data")) / CORPUS


def prepare(model_dir: Path, layers: int) -> None:
    """The random Qwen2 (Qwen2-0.5B's shapes) and a word-level tokenizer of the corpus, saved to ``model_dir``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2Model

    core = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.train([str(corpus_path())], trainers.WordLevelTrainer(special_tokens=["[UNK]", "<|endoftext|>", "<pad>"]))
    core.post_processor = processors.TemplateProcessing(single="$A <|endoftext|>",
                                                        special_tokens=[("<|endoftext|>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", eos_token="<|endoftext|>",
                                        pad_token="<pad>")
    torch.manual_seed(0)  # saved in bf16, as Qwen2-0.5B is on the hub (fp32 runs load it as fp32)
    config = Qwen2Config(**{**QWEN2_05B, "num_hidden_layers": layers}, pad_token_id=2, eos_token_id=1, bos_token_id=1)
    Qwen2Model(config).to(torch.bfloat16).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)


def peer(model_dir: Path, steps: int, out: Path) -> None:
    """sentence-transformers + peft: Transformer -> mean Pooling, a LoRA adapter through ``add_adapter``,
    MultipleNegativesRankingLoss with each sentence as its own positive (unsupervised SimCSE's pairs), AdamW on
    the adapter; per step: seconds, real tokens, and the peak RSS after the last step."""
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    torch.manual_seed(42)
    transformer = Transformer(str(model_dir), max_seq_length=SEQ, model_kwargs={"dtype": torch.float32})
    # peft on the Transformer module's model (SentenceTransformer.add_adapter goes through transformers' peft
    # integration, which asks for a peft release newer than PyPI has)
    transformer.model = get_peft_model(transformer.model, LoraConfig(
        r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"], target_modules=TARGETS, bias="none"))
    model = SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension(), "mean")],
                                device="cpu")
    loss_fn = MultipleNegativesRankingLoss(model, scale=20.0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    sentences = corpus_path().read_text().splitlines()
    rng = np.random.default_rng(42)
    model.train()
    records = []
    for step in range(steps):
        batch = [sentences[i] for i in rng.choice(len(sentences), BATCH, replace=False)]
        t0 = time.perf_counter()
        features = model.tokenize(batch)
        loss = loss_fn([features, features], None)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        records.append({"step": step + 1, "seconds": time.perf_counter() - t0, "loss": loss.item(),
                        "tokens": 2 * int(features["attention_mask"].sum())})
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    out.write_text(json.dumps({"records": records, "trainable": trainable,
                               "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}) + "\n")


def run_ours(workdir: Path, model_dir: Path, name: str, steps: int, env: dict) -> dict:
    out = workdir / name
    cmd = [sys.executable, "-m", "simcse_lab", "train", "--objective", "unsup", "--model", str(model_dir),
           "--data", "wiki", "--pooler", "avg", "--batch-size", str(BATCH), "--max-seq-len", str(SEQ),
           "--lr", str(LR), "--max-steps", str(steps), "--log-steps", "1", "--eval-steps", "0",
           "--test-tasks", "none", "--precision", "fp32", "--no-progress", "--output-dir", str(out),
           *CONFIGS[name][1]]
    result = measure_process(cmd, env, (lambda: None, lambda: None), workdir / f"{name}.log", 3600, ROOT)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()] \
        if (out / "metrics.jsonl").is_file() else []
    seconds = [1 / r["steps_per_s"] for r in records[1:] if r.get("steps_per_s")]
    tokens = [r["tokens_per_s"] / r["steps_per_s"] for r in records if r.get("steps_per_s")]
    return {"name": name, "what": CONFIGS[name][0], "returncode": result["returncode"], "steps": len(records),
            "train_peak_gb": round(records[-1]["peak_memory_mb"] / 1024, 3) if records else None,
            "process_peak_gb": result["peak_rss_gb"], "seconds_per_step": _median(seconds),
            "step_seconds": [round(1 / r["steps_per_s"], 2) for r in records if r.get("steps_per_s")],
            "tokens_per_step": round(statistics.mean(tokens)) if tokens else None,
            "log_tail": result["log_tail"] if result["returncode"] else [], "command": shlex.join(cmd[1:])}


def run_peer(workdir: Path, model_dir: Path, steps: int, env: dict) -> dict:
    out = workdir / f"{PEER}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--peer", str(model_dir), "--steps", str(steps),
           "--peer-output", str(out)]
    result = measure_process(cmd, env, (lambda: None, lambda: None), workdir / f"{PEER}.log", 3600, ROOT)
    data = json.loads(out.read_text()) if out.is_file() else {"records": []}
    records = data["records"]
    return {"name": PEER, "what": "sentence-transformers + peft LoRA, MNRL, fp32", "returncode": result["returncode"],
            "steps": len(records), "train_peak_gb": round(data["peak_mb"] / 1024, 3) if records else None,
            "process_peak_gb": result["peak_rss_gb"], "seconds_per_step": _median([r["seconds"] for r in records[1:]]),
            "step_seconds": [round(r["seconds"], 2) for r in records],
            "tokens_per_step": round(statistics.mean(r["tokens"] for r in records)) if records else None,
            "log_tail": result["log_tail"] if result["returncode"] else [], "command": shlex.join(cmd[1:])}


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def render(report: dict) -> str:
    m, runs = report["machine"], report["runs"]
    lines = ["# A ~0.5B decoder with unsupervised SimCSE: memory and speed of full fine-tuning, LoRA and its savers", "",
             f"Random Qwen2 with Qwen2-0.5B's shapes ({report['model']['num_hidden_layers']} layers, "
             f"{report['parameters'] / 1e6:.0f}M parameters), unsupervised "
             f"SimCSE on the shared wiki sentences, batch {BATCH} ({2 * BATCH} rows), max length {SEQ}, fp32 compute, "
             f"mean pooling, LoRA r {LORA['r']} / alpha {LORA['alpha']} on {','.join(TARGETS)}. "
             f"{report['steps']} steps per configuration: the first is a warm-up, s/step is the median of the "
             f"other {report['steps'] - 1}. Each configuration is a fresh process; *training peak* is its peak RSS "
             "(ru_maxrss) after its last step, *process peak* its whole life's (the end-of-run export included: "
             "a merged copy for LoRA, the training-state checkpoint).", *_layers_note(report), "",
             "```bash", report["command"], "```", "",
             f"Machine: {report.get('cpu_model', m['cpu'])}, {m['cores']} cores, native bf16: {m['native_bf16']} (AMX: {m['amx']}), torch "
             f"{m['torch']}; {load_note(m, report.get('machine_end', m))}.", "",
             "| configuration | training peak (GB) | vs full | process peak (GB) | s/step | steps (s) | tokens/step | "
             "load (start, end) |", "|---|---|---|---|---|---|---|---|"]
    full = runs.get("full-fp32", {}).get("train_peak_gb")
    for run in runs.values():
        ratio = f"{run['train_peak_gb'] / full:.2f}×" if full and run["train_peak_gb"] else ""
        lines.append(f"| {run['what']} | {run['train_peak_gb']} | {ratio} | {run['process_peak_gb']} | "
                     f"{run['seconds_per_step']} | {', '.join(map(str, run['step_seconds']))} | "
                     f"{run['tokens_per_step']} | {', '.join(map(str, run.get('load_average_1min', []))) or 'not recorded'} |")
    lines += [""] + verdicts(runs) + [f"- {note}" for note in report.get("notes", [])]
    failed = [f"{r['name']} ({_why_unfinished(r, m)})" for r in runs.values()
              if r["returncode"] != 0 or r["steps"] != report["steps"]]
    if failed:
        lines += ["", f"Runs that did not finish: {'; '.join(failed)}."]
    return "\n".join(lines) + "\n"


def _why_unfinished(run: dict, machine: dict) -> str:
    """A run that stopped early: the signal that killed it and its peak against the machine's memory, else its
    log's last lines."""
    if run["returncode"] is not None and run["returncode"] < 0:
        return (f"killed by signal {-run['returncode']} after {run['steps']} step(s), at a process peak of "
                f"{run['process_peak_gb']} GB of the machine's {machine.get('memory_gb', '?')} GB")
    return " / ".join(run["log_tail"])


def _layers_note(report: dict) -> list[str]:
    layers = report["model"]["num_hidden_layers"]
    if layers == QWEN2_05B["num_hidden_layers"]:
        return []
    return ["", f"**{layers} of Qwen2-0.5B's {QWEN2_05B['num_hidden_layers']} layers** (every other shape as "
            "Qwen2-0.5B's, the 151,936 x 896 embedding table included): on this shared 2-core CPU one step of the "
            "24-layer model takes minutes, too long for every configuration. Fewer layers make the fixed part "
            "(the embedding table, the Python process) a larger share of every peak."]


def verdicts(runs: dict) -> list[str]:
    """The two goals, stated from the numbers: the memory saver under a third of full fine-tuning, our LoRA step
    against the peer's."""
    out = []
    full, saver = runs.get("full-fp32", {}), runs.get("lora-bf16-mb8", {})
    if full.get("train_peak_gb") and saver.get("train_peak_gb"):
        share = saver["train_peak_gb"] / full["train_peak_gb"]
        out.append(f"- LoRA + bf16 weights + mini-batches of 8: {share:.2f} of full fine-tuning's training peak "
                   f"({'under' if share < 1 / 3 else 'NOT under'} a third).")
    ours, peer_run = runs.get("lora-fp32", {}), runs.get(PEER, {})
    if ours.get("seconds_per_step") and peer_run.get("seconds_per_step"):
        ratio = ours["seconds_per_step"] / peer_run["seconds_per_step"]
        out.append(f"- Our LoRA fp32 step: {ours['seconds_per_step']} s against sentence-transformers + peft's "
                   f"{peer_run['seconds_per_step']} s ({ratio:.2f}×; tokens per step {ours['tokens_per_step']} vs "
                   f"{peer_run['tokens_per_step']}: the batches are drawn differently, so compare per token too).")
    return out


def write(report: dict, stem: str) -> None:
    write_report(ROOT / "eval", stem, report, render)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=3, help="steps per configuration, the first a warm-up (default 3)")
    p.add_argument("--only", default="", help="comma-separated configurations (default: all, then the peer)")
    p.add_argument("--workdir", type=Path, default=None, help="default: a temporary directory")
    p.add_argument("--stem", default="bench_llm", help="the outputs: eval/STEM.json and eval/STEM.md")
    p.add_argument("--render", action="store_true", help="only write eval/STEM.md again from eval/STEM.json")
    p.add_argument("--note", action="append", default=[], help="with --render: a line added to the report's notes")
    p.add_argument("--peer", type=Path, default=None, help=argparse.SUPPRESS)  # the peer's own process
    p.add_argument("--peer-output", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--prepare", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--layers", type=int, default=QWEN2_05B["num_hidden_layers"],
                   help="layers of the model (default 24, Qwen2-0.5B's; fewer only to try the script out)")
    args = p.parse_args()
    if args.prepare:
        return prepare(args.prepare, args.layers)
    if args.peer:
        return peer(args.peer, args.steps, args.peer_output)
    names = [n for n in args.only.split(",") if n] or [*CONFIGS, PEER]
    if args.render:  # the .md again from its .json (e.g. after a change of wording), on the machine it ran on
        report = json.loads((ROOT / "eval" / f"{args.stem}.json").read_text())
        report.setdefault("cpu_model", cpu_model())
        report["notes"] = report.get("notes", []) + args.note
        return write(report, args.stem)
    report = {"command": command_line("eval/bench_llm.py", sys.argv[1:]), "machine": machine(),
              "cpu_model": cpu_model(),
              "steps": args.steps, "model": {**QWEN2_05B, "num_hidden_layers": args.layers}, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        model_dir = workdir / "qwen2-0.5b-shapes"
        env = child_env({"SIMCSE_LAB_CACHE": str(workdir / "cache"), "OMP_NUM_THREADS": str(os.cpu_count())}, ROOT)
        if not (model_dir / "config.json").is_file():
            measure_process([sys.executable, str(Path(__file__).resolve()), "--prepare", str(model_dir), "--layers",
                             str(args.layers)], env, (lambda: None, lambda: None), workdir / "prepare.log", 1800, ROOT)
        report["parameters"] = _parameters(model_dir)
        for name in names:
            print(f"{name} ...", file=sys.stderr, flush=True)
            load = os.getloadavg()[0]
            run = run_peer(workdir, model_dir, args.steps, env) if name == PEER else \
                run_ours(workdir, model_dir, name, args.steps, env)
            run["load_average_1min"] = [round(load, 1), round(os.getloadavg()[0], 1)]  # at its start, at its end
            report["runs"][name] = run
            print(f"  {json.dumps({k: v for k, v in run.items() if k != 'command'})}", file=sys.stderr, flush=True)
            report["machine_end"] = machine()
            write(report, args.stem)
    print(render(report))


def _parameters(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for path in model_dir.glob("*.safetensors"):
        with safe_open(str(path), "pt") as f:
            total += sum(_numel(f.get_slice(k).get_shape()) for k in f.keys())
    return total


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


if __name__ == "__main__":
    main()
