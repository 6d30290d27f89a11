"""ESimCSE (Wu et al. 2022): word repetition as the positive, a momentum queue as extra negatives.

The positive of a sentence is its word repetition (a length-changing view, :mod:`.repetition`); the
extra negatives are a FIFO queue of momentum-encoder embeddings of earlier batches (:mod:`.momentum`)."""

from __future__ import annotations

import random

import torch
from torch import nn

from simcse_lab.runtime.distributed import gather_no_grad, gather_with_grad
from simcse_lab.training.objective_options import OBJECTIVE_OPTIONS
from simcse_lab.training.objectives.base import Objective, cosine_matrix, info_nce, register
from simcse_lab.training.objectives.momentum import EmbeddingQueue, MomentumEncoder
from simcse_lab.training.objectives.repetition import repeat_tokens


@register("esimcse")
class ESimCSE(Objective):
    forward_only_inputs = ("momentum",)  # encoded without gradient (training/throughput.py counts one pass)
    with_index = True  # a sentence's repetition draw is keyed by its index
    options = OBJECTIVE_OPTIONS["esimcse"]  # dup_rate, fixed_repetition, momentum, queue_ratio

    def __init__(self, tokenizer, embedder: nn.Module, temperature: float = 0.05, dup_rate: float = 0.32,
                 momentum: float = 0.995, queue_size: int = 160, seed: int = 42, fixed_repetition: bool = False):
        super().__init__(tokenizer, temperature)
        self.dup_rate = dup_rate
        self.seed = seed
        self.fixed_repetition = fixed_repetition
        # the special tokens the tokenizer puts at a sentence's ends ([CLS]/[SEP], <s>/</s>, T5's </s>), never
        # repeated; [UNK] is an ordinary word here
        self.special_ids = frozenset(tokenizer.all_special_ids) - {tokenizer.unk_token_id}
        self.momentum_encoder = MomentumEncoder(embedder, momentum)  # a copy of the pretrained weights
        self.queue = EmbeddingQueue(queue_size, embedder.dim)

    @classmethod
    def from_config(cls, cfg, tokenizer, embedder) -> ESimCSE:
        return cls(tokenizer, embedder, cfg.temperature, dup_rate=cfg.dup_rate, momentum=cfg.momentum,
                   queue_size=int(round(cfg.queue_ratio * cfg.batch_size)), seed=cfg.seed,
                   fixed_repetition=cfg.fixed_repetition)

    def repeat(self, ids: list[int], step: int, index: int) -> list[int]:
        """A fresh draw every step, or (``fixed_repetition``, the official code) one draw per sentence."""
        key = index if self.fixed_repetition else (step, index)
        return repeat_tokens(ids, self.dup_rate, random.Random(f"{self.seed}-{key}"), special_ids=self.special_ids)

    def collate(self, examples: list[tuple[int, list[int]]], step: int) -> dict:
        """``examples`` are (sentence index, token ids)."""
        originals = [ids for _, ids in examples]
        repeated = [self.repeat(ids, step, index) for index, ids in examples]
        return {"online": self.pad(originals + repeated), "momentum": self.pad(originals)}

    def embed(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sentences, their repetitions, the queue as it was before this batch); the momentum
        embeddings of the global batch then join the queue."""
        z1, z2 = model(**batch["online"]).chunk(2)
        queued = self.queue.embeddings.to(z1.device)
        self.queue.push(gather_no_grad(self.momentum_encoder(**batch["momentum"])))
        return z1, z2, queued

    def loss_from_embeddings(self, z1: torch.Tensor, z2: torch.Tensor, queued: torch.Tensor) -> torch.Tensor:
        logits = cosine_matrix(z1, gather_with_grad(z2))                       # (n, N), targets at rank*n + i
        if len(queued):
            logits = torch.cat([logits, cosine_matrix(z1, queued)], dim=1)      # (n, N + queue)
        return info_nce(logits / self.temperature)

    def after_step(self, model: nn.Module) -> None:
        self.momentum_encoder.update(model)

    def extra_state(self) -> dict:
        return {"queue": self.queue.state_dict(), "momentum_encoder": self.momentum_encoder.state()}

    def load_extra_state(self, state: dict) -> None:
        self.queue.load_state_dict(state["queue"])
        self.momentum_encoder.load_state(state["momentum_encoder"])
