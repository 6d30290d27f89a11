"""Training data at corpus scale: any ``--data`` source becomes a tokenised, memory-mapped Arrow dataset.

A source (see :mod:`simcse_lab.data.spec`) is read row by row by a strict streaming reader (a malformed row
is a ``file:line`` error, never a dropped row), written to Arrow by ``datasets``, tokenised with a batched
``map`` over every available core into compact integer columns (``ids0``, ``ids1``, ``ids2``: uint16 when
the vocabulary fits, else int32) and saved under the cache (``$SIMCSE_LAB_CACHE`` or
``~/.cache/simcse-lab``) in ``tokenized/KEY``. KEY is a fingerprint of the source's content (its sha256, or
the ``datasets`` fingerprint of a saved / hub dataset), the tokenizer's full definition, the maximum length
and the columns, so the same corpus + tokenizer + max length is tokenised once; a later run memory-maps the
result (one Arrow file of large record batches, ``Dataset.from_file``) and the loop reads rows by index. Memory stays bounded by the Arrow writer's
batches, whatever the corpus size: nothing holds every sentence as a Python object.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from simcse_lab.data import registry
from simcse_lab.data.columns import choose_columns
from simcse_lab.data.long_rows import tokenize_bounded
from simcse_lab.data.spec import DataSpec, parse_spec
from simcse_lab.data.streaming import check_string_columns, iter_rows, source_columns
from simcse_lab.errors import UserError

FORMAT_VERSION = 2  # bump when the tokenised layout changes: old cache entries are then simply not found
DATA_FILE = "tokens.arrow"  # the tokenised rows: one Arrow stream file in the entry's directory
# Rows per Arrow record batch of DATA_FILE. Opening the memory-mapped file reads every batch's header, and the
# kernel maps the pages around each one: with datasets' 1,000-row batches (save_to_disk) that made most of a
# 10M-row file resident. 100,000 rows of token ids are a few MB, read whole only when a batch is touched.
RECORD_BATCH_ROWS = 100_000
MIN_ROWS_FOR_PROCESSES = 20_000  # below this, worker start-up costs more than the tokenising it saves


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of everything that decides token ids: the tokenizer class and its full serialised definition."""
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = json.loads(backend.to_str())
        for transient in ("truncation", "padding"):  # set by the last call, not part of the tokenizer
            definition.pop(transient, None)
        h.update(json.dumps(definition, sort_keys=True).encode())
    else:  # a slow tokenizer: its vocabulary and special tokens
        h.update(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode())
        h.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str).encode())
    return h.hexdigest()


def cache_key(source_fingerprint: str, tokenizer, max_length: int, columns: list[str]) -> str:
    payload = json.dumps({"source": source_fingerprint, "tokenizer": tokenizer_fingerprint(tokenizer),
                          "max_length": max_length, "columns": columns, "format": FORMAT_VERSION})
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _tokenize_batch(batch: dict, indices: list[int], tokenizer, columns: list[str], max_length: int,
                    source: str = "", one_row_a_line: bool = False) -> dict:
    """Token ids of a batch of rows; a long row is cut first where that keeps its tokens (data.long_rows)."""
    def where(i: int) -> str:
        return f"{source}:{indices[i] + 1}" if one_row_a_line else f"{source}: row {indices[i]}"

    return {f"ids{i}": tokenize_bounded(tokenizer, batch[c], max_length, where) for i, c in enumerate(columns)}


def _processes(rows: int) -> int | None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores if cores > 1 and rows >= MIN_ROWS_FOR_PROCESSES else None


def _raw_dataset(spec: DataSpec, columns: list[str], workdir: Path, fingerprint: str):
    """The source's text columns as an Arrow dataset (strictly read, streamed to disk); ``fingerprint`` is
    ``spec.fingerprint()``, computed once by the caller."""
    import datasets

    if spec.kind in ("saved", "hub"):
        return spec.open_dataset().select_columns(columns)
    features = datasets.Features({c: datasets.Value("string") for c in columns})
    try:
        ds = datasets.Dataset.from_generator(
            _generate, features=features, cache_dir=str(workdir),
            # a list in gen_kwargs would be split into shards by datasets: the columns travel as a tuple
            gen_kwargs={"spec": spec, "columns": tuple(columns), "fingerprint": fingerprint})
    except datasets.exceptions.DatasetGenerationError as err:
        if isinstance(err.__cause__, UserError):  # our strict reader's file:line error, wrapped by datasets
            raise err.__cause__ from None
        raise
    return ds


def _generate(spec: DataSpec, columns: list[str], fingerprint: str) -> Iterator[dict]:
    # ``fingerprint`` is unused here: it is in gen_kwargs so that datasets' own cache key follows the content
    yield from iter_rows(spec, columns)


def build_tokenized(spec: DataSpec, tokenizer, max_length: int, columns: list[str], cache_root: Path,
                    progress: bool = False):
    """Tokenise ``spec`` into ``cache_root/KEY`` unless it is already there; return the memory-mapped dataset."""
    import datasets

    if not progress:
        datasets.disable_progress_bars()
    fingerprint = spec.fingerprint()
    key = cache_key(fingerprint, tokenizer, max_length, columns)
    final = cache_root / key
    if (final / DATA_FILE).is_file():
        return datasets.Dataset.from_file(str(final / DATA_FILE)), key, True
    cache_root.mkdir(parents=True, exist_ok=True)
    _clean_stale(cache_root)
    work = Path(tempfile.mkdtemp(dir=cache_root, prefix=f".tmp-{key}-{os.getpid()}-"))
    try:
        raw = _raw_dataset(spec, columns, work, fingerprint)
        if spec.kind in ("saved", "hub"):
            check_string_columns(raw, columns, spec.describe())
        wide = len(tokenizer) > 65535
        features = datasets.Features({f"ids{i}": datasets.Sequence(datasets.Value("int32" if wide else "uint16"))
                                      for i in range(len(columns))})
        one_row_a_line = spec.kind in ("txt", "jsonl")  # row i is line i + 1 (a blank line is an error there)
        tokenized = raw.map(_tokenize_batch, batched=True, batch_size=2000, remove_columns=raw.column_names,
                            features=features, num_proc=_processes(len(raw)), with_indices=True,
                            fn_kwargs={"tokenizer": tokenizer, "columns": columns, "max_length": max_length,
                                       "source": spec.describe(), "one_row_a_line": one_row_a_line},
                            cache_file_name=str(work / "tokenized.arrow"), new_fingerprint=key,
                            desc="tokenising")
        _write_large_batches(tokenized, work / "dataset" / DATA_FILE)
        del raw, tokenized
        try:
            os.replace(work / "dataset", final)
        except OSError:  # another process (a rank on another node, a second run) finished the same key first
            if not (final / DATA_FILE).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return datasets.Dataset.from_file(str(final / DATA_FILE)), key, False


def _write_large_batches(dataset, path: Path) -> None:
    """``dataset`` as one Arrow stream file of RECORD_BATCH_ROWS-row record batches (streamed: one batch in memory)."""
    from datasets.arrow_writer import ArrowWriter

    path.parent.mkdir(parents=True)
    with ArrowWriter(path=str(path), features=dataset.features, writer_batch_size=RECORD_BATCH_ROWS) as writer:
        for table in dataset.with_format("arrow").iter(batch_size=RECORD_BATCH_ROWS):
            writer.write_table(table.combine_chunks())  # one record batch, not the map's 1,000-row pieces
        writer.finalize()


def _clean_stale(cache_root: Path) -> None:
    """Remove work directories left by builds that were killed (only our ``.tmp-KEY-PID-`` names, and only
    when that process is gone)."""
    for path in cache_root.glob(".tmp-*-*-*"):
        try:
            pid = int(path.name.split("-")[2])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue


class TrainingExamples(Sequence):
    """The rows of a tokenised dataset in the shape an objective's ``collate`` takes.

    ``examples[i]`` is a token-id list (one column), an ``(i, ids)`` pair (``with_index``, for ESimCSE's
    per-sentence repetition draws) or a tuple of id lists (several columns, e.g. sup's triplets);
    :meth:`take` fetches a whole batch with one Arrow read."""

    def __init__(self, dataset, with_index: bool = False):
        self.dataset = dataset
        self.columns = [c for c in dataset.column_names if c.startswith("ids")]
        self.with_index = with_index

    def __len__(self) -> int:
        return len(self.dataset)

    def _shape(self, index: int, cells: list[list[int]]):
        if len(cells) > 1:
            return tuple(cells)
        return (index, cells[0]) if self.with_index else cells[0]

    def __getitem__(self, index: int):
        row = self.dataset[int(index)]
        return self._shape(int(index), [row[c] for c in self.columns])

    def take(self, indices: list[int]) -> list:
        batch = self.dataset[list(map(int, indices))]
        return [self._shape(int(i), [batch[c][j] for c in self.columns]) for j, i in enumerate(indices)]


def load_training_examples(data: str, tokenizer, max_length: int, needed_columns: int, with_index: bool = False,
                           columns: list[str] | None = None, progress: bool = False,
                           cache_root: Path | None = None) -> TrainingExamples:
    """Parse ``data``, check it before any work, tokenise it (or memory-map the cached result)."""
    spec = parse_spec(data)
    available = source_columns(spec)
    chosen = choose_columns(available, needed_columns, columns, spec.describe())
    root = cache_root or registry.cache_dir() / "tokenized"
    dataset, _, _ = build_tokenized(spec, tokenizer, max_length, chosen, root, progress=progress)
    return TrainingExamples(dataset, with_index=with_index)
