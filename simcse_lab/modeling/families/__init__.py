"""Backbone families: what differs between BERT, RoBERTa/XLM-R, DistilBERT, ELECTRA, MPNet, DeBERTa-v2/v3,
ModernBERT and T5 encoders and the decoder LLMs (Llama, Mistral, Qwen2/3, Gemma 1-3, Phi-3, GPT-2), each declared once in its own module (``FAMILY = Family(...)``, see
:mod:`.base`), found by :func:`family_of` from a config's ``model_type``. An unknown model type gets the
generic rule (:mod:`.generic`), with a note once. Adding a family is one module here (found by itself)
plus its test fixture. Tests: tests/modeling/test_families.py, tests/integration/test_decoders.py."""

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
    if pooler in family.refused_poolers:
        raise UserError(f"{model}: pooler {pooler!r} is refused for the {family.name} family "
                        f"({family.refused_poolers[pooler]}); use one of {', '.join(family.fitting_poolers)}")
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


def appends_eos(tokenizer) -> bool:
    """Whether the tokenizer itself puts its EOS token last."""
    ids = tokenizer("a")["input_ids"]
    return tokenizer.eos_token_id is not None and bool(ids) and ids[-1] == tokenizer.eos_token_id


def _template(piece: dict) -> str:
    kind, value = next(iter(piece.items()))
    return f"{'$' if kind == 'Sequence' else ''}{value['id']}:{value['type_id']}"


def _rebuild(definition: dict):
    """A tokenizers post-processor from its JSON (ByteLevel and the like: its fields are its arguments)."""
    from tokenizers import processors

    return getattr(processors, definition["type"])(**{k: v for k, v in definition.items() if k != "type"})


def _appending(definition: dict | None, eos: str, eos_id: int):
    """A post-processor doing what ``definition`` (a tokenizers post-processor as JSON, or None) does, then
    appending ``eos`` to each sequence: a template gets EOS at its end (a Sequence: its template does)."""
    from tokenizers import processors

    kind = (definition or {}).get("type")
    if kind == "Sequence":
        parts = definition["processors"]
        if any(p.get("type") == "TemplateProcessing" for p in parts):
            return processors.Sequence([_appending(p, eos, eos_id) if p.get("type") == "TemplateProcessing"
                                        else _rebuild(p) for p in parts])
    specials = {eos: eos_id}
    single, pair = ["$A:0"], ["$A:0", f"{eos}:0", "$B:1"]
    if kind == "TemplateProcessing":
        single = [_template(p) for p in definition["single"]]
        pair = [_template(p) for p in definition["pair"]]
        pair.insert(next((i for i, t in enumerate(pair) if t.endswith(":1")), len(pair)), f"{eos}:0")
        specials.update({name: token["ids"][0] for name, token in definition["special_tokens"].items()})
    append = processors.TemplateProcessing(single=" ".join(single + [f"{eos}:0"]), pair=" ".join(pair + [f"{eos}:1"]),
                                           special_tokens=list(specials.items()))
    if kind in (None, "TemplateProcessing"):
        return append
    return processors.Sequence([_rebuild(definition), append])


def ensure_eos(tokenizer, model: str, on: bool):
    """The tokenizer, made to append its EOS token to every input when ``on`` (a decoder family's rule,
    :attr:`Family.append_eos`, or a saved model's recipe) and it does not already: its post-processor is
    followed by one that appends EOS, so truncation keeps room for it, every caller (encoding, training data,
    exports, sentence-transformers reloading a saved tokenizer) gets it, and the tokenised-data cache key (the
    tokenizer's definition) changes with it. Nothing changes when ``on`` is false or the tokenizer adds it."""
    if not on or appends_eos(tokenizer):
        return tokenizer
    backend, eos = getattr(tokenizer, "backend_tokenizer", None), tokenizer.eos_token
    if backend is None or eos is None:
        raise UserError(f"{model}: the family appends EOS to every input, which needs a fast tokenizer with an "
                        f"eos token; this one has {'no eos token' if eos is None else 'no tokenizers backend'}")
    import json

    definition = json.loads(backend.to_str()).get("post_processor")
    backend.post_processor = _appending(definition, eos, tokenizer.eos_token_id)
    if not appends_eos(tokenizer):
        raise UserError(f"{model}: could not make the tokenizer append its eos token {eos!r}")
    return tokenizer


__all__ = ["FAMILIES", "GENERIC", "MLM", "MNTP", "Family", "MaskedTokens", "appends_eos", "check_pooler_fits",
           "ensure_eos", "ensure_pad_token", "family_of", "mask_token"]
