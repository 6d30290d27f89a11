"""Supervised SimCSE on (anchor, entailment, contradiction) triplets: the anchor's entailment is its
positive; every other positive and every hard negative of the (global) batch is a negative.
``hard_negative_weight`` is added, as a log-weight, to each anchor's own hard-negative logit (SimCSE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from simcse_lab.runtime.distributed import gather_with_grad
from simcse_lab.training.objectives import cosine_matrix, inputs


class SupSimCSE(nn.Module):
    def __init__(self, tokenizer, temperature: float = 0.05, hard_negative_weight: float = 0.0):
        super().__init__()
        self.pad_id = tokenizer.pad_token_id
        self.with_types = "token_type_ids" in tokenizer.model_input_names
        self.temperature = temperature
        self.hard_negative_weight = hard_negative_weight

    def collate(self, examples: list[tuple[list[int], list[int], list[int]]], step: int) -> dict:
        anchors, positives, negatives = (list(column) for column in zip(*examples))
        return inputs(anchors + positives + negatives, self.pad_id, self.with_types)  # one pass of 3N rows

    def forward(self, model, batch: dict) -> torch.Tensor:
        z1, z2, z3 = (gather_with_grad(z) for z in model(**batch).chunk(3))
        positives = cosine_matrix(z1, z2) / self.temperature        # (N, N), targets on the diagonal
        hard = cosine_matrix(z1, z3) / self.temperature             # (N, N)
        hard = hard + self.hard_negative_weight * torch.eye(len(z1), device=hard.device)
        logits = torch.cat([positives, hard], dim=1)                # (N, 2N)
        labels = torch.arange(len(z1), device=logits.device)
        return F.cross_entropy(logits, labels)
