"""Any SentenceEncoder as an mteb model (mteb's ``EncoderProtocol``, through its ``AbsEncoder`` base).

mteb hands ``encode`` a DataLoader of ``{"text": [...]}`` batches; the wrapper flattens it, encodes each distinct
text once (also across the two columns of an STS or pair-classification split) with simcse-lab's own encoder
(length-sorted dynamic batching, the checkpoint's pooler and precision, or an ONNX export's graph) and returns the
rows in mteb's order. Similarity is cosine (mteb's ``ScoringFunction``),
the SimCSE protocol.

Under ``accelerate launch`` (WORLD_SIZE > 1) every process runs the same mteb evaluation; inside each ``encode``
call process r encodes its contiguous shard of the distinct texts and the shards are all-gathered, so every process
holds all vectors and mteb scores them identically everywhere (scoring is cheap next to encoding); only the main
process writes result files. A failure on one process stops all of them (``agree`` semantics).

The model's mteb name is ``simcse-lab/<model>__<pooler>__<precision>`` (then what else makes the vectors differ, an
instruction's digest included; or the user's ``--mteb-name``); its revision
is the content identity of a local model directory (a digest of its files), so results of different checkpoints
never share a results folder.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ModelMeta, ScoringFunction

from simcse_lab.errors import UserError
from simcse_lab.modeling.sentence_encoder import SentenceEncoder
from simcse_lab.runtime.launch import agree, all_gather_object, shard_range


PAIR_TASKS = ("STS", "PairClassification")  # mteb task types that encode two columns of one pair set


def default_name(described: dict) -> str:
    """``simcse-lab/<model's last path part>__<pooler>__<precision>``, then whatever else makes the vectors differ:
    ``__bidirectional`` (a decoder run with bidirectional attention), ``__whitening`` / ``__flow``, and
    ``__instr-<8 hex digits of the instruction's sha256>`` (an instruction put before every sentence)."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", str(described["model"]).rstrip("/").split("/")[-1]) or "model"
    extra = ["bidirectional"] if described.get("bidirectional") else []
    extra += [m for m in ("whitening", "flow") if m in described]
    if described.get("instruction"):
        extra.append("instr-" + hashlib.sha256(str(described["instruction"]).encode("utf-8")).hexdigest()[:8])
    return "__".join([f"simcse-lab/{base}", str(described["pooler"]), str(described["precision"]), *extra])


def model_revision(described: dict) -> str:
    """A local model directory's content identity (first 16 hex digits); ``hub-unpinned`` for a hub id."""
    from simcse_lab.modeling.resolve import model_identity

    path = described.get("path")
    if path and Path(path).is_dir():
        return model_identity(path)[:16]
    return "hub-unpinned"


def check_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]+/[A-Za-z0-9._-]+", name):
        raise UserError(f"--mteb-name {name!r}: mteb names a model ORGANISATION/NAME (letters, digits, '.', '_', '-')")
    return name


class SimcseLabModel(AbsEncoder):
    """``encoder`` (any SentenceEncoder) for ``mteb.evaluate``; ``state``: accelerate's PartialState when sharded."""

    def __init__(self, encoder: SentenceEncoder, *, name: str | None = None, state=None, progress: bool = False):
        self.model = encoder
        self.state = state
        self.progress = progress
        self.encoded = 0  # texts this process encoded (its shards, when sharded)
        self._memo, self._memo_key = {}, None
        described = encoder.describe()
        self.mteb_model_meta = ModelMeta.create_empty(overwrites=dict(
            name=check_name(name) if name else default_name(described), revision=model_revision(described),
            embed_dim=encoder.dim, similarity_fn_name=ScoringFunction.COSINE, framework=["PyTorch"],
            modalities=["text"], reference=None,
        ))

    def encoded_per_process(self) -> list[int]:
        """Texts each process encoded so far (a collective when sharded: every process must call it)."""
        if self.state is None:
            return [self.encoded]
        return all_gather_object(self.encoded)

    def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs) -> np.ndarray:
        texts = [text for batch in inputs for text in batch["text"]]
        memo = self._memo_for(task_metadata, hf_split, hf_subset)
        new = [text for text in dict.fromkeys(texts) if text not in memo]
        if new:
            memo.update(zip(new, self._encode_distinct(new)))
        if not texts:
            return np.zeros((0, self.model.dim), dtype=np.float32)
        return np.stack([memo[text] for text in texts])

    def _memo_for(self, task_metadata, hf_split: str, hf_subset: str) -> dict:
        """Vectors kept across the ``encode`` calls of one pair task's split and subset (its two columns share
        texts), as simcse-lab's STS evaluation encodes each distinct sentence once; a fresh dict for other tasks
        (a retrieval corpus is not held twice)."""
        kind = getattr(task_metadata, "type", None)
        key = (task_metadata.name, hf_split, hf_subset) if kind in PAIR_TASKS else None
        if key is None or key != self._memo_key:
            self._memo, self._memo_key = {}, key
        return self._memo

    def _encode_distinct(self, texts: list[str]) -> np.ndarray:
        if self.state is None:
            self.encoded += len(texts)
            return self.model.encode(texts, progress=self.progress)
        rank, world = self.state.process_index, self.state.num_processes
        begin, end = shard_range(len(texts), rank, world)
        self.encoded += end - begin
        part = error = None
        try:
            part = self.model.encode(texts[begin:end], progress=self.progress and rank == 0)
        except Exception as err:  # noqa: BLE001 - reported to every process, then raised everywhere
            error = err
        agree(rank, error)
        return np.concatenate(all_gather_object(part)).astype(np.float32, copy=False)
