"""Runtime: where and how computation runs (devices, precision, processes) and the collectives
every multi-process feature shares. Imports only ``errors``.
Tests: tests/test_distributed.py, tests/test_index_sharded.py."""
