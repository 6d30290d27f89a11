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

An entry is not trusted for being there. Each holds ``manifest.json`` (its key, the source's fingerprint,
size and sample digest, the columns, max length, row count, largest id, and the size and sha256 of
``tokens.arrow``), checked on every hit; an entry that fails (truncated, swapped, altered, from an older
version, built from another file than its key says) is named in one line, discarded and built again, as a
cache may be. A build works in ``.KEY.tmp-PID-HOST-xxxx`` (:mod:`simcse_lab.io`'s names), and only this
host's dead builds are cleaned up. What this promises, and its cost: ``docs/security.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from simcse_lab.data import content_hash, registry
from simcse_lab.data.columns import choose_columns
from simcse_lab.data.long_rows import tokenize_bounded
from simcse_lab.data.spec import DataSpec, parse_spec
from simcse_lab.data.streaming import check_string_columns, iter_rows, source_columns
from simcse_lab.errors import UserError, first_line
from simcse_lab.io import clean_leftovers, make_temp_dir, read_small_json, sha256_file, write_json

# bump when the tokenised layout changes: old cache entries are then simply not found. 3: the entry's manifest
FORMAT_VERSION = 3
DATA_FILE = "tokens.arrow"  # the tokenised rows: one Arrow stream file in the entry's directory
MANIFEST = "manifest.json"  # what the entry holds and what it was built from (see _manifest)
MANIFEST_MAX_BYTES = 64 << 10  # a manifest is ~1 KB: a larger file is not one, and is not read
LOCAL_FILE_KINDS = ("txt", "csv", "tsv", "jsonl", "parquet")  # sources keyed by file_sha256 (the memo's business)
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


def cache_key(source_fingerprint: str, tokenizer, max_length: int, columns: list[str], prefix: str = "") -> str:
    """``prefix``: text put before every cell before tokenising (an instruction); keyed only when given, so the
    entries of runs without one keep their keys."""
    fields = {"source": source_fingerprint, "tokenizer": tokenizer_fingerprint(tokenizer),
              "max_length": max_length, "columns": columns, "format": FORMAT_VERSION}
    payload = json.dumps({**fields, "prefix": prefix} if prefix else fields)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _tokenize_batch(batch: dict, indices: list[int], tokenizer, columns: list[str], max_length: int,
                    source: str = "", one_row_a_line: bool = False, prefix: str = "") -> dict:
    """Token ids of a batch of rows (each cell after ``prefix``); a long row is cut first where that keeps its
    tokens (data.long_rows)."""
    def where(i: int) -> str:
        return f"{source}:{indices[i] + 1}" if one_row_a_line else f"{source}: row {indices[i]}"

    def texts(column: str) -> list[str]:
        return [prefix + text for text in batch[column]] if prefix else batch[column]

    return {f"ids{i}": tokenize_bounded(tokenizer, texts(c), max_length, where) for i, c in enumerate(columns)}


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


@dataclass(frozen=True)
class _Entry:
    """One cache entry asked for: the source (and its content fingerprint) and how it is tokenised (tokenizer,
    max length, columns, the text before every cell); all of it is in the key."""

    spec: DataSpec
    fingerprint: str
    tokenizer: object
    max_length: int
    columns: list[str]
    prefix: str = ""

    @property
    def key(self) -> str:
        return cache_key(self.fingerprint, self.tokenizer, self.max_length, self.columns, self.prefix)

    @property
    def vocab(self) -> int:
        return len(self.tokenizer)


def build_tokenized(spec: DataSpec, tokenizer, max_length: int, columns: list[str], cache_root: Path,
                    progress: bool = False, fingerprint: str | None = None, prefix: str = ""):
    """Tokenise ``spec`` into ``cache_root/KEY`` unless a sound entry is already there; return the memory-mapped
    dataset, the key and whether it was a hit.

    An entry found is used only if its manifest matches what is asked (key, source fingerprint, columns, max
    length), ``tokens.arrow`` has the recorded size and checksum, opens, and has the recorded rows, columns
    and largest id (below the tokenizer's vocabulary); for a local file, the file's size and sample digest
    must also be those it was built from (a remembered digest that names another file's entry is read
    again). An unsound entry is a cache's damage: one line says why, and it is discarded and built again.
    ``fingerprint``: ``spec.fingerprint()``, when the caller has computed it already; ``prefix``: text put before
    every cell (an instruction), part of the key."""
    import datasets

    if not progress:
        datasets.disable_progress_bars()
    cache_root.mkdir(parents=True, exist_ok=True)
    entry = _Entry(spec, fingerprint or spec.fingerprint(), tokenizer, max_length, columns, prefix)
    entry, dataset, problem = _look_up(cache_root, entry)
    if problem is None:
        return dataset, entry.key, True
    final = cache_root / entry.key
    if problem is not _MISSING:
        reason = "built from another file than its key says" if problem is _OTHER_SOURCE else problem
        _say(f"{final}: {reason}; discarding the cache entry and tokenising again")
        _discard(final)
    clean_leftovers(cache_root)  # work directories of killed builds on this host
    identity = _source_identity(spec)  # before reading: a file changed during the build is then noticed
    ours = _build_entry(entry, identity, final)
    if identity != _source_identity(spec):
        _discard(final)
        raise UserError(f"{spec.describe()}: the file changed while it was tokenised; run again once it is written")
    if ours:
        return datasets.Dataset.from_file(str(final / DATA_FILE)), entry.key, False
    dataset, problem = _open_entry(final, entry)
    if problem is not None:  # the other process's entry: it was checked like any hit
        raise UserError(f"{final}: the cache entry another process just built is not sound "
                        f"({'built from another file' if problem is _OTHER_SOURCE else problem}); run again")
    return dataset, entry.key, False


def _look_up(cache_root: Path, entry: _Entry):
    """(entry, dataset, problem) of the entry's key in the cache (see :func:`_open_entry`); for a local file whose
    remembered digest names another file's entry, the file is read again and its own key looked up."""
    dataset, problem = _open_entry(cache_root / entry.key, entry)
    if problem is not None and _source_files(entry.spec):
        # the key may come from a remembered digest: before building (or blaming the entry), the file's own
        with content_hash.read_afresh():
            fresh = entry.spec.fingerprint()
        if fresh != entry.fingerprint:
            memo = content_hash.memo_path(Path(entry.spec.path).resolve())
            _say(f"{entry.spec.describe()}: the sha256 remembered in {memo} is not this file's; read the file again")
            entry = replace(entry, fingerprint=fresh)
            dataset, problem = _open_entry(cache_root / entry.key, entry)
    return entry, dataset, problem


def _build_entry(entry: _Entry, identity: list[dict], final: Path) -> bool:
    """Tokenise the source into a work directory and rename it to ``final``; False when another process (a rank
    on another node, a second run) finished the same key first."""
    import datasets

    spec, columns, key = entry.spec, entry.columns, entry.key
    work = make_temp_dir(final)
    try:
        raw = _raw_dataset(spec, columns, work, entry.fingerprint)
        if spec.kind in ("saved", "hub"):
            check_string_columns(raw, columns, spec.describe())
        wide = entry.vocab > 65535
        features = datasets.Features({f"ids{i}": datasets.Sequence(datasets.Value("int32" if wide else "uint16"))
                                      for i in range(len(columns))})
        one_row_a_line = spec.kind in ("txt", "jsonl")  # row i is line i + 1 (a blank line is an error there)
        tokenized = raw.map(_tokenize_batch, batched=True, batch_size=2000, remove_columns=raw.column_names,
                            features=features, num_proc=_processes(len(raw)), with_indices=True,
                            fn_kwargs={"tokenizer": entry.tokenizer, "columns": columns,
                                       "max_length": entry.max_length, "source": spec.describe(),
                                       "one_row_a_line": one_row_a_line, "prefix": entry.prefix},
                            cache_file_name=str(work / "tokenized.arrow"), new_fingerprint=key,
                            desc="tokenising")
        rows, max_id = len(tokenized), _write_large_batches(tokenized, work / "dataset" / DATA_FILE)
        del raw, tokenized
        write_json(work / "dataset" / MANIFEST, _manifest(work / "dataset" / DATA_FILE, entry, identity, rows, max_id))
        try:
            os.replace(work / "dataset", final)
            return True
        except OSError:  # another process finished the same key first
            if not (final / DATA_FILE).is_file():
                raise
            return False
    finally:
        shutil.rmtree(work, ignore_errors=True)


# what _open_entry found besides a reason: no entry at all, or an entry built from a file other than this one
_MISSING, _OTHER_SOURCE = object(), object()


def _say(line: str) -> None:
    print(f"simcse-lab: {line}", file=sys.stderr, flush=True)


def _source_files(spec: DataSpec) -> list[Path]:
    """The local files whose digest is in the key (through the memo of :mod:`~simcse_lab.data.content_hash`)."""
    return [spec.path] if spec.kind in LOCAL_FILE_KINDS else []


def _source_identity(spec: DataSpec) -> list[dict]:
    out = []
    for path in _source_files(spec):
        out.append({"size": Path(path).stat().st_size, "sample": content_hash.sample_digest(path)})
    return out


def _manifest(data_file: Path, entry: _Entry, identity: list[dict], rows: int, max_id: int) -> dict:
    """What an entry records at build time. The checksum is the sha256 of DATA_FILE, read once here (the file
    is in the page cache); a hit compares it through :func:`content_hash.file_sha256`, i.e. reads the file
    only when its state (inode, size, times) differs from the one last verified."""
    columns = entry.columns
    return {"format": FORMAT_VERSION, "key": entry.key,
            "source": {"data": entry.spec.describe(), "kind": entry.spec.kind, "fingerprint": entry.fingerprint,
                       "files": identity},
            "columns": columns, "max_length": entry.max_length, "rows": rows,
            "id_columns": [f"ids{i}" for i in range(len(columns))], "max_id": max_id, "vocab": entry.vocab,
            "data_file": {"name": DATA_FILE, "size": data_file.stat().st_size, "sha256": sha256_file(data_file)}}


def _read_manifest(path: Path) -> dict | str:
    """The manifest at ``path``, or why it cannot be used."""
    manifest, why = read_small_json(path, MANIFEST_MAX_BYTES)
    if manifest is not None:
        return manifest
    if why == "missing":
        return f"no {MANIFEST} (an entry of an older simcse-lab, or damaged)"
    if why == "not a small regular file":
        return f"{MANIFEST} is not a manifest (not a small regular file)"
    return f"{MANIFEST} {why}"


def _open_entry(final: Path, entry: _Entry):
    """``(dataset, None)`` for a sound entry, else ``(None, _MISSING | _OTHER_SOURCE | reason)``."""
    import datasets

    spec, fingerprint, vocab = entry.spec, entry.fingerprint, entry.vocab

    if not os.path.lexists(final):
        return None, _MISSING
    if final.is_symlink() or not final.is_dir():
        raise UserError(f"{final}: not a cache entry simcse-lab made (a symlink or a file); delete it and run again")
    manifest = _read_manifest(final / MANIFEST)
    if isinstance(manifest, str):
        return None, manifest
    expected = {"format": FORMAT_VERSION, "key": entry.key, "columns": entry.columns, "max_length": entry.max_length}
    wrong = [name for name, value in expected.items() if manifest.get(name) != value]
    source = manifest.get("source") if isinstance(manifest.get("source"), dict) else {}
    if source.get("fingerprint") != fingerprint:
        wrong.append("source fingerprint")
    data = manifest.get("data_file") if isinstance(manifest.get("data_file"), dict) else {}
    rows, max_id = manifest.get("rows"), manifest.get("max_id")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (data.get("size"), rows, max_id)):
        wrong.append("sizes")
    if wrong:
        return None, f"{MANIFEST} does not describe this entry ({', '.join(wrong)})"
    path = final / DATA_FILE
    try:
        st = path.lstat()
    except OSError:
        return None, f"{DATA_FILE} is missing"
    if not stat.S_ISREG(st.st_mode) or st.st_size != data["size"]:
        return None, f"{DATA_FILE} is {st.st_size} bytes, {MANIFEST} says {data['size']} (truncated or replaced)"
    if max_id >= vocab:
        return None, f"ids up to {max_id}, beyond the tokenizer's {vocab}"
    if content_hash.file_sha256(path) != data.get("sha256"):
        return None, f"{DATA_FILE} does not match its checksum (altered or replaced)"
    try:
        dataset = datasets.Dataset.from_file(str(path))
    except Exception as err:  # pyarrow's ArrowInvalid and friends: a damaged file is a cache miss, not a traceback
        return None, f"{DATA_FILE} unreadable ({first_line(err, 120)})"
    if len(dataset) != rows or dataset.column_names != manifest.get("id_columns"):
        return None, f"{DATA_FILE} holds {len(dataset)} rows of {dataset.column_names}, {MANIFEST} says {rows}"
    files = source.get("files")
    if files != _source_identity(spec):
        return None, _OTHER_SOURCE
    return dataset, None


def _discard(final: Path) -> None:
    """Move an unsound entry out of the way in one rename (a concurrent reader keeps its open files), then
    delete it. Only a KEY directory of this cache is ever passed here."""
    bin_dir = make_temp_dir(final)
    try:
        os.replace(final, bin_dir)  # an empty directory is replaced by the entry
    except FileNotFoundError:  # another process discarded it first
        pass
    shutil.rmtree(bin_dir, ignore_errors=True)


def _write_large_batches(dataset, path: Path) -> int:
    """``dataset`` as one Arrow stream file of RECORD_BATCH_ROWS-row record batches (streamed: one batch in
    memory); returns the largest token id written (-1 for no ids)."""
    import pyarrow.compute as pc
    from datasets.arrow_writer import ArrowWriter

    path.parent.mkdir(parents=True)
    max_id = -1
    with ArrowWriter(path=str(path), features=dataset.features, writer_batch_size=RECORD_BATCH_ROWS) as writer:
        for table in dataset.with_format("arrow").iter(batch_size=RECORD_BATCH_ROWS):
            table = table.combine_chunks()
            for column in table.columns:
                top = pc.max(pc.list_flatten(column)).as_py()
                max_id = max(max_id, -1 if top is None else top)
            writer.write_table(table)  # one record batch, not the map's 1,000-row pieces
        writer.finalize()
    return max_id


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


@dataclass(frozen=True)
class LoadOptions:
    """How :func:`load_training_examples` reads: progress bars; the cache folder (default the registry's
    ``tokenized/``); ``vocab_size``, the model's input embeddings, which every id must index (the entry's recorded
    largest id is compared); ``fingerprint``, the source's (``DataSpec.fingerprint``), when the caller has
    computed it already."""

    progress: bool = False
    cache_root: Path | None = None
    vocab_size: int | None = None
    fingerprint: str | None = None


def load_training_examples(data: str, tokenizer, max_length: int, needed_columns: int, with_index: bool = False,
                           columns: list[str] | None = None, prefix: str = "",
                           options: LoadOptions = LoadOptions()) -> TrainingExamples:
    """Parse ``data``, check it before any work, tokenise it (or memory-map the cached result). ``prefix``: text
    put before every cell before tokenising (an instruction)."""
    spec = parse_spec(data)
    available = source_columns(spec)
    chosen = choose_columns(available, needed_columns, columns, spec.describe())
    root = options.cache_root or registry.cache_dir() / "tokenized"
    dataset, key, _ = build_tokenized(spec, tokenizer, max_length, chosen, root, progress=options.progress,
                                      fingerprint=options.fingerprint, prefix=prefix)
    if options.vocab_size is not None:
        manifest = _read_manifest(root / key / MANIFEST)
        max_id = manifest.get("max_id", -1) if isinstance(manifest, dict) else -1
        if max_id >= options.vocab_size:
            raise UserError(f"{spec.describe()}: the tokenizer gives ids up to {max_id}, the model has "
                            f"{options.vocab_size} input embeddings: use the tokenizer saved with the model")
    return TrainingExamples(dataset, with_index=with_index)
