"""Token-level degeneration on synthetic embedding matrices with a planted frequency-norm relation."""

import numpy as np
import pytest

from simcse_lab.analysis.degeneration import analyze_tokens, bucket_names, knn_distance, token_frequencies


def planted(v=400, d=8, seed=0):
    rng = np.random.default_rng(seed)
    counts = np.zeros(v, dtype=np.int64)
    counts[: v - 100] = (1000 / np.arange(1, v - 99)).astype(np.int64) + 1  # Zipf; the last 100 never seen
    norms = 1.0 + np.arange(v) / v * 4  # rarer tokens sit farther from the origin
    direction = rng.standard_normal((v, d))
    emb = direction / np.linalg.norm(direction, axis=1, keepdims=True) * norms[:, None]
    return emb, counts


def test_buckets_recover_planted_relation():
    emb, counts = planted()
    r = analyze_tokens(emb, counts, exclude_ids=[0, 1], k=3, rank_edges=(50, 150), sample_per_bucket=40)
    assert r["vocab_analysed"] == 398 and r["excluded_special_tokens"] == 2
    assert r["unseen_share"] == pytest.approx(100 / 398)
    assert r["spearman_count_norm"] < -0.9
    b = r["buckets"]
    assert list(b) == bucket_names([50, 150]) == ["rank 1-50", "rank 51-150", "rank 151+", "unseen"]
    assert b["rank 1-50"]["tokens"] == 50 and b["unseen"]["tokens"] == 100
    assert b["rank 1-50"]["mean_norm"] < b["rank 51-150"]["mean_norm"] < b["unseen"]["mean_norm"]
    assert r["_arrays"]["projection"].shape == (398, 2)


def test_knn_distance_matches_brute_force():
    emb = np.random.default_rng(1).standard_normal((60, 5)).astype(np.float32)
    query = np.array([0, 7, 59])
    d = np.linalg.norm(emb[:, None] - emb[None], axis=2)
    np.fill_diagonal(d, np.inf)
    expected = np.sort(d[query], axis=1)[:, :4].mean(axis=1)
    assert np.allclose(knn_distance(emb, query, 4), expected, atol=1e-4)


def test_token_frequencies_counts_with_the_tokenizer(tiny_bert):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    counts = token_frequencies(tok, ["the cat", "the dog the"], tok.vocab_size)
    the = tok.convert_tokens_to_ids("the")
    assert counts[the] == 3 and counts.sum() == 5
    assert counts[tok.cls_token_id] == 0  # no special tokens added
