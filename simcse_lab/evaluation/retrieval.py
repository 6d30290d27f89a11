"""Retrieval evaluation on labelled sets built from the STS data, and on a user's query/positive pairs.

For each task (STS-B, SICK-R) and split: the corpus is every distinct sentence of the split; the
queries are the first sentences of the pairs with gold score >= ``threshold`` (``RELEVANT_GOLD``, 4 of 5); a query's
relevant items are all its partners in such pairs. Search is exact (cosine, faiss flat) and the query
itself is excluded from its results. Reported (x100): recall@1/5/10 (the fraction of a query's
relevant sentences found in its top k, averaged over queries) and MRR@10 (1/rank of the first
relevant sentence within the top 10, else 0).

A user's (query, positive) pairs (:func:`score_query_pairs`): the corpus is every distinct positive, each
distinct query is asked once and all its positives are relevant; the same metrics.
"""

from __future__ import annotations

import time

import numpy as np

from simcse_lab.data import sources
from simcse_lab.errors import UserError
from simcse_lab.evaluation.sts import RELEVANT_GOLD
from simcse_lab.evaluation.tables import text_table
from simcse_lab.evaluation.vectors import l2_normalize
from simcse_lab.modeling.sentence_encoder import SentenceEncoder

TASKS = ("stsb", "sickr")
KS = (1, 5, 10)


def labelled_set(pairsets, threshold: float = RELEVANT_GOLD) -> tuple[list[str], list[int], list[set[int]]]:
    """(corpus, query ids, relevant id sets) from PairSets."""
    corpus: dict[str, int] = {}
    for ps in pairsets:
        for s in list(ps.sent1) + list(ps.sent2):
            corpus.setdefault(s, len(corpus))
    relevant: dict[int, set[int]] = {}
    for ps in pairsets:
        for a, b, score in zip(ps.sent1, ps.sent2, ps.scores):
            if score >= threshold and a != b:
                relevant.setdefault(corpus[a], set()).add(corpus[b])
    queries = sorted(relevant)
    return list(corpus), queries, [relevant[q] for q in queries]


def rank_metrics(ranked: np.ndarray, relevant: list[set[int]], ks=KS) -> dict:
    """recall@k and MRR@10 (x100) for ranked id lists (one row per query, self already removed)."""
    out = {f"recall@{k}": 0.0 for k in ks}
    mrr = 0.0
    for row, rel in zip(ranked, relevant):
        for k in ks:
            out[f"recall@{k}"] += len(rel.intersection(row[:k].tolist())) / len(rel)
        for rank, item in enumerate(row[:10], start=1):
            if item in rel:
                mrr += 1.0 / rank
                break
    n = max(len(relevant), 1)
    result = {key: 100.0 * value / n for key, value in out.items()}
    result["mrr@10"] = 100.0 * mrr / n
    return result


def search_excluding_self(vectors: np.ndarray, queries: list[int], k: int) -> np.ndarray:
    ids = search(vectors, vectors[queries], k + 1)
    return np.array([[i for i in row if i != q and i >= 0][:k] for row, q in zip(ids, queries)])


def score_sts_pairs(encoder: SentenceEncoder, pairs, where: str, threshold: float = RELEVANT_GOLD) -> dict:
    """recall@k and MRR@10 (x100) of one STS PairSet's pairs with gold >= ``threshold``, its query and corpus
    counts; the corpus is every distinct sentence of the pairs, the query itself excluded from its results."""
    corpus, queries, relevant = labelled_set([pairs], threshold)
    if not queries:
        raise UserError(f"{where}: no pairs with gold >= {threshold}")
    ranked = search_excluding_self(encoder.encode(corpus), queries, max(KS))
    return {**rank_metrics(ranked, relevant), "queries": len(queries), "corpus": len(corpus)}


def query_set(pairs: list[tuple[str, str]]) -> tuple[list[str], list[str], list[set[int]]]:
    """(corpus, queries, relevant id sets) from (query, positive) pairs: the corpus is every distinct positive,
    each distinct query is asked once and its relevant items are all its positives."""
    corpus: dict[str, int] = {}
    relevant: dict[str, set[int]] = {}
    for query, positive in pairs:
        relevant.setdefault(query, set()).add(corpus.setdefault(positive, len(corpus)))
    return list(corpus), list(relevant), list(relevant.values())


def search(corpus_vectors: np.ndarray, query_vectors: np.ndarray, k: int) -> np.ndarray:
    """The ids of the ``k`` nearest corpus rows (cosine, exact faiss flat search) of each query, nearest first."""
    import faiss  # optional heavy dependency: loaded only when searching

    corpus_vectors = l2_normalize(corpus_vectors, dtype=np.float32)
    index = faiss.IndexFlatIP(corpus_vectors.shape[1])
    index.add(corpus_vectors)
    _, ids = index.search(l2_normalize(query_vectors, dtype=np.float32), min(k, len(corpus_vectors)))
    return ids


def score_query_pairs(encoder: SentenceEncoder, pairs: list[tuple[str, str]]) -> dict:
    """recall@k and MRR@10 (x100) of (query, positive) pairs against the corpus of all positives, and the
    query and corpus counts. Queries and positives are encoded in one pass, each distinct sentence once."""
    corpus, queries, relevant = query_set(pairs)
    sentences = sorted(set(corpus) | set(queries))
    vectors = encoder.encode(sentences)
    row = {s: i for i, s in enumerate(sentences)}
    ranked = search(vectors[[row[s] for s in corpus]], vectors[[row[s] for s in queries]], max(KS))
    return {**rank_metrics(ranked, relevant), "queries": len(queries), "corpus": len(corpus)}


def evaluate(encoder: SentenceEncoder, tasks=TASKS, split: str = "test", threshold: float = RELEVANT_GOLD) -> dict:
    tasks = list(dict.fromkeys(tasks))
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise UserError(f"unknown retrieval task(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(TASKS)}")
    results = {}
    start = time.perf_counter()
    for task in tasks:
        results[task] = score_sts_pairs(encoder, sources.resolve(task, split).rows, f"{task} {split}", threshold)
    metrics = [k for k in next(iter(results.values())) if k.startswith(("recall", "mrr"))]
    return {**encoder.describe(), "split": split, "threshold": threshold, "scale": "x 100", "tasks": results,
            "avg": {m: float(np.mean([r[m] for r in results.values()])) for m in metrics},
            "seconds": round(time.perf_counter() - start, 1)}


def format_table(results: list[dict], names: list[str] | None = None) -> str:
    """One block per task and one for the average: recall@k and MRR@10 (x100), one row per result."""
    names = names or [f"{r['model']} [{r['pooler']}]" for r in results]
    metrics = list(results[0]["avg"])
    blocks = []
    for task in list(results[0]["tasks"]) + ["avg"]:
        rows = [[name] + [f"{(r['avg'] if task == 'avg' else r['tasks'][task])[m]:.2f}" for m in metrics]
                for name, r in zip(names, results)]
        blocks.append(text_table([task] + metrics, rows, width=9, min_first=12))
    return "\n\n".join(blocks)
