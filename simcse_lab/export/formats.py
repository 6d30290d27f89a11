"""Exporting a checkpoint as a sentence-transformers directory, a plain Hugging Face folder or ONNX.

Each export is verified by re-loading it and comparing embeddings with the source.

The source is read once as a sentence-transformers model (an ST directory as it is; a Hugging Face
checkpoint + ``--pooler`` through :func:`simcse_lab.modeling.st_format.save_sentence_transformer`). A
training run directory (``D/summary.json`` + ``D/best`` or ``D/final``, resolved by
:mod:`simcse_lab.modeling.resolve`) exports that model, and its model card shows the run's settings
and STS tables as the trainer wrote them to summary.json.

ONNX: sentence-transformers' ONNX backend exports through ``optimum.onnxruntime`` (package
``optimum-onnx``), which does not support transformers 5 (it pins transformers<4.58), so the graph is
exported with ``torch.onnx`` (the exporter optimum itself drives) and verified with onnxruntime. The
graph contains the whole pipeline (encoder + pooling + dense head, + normalisation where the source
has it): inputs ``input_ids``, ``attention_mask`` (+ ``token_type_ids`` where the model reads them: the names
are taken from the exported graph), output ``sentence_embedding``.
Such a directory is itself a ``--model`` for ``eval``, ``index build`` and ``search``
(:class:`~simcse_lab.modeling.onnx_encoder.OnnxEncoder`).

Every export holds the model's recipe (``simcse_lab_recipe.json``, :mod:`simcse_lab.modeling.recipe`). A decoder
LLM trained bidirectionally where transformers has no config flag for it (a run's ``best/`` in simcse-lab's own
layout) is exported only as ONNX, traced with its bidirectional mask; ``sentence-transformers`` and ``hf`` would
run it causal and are refused in one line before anything is loaded or written. A ConPVP model (a continuous
prompt: :mod:`simcse_lab.modeling.continuous_prompt`) is refused in every format in one line: its own layout, as
training wrote it, is what embeds it.

``--quantize int8`` (ONNX only) then applies onnxruntime's dynamic quantization: int8 weights (one scale per
output channel) for the matmuls and the embedding tables, activations quantised per batch at run time. The fp32 graph is verified
first (1e-4), then the int8 graph against the same fp32 source with a tolerance that fits 8-bit weights
(``INT8_TOLERANCE``, on the cosine between each int8 vector and its fp32 one, and on each vector's error
relative to its own length, so that the bound means the same for a normalised model and for an unnormalised
[CLS] whose coordinates reach 5); the max abs diff is reported too. Only the int8 graph is kept.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from simcse_lab.errors import UserError
from simcse_lab.evaluation.sts import format_table
from simcse_lab.evaluation.vectors import l2_normalize
from simcse_lab.export import check_options
from simcse_lab.export.templated import (check_template_export, template_source, templated_recipe,
                                         write_templated_onnx)
from simcse_lab.io import check_replaceable, staged_dir
from simcse_lab.modeling.encoder import Encoder
from simcse_lab.modeling.loading import default_prompt, load_sentence_transformer, quiet, require_onnx
from simcse_lab.modeling.onnx_encoder import CONFIG as ONNX_CONFIG, GRAPH as ONNX_GRAPH, OnnxEncoder
from simcse_lab.modeling.attention import is_bidirectional, set_bidirectional
from simcse_lab.modeling.pooling import OWN_MODULES
from simcse_lab.modeling.lora import adapter_meta, is_adapter_dir, saved_recipe
from simcse_lab.modeling.recipe import EmbeddingRecipe, is_own_layout
from simcse_lab.modeling.resolve import is_sentence_transformers_dir, resolve
from simcse_lab.modeling.st_format import PooledLayers, layer_weights, model_recipe, save_sentence_transformer

TOLERANCE = {"sentence-transformers": 1e-5, "hf": 1e-5, "onnx": 1e-4}
# int8 weights move each vector a little in every coordinate: on the verification sentences all-MiniLM-L6-v2
# (normalised) gives min cosine 0.980 and relative error 0.20, a 60-step unsup run's unnormalised [CLS] 0.994 and
# 0.11 (its max abs diff, 0.20, is no guide: its coordinates reach 5.4). These bounds catch a broken graph; what
# int8 costs in STS and retrieval is measured, not bounded here: eval/serving.md
INT8_TOLERANCE = {"min_cosine": 0.95, "max_relative_error": 0.3}
# varied lengths, casing, punctuation and an out-of-vocabulary-ish word: the verification sample
VERIFY_SENTENCES = [
    "A man is playing a guitar.",
    "two dogs run on the beach",
    "hi",
    "The quick brown fox jumps over the lazy dog while the farmer watches from a distance.",
    "Stocks fell sharply on Tuesday after the central bank raised interest rates again.",
    "Zyxqwv blorptastic unfathomably!",
    "A woman slices an onion.",
    "Is this the right way to the station?",
]


def _source_path(spec: str) -> str | None:
    """The model path ``spec`` stands for, for the overwrite check; an unresolvable spec is reported by load_source."""
    try:
        return resolve(spec).path
    except UserError:
        return None


def load_source(spec: str, pooler: str | None, instruction: str | None = None):
    """(SentenceTransformer, description dict, summary path): the source as one canonical ST model (fp32, CPU);
    ``instruction`` (with a pooler) becomes its default prompt, left out of pooling."""
    source = resolve(spec)
    path, summary = source.path, source.summary
    if pooler is None and (not Path(path).is_dir() or is_sentence_transformers_dir(path)):
        enc = Encoder(path, precision="fp32", device="cpu")
        return enc.st_model, {"source": spec, "path": path, "pooler": OWN_MODULES}, summary
    enc = Encoder(path, pooler=pooler, precision="fp32", device="cpu", instruction=instruction)
    bidirectional = enc.family.causal and is_bidirectional(enc.hf_model)
    tmp = tempfile.mkdtemp(prefix="simcse-export-src-")
    try:
        if bidirectional and not enc.family.bidirectional_config:  # only an in-memory model can run it: made so
            set_bidirectional(enc.hf_model, False)                  # after the round trip (ONNX traces it)
        out = save_sentence_transformer(enc.hf_model, enc.tokenizer, enc.pooler, Path(tmp) / "st",
                                        PooledLayers(mlp=enc.mlp if enc.pooler == "cls" else None),
                                        max_seq_length=enc.max_length, instruction=enc.instruction)
        model = load_sentence_transformer(str(out), device="cpu")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if bidirectional:
        set_bidirectional(model[0].model, True)
    described = {"source": spec, "path": path, "pooler": enc.pooler}
    return model, {**described, "instruction": enc.instruction} if enc.instruction else described, summary


def refuse_unreproducible(spec: str, fmt: str) -> None:
    """A source in simcse-lab's own layout (a decoder run bidirectionally without a config flag for it) cannot be
    written as a directory sentence-transformers / AutoModel load: one line naming the formats that can."""
    path = _source_path(spec)
    recipe = saved_recipe(path) if path is not None and Path(path).is_dir() else None
    if recipe is not None and recipe.continuous_prompt:
        raise UserError(f"{spec}: a ConPVP model embeds every sentence through its learned continuous prompt, which a "
                        f"{fmt} export cannot carry; use the model directory as it is with simcse-lab (eval / "
                        f"analyze / index build --model {spec}): simcse-lab's own layout, prompt included")
    if fmt != "onnx" and path is not None and Path(path).is_dir() and (is_own_layout(path) or
                                                                      _bidirectional_adapter(path)):
        raise UserError(f"{spec}: a decoder LLM trained with bidirectional attention, which a {fmt} directory would "
                        f"run causal (transformers has no config flag for this family); export it with --format "
                        f"onnx, or use it as it is with simcse-lab (eval / index --model {spec})")


def _bidirectional_adapter(path: str) -> bool:
    """An adapter directory trained on a decoder run bidirectionally, on a family whose config cannot say so: its
    merged model is what simcse-lab's own layout holds for a merged run."""
    from simcse_lab.modeling.embedder import backbone_config
    from simcse_lab.modeling.families import family_of

    if not is_adapter_dir(path):
        return False
    meta = adapter_meta(path)
    family = family_of(backbone_config(meta.base_model)) if meta.recipe.bidirectional else None
    return family is not None and family.causal and not family.bidirectional_config


def export_recipe(model, description: dict):
    """The recipe written with an export: the source's pooler (a module list's SimCSE equivalent where it has
    one), bidirectional attention and EOS as the exported model runs them."""
    pooler = description["pooler"]
    if pooler == OWN_MODULES:
        try:
            pooler = describe_modules(model)["pooler"]
        except UserError:
            pass
    return model_recipe(model[0].model, model.tokenizer, pooler, default_prompt(model))


def st_encode(model, sentences: list[str]) -> np.ndarray:
    with torch.inference_mode():
        return model.encode(sentences, convert_to_numpy=True, batch_size=4).astype(np.float32)


# sentence-transformers Pooling mode -> the simcse-lab pooler of the same computation (layer poolers: below)
SIMCSE_POOLERS = {"mean": "avg", "lasttoken": "last_token", "weightedmean": "weighted_avg"}


def check_format_keeps_prompt(model, fmt: str) -> None:
    """A source with a default prompt (an instruction) exports only where the prompt travels with it: the plain HF
    folder and the ONNX graph take token ids without it, so they are refused with one line, before anything is
    written."""
    prompt = default_prompt(model)
    if prompt and fmt != "sentence-transformers":
        raise UserError(f"--format {fmt} would encode without the model's instruction {prompt!r} (its tokens are "
                        f"prepended and left out of pooling); export it as --format sentence-transformers")


# -- the simcse pooler behind a sentence-transformers module list (for the plain HF export) -------------
def describe_modules(model) -> dict:
    """{"pooler", "dense" (nn.Linear or None), "normalize"} for an ST model made of Transformer,
    [WeightedLayerPooling], Pooling(cls|mean), [Dense(tanh)], [Normalize]; UserError otherwise."""
    names = [type(m).__name__ for m in model]
    info = {"pooler": None, "dense": None, "normalize": "Normalize" in names}
    kinds = [n for n in names if n != "Normalize"]
    mode = None
    layer_pool = None
    for m in model:
        if type(m).__name__ == "Pooling":
            mode = m.pooling_mode if isinstance(m.pooling_mode, str) else None
        elif type(m).__name__ == "WeightedLayerPooling":
            layer_pool = m
        elif type(m).__name__ == "Dense":
            if not isinstance(m.activation_function, torch.nn.Tanh):
                raise UserError("the model's Dense module is not dense+tanh, which a plain HF export cannot express; "
                                "export it as sentence-transformers (or onnx)")
            info["dense"] = m.linear
    if kinds[:1] != ["Transformer"] or mode not in ("cls", *SIMCSE_POOLERS):
        raise UserError(f"modules {names} have no SimCSE pooler equivalent; export it as sentence-transformers")
    if layer_pool is not None:
        if mode != "mean":
            raise UserError(f"modules {names}: layer pooling without mean pooling has no SimCSE equivalent")
        layers = model[0].model.config.num_hidden_layers
        got = (layer_pool.layer_start, [float(w) for w in layer_pool.layer_weights.detach()])
        for name in ("avg_first_last", "avg_top2"):
            if got == layer_weights(name, layers) and info["pooler"] is None:
                info["pooler"] = name  # with 2 layers both name the same layers; the first is kept
        if info["pooler"] is None:
            raise UserError(f"WeightedLayerPooling {got} matches no SimCSE pooler; export it as sentence-transformers")
    elif mode in SIMCSE_POOLERS:
        info["pooler"] = SIMCSE_POOLERS[mode]
    else:
        info["pooler"] = "cls" if info["dense"] is not None else "cls_before_pooler"
    if info["dense"] is not None and info["pooler"] != "cls":
        raise UserError(f"modules {names}: a Dense head after {mode} pooling has no SimCSE equivalent")
    return info


# -- model card ---------------------------------------------------------------------------------------
# (card label, where the trainer writes it in summary.json)
CARD_FIELDS = (("objective", ("config", "objective")), ("base model", ("config", "model")),
               ("training data", ("config", "data")), ("pooler", ("config", "pooler")),
               ("mlp only in training", ("config", "mlp_only_train")), ("temperature", ("config", "temperature")),
               ("learning rate", ("config", "lr")), ("batch size", ("config", "batch_size")),
               ("max sequence length", ("config", "max_seq_len")), ("steps", ("steps",)),
               ("processes", ("world_size",)), ("best dev STS-B Spearman", ("best_dev_spearman",)))
STS_RESULTS = (("before training", "test_before"), ("after training", "test_after"))


def _lookup(summary: dict, keys: tuple[str, ...]):
    for key in keys:
        summary = summary.get(key) if isinstance(summary, dict) else None
    return summary


def model_card(description: dict, summary_path: Path | None, module_names: list[str]) -> str:
    lines = ["---", "library_name: sentence-transformers", "pipeline_tag: sentence-similarity",
             "tags: [sentence-transformers, simcse, simcse-lab]", "---", "",
             f"# {Path(description['path']).name}", "",
             f"Exported by `simcse-lab export` from `{description['source']}`.", "",
             f"- modules: {' -> '.join(module_names)}",
             f"- pooler: {description['pooler']}"]
    summary = None
    if summary_path is not None:
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, ValueError) as err:
            lines.append(f"- summary.json could not be read: {err}")
    if isinstance(summary, dict):
        lines += ["", "## Training (from summary.json)", ""]
        for label, keys in CARD_FIELDS:
            value = _lookup(summary, keys)
            if isinstance(value, (str, int, float, bool)):
                lines.append(f"- {label}: {value}")
        results = [(name, summary[key]) for name, key in STS_RESULTS if isinstance(summary.get(key), dict)]
        if results:
            table = format_table([r for _, r in results], [name for name, _ in results])
            lines += ["", "## STS test (Spearman x100, from summary.json)", "", "```", table, "```"]
        lines += ["", "<details><summary>summary.json</summary>", "", "```json",
                  json.dumps(summary, indent=2)[:20000], "```", "", "</details>"]
    lines += ["", "## Usage", "", "```python", "from sentence_transformers import SentenceTransformer",
              "model = SentenceTransformer('PATH')", "vectors = model.encode(['A sentence.'])", "```", ""]
    return "\n".join(lines)


# -- the three formats ----------------------------------------------------------------------------------
def _write_st(model, tmp: Path, card: str) -> None:
    model.save(str(tmp))
    (tmp / "README.md").write_text(card)


def _write_hf(model, tmp: Path) -> dict:
    info = describe_modules(model)
    backbone = model[0].model
    if info["dense"] is not None:
        head = getattr(getattr(backbone, "pooler", None), "dense", None)
        if not isinstance(head, torch.nn.Linear) or head.weight.shape != info["dense"].weight.shape:
            raise UserError("the model's dense head does not fit the backbone's pooler; export as sentence-transformers")
        head.load_state_dict(info["dense"].state_dict())
    backbone.save_pretrained(str(tmp))
    model.tokenizer.save_pretrained(str(tmp))
    meta = {"pooler": info["pooler"], "normalize": info["normalize"],
            "note": "encode with: simcse-lab eval --model THIS --pooler " + info["pooler"]}
    (tmp / "simcse_lab.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


class _Pipeline(torch.nn.Module):
    def __init__(self, model, input_names):
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs):
        return self.model(dict(zip(self.input_names, inputs)))["sentence_embedding"]


def _write_onnx(model, tmp: Path, opset: int = 17) -> dict:
    tokenizer = model.tokenizer
    sample = tokenizer(VERIFY_SENTENCES[:2], padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["sentence_embedding"] = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Pipeline(model.eval(), names), tuple(sample[n] for n in names), str(tmp / "model.onnx"),
                          input_names=names, output_names=["sentence_embedding"], dynamic_axes=axes,
                          opset_version=opset, dynamo=False)
    # the graph's own inputs: the exporter drops one the forward ignores (DeBERTa-v3 with type_vocab_size 0 never
    # reads token_type_ids, though its tokenizer returns them), and the encoder feeds exactly what this names
    onnx, _ = require_onnx()
    kept = {i.name for i in onnx.load(str(tmp / "model.onnx"), load_external_data=False).graph.input}
    names = [n for n in names if n in kept]
    tokenizer.save_pretrained(str(tmp))
    meta = {"inputs": names, "output": "sentence_embedding", "opset": opset,
            "max_seq_length": model.max_seq_length, "dimension": model.get_embedding_dimension(),
            "exporter": f"torch.onnx (torch {torch.__version__})", "quantization": None}
    (tmp / ONNX_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


class _DropMessage(logging.Filter):
    """Drops the log records whose message starts with ``prefix``."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def _quantize_int8(tmp: Path, meta: dict) -> dict:
    """Replace the verified fp32 graph in ``tmp`` by its int8 dynamic quantization."""
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = tmp / "model-fp32.onnx"
    (tmp / ONNX_GRAPH).rename(fp32)
    # per-channel weight scales (one per output column of a weight), finer than one scale per tensor; what int8
    # costs in STS-B and MRR@10 is measured in eval/serving.md. quantize_dynamic logs advice to run its
    # quant_pre_process first: on this graph (torch's export of a BERT) its symbolic shape inference stops with
    # "Incomplete symbolic shape inference", and without it (skip_symbolic_shape) the int8 vectors of
    # all-MiniLM-L6-v2 on the verification sentences came out the same (min cosine 0.9801, relative error 0.200
    # either way), so the advice is dropped rather than printed on every export
    advice = _DropMessage("Please consider to run pre-processing before quantization")
    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(fp32, tmp / ONNX_GRAPH, weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.getLogger().removeFilter(advice)
    fp32.unlink()
    meta = {**meta, "quantization": "int8",
            "quantizer": f"onnxruntime.quantization.quantize_dynamic (onnxruntime {onnxruntime.__version__}), "
                         f"per-channel int8 weights, activations quantised per batch"}
    (tmp / ONNX_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def onnx_encode(directory: Path, sentences: list[str]) -> np.ndarray:
    """Through the ONNX encoder every command uses for such a directory."""
    return OnnxEncoder(directory, batch_size=4).encode(sentences)


def max_relative_error(got: np.ndarray, reference: np.ndarray) -> float:
    """The largest ``|got_i - reference_i| / |reference_i|`` over the rows (Euclidean lengths, float64)."""
    got, reference = got.astype(np.float64), reference.astype(np.float64)
    lengths = np.maximum(np.linalg.norm(reference, axis=1), np.finfo(np.float64).tiny)
    return float(np.max(np.linalg.norm(got - reference, axis=1) / lengths))


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(l2_normalize(a, dtype=np.float64) * l2_normalize(b, dtype=np.float64), axis=1)))


def reload_encode(fmt: str, directory: Path, meta: dict | None, sentences: list[str]) -> np.ndarray:
    """Embeddings of ``sentences`` from the exported artefact, loaded the way a user would load it."""
    if fmt == "sentence-transformers":
        return st_encode(load_sentence_transformer(str(directory), device="cpu"), sentences)
    if fmt == "hf":
        vectors = Encoder(str(directory), pooler=meta["pooler"], precision="fp32", device="cpu",
                          batch_size=4).encode(sentences)
        return l2_normalize(vectors, dtype=np.float32) if meta["normalize"] else vectors
    return onnx_encode(directory, sentences)


@dataclass
class Source:
    """What an export writes and is verified against: the source's vectors of the verification sentences."""

    description: dict
    summary: Path | None
    reference: np.ndarray
    module_names: list[str]
    write: Callable[[str, Path], dict | None]  # (format, staging directory) -> the format's metadata
    recipe: EmbeddingRecipe


def plain_source(model_spec: str, fmt: str, pooler: str | None, instruction: str | None) -> Source:
    if instruction and pooler is None:
        raise UserError("--instruction applies to a Hugging Face checkpoint exported with a --pooler (a "
                        "sentence-transformers directory keeps its own prompts)")
    model, description, summary = load_source(model_spec, pooler, instruction)
    check_format_keeps_prompt(model, fmt)
    module_names = [type(m).__name__ for m in model]
    writers = {"sentence-transformers": lambda tmp: _write_st(model, tmp, model_card(description, summary,
                                                                                      module_names)),
               "hf": lambda tmp: _write_hf(model, tmp), "onnx": lambda tmp: _write_onnx(model, tmp)}
    return Source(description, summary, st_encode(model, VERIFY_SENTENCES), module_names,
                  lambda f, tmp: writers[f](tmp), export_recipe(model, description))


def templated_source(model_spec: str, pooler: str | None, template: tuple) -> Source:
    """A model that embeds inside a template (only ONNX reproduces it: :mod:`simcse_lab.export.templated`)."""
    source = resolve(model_spec)
    encoder = template_source(source.path, pooler, template)
    described = {"source": model_spec, "path": source.path, "pooler": "mask", "template": encoder.template.text,
                 "template_denoise": encoder.denoise_from is not None}
    names = ["Transformer", "MaskToken"] + (["TemplateDelta"] if encoder.denoise_from is not None else [])
    return Source(described, source.summary, encoder.encode(VERIFY_SENTENCES), names,
                  lambda f, tmp: write_templated_onnx(encoder, tmp, VERIFY_SENTENCES), templated_recipe(encoder))


def _verified(fmt: str, tmp: Path, meta: dict | None, reference: np.ndarray, output) -> float:
    """The max abs diff of the exported artefact's vectors to the source's; beyond the tolerance, one line."""
    got = reload_encode(fmt, tmp, meta, VERIFY_SENTENCES)
    if got.shape != reference.shape:
        raise UserError(f"export verification failed: shape {got.shape} != source {reference.shape}")
    diff = float(np.abs(got - reference).max())
    if not diff <= TOLERANCE[fmt]:
        raise UserError(f"export verification failed: max abs diff {diff:.3g} > {TOLERANCE[fmt]:g}; "
                        f"nothing written to {output}")
    return diff


def _quantized(tmp: Path, meta: dict, reference: np.ndarray, diff: float, output) -> tuple[dict, float]:
    """The int8 graph in place of the verified fp32 one, checked against the source: (report, max abs diff)."""
    with quiet():
        meta = _quantize_int8(tmp, meta)
    got = reload_encode("onnx", tmp, meta, VERIFY_SENTENCES)
    quantized = {"quantization": "int8", "fp32_max_abs_diff": diff, "fp32_tolerance": TOLERANCE["onnx"],
                 "min_cosine": min_cosine(got, reference),
                 "max_relative_error": max_relative_error(got, reference), "int8_tolerance": INT8_TOLERANCE}
    if not (quantized["max_relative_error"] <= INT8_TOLERANCE["max_relative_error"]
            and quantized["min_cosine"] >= INT8_TOLERANCE["min_cosine"]):
        raise UserError(f"int8 export verification failed: max relative error "
                        f"{quantized['max_relative_error']:.3g} (tolerance "
                        f"{INT8_TOLERANCE['max_relative_error']:g}), min cosine to fp32 "
                        f"{quantized['min_cosine']:.4f} (tolerance {INT8_TOLERANCE['min_cosine']:g}); "
                        f"nothing written to {output}")
    return quantized, float(np.abs(got - reference).max())


def export(model_spec: str, fmt: str, output, pooler: str | None = None, overwrite: bool = False,
           quantize: str | None = None, instruction: str | None = None,
           template: tuple[str | None, bool | None] = (None, None)) -> dict:
    """Export, verify, and move into place; returns a report dict (with ``max_abs_diff``; with ``quantize``
    also ``fp32_max_abs_diff`` and ``min_cosine``). ``template``: (``--template``, ``--template-denoise``)."""
    check_options(fmt, quantize)
    templated = check_template_export(model_spec, _source_path(model_spec), fmt, template[0])
    if not templated:
        refuse_unreproducible(model_spec, fmt)
    if fmt == "onnx":
        require_onnx()  # before anything is loaded or written
    output = Path(output)
    check_replaceable(output, "export", overwrite, sources=[model_spec, _source_path(model_spec)])
    source = templated_source(model_spec, pooler, template) if templated else \
        plain_source(model_spec, fmt, pooler, instruction)
    with staged_dir(output, kind="export") as tmp:  # replaces ``output`` only once verified; else deleted
        with quiet():
            meta = source.write(fmt, tmp)
        source.recipe.write(tmp)
        diff = _verified(fmt, tmp, meta, source.reference, output)
        quantized = {}
        if quantize == "int8":
            quantized, diff = _quantized(tmp, meta, source.reference, diff, output)
    pooler = source.description["pooler"] if meta is None or "pooler" not in meta else meta["pooler"]
    return {"format": fmt, "output": str(output), "source": model_spec, "source_path": source.description["path"],
            "pooler": pooler, "modules": source.module_names, "dimension": int(source.reference.shape[1]),
            "verified_sentences": len(source.reference), "max_abs_diff": diff,
            "tolerance": None if quantize else TOLERANCE[fmt], **quantized}
