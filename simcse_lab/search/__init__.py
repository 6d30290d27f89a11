"""Search: faiss indexes of a corpus (flat, HNSW, IVF-PQ; sharded builds) with a verified manifest,
and querying them. Imports data, runtime, modeling and evaluation.
Tests: tests/test_index.py, tests/test_index_sharded.py."""
