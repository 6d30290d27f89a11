"""MNTP (LLM2Vec's masked next-token prediction) on tiny random decoders (a word-level Llama whose vocabulary has
"_", and the Qwen2, Gemma and GPT-2 of tests/families.py): the loss equals an explicit shifted-label computation
written here and transformers' own causal-LM loss on the same masked batch; the masking (80/10/10, all_mask, never
a position nothing predicts); the "_" mask token of a tokenizer without one (Gemma's own <mask> where it has one),
stated in the run's summary; ``--objective mntp`` and ``--do-mlm`` on a decoder train through the unchanged loop."""

from __future__ import annotations

import json

import pytest
import torch

from simcse_lab.errors import UserError
from simcse_lab.modeling.embedder import PassSwitches
from simcse_lab.training.mlm import IGNORE, MASKINGS, mask_tokens

SENTENCES = ["the cat sat on the table", "a dog ran", "the big red house under a tree", "man plays guitar slowly"]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    from tiny_decoders import make_tiny_decoder

    return make_tiny_decoder(tmp_path_factory.mktemp("llama-mntp"), "llama", seed=4)


@pytest.fixture(params=["llama", "qwen2", "gemma", "gpt2"])
def decoder(request, llama, still_decoder_models):
    """A causal-LM checkpoint of each family (GPT-2's is its base model: the LM head is tied to its embeddings)."""
    return llama if request.param == "llama" else still_decoder_models[request.param]


def _masked_batch(tokenizer, probability=0.5, masking="80/10/10", seed=0):
    from types import SimpleNamespace

    from simcse_lab.modeling.families import family_of, mask_token

    shipped, tokenizer.padding_side = tokenizer.padding_side, "right"  # as pad_batch pads a training batch
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    tokenizer.padding_side = shipped
    mask_id = mask_token(tokenizer, family_of(SimpleNamespace(model_type="llama")), "tiny")[0]
    torch.manual_seed(seed)
    masked, labels = mask_tokens(batch["input_ids"], batch["attention_mask"], tokenizer.all_special_ids, mask_id,
                                 len(tokenizer), probability, MASKINGS[masking], skip_first=1)
    return batch, masked, labels, mask_id


def test_mntp_loss_equals_the_explicit_shifted_labels(decoder):
    from transformers import AutoModelForCausalLM

    from simcse_lab.modeling.embedder import load_embedder

    tokenizer, embedder = load_embedder(str(decoder), "avg", False, do_mlm=True)  # causal: as the reference
    embedder.eval()
    assert embedder.mlm_shift == 1 and isinstance(embedder.lm_head, torch.nn.Linear)  # the model's own LM head
    batch, masked, labels, _ = _masked_batch(tokenizer)
    assert (labels != IGNORE).sum() >= 4
    with torch.no_grad():
        loss = embedder(batch["input_ids"], batch["attention_mask"], mlm_input_ids=masked, mlm_labels=labels,
                        switches=PassSwitches(mlm_only=True))
        causal = AutoModelForCausalLM.from_pretrained(decoder).eval()
        logits = causal(input_ids=masked, attention_mask=batch["attention_mask"]).logits
        hf_loss = causal(input_ids=masked, attention_mask=batch["attention_mask"], labels=labels).loss
    # written out: each masked token i of each row against the log-softmax of the logits at i - 1
    terms = []
    for r in range(labels.shape[0]):
        for i in range(1, labels.shape[1]):
            if int(labels[r, i]) != IGNORE:
                terms.append(-torch.log_softmax(logits[r, i - 1].double(), -1)[int(labels[r, i])])
    explicit = torch.stack(terms).mean()
    torch.testing.assert_close(loss.double(), explicit, rtol=0, atol=1e-5)
    torch.testing.assert_close(loss, hf_loss, rtol=0, atol=1e-5)  # transformers' own shifted causal-LM loss
    # the same labels read at their own positions (BERT's MLM) give another number: the shift is really there
    unshifted = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
    assert abs(float(unshifted) - float(loss)) > 1e-4  # 10x the tolerance of the equalities above


def test_masking_settings(llama):
    from simcse_lab.modeling.embedder import load_embedder

    tokenizer, _ = load_embedder(str(llama), "avg", False)
    batch, masked, labels, mask_id = _masked_batch(tokenizer, probability=0.8, masking="all_mask")
    chosen = labels != IGNORE
    assert chosen.any() and not chosen[:, 0].any()  # position 0 is never masked: nothing before it predicts it
    assert (masked[chosen] == mask_id).all()  # all_mask: every chosen token is the mask token
    assert torch.equal(masked[~chosen], batch["input_ids"][~chosen])
    assert tokenizer.convert_ids_to_tokens(mask_id) == "_"  # the tokenizer has no mask token: LLM2Vec's "_"


def test_a_missing_mask_fallback_is_refused(still_decoder_models, tmp_path):
    """The families fixture's Llama tokenizer has no mask token and no "_" token: refused in one line, before
    any training (not masked with <unk>)."""
    from simcse_lab.modeling.embedder import load_embedder

    with pytest.raises(UserError, match="not one token of its vocabulary"):
        load_embedder(str(still_decoder_models["llama"]), "avg", False, do_mlm=True)


def _config(tmp_path, model, **kw):
    from conftest import random_sentences, write_lines

    from simcse_lab.training.config import TrainConfig

    data = write_lines(tmp_path / "corpus.txt", random_sentences(32))
    base = dict(model=str(model), data=str(data), batch_size=8, max_seq_len=16, lr=1e-3, eval_steps=0,
                test_tasks="none", precision="fp32", log_steps=1, progress=False, max_steps=2,
                output_dir=str(tmp_path / "run"))
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("kw", [dict(objective="mntp", mlm_probability=0.2),
                                dict(objective="mntp", mlm_probability=0.8, mlm_masking="all_mask"),
                                dict(objective="unsup", do_mlm=True, mlm_probability=0.2)])
def test_mntp_trains_and_states_its_mask_token(llama, tmp_path, kw):
    from simcse_lab.training.loop import train

    summary = train(_config(tmp_path, llama, **kw))  # bidirectional, as LLM2Vec runs MNTP
    masking = summary["masked_lm"]
    assert masking["objective"] == "mntp" and masking["mask_token"] == "_"
    assert masking["mask_token_from"] != "tokenizer" and masking["probability"] == kw["mlm_probability"]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2]
    assert all(r["loss"] == r["loss"] and r["loss"] > 0 for r in records if "loss" in r)
    state = torch.load(tmp_path / "run" / "checkpoints" / "step-0000002" / "state.pt", weights_only=True)
    assert "lm_head.weight" in state["model"]  # the LM head is trained and kept with the training state
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["masked_lm"] == masking


def test_mntp_refusals(tmp_path, llama):
    from simcse_lab.training.config import TrainConfig

    with pytest.raises(UserError, match="drop --do-mlm"):
        TrainConfig(objective="mntp", do_mlm=True)
    with pytest.raises(UserError, match="mlm_masking"):
        TrainConfig(mlm_masking="half")
    with pytest.raises(UserError, match="mlm_probability"):
        TrainConfig(mlm_probability=0.0)


def test_a_checkpoint_without_lm_head_weights_is_refused(llama, tmp_path):
    """An encoder saved alone (a run's final/ holds the base model) has no LM head to predict with: MNTP on it is
    refused in one line rather than trained with a random head (the run's checkpoints keep the head: --resume)."""
    from transformers import AutoModel, AutoTokenizer

    from simcse_lab.modeling.embedder import load_embedder

    AutoModel.from_pretrained(llama).save_pretrained(tmp_path / "base")
    AutoTokenizer.from_pretrained(llama).save_pretrained(tmp_path / "base")
    with pytest.raises(UserError, match="no LM-head weights"):
        load_embedder(str(tmp_path / "base"), "avg", False, do_mlm=True)
    load_embedder(str(tmp_path / "base"), "avg", False)  # as an encoder it loads
