"""Dynamic padding: a list of token id lists becomes one right-padded batch of model inputs.

Shared by inference (length-sorted batches in ``modeling.encoder``) and training (each objective's
``collate``), so both feed the model exactly the same kind of tensors."""

from __future__ import annotations

import torch


def pad_batch(token_ids: list[list[int]], pad_id: int, type_ids: list[list[int]] | None = None) -> dict:
    """Right-pad a list of token id lists to the longest one (dynamic padding)."""
    width = max(len(ids) for ids in token_ids)
    input_ids = torch.full((len(token_ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(token_ids), width), dtype=torch.long)
    for row, ids in enumerate(token_ids):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if type_ids is not None:
        token_type_ids = torch.zeros_like(input_ids)
        for row, ids in enumerate(type_ids):
            token_type_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        batch["token_type_ids"] = token_type_ids
    return batch
