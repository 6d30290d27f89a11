"""An exported ONNX directory as a sentence encoder: CPU serving through onnxruntime, fp32 or int8.

``simcse-lab export --format onnx [--quantize int8]`` writes ``model.onnx`` (the whole pipeline: encoder,
pooling, dense head and normalisation where the source has them; inputs ``input_ids``,
``attention_mask`` [+ ``token_type_ids``], output ``sentence_embedding``), the tokenizer, and
``onnx_config.json`` (inputs, output, dimension, max_seq_length, quantization). Such a directory is
accepted as ``--model`` wherever sentences are encoded (``eval``, ``retrieval-eval``, ``index build``,
``search`` through the index's manifest): :func:`simcse_lab.modeling.encoder.load_encoder` returns an
:class:`OnnxEncoder` for it.

Encoding follows the same path as every other encoder (:func:`simcse_lab.modeling.batching.encode_texts`:
tokenised once, length-sorted batches, dynamic padding), with onnxruntime running each batch. The graph
computes at its own precision (fp32, or int8 weights with dynamically quantised activations), so
``--precision`` is ``auto`` or that precision. The graph is loaded by
:func:`simcse_lab.modeling.loading.load_onnx_session` (bytes only, no custom operators) and the tokenizer
by :func:`~simcse_lab.modeling.loading.load_tokenizer` (no code from the folder).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from simcse_lab.errors import InputError, UserError, first_line
from simcse_lab.modeling.batching import EncodeSettings, encode_texts
from simcse_lab.modeling.families import GENERIC, ensure_pad_token
from simcse_lab.modeling.loading import load_onnx_session, load_tokenizer
from simcse_lab.modeling.pooling import OWN_MODULES
from simcse_lab.modeling.resolve import load_error
from simcse_lab.modeling.template import InputFormat, compile_template

CONFIG = "onnx_config.json"
GRAPH = "model.onnx"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
QUANTIZATIONS = (None, "int8")
# the files a tokenizer is built from (a fast tokenizer's definition, or a slow one's vocabulary / sentencepiece model)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")


def is_onnx_dir(path) -> bool:
    return (Path(path) / CONFIG).is_file() and (Path(path) / GRAPH).is_file()


def read_onnx_config(directory) -> dict:
    """``onnx_config.json`` of an export, checked field by field (one line naming the file otherwise)."""
    path = Path(directory) / CONFIG
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(path, None, f"not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise InputError(path, None, "not an ONNX export config (a JSON object expected)")
    inputs = meta.get("inputs")
    if not (isinstance(inputs, list) and all(isinstance(name, str) for name in inputs)
            and {"input_ids", "attention_mask"} <= set(inputs) <= set(INPUTS)
            and len(set(inputs)) == len(inputs)):
        raise InputError(path, None, f"inputs must name input_ids, attention_mask [and token_type_ids], got {inputs!r}")
    for key in ("dimension", "max_seq_length"):
        if isinstance(meta.get(key), bool) or not isinstance(meta.get(key), int) or meta[key] < 1:
            raise InputError(path, None, f"{key} must be a positive integer, got {meta.get(key)!r}")
    if not isinstance(meta.get("output"), str):
        raise InputError(path, None, f"output must be the graph's output name, got {meta.get('output')!r}")
    if not isinstance(meta.get("template", ""), str):
        raise InputError(path, None, f"template must be a string, got {meta.get('template')!r}")
    if meta.get("quantization") not in QUANTIZATIONS:
        raise InputError(path, None, f"quantization must be null or 'int8', got {meta.get('quantization')!r}")
    return meta


class OnnxEncoder:
    """A :class:`~simcse_lab.modeling.sentence_encoder.SentenceEncoder` over an exported ONNX directory."""

    def __init__(self, path, name: str | None = None, precision: str = "auto", batch_size: int = 128,
                 max_length: int | None = None, threads: int | None = None):
        self.path, self.graph = str(path), Path(path) / GRAPH
        self.model_name = name or self.path
        meta = read_onnx_config(path)
        self.precision = meta.get("quantization") or "fp32"
        if precision not in ("auto", self.precision):
            raise UserError(f"{self.model_name}: an ONNX export computes at its own precision ({self.precision}); "
                            f"use --precision auto")
        self.inputs, self.output = meta["inputs"], meta["output"]
        self.dim = meta["dimension"]
        self.max_length = min(max_length or meta["max_seq_length"], meta["max_seq_length"])
        self.batch_size = batch_size
        if not any((Path(path) / name).is_file() for name in TOKENIZER_FILES):  # before the graph is loaded
            raise UserError(f"{self.path}: no tokenizer files ({' / '.join(TOKENIZER_FILES)}); an ONNX export "
                            f"holds its tokenizer beside model.onnx")
        # the torch thread count: onnxruntime then uses the cores the rest of the process is told to
        self.session = load_onnx_session(self.graph, threads or torch.get_num_threads())
        names = {i.name for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if names != set(self.inputs) or self.output not in outputs:
            raise InputError(self.graph, None, f"graph inputs {sorted(names)} / outputs do not match {CONFIG}")
        width = outputs[self.output].shape[-1] if outputs[self.output].shape else None
        if isinstance(width, int) and width != self.dim:  # a symbolic width is checked on the first batch
            raise InputError(self.graph, None, f"output {self.output!r} has {width} dimensions, {CONFIG} says "
                                               f"{self.dim}")
        try:
            # an export saves the pad token its source padded with; a graph from elsewhere gets the generic fallback
            self.tokenizer = ensure_pad_token(load_tokenizer(self.path), GENERIC, self.model_name)
        except (OSError, ValueError) as err:
            raise load_error(self.model_name, err) from None
        # a templated model's export: its tokenisation puts each sentence in the template (the graph reads the mask
        # token and subtracts the template's delta itself)
        self.template = compile_template(self.tokenizer, meta["template"], str(Path(path) / CONFIG)) \
            if meta.get("template") else None

    def describe(self) -> dict:
        info = {"model": self.model_name, "path": self.path, "backend": "onnx", "pooler": OWN_MODULES,
                "precision": self.precision, "device": "cpu"}
        if self.template is not None:
            info["template"] = self.template.text
        return info

    def _forward(self, batch: dict) -> torch.Tensor:
        ids = batch["input_ids"]
        feed = {name: batch.get(name, torch.zeros_like(ids)).numpy().astype(np.int64) for name in self.inputs}
        try:
            out = self.session.run([self.output], feed)[0]
        except Exception as err:  # onnxruntime's own exception types: one line naming the graph, not a traceback
            raise InputError(self.graph, None, f"onnxruntime failed on a batch of {tuple(ids.shape)} token ids "
                                               f"({first_line(err)})") from None
        if out.ndim != 2 or out.shape[1] != self.dim:
            raise InputError(self.graph, None, f"output {self.output!r} has shape {out.shape}, expected "
                                               f"(batch, {self.dim}) as {CONFIG} says")
        return torch.from_numpy(out)

    def encode(self, sentences: list[str], progress: bool = False) -> np.ndarray:
        settings = EncodeSettings(batch_size=self.batch_size, max_length=self.max_length, precision="fp32",
                                  device=torch.device("cpu"), progress=progress, text=InputFormat(template=self.template))
        return encode_texts(sentences, self.tokenizer, self._forward, self.dim, settings)
