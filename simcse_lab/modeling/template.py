"""Input templates: a sentence embedded inside a prompt, read at the prompt's mask token (PromptBERT).

A template is one string with ``{sentence}`` where the sentence goes and the tokenizer's own mask token
(``[MASK]``, ``<mask>``; ``{mask}`` stands for whichever it is) where the representation is read, e.g.
``This sentence : "{sentence}" means [MASK] .`` (:func:`check_template_text` checks the text alone, without a
tokenizer, so a config or a flag is refused before any model loads).

:func:`compile_template` turns it into :class:`TemplateTokens` for one tokenizer. As PromptBERT builds its inputs,
the text before the slot and the text after it are tokenised on their own (no special tokens) and the sentence
on its own, and a row is ``head + prefix + sentence + suffix + tail``, where ``head`` / ``tail`` are the special
tokens the tokenizer puts around a sentence ([CLS] / [SEP], <s> / </s>, a decoder's BOS or appended EOS).
:meth:`TemplateTokens.apply` wraps a sentence's token ids (as the tokenizer gives them, special tokens included)
and truncates the *sentence*, never the template, to a length limit. The row's mask token is where the ``mask``
pooler reads (:func:`mask_positions`, :mod:`simcse_lab.modeling.pooling`).

Template denoising (PromptBERT's ``get_delta``, :mod:`simcse_lab.modeling.denoise`) needs the template alone
(:meth:`TemplateTokens.template_only`) and where the sentence would start (:attr:`TemplateTokens.slot`).
This module imports no torch at import time.
"""

from __future__ import annotations

from dataclasses import dataclass

from simcse_lab.errors import UserError

SENTENCE_SLOT = "{sentence}"
MASK_SLOT = "{mask}"
TEMPLATE_ENTRY = "template_mask"  # the batch entry (rows x positions, 1 at the template's mask token)


def check_template_text(template: str, where: str = "--template") -> str:
    """``template`` if it has exactly one ``{sentence}`` slot and some mask (``{mask}`` or a literal token
    such as ``[MASK]``/``<mask>``, checked against the tokenizer by :func:`compile_template`); else one line."""
    if template.count(SENTENCE_SLOT) != 1:
        found = "no" if SENTENCE_SLOT not in template else "more than one"
        raise UserError(f"{where} {template!r}: {found} {SENTENCE_SLOT} slot; a template holds the sentence once, "
                        f"e.g. 'This sentence : \"{{sentence}}\" means [MASK] .'")
    if MASK_SLOT not in template and "mask" not in template.lower():
        raise UserError(f"{where} {template!r}: no mask token; put the tokenizer's mask token ([MASK], <mask>) or "
                        f"{MASK_SLOT} where the sentence's representation is read")
    return template


@dataclass(frozen=True)
class TemplateTokens:
    """A template tokenised for one tokenizer (:func:`compile_template`)."""

    text: str                 # the template as given
    head: tuple[int, ...]     # special tokens before a sentence ([CLS], <s>, BOS)
    prefix: tuple[int, ...]   # the template's tokens before the sentence
    suffix: tuple[int, ...]   # the template's tokens after it
    tail: tuple[int, ...]     # special tokens after a sentence ([SEP], </s>, an appended EOS)
    mask_id: int              # the tokenizer's mask token id

    @property
    def length(self) -> int:
        """Tokens a row has besides the sentence's."""
        return len(self.head) + len(self.prefix) + len(self.suffix) + len(self.tail)

    @property
    def slot(self) -> int:
        """The position where the sentence's first token goes."""
        return len(self.head) + len(self.prefix)

    def template_only(self) -> list[int]:
        """The row of an empty sentence: the template alone (what denoising encodes)."""
        return [*self.head, *self.prefix, *self.suffix, *self.tail]

    def apply(self, ids: list[int], max_length: int | None = None) -> list[int]:
        """The template around a sentence's token ids (special tokens included, as the tokenizer gives them), its
        sentence truncated so that the row has at most ``max_length`` tokens; the template is never cut."""
        body = ids[len(self.head): len(ids) - len(self.tail)]
        if max_length is not None:
            room = max_length - self.length
            if room < 1:
                raise UserError(f"template {self.text!r} takes {self.length} tokens, which leaves none of the "
                                f"{max_length} for the sentence; shorten it or raise the maximum length")
            body = body[:room]
        return [*self.head, *self.prefix, *body, *self.suffix, *self.tail]


def _pieces(tokenizer, template: str, where: str) -> tuple[str, str]:
    mask = getattr(tokenizer, "mask_token", None)
    if not mask:
        raise UserError(f"{where} {template!r}: the tokenizer has no mask token to read the sentence at; use a "
                        f"model whose tokenizer has one (BERT's [MASK], RoBERTa's <mask>) or another pooler")
    text = check_template_text(template, where).replace(MASK_SLOT, mask)
    if text.count(mask) != 1:
        found = "no" if mask not in text else "more than one"
        raise UserError(f"{where} {template!r}: {found} mask token {mask!r} (this tokenizer's); a template reads "
                        f"the sentence at exactly one, written {mask} or {MASK_SLOT}")
    before, after = text.split(SENTENCE_SLOT)
    return before, after


def _special_ends(tokenizer) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The special tokens the tokenizer puts before and after a sentence's own tokens."""
    probe = "a b"
    full = tokenizer(probe)["input_ids"]
    bare = tokenizer(probe, add_special_tokens=False)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start: start + len(bare)] == bare:
            return tuple(full[:start]), tuple(full[start + len(bare):])
    raise UserError(f"cannot place a template with this tokenizer: its tokens of {probe!r} with special tokens do "
                    f"not contain those without")


def compile_template(tokenizer, template: str, where: str = "--template") -> TemplateTokens:
    """``template`` tokenised for ``tokenizer``; a template without a ``{sentence}`` slot, without the tokenizer's
    mask token or with more than one, or a tokenizer without a mask token, is one line naming ``where``."""
    before, after = _pieces(tokenizer, template, where)
    prefix = tokenizer(before, add_special_tokens=False)["input_ids"] if before else []
    suffix = tokenizer(after, add_special_tokens=False)["input_ids"] if after else []
    mask_id = tokenizer.mask_token_id
    if (prefix + suffix).count(mask_id) != 1:
        raise UserError(f"{where} {template!r}: the mask token does not tokenise to the single token "
                        f"{tokenizer.mask_token!r}; put spaces around it")
    head, tail = _special_ends(tokenizer)
    return TemplateTokens(template, head, tuple(prefix), tuple(suffix), tail, mask_id)


def mask_positions(input_ids, mask_id: int, index: int = 0):
    """(rows, positions) int tensor: ``index + 1`` where ``input_ids`` holds the mask token, else 0 (the batch entry
    :data:`TEMPLATE_ENTRY` that the ``mask`` pooler reads; ``index``: which of the model's templates built the rows,
    so that denoising subtracts that template's delta)."""
    return (input_ids == mask_id).long() * (index + 1)


def template_indices(marks):
    """Per row, the index of the template that built it (from :func:`mask_positions`' marks)."""
    return marks.max(1).values - 1


@dataclass(frozen=True)
class InputFormat:
    """How sentences become a model's inputs: an instruction before each (its tokens not pooled) and/or a template
    around it (:class:`TemplateTokens`; ``index``: its place among the model's templates)."""

    instruction: str = ""
    template: TemplateTokens | None = None
    index: int = 0

    def wrap(self, ids: list[list[int]], types: list[list[int]] | None, max_length: int):
        """Token ids (and type ids) of tokenised sentences with the template applied (the sentence truncated)."""
        if self.template is None:
            return ids, types
        ids = [self.template.apply(row, max_length) for row in ids]
        return ids, ([[0] * len(row) for row in ids] if types is not None else None)

    def mark(self, batch: dict) -> dict:
        """``batch`` with :data:`TEMPLATE_ENTRY` where there is a template."""
        if self.template is not None:
            batch[TEMPLATE_ENTRY] = mask_positions(batch["input_ids"], self.template.mask_id, self.index)
        return batch
