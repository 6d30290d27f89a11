"""SimCSE's optional auxiliary masked-language-modelling loss (``--do-mlm``, weight ``mlm_weight``).

BERT's masking (15% of the non-special tokens; of those 80% [MASK], 10% a random token, 10% kept)
and a fresh prediction head (dense + GELU + LayerNorm + decoder), as SimCSE's ``lm_head``."""

from __future__ import annotations

import copy

import torch

IGNORE = -100


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, special_ids: list[int], mask_id: int,
                vocab_size: int, probability: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked input ids, labels with IGNORE where nothing is to be predicted). Uses torch's global RNG."""
    candidates = attention_mask.bool() & ~torch.isin(input_ids, torch.tensor(special_ids, device=input_ids.device))
    chosen = candidates & (torch.rand(input_ids.shape, device=input_ids.device) < probability)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
    draw = torch.rand(input_ids.shape, device=input_ids.device)
    masked = torch.where(chosen & (draw < 0.8), torch.full_like(input_ids, mask_id), input_ids)
    random_tokens = torch.randint(vocab_size, input_ids.shape, device=input_ids.device)
    masked = torch.where(chosen & (draw >= 0.8) & (draw < 0.9), random_tokens, masked)
    return masked, labels


class MaskedLMAuxiliary:
    """Wraps the training model for an objective: each call also runs the masked copies of its inputs
    and keeps that MLM loss in ``self.loss`` (the objectives stay unaware of it)."""

    def __init__(self, model, tokenizer, probability: float = 0.15):
        self.model = model
        self.special_ids = list(tokenizer.all_special_ids)
        self.mask_id = tokenizer.mask_token_id
        self.vocab_size = len(tokenizer)
        self.probability = probability
        self.loss = None

    def wrapping(self, model) -> MaskedLMAuxiliary:
        """The same masking around ``model``, with a fresh ``loss`` (one per training step)."""
        other = copy.copy(self)
        other.model, other.loss = model, None
        return other

    def __call__(self, **inputs):
        masked, labels = mask_tokens(inputs["input_ids"], inputs["attention_mask"], self.special_ids,
                                     self.mask_id, self.vocab_size, self.probability)
        vectors, self.loss = self.model(**inputs, mlm_input_ids=masked, mlm_labels=labels)
        return vectors
