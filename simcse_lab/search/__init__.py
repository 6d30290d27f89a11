"""Search: faiss indexes of a corpus (flat, HNSW, IVF-PQ; sharded builds across processes) with a
verified manifest, and querying them.
Tests: tests/search/test_index.py, tests/integration/test_index_sharded.py, tests/search/test_index_integrity.py."""
