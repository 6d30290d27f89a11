"""Fast, faithful sentence encoding for evaluation, analysis and search.

An :class:`Encoder` turns sentences into vectors either through a sentence-transformers directory's
own modules (the default for such a directory) or through a Hugging Face encoder plus one of
SimCSE's poolers; an :class:`EmbedderEncoder` does the same for the model being trained. Whatever the
path, encoding is done the fast way (:func:`~simcse_lab.modeling.batching.encode_texts`): sentences are tokenised once, sorted by
token length and batched with dynamic padding, under ``torch.inference_mode`` and, with
``precision="auto"`` on hardware that supports it, bf16 autocast. Both implement
:class:`~simcse_lab.modeling.sentence_encoder.SentenceEncoder`. :func:`load_encoder` is what commands
call: an :class:`Encoder`, or for an exported ONNX directory an
:class:`~simcse_lab.modeling.onnx_encoder.OnnxEncoder` (onnxruntime, fp32 or int8).

A model directory simcse-lab wrote carries its :class:`~simcse_lab.modeling.recipe.EmbeddingRecipe`; the
:class:`Encoder` applies it (the pooler when none is asked for, bidirectional attention of a decoder, EOS
appended), so a trained model embeds as training did, also from simcse-lab's own layout (``backbone/``), which
only this loader runs. A decoder without a recipe (a hub model) runs as shipped: causal, with its family's EOS.
``bidirectional`` (``--bidirectional`` / ``--no-bidirectional``) overrides either for a decoder.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from simcse_lab.errors import UserError
from simcse_lab.modeling.batching import EncodeSettings, encode_texts
from simcse_lab.modeling.attention import is_bidirectional, set_bidirectional
from simcse_lab.modeling.continuous_prompt import load_continuous_prompt
from simcse_lab.modeling.embedder import SimCSEEmbedder, backbone_mlp, load_adapter_embedder
from simcse_lab.modeling.families import check_pooler_fits, ensure_eos, ensure_pad_token, family_of
from simcse_lab.modeling.loading import (default_prompt, load_config, load_model, load_sentence_transformer,
                                         load_tokenizer)
from simcse_lab.modeling.onnx_encoder import OnnxEncoder, is_onnx_dir
from simcse_lab.modeling.pooling import (NEEDS_HIDDEN_STATES, OWN_MODULES, check_instruction, check_pooler,
                                         embed_mask, instruction_length, instruction_prefix, model_inputs, pool)
from simcse_lab.modeling.denoise import check_denoise, denoised
from simcse_lab.modeling.projection import project
from simcse_lab.modeling.lora import is_adapter_dir, saved_recipe
from simcse_lab.modeling.recipe import BACKBONE_DIR, is_own_layout
from simcse_lab.modeling.resolve import (hub_is_sentence_transformers, is_sentence_transformers_dir, load_error,
                                         resolve_model, transformer_subdir)
from simcse_lab.modeling.template import InputFormat, compile_template
from simcse_lab.runtime.precision import default_device, resolve_precision


class Encoder:
    """Encode sentences with a checkpoint.

    ``pooler=None`` means: a sentence-transformers directory is run through its own modules (then
    ``self.pooler`` stays None and results record ``OWN_MODULES``); a plain Hugging Face model uses its
    backbone family's natural pooler (``cls`` where it has a sentence token, else ``avg``). Any explicit pooler
    runs the underlying Hugging Face encoder with that pooler; one the family cannot compute (``cls`` on a T5)
    is refused before the weights load. ``self.recipe``: the saved model's recipe (None: it has none).
    ``bidirectional``: a decoder's attention (None: as the recipe says, else causal as shipped). ``instruction``:
    text put before every sentence, its tokens not pooled (None: as the recipe says; a sentence-transformers
    directory run through its own modules applies its own default prompt).
    """

    def __init__(self, model: str, pooler: str | None = None, precision: str = "auto",
                 batch_size: int = 128, max_length: int | None = None, device: str | None = None,
                 bidirectional: bool | None = None, instruction: str | None = None):
        self.model_name = model
        self.path = resolve_model(model)
        self.device = torch.device(device) if device else default_device()
        self.precision = resolve_precision(precision, self.device)
        self.batch_size = batch_size
        adapter = is_adapter_dir(self.path)  # --no-merge-lora: the base model and the adapter, merged here
        self.recipe = saved_recipe(self.path) if os.path.isdir(self.path) else None
        # the text put before every sentence, out of the pooled tokens: asked for, else the recipe's, else none
        self.instruction = instruction if instruction is not None else (self.recipe.instruction if self.recipe else "")
        self.template, self.denoise_from = None, None  # set_template: the recipe's, or --template
        self._asked = bidirectional
        self.bidirectional = bidirectional if bidirectional is not None else bool(self.recipe and
                                                                                  self.recipe.bidirectional)
        self.prompt = None  # a ConPVP model's continuous prompt (its recipe's), through which it embeds
        if adapter:
            self.backend = "hf"
            self.pooler = check_pooler(pooler) if pooler is not None else None  # None: the adapter's recipe's
            self._load_adapter(max_length)
            return
        if self.recipe is not None and is_own_layout(self.path):  # only this loader runs it: the recipe's pooler
            self.backend = "hf"
            self.pooler = check_pooler(pooler or self.recipe.pooler)
            self._load_hf(os.path.join(self.path, BACKBONE_DIR), max_length)
            self._load_prompt(pooler)
            return
        if self.recipe is not None and self.recipe.continuous_prompt:
            raise UserError(f"{model}: its recipe declares a continuous prompt, which only simcse-lab's own layout "
                            f"(recipe + backbone/ + continuous_prompt.safetensors) carries")
        local_st = os.path.isdir(self.path) and is_sentence_transformers_dir(self.path)
        hub_st = pooler is None and not os.path.isdir(self.path) and hub_is_sentence_transformers(self.path)
        if pooler is None and (local_st or hub_st):
            if instruction:
                raise UserError(f"{model}: a sentence-transformers directory runs its own modules and prompts; "
                                f"drop --instruction, or give --pooler to run its transformer with the instruction")
            self.backend = "sentence-transformers"
            self.pooler = None
            self._load_st(max_length)
        else:
            self.backend = "hf"
            self.pooler = check_pooler(pooler) if pooler is not None else None  # None: the family's natural one
            self._load_hf(transformer_subdir(self.path) if local_st else self.path, max_length)

    def embedder_state_shapes(self) -> dict[str, tuple[int, ...]]:
        """{name: shape} of the tensors of a SimCSEEmbedder state that :meth:`from_embedder_state` puts into this
        encoder's model (``backbone.*``; ``mlp.*`` into its pooler layer, where it has one), to check a state
        against before loading it."""
        own = self.hf_model.state_dict()
        shapes = {f"backbone.{k}": tuple(v.shape) for k, v in own.items() if not k.startswith("pooler.")}
        shapes.update({f"mlp.{k[len('pooler.'):]}": tuple(v.shape) for k, v in own.items() if k.startswith("pooler.")})
        return shapes

    @classmethod
    def from_embedder_state(cls, model: str, state_dict: dict, pooler: str, name: str, **kwargs) -> Encoder:
        """An Encoder with ``model``'s architecture and tokenizer holding the weights of a
        :class:`~simcse_lab.modeling.embedder.SimCSEEmbedder` state dict (e.g. a training checkpoint's
        ``state["model"]``, read by whoever owns the checkpoint format): ``backbone.*`` become the transformer's
        weights, SimCSE's ``mlp.*`` its pooler head (used by ``cls``); ``lm_head.*`` (``--do-mlm``) is not part
        of an encoder. ``name`` is what results record as the model. Refuses a state that does not fit."""
        check_pooler(pooler)
        if "continuous_prompt.vectors" in state_dict:
            raise UserError(f"{name}: a ConPVP state, whose continuous prompt this rebuild does not carry; analyze the "
                            f"run's best/ or final/ model instead")
        encoder = cls(model, pooler=pooler if pooler != "cls" else "cls_before_pooler", **kwargs)
        backbone = {k[len("backbone."):]: v for k, v in state_dict.items() if k.startswith("backbone.")}
        head = {k[len("mlp."):]: v for k, v in state_dict.items() if k.startswith("mlp.")}
        stray = [k for k in state_dict if not k.startswith(("backbone.", "mlp.", "lm_head.", "projection"))]
        if stray or not backbone:
            raise UserError(f"{name}: not a SimCSE embedder state (keys such as {(stray or list(state_dict))[:3]})")
        # SimCSEEmbedder drops the backbone's own pooler layer: keep the loaded one unless the state has an MLP
        has_own_pooler = getattr(encoder.hf_model, "pooler", None) is not None
        if head and has_own_pooler:
            backbone.update({f"pooler.{k}": v for k, v in head.items()})
        missing, unexpected = encoder.hf_model.load_state_dict(backbone, strict=False)
        missing = [k for k in missing if not (k.startswith("pooler.") and not head)]
        if missing or unexpected:
            raise UserError(f"{name}: the weights do not fit {model} (missing {missing[:3]}, unexpected "
                            f"{unexpected[:3]})")
        if pooler == "cls":
            if not head:
                raise UserError(f"{name}: pooler 'cls' needs the run's trained MLP, which this state lacks; "
                                f"use cls_before_pooler")
            if not has_own_pooler:
                raise UserError(f"{name}: {model} has no pooler layer to hold the run's MLP; use cls_before_pooler")
            encoder.pooler = "cls"
            encoder.mlp = backbone_mlp(encoder.hf_model)
        if "projection.weight" in state_dict:  # Sentence-T5's head, as the run trained it
            weight = state_dict["projection.weight"]
            encoder.projection = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False).to(encoder.device)
            encoder.projection.weight.data.copy_(weight)
            encoder.normalize = bool(state_dict.get("projection_normalize", torch.tensor(False)))
            encoder.dim = weight.shape[0]
        encoder.model_name = name
        encoder.hf_model.eval()
        return encoder

    # -- loading ---------------------------------------------------------------------------------
    def _load_st(self, max_length: int | None) -> None:
        try:
            self.st_model = load_sentence_transformer(self.path, device=str(self.device))
        except (OSError, ValueError) as err:
            raise load_error(self.model_name, err) from None
        self.st_model.eval()
        config = getattr(getattr(self.st_model[0], "model", None), "config", None)  # its Transformer module's
        self.family = family_of(config) if config is not None else None
        self.tokenizer = self.st_model.tokenizer
        self.max_length = max_length or self.st_model.max_seq_length or 512
        if self.family is not None:
            ensure_pad_token(self.tokenizer, self.family, self.model_name)
            self.max_length = min(self.max_length, self.family.max_tokens(config))
            # the modules run as saved (a recipe's EOS is in the saved tokenizer already) unless asked otherwise
            self._decoder_rules(self.st_model[0].model, bool(self.recipe and self.recipe.append_eos), self._asked)
        self.dim = self.st_model.get_embedding_dimension()
        # its default prompt (an instruction saved by simcse-lab, or the hub model's own): put before every sentence
        # here as SentenceTransformer.encode does, its length handed to Pooling (which drops it if so configured)
        self.instruction = default_prompt(self.st_model)

    def _load_hf(self, path: str, max_length: int | None) -> None:
        try:
            config = load_config(path)
        except (OSError, ValueError) as err:
            raise load_error(self.model_name, err) from None
        self.family = family_of(config)
        self._choose_pooler()
        try:
            self.tokenizer = ensure_pad_token(load_tokenizer(path), self.family, self.model_name)
            self.hf_model, loading_info = load_model(path, config, output_loading_info=True)
        except (OSError, ValueError) as err:
            raise load_error(self.model_name, err) from None
        self._finish_hf(max_length, [k for k in loading_info.get("missing_keys", []) if "pooler" in k])

    def _load_adapter(self, max_length: int | None) -> None:
        """An adapter directory (``train --no-merge-lora``): its base model with the adapter merged into the weights,
        loaded as ``train`` reads it back for its test table (the base checked against the identity the adapter
        recorded; the adapter's tokenizer), embedding by the adapter's recipe unless a pooler is given."""
        tokenizer, embedder = load_adapter_embedder(self.path)
        self.family, self.tokenizer = embedder.family, tokenizer
        self._choose_pooler()
        self.hf_model = embedder.backbone.merge_and_unload()
        self._finish_hf(max_length, [])

    def _choose_pooler(self) -> None:
        """The pooler asked for, else the recipe's, else the family's natural one, checked against the family and
        the instruction."""
        saved = self.recipe.pooler if self.recipe is not None else None
        self.pooler = check_pooler_fits(self.family, self.pooler or saved or self.family.natural_pooler,
                                        self.model_name)
        check_instruction(self.pooler, self.instruction)

    def _finish_hf(self, max_length: int | None, missing_head: list[str]) -> None:
        """The loaded Hugging Face model made ready to encode: a decoder's attention and EOS rule, eval mode on the
        device, the pooler's MLP head (``missing_head``: its weights the checkpoint lacked), the length limit, and
        the recipe's template."""
        self._decoder_rules(self.hf_model, self.recipe.append_eos if self.recipe else self.family.append_eos,
                            self.bidirectional)
        self.hf_model.to(self.device).eval()
        self.mlp = backbone_mlp(self.hf_model)
        self.projection, self.normalize = None, False  # a run's projection head (from_embedder_state)
        if self.pooler == "cls" and (self.mlp is None or missing_head):
            raise UserError(f"{self.model_name}: pooler 'cls' needs trained pooler/MLP weights, which this checkpoint "
                            f"lacks; use --pooler cls_before_pooler")
        limit = self.family.max_tokens(self.hf_model.config)  # e.g. RoBERTa: 514 rows, 512 usable positions
        self.max_length = min(max_length or limit, limit)
        self.dim = self.hf_model.config.hidden_size
        if self.recipe is not None and self.recipe.template:  # as the model was trained (its pooler may be another)
            self.set_template(self.recipe.template, self.recipe.template_denoise and self.pooler == "mask")

    def _load_prompt(self, asked: str | None) -> None:
        """A ConPVP model (:mod:`simcse_lab.modeling.continuous_prompt`): every sentence embedded as training's
        anchor was, through the saved continuous prompt; another pooler or an instruction is one line."""
        length = self.recipe.continuous_prompt
        if not length:
            return
        if asked not in (None, self.recipe.pooler) or self.instruction:
            given = f"--pooler {asked}" if asked not in (None, self.recipe.pooler) else "--instruction"
            raise UserError(f"{self.model_name}: a ConPVP model embeds every sentence through its continuous prompt, "
                            f"read at the prompt's mask token; drop {given}")
        limit = self.family.max_tokens(self.hf_model.config)
        self.prompt = load_continuous_prompt(self.path, self.tokenizer, length, self.hf_model.config, limit)
        self.prompt.to(self.device)

    def _decoder_rules(self, model, append_eos: bool, attention: bool | None) -> None:
        """A decoder's EOS rule on the tokenizer and its attention: bidirectional or causal as ``attention`` says
        (None: as loaded); ``self.bidirectional`` then says which it is. An encoder: nothing to do."""
        ensure_eos(self.tokenizer, self.model_name, append_eos)
        if not self.family.causal:
            if self._asked is False:
                raise UserError(f"{self.model_name}: --no-bidirectional: the {self.family.name} family is an encoder, "
                                f"bidirectional by design; the flag applies to decoder LLMs")
            return
        if attention is not None:
            set_bidirectional(model, attention)
        self.bidirectional = is_bidirectional(model)

    # -- encoding --------------------------------------------------------------------------------
    def describe(self) -> dict:
        info = {"model": self.model_name, "path": self.path, "backend": self.backend,
                "pooler": self.pooler or OWN_MODULES, "precision": self.precision, "device": str(self.device)}
        if self.family is not None and self.family.causal:
            info["bidirectional"] = self.bidirectional
        if self.instruction:
            info["instruction"] = self.instruction
        if self.template is not None:
            info["template"], info["template_denoise"] = self.template.text, self.denoise_from is not None
        if self.prompt is not None:
            info["continuous_prompt"] = self.prompt.length
        return info

    @property
    def text_format(self) -> InputFormat:
        return InputFormat(self.instruction, self.template)

    def set_template(self, template: str, denoise: bool) -> None:
        """Embed every sentence inside ``template`` (:mod:`simcse_lab.modeling.template`), read at its mask token by
        the ``mask`` pooler, less the template's own delta when ``denoise`` (:mod:`simcse_lab.modeling.denoise`);
        ``template`` "" drops it. What cannot embed that way is one line."""
        self.template, self.denoise_from = None, None
        if not template:
            return
        if self.prompt is not None:
            raise UserError(f"{self.model_name}: a ConPVP model embeds every sentence through its own continuous "
                            f"prompt; drop --template")
        if self.backend != "hf":
            raise UserError(f"{self.model_name}: a sentence-transformers directory runs its own modules, which cannot "
                            f"put a template around the sentence; give --pooler mask to run its transformer with it")
        if self.instruction:
            raise UserError(f"{self.model_name}: a template and an instruction together; put the instruction's text "
                            f"into the template")
        self.template = compile_template(self.tokenizer, template)
        if denoise:
            if self.pooler != "mask":
                raise UserError(f"{self.model_name}: template denoising subtracts the template's mask-token state; it "
                                f"needs --pooler mask, not {self.pooler}")
            self.denoise_from = check_denoise(self.family, self.hf_model.config, self.model_name)

    def _forward(self, batch: dict) -> torch.Tensor:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        if self.backend == "sentence-transformers":
            return self.st_model(self.st_features(batch))["sentence_embedding"]
        if self.prompt is not None:
            return self.prompt(self.hf_model, model_inputs(batch))
        out = self.hf_model(**model_inputs(batch), output_hidden_states=self.pooler in NEEDS_HIDDEN_STATES)
        vectors = pool(self.pooler, batch, out.last_hidden_state, out.hidden_states, self.mlp,
                       summary=self.family.summary_token)
        if self.denoise_from is not None:
            vectors = denoised(vectors, self.hf_model, (self.template,), batch, self.denoise_from)
        return project(vectors, self.projection, self.normalize)

    def st_features(self, batch: dict) -> dict:
        """A batch of :func:`encode_texts` as the sentence-transformers model's features: no pooling-only entries,
        and its prompt's length (which its Pooling drops from the pooled tokens if so configured)."""
        features = model_inputs(batch)
        if self.instruction:
            features["prompt_length"] = instruction_length(self.tokenizer, self.instruction)
        return features

    def encode(self, sentences: list[str], progress: bool = False) -> np.ndarray:
        """float32 array (len(sentences), dim), in the order given."""
        settings = EncodeSettings(batch_size=self.batch_size, max_length=self.max_length, precision=self.precision,
                                  device=self.device, progress=progress, text=self.text_format)
        return encode_texts(sentences, self.tokenizer, self._forward, self.dim, settings)


def load_encoder(model: str, pooler: str | None = None, precision: str = "auto", batch_size: int = 128,
                 max_length: int | None = None, device: str | None = None, bidirectional: bool | None = None,
                 instruction: str | None = None):
    """The encoder for a ``--model`` spec: an :class:`OnnxEncoder` for an exported ONNX directory (its pooling
    and attention are part of the graph, so no ``pooler`` or ``bidirectional``; CPU), else an :class:`Encoder`."""
    path = resolve_model(model)
    if not is_onnx_dir(path):
        return Encoder(model, pooler=pooler, precision=precision, batch_size=batch_size, max_length=max_length,
                       device=device, bidirectional=bidirectional, instruction=instruction)
    if bidirectional is not None:
        raise UserError(f"{model}: an ONNX export has its attention built into the graph; drop "
                        f"--{'' if bidirectional else 'no-'}bidirectional")
    if instruction:
        raise UserError(f"{model}: an ONNX export takes token ids without an instruction mask; drop --instruction "
                        f"(encode with the model it was exported from, or its sentence-transformers export)")
    if pooler is not None:
        raise UserError(f"{model}: an ONNX export has its pooling built into the graph; drop --pooler {pooler}")
    if device not in (None, "cpu"):
        raise UserError(f"{model}: an ONNX export runs on the CPU (onnxruntime), not on {device}")
    return OnnxEncoder(path, name=model, precision=precision, batch_size=batch_size, max_length=max_length)


def use_template(encoder, template: str | None, denoise: bool | None) -> None:
    """``--template`` / ``--template-denoise`` on a loaded encoder: a template given replaces the saved one (denoised
    only when asked); ``denoise`` alone switches the saved template's denoising. An encoder that cannot take a template
    (an ONNX export: its template, if any, is part of it) is one line."""
    if template is None and denoise is None:
        return
    if not hasattr(encoder, "set_template"):
        raise UserError(f"{encoder.describe()['model']}: an ONNX export embeds as it was exported (its template "
                        f"included); drop --template / --template-denoise")
    if template is None:
        if encoder.template is None:
            raise UserError("--template-denoise subtracts a template's delta, and there is no template: give "
                            "--template")
        template = encoder.template.text
    encoder.set_template(template, bool(denoise))


class EmbedderEncoder:
    """The model being trained (unwrapped) as a :class:`SentenceEncoder`, encoding in eval mode; the
    model's train/eval mode is restored afterwards."""

    def __init__(self, embedder: SimCSEEmbedder, tokenizer, precision: str, device, name: str,
                 batch_size: int = 128, instruction: str = ""):
        self.embedder, self.tokenizer, self.precision, self.device = embedder, tokenizer, precision, device
        self.name, self.batch_size, self.instruction = name, batch_size, instruction

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def describe(self) -> dict:
        return {"model": self.name, "pooler": self.embedder.active_pooler, "precision": self.precision,
                "backend": "simcse-lab", "device": str(self.device)}

    def _forward(self, batch: dict) -> torch.Tensor:
        return self.embedder(**{k: v.to(self.device) for k, v in batch.items()})

    def encode(self, sentences: list[str], progress: bool = False) -> np.ndarray:
        was_training = self.embedder.training
        self.embedder.eval()
        try:
            settings = EncodeSettings(batch_size=self.batch_size, precision=self.precision, device=self.device,
                                      progress=progress, text=InputFormat(self.instruction, self.embedder.template))
            return encode_texts(sentences, self.tokenizer, self._forward, self.dim, settings)
        finally:
            self.embedder.train(was_training)
