"""Input templates (issue 22): the template around each sentence, the ``mask`` pooler and template denoising,
each against an explicit recomputation written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from conftest import explicit_delta

from simcse_lab.errors import UserError
from simcse_lab.modeling.encoder import Encoder
from simcse_lab.modeling.pooling import pool
from simcse_lab.modeling.template import check_template_text, compile_template, mask_positions

TEMPLATE = 'This sentence : "{sentence}" means [MASK] .'
SENTS = ["a short one", "a somewhat longer sentence with more words in it", "mid length text here"]


@pytest.fixture(scope="module")
def tok(tiny_bert):
    return AutoTokenizer.from_pretrained(tiny_bert)


def test_template_rows(tok):
    tpl = compile_template(tok, TEMPLATE)
    ids = tok("the cat sat")["input_ids"]
    row = tpl.apply(ids)
    want = tok('This sentence : "')["input_ids"][:-1] + tok("the cat sat", add_special_tokens=False)["input_ids"] \
        + tok('" means [MASK] .', add_special_tokens=False)["input_ids"] + [tok.sep_token_id]
    assert row == want
    assert row.count(tok.mask_token_id) == 1
    via_slot = compile_template(tok, TEMPLATE.replace("[MASK]", "{mask}"))
    assert (via_slot.prefix, via_slot.suffix) == (tpl.prefix, tpl.suffix)
    # the sentence is cut to fit, never the template
    long = tok(" ".join(["word"] * 40))["input_ids"]
    cut = tpl.apply(long, max_length=20)
    assert len(cut) == 20 and cut[-len(tpl.suffix) - 1:] == [*tpl.suffix, tok.sep_token_id]
    with pytest.raises(UserError, match="leaves none"):
        tpl.apply(long, max_length=tpl.length)


@pytest.mark.parametrize("text, message", [
    ("This means [MASK] .", "no {sentence} slot"),
    ("{sentence} and {sentence} [MASK]", "more than one {sentence}"),
    ('This sentence : "{sentence}" means nothing .', "no mask token"),
])
def test_bad_template_text(text, message):
    with pytest.raises(UserError, match=message):
        check_template_text(text)


def test_bad_template_for_tokenizer(tok, family_models):
    with pytest.raises(UserError, match="no mask token '\\[MASK\\]'"):
        compile_template(tok, '"{sentence}" means <mask> .')  # RoBERTa's mask with a BERT tokenizer
    with pytest.raises(UserError, match="more than one mask token"):
        compile_template(tok, '"{sentence}" [MASK] means [MASK] .')
    t5 = AutoTokenizer.from_pretrained(family_models["t5"])  # no mask token at all
    with pytest.raises(UserError, match="the tokenizer has no mask token"):
        compile_template(t5, TEMPLATE)


@pytest.mark.parametrize("side", ["right", "left"])
def test_mask_pooler_equals_row_loop(tiny_bert, tok, side):
    model = AutoModel.from_pretrained(tiny_bert).eval()
    tpl = compile_template(tok, TEMPLATE)
    rows = [tpl.apply(tok(s)["input_ids"]) for s in SENTS]
    width = max(map(len, rows))
    pad = [[tok.pad_token_id] * (width - len(r)) for r in rows]
    ids = torch.tensor([r + p if side == "right" else p + r for r, p in zip(rows, pad)])
    attention = (torch.arange(width)[None] < torch.tensor([len(r) for r in rows])[:, None]).long()
    if side == "left":
        attention = attention.flip(1)
    batch = {"input_ids": ids, "attention_mask": attention, "template_mask": mask_positions(ids, tok.mask_token_id)}
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=attention).last_hidden_state
    got = pool("mask", batch, hidden, summary=0)
    for i in range(len(rows)):
        at = ids[i].tolist().index(tok.mask_token_id)
        torch.testing.assert_close(got[i], hidden[i, at], rtol=0, atol=0)


def test_mask_pooler_refuses(tiny_bert, tok):
    hidden = torch.zeros(2, 4, 8)
    batch = {"attention_mask": torch.ones(2, 4, dtype=torch.long)}
    with pytest.raises(UserError, match="no template"):
        pool("mask", batch, hidden, summary=0)
    marks = torch.tensor([[0, 1, 0, 0], [0, 1, 1, 0]])
    with pytest.raises(UserError, match="input 1 of a batch holds 2 mask tokens"):
        pool("mask", {**batch, "template_mask": marks}, hidden, summary=0)


def test_encoder_template_and_denoising(tiny_bert, tok):
    model = AutoModel.from_pretrained(tiny_bert).eval()
    tpl = compile_template(tok, TEMPLATE)
    enc = Encoder(str(tiny_bert), pooler="mask", precision="fp32", batch_size=2)
    enc.set_template(TEMPLATE, denoise=False)
    plain = enc.encode(SENTS)
    enc.set_template(TEMPLATE, denoise=True)
    clean = enc.encode(SENTS)
    for i, sentence in enumerate(SENTS):
        row = tpl.apply(tok(sentence)["input_ids"])
        with torch.no_grad():
            hidden = model(input_ids=torch.tensor([row])).last_hidden_state[0]
        state = hidden[row.index(tok.mask_token_id)]
        np.testing.assert_allclose(plain[i], state.numpy(), atol=1e-5)
        k = len(tok(sentence, add_special_tokens=False)["input_ids"])
        np.testing.assert_allclose(clean[i], (state - explicit_delta(model, tok, tpl, k)).numpy(), atol=1e-5)
    assert enc.describe()["template"] == TEMPLATE and enc.describe()["template_denoise"] is True


def test_encoder_template_refusals(tiny_bert):
    enc = Encoder(str(tiny_bert), pooler="avg", precision="fp32")
    with pytest.raises(UserError, match="needs --pooler mask"):
        enc.set_template(TEMPLATE, denoise=True)
    enc = Encoder(str(tiny_bert), pooler="avg", precision="fp32", instruction="Represent: ")
    with pytest.raises(UserError, match="a template and an instruction"):
        enc.set_template(TEMPLATE, denoise=False)


@pytest.mark.parametrize("argv, message", [
    (["--pooler", "mask"], "--pooler mask reads the state at a template's mask token"),
    (["--pooler", "mask", "--template", "This means [MASK] ."], "no {sentence} slot"),
    (["--pooler", "mask", "--template", '"{sentence}" means something'], "no mask token"),
    (["--pooler", "mask", "--template", '"{sentence}" means <mask> .'], "no mask token '\\[MASK\\]'"),
    (["--pooler", "avg", "--template", TEMPLATE, "--template-denoise"], "needs --pooler mask"),
    (["--pooler", "avg", "--template-denoise"], "there is no template"),
])
def test_eval_template_bad_input(tiny_bert, capsys, argv, message):
    from conftest import one_line_refusal

    err = one_line_refusal(["eval", "--model", str(tiny_bert), "--tasks", "stsb", "--split", "dev", *argv], capsys)
    assert __import__("re").search(message, err), err


@pytest.mark.parametrize("argv, message", [
    (["--objective", "unsup", "--pooler", "mask"], "puts the sentences in no template; use --objective promptbert"),
    (["--objective", "promptbert", "--pooler", "avg"], "reads its vectors with pooler 'mask'"),
    (["--objective", "promptbert", "--template", "no slot [MASK]"], "no {sentence} slot"),
    (["--objective", "promptbert", "--second-template", "{sentence}"], "--second-template '{sentence}': no mask"),
    (["--objective", "promptbert", "--template", '"{sentence}" means <mask> .'], "no mask token '[MASK]'"),
])
def test_train_template_bad_input(tiny_bert, tmp_path, capsys, argv, message):
    from conftest import one_line_refusal

    err = one_line_refusal(["train", "--model", str(tiny_bert), "--output-dir", str(tmp_path / "run"), *argv], capsys)
    assert message in err, err
    assert not (tmp_path / "run").exists()


def test_index_records_the_template_and_search_applies_it(tiny_bert, tmp_path):
    """index build --template: the manifest holds the template; search embeds its queries inside it (the index's
    probe check would refuse otherwise), and a corpus sentence finds itself first."""
    import json

    from conftest import SEARCH_WORDS, random_sentences, write_lines
    from simcse_lab.cli import main
    from simcse_lab.search.index import Index

    lines = sorted(set(random_sentences(60, seed=1, words=SEARCH_WORDS, lengths=(3, 9))))
    corpus = write_lines(tmp_path / "corpus.txt", lines)
    with pytest.raises(SystemExit) as exc:
        main(["index", "build", "--model", str(tiny_bert), "--pooler", "mask", "--template", TEMPLATE,
              "--template-denoise", "--corpus", str(corpus), "--output-dir", str(tmp_path / "idx"), "--no-progress",
              "--precision", "fp32"])
    assert exc.value.code == 0
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert (manifest["pooler"], manifest["template"], manifest["template_denoise"]) == ("mask", TEMPLATE, True)
    index = Index(tmp_path / "idx")
    assert index.encoder.describe()["template"] == TEMPLATE
    assert index.search([lines[3]], k=1)[0][0]["text"] == lines[3]


def test_roberta_template_and_offset_positions(family_models):
    """A <mask> tokenizer gets PromptBERT's RoBERTa templates; denoising shifts RoBERTa's offset positions
    (padding_idx + 1 onwards), as written out here."""
    from simcse_lab.training.objectives.promptbert import ROBERTA_TEMPLATES, default_templates

    path = family_models["roberta"]
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    assert default_templates(tok) == ROBERTA_TEMPLATES
    tpl = compile_template(tok, ROBERTA_TEMPLATES[0])
    enc = Encoder(str(path), pooler="mask", precision="fp32", batch_size=2)
    enc.set_template(ROBERTA_TEMPLATES[0], denoise=True)
    first = model.config.pad_token_id + 1
    for sentence, got in zip(SENTS, enc.encode(SENTS)):
        ids = tok(sentence)["input_ids"]
        row, k = tpl.apply(ids), len(ids) - 2
        alone = tpl.template_only()
        positions = [first + p if p < tpl.slot else first + p + k for p in range(len(alone))]
        with torch.no_grad():
            state = model(input_ids=torch.tensor([row])).last_hidden_state[0, row.index(tok.mask_token_id)]
            delta = model(input_ids=torch.tensor([alone]), position_ids=torch.tensor([positions]),
                          attention_mask=torch.ones(1, len(alone), dtype=torch.long)).last_hidden_state[0]
        np.testing.assert_allclose(got, (state - delta[alone.index(tok.mask_token_id)]).numpy(), atol=1e-5)
