"""Index benchmark: build throughput (from a real `simcse-lab index build` run's manifest), recall@10 of
HNSW / IVF-PQ against exact flat search on the same vectors, and query latency percentiles
(one query at a time: encode + search, and search alone).

    python eval/bench_index.py --index runs/index-wiki-flat --queries 200 --output eval/bench_index/results.json

The flat index holds the exact normalised vectors, so HNSW and IVF-PQ are built from them (no re-encoding).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from simcse_lab.runtime.benchmark import command_line, machine, write_json


def percentiles(values) -> dict:
    ms = np.asarray(values) * 1000.0
    return {f"p{p}": round(float(np.percentile(ms, p)), 3) for p in (50, 90, 99)} | {"mean": round(float(ms.mean()), 3)}


def _query_vectors(flat, queries: list[str]) -> tuple[np.ndarray, list[float]]:
    """The queries encoded one at a time (after a warm-up), normalised; and each one's encoding seconds."""
    flat.encoder.encode(queries[:8])  # warm-up
    encode_times = []
    query_vectors = []
    for q in queries:
        t = time.perf_counter()
        query_vectors.append(flat.encoder.encode([q]))
        encode_times.append(time.perf_counter() - t)
    query_vectors = np.concatenate(query_vectors)
    query_vectors /= np.linalg.norm(query_vectors, axis=1, keepdims=True)
    return query_vectors, encode_times


def _measure_kind(kind: str, flat, vectors: np.ndarray, queries: tuple, exact: np.ndarray) -> dict:
    """Build ``kind`` from the flat index's exact vectors (flat: the index itself), its recall@10 against flat
    search of the ``sample`` queries, and one-at-a-time search latency. ``queries`` = (sample, query vectors,
    their encoding seconds)."""
    from simcse_lab.search.index import new_index, recall_at_k

    sample, query_vectors, encode_times = queries
    if kind == "flat":
        index, params, add_seconds = flat.index, {}, None
    else:
        index, params = new_index(kind, vectors.shape[1], len(vectors))
        t = time.perf_counter()
        if kind == "ivfpq":
            index.train(vectors[: params["train_size"]])
        index.add(vectors)
        add_seconds = time.perf_counter() - t
    _, approx = index.search(sample, 10)
    search_times = []
    for qv in query_vectors:
        t = time.perf_counter()
        index.search(qv[None, :], 10)
        search_times.append(time.perf_counter() - t)
    return {"params": params, "recall_at_10_vs_flat": round(recall_at_k(approx, exact), 4),
            "train_add_seconds": None if add_seconds is None else round(add_seconds, 3),
            "search_ms": percentiles(search_times),
            "end_to_end_ms_p50": round(float(np.percentile(
                (np.asarray(encode_times) + np.asarray(search_times)) * 1000, 50)), 3)}


def main() -> int:
    import faiss

    from simcse_lab.data import registry
    from simcse_lab.search.index import Index

    ap = argparse.ArgumentParser()
    ap.add_argument("--index", required=True, help="a flat index directory")
    ap.add_argument("--queries", type=int, default=200, help="STS-B test sentences used as one-at-a-time queries")
    ap.add_argument("--recall-queries", type=int, default=1000)
    ap.add_argument("--output", required=True)
    args = ap.parse_args()

    flat = Index(args.index)
    m = flat.manifest
    if m["index"] != "flat":
        raise SystemExit("--index must be a flat index (it holds the exact vectors)")
    vectors = flat.index.reconstruct_n(0, flat.index.ntotal)
    rng = np.random.default_rng(0)
    sample = vectors[rng.choice(len(vectors), size=min(args.recall_queries, len(vectors)), replace=False)]
    _, exact = flat.index.search(sample, 10)
    ps = registry.load_split("stsb", "test")
    query_vectors, encode_times = _query_vectors(flat, list(dict.fromkeys(ps.sent1))[: args.queries])
    report = {"command": command_line("eval/bench_index.py", sys.argv[1:]), "machine": machine(),
              "index": args.index, "model": m["model"],
              "precision": m["precision"], "corpus": m["corpus"], "count": m["count"], "dimension": m["dimension"],
              "build": {"flat_sentences_per_second": m["sentences_per_second"], "build_seconds": m["build_seconds"],
                        "encode_seconds": m["encode_seconds"],
                        "note": "from the manifest of the `simcse-lab index build` run that made --index"},
              "query_encode_ms": percentiles(encode_times), "faiss_threads": faiss.omp_get_max_threads(),
              "indexes": {kind: _measure_kind(kind, flat, vectors, (sample, query_vectors, encode_times), exact)
                          for kind in ("flat", "hnsw", "ivfpq")}}
    write_json(args.output, report, indent=2)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
