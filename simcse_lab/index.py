"""A faiss inner-product index of normalised sentence embeddings, with its id -> text mapping and manifest.

Layout of an index directory (written to a temp dir, then renamed into place)::

    index.faiss     faiss index (flat: exact; hnsw: HNSW graph; ivfpq: IVF + product quantisation)
    texts.jsonl     line i = JSON string of the sentence with id i
    manifest.json   model, pooler, precision, dimension, count, index type + parameters, corpus + sha256,
                    a probe embedding (to refuse searching with another model), build timings,
                    and for hnsw/ivfpq the recall@10 against exact search measured at build time

The corpus is encoded in chunks (``chunk_size`` sentences) and each chunk is added to the index at
once, so memory holds the texts and one chunk of vectors (plus the index itself), never the whole
embedding matrix; the recall check keeps a running exact top-10 for a sample of queries.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from simcse_lab.errors import InputError, UserError

INDEX_TYPES = ("flat", "hnsw", "ivfpq")
PROBE_SENTENCE = "simcse-lab index probe: a man is playing a guitar on the beach."
PQ_MIN_TRAIN = 39 * 256  # faiss' minimum training points per PQ codebook (256 centroids x 39)
RECALL_QUERIES = 500
RECALL_K = 10


def _faiss():
    import faiss

    return faiss


# -- corpus ---------------------------------------------------------------------------------------------
def load_corpus(spec: str) -> tuple[list[str], dict]:
    """(sentences, description) for a text file (one sentence a line) or a registry dataset ``NAME[:SPLIT]``."""
    from simcse_lab import readers, registry

    path = Path(spec).expanduser()
    if path.is_file():
        return readers.read_text(path), {"corpus": str(path), "corpus_sha256": registry.sha256_file(path)}
    name, _, split = spec.partition(":")
    if name not in registry.manifest():
        raise UserError(f"{spec}: no such file, and not a dataset ({', '.join(registry.manifest())})")
    info = registry.info(name)
    split = split or ("train" if "train" in info.splits else next(iter(info.splits)))
    if info.kind != "text":
        raise UserError(f"{name}: a {info.kind} dataset; --corpus needs a text dataset or a file")
    if split not in info.splits:
        raise UserError(f"{name}: no split {split!r} ({', '.join(info.splits)})")
    sentences = registry.load_split(name, split)
    source = registry.locate(name, info.splits[split]["path"])
    return list(sentences), {"corpus": f"{name}:{split}", "corpus_sha256": registry.sha256_file(source)}


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


def build_index(model: str, corpus: str, output, kind: str = "flat", pooler: str | None = None,
                precision: str = "auto", batch_size: int = 128, chunk_size: int = 4096,
                overwrite: bool = False, progress: bool = True, encoder=None) -> dict:
    """Encode ``corpus`` with ``model`` and write an index directory at ``output``; returns the manifest."""
    from simcse_lab.encoder import Encoder
    from simcse_lab.st_format import replace_dir_atomically

    if kind not in INDEX_TYPES:
        raise UserError(f"unknown index type {kind!r}; choose from {', '.join(INDEX_TYPES)}")
    if chunk_size < 1:
        raise UserError("--chunk-size must be positive")
    output = Path(output)
    if output.exists() and not overwrite:
        raise UserError(f"{output}: already exists (pass --overwrite to replace it)")
    sentences, corpus_info = load_corpus(corpus)
    count = len(sentences)
    encoder = encoder or Encoder(model, pooler=pooler, precision=precision, batch_size=batch_size)
    dim = encoder.dim
    index, params = new_index(kind, dim, count)  # refuses a too-small corpus before any encoding

    rng = np.random.default_rng(0)
    sample_ids = np.sort(rng.choice(count, size=min(RECALL_QUERIES, count), replace=False)) if kind != "flat" else None
    sample_vectors = np.zeros((0 if sample_ids is None else len(sample_ids), dim), dtype=np.float32)
    exact = None
    chunks = list(range(0, count, chunk_size))
    if kind == "ivfpq":  # train on a prefix (the first chunk is made large enough), then stream the rest
        chunks = [0] + list(range(params["train_size"], count, chunk_size))

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.tmp-"))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=count, desc=f"index {kind}", unit="sent")
    texts_hash = hashlib.sha256()
    try:
        start = time.perf_counter()
        encode_seconds = 0.0
        with open(tmp / "texts.jsonl", "w") as texts_file:
            for pos, begin in enumerate(chunks):
                end = chunks[pos + 1] if pos + 1 < len(chunks) else count
                part = sentences[begin:end]
                t0 = time.perf_counter()
                vectors = normalize(encoder.encode(part))
                encode_seconds += time.perf_counter() - t0
                if kind == "ivfpq" and pos == 0:
                    index.train(vectors)
                index.add(vectors)
                if sample_ids is not None:
                    inside = (sample_ids >= begin) & (sample_ids < end)
                    sample_vectors[inside] = vectors[sample_ids[inside] - begin]
                for text in part:
                    line = json.dumps(text, ensure_ascii=False)
                    texts_file.write(line + "\n")
                    texts_hash.update(line.encode() + b"\n")
                if bar is not None:
                    bar.update(len(part))
        seconds = time.perf_counter() - start
        if bar is not None:
            bar.close()
        if sample_ids is not None:  # second pass over the stored index vectors is not possible for PQ:
            exact = ExactTopK(sample_vectors, min(RECALL_K, count))  # re-encode in chunks for the exact top-k
            for begin in range(0, count, chunk_size):
                exact.add(normalize(encoder.encode(sentences[begin:begin + chunk_size])), begin)
        _faiss().write_index(index, str(tmp / "index.faiss"))
        probe = normalize(encoder.encode([PROBE_SENTENCE]))[0]
        manifest = {
            "format": "simcse-lab-index/1",
            **{k: v for k, v in encoder.describe().items() if k in ("model", "path", "backend", "pooler", "precision")},
            "dimension": dim, "count": count, "index": kind, "params": params, "metric": "inner_product (normalised)",
            **corpus_info, "texts_sha256": texts_hash.hexdigest(),
            "probe_sentence": PROBE_SENTENCE, "probe": [round(float(x), 6) for x in probe],
            "build_seconds": round(seconds, 3), "encode_seconds": round(encode_seconds, 3),
            "sentences_per_second": round(count / seconds, 1) if seconds > 0 else None,
            "faiss_version": _faiss().__version__,
        }
        if exact is not None:
            _, approx_ids = index.search(sample_vectors, exact.k)
            manifest["recall_at_10_vs_exact"] = round(recall_at_k(approx_ids, exact.ids), 4)
            manifest["recall_queries"] = len(sample_vectors)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        replace_dir_atomically(tmp, output)
    except BaseException:
        if bar is not None:
            bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


# -- loading and search ---------------------------------------------------------------------------------
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
        if model is not None:
            from simcse_lab.models import resolve_model

            wanted = (resolve_model(model), pooler or m["pooler"])
            if (str(Path(wanted[0]).resolve()) if Path(wanted[0]).exists() else wanted[0]) != \
                    (str(Path(m["path"]).resolve()) if Path(m["path"]).exists() else m["path"]) or wanted[1] != m["pooler"]:
                raise UserError(f"{directory} was built with model {m['model']} [{m['pooler']}]; refusing to search "
                                f"it with {model} [{wanted[1]}] (rebuild the index with that model)")
        if encoder is None:
            from simcse_lab.encoder import Encoder

            encoder = Encoder(m["path"], pooler=None if m["pooler"] == "modules" else m["pooler"],
                              precision=m["precision"])
        self.encoder = encoder
        probe = normalize(encoder.encode([m["probe_sentence"]]))[0]
        agreement = float(probe @ np.asarray(m["probe"], dtype=np.float32))
        if encoder.dim != m["dimension"] or agreement < 0.99:
            raise UserError(f"{directory}: the model at {m['path']} no longer gives the embeddings this index was "
                            f"built with (probe cosine {agreement:.3f}); rebuild the index")
        self.index = _faiss().read_index(str(self.directory / "index.faiss"))
        if m["index"] == "ivfpq":
            self.index.nprobe = m["params"]["nprobe"]
        elif m["index"] == "hnsw":
            self.index.hnsw.efSearch = m["params"]["efSearch"]
        if self.index.ntotal != m["count"]:
            raise UserError(f"{directory}: index holds {self.index.ntotal} vectors, manifest says {m['count']}")
        with open(self.directory / "texts.jsonl") as f:
            self.texts = [json.loads(line) for line in f]
        if len(self.texts) != m["count"]:
            raise UserError(f"{directory}: texts.jsonl has {len(self.texts)} lines, manifest says {m['count']}")

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
