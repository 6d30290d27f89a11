"""Data: the dataset registry (names, files, checksums, fetching) and the strict readers of the field's
file formats. Imports nothing else of simcse-lab but ``errors`` and ``io``.
Tests: tests/test_registry.py, tests/test_readers.py."""
