"""A run's settings checked against its backbone family, from the model's config.json alone (no weights, no
data), before any work: the default pooler becomes the family's natural one (``cls`` where it has a sentence
token, ``avg`` for T5 and models without one), a pooler it cannot compute, ``--do-mlm`` without an MLM
objective, packing where it is not exact, a ``--max-seq-len`` beyond the positions the model can use
(RoBERTa: 514 rows, 512 positions) are one line each; and fp16 for a family whose activations overflow it
(T5) is refused when asked for, or replaced by fp32 with a one-line note when ``auto`` would have chosen it;
``--no-bidirectional`` on an encoder is refused (it names a decoder's causal mask)."""

from __future__ import annotations

import os
import sys

from simcse_lab.errors import UserError
from simcse_lab.modeling.embedder import backbone_config, check_family
from simcse_lab.modeling.families import Family, family_of
from simcse_lab.modeling.lora import (ADAPTER_META, BackboneSetup, adapter_meta, check_adapter_base, check_adapter_dir,
                                     require_peft)
from simcse_lab.modeling.pooling import check_instruction
from simcse_lab.runtime.precision import launcher_precision


def resolve_backbone(cfg) -> Family:
    """The family of ``cfg.model``, with ``cfg.pooler`` set to its natural pooler when none was given."""
    config = backbone_config(cfg.model)
    family = family_of(config)
    if not cfg.pooler:
        cfg.pooler = family.natural_pooler
    check_family(cfg.model, config, cfg.pooler, cfg.needs_lm_head, cfg.pack_width)
    check_instruction(cfg.pooler, cfg.instruction)
    check_bidirectional(cfg, family)
    usable = family.usable_max_length(config)
    if usable is not None and cfg.max_seq_len > usable:
        raise UserError(f"max_seq_len {cfg.max_seq_len} is more than the {usable} positions {cfg.model} can use "
                        f"({family.name} family); use --max-seq-len {usable} or less")
    check_adaptation(cfg, family)
    BackboneSetup.from_config(cfg).configure(config, cfg.model)  # an attention_dropout its config cannot take
    return family


def check_adaptation(cfg, family: Family | None = None) -> None:
    """LoRA settings that cannot work, one line each before any weights load: peft missing, an ``init_adapter``
    that is no adapter directory or that simcse-lab trained on another base model (``family``: with another
    attention, bidirectional or causal, than this run's), an adapter export (``--no-merge-lora``) of a model whose exported pooler keeps
    a trained head (``cls`` with its MLP, a projection) that an adapter directory would not carry."""
    if cfg.lora_r or cfg.init_adapter:
        require_peft()
    if cfg.init_adapter:
        check_adapter_dir(cfg.init_adapter)
        check_init_adapter(cfg, family)
    if not cfg.merge_lora and ((cfg.pooler == "cls" and not cfg.mlp_only_train) or cfg.projection):
        raise UserError("--no-merge-lora: an adapter directory carries the backbone's adapter only, not the "
                        f"{'projection' if cfg.projection else 'MLP head of pooler cls'} this model exports; use "
                        "--merge-lora")


def check_init_adapter(cfg, family: Family | None) -> None:
    """An ``init_adapter`` simcse-lab wrote (one with its metadata) goes only on the base model and the attention
    it was trained with; a peft adapter from elsewhere records neither, and is merged as it is."""
    if not os.path.isfile(os.path.join(cfg.init_adapter, ADAPTER_META)):
        return
    meta = adapter_meta(cfg.init_adapter)
    check_adapter_base(cfg.init_adapter, meta, cfg.model)
    attends = bool(cfg.bidirectional and family is not None and family.causal)
    if family is not None and meta.recipe.bidirectional != attends:
        trained = "bidirectional" if meta.recipe.bidirectional else "causal"
        raise UserError(f"--init-adapter {cfg.init_adapter}: trained with {trained} attention, this run's is "
                        f"{'bidirectional' if attends else 'causal'}; train with "
                        f"--{'' if meta.recipe.bidirectional else 'no-'}bidirectional")


def check_bidirectional(cfg, family: Family) -> None:
    """``--no-bidirectional`` names a decoder's causal mask, which an encoder does not have; a projection head
    cannot travel with a bidirectional decoder saved in simcse-lab's own layout (no config flag for it)."""
    if not cfg.bidirectional and not family.causal:
        raise UserError(f"--no-bidirectional: {cfg.model} ({family.name} family) is an encoder, bidirectional by "
                        f"design; the flag applies to decoder LLMs")
    if cfg.projection and family.causal and cfg.bidirectional and not family.bidirectional_config:
        raise UserError(f"--projection: a bidirectional {family.name} model is saved in simcse-lab's own layout, "
                        f"which has no projection head; drop --projection or add --no-bidirectional")


def family_precision(family: Family, precision: str, requested: str, note: bool = True) -> str:
    """``precision`` (what ``requested`` resolved to), unless it is fp16 on a family that overflows it: refused
    when fp16 was asked for, fp32 (with a note, unless ``note`` is False) when ``auto`` chose it."""
    if precision != "fp16" or family.fp16_safe:
        return precision
    if requested == "fp16" or launcher_precision() == "fp16":
        raise UserError(f"fp16: the {family.name} family overflows fp16 (its activations exceed "
                        f"65504: NaN losses); use bf16 or fp32")
    if note:
        print(f"note: training in fp32, not fp16: the {family.name} family overflows fp16 (its activations exceed "
              f"65504) and this device has no native bf16", file=sys.stderr)
    return "fp32"
