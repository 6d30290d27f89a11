"""Search: faiss indexes of a corpus (flat, HNSW, IVF-PQ; sharded builds across processes) with a
verified manifest, and querying them.
Tests: tests/test_index.py, tests/test_index_sharded.py, tests/test_index_integrity.py."""
