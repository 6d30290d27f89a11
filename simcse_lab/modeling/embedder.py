"""The trainable sentence encoder: a Hugging Face backbone, a SimCSE pooler and its MLP head.

The MLP head is SimCSE's dense + tanh over [CLS] (:class:`MLPHead`), used by ``cls``; a backbone's
own trained pooler layer is the same kind of head (:func:`backbone_mlp`).

With ``mlp_only_train`` (SimCSE's unsupervised default) the MLP is applied in training only: in
eval mode ``cls`` reads the raw [CLS] vector, and the exported model drops the MLP.

With ``length_chunks`` > 1 a training-mode forward runs the batch as that many length-sorted chunks,
each padded only to its own longest row (:mod:`simcse_lab.modeling.length_chunks`): the same vectors
(and MLM loss) without the compute on padding. Eval mode (encoding, the momentum encoder unless it
asks) runs the batch as given, so evaluation numbers do not depend on the setting.

With ``mini_batch_size`` M > 0 a training-mode forward with gradients runs the rows as chunks of at most M
rows whose activations are recomputed in the backward pass (:mod:`simcse_lab.modeling.mini_batches`):
activation memory of M rows, not of the batch, for one more forward pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from simcse_lab.errors import UserError
from simcse_lab.modeling.attention import set_bidirectional
from simcse_lab.modeling.continuous_prompt import ContinuousPrompt
from simcse_lab.modeling.denoise import check_denoise, denoised
from simcse_lab.modeling.families import (FAMILIES, check_pooler_fits, ensure_eos, ensure_pad_token, family_of,
                                         mask_token)
from simcse_lab.modeling.length_chunks import chunked_forward
from simcse_lab.modeling.loading import load_config, load_model, load_tokenizer, load_with_lm_head
from simcse_lab.modeling.lora import (BackboneSetup, adapter_meta, add_lora, check_adapter_base, load_adapter,
                                     prepare_backbone, round_base_weights)
from simcse_lab.modeling.mini_batches import mini_batch_chunks, recomputed
from simcse_lab.modeling.packing import is_prefix_mask, packed_forward
from simcse_lab.modeling.pooling import NEEDS_HIDDEN_STATES, POOLING_ONLY, check_pooler, model_inputs, pool
from simcse_lab.modeling.projection import new_projection, project, read_projection
from simcse_lab.modeling.recipe import BACKBONE_DIR, is_own_layout
from simcse_lab.modeling.resolve import is_sentence_transformers_dir, load_error, resolve_model, transformer_subdir
from simcse_lab.modeling.template import TemplateTokens, compile_template


class MLPHead(nn.Module):
    """SimCSE's ``MLPLayer``: dense + tanh over the [CLS] vector."""

    def __init__(self, hidden: int, init_std: float = 0.02):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.activation = nn.Tanh()
        nn.init.normal_(self.dense.weight, std=init_std)  # BERT's initializer_range, as SimCSE's init_weights
        nn.init.zeros_(self.dense.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(x))


def backbone_mlp(backbone: nn.Module) -> nn.Module | None:
    """The backbone's own pooler layer (BertPooler: dense + tanh) as an MLP head on the [CLS] vector, if
    it has one. BertPooler indexes [:, 0] itself; ``pool`` hands the head the [CLS] vector instead."""
    layer = getattr(backbone, "pooler", None)  # Hugging Face's attribute name for that layer
    if layer is None or not hasattr(layer, "dense") or not hasattr(layer, "activation"):
        return None
    return nn.Sequential(layer.dense, layer.activation)


class MaskedLMHead(nn.Module):
    """SimCSE's ``lm_head`` for the auxiliary MLM loss: dense + GELU + LayerNorm + decoder."""

    def __init__(self, hidden: int, vocab_size: int, eps: float = 1e-12):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.decoder = nn.Linear(hidden, vocab_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(F.gelu(self.dense(hidden_states))))


@dataclass(frozen=True)
class RowRun:
    """How a training-mode forward runs the batch's rows (``--length-chunks``, ``--pack-width``,
    ``--mini-batch-size``): in that many length-sorted chunks, packed into rows of ``pack_width`` tokens, or in
    chunks of at most ``mini_batch_size`` rows recomputed in the backward pass (0: off)."""
    length_chunks: int = 1
    pack_width: int = 0
    mini_batch_size: int = 0

    def __post_init__(self):
        if self.pack_width and self.mini_batch_size:
            raise ValueError("pack_width and mini_batch_size cannot be combined")


@dataclass(frozen=True)
class PassSwitches:
    """One forward's own choices: ``chunks``, the length-sorted chunks to run (None: ``length_chunks`` in
    training mode, else 1); ``pack``, pack the sentences into rows of ``pack_width`` (None: in training mode when
    it is set); ``mlm_only``, the masked-token loss alone (``--objective mntp``), no sentence vectors."""
    chunks: int | None = None
    pack: bool | None = None
    mlm_only: bool = False


class SimCSEEmbedder(nn.Module):
    """``lm_head``: the head of the masked-token loss when it is the model's own (MNTP: its causal LM head, kept in
    training checkpoints, not in exports; None with ``do_mlm``: SimCSE's fresh :class:`MaskedLMHead`); the family's
    declared ``masked_lm.shift`` says which position predicts a masked token (0: its own; 1: the one before)."""

    def __init__(self, backbone: nn.Module, pooler: str = "cls", mlp_only_train: bool = False, do_mlm: bool = False,
                 rows: RowRun = RowRun(), projection: nn.Linear | None = None, normalize: bool = False,
                 lm_head: nn.Module | None = None):
        super().__init__()
        check_pooler(pooler)
        self.length_chunks, self.pack_width, self.mini_batch_size = rows.length_chunks, rows.pack_width, \
            rows.mini_batch_size
        if getattr(backbone, "pooler", None) is not None:
            backbone.pooler = None  # the backbone's own pooler layer is not SimCSE's MLP and would get no gradient
        self.backbone = backbone
        self.family = family_of(backbone.config)  # where its sentence token is, whether it packs
        self.pooler = pooler
        self.instruction = ""  # text put before every sentence, its tokens not pooled (--instruction; load_embedder)
        # input templates (modeling/template.py): the first is the model's own (its recipe's), others an objective's
        # views; denoise_from: the first position id when their deltas are subtracted (modeling/denoise.py)
        self.templates: tuple[TemplateTokens, ...] = ()
        self.denoise_from: int | None = None
        self.mlp_only_train = mlp_only_train
        # SimCSE's MLP over [CLS]; over the mask state in training only (PromptBERT's --mlp_only_train)
        self.mlp = MLPHead(backbone.config.hidden_size) if pooler == "cls" or (pooler == "mask" and mlp_only_train) \
            else None
        # Sentence-T5's head after pooling: a bias-free projection (+ normalisation), in training and in exports
        self.projection = projection
        if projection is not None:  # whether it normalises travels with the weights (checkpoints, trajectories)
            self.register_buffer("projection_normalize", torch.tensor(bool(normalize)))
        self.lm_head = lm_head
        self.mlm_shift = self.family.masked_lm.shift
        self.export_adapter: str | None = None  # the base model's name: exports are adapter directories on it
        self.float_outputs = False  # frozen bf16 weights (--weights-dtype bf16): the head and loss see fp32 states
        self.continuous_prompt: ContinuousPrompt | None = None  # ConPVP's: every sentence embedded through it
        if do_mlm and lm_head is None:
            config = backbone.config
            self.lm_head = MaskedLMHead(config.hidden_size, config.vocab_size, getattr(config, "layer_norm_eps", 1e-12))

    @property
    def active_pooler(self) -> str:
        """The pooler used now: ``cls`` without its MLP in eval mode when ``mlp_only_train``."""
        if self.pooler == "cls" and self.mlp_only_train and not self.training:
            return "cls_before_pooler"
        return self.pooler

    @property
    def export_pooler(self) -> str:
        return "cls_before_pooler" if self.pooler == "cls" and self.mlp_only_train else self.pooler

    def forward(self, input_ids, attention_mask, token_type_ids=None, pooler: str | None = None,
                mlm_input_ids=None, mlm_labels=None, switches: PassSwitches = PassSwitches(), **pooling_only):
        """Sentence vectors (batch, dim); with ``mlm_input_ids``/``mlm_labels`` also the auxiliary MLM loss,
        as (vectors, mlm_loss), from a second pass over the masked inputs (SimCSE's ``do_mlm``).
        ``switches``: this pass's chunks, packing, MLM alone (:class:`PassSwitches`).
        With ``mini_batch_size``, in training mode with gradients on, at least as many chunks as hold that many
        rows each, recomputed in the backward pass. ``pooling_only``: the batch entries only the poolers read
        (:data:`~simcse_lab.modeling.pooling.POOLING_ONLY`): ``embed_mask``, the tokens to pool where an instruction
        precedes the sentences, ``template_mask``, the template's mask token (:mod:`simcse_lab.modeling.pooling`).
        With a continuous prompt (ConPVP) the sentences are embedded through it, whatever the pooler and chunking: plain sentences as its
        anchors, or prompted rows with their ``layout`` (:mod:`simcse_lab.modeling.continuous_prompt`)."""
        if self.continuous_prompt is not None:
            return self._prompted(input_ids, attention_mask, token_type_ids, pooling_only)
        pooler = pooler or self.active_pooler
        chunks, pack, mlm_only = switches.chunks, switches.pack, switches.mlm_only
        if chunks is None:
            chunks = self.length_chunks if self.training else 1
        rows = input_ids.shape[0]
        cached = (bool(self.mini_batch_size) and self.training and torch.is_grad_enabled()
                  and rows > self.mini_batch_size)
        if cached:
            chunks = max(chunks, mini_batch_chunks(rows, self.mini_batch_size))
        run = recomputed if cached else (lambda forward: forward)
        if pack is None:
            pack = bool(self.pack_width) and self.training
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        unknown = set(pooling_only) - set(POOLING_ONLY)
        if unknown:
            raise TypeError(f"SimCSEEmbedder.forward() got unexpected inputs {sorted(unknown)}")
        # read by the poolers only (packing unpacks into this padded layout)
        inputs.update({k: v for k, v in pooling_only.items() if v is not None})
        if mlm_only:
            vectors = None
        elif pack and is_prefix_mask(attention_mask):
            vectors = packed_forward(self.backbone, inputs, pooler, self._pool, self.pack_width or input_ids.shape[1],
                                     self.family.packing_position(self.backbone.config))
        else:
            vectors = chunked_forward(run(lambda part: self._vectors(part, pooler)), inputs, chunks)
        if pooler == "mask" and vectors is not None:
            vectors = self._after_mask(vectors, inputs)
        if mlm_input_ids is None:
            return vectors
        # the mean over every predicted token of the batch: per-row sums (chunked like the vectors) / count
        per_row = chunked_forward(run(self._mlm_row_losses), {**inputs, "input_ids": mlm_input_ids,
                                                          "mlm_labels": mlm_labels}, chunks)
        loss = per_row.sum() / (mlm_labels[:, self.mlm_shift:] != -100).sum()
        return loss if mlm_only else (vectors, loss)

    def _vectors(self, inputs: dict, pooler: str) -> torch.Tensor:
        out = self.backbone(**model_inputs(inputs), output_hidden_states=pooler in NEEDS_HIDDEN_STATES)
        states = out.hidden_states
        if self.float_outputs and states is not None:
            states = tuple(h.float() for h in states)
        last = out.last_hidden_state.float() if self.float_outputs else out.last_hidden_state
        return self._pool(pooler, inputs, last, states)

    def add_continuous_prompt(self, tokenizer, length: int) -> ContinuousPrompt:
        """ConPVP: embed every sentence through a new continuous prompt of ``length`` learned vectors (part of this
        model: trained, checkpointed and saved with it); the embedder's pooler is ``mask`` (the prompt's)."""
        if self.pooler != "mask":
            raise ValueError(f"a continuous prompt is read at its mask token: pooler 'mask', not {self.pooler!r}")
        config = self.backbone.config
        self.mlp = None  # the [MASK] state as it is (no training-only MLP: it would go unused)
        self.continuous_prompt = ContinuousPrompt(tokenizer, length, config.hidden_size,
                                                  self.family.max_tokens(config))
        return self.continuous_prompt

    def _prompted(self, input_ids, attention_mask, token_type_ids, pooling_only: dict) -> torch.Tensor:
        """The vectors of ConPVP's continuous prompt (which reads no other pooling-only entry than ``layout``)."""
        extra = {k: v for k, v in pooling_only.items() if v is not None}
        if set(extra) - {"layout"}:
            raise ValueError(f"a continuous prompt's rows take no {sorted(set(extra) - {'layout'})}")
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        return self.continuous_prompt(self.backbone, {**inputs, **extra})

    def set_template(self, tokens: TemplateTokens | None, denoise: bool) -> None:
        """The model's own template (``None``: none) and whether template deltas are subtracted (refused in one line
        for a family whose model takes no position ids that way: :func:`~simcse_lab.modeling.denoise.check_denoise`)."""
        self.templates = (tokens,) if tokens is not None else ()
        self.denoise_from = check_denoise(self.family, self.backbone.config, "template") if denoise else None

    def add_template(self, tokens: TemplateTokens) -> int:
        """Another template an objective builds rows with (after the model's own); its index for
        :class:`~simcse_lab.modeling.template.InputFormat`."""
        if not self.templates:
            raise ValueError("set the model's own template first (set_template)")
        self.templates = (*self.templates, tokens)
        return len(self.templates) - 1

    @property
    def template(self) -> TemplateTokens | None:
        """The model's own template (what evaluation and the saved model use), None without one."""
        return self.templates[0] if self.templates else None

    def _after_mask(self, vectors: torch.Tensor, inputs: dict) -> torch.Tensor:
        """The ``mask`` pooler's vectors less the template deltas (when denoising), then the training-only MLP."""
        if self.denoise_from is not None:
            vectors = denoised(vectors, self.backbone, self.templates, inputs, self.denoise_from)
        if self.mlp is not None and self.training:
            vectors = self.mlp(vectors)
        return vectors

    @property
    def dim(self) -> int:
        """The sentence vectors' width: the backbone's hidden size, or the projection's output."""
        return self.projection.out_features if self.projection is not None else self.backbone.config.hidden_size

    @property
    def normalize(self) -> bool:
        return self.projection is not None and bool(self.projection_normalize)

    def _pool(self, pooler: str, batch: dict, last_hidden, hidden_states) -> torch.Tensor:
        vectors = pool(pooler, batch, last_hidden, hidden_states, self.mlp, summary=self.family.summary_token)
        return project(vectors, self.projection, self.normalize)

    def _mlm_row_losses(self, inputs: dict) -> torch.Tensor:
        """Each row's summed cross-entropy over its predicted tokens (labels -100: not predicted); token i is
        predicted from position i - ``mlm_shift`` (MNTP: the logits of i - 1 against the label of i)."""
        labels = inputs["mlm_labels"]
        hidden = self.backbone(**model_inputs({k: v for k, v in inputs.items() if k != "mlm_labels"})).last_hidden_state
        logits = self.lm_head(hidden.to(next(self.lm_head.parameters()).dtype))  # bf16 weights: the head's dtype
        if self.mlm_shift:
            logits, labels = logits[:, :-self.mlm_shift], labels[:, self.mlm_shift:]
        losses = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100,
                                 reduction="none")
        return losses.view(labels.shape).sum(1)


def backbone_path(model: str) -> str:
    """Where the Hugging Face backbone of a model spec lives (an alias, HF dir, sentence-transformers dir's
    Transformer folder, simcse-lab's own layout's ``backbone/``, or hub id)."""
    path = resolve_model(model)
    if os.path.isdir(path) and is_sentence_transformers_dir(path):
        path = transformer_subdir(path)
    elif os.path.isdir(path) and is_own_layout(path):
        path = os.path.join(path, BACKBONE_DIR)
    return path


def backbone_config(model: str, path: str | None = None):
    """The transformers config of a model spec's backbone (config.json only: no weights, no tokenizer);
    ``path``: :func:`backbone_path` of ``model``, when the caller has it already."""
    try:
        return load_config(path or backbone_path(model))
    except (OSError, ValueError) as err:
        raise load_error(model, err) from None


def check_family(model: str, config, pooler: str, do_mlm: bool = False, pack_width: int = 0):
    """The backbone family of ``config``, once the settings are checked against it (before any weights load): a
    pooler it cannot compute, ``--do-mlm`` where it has no MLM objective, packing where packed rows would not
    equal the padded batch are one line each."""
    family = family_of(config)
    if do_mlm and not family.mlm:
        raise UserError(f"{model}: --do-mlm: the {family.name} family has no masked-language-model objective")
    check_pooler_fits(family, pooler, model)
    if pack_width and family.packing_position is None:
        packable = sorted({f.name for f in FAMILIES.values() if f.packing_position is not None})
        raise UserError(f"{model}: pack_width: packed rows would not equal the padded batch for the {family.name} "
                        f"family (packable: {', '.join(packable)}); use length_chunks instead")
    return family


def set_attention(backbone, family, bidirectional: bool):
    """A decoder LLM's backbone made to attend bidirectionally or causally (an encoder's: unchanged); returned."""
    return set_bidirectional(backbone, bidirectional) if family.causal else backbone


def load_embedder(model: str, pooler: str, mlp_only_train: bool, do_mlm: bool = False, rows: RowRun = RowRun(),
                  projection: bool = False, setup: BackboneSetup | None = None):
    """(tokenizer, SimCSEEmbedder) from a model spec (alias, HF dir, sentence-transformers dir, hub id). A
    sentence-transformers directory's projection head (Sentence-T5's bias-free Dense [+ Normalize]) is kept;
    ``projection`` adds a fresh one (+ normalisation) where the model has none. A decoder LLM family's backbone
    comes causal, as shipped (training then sets its attention: :func:`set_attention`), and its tokenizer
    appends EOS where the family says so. ``setup``: how the backbone is built for training
    (:class:`~simcse_lab.modeling.lora.BackboneSetup`: weights dtype, gradient checkpointing, an adapter merged
    first, a new LoRA adapter); the default builds it as it always was. ``rows``: how training runs the batch's
    rows (:class:`RowRun`)."""
    setup = setup or BackboneSetup()
    path = backbone_path(model)
    config = backbone_config(model, path)
    family = check_family(model, config, pooler, do_mlm, rows.pack_width)
    lm_head = None
    try:
        tokenizer = ensure_eos(ensure_pad_token(load_tokenizer(path), family, model), model, family.append_eos)
        if do_mlm:
            mask_token(tokenizer, family, model)  # the tokenizer's, or the family's fallback; else refused here
        config = setup.configure(config, model)
        if do_mlm and family.masked_lm.own_head:
            backbone, lm_head = load_with_lm_head(path, config, model, **setup.load_kwargs)
        else:
            backbone = load_model(path, config, **setup.load_kwargs)
        backbone = set_attention(backbone, family, False)
        root = resolve_model(model)
        # a sentence-transformers directory: its own projection head, if it has one
        head = read_projection(root) if os.path.isdir(root) and is_sentence_transformers_dir(root) else None
    except (OSError, ValueError) as err:
        raise load_error(model, err) from None
    if head is None and projection:
        head = new_projection(backbone.config.hidden_size), True
    layer, normalize = head if head is not None else (None, False)
    if lm_head is not None and setup.lora_r:
        lm_head.requires_grad_(False)  # the model's own LM head stays as it is under LoRA (LLM2Vec's MNTP)
    embedder = SimCSEEmbedder(prepare_backbone(backbone, setup), pooler, mlp_only_train, do_mlm, rows, layer,
                              normalize, lm_head)
    if setup.lora_r:  # after the embedder dropped the backbone's own pooler layer: no adapter goes on it
        embedder.backbone = add_lora(embedder.backbone, setup, family)
    embedder.float_outputs = setup.weights_dtype != "fp32"
    return tokenizer, embedder


def load_adapter_embedder(path: str):
    """(tokenizer, SimCSEEmbedder) of an adapter directory simcse-lab wrote (``--no-merge-lora``): its base model
    (refused in one line where its weights changed) with the adapter attached, embedding by the adapter's recipe
    (the pooler, bidirectional attention or not, the instruction: ``embedder.instruction``), its own tokenizer."""
    meta = adapter_meta(path)
    check_adapter_base(path, meta, meta.base_model, "adapter")
    _, embedder = load_embedder(meta.base_model, meta.recipe.pooler, mlp_only_train=False)
    family = embedder.family
    backbone = round_base_weights(set_attention(embedder.backbone, family, meta.recipe.bidirectional), meta)
    embedder.backbone = load_adapter(backbone, path)
    embedder.instruction = meta.recipe.instruction
    try:
        tokenizer = ensure_eos(ensure_pad_token(load_tokenizer(path), family, path), path, family.append_eos)
    except (OSError, ValueError) as err:
        raise load_error(path, err) from None
    if meta.recipe.template:  # embeds inside its template, as trained
        embedder.set_template(compile_template(tokenizer, meta.recipe.template, path), meta.recipe.template_denoise)
    return tokenizer, embedder
