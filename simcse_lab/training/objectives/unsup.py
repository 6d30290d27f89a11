"""Unsupervised SimCSE: each sentence twice in one forward pass; dropout makes the two views differ.

InfoNCE over cosine / τ: each local sentence's first view against the second views of the global
batch, the other sentences being the negatives."""

from __future__ import annotations

import torch

from simcse_lab.runtime.distributed import gather_with_grad
from simcse_lab.training.objectives.base import Objective, cosine_matrix, info_nce, register


@register("unsup")
class UnsupSimCSE(Objective):
    def collate(self, examples: list[list[int]], step: int) -> dict:
        return self.pad(examples + examples)  # rows i and i + N: the same sentence

    def embed(self, model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return model(**batch).chunk(2)  # two dropout views, (n, d) each

    def loss_from_embeddings(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        logits = cosine_matrix(z1, gather_with_grad(z2)) / self.temperature  # (n, N)
        return info_nce(logits)
