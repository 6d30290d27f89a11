"""Masked next-token prediction (``--objective mntp``), LLM2Vec's adaptation step of a decoder before SimCSE.

A share of each sentence's tokens is masked (``--mlm-probability``, ``--mlm-masking``; LLM2Vec: 0.2 with
80/10/10, or 0.8 all-mask for Mistral) and token i is predicted from position i - 1 by the model's own LM head
(the declared masked-token objective of a decoder family, :data:`~simcse_lab.modeling.families.base.MNTP`); the
loss is the mean cross-entropy over the masked tokens of the batch. No sentence vectors are computed: the
contrastive stage comes after, from the adapted model. The mask token (the tokenizer's, or "_" where it has
none) is in the run's summary (``masked_lm``)."""

from __future__ import annotations

import torch

from simcse_lab.training.mlm import MaskedLMAuxiliary
from simcse_lab.training.objectives.base import Objective, register


@register("mntp")
class MaskedNextTokenPrediction(Objective):
    masked_tokens = True  # trains the masked-token loss itself: the model loads its LM head

    @classmethod
    def from_config(cls, cfg, tokenizer, embedder) -> MaskedNextTokenPrediction:
        objective = cls(tokenizer, cfg.temperature)
        objective.add_mlm(tokenizer, 1.0, MaskedLMAuxiliary.for_run(cfg, tokenizer, embedder))
        return objective

    def collate(self, examples: list[list[int]], step: int) -> dict:
        return self.pad(examples)

    def forward(self, model, batch: dict) -> torch.Tensor:
        return self.mlm.wrapping(model).loss_alone(**batch)
