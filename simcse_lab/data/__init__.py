"""Data: the dataset registry (names, files, checksums, fetching), the strict readers of the field's
formats, and the one NAME[:SPLIT]-or-path spec through which every command reads data.
Tests: tests/test_registry.py, tests/test_readers.py, tests/test_sources.py, tests/test_data_fetch.py."""
