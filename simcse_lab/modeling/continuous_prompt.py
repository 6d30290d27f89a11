"""ConPVP's sentence representation (Zeng et al. 2022, lemon0830/promptCSE): a sentence read at a [MASK] token
inside a template, minus the same template run without the sentence.

A *prompted row* is a sentence's ids inside a template, as :mod:`simcse_lab.modeling.template` builds it (the
special tokens, the template's tokens before ``{sentence}``, the sentence's tokens cut to fit the model, the
template's tokens after it). Beside the ids every row has a *layout*, one code per position (:data:`SENTENCE`,
:data:`TEMPLATE`, :data:`SLOT`, :data:`READ`), which says:

- where the representation is read (:data:`READ`, the template's mask token: exactly one per row);
- which positions take the learned vectors of the continuous prompt (:data:`SLOT`: the ``[PAD]`` placeholders of
  the anchor template ``{sentence} [PAD]*L [MASK] .``; their input embeddings are replaced by
  :class:`ContinuousPrompt`'s ``vectors``, in order);
- which positions the *template-only* pass attends (every code but :data:`SENTENCE`): the paper's second forward
  pass with ``attention_mask = prompt_mask``, whose state at the read position is subtracted (template
  denoising). Positions are the full row's in both passes.

:func:`prompted_vectors` computes ``h_full[read] - h_template[read]`` for a batch of such rows (both passes with
gradients, dropout in each as the model's mode says). :class:`ContinuousPrompt` is the part of a ConPVP model
that turns a plain batch of sentences (what every encoder hands the model: tokenised, padded either side) into
anchor rows, so that evaluation, analysis, search and the saved model embed exactly as training's anchor did.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from simcse_lab.errors import InputError, UserError
from simcse_lab.modeling.batching import pad_batch
from simcse_lab.modeling.template import MASK_SLOT, SENTENCE_SLOT, TemplateTokens, compile_template

SENTENCE, TEMPLATE, SLOT, READ = 0, 1, 2, 3  # layout codes (padding is SENTENCE too: attended by neither pass)
PROMPT_FILE = "continuous_prompt.safetensors"  # the learned vectors, beside the recipe of a saved model
PROMPT_KEY = "vectors"


def anchor_template(tokenizer, length: int) -> TemplateTokens:
    """ConPVP's anchor, ``{sentence} [PAD]*length [MASK] .``: the ``length`` pad tokens are the SLOT positions."""
    if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
        raise UserError(f"--prompt-length must be a positive number of learned vectors, got {length!r}")
    if tokenizer.pad_token_id is None:
        raise UserError("the tokenizer has no pad token to hold the continuous prompt's places")
    tail = compile_template(tokenizer, f"{SENTENCE_SLOT} {MASK_SLOT} .", "the anchor template")
    return replace(tail, text=f"{SENTENCE_SLOT} [PAD]*{length} {MASK_SLOT} .",
                   suffix=(tokenizer.pad_token_id,) * length + tail.suffix)


def check_no_slots(tokens: TemplateTokens, pad_id: int) -> TemplateTokens:
    """``tokens`` if it holds no pad token (which would read as a continuous-prompt place); else one line."""
    if pad_id in tokens.prefix + tokens.suffix:
        raise UserError(f"template {tokens.text!r} holds the pad token, which marks the continuous prompt's places; "
                        f"write it without")
    return tokens


@dataclass(frozen=True)
class RowBuilder:
    """Builds prompted rows from sentences' token ids (special tokens included): ``pad_id`` marks the continuous
    prompt's places in a template, ``limit`` the positions a row may take (the sentence is cut to fit)."""

    pad_id: int
    limit: int

    def codes(self, tokens: TemplateTokens, width: int) -> list[int]:
        """The layout of a row of ``width`` positions built with ``tokens``."""
        def code(token: int) -> int:
            return READ if token == tokens.mask_id else SLOT if token == self.pad_id else TEMPLATE
        return ([TEMPLATE] * len(tokens.head) + [code(t) for t in tokens.prefix] + [SENTENCE] * (width - tokens.length)
                + [code(t) for t in tokens.suffix] + [TEMPLATE] * len(tokens.tail))

    def row(self, ids: list[int], tokens: TemplateTokens) -> tuple[list[int], list[int]]:
        """(ids, layout) of ``ids``' sentence inside ``tokens``' template."""
        row = tokens.apply(list(ids), self.limit)
        return row, self.codes(tokens, len(row))

    def batch(self, rows: list[tuple[list[int], list[int]]], with_types: bool) -> dict:
        """Right-padded model inputs of prompted rows, with their ``layout`` (padding: SENTENCE)."""
        ids = [r[0] for r in rows]
        batch = pad_batch(ids, self.pad_id, [[0] * len(i) for i in ids] if with_types else None)
        batch["layout"] = pad_batch([r[1] for r in rows], SENTENCE)["input_ids"]
        return batch


def read_positions(layout: torch.Tensor) -> torch.Tensor:
    """Per row, the position of its READ code (exactly one per row, else a ValueError)."""
    reads = layout == READ
    if not bool((reads.sum(1) == 1).all()):
        raise ValueError("every prompted row needs exactly one read (mask) position")
    return reads.long().argmax(1)


def with_prompt(embeds: torch.Tensor, layout: torch.Tensor, vectors: torch.Tensor | None) -> torch.Tensor:
    """``embeds`` with each row's SLOT positions replaced, in order, by ``vectors`` (rows without slots, e.g. the
    prototypes, unchanged). A row must have no slot or one per vector."""
    slots = layout == SLOT
    counts = slots.sum(1)
    if vectors is None:
        if bool(counts.any()):
            raise ValueError("prompted rows with continuous-prompt slots need the prompt's vectors")
        return embeds
    if not bool(((counts == 0) | (counts == len(vectors))).all()):
        raise ValueError(f"a row with continuous-prompt slots needs exactly {len(vectors)} of them")
    order = (slots.long().cumsum(1) - 1).clamp(min=0)  # the k-th slot of a row takes vector k
    return torch.where(slots.unsqueeze(-1), vectors.to(embeds.dtype)[order], embeds)


def prompted_outputs(backbone: nn.Module, vectors: torch.Tensor | None, batch: dict, hidden_states: bool = False):
    """(vectors, the full pass's outputs): each prompted row's last-layer state at its read position, minus the same
    state of the template-only pass (the sentence's tokens not attended; positions unchanged); ``hidden_states``: the
    full pass keeps every layer's states (analysis)."""
    layout = batch["layout"]
    embeds = with_prompt(backbone.get_input_embeddings()(batch["input_ids"]), layout, vectors)
    extra = {"token_type_ids": batch["token_type_ids"]} if batch.get("token_type_ids") is not None else {}
    attention = batch["attention_mask"]
    full = backbone(inputs_embeds=embeds, attention_mask=attention, output_hidden_states=hidden_states, **extra)
    template = backbone(inputs_embeds=embeds, attention_mask=(layout != SENTENCE).to(attention.dtype),
                        **extra).last_hidden_state
    rows = torch.arange(len(layout), device=layout.device)
    read = read_positions(layout)
    return full.last_hidden_state[rows, read] - template[rows, read], full


def prompted_vectors(backbone: nn.Module, vectors: torch.Tensor | None, batch: dict) -> torch.Tensor:
    """The vectors of :func:`prompted_outputs`."""
    return prompted_outputs(backbone, vectors, batch)[0]


class ContinuousPrompt(nn.Module):
    """The learned vectors of ConPVP's anchor template (``vectors``: (length, hidden), initialised as the paper's
    ``torch.rand``, or the saved ``vectors``) and what turns a plain batch of sentences into anchor rows."""

    def __init__(self, tokenizer, length: int, hidden: int, limit: int, vectors: torch.Tensor | None = None):
        super().__init__()
        self.template = anchor_template(tokenizer, length)
        self.vectors = nn.Parameter(torch.rand(length, hidden) if vectors is None else vectors.float().clone())
        self.builder = RowBuilder(tokenizer.pad_token_id, limit)
        self.with_types = "token_type_ids" in tokenizer.model_input_names

    @property
    def length(self) -> int:
        return self.vectors.shape[0]

    def rows(self, token_ids: list[list[int]], template: TemplateTokens | None = None) -> list:
        """Prompted rows of sentences' ids in ``template`` (default: the anchor template)."""
        return [self.builder.row(ids, template or self.template) for ids in token_ids]

    def anchor_batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        """The anchor rows of a padded batch of sentences (either padding side), on its device."""
        plain = [row[mask.bool()].tolist() for row, mask in zip(input_ids.cpu(), attention_mask.cpu())]
        batch = self.builder.batch(self.rows(plain), self.with_types)
        return {k: v.to(input_ids.device) for k, v in batch.items()}

    def with_layers(self, backbone: nn.Module, batch: dict) -> tuple[torch.Tensor, tuple, torch.Tensor]:
        """(vectors, every layer's states of the anchor rows, their attention mask) of a plain batch (analysis)."""
        anchors = self.anchor_batch(batch["input_ids"], batch["attention_mask"])
        vectors, full = prompted_outputs(backbone, self.vectors, anchors, hidden_states=True)
        return vectors, full.hidden_states, anchors["attention_mask"]

    def forward(self, backbone: nn.Module, batch: dict) -> torch.Tensor:
        """Sentence vectors of ``batch``: prompted rows (with ``layout``) as they are, else plain sentences as
        anchors."""
        if "layout" not in batch:
            batch = self.anchor_batch(batch["input_ids"], batch["attention_mask"])
        return prompted_vectors(backbone, self.vectors, batch)


def save_prompt_vectors(prompt: ContinuousPrompt, directory) -> Path:
    """The learned vectors as ``directory``/:data:`PROMPT_FILE` (safetensors, fp32)."""
    path = Path(directory) / PROMPT_FILE
    save_file({PROMPT_KEY: prompt.vectors.detach().float().cpu().contiguous()}, str(path))
    return path


def load_continuous_prompt(directory, tokenizer, length: int, config, limit: int) -> ContinuousPrompt:
    """The continuous prompt a saved model's recipe declares (``length`` vectors of the backbone's width), read from
    ``directory``/:data:`PROMPT_FILE`; a missing, unreadable or misshapen file is one line naming it."""
    path = Path(directory) / PROMPT_FILE
    try:
        vectors = load_file(str(path))[PROMPT_KEY]
    except (OSError, KeyError, SafetensorError) as err:
        raise InputError(path, None, f"cannot read the continuous prompt the recipe declares ({err})") from None
    if tuple(vectors.shape) != (length, config.hidden_size):
        raise InputError(path, None, f"vectors of shape {tuple(vectors.shape)}, the recipe and backbone say "
                                     f"({length}, {config.hidden_size})")
    return ContinuousPrompt(tokenizer, length, config.hidden_size, limit, vectors)
