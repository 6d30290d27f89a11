"""The trainable sentence encoder: a Hugging Face backbone, a SimCSE pooler and its MLP head.

The MLP head is SimCSE's dense + tanh over [CLS] (:class:`MLPHead`), used by ``cls``; a backbone's
own trained pooler layer is the same kind of head (:func:`backbone_mlp`).

With ``mlp_only_train`` (SimCSE's unsupervised default) the MLP is applied in training only: in
eval mode ``cls`` reads the raw [CLS] vector, and the exported model drops the MLP.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from simcse_lab.modeling.loading import load_model, load_tokenizer
from simcse_lab.modeling.pooling import NEEDS_HIDDEN_STATES, check_pooler, pool
from simcse_lab.modeling.resolve import is_sentence_transformers_dir, load_error, resolve_model, transformer_subdir


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


class SimCSEEmbedder(nn.Module):
    def __init__(self, backbone: nn.Module, pooler: str = "cls", mlp_only_train: bool = False, do_mlm: bool = False):
        super().__init__()
        check_pooler(pooler)
        if getattr(backbone, "pooler", None) is not None:
            backbone.pooler = None  # the backbone's own pooler layer is not SimCSE's MLP and would get no gradient
        self.backbone = backbone
        self.pooler = pooler
        self.mlp_only_train = mlp_only_train
        self.mlp = MLPHead(backbone.config.hidden_size) if pooler == "cls" else None
        self.lm_head = None
        if do_mlm:
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
                mlm_input_ids=None, mlm_labels=None):
        """Sentence vectors (batch, dim); with ``mlm_input_ids``/``mlm_labels`` also the auxiliary MLM loss,
        as (vectors, mlm_loss), from a second pass over the masked inputs (SimCSE's ``do_mlm``)."""
        pooler = pooler or self.active_pooler
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        out = self.backbone(**inputs, output_hidden_states=pooler in NEEDS_HIDDEN_STATES)
        vectors = pool(pooler, attention_mask, out.last_hidden_state, out.hidden_states, self.mlp)
        if mlm_input_ids is None:
            return vectors
        masked = self.backbone(**{**inputs, "input_ids": mlm_input_ids}).last_hidden_state
        logits = self.lm_head(masked)
        return vectors, F.cross_entropy(logits.flatten(0, 1).float(), mlm_labels.flatten(), ignore_index=-100)


def load_embedder(model: str, pooler: str, mlp_only_train: bool, do_mlm: bool = False):
    """(tokenizer, SimCSEEmbedder) from a model spec (alias, HF dir, sentence-transformers dir, hub id)."""
    path = resolve_model(model)
    if os.path.isdir(path) and is_sentence_transformers_dir(path):
        path = transformer_subdir(path)
    try:
        tokenizer = load_tokenizer(path)
        backbone = load_model(path)
    except (OSError, ValueError) as err:
        raise load_error(model, err) from None
    return tokenizer, SimCSEEmbedder(backbone, pooler, mlp_only_train, do_mlm)
