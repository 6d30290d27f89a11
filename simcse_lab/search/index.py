"""A faiss inner-product index of normalised sentence embeddings, with its id -> text mapping and manifest.

Layout of an index directory (written to a temp dir, then renamed into place)::

    index.faiss     faiss index (flat: exact; hnsw: HNSW graph; ivfpq: IVF + product quantisation)
    texts.jsonl     line i = JSON string of the sentence with id i
    manifest.json   model (a local one as an absolute path with its content sha256, checked before a search
                    loads it; or a hub id), pooler, precision, dimension, count, index type + parameters,
                    corpus + sha256, a probe embedding (to refuse searching with another model), build timings,
                    and for hnsw/ivfpq the recall@10 against exact search measured at build time

The corpus is encoded in chunks (``chunk_size`` sentences) and each chunk is added to the index at
once, so memory holds the texts and one chunk of vectors (plus the index itself), never the whole
embedding matrix; the recall check keeps a running exact top-10 for a sample of queries.

Under ``accelerate launch --multi_gpu --num_processes N -m simcse_lab index build ...`` (WORLD_SIZE > 1) each
rank encodes a contiguous shard into ``shards/RANK.npy`` of the staging dir; rank 0 then builds the index from
the memory-mapped shards in id order with the same code path and records ``world_size`` in the manifest.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from simcse_lab.errors import InputError, UserError, first_line
from simcse_lab.io import check_replaceable, make_temp_dir
from simcse_lab.runtime.launch import agree, all_gather_object, broadcast_object, launched_state, shard_range

INDEX_TYPES = ("flat", "hnsw", "ivfpq")
PROBE_SENTENCE = "simcse-lab index probe: a man is playing a guitar on the beach."
PQ_MIN_TRAIN = 39 * 256  # faiss' minimum training points per PQ codebook (256 centroids x 39)
RECALL_QUERIES = 500
RECALL_K = 10


def _faiss():
    import faiss

    return faiss


# -- corpus ---------------------------------------------------------------------------------------------
def load_corpus(spec: str, columns: list[str] | None = None) -> tuple[list[str], dict]:
    """(sentences, description) for any data spec of :mod:`simcse_lab.data.sources` that gives one sentence a
    row: a text file or text dataset ``NAME[:SPLIT]``, or one column (``--columns NAME`` or the source's only
    / known-named column) of a csv, tsv, jsonl or parquet file, a saved or a hub dataset."""
    from simcse_lab.data import sources

    source = sources.resolve(spec, columns=columns)
    if source.kind != "text":
        what = f"{', '.join(source.columns)} columns" if source.columns else f"a {source.kind} dataset"
        raise UserError(f"{spec}: {what}; --corpus needs one sentence a row (a text dataset or file, or name one "
                        f"column with --columns)")
    if source.name is not None:
        corpus = f"{source.name}:{source.split}"
    else:
        corpus = source.data.describe() + (f" [{source.columns[0]}]" if source.data.kind != "txt" else "")
    return list(source.rows), {"corpus": corpus, "corpus_sha256": source.sha256()}


def normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


# -- index construction -----------------------------------------------------------------------------------
def ivf_params(count: int, dim: int) -> dict:
    """nlist ~ sqrt(n) (>= 39 training points per list), PQ with 8-dim sub-vectors and 8-bit codes."""
    if count < PQ_MIN_TRAIN:
        raise UserError(f"ivfpq needs at least {PQ_MIN_TRAIN} sentences to train its codebooks "
                        f"(corpus has {count}); use --index flat (exact) or hnsw")
    nlist = max(1, min(int(math.sqrt(count)), count // 39))
    m = next(m for m in (dim // 8, dim // 4, dim // 2, dim) if m >= 1 and dim % m == 0)
    return {"nlist": nlist, "m": m, "nbits": 8, "nprobe": min(nlist, 16), "train_size": min(count, max(PQ_MIN_TRAIN, 64 * nlist))}


def new_index(kind: str, dim: int, count: int):
    faiss = _faiss()
    if kind == "flat":
        return faiss.IndexFlatIP(dim), {}
    if kind == "hnsw":
        params = {"M": 32, "efConstruction": 80, "efSearch": 64}
        index = faiss.IndexHNSWFlat(dim, params["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params["efConstruction"]
        index.hnsw.efSearch = params["efSearch"]
        return index, params
    if kind == "ivfpq":
        params = ivf_params(count, dim)
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFPQ(quantizer, dim, params["nlist"], params["m"], params["nbits"],
                                 faiss.METRIC_INNER_PRODUCT)
        index.nprobe = params["nprobe"]
        return index, params
    raise UserError(f"unknown index type {kind!r}; choose from {', '.join(INDEX_TYPES)}")


class ExactTopK:
    """Running exact top-k (inner product) of a few query vectors over a stream of corpus chunks."""

    def __init__(self, queries: np.ndarray, k: int):
        self.queries = queries
        self.k = k
        self.scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
        self.ids = np.zeros((len(queries), 0), dtype=np.int64)

    def add(self, vectors: np.ndarray, first_id: int) -> None:
        sims = self.queries @ vectors.T
        ids = np.broadcast_to(np.arange(first_id, first_id + len(vectors)), sims.shape)
        scores = np.concatenate([self.scores, sims], axis=1)
        all_ids = np.concatenate([self.ids, ids], axis=1)
        top = np.argsort(-scores, axis=1, kind="stable")[:, : self.k]
        self.scores = np.take_along_axis(scores, top, axis=1)
        self.ids = np.take_along_axis(all_ids, top, axis=1)


def recall_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean fraction of the exact top-k found in the approximate top-k."""
    k = exact_ids.shape[1]
    return float(np.mean([len(set(a[:k]) & set(e)) / k for a, e in zip(approx_ids, exact_ids)]))


class ShardVectors:
    """Read-only view of the ranks' shard files (``shards/RANK.npy``, memory-mapped) as one matrix in id order."""

    def __init__(self, paths: list[Path]):
        self.parts = [np.load(p, mmap_mode="r") for p in paths]
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])

    def __call__(self, begin: int, end: int) -> np.ndarray:
        rows = []
        for part, first in zip(self.parts, self.starts[:-1]):
            lo, hi = max(begin - first, 0), min(end - first, len(part))
            if lo < hi:
                rows.append(np.asarray(part[lo:hi]))
        return np.concatenate(rows).astype(np.float32, copy=False) if rows else np.zeros((0, self.parts[0].shape[1]), np.float32)


def _encode_shard(encoder, sentences: list[str], path: Path, chunk_size: int, bar=None) -> float:
    """Encode ``sentences`` chunk by chunk (normalised, as the single-process build does) into ``path`` (.npy);
    returns the encoding seconds."""
    vectors = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(sentences), encoder.dim))
    seconds = 0.0
    for begin in range(0, len(sentences), chunk_size):
        t0 = time.perf_counter()
        vectors[begin:begin + chunk_size] = normalize(encoder.encode(sentences[begin:begin + chunk_size]))
        seconds += time.perf_counter() - t0
        if bar is not None:
            bar.update(min(chunk_size, len(sentences) - begin))
    vectors.flush()
    del vectors
    return seconds


@dataclass(frozen=True)
class IndexBuild:
    """What one index build is asked for (``index build``'s flags): ``model`` encodes ``corpus`` into an index of
    type ``kind`` at ``output``; ``columns`` names the sentence column of a multi-column corpus (``--columns``)."""

    model: str
    corpus: str
    output: str | Path
    kind: str = "flat"
    pooler: str | None = None
    precision: str = "auto"
    batch_size: int = 128
    chunk_size: int = 4096
    overwrite: bool = False
    progress: bool = True
    columns: list[str] | None = None


@dataclass
class _Prepared:
    """A checked build: its output path, the corpus, the encoder and the empty index (with its parameters)."""

    build: IndexBuild
    output: Path
    sentences: list[str]
    corpus_info: dict
    encoder: object
    index: object
    params: dict


@dataclass
class _VectorSource:
    """Where the corpus vectors come from (encoded on the fly, or read back from the ranks' shards): rows
    ``[begin, end)`` normalised in id order, the rows of a sample of ids, and the encoding seconds so far."""

    rows: Callable[[int, int], np.ndarray]
    sample: Callable[[np.ndarray], np.ndarray]
    encode_seconds: Callable[[], float]
    start: float
    world_size: int


def build_index(build: IndexBuild, encoder=None) -> dict | None:
    """Encode ``build.corpus`` with ``build.model`` (or the already loaded ``encoder``) and write an index
    directory at ``build.output``; returns the manifest.

    Under ``accelerate launch`` with several processes (WORLD_SIZE > 1) every rank must call this: rank r
    encodes its contiguous shard into ``shards/r.npy`` of the staging dir, and rank 0 builds the index from
    the shards in id order exactly as one process would, writes the manifest (``world_size``) and renames
    the staging dir into place. Rank 0 returns the manifest; the other ranks return None as soon as every
    shard is written (they do not wait for the index build, so no collective can time out during it)."""
    state = launched_state()
    if state is None:
        return _build(build, encoder)
    return _build_sharded(state, build, encoder)


def _prepare(build: IndexBuild, encoder, device=None) -> _Prepared:
    from simcse_lab.modeling.encoder import load_encoder
    from simcse_lab.modeling.resolve import resolve_model

    if build.kind not in INDEX_TYPES:
        raise UserError(f"unknown index type {build.kind!r}; choose from {', '.join(INDEX_TYPES)}")
    if build.chunk_size < 1:
        raise UserError("--chunk-size must be positive")
    if build.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    output = Path(build.output)
    try:
        model_path = resolve_model(build.model) if encoder is None else None
    except UserError:
        model_path = None  # reported when the encoder loads it, below
    check_replaceable(output, "index", build.overwrite, sources=[build.corpus, build.model, model_path])
    sentences, corpus_info = load_corpus(build.corpus, build.columns)
    encoder = encoder or load_encoder(build.model, pooler=build.pooler, precision=build.precision,
                                      batch_size=build.batch_size, device=device)
    index, params = new_index(build.kind, encoder.dim, len(sentences))  # refuses a too-small corpus before encoding
    return _Prepared(build, output, sentences, corpus_info, encoder, index, params)


def _build(build: IndexBuild, encoder) -> dict:
    job = _prepare(build, encoder)
    tmp = make_temp_dir(job.output)
    timer = {"encode": 0.0}

    def encoded(begin: int, end: int) -> np.ndarray:
        t0 = time.perf_counter()
        vectors = normalize(job.encoder.encode(job.sentences[begin:end]))
        timer["encode"] += time.perf_counter() - t0
        return vectors

    try:
        def sample_of(ids: np.ndarray) -> np.ndarray:
            return normalize(job.encoder.encode([job.sentences[i] for i in ids]))

        source = _VectorSource(encoded, sample_of, lambda: timer["encode"], start=time.perf_counter(), world_size=1)
        manifest = _assemble(tmp, job, source)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _shared_staging(output: Path, main: bool) -> Path:
    """One staging dir for all ranks, made by rank 0 next to the output (a shared file system across machines)."""
    staging = None
    if main:
        try:
            staging = make_temp_dir(output)
            (staging / "shards").mkdir()
            staging = str(staging)
        except OSError as err:
            staging = UserError(f"{output.parent}: cannot create the staging dir ({err})")
    staging = broadcast_object(staging)
    if isinstance(staging, BaseException):
        raise staging
    return Path(staging)


def _encode_my_shard(job: _Prepared, tmp: Path, rank: int, world: int, main: bool) -> float:
    begin, end = shard_range(len(job.sentences), rank, world)
    bar = None
    if job.build.progress and main:
        from tqdm.auto import tqdm

        bar = tqdm(total=end - begin, desc=f"encode shard {rank}/{world}", unit="sent")
    try:
        return _encode_shard(job.encoder, job.sentences[begin:end], tmp / "shards" / f"{rank}.npy",
                             job.build.chunk_size, bar)
    finally:
        if bar is not None:
            bar.close()


def _build_sharded(state, build: IndexBuild, encoder) -> dict | None:
    rank, world, main = state.process_index, state.num_processes, state.is_main_process
    job = error = None
    try:
        job = _prepare(build, encoder, device=str(state.device))
    except BaseException as err:  # noqa: BLE001 - reported to every rank, then re-raised
        error = err
    agree(rank, error)
    count = len(job.sentences)
    tmp = _shared_staging(job.output, main)
    error = seconds = None
    try:
        start = time.perf_counter()
        seconds = _encode_my_shard(job, tmp, rank, world, main)
    except BaseException as err:  # noqa: BLE001
        error = err
    try:
        agree(rank, error)  # also the barrier: every shard file is complete after it
    except BaseException:
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    encode_seconds = max(all_gather_object(seconds))  # the last collective: ranks > 0 are done
    if not main:
        return None
    try:
        reader = ShardVectors([tmp / "shards" / f"{r}.npy" for r in range(world)])
        if reader.starts[-1] != count:
            raise UserError(f"shards hold {reader.starts[-1]} vectors, the corpus has {count}")
        source = _VectorSource(reader, lambda ids: np.concatenate([reader(i, i + 1) for i in ids]),
                               lambda: encode_seconds, start=start, world_size=world)
        return _assemble(tmp, job, source,
                         before_rename=lambda: (reader.parts.clear(), shutil.rmtree(tmp / "shards")))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _recall_sample(job: _Prepared, source: _VectorSource):
    """For hnsw/ivfpq, the recall check's state: a running exact top-k of sampled corpus queries (filled in the
    same pass as the index), the sample's vectors and the seconds taken to get them; None for flat."""
    if job.build.kind == "flat":
        return None, None, 0.0
    count = len(job.sentences)
    t0 = time.perf_counter()
    sample_ids = np.sort(np.random.default_rng(0).choice(count, size=min(RECALL_QUERIES, count), replace=False))
    sample_vectors = source.sample(sample_ids)
    return ExactTopK(sample_vectors, min(RECALL_K, count)), sample_vectors, time.perf_counter() - t0


def _add_corpus(tmp: Path, job: _Prepared, source: _VectorSource, exact) -> str:
    """Add the corpus vectors to the index in chunks (ivfpq: train on a prefix, made large enough, then stream
    the rest) and write texts.jsonl; returns the sha256 of texts.jsonl's bytes."""
    kind, count, chunk_size = job.build.kind, len(job.sentences), job.build.chunk_size
    chunks = list(range(0, count, chunk_size))
    if kind == "ivfpq":
        chunks = [0] + list(range(job.params["train_size"], count, chunk_size))
    bar = None
    if job.build.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=count, desc=f"index {kind}", unit="sent")
    texts_hash = hashlib.sha256()
    try:
        with open(tmp / "texts.jsonl", "w", encoding="utf-8") as texts_file:  # the bytes texts_sha256 hashes
            for pos, begin in enumerate(chunks):
                end = chunks[pos + 1] if pos + 1 < len(chunks) else count
                part = job.sentences[begin:end]
                vectors = source.rows(begin, end)
                if kind == "ivfpq" and pos == 0:
                    job.index.train(vectors)
                job.index.add(vectors)
                if exact is not None:
                    exact.add(vectors, begin)
                for text in part:
                    line = json.dumps(text, ensure_ascii=False)
                    texts_file.write(line + "\n")
                    texts_hash.update(line.encode() + b"\n")
                if bar is not None:
                    bar.update(len(part))
    finally:
        if bar is not None:
            bar.close()
    return texts_hash.hexdigest()


def _assemble(tmp: Path, job: _Prepared, source: _VectorSource, before_rename=None) -> dict:
    """Add the corpus vectors to the index, write texts.jsonl, index.faiss and manifest.json into ``tmp``,
    then rename ``tmp`` to ``output``."""
    from simcse_lab.data.registry import sha256_file
    from simcse_lab.io import replace_dir_atomically

    count, encoder, index = len(job.sentences), job.encoder, job.index
    exact, sample_vectors, sample_seconds = _recall_sample(job, source)
    texts_sha256 = _add_corpus(tmp, job, source, exact)
    seconds = time.perf_counter() - source.start - sample_seconds  # the recall sample is not part of the build timing
    encode_seconds = source.encode_seconds()
    _faiss().write_index(index, str(tmp / "index.faiss"))
    probe = normalize(encoder.encode([PROBE_SENTENCE]))[0]
    manifest = {
        "format": "simcse-lab-index/1",
        **{k: v for k, v in encoder.describe().items()
           if k in ("model", "path", "backend", "pooler", "precision", "bidirectional", "template", "template_denoise")},
        **model_record(encoder.describe().get("path")),
        "dimension": encoder.dim, "count": count, "index": job.build.kind, "params": job.params,
        "metric": "inner_product (normalised)", **job.corpus_info, "texts_sha256": texts_sha256,
        "index_class": type(index).__name__, "index_sha256": sha256_file(tmp / "index.faiss"),
        "probe_sentence": PROBE_SENTENCE, "probe": [round(float(x), 6) for x in probe],
        "build_seconds": round(seconds, 3), "encode_seconds": round(encode_seconds, 3),
        "sentences_per_second": round(count / seconds, 1) if seconds > 0 else None,
        "world_size": source.world_size,
        "faiss_version": _faiss().__version__,
    }
    if exact is not None:
        _, approx_ids = index.search(sample_vectors, exact.k)
        manifest["recall_at_10_vs_exact"] = round(recall_at_k(approx_ids, exact.ids), 4)
        manifest["recall_queries"] = len(sample_vectors)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if before_rename is not None:
        before_rename()
    replace_dir_atomically(tmp, job.output, kind="index")
    return manifest


def model_record(path) -> dict:
    """What an index records of its model: a local directory as an absolute ``path`` (searching from another
    working directory must open the same model; ``path_as_given`` keeps the spelling for display) with its
    content identity (``model_sha256``); a hub id as it is (``model_local`` false)."""
    from simcse_lab.modeling.resolve import model_identity

    if path is None or not Path(path).is_dir():
        return {"model_local": False}
    return {"path": str(Path(path).resolve()), "path_as_given": str(path), "model_local": True,
            "model_sha256": model_identity(path)}


def _model_to_load(directory: Path, m: dict, model: str | None) -> str:
    """The model directory (or hub id) to search ``directory`` with: the one it was built with, checked by its
    content identity before it loads; ``model`` (``--model``) may name where it is now, if it moved."""
    from simcse_lab.modeling.resolve import model_identity, resolve_model

    if not m.get("model_local"):  # a hub id, or an index built before model_local was recorded: as before
        return m["path"]
    if model is not None:
        candidate = resolve_model(model)
        if Path(candidate).is_dir() and model_identity(candidate) == m.get("model_sha256"):
            return candidate
        raise UserError(f"{directory} was built with model {m['model']} ({m['path']}); refusing to search it with "
                        f"{model}: another model (its files differ); rebuild the index with that model")
    if not Path(m["path"]).is_dir():
        raise UserError(f"{directory}: the model of this index, {m['path']}, is not found; if it moved, name it "
                        f"with --model")
    if model_identity(m["path"]) != m.get("model_sha256"):
        raise UserError(f"{directory}: the model at {m['path']} is not the one this index was built with (its "
                        f"files' sha256 differs); rebuild the index")
    return m["path"]


# -- loading and search ---------------------------------------------------------------------------------
MANIFEST_KEYS = {"model", "path", "pooler", "precision", "probe_sentence", "probe", "dimension", "index", "params",
                 "count"}


# the faiss class each index type is built as; manifests record it as index_class (those of 0.1.0 do not)
INDEX_CLASSES = {"flat": "IndexFlatIP", "hnsw": "IndexHNSWFlat", "ivfpq": "IndexIVFPQ"}


def _read_index(directory: Path, m: dict):
    """index.faiss, verified against the manifest: sha256 (recorded by builds since index_sha256 exists),
    faiss class, metric, dimension and count; one line naming the file otherwise."""
    from simcse_lab.data.registry import sha256_file

    path = directory / "index.faiss"
    if m.get("index_sha256") is not None and sha256_file(path) != m["index_sha256"]:
        raise InputError(path, None, "sha256 differs from the one in manifest.json: damaged, or another index's "
                                     "file; rebuild the index")
    try:
        index = _faiss().read_index(str(path))
    except (RuntimeError, MemoryError) as err:
        raise InputError(path, None, f"not a readable faiss index ({first_line(err)})") from None
    faiss = _faiss()
    want = m.get("index_class") or INDEX_CLASSES.get(m["index"])
    found = type(index).__name__
    if want is None or found != want:
        raise InputError(path, None, f"holds a {found}, manifest.json describes {want or m['index']!r}; rebuild the index")
    if index.metric_type != faiss.METRIC_INNER_PRODUCT or index.d != m["dimension"]:
        raise InputError(path, None, f"dimension {index.d} / metric {index.metric_type} do not match manifest.json "
                                     f"(dimension {m['dimension']}, inner product); rebuild the index")
    if index.ntotal != m["count"]:
        raise UserError(f"{directory}: index holds {index.ntotal} vectors, manifest says {m['count']}")
    if m["index"] == "ivfpq":
        index.nprobe = m["params"]["nprobe"]
    elif m["index"] == "hnsw":
        index.hnsw.efSearch = m["params"]["efSearch"]
    return index


def _read_texts(directory: Path, m: dict) -> list[str]:
    """texts.jsonl, verified against the manifest's texts_sha256 and count."""
    from simcse_lab.data.registry import sha256_file

    path = directory / "texts.jsonl"
    if not path.is_file():
        raise InputError(path, None, "missing: an index directory holds texts.jsonl beside index.faiss")
    if m.get("texts_sha256") is not None and sha256_file(path) != m["texts_sha256"]:
        raise InputError(path, None, "sha256 differs from the one in manifest.json: damaged, or another index's "
                                     "texts; rebuild the index")
    texts = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            try:
                texts.append(json.loads(line))
            except ValueError:
                raise InputError(path, lineno, "not a JSON string") from None
    if len(texts) != m["count"]:
        raise UserError(f"{directory}: texts.jsonl has {len(texts)} lines, manifest says {m['count']}")
    return texts


class Index:
    """A built index directory, ready to search with the model it was built with."""

    def __init__(self, directory, model: str | None = None, pooler: str | None = None, encoder=None):
        self.directory = Path(directory)
        manifest_path = self.directory / "manifest.json"
        if not manifest_path.is_file() or not (self.directory / "index.faiss").is_file():
            raise UserError(f"{directory}: not an index directory (manifest.json and index.faiss expected)")
        try:
            self.manifest = json.loads(manifest_path.read_text())
        except ValueError as err:
            raise InputError(manifest_path, None, f"invalid JSON: {err}") from None
        m = self.manifest
        missing = MANIFEST_KEYS - set(m) if isinstance(m, dict) else MANIFEST_KEYS
        if missing:
            raise InputError(manifest_path, None, f"not an index manifest (missing {', '.join(sorted(missing))})")
        # the files first (cheap), the model after: a damaged or swapped file costs no model load
        self.index = _read_index(self.directory, m)
        self.texts = _read_texts(self.directory, m)
        path = m["path"]
        if model is not None and not m.get("model_local"):
            from simcse_lab.modeling.resolve import resolve_model

            wanted = (resolve_model(model), pooler or m["pooler"])
            if (str(Path(wanted[0]).resolve()) if Path(wanted[0]).exists() else wanted[0]) != \
                    (str(Path(m["path"]).resolve()) if Path(m["path"]).exists() else m["path"]) or wanted[1] != m["pooler"]:
                raise UserError(f"{directory} was built with model {m['model']} [{m['pooler']}]; refusing to search "
                                f"it with {model} [{wanted[1]}] (rebuild the index with that model)")
        if (pooler or m["pooler"]) != m["pooler"]:
            raise UserError(f"{directory} was built with model {m['model']} [{m['pooler']}]; refusing to search "
                            f"it with pooler {pooler} (rebuild the index with that pooler)")
        if encoder is None:
            from simcse_lab.modeling.encoder import load_encoder

            path = _model_to_load(self.directory, m, model)
            encoder = load_encoder(path, pooler=None if m["pooler"] == "modules" else m["pooler"],
                                   precision=m["precision"], bidirectional=m.get("bidirectional"))
            # the template the corpus was embedded in (the model's saved one, or --template); an ONNX export's is its own
            if m.get("template") and m.get("backend") != "onnx":
                encoder.set_template(m["template"], bool(m.get("template_denoise")))
        self.encoder = encoder
        probe = normalize(encoder.encode([m["probe_sentence"]]))[0]
        agreement = float(probe @ np.asarray(m["probe"], dtype=np.float32))
        if encoder.dim != m["dimension"] or agreement < 0.99:
            raise UserError(f"{directory}: the model at {path} no longer gives the embeddings this index was "
                            f"built with (probe cosine {agreement:.3f}); rebuild the index")

    def search_vectors(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self.texts))
        return self.index.search(normalize(vectors), k)

    def search(self, queries: list[str], k: int = 10) -> list[list[dict]]:
        if k < 1:
            raise UserError("-k must be at least 1")
        scores, ids = self.search_vectors(self.encoder.encode(queries), k)
        return [[{"rank": r + 1, "id": int(i), "score": round(float(s), 6), "text": self.texts[i]}
                 for r, (s, i) in enumerate(zip(row_s, row_i)) if i >= 0]
                for row_s, row_i in zip(scores, ids)]
