"""Training objectives, one per module. Each objective ``collate``s a list of pretokenised examples
into model inputs and computes its loss in ``forward(model, batch)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from simcse_lab.modeling.encoder import pad_batch

OBJECTIVES = ("unsup", "sup", "esimcse")


def cosine_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(len(a), len(b)) cosine similarities, computed in fp32."""
    return F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T


def inputs(token_ids: list[list[int]], pad_id: int, with_types: bool = True) -> dict:
    """Dynamically padded model inputs (token_type_ids all 0, as for single sentences)."""
    batch = pad_batch(token_ids, pad_id, [[0] * len(ids) for ids in token_ids] if with_types else None)
    return batch


def build_objective(name: str, cfg, tokenizer, embedder):
    from simcse_lab.errors import UserError

    if name == "unsup":
        from simcse_lab.training.objectives.unsup import UnsupSimCSE
        return UnsupSimCSE(tokenizer, cfg.temperature)
    if name == "sup":
        from simcse_lab.training.objectives.sup import SupSimCSE
        return SupSimCSE(tokenizer, cfg.temperature, cfg.hard_negative_weight)
    if name == "esimcse":
        from simcse_lab.training.objectives.esimcse import ESimCSE
        return ESimCSE(tokenizer, embedder, cfg.temperature, dup_rate=cfg.dup_rate, momentum=cfg.momentum,
                       queue_size=int(round(cfg.queue_ratio * cfg.batch_size)), seed=cfg.seed,
                       fixed_repetition=cfg.fixed_repetition)
    raise UserError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
