"""Token-level representation degeneration (Gao et al. 2019; Li et al. 2020, BERT-flow).

Token frequencies are counted with the model's own tokenizer over a corpus; the input embedding
matrix is then described by frequency bucket (by frequency rank among the tokens seen in the
corpus, plus a bucket of never-seen tokens): mean L2 norm, mean Euclidean distance to the k nearest
neighbours in the whole vocabulary, mean cosine between tokens of the bucket, and mean cosine to the
global mean direction. Special tokens ([CLS], [SEP], [PAD], ...) are left out.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from simcse_lab.evaluation.isotropy import mean_cosine
from simcse_lab.errors import UserError
from simcse_lab.evaluation.vectors import l2_normalize

DEFAULT_RANK_EDGES = (100, 1000, 5000)
_CHUNK = 512


def token_frequencies(tokenizer, sentences: list[str], vocab_size: int) -> np.ndarray:
    """Occurrences of each token id in ``sentences`` (no special tokens added), length ``vocab_size``."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in range(0, len(sentences), 4096):
        enc = tokenizer(list(sentences[start: start + 4096]), add_special_tokens=False,
                        return_attention_mask=False, return_token_type_ids=False)
        ids = np.fromiter((i for row in enc["input_ids"] for i in row), dtype=np.int64)
        ids = ids[ids < vocab_size]
        counts += np.bincount(ids, minlength=vocab_size)
    return counts


def knn_distance(emb: np.ndarray, query: np.ndarray, k: int) -> np.ndarray:
    """Mean Euclidean distance from each ``emb[query]`` row to its k nearest other rows of ``emb``."""
    emb = np.asarray(emb, dtype=np.float32)
    sq = np.einsum("ij,ij->i", emb, emb)
    out = np.empty(len(query), dtype=np.float64)
    for start in range(0, len(query), _CHUNK):
        idx = query[start: start + _CHUNK]
        d2 = sq[idx, None] + sq[None, :] - 2.0 * emb[idx] @ emb.T
        d2[np.arange(len(idx)), idx] = np.inf  # not its own neighbour
        near = np.partition(d2, k - 1, axis=1)[:, :k]
        out[start: start + len(idx)] = np.sqrt(np.maximum(near, 0.0)).mean(axis=1)
    return out


def bucket_names(edges) -> list[str]:
    names, lo = [], 1
    for hi in edges:
        names.append(f"rank {lo}-{hi}")
        lo = hi + 1
    names.append(f"rank {lo}+")
    return names + ["unseen"]


def frequency_buckets(counts: np.ndarray, edges: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(frequency rank of each token, 1 = most frequent; its bucket: an index into ``bucket_names(edges)``, the
    last one for tokens never seen)."""
    order = np.argsort(-counts, kind="stable")
    rank = np.empty(len(counts), dtype=np.int64)
    rank[order] = np.arange(1, len(counts) + 1)
    bucket = np.full(len(counts), len(edges) + 1)  # unseen
    bounds = [0] + edges + [np.inf]
    for b in range(len(bounds) - 1):
        bucket[(counts > 0) & (rank > bounds[b]) & (rank <= bounds[b + 1])] = b
    return rank, bucket


def analyze_tokens(embeddings: np.ndarray, counts: np.ndarray, exclude_ids=(), k: int = 10,
                   rank_edges=DEFAULT_RANK_EDGES, sample_per_bucket: int = 1000, seed: int = 0) -> dict:
    """Describe the embedding matrix by frequency bucket.

    Returns the JSON-ready summary (``"buckets"``, ``"unseen_share"``, ``"spearman_count_norm"``, ...)
    and, under ``"_arrays"``, per-token arrays for the figures (not meant for JSON)."""
    emb = np.asarray(embeddings, dtype=np.float32)
    counts = np.asarray(counts)
    if emb.shape[0] != counts.shape[0]:
        raise ValueError(f"{emb.shape[0]} embeddings but {counts.shape[0]} counts")
    keep = np.ones(len(emb), dtype=bool)
    keep[[i for i in exclude_ids if 0 <= i < len(emb)]] = False
    ids = np.flatnonzero(keep)
    emb, counts = emb[ids], counts[ids]
    if len(emb) <= k:
        raise UserError(f"token k-NN: need more than k={k} tokens (--knn), the vocabulary analysed has {len(emb)}")
    norms = np.linalg.norm(emb, axis=1).astype(np.float64)
    seen = counts > 0
    edges = list(rank_edges)
    names = bucket_names(edges)
    rank, bucket = frequency_buckets(counts, edges)
    mean_dir = emb.astype(np.float64).mean(axis=0)
    mean_dir /= max(np.linalg.norm(mean_dir), 1e-12)
    cos_to_mean = l2_normalize(emb) @ mean_dir
    rng = np.random.default_rng(seed)
    buckets = {}
    for b, name in enumerate(names):
        members = np.flatnonzero(bucket == b)
        if len(members) == 0:
            buckets[name] = {"tokens": 0}
            continue
        sample = members if len(members) <= sample_per_bucket else np.sort(
            rng.choice(members, sample_per_bucket, replace=False))
        buckets[name] = {
            "tokens": int(len(members)),
            "occurrences": int(counts[members].sum()),
            "mean_norm": float(norms[members].mean()),
            "mean_knn_distance": float(knn_distance(emb, sample, k).mean()),
            "knn_sampled_tokens": int(len(sample)),
            "mean_cosine_within": mean_cosine(emb[members]) if len(members) > 1 else None,
            "mean_cosine_to_mean_direction": float(cos_to_mean[members].mean()),
        }
    rho = spearmanr(counts[seen], norms[seen])[0] if seen.sum() > 2 else float("nan")
    xc = emb - emb.mean(axis=0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    return {
        "vocab_analysed": int(len(emb)),
        "excluded_special_tokens": int((~keep).sum()),
        "corpus_tokens": int(counts.sum()),
        "seen_tokens": int(seen.sum()),
        "unseen_share": float(1.0 - seen.mean()),
        "k": k,
        "rank_edges": edges,
        "spearman_count_norm": float(rho),
        "buckets": buckets,
        "_arrays": {"counts": counts, "norms": norms, "rank": rank,
                    "projection": (xc @ vt[:2].T).astype(np.float32)},
    }
