"""Dynamic padding, and the one encoding path built on it.

:func:`pad_batch` turns a list of token id lists into one right-padded batch of model inputs; it is shared by
inference (:func:`encode_texts`) and training (each objective's ``collate``), so both feed the model exactly the
same kind of tensors. :func:`encode_texts` is how every encoder (:mod:`~simcse_lab.modeling.encoder`,
:mod:`~simcse_lab.modeling.onnx_encoder`, the layer analysis) turns sentences into vectors: tokenised once,
sorted by token length, batched with dynamic padding, under ``torch.inference_mode`` and the precision's
autocast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from simcse_lab.modeling.pooling import embed_mask, instruction_prefix
from simcse_lab.modeling.template import InputFormat
from simcse_lab.runtime.precision import autocast_context


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


@dataclass(frozen=True)
class EncodeSettings:
    """How :func:`encode_texts` batches and runs: sentences per batch, the tokeniser's truncation length, the
    precision (autocast) and device, a progress bar, and how a sentence becomes the model's input (``text``: an
    instruction before it and/or a template around it, :class:`~simcse_lab.modeling.template.InputFormat`)."""

    batch_size: int = 128
    max_length: int = 512
    precision: str = "fp32"
    device: torch.device | None = None
    progress: bool = False
    text: InputFormat = InputFormat()


def tokenize_texts(sentences: list[str], tokenizer, max_length: int, text: InputFormat):
    """The one place sentences become a loaded model's token ids: (ids, type ids or None, instruction tokens), each
    row the instruction + sentence (truncated to ``max_length``) and the template around it (the sentence truncated,
    never the template)."""
    prefix = instruction_prefix(tokenizer, text.instruction, max_length)
    sentences = [text.instruction + s for s in sentences] if text.instruction else sentences
    enc = tokenizer(list(sentences), truncation=True, max_length=max_length, padding=False,
                    return_token_type_ids="token_type_ids" in tokenizer.model_input_names)
    ids, types = text.wrap(enc["input_ids"], enc.get("token_type_ids"), max_length)
    return ids, types, prefix


def encode_texts(sentences: list[str], tokenizer, forward: Callable[[dict], torch.Tensor], dim: int,
                 settings: EncodeSettings = EncodeSettings()) -> np.ndarray:
    """Encode with any ``forward(batch_dict) -> (b, dim) tensor``: tokenise once (:func:`tokenize_texts`), sort by
    token length, batch with dynamic padding, run under inference_mode (+ bf16 autocast), return rows in input order.
    ``settings.text``: an instruction before each sentence (the batch then carries ``embed_mask`` without its tokens,
    :mod:`simcse_lab.modeling.pooling`) and/or a template around it (the batch carries its mask positions)."""
    device = settings.device or torch.device("cpu")
    if not sentences:
        return np.zeros((0, dim), dtype=np.float32)
    text, batch_size = settings.text, settings.batch_size
    ids, types, prefix = tokenize_texts(sentences, tokenizer, settings.max_length, text)
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    out = np.empty((len(ids), dim), dtype=np.float32)
    starts = range(0, len(order), batch_size)
    if settings.progress:
        starts = tqdm(starts, desc="encode", unit="batch")
    with torch.inference_mode(), autocast_context(settings.precision, device):
        for start in starts:
            idx = order[start: start + batch_size]
            batch = text.mark(pad_batch([ids[i] for i in idx], tokenizer.pad_token_id,
                                        [types[i] for i in idx] if types is not None else None))
            if prefix:
                batch["embed_mask"] = embed_mask(batch["attention_mask"], prefix)
            out[idx] = forward(batch).float().cpu().numpy()
    return out
