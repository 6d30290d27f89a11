"""ConPVP's sentence representation (Zeng et al. 2022, lemon0830/promptCSE): a sentence read at a [MASK] token
inside a template, minus the same template run without the sentence.

A *prompted row* is built at the token level from a sentence's ids (special tokens included, as the tokenizer
makes them): the leading special tokens, the template's tokens before ``{sentence}``, the sentence's tokens, the
template's tokens after it, the trailing special tokens. Beside the ids every row has a *layout*, one code per
position (:data:`SENTENCE`, :data:`TEMPLATE`, :data:`SLOT`, :data:`READ`), which says:

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

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from simcse_lab.errors import InputError, UserError
from simcse_lab.modeling.batching import pad_batch

SENTENCE, TEMPLATE, SLOT, READ = 0, 1, 2, 3  # layout codes (padding is SENTENCE too: attended by neither pass)
SENTENCE_SLOT = "{sentence}"
MASK_SLOT = "{mask}"
PROMPT_FILE = "continuous_prompt.safetensors"  # the learned vectors, beside the recipe of a saved model
PROMPT_KEY = "vectors"


@dataclass(frozen=True)
class TemplateIds:
    """A template as token ids with their layout codes: what goes before the sentence and what after it."""

    before: tuple[tuple[int, int], ...]
    after: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.before) + len(self.after)


def _piece_ids(tokenizer, text: str, mask_token: str) -> list[tuple[int, int]]:
    """``text`` (a part of a template, no sentence slot) as (id, code) pairs: its mask token READ, the rest
    TEMPLATE, each piece between mask tokens tokenised on its own without special tokens."""
    out: list[tuple[int, int]] = []
    for i, piece in enumerate(text.split(mask_token)):
        if i:
            out.append((tokenizer.mask_token_id, READ))
        if piece.strip():
            out += [(t, TEMPLATE) for t in tokenizer(piece, add_special_tokens=False)["input_ids"]]
    return out


def template_ids(tokenizer, text: str, where: str = "template") -> TemplateIds:
    """``text`` with ``{sentence}`` once and the mask token once (``{mask}`` or the tokenizer's own, e.g.
    ``[MASK]``) as token ids; anything else is one line naming ``where``."""
    mask = tokenizer.mask_token
    if mask is None or tokenizer.mask_token_id is None:
        raise UserError(f"{where}: the tokenizer has no mask token to read the sentence at; use a masked-language "
                        f"model (BERT, RoBERTa, ...)")
    text = text.replace(MASK_SLOT, mask)
    if text.count(SENTENCE_SLOT) != 1:
        raise UserError(f"{where}: a template needs {SENTENCE_SLOT} exactly once, got {text!r}")
    if text.count(mask) != 1:
        raise UserError(f"{where}: a template needs the mask token ({MASK_SLOT} or {mask}) exactly once, got {text!r}")
    before, after = text.split(SENTENCE_SLOT)
    return TemplateIds(tuple(_piece_ids(tokenizer, before, mask)), tuple(_piece_ids(tokenizer, after, mask)))


def anchor_template(tokenizer, length: int) -> TemplateIds:
    """ConPVP's anchor: ``{sentence} [PAD]*length [MASK] .``, the ``length`` placeholders SLOT positions."""
    if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
        raise UserError(f"--prompt-length must be a positive number of learned vectors, got {length!r}")
    if tokenizer.pad_token_id is None:
        raise UserError("the tokenizer has no pad token to hold the continuous prompt's places")
    tail = template_ids(tokenizer, f"{SENTENCE_SLOT} {MASK_SLOT} .", "the anchor template")
    return TemplateIds((), ((tokenizer.pad_token_id, SLOT),) * length + tail.after)


def special_ends(tokenizer) -> tuple[int, int]:
    """How many special tokens the tokenizer puts before and after a sentence (BERT: [CLS] / [SEP]: 1, 1)."""
    plain = tokenizer("hello world", add_special_tokens=False)["input_ids"]
    full = tokenizer("hello world")["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start: start + len(plain)] == plain:
            return start, len(full) - start - len(plain)
    raise ValueError("the tokenizer's special tokens are not around the sentence's own tokens")


@dataclass(frozen=True)
class RowBuilder:
    """Builds prompted rows from sentences' token ids (special tokens included): ``ends`` the special tokens
    before / after a sentence, ``limit`` the positions a row may take (the sentence is cut to fit)."""

    ends: tuple[int, int]
    limit: int

    def row(self, ids: list[int], template: TemplateIds) -> tuple[list[int], list[int]]:
        """(ids, layout) of ``ids``' sentence inside ``template``."""
        front, back = self.ends
        room = self.limit - front - back - len(template)
        if room < 1:
            raise UserError(f"a template of {len(template)} tokens leaves no room for the sentence within "
                            f"{self.limit} positions; shorten it (or --prompt-length)")
        body = list(ids[front: len(ids) - back])[:room]
        parts = [[(i, TEMPLATE) for i in ids[:front]], list(template.before), [(i, SENTENCE) for i in body],
                 list(template.after), [(i, TEMPLATE) for i in ids[len(ids) - back:]]]
        pairs = [pair for part in parts for pair in part]
        return [i for i, _ in pairs], [c for _, c in pairs]

    def batch(self, rows: list[tuple[list[int], list[int]]], pad_id: int, with_types: bool) -> dict:
        """Right-padded model inputs of prompted rows, with their ``layout`` (padding: SENTENCE)."""
        ids = [r[0] for r in rows]
        batch = pad_batch(ids, pad_id, [[0] * len(i) for i in ids] if with_types else None)
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


def prompted_vectors(backbone: nn.Module, vectors: torch.Tensor | None, batch: dict) -> torch.Tensor:
    """(rows, hidden): each prompted row's last-layer state at its read position, minus the same state of the
    template-only pass (the sentence's tokens not attended; positions unchanged)."""
    layout = batch["layout"]
    embeds = with_prompt(backbone.get_input_embeddings()(batch["input_ids"]), layout, vectors)
    extra = {"token_type_ids": batch["token_type_ids"]} if batch.get("token_type_ids") is not None else {}
    attention = batch["attention_mask"]
    full = backbone(inputs_embeds=embeds, attention_mask=attention, **extra).last_hidden_state
    template = backbone(inputs_embeds=embeds, attention_mask=(layout != SENTENCE).to(attention.dtype),
                        **extra).last_hidden_state
    rows = torch.arange(len(layout), device=layout.device)
    read = read_positions(layout)
    return full[rows, read] - template[rows, read]


class ContinuousPrompt(nn.Module):
    """The learned vectors of ConPVP's anchor template (``vectors``: (length, hidden), initialised as the paper's
    ``torch.rand``, or the saved ``vectors``) and what turns a plain batch of sentences into anchor rows."""

    def __init__(self, tokenizer, length: int, hidden: int, limit: int, vectors: torch.Tensor | None = None):
        super().__init__()
        self.template = anchor_template(tokenizer, length)
        self.vectors = nn.Parameter(torch.rand(length, hidden) if vectors is None else vectors.float().clone())
        self.builder = RowBuilder(special_ends(tokenizer), limit)
        self.pad_id = tokenizer.pad_token_id
        self.with_types = "token_type_ids" in tokenizer.model_input_names

    @property
    def length(self) -> int:
        return self.vectors.shape[0]

    def rows(self, token_ids: list[list[int]], template: TemplateIds | None = None) -> list:
        """Prompted rows of sentences' ids in ``template`` (default: the anchor template)."""
        return [self.builder.row(ids, template or self.template) for ids in token_ids]

    def anchor_batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        """The anchor rows of a padded batch of sentences (either padding side), on its device."""
        plain = [row[mask.bool()].tolist() for row, mask in zip(input_ids.cpu(), attention_mask.cpu())]
        batch = self.builder.batch(self.rows(plain), self.pad_id, self.with_types)
        return {k: v.to(input_ids.device) for k, v in batch.items()}

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
