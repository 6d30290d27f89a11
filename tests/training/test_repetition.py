"""ESimCSE's word repetition on subword tokens."""

from __future__ import annotations

import random

from simcse_lab.training.objectives.repetition import repeat_tokens


def test_properties_over_many_draws():
    rng = random.Random(0)
    ids = [101] + list(range(1000, 1020)) + [102]  # 20 distinct inner tokens
    lengths = set()
    for _ in range(500):
        out = repeat_tokens(ids, 0.32, rng)
        extra = len(out) - len(ids)
        assert 0 <= extra <= max(2, int(0.32 * 20))      # U[0, max(2, int(dup_rate * L))]
        assert out[0] == 101 and out[-1] == 102          # [CLS]/[SEP] untouched ...
        assert out.count(101) == 1 and out.count(102) == 1  # ... and never repeated
        inner = out[1:-1]
        assert sorted(set(inner)) == ids[1:-1]            # every token kept, order preserved
        assert [t for k, t in enumerate(inner) if k == 0 or inner[k - 1] != t] == ids[1:-1]
        assert all(inner.count(t) <= 2 for t in ids[1:-1])  # a token is duplicated at most once
        lengths.add(extra)
    assert lengths == set(range(0, 7))                    # the whole range is drawn


def test_short_sentences_can_still_get_two_repetitions():
    rng = random.Random(1)
    ids = [101, 5, 6, 102]  # L = 2: max(2, int(0.32 * 2)) = 2
    extras = {len(repeat_tokens(ids, 0.32, rng)) - 4 for _ in range(200)}
    assert extras == {0, 1, 2}


def test_empty_sentence_is_unchanged():
    assert repeat_tokens([101, 102], 0.32, random.Random(0)) == [101, 102]


def test_fresh_draw_per_step_or_fixed(tiny_bert):
    from simcse_lab.modeling.embedder import load_embedder
    from simcse_lab.training.objectives.esimcse import ESimCSE

    tokenizer, embedder = load_embedder(str(tiny_bert), "avg", False)
    ids = [101] + list(range(1000, 1030)) + [102]
    fresh = ESimCSE(tokenizer, embedder)
    assert len({tuple(fresh.repeat(ids, step, 0)) for step in range(20)}) > 1
    assert fresh.repeat(ids, 3, 0) == fresh.repeat(ids, 3, 0)  # deterministic per (step, sentence): resumable
    fixed = ESimCSE(tokenizer, embedder, fixed_repetition=True)
    assert len({tuple(fixed.repeat(ids, step, 0)) for step in range(20)}) == 1
