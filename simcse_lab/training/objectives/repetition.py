"""ESimCSE's word repetition on subword tokens: a few random tokens duplicated in place.

So the positive differs in length from its anchor while keeping its meaning.

The number of duplicated tokens is drawn from U[0, max(2, int(dup_rate * L))] (L = tokens between
[CLS] and [SEP]); the chosen positions are sampled without replacement; the special tokens at both
ends are never repeated.
"""

from __future__ import annotations

import random


def repeat_tokens(ids: list[int], dup_rate: float, rng: random.Random, specials: int = 1) -> list[int]:
    """``ids`` with some inner tokens written twice. ``specials`` tokens at each end stay untouched."""
    body = ids[specials: len(ids) - specials] if specials else list(ids)
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
    return list(ids[:specials]) + out + list(ids[len(ids) - specials:]) if specials else out
