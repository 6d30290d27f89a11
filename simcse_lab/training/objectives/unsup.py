"""Unsupervised SimCSE: each sentence twice in one forward pass; dropout makes the two views differ.
InfoNCE over cosine / τ, the other sentences of the (global) batch being the negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from simcse_lab.runtime.distributed import gather_with_grad
from simcse_lab.training.objectives import cosine_matrix, inputs


class UnsupSimCSE(nn.Module):
    def __init__(self, tokenizer, temperature: float = 0.05):
        super().__init__()
        self.pad_id = tokenizer.pad_token_id
        self.with_types = "token_type_ids" in tokenizer.model_input_names
        self.temperature = temperature

    def collate(self, examples: list[list[int]], step: int) -> dict:
        return inputs(examples + examples, self.pad_id, self.with_types)  # rows i and i + N: the same sentence

    def forward(self, model, batch: dict) -> torch.Tensor:
        z1, z2 = model(**batch).chunk(2)                      # two dropout views, (N, d) each
        z1, z2 = gather_with_grad(z1), gather_with_grad(z2)  # global batch
        logits = cosine_matrix(z1, z2) / self.temperature     # (N, N): positives on the diagonal
        labels = torch.arange(len(z1), device=logits.device)
        return F.cross_entropy(logits, labels)
