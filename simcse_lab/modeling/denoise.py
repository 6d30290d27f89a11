"""Template denoising (PromptBERT's ``get_delta``): the template's own bias, subtracted from a sentence's vector.

The template alone (an empty sentence: :meth:`~simcse_lab.modeling.template.TemplateTokens.template_only`) is
encoded with the position ids of everything after the sentence slot shifted by k, as if a sentence of k tokens
stood there; its last-layer state at the mask token is ``delta[k]``. A row whose sentence has k tokens (its
attended tokens less the template's) has ``delta[k]`` subtracted from its ``mask`` vector. PromptBERT encodes k
= 0..49 in training (with dropout and gradients, as here: the model's mode decides) and 0..127 at evaluation;
here only the lengths present in the batch are encoded, one row each, which in eval mode gives the same values.

Position ids start at the family's first position (0 for BERT, ``padding_idx + 1`` for RoBERTa: the family's
:attr:`~simcse_lab.modeling.families.base.Family.packing_position`, which also says the model takes position
ids at all); :func:`check_denoise` refuses a family without one in a line.
"""

from __future__ import annotations

import torch

from simcse_lab.errors import UserError
from simcse_lab.modeling.template import TEMPLATE_ENTRY, TemplateTokens, template_indices


def check_denoise(family, config, where: str) -> int:
    """The first position id of ``family``'s model, where it takes position ids; else one line."""
    if family.packing_position is None:
        raise UserError(f"{where}: template denoising shifts the template's position ids, which the {family.name} "
                        f"family's model does not take that way; use --no-template-denoise")
    return family.packing_position(config)


def sentence_lengths(attention_mask: torch.Tensor, template: TemplateTokens) -> torch.Tensor:
    """Per row, how many of its attended tokens are the sentence's (the rest are the template's)."""
    return attention_mask.sum(1) - template.length


def template_delta(backbone, template: TemplateTokens, lengths: torch.Tensor, first_position: int,
                   with_types: bool = False) -> torch.Tensor:
    """(rows, hidden): per row, the state at the template's mask token of the template alone, its positions after
    the sentence slot shifted by the row's sentence length (``lengths``)."""
    if torch.is_grad_enabled():  # one pass per row: each row's gradient takes the same path as its sentence's
        unique, inverse = lengths, torch.arange(len(lengths), device=lengths.device)
    else:
        unique, inverse = torch.unique(lengths, return_inverse=True)
    row = template.template_only()
    ids = torch.tensor(row, device=lengths.device).repeat(len(unique), 1)
    positions = first_position + torch.arange(len(row), device=lengths.device).repeat(len(unique), 1)
    positions[:, template.slot:] += unique[:, None]
    # the all-ones attention mask is needed: without one, transformers 5 takes the jump in the position ids for the
    # start of another packed sequence and would mask the template's two halves from each other
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "position_ids": positions}
    if with_types:
        inputs["token_type_ids"] = torch.zeros_like(ids)
    hidden = backbone(**inputs).last_hidden_state
    return hidden[:, row.index(template.mask_id)][inverse]


def denoised(vectors: torch.Tensor, backbone, templates: tuple[TemplateTokens, ...], batch: dict,
             first_position: int) -> torch.Tensor:
    """``vectors`` (the ``mask`` pooler's, of the rows of ``batch``) less each row's template delta; the batch's
    ``template_mask`` says which of ``templates`` built each row (:func:`~simcse_lab.modeling.template.mask_positions`)."""
    which = template_indices(batch[TEMPLATE_ENTRY])
    delta = torch.zeros_like(vectors)
    for index in which.unique().tolist():
        rows = (which == index).nonzero().squeeze(1)
        lengths = sentence_lengths(batch["attention_mask"][rows], templates[index])
        part = template_delta(backbone, templates[index], lengths, first_position, "token_type_ids" in batch)
        delta = delta.index_copy(0, rows, part.to(vectors.dtype))
    return vectors - delta
