"""The training loop, nanoGPT style: setup, then one ``while`` loop that reads top to bottom.

The loop owns the Accelerator; nothing is patched. Its precision is accelerate's mixed precision
(``--precision``, or what ``accelerate launch`` / an accelerate config asked for: fp32, bf16, or fp16 with
gradient scaling; fp32 master weights), its trackers accelerate's (``--report-to``). The training data is a
tokenised, memory-mapped Arrow dataset, built once per corpus + tokenizer + max length, by the main process
first so that the ranks of ``accelerate launch`` do not race. Per step: read this process's slice of the
global batch (``examples.take``), collate it (dynamic padding), compute the objective under accelerate's
autocast, backpropagate, clip, step optimizer and linear schedule. The encoder may run the rows as
length-sorted chunks (``length_chunks``) or packed (``pack_width``) and AdamW may be a foreach or fused kernel
(``adamw``), each the same function as the plain step (eval/step_changes.md: what each saves); with
``mini_batch_size`` it runs at most that many rows at a time and recomputes them in the backward pass
(bounded activation memory: eval/mini_batches.md). Every
``eval_steps``: STS-B dev Spearman (+ alignment and uniformity), or the metric ``--select`` names, keeping the
best model as ``OUTPUT/best``; every ``save_steps``: the resumable training state, written atomically. The named
steps around the loop (resume, checkpoint state, dev selection, summary) are in
:mod:`simcse_lab.training.run_state`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from simcse_lab.errors import UserError
from simcse_lab.evaluation.dev import selection_metrics
from simcse_lab.evaluation.sts import parse_tasks
from simcse_lab.evaluation.tasks import parse_select
from simcse_lab.io import write_json
from simcse_lab.modeling.embedder import RowRun, load_embedder, set_attention
from simcse_lab.modeling.lora import BackboneSetup
from simcse_lab.runtime.provenance import make_deterministic
from simcse_lab.runtime.precision import ACCELERATE_NAMES, training_device_type, training_precision
from simcse_lab.training.backbone import family_precision, resolve_backbone
from simcse_lab.training.checkpoint import save_checkpoint
from simcse_lab.training.config import TrainConfig
from simcse_lab.training.examples import data_identity, load_training_examples
from simcse_lab.training.tracking import LOG_DIR, PROJECT, parse_report_to, tracked_values
from simcse_lab.training.objectives import build_objective
from simcse_lab.training.run_state import (Judging, LossWindow, MetricsLog, Restorable, Trainee, check_can_start,
                                           checkpoint_state, dev_encoder, evaluate_before, finish_run, new_summary,
                                           non_finite_loss, read_resume_point, record_masking, resume_or_start,
                                           select_best)
from simcse_lab.training.sampler import global_batch, local_slice
from simcse_lab.training.throughput import StepWork

# torch.optim.AdamW's kernels: the same update, computed per tensor, per group of tensors, or in one pass
ADAMW_KERNELS = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}


def to_device(batch: dict, device) -> dict:
    """Model inputs on ``device``; an objective may nest one level (ESimCSE: online and momentum inputs)."""
    return {k: to_device(v, device) if isinstance(v, dict) else v.to(device) for k, v in batch.items()}


def make_accelerator(cfg: TrainConfig, out: Path, family=None) -> tuple[Accelerator, str, list[str]]:
    """(accelerator, training precision, trackers): devices (CPU when there is no GPU), processes, mixed precision
    and experiment trackers, all from accelerate; ``family`` (the backbone's) may rule fp16 out."""
    precision, trackers = training_precision(cfg.precision), parse_report_to(cfg.report_to)
    if family is not None:
        precision = family_precision(family, precision, cfg.precision)
    accelerator = Accelerator(cpu=training_device_type() == "cpu", mixed_precision=ACCELERATE_NAMES[precision],
                              log_with=trackers or None,
                              project_config=ProjectConfiguration(str(out), logging_dir=str(out / LOG_DIR)))
    return accelerator, precision, trackers


def announce(cfg: TrainConfig, out: Path, accelerator, trackers: list[str], precision: str, examples: int,
             total: int) -> None:
    """OUTPUT/train_config.json, the trackers' run, and one line saying what is about to happen."""
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "train_config.json", cfg.to_dict())
    if trackers:
        accelerator.init_trackers(PROJECT, config=cfg.to_dict())
    if accelerator.is_main_process:
        processes = accelerator.num_processes
        print(f"training {cfg.objective} on {cfg.data}: {examples} examples, {total} steps of {cfg.batch_size} "
              f"(world size {processes}, {cfg.batch_size // processes} per process), {precision} on "
              f"{accelerator.device}")


def global_loss(accelerator, loss: torch.Tensor, parts: dict) -> tuple[float, dict]:
    """The global-batch loss and its named parts: the mean of the ranks' equal shards."""
    value = accelerator.reduce(loss.detach(), "mean").item()
    if parts:
        parts = dict(zip(parts, accelerator.reduce(torch.stack(list(parts.values())), "mean").tolist()))
    return value, parts


def train(cfg: TrainConfig) -> dict:
    """Train; return the run's summary (also OUTPUT/summary.json, written by the main process)."""
    # one Accelerator owns devices, processes, mixed precision and trackers; bad settings stop here, and so do
    # settings the backbone's family cannot take (config.json only); the default pooler becomes the family's
    out = Path(cfg.output_dir)
    family = resolve_backbone(cfg)
    accelerator, precision, trackers = make_accelerator(cfg, out, family)
    device, processes, main = accelerator.device, accelerator.num_processes, accelerator.is_main_process
    check_can_start(cfg, out, processes)
    test_tasks = [] if cfg.test_tasks.strip().lower() in ("", "none") else parse_tasks(cfg.test_tasks)
    selection = parse_select(cfg.select)  # what picks OUTPUT/best; a user's file is read and checked here
    if cfg.eval_steps:
        selection.task.check(selection.split)
    # what the data holds (its content fingerprint, read once per file state) and, with --resume, the checkpoint,
    # checked against the settings and the data: refused before any model loads or any row is tokenised
    with accelerator.main_process_first():  # the main process hashes a new corpus; the others find its memo
        data = data_identity(cfg)
    point = read_resume_point(cfg, out, accelerator.process_index, data)

    # model, objective (ESimCSE's momentum encoder copies the pretrained weights here), tokenised data
    if cfg.deterministic:
        make_deterministic()
    set_seed(cfg.seed)
    tokenizer, embedder = load_embedder(cfg.model, cfg.pooler, cfg.mlp_only_train, cfg.needs_lm_head,
                                        RowRun(cfg.length_chunks, cfg.pack_width, cfg.mini_batch_size), cfg.projection,
                                        BackboneSetup.from_config(cfg))
    set_attention(embedder.backbone, embedder.family, cfg.bidirectional)  # a decoder LLM's --bidirectional
    embedder.instruction = cfg.instruction  # saved with the model (its recipe; a sentence-transformers default prompt)
    if not cfg.merge_lora:  # best/ and final/ are adapter directories on cfg.model
        embedder.export_adapter = cfg.model
    objective = build_objective(cfg, tokenizer, embedder)
    with accelerator.main_process_first():  # one process tokenises; the others then memory-map its cache
        examples = load_training_examples(cfg, tokenizer, embedder.backbone.get_input_embeddings().num_embeddings,
                                          data)
    if len(examples) < cfg.batch_size:
        raise UserError(f"{cfg.data}: {len(examples)} examples, fewer than one batch of {cfg.batch_size}")
    total = cfg.max_steps or (len(examples) // cfg.batch_size) * cfg.epochs
    # what trains: every weight, or (LoRA) the adapter and the pooler's head; frozen weights get no AdamW state
    trained = [p for p in embedder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                  **ADAMW_KERNELS[cfg.adamw])
    scheduler = get_linear_schedule_with_warmup(optimizer, cfg.warmup_steps, total)
    model, optimizer = accelerator.prepare(embedder, optimizer)
    objective.to(device)

    # a fresh start, or weights, optimizer, schedule, RNG and objective state from the last checkpoint
    summary, log = new_summary(cfg, processes, precision, device, data), MetricsLog(out / "metrics.jsonl", main)
    record_masking(objective, summary, main)
    restorable = Restorable(embedder, optimizer, scheduler, objective)  # what a checkpoint saves and restores
    trainee, judging = Trainee(embedder, tokenizer, precision, device), Judging(test_tasks, selection)
    run = resume_or_start(cfg.resume, out, accelerator, restorable, summary, log, point)
    announce(cfg, out, accelerator, trackers, precision, len(examples), total)
    if main and run.step == 0:  # the untrained model: the test table "before" and the first dev point
        evaluate_before(cfg, trainee, judging, summary, log)
    accelerator.wait_for_everyone()

    model.train()
    bar = tqdm(total=total, initial=run.step, disable=not (main and cfg.progress), desc=cfg.objective, unit="step")
    window, start_step, save_every = LossWindow(), run.step, cfg.save_steps or cfg.eval_steps or 125
    work = StepWork(objective, embedder.backbone.config, cfg.length_chunks, cfg.pack_width)  # for the log
    while run.step < total:
        t0 = time.perf_counter()
        # this process's slice of the global batch, collated by the objective, on the device
        mine = local_slice(global_batch(len(examples), cfg.batch_size, run.step, cfg.seed),
                           accelerator.process_index, processes)
        batch = to_device(objective.collate(examples.take(mine), run.step), device)
        # the objective scores local anchors against gathered negatives: DDP's gradient mean is exact as is
        with accelerator.autocast():
            loss = objective(model, batch)
        # what we log is the global-batch loss (and its parts, e.g. --cos-reg's): one device sync per step
        loss_value, parts = global_loss(accelerator, loss, objective.loss_parts)
        if not math.isfinite(loss_value):
            raise non_finite_loss(loss_value, run.step + 1, out)
        accelerator.backward(loss)
        if cfg.max_grad_norm:
            accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        objective.after_step(embedder)  # e.g. ESimCSE's momentum encoder follows the model
        run.step += 1
        window.add(loss_value, time.perf_counter() - t0, parts, *work(batch))
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}")
        # a log record every log_steps: the mean loss and speed since the last one
        record = None
        if run.step % cfg.log_steps == 0 or run.step == total:
            record = window.record(run.step, scheduler.get_last_lr()[0], cfg.batch_size, device)
        # dev evaluation (main process; the others wait): metrics, and OUTPUT/best when it improves
        if cfg.eval_steps and (run.step % cfg.eval_steps == 0 or run.step == total):
            if main:
                dev = selection_metrics(dev_encoder(embedder, tokenizer, precision, device, cfg), selection)
                record = {**(record or {"step": run.step}), **dev}
                select_best(run, dev, embedder, tokenizer, out, selection)
            accelerator.wait_for_everyone()
        if record is not None:
            log.append(record)
            accelerator.log(tracked_values(record), step=run.step)
        # the resumable training state (every process writes its RNG state)
        if run.step % save_every == 0 or run.step == total:
            state = checkpoint_state(restorable, run, summary, accelerator.scaler)
            save_checkpoint(out, run.step, state, accelerator, keep=cfg.keep_checkpoints)
    bar.close()

    # OUTPUT/final, the test table after training, summary.json
    if main:
        finish_run(out, run, start_step, window, summary, trainee, judging, cfg.batch_size)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary
