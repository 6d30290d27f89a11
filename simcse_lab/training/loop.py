"""The training loop: one screen, nanoGPT style. The loop owns the Accelerator; nothing is patched.

Per step: take this process's slice of the global batch (pretokenised, dynamically padded), compute
the objective under bf16 autocast where the hardware has it (fp32 master weights), backpropagate,
clip, step optimizer and linear schedule. Every ``eval_steps``: STS-B dev Spearman (+ alignment and
uniformity), keep the best model as ``OUTPUT/best``; save the resumable training state atomically.
"""

from __future__ import annotations

import json
import math
import resource
import shlex
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from simcse_lab.training.config import TrainConfig
from simcse_lab.errors import UserError
from simcse_lab.io import write_json, write_text


# -- data ----------------------------------------------------------------------------------------
def load_examples(cfg: TrainConfig, tokenizer) -> list:
    """Pretokenised training examples (tokenisation stays off the hot path): token id lists for
    sentence data, (anchor, positive, negative) id triplets for ``sup``, (index, ids) for ``esimcse``."""
    from simcse_lab.data import readers
    from simcse_lab.data import registry

    if cfg.data in ("wiki", "nli"):
        rows = registry.load_split(cfg.data, "train")
    elif Path(cfg.data).is_file():
        rows = readers.read_nli_csv(Path(cfg.data)) if cfg.data.endswith(".csv") else readers.read_text(Path(cfg.data))
    else:
        raise UserError(f"{cfg.data}: no such file; --data takes wiki, nli or a path (.txt sentences, .csv triplets)")
    triplets = bool(rows) and isinstance(rows[0], tuple)
    if cfg.objective == "sup" and not triplets:
        raise UserError(f"{cfg.data}: objective sup needs (sent0, sent1, hard_neg) triplets, e.g. --data nli")
    if triplets and cfg.objective != "sup":
        rows = [r[0] for r in rows]  # the anchors as plain sentences
    def ids(texts):
        return tokenizer(list(texts), truncation=True, max_length=cfg.max_seq_len, padding=False)["input_ids"]
    if cfg.objective == "sup":
        return list(zip(*(ids(column) for column in zip(*rows))))
    tokens = ids(rows)
    return list(enumerate(tokens)) if cfg.objective == "esimcse" else tokens


# settings that define a run: --resume refuses to continue a checkpoint under other values
RESUME_KEYS = ("objective", "model", "data", "batch_size", "seed", "pooler", "mlp_only_train", "max_seq_len",
               "epochs", "max_steps")


def _record_step(line: str) -> float:
    """The step of one metrics.jsonl record; a last line cut short by a kill counts as after any step."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


@lru_cache(maxsize=1)
def _epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def global_batch(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Example indices of global step ``step``: a fresh seeded permutation per epoch, last partial batch dropped."""
    epoch, index = divmod(step, n // batch_size)
    order = _epoch_order(n, seed, epoch)  # one permutation per epoch, not per step
    return order[index * batch_size: (index + 1) * batch_size].tolist()


# -- evaluation ----------------------------------------------------------------------------------
class EmbedderEncoder:
    """``sts.evaluate``'s encoder interface over the (unwrapped) training model, in eval mode."""

    def __init__(self, embedder, tokenizer, precision: str, device, name: str, batch_size: int = 128):
        self.embedder, self.tokenizer, self.precision, self.device = embedder, tokenizer, precision, device
        self.name, self.batch_size = name, batch_size

    def describe(self) -> dict:
        return {"model": self.name, "pooler": self.embedder.active_pooler, "precision": self.precision,
                "backend": "simcse-lab", "device": str(self.device)}

    def encode(self, sentences, progress: bool = False) -> np.ndarray:
        from simcse_lab.modeling.encoder import encode_texts

        was_training = self.embedder.training
        self.embedder.eval()
        try:
            forward = lambda batch: self.embedder(**{k: v.to(self.device) for k, v in batch.items()})  # noqa: E731
            return encode_texts(sentences, self.tokenizer, forward, self.embedder.backbone.config.hidden_size,
                                batch_size=self.batch_size, precision=self.precision, device=self.device,
                                progress=progress)
        finally:
            self.embedder.train(was_training)


def dev_metrics(encoder) -> dict:
    """STS-B dev Spearman x100, alignment (pairs with gold > 4) and uniformity (all dev sentences)."""
    from simcse_lab.analysis.geometry import alignment, l2_normalize, uniformity
    from simcse_lab.evaluation.sts import correlations, cosine_rows, load_task

    (pairs,) = load_task("stsb", "dev").values()
    sentences = sorted(set(pairs.sent1) | set(pairs.sent2))
    row = {s: i for i, s in enumerate(sentences)}
    vectors = l2_normalize(encoder.encode(sentences))
    a, b = vectors[[row[s] for s in pairs.sent1]], vectors[[row[s] for s in pairs.sent2]]
    gold = np.asarray(pairs.scores, dtype=np.float64)
    return {"dev_spearman": correlations(cosine_rows(a, b), gold)["spearman"],
            "alignment": alignment(a[gold > 4], b[gold > 4]), "uniformity": uniformity(vectors)}


def save_model(embedder, tokenizer, output_dir) -> Path:
    from simcse_lab.modeling.st_format import save_sentence_transformer

    pooler = embedder.export_pooler
    return save_sentence_transformer(embedder.backbone, tokenizer, pooler, output_dir,
                                     mlp=embedder.mlp if pooler == "cls" else None)


def peak_memory_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# -- the loop ------------------------------------------------------------------------------------
def train(cfg: TrainConfig) -> dict:
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from simcse_lab.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, set_rng_state
    from simcse_lab.modeling.embedder import load_embedder
    from simcse_lab.modeling.encoder import autocast_context, resolve_precision
    from simcse_lab.training.mlm import MaskedLMAuxiliary
    from simcse_lab.training.objectives import build_objective
    from simcse_lab.evaluation.sts import evaluate, format_table, parse_tasks

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    device, world, main = accelerator.device, accelerator.num_processes, accelerator.is_main_process
    if cfg.batch_size % world:
        raise UserError(f"batch_size {cfg.batch_size} is not divisible by the {world} processes")
    local = cfg.batch_size // world
    precision = resolve_precision(cfg.precision, device)
    out = Path(cfg.output_dir)
    if not cfg.resume and latest_checkpoint(out) is not None:
        raise UserError(f"{out} already holds a training run; pass --resume to continue it, or another --output-dir")
    test_tasks = [] if cfg.test_tasks.strip().lower() in ("", "none") else parse_tasks(cfg.test_tasks)

    set_seed(cfg.seed)
    tokenizer, embedder = load_embedder(cfg.model, cfg.pooler, cfg.mlp_only_train, cfg.do_mlm)
    if cfg.do_mlm and tokenizer.mask_token_id is None:
        raise UserError(f"{cfg.model}: --do-mlm needs a tokenizer with a mask token")
    objective = build_objective(cfg.objective, cfg, tokenizer, embedder)  # ESimCSE copies the pretrained weights here
    examples = load_examples(cfg, tokenizer)
    if len(examples) < cfg.batch_size:
        raise UserError(f"{cfg.data}: {len(examples)} examples, fewer than one batch of {cfg.batch_size}")
    total = cfg.max_steps or (len(examples) // cfg.batch_size) * cfg.epochs
    optimizer = torch.optim.AdamW(embedder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, cfg.warmup_steps, total)
    model, optimizer = accelerator.prepare(embedder, optimizer)
    objective.to(device)
    save_every = cfg.save_steps or cfg.eval_steps or 125
    metrics_path, summary = out / "metrics.jsonl", {"command": shlex.join(sys.argv), "config": cfg.to_dict(),
                                                     "world_size": world,
                                                     "precision": precision, "device": str(device)}
    step, best, best_step = 0, -math.inf, None
    if cfg.resume and (ckpt := latest_checkpoint(out)) is not None:
        state, rng = load_checkpoint(ckpt, accelerator.process_index)
        saved = state.get("summary", {}).get("config", {})
        changed = [k for k in RESUME_KEYS if k in saved and saved[k] != getattr(cfg, k)]
        if changed:
            raise UserError(f"{ckpt}: --resume with changed {', '.join(changed)} (saved: "
                            f"{', '.join(f'{k}={saved[k]!r}' for k in changed)}); use another --output-dir")
        embedder.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if "objective" in state:
            objective.load_extra_state(state["objective"])
        step, best, best_step = state["step"], state["best"], state["best_step"]
        if "test_before" in state["summary"]:
            summary["test_before"] = state["summary"]["test_before"]
        set_rng_state(rng)
        if main and metrics_path.is_file():  # the curve continues from the checkpoint: drop later records
            kept = [line for line in metrics_path.read_text().splitlines() if _record_step(line) <= step]
            write_text(metrics_path, "".join(line + "\n" for line in kept))
    else:
        if cfg.resume and main:
            print(f"--resume: no checkpoint in {out}; starting from scratch")
        if main and metrics_path.is_file():  # left by a run killed before its first checkpoint
            metrics_path.unlink()
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "train_config.json", cfg.to_dict())
        print(f"training {cfg.objective} on {cfg.data}: {len(examples)} examples, {total} steps of {cfg.batch_size} "
              f"(world size {world}, {local} per process), {precision} on {device}")

    def log(record: dict) -> None:
        if main:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")

    def evaluate_dev() -> dict:
        encoder = EmbedderEncoder(embedder, tokenizer, precision, device, cfg.model, cfg.eval_batch_size)
        return dev_metrics(encoder)

    if main and step == 0:
        if test_tasks:
            encoder = EmbedderEncoder(embedder, tokenizer, precision, device, f"{cfg.model} (untrained)",
                                      cfg.eval_batch_size)
            summary["test_before"] = evaluate(encoder, test_tasks, "test")
        if cfg.eval_steps:
            log({"step": 0, **evaluate_dev()})
    accelerator.wait_for_everyone()

    net = MaskedLMAuxiliary(model, tokenizer) if cfg.do_mlm else model  # what the objective calls
    model.train()
    bar = tqdm(total=total, initial=step, disable=not (main and cfg.progress), desc=cfg.objective, unit="step")
    window_loss, window_steps, window_time, train_time, start_step = 0.0, 0, 0.0, 0.0, step
    while step < total:
        t0 = time.perf_counter()
        indices = global_batch(len(examples), cfg.batch_size, step, cfg.seed)
        mine = indices[accelerator.process_index * local: (accelerator.process_index + 1) * local]
        batch = objective.collate([examples[i] for i in mine], step)
        batch = {k: ({kk: vv.to(device) for kk, vv in v.items()} if isinstance(v, dict) else v.to(device))
                 for k, v in batch.items()}
        with autocast_context(precision, device):
            loss = objective(net, batch)
        # each rank's backward reaches only its slice of the global loss; DDP averages (see distributed.py)
        to_backprop = loss * world
        if cfg.do_mlm:  # a per-rank loss: DDP's average is already the global mean
            loss = loss + cfg.mlm_weight * net.loss
            to_backprop = to_backprop + cfg.mlm_weight * net.loss
        loss_value = loss.item()  # one device sync per step
        if not math.isfinite(loss_value):
            last = latest_checkpoint(out)
            raise UserError(f"loss is {loss_value} at step {step + 1}; stopped. Last good checkpoint: "
                            f"{last or 'none'} (resume from it with a lower --lr)")
        accelerator.backward(to_backprop)
        if cfg.max_grad_norm:
            accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if hasattr(objective, "after_step"):
            objective.after_step(embedder)
        step += 1
        seconds = time.perf_counter() - t0
        window_loss, window_steps, window_time = window_loss + loss_value, window_steps + 1, window_time + seconds
        train_time += seconds
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}")
        record = None
        if step % cfg.log_steps == 0 or step == total:
            record = {"step": step, "loss": window_loss / window_steps, "lr": scheduler.get_last_lr()[0],
                      "steps_per_s": window_steps / window_time,
                      "sentences_per_s": window_steps * cfg.batch_size / window_time,
                      "peak_memory_mb": peak_memory_mb(device)}
            window_loss, window_steps, window_time = 0.0, 0, 0.0
        if cfg.eval_steps and (step % cfg.eval_steps == 0 or step == total):
            if main:
                dev = evaluate_dev()
                record = {**(record or {"step": step}), **dev}
                if dev["dev_spearman"] > best:
                    best, best_step = dev["dev_spearman"], step
                    save_model(embedder, tokenizer, out / "best")
            accelerator.wait_for_everyone()
        if record is not None:
            log(record)
        if step % save_every == 0 or step == total:
            state = {"model": embedder.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "step": step, "best": best, "best_step": best_step,
                     "summary": {k: v for k, v in summary.items() if k in ("test_before", "config")}}
            if hasattr(objective, "extra_state"):
                state["objective"] = objective.extra_state()
            save_checkpoint(out, step, state, accelerator)
    bar.close()

    if main:
        save_model(embedder, tokenizer, out / "final")
        steps_done = step - start_step
        summary.update({"steps": step, "steps_this_run": steps_done, "train_seconds": train_time,
                        "seconds_per_step": train_time / steps_done if steps_done else None,
                        "sentences_per_s": steps_done * cfg.batch_size / train_time if steps_done else None,
                        "peak_memory_mb": peak_memory_mb(device), "best_step": best_step,
                        "best_dev_spearman": best if best_step is not None else None})
        chosen = out / ("best" if best_step is not None else "final")
        if test_tasks:
            from simcse_lab.modeling.encoder import Encoder

            summary["test_after"] = evaluate(Encoder(str(chosen), precision=precision), test_tasks, "test")
            summary["test_after"]["model"] = str(chosen)
            names = [r["model"] for r in (summary.get("test_before"), summary["test_after"]) if r]
            summary["table"] = format_table([r for r in (summary.get("test_before"), summary["test_after"]) if r], names)
            print(summary["table"])
        write_json(out / "summary.json", summary)
        print(f"done: {step} steps, {summary['seconds_per_step'] or 0:.3f} s/step; best dev "
              f"{summary['best_dev_spearman']} at step {best_step}; wrote {out}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary
