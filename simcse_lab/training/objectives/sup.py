"""Supervised SimCSE on (anchor, entailment, contradiction) triplets.

The anchor's entailment is its positive; every other positive and every hard negative of the
(global) batch is a negative. ``hard_negative_weight`` is added, as a log-weight, to each anchor's own
hard-negative logit (SimCSE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from simcse_lab.runtime.distributed import gather_with_grad, global_targets
from simcse_lab.training.objective_options import OBJECTIVE_OPTIONS
from simcse_lab.training.objectives.base import Objective, cosine_matrix, info_nce, register


@register("sup")
class SupSimCSE(Objective):
    data_columns = 3  # (anchor, entailment, contradiction)
    options = OBJECTIVE_OPTIONS["sup"]  # hard_negative_weight

    def __init__(self, tokenizer, temperature: float = 0.05, hard_negative_weight: float = 0.0):
        super().__init__(tokenizer, temperature)
        self.hard_negative_weight = hard_negative_weight

    @classmethod
    def from_config(cls, cfg, tokenizer, embedder) -> SupSimCSE:
        return cls(tokenizer, cfg.temperature, cfg.hard_negative_weight)

    def collate(self, examples: list[tuple[list[int], list[int], list[int]]], step: int) -> dict:
        anchors, positives, negatives = (list(column) for column in zip(*examples))
        return self.pad(anchors + positives + negatives)  # one pass of 3N rows

    def embed(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return model(**batch).chunk(3)  # anchors, entailments, contradictions

    def loss_from_embeddings(self, z1: torch.Tensor, z2: torch.Tensor, z3: torch.Tensor) -> torch.Tensor:
        positives = cosine_matrix(z1, gather_with_grad(z2)) / self.temperature  # (n, N), targets at rank*n + i
        hard = cosine_matrix(z1, gather_with_grad(z3)) / self.temperature       # (n, N)
        own = F.one_hot(global_targets(len(z1), hard.device), hard.shape[1])    # each anchor's own hard negative
        logits = torch.cat([positives, hard + self.hard_negative_weight * own], dim=1)  # (n, 2N)
        return info_nce(logits)
