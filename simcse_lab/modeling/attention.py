"""Bidirectional attention for decoder LLMs (LLM2Vec's first step), through transformers' own interfaces.

transformers (5.x) builds every decoder's attention mask in ``masking_utils.create_causal_mask`` /
``create_sliding_window_causal_mask``, and both return the *bidirectional* (padding-only, or sliding window on
both sides) mask when the model's config says ``is_causal = False`` -- a documented switch ("use decoder-only
models with bi-directional attention"). Where no token is padded the mask is skipped altogether and the
attention kernel (SDPA, flash-attention) falls back to each attention module's own ``is_causal`` attribute, so
that attribute is switched too. Nothing is patched: :func:`set_bidirectional` sets those two public attributes
on a loaded model, the same way whatever the attention implementation (eager, sdpa, flash, flex) or family
(Llama, Mistral, Qwen2/3, Gemma 1-3, Phi-3, GPT-2); :func:`set_bidirectional` with ``False`` restores causal.

The config flag is a run-time setting here: :func:`saving_config` saves the config without it, so that a saved
folder never carries ``is_causal: false`` alone (transformers would then mask bidirectionally where a
batch is padded and run causal where it is not). Whether a saved model is bidirectional is recorded in its
:mod:`~simcse_lab.modeling.recipe`. Only the families whose config has a real flag that makes transformers
itself run them bidirectionally on load (Gemma's ``use_bidirectional_attention``, declared by the family as
``Family.bidirectional_config``) can be saved so that plain ``AutoModel`` / sentence-transformers reproduce it.
"""

from __future__ import annotations

import contextlib

RUNTIME_FLAG = "is_causal"  # the config attribute masking_utils reads
GEMMA_FLAG = "use_bidirectional_attention"  # Gemma 1-3's own flag (its attention modules read it when built)


def attention_modules(model):
    """The submodules that carry an ``is_causal`` attribute (the attention layers transformers dispatches)."""
    return [m for m in model.modules() if isinstance(getattr(m, "is_causal", None), bool)]


def set_bidirectional(model, on: bool):
    """``model`` (a transformers decoder, loaded) made to attend bidirectionally (``on``) or causally; returns
    it. Refuses (ValueError: a programming error) a model with no attention module that says it is causal."""
    modules = attention_modules(model)
    if not modules:
        raise ValueError(f"{type(model).__name__} has no attention module with an is_causal attribute")
    config = model.config
    if on:
        setattr(config, RUNTIME_FLAG, False)
    else:
        _set(config, RUNTIME_FLAG, _ABSENT)
    if getattr(config, GEMMA_FLAG, None) is not None or on and hasattr(config, GEMMA_FLAG):
        setattr(config, GEMMA_FLAG, on)  # Gemma 3 reads it in every forward: kept in step
    for module in modules:
        module.is_causal = not on
    return model


def is_bidirectional(model) -> bool:
    """Whether :func:`set_bidirectional` (or the family's own config flag) made ``model`` bidirectional."""
    modules = attention_modules(model)
    return bool(modules) and not any(m.is_causal for m in modules) and not getattr(model.config, RUNTIME_FLAG, True)


def reproducible_on_load(model, family) -> bool:
    """Whether plain transformers (``AutoModel``, sentence-transformers) would run ``model``, saved, as it runs
    now: a causal model always; a bidirectional one only where its family names a config flag for it."""
    return not is_bidirectional(model) or bool(family.bidirectional_config)


@contextlib.contextmanager
def saving_config(model, family):
    """The block (a ``save_pretrained``) sees the config that reloads as the model runs: a bidirectional model of a
    family with a config flag gets the flag (Gemma: ``use_bidirectional_attention`` and ``is_causal: false``);
    one without loses the run-time ``is_causal`` (alone it would make transformers mask bidirectionally only
    where a batch is padded); the config is restored after."""
    config = model.config
    if not is_bidirectional(model):
        values = {}
    elif family.bidirectional_config:
        values = dict(family.bidirectional_config)
    else:
        values = {RUNTIME_FLAG: _ABSENT}
    before = {name: config.__dict__.get(name, _ABSENT) for name in values}
    try:
        for name, value in values.items():
            _set(config, name, value)
        yield model
    finally:
        for name, value in before.items():
            _set(config, name, value)


_ABSENT = object()


def _set(config, name: str, value) -> None:
    if value is _ABSENT:
        config.__dict__.pop(name, None)
    else:
        setattr(config, name, value)
