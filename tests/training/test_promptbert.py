"""--objective promptbert (issue 22): each view in its template, denoised in training as written out here, and
the trained model saved in simcse-lab's own layout with its template, embedding on reload as in training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from conftest import explicit_delta, make_tiny_bert, one_line_refusal, random_sentences, write_lines

from simcse_lab.modeling.embedder import load_embedder
from simcse_lab.modeling.encoder import Encoder
from simcse_lab.modeling.recipe import read_recipe
from simcse_lab.modeling.template import compile_template
from simcse_lab.training.config import TrainConfig
from simcse_lab.training.loop import train
from simcse_lab.training.objectives.promptbert import BERT_TEMPLATES, PromptBERT


def mask_state(model, row: list[int], mask_id: int) -> torch.Tensor:
    hidden = model(input_ids=torch.tensor([row])).last_hidden_state[0]
    return hidden[row.index(mask_id)]


def test_training_views_are_denoised_as_written_out(tmp_path):
    path = make_tiny_bert(tmp_path / "bert", dropout=0.0)  # training mode without noise: one answer
    tokenizer, embedder = load_embedder(str(path), "mask", mlp_only_train=True)
    objective = PromptBERT(tokenizer, embedder, 0.05, ("", ""), denoise=True)
    objective.max_positions = 128
    sentences = random_sentences(5)
    examples = [tokenizer(s)["input_ids"] for s in sentences]
    embedder.train()
    z1, z2 = objective.embed(embedder, objective.collate(examples, 0))
    backbone = embedder.backbone
    for view, vectors in enumerate((z1, z2)):
        template = compile_template(tokenizer, BERT_TEMPLATES[view])
        for i, ids in enumerate(examples):
            with torch.no_grad():
                state = mask_state(backbone, template.apply(ids), tokenizer.mask_token_id)
                delta = explicit_delta(backbone, tokenizer, template, len(ids) - 2)
                want = embedder.mlp(state - delta)  # PromptBERT's MLP (--mlp_only_train) over the denoised state
            torch.testing.assert_close(vectors[i].detach(), want, rtol=1e-5, atol=1e-5)
    loss = objective.loss_from_embeddings(z1, z2)
    loss.backward()
    assert embedder.backbone.embeddings.word_embeddings.weight.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step promptbert run on a tiny BERT: its directory."""
    tmp_path = tmp_path_factory.mktemp("promptbert")
    path = make_tiny_bert(tmp_path / "bert")
    data = write_lines(tmp_path / "corpus.txt", random_sentences(40))
    cfg = TrainConfig(model=str(path), data=str(data), objective="promptbert", batch_size=8, max_seq_len=16, lr=1e-3,
                      max_steps=2, eval_steps=0, test_tasks="none", precision="fp32", progress=False,
                      output_dir=str(tmp_path / "run"))
    train(cfg)
    return tmp_path / "run"


def test_trained_model_reloads_with_its_template(trained):
    final = trained / "final"
    recipe = read_recipe(final)
    assert (recipe.pooler, recipe.template, recipe.template_denoise) == ("mask", BERT_TEMPLATES[0], True)
    assert (final / "backbone" / "config.json").is_file() and not (final / "modules.json").exists()
    sentences = random_sentences(4, seed=9)
    got = Encoder(str(final), precision="fp32", device="cpu").encode(sentences)
    tokenizer = AutoTokenizer.from_pretrained(final / "backbone")
    model = AutoModel.from_pretrained(final / "backbone").eval()
    template = compile_template(tokenizer, BERT_TEMPLATES[0])
    for i, sentence in enumerate(sentences):
        ids = tokenizer(sentence)["input_ids"]
        with torch.no_grad():
            want = mask_state(model, template.apply(ids), tokenizer.mask_token_id) \
                - explicit_delta(model, tokenizer, template, len(ids) - 2)
        np.testing.assert_allclose(got[i], want.numpy(), atol=1e-5)
    config = json.loads((trained / "summary.json").read_text())["config"]
    assert config["template_denoise"] is True and config["objective"] == "promptbert"


@pytest.mark.parametrize("fmt", ["sentence-transformers", "hf"])
def test_export_that_cannot_keep_the_template_is_refused(trained, tmp_path, capsys, fmt):
    err = one_line_refusal(["export", "--model", str(trained / "final"), "--format", fmt, "--output-dir",
                            str(tmp_path / "out")], capsys)
    assert "cannot reproduce" in err and "--format onnx" in err and "own" in err
    assert not (tmp_path / "out").exists()


def test_onnx_export_keeps_template_and_denoising(trained, tmp_path):
    from simcse_lab.export.formats import export
    from simcse_lab.modeling.encoder import load_encoder

    report = export(str(trained / "final"), "onnx", tmp_path / "onnx")
    assert report["max_abs_diff"] <= 1e-4 and report["modules"][-1] == "TemplateDelta"
    sentences = random_sentences(6, seed=4)
    want = Encoder(str(trained / "final"), precision="fp32", device="cpu").encode(sentences)
    onnx = load_encoder(str(tmp_path / "onnx"))
    assert onnx.describe()["template"] == BERT_TEMPLATES[0]
    np.testing.assert_allclose(onnx.encode(sentences), want, atol=1e-4)
