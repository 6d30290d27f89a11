"""Exporting a model that embeds each sentence inside a template (PromptBERT: ``--pooler mask``, template denoising).

sentence-transformers cannot reproduce such a model with its own modules: it puts no text after the sentence and
subtracts nothing from the pooled vector. A ``sentence-transformers`` or ``hf`` export of it is therefore refused in
one line before anything is loaded or written (:func:`check_template_export`), naming what works: the model as it
is, in simcse-lab's own layout (``backbone/`` + ``simcse_lab_recipe.json``, what ``train`` writes for it, which
``eval`` / ``index`` / ``search`` load with the template), or ``--format onnx``.

The ONNX export (:func:`write_templated_onnx`) is a graph of the backbone, the state at the mask token and, with
denoising, the template's delta for each row's sentence length (the table of deltas for every length the model
can take is a constant of the graph: nothing to keep beside it). The template goes into ``onnx_config.json``; the
:class:`~simcse_lab.modeling.onnx_encoder.OnnxEncoder` tokenises each sentence into it, as every other encoder does.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

from simcse_lab.errors import UserError
from simcse_lab.modeling.denoise import template_delta
from simcse_lab.modeling.encoder import Encoder, use_template
from simcse_lab.modeling.loading import require_onnx
from simcse_lab.modeling.onnx_encoder import CONFIG as ONNX_CONFIG, GRAPH as ONNX_GRAPH
from simcse_lab.modeling.lora import saved_recipe
from simcse_lab.modeling.recipe import EmbeddingRecipe


def saved_template(path: str | None) -> EmbeddingRecipe | None:
    """The recipe of a local model that embeds inside a template, else None."""
    recipe = saved_recipe(path) if path is not None and os.path.isdir(path) else None
    return recipe if recipe is not None and recipe.template else None


def check_template_export(spec: str, path: str | None, fmt: str, template: str | None) -> bool:
    """Whether ``spec`` embeds inside a template (saved, or ``template`` asked for); a format that cannot reproduce
    that is one line naming what can."""
    recipe = saved_template(path)
    text = template or (recipe.template if recipe else "")
    if not text:
        return False
    if fmt != "onnx":
        raise UserError(f"{spec}: embeds each sentence inside the template {text!r} (read at its mask token, less the "
                        f"template's delta where denoised), which a {fmt} directory cannot reproduce "
                        f"(sentence-transformers puts no text after the sentence and subtracts nothing); export it "
                        f"with --format onnx, or use it as it is (eval / index --model {spec}: simcse-lab's own "
                        f"layout keeps the template)")
    return True


def template_source(path: str, pooler: str | None, template: tuple[str | None, bool | None]) -> Encoder:
    """The source as simcse-lab embeds it (fp32, CPU): its saved template, or ``template`` = (text, denoise)."""
    if pooler not in (None, "mask"):
        raise UserError(f"{path}: a templated model is read at its template's mask token; drop --pooler {pooler}")
    encoder = Encoder(path, pooler="mask", precision="fp32", device="cpu")
    use_template(encoder, *template)
    return encoder


class TemplatePipeline(torch.nn.Module):
    """input ids (in the template) -> the state at the mask token, less the delta for the sentence's length."""

    def __init__(self, encoder: Encoder, names: list[str]):
        super().__init__()
        self.backbone, self.names = encoder.hf_model, names
        self.mask_id, self.template_length = encoder.template.mask_id, encoder.template.length
        deltas = None
        if encoder.denoise_from is not None:  # every sentence length the model can take
            lengths = torch.arange(encoder.max_length - encoder.template.length + 1)
            with torch.no_grad():
                deltas = template_delta(encoder.hf_model, encoder.template, lengths, encoder.denoise_from)
        self.register_buffer("deltas", deltas)

    def forward(self, *inputs):
        batch = dict(zip(self.names, inputs))
        hidden = self.backbone(**batch).last_hidden_state
        position = (batch["input_ids"] == self.mask_id).long().argmax(1)
        vectors = hidden[torch.arange(hidden.shape[0]), position]
        if self.deltas is not None:
            vectors = vectors - self.deltas[batch["attention_mask"].sum(1) - self.template_length]
        return vectors


def write_templated_onnx(encoder: Encoder, tmp: Path, sample: list[str], opset: int = 17) -> dict:
    """``model.onnx`` (:class:`TemplatePipeline`), the tokenizer and ``onnx_config.json`` with the template."""
    tokenizer = encoder.tokenizer
    rows = [encoder.template.apply(ids, encoder.max_length) for ids in tokenizer(sample[:2])["input_ids"]]
    batch = tokenizer.pad({"input_ids": rows}, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]
    if "token_type_ids" in names:
        batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["sentence_embedding"] = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(TemplatePipeline(encoder, names).eval(), tuple(batch[n] for n in names),
                          str(tmp / ONNX_GRAPH), input_names=names, output_names=["sentence_embedding"],
                          dynamic_axes=axes, opset_version=opset, dynamo=False)
    onnx, _ = require_onnx()  # the graph's own inputs (the exporter drops one the forward ignores)
    kept = {i.name for i in onnx.load(str(tmp / ONNX_GRAPH), load_external_data=False).graph.input}
    names = [n for n in names if n in kept]
    tokenizer.save_pretrained(str(tmp))
    meta = {"inputs": names, "output": "sentence_embedding", "opset": opset, "max_seq_length": encoder.max_length,
            "dimension": encoder.dim, "exporter": f"torch.onnx (torch {torch.__version__})", "quantization": None,
            "template": encoder.template.text, "template_denoise": encoder.denoise_from is not None}
    (tmp / ONNX_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def templated_recipe(encoder: Encoder) -> EmbeddingRecipe:
    return EmbeddingRecipe(pooler="mask", template=encoder.template.text,
                           template_denoise=encoder.denoise_from is not None)
