"""SimCSE's poolers: how a sentence vector is read off an encoder's outputs.

- ``cls``: the [CLS] vector passed through an MLP head (dense + tanh: SimCSE's MLP, or the backbone's
  own trained pooler layer);
- ``cls_before_pooler``: the raw [CLS] vector of the last layer;
- ``avg``: mean of the last layer over real (non-padding) tokens;
- ``avg_first_last``: mean over tokens of the average of the first transformer layer and the last;
- ``avg_top2``: mean over tokens of the average of the last two layers.

([CLS] is the backbone family's sentence token, at the position its family declares; a family without one,
such as T5, takes only the mean poolers: :mod:`simcse_lab.modeling.families`.)

In simcse-lab "pooler" always means one of these names. A sentence-transformers directory run through
its own modules has no SimCSE pooler; results record it as ``OWN_MODULES``. This module needs no torch
at import time (the tensors come from the caller), so a config can check a pooler name without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simcse_lab.errors import UserError

if TYPE_CHECKING:
    import torch

POOLERS = ("cls", "cls_before_pooler", "avg", "avg_first_last", "avg_top2")
NEEDS_HIDDEN_STATES = ("avg_first_last", "avg_top2")  # they read layers other than the last
OWN_MODULES = "modules"  # the "pooler" recorded for a sentence-transformers directory's own modules


def check_pooler(pooler: str, where: str = "") -> str:
    """``pooler`` if it is a SimCSE pooler name, else a one-line UserError (``where`` says whose)."""
    if pooler not in POOLERS:
        raise UserError(f"unknown pooler {pooler!r}{where}; choose from {', '.join(POOLERS)}")
    return pooler


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def pool(pooler: str, batch, last_hidden: torch.Tensor, hidden_states: tuple[torch.Tensor, ...] | None = None,
         mlp: torch.nn.Module | None = None, *, summary: int | None) -> torch.Tensor:
    """Sentence vectors (batch, dim) from one forward pass.

    ``batch`` holds the model inputs (``attention_mask``, ``input_ids``, ...: a pooler may read any position);
    ``hidden_states`` is the tuple from ``output_hidden_states=True`` (index 0 = embedding layer, index 1 =
    first transformer layer); ``mlp`` is the dense+tanh head that ``cls`` applies; ``summary`` is the position
    of the family's sentence token ([CLS], <s>; :attr:`Family.summary_token`), None where it has none.
    """
    attention_mask = batch["attention_mask"]
    if pooler in ("cls", "cls_before_pooler"):
        if summary is None:
            raise ValueError(f"pooler {pooler!r} needs a sentence token, which this backbone family does not have")
        if pooler == "cls_before_pooler":
            return last_hidden[:, summary]
        if mlp is None:
            raise ValueError("pooler 'cls' needs an MLP head (dense + tanh)")
        return mlp(last_hidden[:, summary])
    if pooler == "avg":
        return masked_mean(last_hidden, attention_mask)
    check_pooler(pooler)
    if hidden_states is None:
        raise ValueError(f"pooler {pooler!r} needs output_hidden_states=True")
    if pooler == "avg_first_last":
        pair = (hidden_states[1], hidden_states[-1])
    else:
        pair = (hidden_states[-2], hidden_states[-1])
    return masked_mean((pair[0] + pair[1]) / 2.0, attention_mask)
