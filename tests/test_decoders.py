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


# -- the families' rules --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(DECODERS))
def test_a_decoder_family_declares_the_decoder_rules(name):
    """Each decoder model type has its family: no sentence token, causal as shipped, EOS appended, mean pooling
    by default; cls, cls_before_pooler and avg_first_last are one-line refusals naming what fits."""
    from simcse_lab.errors import UserError
    from simcse_lab.modeling.families import FAMILIES, check_pooler_fits

    family = FAMILIES[DECODERS[name].model_type]
    assert (family.summary_token, family.causal, family.append_eos, family.natural_pooler) == (None, True, True, "avg")
    assert family.pad_fallback[0] == "eos_token" and not family.mlm
    for pooler in ("cls", "cls_before_pooler", "avg_first_last"):
        with pytest.raises(UserError) as err:
            check_pooler_fits(family, pooler, name)
        assert "\n" not in str(err.value) and "avg" in str(err.value).split("use one of")[1]
    assert check_pooler_fits(family, "avg_top2", name) == "avg_top2"
    assert bool(family.bidirectional_config) == name.startswith("gemma")


def _hidden(model, ids, mask=None):
    import torch

    with torch.inference_mode():
        mask = torch.ones_like(ids) if mask is None else mask
        return model(input_ids=ids, attention_mask=mask).last_hidden_state


@pytest.mark.parametrize("name", list(DECODERS))
def test_bidirectional_attention_lets_token_0_see_later_tokens(still_decoder_models, name):
    """The perturbation test: changing token 4 changes token 0's vector when bidirectional, not when causal;
    padding (right or left) is still ignored: a padded row equals the row alone."""
    import torch

    from simcse_lab.modeling.attention import is_bidirectional, set_bidirectional
    from simcse_lab.modeling.loading import load_model

    model = load_model(str(still_decoder_models[name])).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    changed = ids.clone()
    changed[0, 4] = 11
    for on in (False, True, False):
        set_bidirectional(model, on)
        assert is_bidirectional(model) == on
        moved = (_hidden(model, ids)[0, 0] - _hidden(model, changed)[0, 0]).abs().max().item()
        assert (moved > 1e-4) if on else (moved == 0.0), (on, moved)
    set_bidirectional(model, True)
    alone = _hidden(model, ids)[0]
    pad = torch.tensor([[0, 0]])
    right = _hidden(model, torch.cat([ids, pad], 1), torch.tensor([[1] * 6 + [0, 0]]))[0, :6]
    torch.testing.assert_close(right, alone, atol=1e-5, rtol=0)
    if DECODERS[name].position_table is None:  # rotary: positions are relative, so left padding changes nothing
        left = _hidden(model, torch.cat([pad, ids], 1), torch.tensor([[0, 0] + [1] * 6]))[0, 2:]
        torch.testing.assert_close(left, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("pooler", ["avg", "avg_top2"])
def test_every_decoder_pooler_is_right_under_either_padding_side(still_decoder_models, pooler, side):
    """The poolers a decoder takes read the real tokens only: a batch padded on either side gives each row's
    vector alone (Llama, rotary positions; bidirectional)."""
    import torch

    from simcse_lab.modeling.attention import set_bidirectional
    from simcse_lab.modeling.loading import load_model, load_tokenizer
    from simcse_lab.modeling.pooling import pool

    path = str(still_decoder_models["llama"])
    model = set_bidirectional(load_model(path).eval(), True)
    tokenizer = load_tokenizer(path)
    tokenizer.pad_token, tokenizer.padding_side = tokenizer.eos_token, side
    sentences = ["a man plays a guitar on the stage", "hi", "two dogs run"]

    def vectors(batch):
        with torch.inference_mode():
            out = model(**batch, output_hidden_states=True)
        return pool(pooler, batch, out.last_hidden_state, out.hidden_states, summary=None)

    batched = vectors(tokenizer(sentences, padding=True, return_tensors="pt"))
    assert batched.shape[0] == 3 and tokenizer(sentences, padding=True)["attention_mask"][1].count(0) > 0
    alone = torch.cat([vectors(tokenizer([s], return_tensors="pt")) for s in sentences])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)


# -- EOS ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(DECODERS))
def test_eos_is_appended_once_in_encoding_and_training_tokenisation(still_decoder_models, name):
    """The family's EOS rule reaches the encoder's tokenizer and the training tokenizer alike (one EOS, after
    BOS where the family adds one), survives truncation and a save/reload, and is not added twice."""
    from simcse_lab.modeling.embedder import load_embedder
    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.modeling.families import ensure_eos
    from simcse_lab.modeling.loading import load_tokenizer

    path = str(still_decoder_models[name])
    raw = load_tokenizer(path)("a man plays")["input_ids"]
    encoder = Encoder(path, precision="fp32", device="cpu")
    train_tok, _ = load_embedder(path, "avg", mlp_only_train=False)
    for tok in (encoder.tokenizer, train_tok):
        ids = tok("a man plays")["input_ids"]
        assert ids == raw + [tok.eos_token_id]
        assert tok("a man plays", truncation=True, max_length=len(raw))["input_ids"][-1] == tok.eos_token_id
        assert ensure_eos(tok, name, True)("a man plays")["input_ids"] == ids
    assert encoder.describe()["bidirectional"] is False  # a raw decoder runs as shipped: causal


# -- the recipe -----------------------------------------------------------------------------------------------
def test_recipe_round_trips_and_a_bad_one_is_one_line(tmp_path):
    from simcse_lab.errors import InputError
    from simcse_lab.modeling.recipe import RECIPE_FILE, EmbeddingRecipe, read_recipe

    recipe = EmbeddingRecipe("avg", bidirectional=True, append_eos=True, instruction="Retrieve: ")
    assert EmbeddingRecipe.from_json(recipe.to_json()) == recipe
    assert read_recipe(tmp_path) is None
    recipe.write(tmp_path)
    assert read_recipe(tmp_path) == recipe
    for bad, needle in [('{"format": 1, "pooler": "avg", "bidirectional": "yes"}', "'bidirectional' must be"),
                        ('{"format": 1, "pooler": "avg", "colour": 1}', "unknown field 'colour'"),
                        ('{"format": 9, "pooler": "avg"}', "format 1"), ("{", "not valid JSON")]:
        (tmp_path / RECIPE_FILE).write_text(bad)
        with pytest.raises(InputError) as err:
            read_recipe(tmp_path)
        assert needle in str(err.value) and RECIPE_FILE in str(err.value) and "\n" not in str(err.value)
