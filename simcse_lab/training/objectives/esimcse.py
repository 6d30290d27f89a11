"""ESimCSE: the positive is a word-repeated copy of the sentence (both views through dropout), and a
FIFO queue of momentum-encoder embeddings of earlier batches adds negatives."""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn

from simcse_lab.runtime.distributed import gather_no_grad, gather_with_grad
from simcse_lab.training.objectives.momentum import EmbeddingQueue, MomentumEncoder
from simcse_lab.training.objectives import cosine_matrix, inputs
from simcse_lab.training.objectives.repetition import repeat_tokens


class ESimCSE(nn.Module):
    def __init__(self, tokenizer, embedder: nn.Module, temperature: float = 0.05, dup_rate: float = 0.32,
                 momentum: float = 0.995, queue_size: int = 160, seed: int = 42, fixed_repetition: bool = False):
        super().__init__()
        self.pad_id = tokenizer.pad_token_id
        self.with_types = "token_type_ids" in tokenizer.model_input_names
        self.temperature = temperature
        self.dup_rate = dup_rate
        self.seed = seed
        self.fixed_repetition = fixed_repetition
        self.momentum_encoder = MomentumEncoder(embedder, momentum)  # a copy of the pretrained weights
        self.queue = EmbeddingQueue(queue_size, embedder.backbone.config.hidden_size)

    def repeat(self, ids: list[int], step: int, index: int) -> list[int]:
        """A fresh draw every step, or (``fixed_repetition``, the official code) one draw per sentence."""
        key = index if self.fixed_repetition else (step, index)
        return repeat_tokens(ids, self.dup_rate, random.Random(f"{self.seed}-{key}"))

    def collate(self, examples: list[tuple[int, list[int]]], step: int) -> dict:
        """``examples`` are (sentence index, token ids)."""
        originals = [ids for _, ids in examples]
        repeated = [self.repeat(ids, step, index) for index, ids in examples]
        return {"online": inputs(originals + repeated, self.pad_id, self.with_types),
                "momentum": inputs(originals, self.pad_id, self.with_types)}

    def forward(self, model, batch: dict) -> torch.Tensor:
        z1, z2 = model(**batch["online"]).chunk(2)              # sentence, its repetition
        z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
        logits = cosine_matrix(z1, z2)                           # (N, N), positives on the diagonal
        if len(self.queue):
            queued = self.queue.embeddings.to(z1.device)
            logits = torch.cat([logits, cosine_matrix(z1, queued)], dim=1)  # (N, N + queue)
        labels = torch.arange(len(z1), device=logits.device)
        loss = F.cross_entropy(logits / self.temperature, labels)
        self.queue.push(gather_no_grad(self.momentum_encoder(**batch["momentum"])))
        return loss

    def after_step(self, model: nn.Module) -> None:
        self.momentum_encoder.update(model)

    def extra_state(self) -> dict:
        return {"queue": self.queue.state_dict(), "momentum_encoder": self.momentum_encoder.model.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.queue.load_state_dict(state["queue"])
        self.momentum_encoder.model.load_state_dict(state["momentum_encoder"])
