"""Backbone families: what differs between BERT, RoBERTa/XLM-R, DistilBERT, ELECTRA, MPNet, DeBERTa-v2/v3,
ModernBERT and T5 encoders, each declared once in its own module (``FAMILY = Family(...)``, see
:mod:`.base`), found by :func:`family_of` from a config's ``model_type``. An unknown model type gets the
generic rule (:mod:`.generic`), with a note once. Adding a family is one module here (found by itself)
plus its test fixture. Tests: tests/test_families.py."""

from __future__ import annotations

import importlib
import pkgutil
import sys

from simcse_lab.errors import UserError
from simcse_lab.modeling.families.base import MLM, MNTP, SUMMARY_POOLERS, Family, MaskedTokens

_NOT_FAMILIES = {"base", "generic"}


def _declared() -> dict[str, Family]:
    table: dict[str, Family] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name in _NOT_FAMILIES:
            continue
        family = importlib.import_module(f"{__name__}.{info.name}").FAMILY
        for model_type in family.model_types:
            if model_type in table:
                raise RuntimeError(f"model type {model_type!r} declared by {table[model_type].name} and {family.name}")
            table[model_type] = family
    return table


FAMILIES: dict[str, Family] = _declared()  # model_type -> family
GENERIC: Family = importlib.import_module(f"{__name__}.generic").FAMILY
_noted: set[str] = set()   # model types the generic note was given for
_padded: set[str] = set()  # models the pad-token note was given for


def family_of(config) -> Family:
    """The family of a transformers config (anything with ``model_type``); the generic rule, said once per
    model type, for one no module declares."""
    model_type = getattr(config, "model_type", None) or "unknown"
    family = FAMILIES.get(model_type)
    if family is not None:
        return family
    if model_type not in _noted:
        _noted.add(model_type)
        print("note: " + GENERIC.note.format(model_type=model_type, poolers=", ".join(GENERIC.fitting_poolers)),
              file=sys.stderr)
    return GENERIC


def check_pooler_fits(family: Family, pooler: str, model: str) -> str:
    """``pooler`` if the family can compute it; a pooler reading a sentence token on a family without one is a
    one-line UserError naming the family and the poolers that fit."""
    if pooler in SUMMARY_POOLERS and family.summary_token is None:
        raise UserError(f"{model}: pooler {pooler!r} reads a sentence token ([CLS]), which the {family.name} family "
                        f"does not have (position 0 is an ordinary token); use one of "
                        f"{', '.join(family.fitting_poolers)}")
    return pooler


def ensure_pad_token(tokenizer, family: Family, model: str):
    """The tokenizer, given a pad token by the family's fallback (eos, ...) when it has none; the choice is said
    once and travels with the tokenizer (``save_pretrained`` writes it), so eval and exports pad the same way.
    Padded positions are masked out, so which token pads changes no vector."""
    if tokenizer.pad_token_id is not None:
        return tokenizer
    for name in family.pad_fallback:
        token = getattr(tokenizer, name, None)
        if token is not None and getattr(tokenizer, f"{name}_id", None) is not None:
            tokenizer.pad_token = token
            if model not in _padded:
                _padded.add(model)
                print(f"note: {model}: the tokenizer has no pad token; padding with its {name.split('_')[0]} token "
                      f"{token!r} (masked out by the attention mask)", file=sys.stderr)
            return tokenizer
    raise UserError(f"{model}: the tokenizer has no pad token and none of {', '.join(family.pad_fallback)} to pad "
                    f"with; add a pad token to its tokenizer_config.json")


def mask_token(tokenizer, family: Family, model: str) -> tuple[int, str, bool]:
    """(id, token, whether the tokenizer has it as its mask token) of the token that masks for the family's
    masked-token objective: the tokenizer's mask token, else the family's fallback (MNTP: "_") where it is one
    token of the vocabulary; otherwise a one-line UserError."""
    if tokenizer.mask_token_id is not None:
        return tokenizer.mask_token_id, tokenizer.mask_token, True
    fallback = family.masked_lm.mask_fallback
    if fallback is None:
        raise UserError(f"{model}: --do-mlm needs a tokenizer with a mask token")
    token_id = tokenizer.convert_tokens_to_ids(fallback)
    if token_id is None or token_id == tokenizer.unk_token_id:
        ids = tokenizer(fallback, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise UserError(f"{model}: the tokenizer has no mask token and {fallback!r} (the {family.masked_lm.name} "
                            f"fallback) is not one token of its vocabulary; add a mask token to its tokenizer")
        token_id = ids[0]
    return int(token_id), fallback, False


__all__ = ["FAMILIES", "GENERIC", "MLM", "MNTP", "Family", "MaskedTokens", "check_pooler_fits", "ensure_pad_token",
           "family_of", "mask_token"]
