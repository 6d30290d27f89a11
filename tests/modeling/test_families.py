"""Backbone families (issue 17): each family's declared rules, and the defects they fixed, one test each, on tiny
random models (tests/tiny_backbones.py): the FLOP shape from the family's own config names, T5 loaded as its
encoder, the usable length of the offset-position families, a tokenizer without a pad token, a pooler that
reads a sentence token on a family without one, DeBERTa-v3's ONNX inputs, ESimCSE's repetition ends."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tiny_backbones import make_no_pad_gpt2, make_tiny, tiny_config

from simcse_lab.errors import UserError
from simcse_lab.modeling.families import FAMILIES, GENERIC, family_of

LONG = "the big red dog ran quickly under the table in the park " * 12  # about 150 word pieces
SENTENCES = ["a man plays a guitar", "hi", LONG, "two small cats sat on the house under a tree"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """model_type -> a saved tiny model, built once per module."""
    root, made = tmp_path_factory.mktemp("families"), {}

    def get(model_type: str):
        if model_type not in made:
            made[model_type] = (make_no_pad_gpt2(root / model_type) if model_type == "gpt2"
                                else make_tiny(root / model_type, model_type))
        return made[model_type]
    return get


def test_every_declared_family_and_its_rules():
    """The nine families of the issue are declared (and the decoder LLMs of issue 21); summary tokens, natural
    poolers and packing as stated."""
    names = {f.name for f in FAMILIES.values() if not f.causal}
    assert names == {"bert", "roberta", "distilbert", "electra", "mpnet", "deberta", "modernbert", "t5"}
    for model_type in ("bert", "roberta", "xlm-roberta", "distilbert", "electra", "mpnet", "deberta-v2",
                       "modernbert", "t5", "mt5", "umt5"):
        assert model_type in FAMILIES
    t5 = FAMILIES["t5"]
    assert (t5.summary_token, t5.natural_pooler, t5.mlm, t5.fp16_safe) == (None, "avg", False, False)
    assert "cls" not in t5.fitting_poolers and "avg" in t5.fitting_poolers
    assert FAMILIES["bert"].natural_pooler == "cls" and FAMILIES["roberta"].natural_pooler == "cls"
    packable = {t for t, f in FAMILIES.items() if f.packing_position is not None}
    assert packable == {"bert", "electra", "roberta", "xlm-roberta", "xlm-roberta-xl", "camembert",
                        "roberta-prelayernorm", "mpnet"}


@pytest.mark.parametrize("model_type, shape", [
    ("bert", (32, 64, 2)), ("distilbert", (32, 64, 2)), ("t5", (32, 64, 2)), ("gpt2", (32, 128, 2)),
    ("modernbert", (32, 96, 2)), ("deberta-v2", (32, 64, 2))])
def test_flop_shape_reads_each_familys_own_config_names(model_type, shape):
    """Defect 1: the throughput log read BERT's intermediate_size, so DistilBERT, T5 and GPT-2 could not train
    (AttributeError at step 1). GPT-2's n_inner None is 4 x n_embd; ModernBERT's GLU is 1.5 x its ffn."""
    from simcse_lab.training.throughput import StepWork

    config = tiny_config(model_type, 100, pad_id=0)
    objective = SimpleNamespace(mlm=None, forward_only_inputs=())  # what the Objective base declares
    work = StepWork(objective, config)
    assert work.shape == shape
    tokens, flops = work({"input_ids": torch.ones(2, 5, dtype=torch.long),
                          "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])})
    assert tokens == 8 and flops > 0


def test_t5_loads_the_encoder_alone_and_pools_by_mean(tiny):
    """Defect 2: AutoModel built T5's encoder-decoder, whose forward asks for decoder inputs ("You must specify
    exactly one of input_ids or inputs_embeds"). The encoder is T5EncoderModel, its default pooler the mean,
    and the vectors equal a loop over rows written here."""
    from transformers import T5EncoderModel

    from simcse_lab.modeling.encoder import Encoder

    path = tiny("t5")
    enc = Encoder(str(path), precision="fp32")  # no --pooler: the family's natural one
    assert type(enc.hf_model).__name__ == "T5EncoderModel" and enc.pooler == "avg"
    got = enc.encode(SENTENCES[:2] + SENTENCES[3:])
    model = T5EncoderModel.from_pretrained(path).eval()
    for row, sentence in zip(got, SENTENCES[:2] + SENTENCES[3:]):
        ids = enc.tokenizer(sentence, return_tensors="pt")
        with torch.no_grad():
            want = model(**ids).last_hidden_state[0].mean(0).numpy()
        np.testing.assert_allclose(row, want, atol=1e-5)


@pytest.mark.parametrize("model_type, usable", [("roberta", 65), ("xlm-roberta", 65), ("mpnet", 64), ("bert", 66)])
def test_offset_position_families_truncate_to_their_usable_length(tiny, tmp_path, model_type, usable):
    """Defect 3: RoBERTa/XLM-R/MPNet count positions from padding_idx + 1, so a 66-row table takes 65 tokens
    (64 for MPNet, whose padding_idx is fixed at 1); taking max_position_embeddings crashed on long inputs
    ("index 66 is out of bounds"). The encoder, the exported max_seq_length and index build truncate there."""
    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.modeling.loading import load_sentence_transformer
    from simcse_lab.modeling.st_format import save_sentence_transformer
    from simcse_lab.search.index import IndexBuild, build_index

    path = tiny(model_type)
    enc = Encoder(str(path), pooler="avg", precision="fp32")
    assert enc.max_length == usable
    assert enc.encode(SENTENCES).shape == (4, 32)  # the long one truncated, no crash
    out = save_sentence_transformer(enc.hf_model, enc.tokenizer, "avg", tmp_path / "st", max_seq_length=512)
    assert load_sentence_transformer(str(out)).max_seq_length == usable
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"{s}\n" for s in SENTENCES))
    build_index(IndexBuild(str(path), str(corpus), str(tmp_path / "index"), pooler="avg", precision="fp32",
                           progress=False))


def test_a_tokenizer_without_a_pad_token_pads_with_its_eos(tiny, tmp_path, capsys):
    """Defect 4: a tokenizer with no pad token (GPT-2, Llama) crashed every batch (torch.full(..., None)). The
    family's fallback (eos) is applied once where the tokenizer loads, said in one line, and saved with an
    export, so that what reloads pads the same way; padding changes no vector (the mask hides it)."""
    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.modeling.loading import load_tokenizer
    from simcse_lab.modeling.st_format import save_sentence_transformer

    path = tiny("gpt2")
    enc = Encoder(str(path), precision="fp32", batch_size=4)
    assert "no pad token; padding with its eos token" in capsys.readouterr().err
    assert enc.pooler == "avg"  # generic family: no sentence token
    batched = enc.encode(["the cat sat on the table", "a dog"])
    alone = [Encoder(str(path), precision="fp32", batch_size=1).encode([s])[0] for s in ("the cat sat on the table",
                                                                                         "a dog")]
    np.testing.assert_allclose(batched, np.stack(alone), atol=1e-5)
    out = save_sentence_transformer(enc.hf_model, enc.tokenizer, "avg", tmp_path / "st")
    assert load_tokenizer(str(out)).pad_token == "</s>"


@pytest.mark.parametrize("pooler", ["cls", "cls_before_pooler"])
def test_a_summary_pooler_on_a_family_without_one_is_refused(tiny, pooler):
    """Defect 5: cls / cls_before_pooler on T5 read the first word piece, silently. Refused in one line naming
    the family and the poolers that fit, before the weights load (eval, export, analyze, index go through
    Encoder; train through resolve_backbone)."""
    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.training.backbone import resolve_backbone
    from simcse_lab.training.config import TrainConfig

    path = str(tiny("t5"))
    with pytest.raises(UserError, match=rf"pooler '{pooler}' reads a sentence token .* t5 family .* avg, "
                                        r"avg_first_last, avg_top2, last_token, weighted_avg$"):
        Encoder(path, pooler=pooler, precision="fp32")
    with pytest.raises(UserError, match="t5 family"):
        resolve_backbone(TrainConfig(model=path, pooler=pooler))
    cfg = TrainConfig(model=path)  # no pooler given: the family's natural one
    resolve_backbone(cfg)
    assert cfg.pooler == "avg"
    cfg = TrainConfig(model=path)
    cfg.do_mlm = True
    with pytest.raises(UserError, match="t5 family has no masked-language-model objective"):
        resolve_backbone(cfg)


def test_default_pooler_and_max_length_checks_for_training(tiny):
    """BERT keeps cls as its default; --max-seq-len beyond the usable positions is one line before any work
    (it was an index error at step 1); T5 in fp16 is refused, and auto's fp16 becomes fp32 with a note."""
    from simcse_lab.training.backbone import family_precision, resolve_backbone
    from simcse_lab.training.config import TrainConfig

    cfg = TrainConfig(model=str(tiny("bert")))
    assert resolve_backbone(cfg).name == "bert" and cfg.pooler == "cls"
    with pytest.raises(UserError, match=r"max_seq_len 66 is more than the 65 positions .* \(roberta family\)"):
        resolve_backbone(TrainConfig(model=str(tiny("roberta")), max_seq_len=66))
    resolve_backbone(TrainConfig(model=str(tiny("roberta")), max_seq_len=65))
    t5 = FAMILIES["t5"]
    with pytest.raises(UserError, match="t5 family overflows fp16"):
        family_precision(t5, "fp16", "fp16")
    assert family_precision(t5, "fp16", "auto") == "fp32"
    assert family_precision(t5, "bf16", "auto") == "bf16"
    assert family_precision(FAMILIES["bert"], "fp16", "fp16") == "fp16"


def test_cli_train_refuses_cls_on_t5_before_any_work(tiny, tmp_path, capsys):
    from simcse_lab.cli import main

    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c\n" * 8)
    out = tmp_path / "run"
    model = str(tiny("t5"))
    capsys.readouterr()  # building the fixture model writes progress bars
    with pytest.raises(SystemExit) as exc:
        main(["train", "--model", model, "--data", str(corpus), "--pooler", "cls", "--output-dir",
              str(out), "--max-steps", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "t5 family" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_generic_family_for_an_unknown_model_type_says_so_once(capsys):
    config = tiny_config("gpt2", 100)
    config.model_type = "made-up-type"
    assert family_of(config) is GENERIC and family_of(config) is GENERIC
    assert capsys.readouterr().err.count("no backbone family declares model type 'made-up-type'") == 1
    assert GENERIC.natural_pooler == "avg" and GENERIC.packing_position is None


def test_deberta_v3_onnx_export_names_the_graphs_own_inputs(tiny, tmp_path):
    """Defect 6: DeBERTa-v3 (type_vocab_size 0) never reads token_type_ids, the exporter pruned that input, and
    the export's own verifier refused the graph for naming it. The names now come from the graph."""
    pytest.importorskip("onnxruntime")
    from simcse_lab.export.formats import export

    out = tmp_path / "onnx"
    report = export(str(tiny("deberta-v2")), "onnx", out, pooler="avg")
    assert report["max_abs_diff"] <= 1e-4
    assert json.loads((out / "onnx_config.json").read_text())["inputs"] == ["input_ids", "attention_mask"]


def test_repetition_never_repeats_the_tokenizers_own_end_tokens():
    """Defect 7 (ESimCSE assumed one special token at each end): T5 appends only </s> (its first word piece was
    never repeated), GPT-2 none (its first and last words never were). The ends are read per row."""
    from simcse_lab.training.objectives.repetition import edge_specials, repeat_tokens

    specials = {1, 101, 102}
    assert edge_specials([101, 5, 6, 102], specials) == (1, 1)
    assert edge_specials([5, 6, 7, 1], specials) == (0, 1)
    assert edge_specials([5, 6, 7], specials) == (0, 0)
    assert edge_specials([101, 102], specials) == (2, 0)
    seen_first = seen_last = False
    for seed in range(200):
        out = repeat_tokens([5, 6, 7, 1], 0.9, random.Random(seed), special_ids=specials)
        assert out[-1] == 1 and out.count(1) == 1  # T5's </s> never repeated
        seen_first |= out[:2] == [5, 5]
        plain = repeat_tokens([5, 6, 7], 0.9, random.Random(seed), special_ids=specials)
        seen_last |= plain[-2:] == [7, 7]
    assert seen_first and seen_last
    # BERT rows draw exactly as before (one special at each end)
    for seed in range(20):
        ids = [101, 5, 6, 7, 8, 102]
        assert (repeat_tokens(ids, 0.32, random.Random(seed), special_ids={101, 102})
                == repeat_tokens(ids, 0.32, random.Random(seed)))


def test_pool_reads_the_batch_and_the_familys_summary_position():
    """pool() receives the whole batch (a later pooler may read any position) and the family's sentence token
    position; a summary pooler with none is a programming error, not a silent position 0."""
    from simcse_lab.modeling.pooling import pool

    hidden = torch.arange(24, dtype=torch.float32).view(2, 3, 4)
    batch = {"input_ids": torch.ones(2, 3, dtype=torch.long), "attention_mask": torch.tensor([[1, 1, 0], [1, 1, 1]])}
    torch.testing.assert_close(pool("cls_before_pooler", batch, hidden, summary=0), hidden[:, 0])
    torch.testing.assert_close(pool("avg", batch, hidden, summary=None),
                               torch.stack([hidden[0, :2].mean(0), hidden[1].mean(0)]))
    with pytest.raises(ValueError, match="needs a sentence token"):
        pool("cls_before_pooler", batch, hidden, summary=None)


def _sentence_t5_dir(path, t5_dir, normalize: bool = True):
    """A sentence-transformers directory laid out as Sentence-T5's: Transformer -> Pooling(mean) -> Dense(no bias,
    identity) -> Normalize, over the tiny T5."""
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling

    from simcse_lab.modeling.loading import sentence_transformer_from_modules, transformer_module

    transformer = transformer_module(str(t5_dir), max_seq_length=64)
    torch.manual_seed(1)
    modules = [transformer, Pooling(32, pooling_mode="mean"),
               Dense(32, 24, bias=False, activation_function=torch.nn.Identity())]
    model = sentence_transformer_from_modules(modules + ([Normalize()] if normalize else []), device="cpu")
    model.save(str(path))
    return path


def test_sentence_t5_projection_is_kept_trained_and_exported(tiny, tmp_path):
    """Sentence-T5: T5 encoder, mean pooling, a bias-free Dense (24 of 32 here) and Normalize. Training from such
    a directory keeps its projection (vectors equal plain SentenceTransformer's before training); the run's
    export is again Transformer -> Pooling -> Dense -> Normalize and plain SentenceTransformer reproduces the
    trained embedder (<= 1e-5)."""
    from sentence_transformers import SentenceTransformer

    from simcse_lab.modeling.embedder import load_embedder
    from simcse_lab.modeling.encoder import EmbedderEncoder
    from simcse_lab.modeling.st_format import save_embedder

    st_dir = _sentence_t5_dir(tmp_path / "st5", tiny("t5"))
    tokenizer, embedder = load_embedder(str(st_dir), "avg", mlp_only_train=True)
    assert embedder.projection is not None and embedder.normalize and embedder.dim == 24
    sentences = SENTENCES[:2] + SENTENCES[3:]
    ours = EmbedderEncoder(embedder, tokenizer, "fp32", torch.device("cpu"), "st5").encode(sentences)
    theirs = SentenceTransformer(str(st_dir), device="cpu").encode(sentences)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    with torch.no_grad():  # as if trained: every weight moved
        for p in embedder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ours = EmbedderEncoder(embedder, tokenizer, "fp32", torch.device("cpu"), "st5").encode(sentences)
    out = save_embedder(embedder, tokenizer, tmp_path / "export")
    reloaded = SentenceTransformer(str(out), device="cpu")
    assert [type(m).__name__ for m in reloaded] == ["Transformer", "Pooling", "Dense", "Normalize"]
    np.testing.assert_allclose(reloaded.encode(sentences), ours, atol=1e-5)


def test_train_t5_with_a_fresh_projection(tiny, tmp_path):
    """A raw T5 encoder trains (unsup, the family's default pooler avg) with --projection, and its run directory
    holds a Sentence-T5 layout."""
    from sentence_transformers import SentenceTransformer

    from simcse_lab.training.config import TrainConfig
    from simcse_lab.training.loop import train

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"{s}\n" for s in SENTENCES * 4))
    summary = train(TrainConfig(model=str(tiny("t5")), data=str(corpus), batch_size=4, max_seq_len=16, lr=1e-3,
                                max_steps=2, eval_steps=0, test_tasks="none", precision="fp32", progress=False,
                                projection=True, output_dir=str(tmp_path / "run")))
    assert summary["config"]["pooler"] == "avg"
    model = SentenceTransformer(str(tmp_path / "run" / "final"), device="cpu")
    assert [type(m).__name__ for m in model] == ["Transformer", "Pooling", "Dense", "Normalize"]
    assert type(model[0].model).__name__ == "T5EncoderModel"


ALL_NINE = ["bert", "roberta", "xlm-roberta", "distilbert", "electra", "mpnet", "deberta-v2", "modernbert", "t5"]


def _by_definition(model, tokenizer, pooler: str, sentence: str, max_length: int) -> np.ndarray:
    """One sentence, no padding, the pooler written out (the backbone's own pooler layer for cls)."""
    ids = tokenizer(sentence, truncation=True, max_length=max_length, return_tensors="pt")
    ids = {k: v for k, v in ids.items() if k in tokenizer.model_input_names}
    with torch.no_grad():
        hs = model(**ids, output_hidden_states=True).hidden_states
        if pooler == "cls":
            return model.pooler.activation(model.pooler.dense(hs[-1][0, 0])).numpy()
        if pooler == "cls_before_pooler":
            return hs[-1][0, 0].numpy()
        if pooler == "last_token":
            return hs[-1][0, -1].numpy()
        if pooler == "weighted_avg":  # SGPT: token k (1..L) weighs k
            weights = torch.arange(1, hs[-1].shape[1] + 1, dtype=hs[-1].dtype)
            return ((hs[-1][0] * weights[:, None]).sum(0) / weights.sum()).numpy()
        pair = {"avg": (hs[-1], hs[-1]), "avg_first_last": (hs[1], hs[-1]), "avg_top2": (hs[-2], hs[-1])}[pooler]
        return ((pair[0][0] + pair[1][0]) / 2).mean(0).numpy()


@pytest.mark.parametrize("model_type", ALL_NINE)
def test_every_pooler_of_every_family_by_definition_and_through_its_export(tiny, tmp_path, model_type):
    """Each pooler the family takes equals the pooler written out over single rows (padding changes nothing), and
    its sentence-transformers export, reloaded by plain SentenceTransformer, gives the same vectors (<= 1e-5);
    cls on a family without a trained pooler layer is the one-line refusal."""
    from sentence_transformers import SentenceTransformer

    from simcse_lab.export.formats import export
    from simcse_lab.modeling.encoder import Encoder

    path = str(tiny(model_type))
    family = family_of(Encoder(path, pooler="avg", precision="fp32").hf_model.config)
    vectors = {}
    for pooler in family.fitting_poolers:
        try:
            enc = Encoder(path, pooler=pooler, precision="fp32", batch_size=4)
        except UserError as err:
            assert pooler == "cls" and "needs trained pooler/MLP weights" in str(err)
            continue
        vectors[pooler] = enc.encode(SENTENCES)
        for row, sentence in zip(vectors[pooler], SENTENCES):
            want = _by_definition(enc.hf_model, enc.tokenizer, pooler, sentence, enc.max_length)
            np.testing.assert_allclose(row, want, atol=1e-5, err_msg=f"{model_type} {pooler}")
    # the export of the family's natural pooler (cls with a BERT-style pooler layer; else avg), the long row included
    pooler = family.natural_pooler if family.natural_pooler in vectors else "avg"
    export(path, "sentence-transformers", tmp_path / pooler, pooler=pooler)
    reloaded = SentenceTransformer(str(tmp_path / pooler), device="cpu").encode(SENTENCES)
    np.testing.assert_allclose(reloaded, vectors[pooler], atol=1e-5, err_msg=f"{model_type} {pooler} export")


def test_resume_with_another_projection_setting_is_refused(tiny, tmp_path):
    """The projection head is part of the weights: --resume with --projection changed is one line, not a
    state-dict traceback."""
    from simcse_lab.training.config import TrainConfig
    from simcse_lab.training.loop import train

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"{s}\n" for s in SENTENCES * 4))
    base = dict(model=str(tiny("bert")), data=str(corpus), batch_size=4, max_seq_len=16, max_steps=1, eval_steps=0,
                test_tasks="none", precision="fp32", progress=False, output_dir=str(tmp_path / "run"))
    train(TrainConfig(**base))
    with pytest.raises(UserError, match="--resume with changed projection"):
        train(TrainConfig(**base, resume=True, projection=True))
