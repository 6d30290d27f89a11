"""No compute on padding, without more kernels: a batch's sentences packed end to end into fewer rows.

A padded batch runs every sentence at the longest one's width. Packing puts several sentences into one row
(first-fit by decreasing length into rows of ``width`` positions), with a block-diagonal attention mask so
that a token attends only to its own sentence, position ids restarting for each sentence (at 0, or at the
family's first position: ``padding_idx + 1`` for RoBERTa), and each
sentence's token type ids. The sentence vectors are then read off each sentence's own span (its first
position for [CLS], the mean of its span for the mean poolers) and put back in the batch's row order.

Why the result is the same function of the weights: everything in a BERT layer but attention is per
position (embeddings, projections, LayerNorm, GELU, dropout), and attention is confined to the sentence by
the mask; a masked score's weight is exactly 0. Leftover positions at the end of a row attend only to
themselves (a row of the mask with nothing allowed would give NaN) and are read by nothing. With dropout
off, packed and padded vectors agree to float rounding (tests/modeling/test_packing.py).

Compared with length-sorted chunks (:mod:`simcse_lab.modeling.length_chunks`) the encoder runs once, as one
batch, so the number of kernels (and of thread fork/joins) stays that of the padded batch, while the
positions run drop to the real tokens plus a little slack; attention runs over the packed width, which for
short sentences is a small part of the work (eval/step_changes.md measures both).
"""

from __future__ import annotations

import torch

from simcse_lab.modeling.length_chunks import row_extents
from simcse_lab.modeling.pooling import NEEDS_HIDDEN_STATES


def pack_rows(lengths: list[int], width: int) -> list[list[int]]:
    """Rows of sentence indices, first fit by decreasing length into rows of ``width`` positions (a sentence
    longer than ``width`` gets a row of its own)."""
    rows: list[list[int]] = []
    free: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, room in enumerate(free):
            if lengths[i] <= room:
                rows[r].append(i)
                free[r] -= lengths[i]
                break
        else:
            rows.append([i])
            free.append(max(width, lengths[i]) - lengths[i])
    return rows


def is_prefix_mask(attention_mask: torch.Tensor) -> bool:
    """Every row attends to a prefix (right padding): what packing needs to know each sentence's tokens."""
    return bool((attention_mask.sum(1) == row_extents(attention_mask)).all())


def packed_forward(backbone, inputs: dict, pooler: str, pool_fn, width: int, first_position: int = 0) -> torch.Tensor:
    """Sentence vectors (rows, dim) of the right-padded batch ``inputs``, computed packed (module docstring).
    ``pool_fn(pooler, batch, last_hidden, hidden_states)`` pools a padded (sentences, positions) layout; rows are
    packed up to ``width`` positions (or the longest sentence, if longer). Each sentence's position ids are
    ``first_position + arange(n)``: 0 for BERT, ``padding_idx + 1`` for RoBERTa's offset positions (the
    family's :attr:`~simcse_lab.modeling.families.base.Family.packing_position`)."""
    mask = inputs["attention_mask"]
    lengths = mask.sum(1).tolist()
    rows = pack_rows(lengths, max(width, max(lengths)))
    row_width = max(sum(lengths[i] for i in row) for row in rows)
    device = mask.device
    n_rows = len(rows)
    ids = torch.zeros(n_rows, row_width, dtype=inputs["input_ids"].dtype, device=device)
    types = torch.zeros_like(ids)
    positions = torch.zeros_like(ids)
    segment = torch.full((n_rows, row_width), -1, dtype=torch.long, device=device)
    # where each sentence's tokens land: (packed row, first position)
    place = [(0, 0)] * len(lengths)
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            n = lengths[i]
            ids[r, start:start + n] = inputs["input_ids"][i, :n]
            if "token_type_ids" in inputs:
                types[r, start:start + n] = inputs["token_type_ids"][i, :n]
            positions[r, start:start + n] = first_position + torch.arange(n, device=device)
            segment[r, start:start + n] = i
            place[i] = (r, start)
            start += n
    same = segment[:, :, None] == segment[:, None, :]
    leftover = segment < 0
    allowed = ((same & ~leftover[:, :, None]) | torch.diag_embed(leftover))[:, None]  # leftovers see only themselves
    if getattr(backbone.config, "_attn_implementation", "sdpa") != "sdpa":  # eager attention adds a float mask
        allowed = torch.zeros(allowed.shape, device=device).masked_fill(~allowed, torch.finfo(torch.float32).min)
    packed = {"input_ids": ids, "attention_mask": allowed, "position_ids": positions}
    if "token_type_ids" in inputs:
        packed["token_type_ids"] = types
    out = backbone(**packed, output_hidden_states=pooler in NEEDS_HIDDEN_STATES)

    # unpack into the padded (sentences, positions) layout the poolers read: one gather per tensor
    padded_width = mask.shape[1]
    offsets = torch.arange(padded_width, device=device)
    starts = torch.tensor([r * row_width + s for r, s in place], device=device)
    flat_index = (starts[:, None] + offsets[None, :]).clamp(max=n_rows * row_width - 1)

    def unpack(hidden: torch.Tensor) -> torch.Tensor:
        flat = hidden.reshape(n_rows * row_width, hidden.shape[-1])
        return flat[flat_index.reshape(-1)].view(len(lengths), padded_width, hidden.shape[-1])

    hidden_states = tuple(unpack(h) for h in out.hidden_states) if out.hidden_states is not None else None
    return pool_fn(pooler, inputs, unpack(out.last_hidden_state), hidden_states)
