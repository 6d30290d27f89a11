"""What a training run keeps besides the weights, as named steps of the loop.

Where it stands (step, best dev score), the metrics log, the resumable checkpoint state, the dev model
selection and the end-of-run summary.

The loop (:mod:`simcse_lab.training.loop`) calls these named steps; the checkpoint files themselves
are written and read by :mod:`simcse_lab.training.checkpoint`.
"""

from __future__ import annotations

import json
import math
import os
import resource
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from simcse_lab.errors import UserError, first_line
from simcse_lab.evaluation.dev import selection_metrics
from simcse_lab.evaluation.pair_scores import TEST_SCORES, without_pairs
from simcse_lab.evaluation.sts import evaluate, format_geometry, format_table
from simcse_lab.evaluation.tasks import Selection
from simcse_lab.io import open_own_file, write_json, write_text
from simcse_lab.modeling.embedder import load_adapter_embedder
from simcse_lab.modeling.encoder import EmbedderEncoder, Encoder
from simcse_lab.modeling.lora import is_adapter_dir, load_trained_state, trained_state
from simcse_lab.modeling.st_format import save_embedder
from simcse_lab.runtime.provenance import reproducibility_record
from simcse_lab.training.checkpoint import (check_fits, latest_checkpoint, load_checkpoint, set_rng_state,
                                           tensor_shapes)
from simcse_lab.training.config import TrainConfig
from simcse_lab.training.objective_options import OBJECTIVE_OPTIONS
from simcse_lab.training.examples import check_training_data

# settings that define a run: --resume refuses to continue a checkpoint under other values
RESUME_KEYS = ("objective", "model", "data", "batch_size", "seed", "pooler", "mlp_only_train", "projection",
               "max_seq_len", "epochs", "max_steps", "select", "lora_r", "lora_alpha", "lora_dropout", "lora_targets",
               "init_adapter", "weights_dtype", "attention_dropout", "bidirectional", "instruction", "merge_lora",
               # the loss: a checkpoint continued under another temperature or auxiliary loss is another run
               "temperature", "do_mlm", "mlm_weight", "mlm_probability", "mlm_masking", "cos_reg")
# and what the data is: --data names it, these say what it holds (summary["data"], kept in every checkpoint)
DATA_KEYS = {"fingerprint": "data content", "columns": "columns", "select_sha256": "--select file content"}


@dataclass
class RunState:
    """Where the run stands; saved in every checkpoint."""

    step: int = 0
    best: float = -math.inf       # best value so far of the --select metric (dev Spearman by default)
    best_step: int | None = None  # the step of OUTPUT/best


@dataclass
class Trainee:
    """The model being trained and how it encodes: the embedder, its tokenizer, the precision and the device."""

    embedder: object
    tokenizer: object
    precision: str
    device: object


@dataclass
class Restorable:
    """What a checkpoint saves and ``--resume`` restores besides the run's place: the embedder's trained weights,
    the optimizer, the schedule and the objective's own state."""

    embedder: object
    optimizer: object
    scheduler: object
    objective: object


@dataclass(frozen=True)
class Judging:
    """How the run is judged: the STS test tasks (before and after training) and what picks OUTPUT/best."""

    test_tasks: list[str]
    selection: Selection


def check_can_start(cfg: TrainConfig, out: Path, processes: int) -> None:
    """Refuse, before any work: data that is missing or does not fit the objective, a batch that does not
    split over the processes, a run directory that already holds a run (unless resuming it). Only the main
    process fetches a registry dataset that is not here yet (in the loop, before the others read it)."""
    check_training_data(cfg, fetch=False)
    if cfg.batch_size % processes:
        raise UserError(f"batch_size {cfg.batch_size} is not divisible by the {processes} processes")
    if not cfg.resume and latest_checkpoint(out) is not None:
        raise UserError(f"{out} already holds a training run; pass --resume to continue it, or another --output-dir")


def new_summary(cfg: TrainConfig, processes: int, precision: str, device, data: dict | None = None) -> dict:
    """The run's summary; ``data`` (:func:`~simcse_lab.training.examples.data_identity`) is what it trains on."""
    summary = {"command": shlex.join(sys.argv), "config": cfg.to_dict(), "world_size": processes,
               "precision": precision, "device": str(device),
               "reproducibility": reproducibility_record(cfg, processes, precision, device, data)}
    if data is not None:
        summary["data"] = dict(data)
    return summary


def record_masking(objective, summary: dict, main: bool) -> None:
    """The masked-token loss's settings (objective, mask token and where it comes from, share, masking) into the
    summary, and a one-line note when the mask token is a fallback the tokenizer does not have (MNTP's "_")."""
    if objective.mlm is None:
        return
    summary["masked_lm"] = dict(objective.mlm.described)
    if main and summary["masked_lm"].get("mask_token_from", "tokenizer") != "tokenizer":
        print(f"note: the tokenizer has no mask token; masking with {summary['masked_lm']['mask_token']!r} "
              f"(id {summary['masked_lm']['mask_token_id']}) as LLM2Vec does", file=sys.stderr)


def peak_memory_mb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _record_step(line: str) -> float:
    """The step of one metrics.jsonl record; a last line cut short by a kill counts as after any step."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


class MetricsLog:
    """OUTPUT/metrics.jsonl, one JSON record per line, written by the main process only."""

    def __init__(self, path: Path, main: bool):
        self.path, self.main = path, main

    def append(self, record: dict) -> None:
        if self.main:
            with os.fdopen(open_own_file(self.path, os.O_WRONLY | os.O_APPEND, "the run's metrics"), "a") as f:
                f.write(json.dumps(record) + "\n")

    def keep_until(self, step: int | None) -> None:
        """Drop the records after ``step`` (the curve continues from a checkpoint); None: drop them all. A
        metrics.jsonl that is not our own regular file (a link, a FIFO) is refused before anything is written."""
        if not self.main or not os.path.lexists(self.path):
            return
        os.close(open_own_file(self.path, os.O_RDONLY, "the run's metrics"))
        if step is None:
            self.path.unlink()
            return
        kept = [line for line in self.path.read_text().splitlines() if _record_step(line) <= step]
        write_text(self.path, "".join(line + "\n" for line in kept))


@dataclass
class ResumePoint:
    """The checkpoint a --resume continues from, read and checked before any model loads."""

    path: Path
    state: dict
    rng: dict


def _changed_data(saved: dict, data: dict) -> list[tuple[str, str]]:
    """(name, what the checkpoint holds) of each part of the data that differs; a fingerprint shown short."""
    def shown(key: str) -> str:
        if key in ("fingerprint", "select_sha256") and isinstance(saved[key], str):
            return f"{saved[key][:12]}... (now {str(data.get(key))[:12]}...)"
        return repr(saved[key])

    return [(name, shown(key)) for key, name in DATA_KEYS.items() if key in saved and saved[key] != data.get(key)]


def read_resume_point(cfg: TrainConfig, out: Path, process_index: int, data: dict) -> ResumePoint | None:
    """With --resume and a checkpoint: the checkpoint, read (every file verified) and checked against this run's
    settings and data (``data``: :func:`~simcse_lab.training.examples.data_identity`) before any model loads or
    any row is tokenised. A run may only continue on the settings and the data its checkpoints were trained
    on: the same --data name, the same content (the fingerprint its tokenised cache is keyed by) and the same
    columns. A checkpoint written before the data was recorded is continued with a note saying what could not
    be checked (its own record then starts at this step). None: no --resume, or nothing to resume."""
    ckpt = latest_checkpoint(out) if cfg.resume else None
    if ckpt is None:
        return None
    state, rng = load_checkpoint(ckpt, process_index)
    saved = state["summary"].get("config", {})
    keys = RESUME_KEYS + tuple(option.name for option in OBJECTIVE_OPTIONS.get(cfg.objective, ()))
    changed = [(k, repr(saved[k])) for k in keys if k in saved and saved[k] != getattr(cfg, k)]
    saved_data = state["summary"].get("data")
    if isinstance(saved_data, dict):
        changed += _changed_data(saved_data, data)
    if changed:
        raise UserError(f"{ckpt}: --resume with changed {', '.join(k for k, _ in changed)} (saved: "
                        f"{', '.join(f'{k}={v}' for k, v in changed)}); use another --output-dir")
    if not isinstance(saved_data, dict) and process_index == 0:
        print(f"--resume: {ckpt} does not record what its data held (written before simcse-lab kept the data's "
              f"fingerprint), so only the name {cfg.data!r} could be checked; continuing, and recording the data "
              f"from step {state['step']} on")
    return ResumePoint(ckpt, state, rng)


def resume_or_start(resume: bool, out: Path, accelerator, parts: Restorable, summary: dict, log: MetricsLog,
                    point: ResumePoint | None) -> RunState:
    """With the checkpoint of :func:`read_resume_point`: model, optimizer, schedule, objective state, RNG, the
    pre-training test table and the metrics curve as they were at that checkpoint (a checkpoint whose tensors
    do not fit the model is refused in one line first). Otherwise a fresh start (a metrics.jsonl left by a run
    killed before its first checkpoint is dropped)."""
    embedder, optimizer, scheduler, objective = parts.embedder, parts.optimizer, parts.scheduler, parts.objective
    if point is None:
        if resume and accelerator.is_main_process:
            print(f"--resume: no checkpoint in {out}; starting from scratch")
        log.keep_until(None)
        return RunState()
    state, ckpt = point.state, point.path
    # a LoRA run's checkpoint holds the adapter and heads only: the frozen weights come from the model itself
    check_fits(ckpt, tensor_shapes(state["model"]), tensor_shapes(trained_state(embedder)), accelerator.process_index)
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if "objective" in state:
            objective.load_extra_state(state["objective"])
        if "scaler" in state and accelerator.scaler is not None:
            accelerator.scaler.load_state_dict(state["scaler"])
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError) as err:
        raise UserError(f"{ckpt / 'state.pt'}: its optimizer, schedule or objective state does not fit this run "
                        f"({first_line(err, 200)}); use another --output-dir") from None
    check_optimizer_state(ckpt, optimizer)
    load_trained_state(embedder, state["model"])
    if "test_before" in state["summary"]:
        summary["test_before"] = state["summary"]["test_before"]
    saved_data = state["summary"].get("data")
    since = saved_data.get("recorded_from_step") if isinstance(saved_data, dict) else state["step"]
    if "data" in summary and since is not None:  # a run resumed from a checkpoint that did not record its data
        summary["data"]["recorded_from_step"] = since
    set_rng_state(point.rng)
    log.keep_until(state["step"])
    run = RunState(state["step"], state["best"], state["best_step"])
    point.state = point.rng = None  # the weights are in the model now: let the checkpoint's copy go
    return run


ADAMW_STATE = ("step", "exp_avg", "exp_avg_sq")  # what torch's AdamW keeps per parameter (amsgrad off)


def check_optimizer_state(ckpt: Path, optimizer) -> None:
    """After ``optimizer.load_state_dict``: AdamW's state of each parameter holds its step (one number) and its
    moments in the parameter's shape. A checkpoint that says otherwise fails at the first step, and a moment
    smaller than its parameter makes the fused kernel read and write out of bounds (a crash, at best)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, param in enumerate(params):
        state = optimizer.state.get(param)
        if not state:
            continue  # a parameter that never had a gradient: AdamW starts its state at its first one
        missing = [name for name in ADAMW_STATE if name not in state]
        problem = f"lacks {missing[0]!r}" if missing else None
        for name in ADAMW_STATE[1:]:
            value = state.get(name)
            if problem is None and (not torch.is_tensor(value) or value.shape != param.shape):
                shape = list(value.shape) if torch.is_tensor(value) else type(value).__name__
                problem = f"tensor {name!r} has shape {shape}, the parameter's has {list(param.shape)}"
        step = state.get("step")
        if problem is None and not (isinstance(step, (int, float)) or (torch.is_tensor(step) and step.numel() == 1)):
            problem = "'step' is not one number"
        if problem:
            raise UserError(f"{ckpt / 'state.pt'}: the optimizer state of parameter {index} {problem} (wrongly "
                            f"shaped tensors); use another --output-dir")


def checkpoint_state(parts: Restorable, run: RunState, summary: dict, scaler=None) -> dict:
    """What a checkpoint holds (the RNG states are added per process by ``save_checkpoint``); under fp16 also
    accelerate's gradient scaler, so a resumed run continues with the loss scale it had."""
    state = {"model": trained_state(parts.embedder), "optimizer": parts.optimizer.state_dict(),
             "scheduler": parts.scheduler.state_dict(), "step": run.step, "best": run.best, "best_step": run.best_step,
             "summary": {k: v for k, v in summary.items() if k in ("test_before", "config", "data")}}
    extra = parts.objective.extra_state()
    if extra:
        state["objective"] = extra
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    return state


def dev_encoder(embedder, tokenizer, precision: str, device, cfg: TrainConfig, name: str | None = None):
    return EmbedderEncoder(embedder, tokenizer, precision, device, name or cfg.model, cfg.eval_batch_size,
                           instruction=cfg.instruction)


def select_best(run: RunState, dev: dict, embedder, tokenizer, out: Path, selection: Selection) -> None:
    """Keep the model as OUTPUT/best when its ``--select`` metric (default: dev Spearman) beats every earlier
    value, in the metric's direction."""
    value = dev[selection.key]
    if selection.improves(value, run.best if run.best_step is not None else None):
        run.best, run.best_step = value, run.step
        # Known, kept on purpose for now: writing builds sentence-transformers modules whose initialisation draws
        # from torch's RNG, so the dropout after this step depends on whether a best model was saved (and so on
        # --select and --eval-steps). Undoing the draws (torch.random.fork_rng) is the fix, but it moves every
        # recorded training number (./run.sh's 60-step run: 75.93 -> 75.89), so it waits for a change that
        # re-records them.
        save_embedder(embedder, tokenizer, out / "best")


class LossWindow:
    """The mean loss (and the mean of each loss part an objective reports, e.g. ``contrastive`` and
    ``cos_reg``) and speed since the last log record, and the total training time of this run."""

    def __init__(self):
        self.loss, self.steps, self.seconds, self.tokens, self.flops = 0.0, 0, 0.0, 0, 0.0
        self.train_seconds, self.train_tokens, self.train_flops = 0.0, 0, 0.0
        self.parts: dict[str, float] = {}

    def add(self, loss: float, seconds: float, parts: dict[str, float] | None = None, tokens: int = 0,
            flops: float = 0.0) -> None:
        """One step: its loss and named loss parts, seconds, real tokens and matmul FLOPs
        (:class:`~simcse_lab.training.throughput.StepWork`)."""
        self.loss, self.steps, self.seconds = self.loss + loss, self.steps + 1, self.seconds + seconds
        self.tokens, self.flops = self.tokens + tokens, self.flops + flops
        self.train_seconds, self.train_tokens, self.train_flops = (self.train_seconds + seconds,
                                                                   self.train_tokens + tokens, self.train_flops + flops)
        for name, value in (parts or {}).items():
            self.parts[name] = self.parts.get(name, 0.0) + value

    def record(self, step: int, lr: float, batch_size: int, device) -> dict:
        """The log record of the window, which then starts afresh."""
        record = {"step": step, "loss": self.loss / self.steps,
                  **{name: total / self.steps for name, total in self.parts.items()},
                  "lr": lr, "steps_per_s": self.steps / self.seconds,
                  "sentences_per_s": self.steps * batch_size / self.seconds,
                  "tokens_per_s": self.tokens / self.seconds, "achieved_tflops": self.flops / self.seconds / 1e12,
                  "peak_memory_mb": peak_memory_mb(device)}
        self.loss, self.steps, self.seconds, self.tokens, self.flops, self.parts = 0.0, 0, 0.0, 0, 0.0, {}
        return record


def non_finite_loss(value: float, step: int, out: Path) -> UserError:
    return UserError(f"loss is {value} at step {step}; stopped. Last good checkpoint: "
                     f"{latest_checkpoint(out) or 'none'} (resume from it with a lower --lr)")


def finish_run(out: Path, run: RunState, start_step: int, window: LossWindow, summary: dict, trainee: Trainee,
               judging: Judging, batch_size: int) -> None:
    """OUTPUT/final, the STS test table of the selected model (best, else final) beside the one before
    training (its per-pair scores in OUTPUT/test_scores.json), and OUTPUT/summary.json. Main process only."""
    precision, device, selection = trainee.precision, trainee.device, judging.selection
    save_embedder(trainee.embedder, trainee.tokenizer, out / "final")
    steps_done, seconds = run.step - start_step, window.train_seconds
    summary.update({"steps": run.step, "steps_this_run": steps_done, "train_seconds": seconds,
                    "seconds_per_step": seconds / steps_done if steps_done else None,
                    "sentences_per_s": steps_done * batch_size / seconds if steps_done else None,
                    "tokens_per_s": window.train_tokens / seconds if steps_done else None,
                    "achieved_tflops": window.train_flops / seconds / 1e12 if steps_done else None,
                    "peak_memory_mb": peak_memory_mb(device), "best_step": run.best_step})
    best = run.best if run.best_step is not None else None
    if selection.is_default:
        summary["best_dev_spearman"] = best
    else:  # the metric that picked OUTPUT/best, named as --select wrote it
        summary.update({"select": selection.text, "best_select": best})
    chosen = out / ("best" if run.best_step is not None else "final")
    if judging.test_tasks:
        scored = evaluate(saved_encoder(chosen, precision, device), judging.test_tasks, "test", keep_pairs=True)
        scored["model"] = str(chosen)
        write_json(out / TEST_SCORES, scored)  # per-pair scores: `compare --scores` needs no second encoding
        summary["test_after"] = without_pairs(scored)
        results = [r for r in (summary.get("test_before"), summary["test_after"]) if r]
        summary["table"] = format_table(results, [r["model"] for r in results])
        summary["geometry_table"] = format_geometry(results, [r["model"] for r in results])
        print(summary["table"] + "\n\n" + summary["geometry_table"])
    write_json(out / "summary.json", summary)
    what = "dev" if selection.is_default else selection.text
    print(f"done: {run.step} steps, {summary['seconds_per_step'] or 0:.3f} s/step; best {what} "
          f"{best} at step {run.best_step}; wrote {out}")


def saved_encoder(path: Path, precision: str, device):
    """An encoder of a saved model: a sentence-transformers directory, or (--no-merge-lora) an adapter directory
    on its base model."""
    if is_adapter_dir(path):
        tokenizer, embedder = load_adapter_embedder(str(path))
        return EmbedderEncoder(embedder.to(device), tokenizer, precision, device, str(path),
                               instruction=embedder.instruction)
    return Encoder(str(path), precision=precision)


def evaluate_before(cfg: TrainConfig, trainee: Trainee, judging: Judging, summary: dict, log: MetricsLog) -> None:
    """The untrained model's STS test table (for before -> after) and the first dev point (step 0)."""
    embedder, tokenizer, precision, device = trainee.embedder, trainee.tokenizer, trainee.precision, trainee.device
    if judging.test_tasks and cfg.test_before:
        encoder = dev_encoder(embedder, tokenizer, precision, device, cfg, f"{cfg.model} (untrained)")
        summary["test_before"] = evaluate(encoder, judging.test_tasks, "test")
    if cfg.eval_steps:
        log.append({"step": 0, **selection_metrics(dev_encoder(embedder, tokenizer, precision, device, cfg),
                                                   judging.selection)})
