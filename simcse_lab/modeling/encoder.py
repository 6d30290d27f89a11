"""Fast, faithful sentence encoding for evaluation and analysis.

An :class:`Encoder` turns sentences into vectors either through a sentence-transformers directory's
own modules (the default for such a directory) or through a Hugging Face encoder plus one of
SimCSE's poolers. Whatever the path, encoding is done the fast way: sentences are tokenised once,
sorted by token length and batched with dynamic padding, under ``torch.inference_mode`` and, with
``precision="auto"`` on hardware that supports it, bf16 autocast.
"""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache

import numpy as np
import torch

from simcse_lab.errors import UserError
from simcse_lab.modeling.resolve import is_sentence_transformers_dir, resolve_model, transformer_subdir
from simcse_lab.modeling.pooling import NEEDS_HIDDEN_STATES, POOLERS, pool

PRECISIONS = ("auto", "fp32", "bf16")


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True on CPUs with native bf16 matmul (AMX or AVX512-BF16)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def autocast_context(precision: str, device: torch.device):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def pad_batch(token_ids: list[list[int]], pad_id: int, type_ids: list[list[int]] | None = None) -> dict:
    """Right-pad a list of token id lists to the longest one (dynamic padding)."""
    width = max(len(ids) for ids in token_ids)
    input_ids = torch.full((len(token_ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(token_ids), width), dtype=torch.long)
    for row, ids in enumerate(token_ids):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, : len(ids)] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask}
    if type_ids is not None:
        token_type_ids = torch.zeros_like(input_ids)
        for row, ids in enumerate(type_ids):
            token_type_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        batch["token_type_ids"] = token_type_ids
    return batch


def pooler_head(model) -> torch.nn.Module | None:
    """The model's own pooler as a head on the [CLS] vector (dense + activation), if it has one.

    BertPooler-style modules index [:, 0] themselves; ``pool`` hands the head the [CLS] vector."""
    pooler = getattr(model, "pooler", None)
    if pooler is None or not hasattr(pooler, "dense") or not hasattr(pooler, "activation"):
        return None
    return torch.nn.Sequential(pooler.dense, pooler.activation)


def hub_is_sentence_transformers(repo: str) -> bool:
    """Whether a hub repository is a sentence-transformers model (has modules.json)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        hf_hub_download(repo, "modules.json")
        return True
    except EntryNotFoundError:  # includes "not in the local cache" when offline
        return False
    except Exception as err:  # network, auth, unknown repo: one line, not a traceback
        raise _load_error(repo, err) from None


def _load_error(model: str, err: Exception) -> UserError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    hint = " (HF_HUB_OFFLINE=1: only local directories and aliases work)" if offline else ""
    first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
    return UserError(f"cannot load model {model!r}{hint}: {first}")


class Encoder:
    """Encode sentences with a checkpoint.

    ``pooler=None`` means: a sentence-transformers directory is run through its own modules; a
    plain Hugging Face model uses SimCSE's default ``cls``. Any explicit pooler runs the underlying
    Hugging Face encoder with that pooler.
    """

    def __init__(self, model: str, pooler: str | None = None, precision: str = "auto",
                 batch_size: int = 128, max_length: int | None = None, device: str | None = None):
        self.model_name = model
        self.path = resolve_model(model)
        self.device = torch.device(device) if device else default_device()
        self.precision = resolve_precision(precision, self.device)
        self.batch_size = batch_size
        local_st = os.path.isdir(self.path) and is_sentence_transformers_dir(self.path)
        hub_st = pooler is None and not os.path.isdir(self.path) and hub_is_sentence_transformers(self.path)
        if pooler is None and (local_st or hub_st):
            self.backend = "sentence-transformers"
            self.pooler = "modules"
            self._load_st(max_length)
        else:
            if pooler is None:
                pooler = "cls"
            if pooler not in POOLERS:
                raise UserError(f"unknown pooler {pooler!r}; choose from {', '.join(POOLERS)}")
            self.backend = "hf"
            self.pooler = pooler
            self._load_hf(transformer_subdir(self.path) if local_st else self.path, max_length)

    # -- loading ---------------------------------------------------------------------------------
    def _load_st(self, max_length: int | None) -> None:
        from simcse_lab.modeling.loading import load_sentence_transformer

        try:
            self.st_model = load_sentence_transformer(self.path, device=str(self.device))
        except (OSError, ValueError) as err:
            raise _load_error(self.model_name, err) from None
        self.st_model.eval()
        self.tokenizer = self.st_model.tokenizer
        self.max_length = max_length or self.st_model.max_seq_length or 512
        self.dim = self.st_model.get_embedding_dimension()

    def _load_hf(self, path: str, max_length: int | None) -> None:
        from simcse_lab.modeling.loading import load_model, load_tokenizer

        try:
            self.tokenizer = load_tokenizer(path)
            self.hf_model, loading_info = load_model(path, output_loading_info=True)
        except (OSError, ValueError) as err:
            raise _load_error(self.model_name, err) from None
        self.hf_model.to(self.device).eval()
        self.mlp = pooler_head(self.hf_model)
        if self.pooler == "cls":
            missing = [k for k in loading_info.get("missing_keys", []) if "pooler" in k]
            if self.mlp is None or missing:
                raise UserError(
                    f"{self.model_name}: pooler 'cls' needs trained pooler/MLP weights, which this checkpoint "
                    f"lacks; use --pooler cls_before_pooler"
                )
        limit = getattr(self.hf_model.config, "max_position_embeddings", 512)
        self.max_length = min(max_length or limit, limit)
        self.dim = self.hf_model.config.hidden_size

    # -- encoding --------------------------------------------------------------------------------
    def describe(self) -> dict:
        return {"model": self.model_name, "path": self.path, "backend": self.backend,
                "pooler": self.pooler, "precision": self.precision, "device": str(self.device)}

    def _forward(self, batch: dict) -> torch.Tensor:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        if self.backend == "sentence-transformers":
            return self.st_model(batch)["sentence_embedding"]
        out = self.hf_model(**batch, output_hidden_states=self.pooler in NEEDS_HIDDEN_STATES)
        return pool(self.pooler, batch["attention_mask"], out.last_hidden_state, out.hidden_states, self.mlp)

    def encode(self, sentences: list[str], progress: bool = False) -> np.ndarray:
        """float32 array (len(sentences), dim), in the order given."""
        return encode_texts(sentences, self.tokenizer, self._forward, self.dim, batch_size=self.batch_size,
                            max_length=self.max_length, precision=self.precision, device=self.device,
                            progress=progress)


def encode_texts(sentences: list[str], tokenizer, forward, dim: int, *, batch_size: int = 128,
                 max_length: int = 512, precision: str = "fp32", device: torch.device | None = None,
                 progress: bool = False) -> np.ndarray:
    """Encode with any ``forward(batch_dict) -> (b, dim) tensor``: tokenise once, sort by token length,
    batch with dynamic padding, run under inference_mode (+ bf16 autocast), return rows in input order."""
    device = device or torch.device("cpu")
    if not sentences:
        return np.zeros((0, dim), dtype=np.float32)
    enc = tokenizer(list(sentences), truncation=True, max_length=max_length, padding=False,
                    return_token_type_ids="token_type_ids" in tokenizer.model_input_names)
    ids, types = enc["input_ids"], enc.get("token_type_ids")
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    out = np.empty((len(ids), dim), dtype=np.float32)
    starts = range(0, len(order), batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="encode", unit="batch")
    with torch.inference_mode(), autocast_context(precision, device):
        for start in starts:
            idx = order[start: start + batch_size]
            batch = pad_batch([ids[i] for i in idx], tokenizer.pad_token_id,
                              [types[i] for i in idx] if types is not None else None)
            out[idx] = forward(batch).float().cpu().numpy()
    return out
