"""SimCSE's poolers: how a sentence vector is read off an encoder's outputs.

- ``cls``: the [CLS] vector passed through the model's pooler / MLP (dense + tanh), where it has one;
- ``cls_before_pooler``: the raw [CLS] vector of the last layer;
- ``avg``: mean of the last layer over real (non-padding) tokens;
- ``avg_first_last``: mean over tokens of the average of the first transformer layer and the last;
- ``avg_top2``: mean over tokens of the average of the last two layers.
"""

from __future__ import annotations

import torch

POOLERS = ("cls", "cls_before_pooler", "avg", "avg_first_last", "avg_top2")
NEEDS_HIDDEN_STATES = {"avg_first_last", "avg_top2"}


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def pool(pooler: str, attention_mask: torch.Tensor, last_hidden: torch.Tensor,
         hidden_states: tuple[torch.Tensor, ...] | None = None,
         mlp: torch.nn.Module | None = None) -> torch.Tensor:
    """Sentence vectors (batch, dim) from one forward pass.

    ``hidden_states`` is the tuple from ``output_hidden_states=True`` (index 0 = embedding layer,
    index 1 = first transformer layer); ``mlp`` is the dense+tanh head that ``cls`` applies.
    """
    if pooler == "cls":
        if mlp is None:
            raise ValueError("pooler 'cls' needs the model's pooler/MLP head")
        return mlp(last_hidden[:, 0])
    if pooler == "cls_before_pooler":
        return last_hidden[:, 0]
    if pooler == "avg":
        return masked_mean(last_hidden, attention_mask)
    if pooler in NEEDS_HIDDEN_STATES:
        if hidden_states is None:
            raise ValueError(f"pooler {pooler!r} needs output_hidden_states=True")
        if pooler == "avg_first_last":
            pair = (hidden_states[1], hidden_states[-1])
        else:
            pair = (hidden_states[-2], hidden_states[-1])
        return masked_mean((pair[0] + pair[1]) / 2.0, attention_mask)
    raise ValueError(f"unknown pooler {pooler!r}; choose from {', '.join(POOLERS)}")
