"""ESimCSE's word repetition on subword tokens: a few random tokens duplicated in place.

So the positive differs in length from its anchor while keeping its meaning.

The number of duplicated tokens is drawn from U[0, max(2, int(dup_rate * L))] (L = the tokens between the
special tokens at the two ends); the chosen positions are sampled without replacement; the special tokens at
either end are never repeated. Which tokens those are is read per row from the tokenizer's special ids
(:func:`edge_specials`): [CLS] ... [SEP] for BERT, <s> ... </s> for RoBERTa, only a trailing </s> for T5,
none for GPT-2; without them, one at each end is assumed.
"""

from __future__ import annotations

import random
from collections.abc import Collection


def edge_specials(ids: list[int], special_ids: Collection[int]) -> tuple[int, int]:
    """(leading, trailing) counts of special tokens at the two ends of ``ids`` (never overlapping)."""
    lead = 0
    while lead < len(ids) and ids[lead] in special_ids:
        lead += 1
    trail = 0
    while trail < len(ids) - lead and ids[len(ids) - 1 - trail] in special_ids:
        trail += 1
    return lead, trail


def repeat_tokens(ids: list[int], dup_rate: float, rng: random.Random, specials: int = 1,
                  special_ids: Collection[int] | None = None) -> list[int]:
    """``ids`` with some inner tokens written twice. The special tokens at the ends stay untouched: those in
    ``special_ids`` when given, else ``specials`` tokens at each end."""
    lead, trail = edge_specials(ids, special_ids) if special_ids is not None else (specials, specials)
    body = ids[lead: len(ids) - trail]
    length = len(body)
    if length == 0:
        return list(ids)
    dup_len = rng.randint(0, max(2, int(dup_rate * length)))
    chosen = set(rng.sample(range(length), min(dup_len, length)))
    out = []
    for i, token in enumerate(body):
        out.append(token)
        if i in chosen:
            out.append(token)
    return list(ids[:lead]) + out + list(ids[len(ids) - trail:])
