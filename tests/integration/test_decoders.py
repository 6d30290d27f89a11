"""Decoder LLMs as sentence encoders (issue 21) on tiny random decoders of each family (tests/families.py,
``decoder_models``): the fixtures are what the families ship."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import randomise_adapter
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
    assert family.pad_fallback[0] == "eos_token" and family.mlm and family.masked_lm.name == "mntp"  # tests/training/test_mntp.py
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


# -- trained models: the recipe saved, the layout, the loader, exports -----------------------------------------
SENTENCES = ["A man is playing a guitar.", "hi", "Two dogs run on the beach while a child watches them.",
             "A woman slices an onion."]


@pytest.fixture(scope="module")
def runs(still_decoder_models, shared_data, tmp_path_factory):
    """name -> run directory of a 2-step unsup run (memoised): ``llama`` / ``gpt2`` (bidirectional, the default),
    ``llama-causal`` (--no-bidirectional), ``gemma`` (bidirectional, a family with a config flag)."""
    from families import wiki_lines
    from test_families_matrix import TRAIN_COMMON, cli, works

    from conftest import write_lines

    tmp = tmp_path_factory.mktemp("decoder-runs")
    wiki = write_lines(tmp / "wiki.txt", [s for s in wiki_lines(shared_data) if 5 <= len(s.split()) <= 25][:24])
    made = {}

    def get(name: str) -> Path:
        if name not in made:
            model, *extra = name.split("-")
            flags = ["--no-bidirectional"] if extra == ["causal"] else []
            out = tmp / name
            works(cli("train", "--model", still_decoder_models[model], "--data", wiki, *TRAIN_COMMON, *flags,
                      "--output-dir", out), f"train {name}")
            made[name] = out
        return made[name]
    return get


def _reference_vectors(run_final: Path, sentences, bidirectional: bool):
    """The run's final model computed by hand: its backbone + tokenizer loaded with transformers, the attention
    set, EOS checked, each sentence alone, mean of the last layer."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from simcse_lab.modeling.attention import set_bidirectional

    folder = run_final / "backbone" if (run_final / "backbone").is_dir() else run_final
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = set_bidirectional(AutoModel.from_pretrained(folder).eval(), bidirectional)
    rows = []
    for sentence in sentences:
        enc = tokenizer(sentence, return_tensors="pt")
        assert enc["input_ids"][0, -1].item() == tokenizer.eos_token_id  # the saved tokenizer appends EOS
        with torch.inference_mode():
            rows.append(model(**enc).last_hidden_state[0].mean(0))
    return torch.stack(rows).numpy()


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_a_bidirectional_run_is_saved_in_simcse_labs_own_layout(runs, name):
    """A decoder trained bidirectionally (default) where transformers has no config flag for it: best/ and final/
    are the recipe + backbone/, which sentence-transformers and AutoModel refuse to load (they would run it
    causal); simcse-lab's loader embeds it exactly as the hand computation with bidirectional attention does, and
    differently from the causal one."""
    import numpy as np
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel

    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.modeling.recipe import EmbeddingRecipe, read_recipe

    final = runs(name) / "final"
    assert read_recipe(final) == EmbeddingRecipe("avg", bidirectional=True, append_eos=True)
    assert not (final / "modules.json").exists() and not (final / "config.json").exists()
    assert "is_causal" not in (final / "backbone" / "config.json").read_text()  # no half-working flag saved
    with pytest.raises(Exception):
        SentenceTransformer(str(final), device="cpu")
    with pytest.raises(Exception):
        AutoModel.from_pretrained(str(final))
    encoder = Encoder(str(runs(name)), precision="fp32", device="cpu", batch_size=3)  # the run dir: its best/final
    assert encoder.describe()["bidirectional"] is True and encoder.pooler == "avg"
    ours = encoder.encode(SENTENCES)
    np.testing.assert_allclose(ours, _reference_vectors(final, SENTENCES, True), atol=1e-5)
    assert np.abs(ours - _reference_vectors(final, SENTENCES, False)).max() > 1e-3
    causal = Encoder(str(final), precision="fp32", device="cpu", bidirectional=False).encode(SENTENCES)
    np.testing.assert_allclose(causal, _reference_vectors(final, SENTENCES, False), atol=1e-5)


def test_a_causal_run_is_a_sentence_transformers_directory_that_reloads_the_same(runs):
    """--no-bidirectional (SGPT / E5-Mistral style): best/ and final/ are sentence-transformers directories whose
    recipe says causal; plain SentenceTransformer (left padding, as Llama's tokenizer ships) gives simcse-lab's
    vectors."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.modeling.recipe import EmbeddingRecipe, read_recipe

    final = runs("llama-causal") / "final"
    assert read_recipe(final) == EmbeddingRecipe("avg", bidirectional=False, append_eos=True)
    st = SentenceTransformer(str(final), device="cpu")
    assert st.tokenizer.padding_side == "left"
    ours = Encoder(str(final), pooler="avg", precision="fp32", device="cpu").encode(SENTENCES)
    np.testing.assert_allclose(st.encode(SENTENCES, batch_size=4), ours, atol=1e-5)
    np.testing.assert_allclose(ours, _reference_vectors(final, SENTENCES, False), atol=1e-5)


def test_a_bidirectional_gemma_is_a_sentence_transformers_directory_that_stays_bidirectional(runs):
    """Gemma has transformers' own flag (use_bidirectional_attention + is_causal false): the saved directory is a
    sentence-transformers one that plain sentence-transformers runs bidirectionally, as simcse-lab does."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.modeling.recipe import read_recipe

    final = runs("gemma") / "final"
    assert read_recipe(final).bidirectional and (final / "modules.json").is_file()
    ours = Encoder(str(final), pooler="avg", precision="fp32", device="cpu").encode(SENTENCES)
    np.testing.assert_allclose(SentenceTransformer(str(final), device="cpu").encode(SENTENCES, batch_size=4), ours,
                               atol=1e-5)
    np.testing.assert_allclose(ours, _reference_vectors(final, SENTENCES, True), atol=1e-5)


@pytest.mark.parametrize("fmt", ["sentence-transformers", "hf"])
def test_exporting_a_bidirectional_run_as_a_causal_format_is_refused_before_writing(runs, tmp_path, fmt):
    from test_families_matrix import cli, refused

    out = tmp_path / "out"
    line = refused(cli("export", "--model", runs("llama"), "--format", fmt, "--output-dir", out),
                   f"export {fmt}", "onnx", "causal")
    assert "bidirectional" in line and not out.exists() and not list(tmp_path.iterdir())


def test_onnx_export_of_a_bidirectional_run_reproduces_it(runs, tmp_path):
    """The ONNX graph is traced with the bidirectional mask: onnxruntime gives simcse-lab's PyTorch vectors
    (batched, padded) within 1e-4, and its recipe travels with it."""
    pytest.importorskip("onnxruntime")
    import numpy as np

    from simcse_lab.export.formats import export
    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.modeling.onnx_encoder import OnnxEncoder
    from simcse_lab.modeling.recipe import read_recipe

    report = export(str(runs("llama")), "onnx", tmp_path / "onnx")
    assert report["max_abs_diff"] <= 1e-4 and read_recipe(tmp_path / "onnx").bidirectional
    torch_vectors = Encoder(str(runs("llama")), precision="fp32", device="cpu").encode(SENTENCES)
    onnx_vectors = OnnxEncoder(tmp_path / "onnx", batch_size=4).encode(SENTENCES)
    assert np.abs(onnx_vectors - torch_vectors).max() <= 1e-4
    causal = Encoder(str(runs("llama")), precision="fp32", device="cpu", bidirectional=False).encode(SENTENCES)
    assert np.abs(onnx_vectors - causal).max() > 1e-3


def test_no_bidirectional_on_an_encoder_is_refused(family_models, tmp_path):
    from test_families_matrix import TRAIN_COMMON, cli, refused

    out = tmp_path / "run"
    refused(cli("train", "--model", family_models["bert"], "--data", "wiki", "--no-bidirectional", *TRAIN_COMMON,
                "--output-dir", out), "bert --no-bidirectional", "encoder")
    assert not out.exists()


def test_index_records_the_attention_it_was_built_with_and_search_uses_it(still_decoder_models, shared_data,
                                                                           tmp_path):
    """index build --bidirectional on a raw decoder: the manifest records it and search loads the model the same
    way (its probe check would refuse a causal reload: cosine < 0.99)."""
    import json

    from families import wiki_lines
    from test_families_matrix import cli, works

    from conftest import write_lines

    corpus = write_lines(tmp_path / "corpus.txt", wiki_lines(shared_data)[:40])
    index = tmp_path / "index"
    works(cli("index", "build", "--model", still_decoder_models["qwen2"], "--corpus", corpus, "--bidirectional",
              "--output-dir", index, "--precision", "fp32", "--no-progress"), "index build --bidirectional")
    assert json.loads((index / "manifest.json").read_text())["bidirectional"] is True
    result = cli("search", "--index", index, "--query", wiki_lines(shared_data)[3], "-k", "1")
    works(result, "search")
    assert result.out.splitlines()[1].endswith(wiki_lines(shared_data)[3])


def test_eval_bidirectional_flag_changes_a_raw_decoder_and_is_recorded(still_decoder_models, shared_data, tmp_path,
                                                                       monkeypatch):
    import json

    from test_families_matrix import cli, small_stsb_registry, works

    small_stsb_registry(monkeypatch, shared_data, tmp_path / "mirror")
    scores = {}
    for flag in ("--bidirectional", "--no-bidirectional"):
        out = tmp_path / f"{flag}.json"
        works(cli("eval", "--model", still_decoder_models["llama"], "--tasks", "stsb", "--precision", "fp32", flag,
                  "--no-progress", "--output", out), f"eval {flag}")
        result = json.loads(out.read_text())
        assert result["bidirectional"] is (flag == "--bidirectional")
        scores[flag] = result["tasks"]["stsb"]["spearman"]
    assert scores["--bidirectional"] != scores["--no-bidirectional"]


@pytest.mark.parametrize("name", [n for n in DECODERS if n.startswith("gemma")])
def test_gemmas_config_flag_reloads_bidirectional_through_plain_automodel(still_decoder_models, name, tmp_path):
    """Gemma 1-3: saved with the family's flag (use_bidirectional_attention + is_causal false), plain AutoModel
    reloads the model bidirectional, equal to simcse-lab's in-memory switch on a padded batch longer than
    Gemma 3's sliding window; saved causal, the flag is absent and the reload is causal."""
    import json

    import torch
    from transformers import AutoModel

    from simcse_lab.modeling.attention import is_bidirectional, saving_config, set_bidirectional
    from simcse_lab.modeling.families import family_of

    torch.manual_seed(0)
    ids = torch.randint(5, 300, (2, 20))
    mask = torch.ones_like(ids)
    mask[1, 14:] = 0
    for on in (True, False):
        model = set_bidirectional(AutoModel.from_pretrained(still_decoder_models[name]).eval(), on)
        with saving_config(model, family_of(model.config)):
            model.save_pretrained(tmp_path / str(on))
        saved = json.loads((tmp_path / str(on) / "config.json").read_text())
        assert (saved.get("is_causal"), bool(saved.get("use_bidirectional_attention"))) == ((False, True) if on
                                                                                           else (None, False))
        reloaded = AutoModel.from_pretrained(tmp_path / str(on)).eval()
        assert is_bidirectional(reloaded) == on and is_bidirectional(model) == on  # the config restored after
        torch.testing.assert_close(_hidden(reloaded, ids, mask), _hidden(model, ids, mask), atol=1e-6, rtol=0)


def test_eos_joins_a_llama3_style_post_processor(still_decoder_models):
    """Llama 3 ships byte-level BPE with a Sequence(ByteLevel, Template '<|begin_of_text|> $A') post-processor:
    EOS goes after the sentence, BOS stays first, once each."""
    from tokenizers import processors

    from simcse_lab.modeling.families import ensure_eos
    from simcse_lab.modeling.loading import load_tokenizer

    tok = load_tokenizer(str(still_decoder_models["qwen2"]))
    bos = tok.eos_token_id  # <|endoftext|> stands in for <|begin_of_text|>
    tok.backend_tokenizer.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|endoftext|>:0 $A:0", special_tokens=[("<|endoftext|>", bos)])])
    plain = tok("a man plays")["input_ids"]
    assert plain[0] == bos and plain[-1] != tok.eos_token_id
    assert ensure_eos(tok, "llama3-like", True)("a man plays")["input_ids"] == plain + [tok.eos_token_id]


@pytest.mark.parametrize("name", list(DECODERS))
@pytest.mark.parametrize("bidirectional", [True, False])
def test_every_decoder_as_an_adapter_directory_embeds_as_it_trained(still_decoder_models, tmp_path, name,
                                                                    bidirectional):
    """The adapter-directory cell of the decoder matrix (--no-merge-lora): each family's adapter directory, read by
    eval's Encoder (base model + adapter merged, attention from the recipe), gives the vectors of the in-memory
    LoRA model it was saved from (1e-5), and not those of its base (the adapter is in them)."""
    import numpy as np
    import torch

    from simcse_lab.modeling.embedder import load_embedder, set_attention
    from simcse_lab.modeling.encoder import Encoder, EmbedderEncoder
    from simcse_lab.modeling.lora import BackboneSetup
    from simcse_lab.modeling.st_format import save_embedder

    model = still_decoder_models[name]
    tokenizer, embedder = load_embedder(str(model), "avg", mlp_only_train=False, setup=BackboneSetup(lora_r=4))
    set_attention(embedder.backbone, embedder.family, bidirectional)
    randomise_adapter(embedder, seed=5)
    embedder.export_adapter = str(model)
    save_embedder(embedder, tokenizer, tmp_path / "adapter")
    trained = EmbedderEncoder(embedder, tokenizer, "fp32", torch.device("cpu"), "tiny").encode(SENTENCES)
    encoder = Encoder(str(tmp_path / "adapter"), precision="fp32", device="cpu", batch_size=3)
    assert (encoder.pooler, encoder.bidirectional) == ("avg", bidirectional)
    np.testing.assert_allclose(encoder.encode(SENTENCES), trained, atol=1e-5)
    base = Encoder(str(model), pooler="avg", precision="fp32", device="cpu", bidirectional=bidirectional)
    assert np.abs(base.encode(SENTENCES) - trained).max() > 1e-3
