"""Data: the dataset registry (names, files, checksums, fetching), the strict readers of the field's
formats, the one `--data` spec (registry names, local files, saved and hub datasets) and its column choice,
the rows every command reads, SentEval's transfer data sets in SentEval's layout and order, and training data at corpus scale (tokenised, cached, memory-mapped, keyed by a
content hash read once per file state; a long row cut before tokenising where that keeps its tokens), and a
corpus profiled as a tokenizer sees it (`data inspect`).
Tests: tests/data/test_registry.py, tests/data/test_readers.py, tests/data/test_sources.py, tests/data/test_data_fetch.py,
tests/data/test_training_data.py, tests/data/test_content_hash.py, tests/evaluation/test_transfer.py, tests/data/test_data_inspect.py."""
