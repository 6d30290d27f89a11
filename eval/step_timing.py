"""One training step exactly as simcse_lab/training/loop.py runs it, timed, for A/B comparisons in one process.

A :class:`StepRunner` holds its own model, objective, optimizer and schedule, built from a TrainConfig the
way the loop builds them (same seed, same pretokenised examples, same global batches), and ``run()`` does
one step: collate, bf16 autocast forward, backward, clip, AdamW, schedule, zero_grad, the objective's
after-step hook. What the loop adds around a step (the accelerate wrapper, which is a no-op for one CPU
process, the log, checkpoints, dev evaluation) is left out. Several runners live side by side so that
changes can be timed interleaved (A B A B ...) on a shared machine, where load drifts over minutes
(:func:`simcse_lab.runtime.benchmark.interleaved`).

Used by eval/bench_roofline.py and eval/bench_step_changes.py (imported from this directory).
"""

from __future__ import annotations

import time
from contextlib import nullcontext

import torch
from accelerate.utils import set_seed
from torch.profiler import record_function
from transformers import get_linear_schedule_with_warmup

from simcse_lab.modeling.embedder import RowRun, load_embedder
from simcse_lab.runtime.precision import resolve_precision
from simcse_lab.training.backbone import resolve_backbone
from simcse_lab.training.config import TrainConfig
from simcse_lab.training.examples import load_training_examples
from simcse_lab.training.loop import ADAMW_KERNELS, to_device
from simcse_lab.training.objectives import build_objective
from simcse_lab.training.sampler import global_batch
from simcse_lab.training.throughput import StepWork

_EXAMPLES: dict = {}  # pretokenised examples per (objective, data, max_seq_len), shared by the runners


def examples_for(cfg: TrainConfig, tokenizer):
    key = (cfg.objective, cfg.data, cfg.max_seq_len, cfg.model)
    if key not in _EXAMPLES:
        _EXAMPLES[key] = load_training_examples(cfg, tokenizer)
    return _EXAMPLES[key]


class StepRunner:
    """A training run of ``cfg`` that advances one step per ``run()`` call. ``dropout=False`` sets every
    dropout probability to 0 (for loss-curve comparisons); ``autocast_cache`` is torch.autocast's weight-cast
    cache (on in the loop)."""

    def __init__(self, cfg: TrainConfig, dropout: bool = True, autocast_cache: bool = True,
                 compile_backbone: bool = False, threads: int | None = None):
        self.cfg = cfg
        self.threads = threads  # torch's intra-op threads for this runner's steps (None: the process default)
        self.device = torch.device("cpu")
        self.precision = resolve_precision(cfg.precision, self.device)
        set_seed(cfg.seed)
        resolve_backbone(cfg)  # the default pooler: the backbone family's natural one, as the training loop does
        self.tokenizer, self.embedder = load_embedder(cfg.model, cfg.pooler, cfg.mlp_only_train, cfg.do_mlm,
                                                      RowRun(cfg.length_chunks, cfg.pack_width, cfg.mini_batch_size))
        if not dropout:
            for module in self.embedder.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = 0.0  # BERT's attention reads its dropout probability from this module too
        if compile_backbone:
            self.embedder.backbone.compile(dynamic=False)
        self.objective = build_objective(cfg, self.tokenizer, self.embedder)
        self.examples = examples_for(cfg, self.tokenizer)
        total = cfg.max_steps or (len(self.examples) // cfg.batch_size) * cfg.epochs
        self.optimizer = torch.optim.AdamW(self.embedder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                           **ADAMW_KERNELS[cfg.adamw])
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, cfg.warmup_steps, total)
        self.work = StepWork(self.objective, self.embedder.backbone.config, cfg.length_chunks, cfg.pack_width)
        self.autocast_cache = autocast_cache
        self.step = 0
        self.embedder.train()

    def batch(self, step: int) -> dict:
        indices = global_batch(len(self.examples), self.cfg.batch_size, step, self.cfg.seed)
        return to_device(self.objective.collate([self.examples[i] for i in indices], step), self.device)

    def autocast(self):
        if self.precision != "bf16":
            return nullcontext()
        return torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=self.autocast_cache)

    def run(self, phases: bool = False) -> dict:
        """One step: {"seconds", "cpu_seconds", "loss", "tokens", "flops_real", "flops_padded"} (+ per-phase
        seconds). ``cpu_seconds`` is the CPU time of the whole process (every thread)."""
        default_threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        c0, t0 = time.process_time(), time.perf_counter()
        # named ranges: eval/bench_roofline.py's profile files every op under "optimizer" as optimizer time
        with record_function("collate"):
            batch = self.batch(self.step)
        with record_function("forward"), self.autocast():
            loss = self.objective(self.embedder, batch)
        loss_value = loss.item()
        t1 = time.perf_counter()
        with record_function("backward"):
            loss.backward()
        t2 = time.perf_counter()
        with record_function("optimizer"):
            if self.cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(self.embedder.parameters(), self.cfg.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        with record_function("after_step"):
            self.objective.after_step(self.embedder)
        t3, c3 = time.perf_counter(), time.process_time()
        torch.set_num_threads(default_threads)
        self.step += 1
        tokens, flops = self.work(batch)
        out = {"seconds": t3 - t0, "cpu_seconds": c3 - c0, "loss": loss_value, "tokens": tokens, "flops_real": flops,
               "flops_padded": self.work.padded_flops(batch)}
        if phases:
            out.update(forward=t1 - t0, backward=t2 - t1, optimizer=t3 - t2)
        return out
