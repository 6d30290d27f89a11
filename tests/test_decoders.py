"""Decoder LLMs as sentence encoders (issue 21) on tiny random decoders of each family (tests/families.py,
``decoder_models``): the fixtures are what the families ship."""

from __future__ import annotations

import pytest

from families import DECODERS


@pytest.mark.parametrize("name", list(DECODERS))
def test_decoder_fixture_is_the_family_as_shipped(decoder_models, name):
    """Each tiny decoder loads offline through the Auto classes with its family's tokenizer rules: BOS first
    where the family adds one, no EOS appended, the shipped padding side, and no pad token where none ships."""
    from transformers import AutoConfig, AutoTokenizer

    spec = DECODERS[name]
    tok = AutoTokenizer.from_pretrained(decoder_models[name])
    config = AutoConfig.from_pretrained(decoder_models[name])
    assert config.model_type == spec.model_type
    ids = tok("a man plays a guitar")["input_ids"]
    assert (ids[0] == tok.bos_token_id) == spec.adds_bos
    assert ids[-1] != tok.eos_token_id
    assert tok.padding_side == spec.padding_side
    assert (tok.pad_token is None) == (name in ("llama", "mistral", "phi3", "gpt2"))
