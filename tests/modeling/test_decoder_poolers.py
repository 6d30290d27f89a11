"""The decoder poolers (``last_token``, ``weighted_avg``) and instruction masking: each pooler equals an explicit
per-row Python loop under right and left padding, on random tensors and on the tiny random Llama, Qwen2, Gemma and
GPT-2 of tests/families.py (their own tokenizers, padding sides as shipped); the instruction's tokens are out of the
pooled ones; the encoder's instruction path equals a hand-made batch; sentence-transformers, hf and ONNX exports
reproduce them; training with an instruction embeds, saves and reloads with it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from simcse_lab.errors import UserError
from simcse_lab.modeling.embedder import PassSwitches, RowRun
from simcse_lab.modeling.pooling import embed_mask, instruction_length, pool

LENGTHS = [5, 2, 7, 1, 4]
WIDTH = 8


def _mask(lengths, width, side):
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        if side == "right":
            mask[row, :n] = 1
        else:
            mask[row, width - n:] = 1
    return mask


def _real_positions(mask_row) -> list[int]:
    return [t for t in range(len(mask_row)) if int(mask_row[t]) == 1]


def loop_pool(pooler, hidden, attention_mask, skip=0, hidden_states=None):
    """The definition, one row at a time in plain Python: the row's real positions in order, the first ``skip``
    of them (an instruction) dropped from the pooled ones."""
    rows = []
    for r in range(hidden.shape[0]):
        real = _real_positions(attention_mask[r])
        kept = real[skip:]
        if pooler == "last_token":
            rows.append(hidden[r, kept[-1]])
        elif pooler == "avg":
            rows.append(sum(hidden[r, t] for t in kept) / len(kept))
        elif pooler == "weighted_avg":  # SGPT: weight k for the row's k-th real token (1-based), normalised
            weights = {t: k + 1 for k, t in enumerate(real)}
            total = sum(weights[t] for t in kept)
            rows.append(sum(weights[t] * hidden[r, t] for t in kept) / total)
        elif pooler == "avg_first_last":
            rows.append(sum((hidden_states[1][r, t] + hidden_states[-1][r, t]) / 2 for t in kept) / len(kept))
        else:
            raise ValueError(pooler)
    return torch.stack(rows)


def _batch(attention_mask, skip):
    batch = {"attention_mask": attention_mask}
    if skip:
        batch["embed_mask"] = embed_mask(attention_mask, skip)
    return batch


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("pooler", ["last_token", "weighted_avg", "avg"])
@pytest.mark.parametrize("skip", [0, 1])
def test_random_tensors_equal_the_loop(side, pooler, skip):
    torch.manual_seed(0)
    hidden = torch.randn(len(LENGTHS), WIDTH, 6, dtype=torch.float64)
    lengths = [n + skip for n in LENGTHS]  # every row keeps at least one token after the instruction
    mask = _mask(lengths, WIDTH + skip, side)
    hidden = torch.randn(len(LENGTHS), WIDTH + skip, 6, dtype=torch.float64)
    got = pool(pooler, _batch(mask, skip), hidden, summary=None)
    want = loop_pool(pooler, hidden, mask, skip)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_padding_side_does_not_change_the_pooled_vectors():
    """The same rows' real tokens, right- or left-padded: each pooler gives the same vectors."""
    torch.manual_seed(1)
    right, left = _mask(LENGTHS, WIDTH, "right"), _mask(LENGTHS, WIDTH, "left")
    hidden_right = torch.randn(len(LENGTHS), WIDTH, 4, dtype=torch.float64)
    hidden_left = torch.zeros_like(hidden_right)
    for r, n in enumerate(LENGTHS):
        hidden_left[r, WIDTH - n:] = hidden_right[r, :n]
    for pooler in ("last_token", "weighted_avg", "avg"):
        for skip in (0, 1):
            a = pool(pooler, _batch(right, skip), hidden_right, summary=None)
            b = pool(pooler, _batch(left, skip), hidden_left, summary=None)
            if skip and min(LENGTHS) <= skip:
                keep = [r for r, n in enumerate(LENGTHS) if n > skip]
                a, b = a[keep], b[keep]
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_the_poolers_differ():
    """last_token, weighted_avg and avg really read different things (a mapping onto one would pass above)."""
    torch.manual_seed(2)
    mask = _mask(LENGTHS, WIDTH, "right")
    hidden = torch.randn(len(LENGTHS), WIDTH, 4)
    vectors = {p: pool(p, {"attention_mask": mask}, hidden, summary=None)[0] for p in ("last_token", "weighted_avg",
                                                                                     "avg")}
    assert not torch.allclose(vectors["last_token"], vectors["avg"])
    assert not torch.allclose(vectors["weighted_avg"], vectors["avg"])
    assert not torch.allclose(vectors["weighted_avg"], vectors["last_token"])


def test_embed_mask_counts_real_tokens_from_the_row_start():
    mask = torch.tensor([[1, 1, 1, 0], [0, 1, 1, 1]])
    assert embed_mask(mask, 2).tolist() == [[0, 0, 1, 0], [0, 0, 0, 1]]
    assert embed_mask(mask, torch.tensor([1, 2])).tolist() == [[0, 1, 1, 0], [0, 0, 0, 1]]


def test_cls_with_an_instruction_is_refused():
    mask = _mask([3, 2], 3, "right")
    with pytest.raises(UserError, match="instruction"):
        pool("cls_before_pooler", _batch(mask, 1), torch.randn(2, 3, 4), summary=0)


# -- tiny random decoders ---------------------------------------------------------------------------------
SENTENCES = ["A man is playing a guitar.", "Two dogs run.", "The quick brown fox jumps over the lazy dog near the river.",
             "A woman slices an onion slowly."]
INSTRUCTION = "Retrieve a sentence of the same meaning: "


@pytest.fixture(scope="module", params=["llama", "qwen2", "gemma", "gpt2"])
def decoder(request, still_decoder_models):
    """(model dir, its base model, its tokenizer as simcse-lab runs it: pad token, EOS appended)."""
    from simcse_lab.modeling.encoder import Encoder

    path = still_decoder_models[request.param]
    enc = Encoder(str(path), pooler="avg", precision="fp32", device="cpu")
    return path, enc.hf_model, enc.tokenizer


def _forward(model, tokenizer, texts, side):
    shipped, tokenizer.padding_side = tokenizer.padding_side, side
    try:
        batch = tokenizer(texts, padding=True, return_tensors="pt")
    finally:
        tokenizer.padding_side = shipped
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    return batch, out


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("pooler", ["last_token", "weighted_avg", "avg", "avg_first_last"])
def test_tiny_decoder_equals_the_loop(decoder, side, pooler):
    _, model, tokenizer = decoder
    batch, out = _forward(model, tokenizer, SENTENCES, side)
    assert (batch["attention_mask"] == 0).any()  # there is padding to get wrong
    for skip in (0, 2):
        got = pool(pooler, _batch(batch["attention_mask"], skip), out.last_hidden_state, out.hidden_states,
                   summary=None)
        want = loop_pool(pooler, out.last_hidden_state, batch["attention_mask"], skip, out.hidden_states)
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_last_token_is_the_unpadded_sentence_end(decoder):
    """Right padding in a causal model: the last real token's vector is the one the sentence alone gives."""
    _, model, tokenizer = decoder
    batch, out = _forward(model, tokenizer, SENTENCES, "right")
    got = pool("last_token", batch, out.last_hidden_state, summary=None)
    for row, text in enumerate(SENTENCES):
        alone = tokenizer([text], return_tensors="pt")
        with torch.no_grad():
            want = model(**alone).last_hidden_state[0, -1]
        torch.testing.assert_close(got[row], want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("pooler", ["avg", "last_token", "weighted_avg"])
def test_encoder_with_an_instruction_equals_a_hand_made_batch(decoder, pooler):
    from simcse_lab.modeling.encoder import Encoder

    path, model, tokenizer = decoder
    instruction = INSTRUCTION
    enc = Encoder(str(path), pooler=pooler, precision="fp32", device="cpu", batch_size=3, instruction=instruction)
    got = enc.encode(SENTENCES)
    batch, out = _forward(model, tokenizer, [instruction + s for s in SENTENCES], "right")
    skip = instruction_length(tokenizer, instruction)
    assert skip >= 5  # the instruction's words (and BOS where the family adds one), no trailing EOS
    want = loop_pool(pooler, out.last_hidden_state, batch["attention_mask"], skip=skip).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    plain = Encoder(str(path), pooler=pooler, precision="fp32", device="cpu").encode(SENTENCES)
    assert np.abs(plain - got).max() > 1e-3  # the instruction changes the vectors (it is in the forward pass)
    assert enc.describe()["instruction"] == instruction


def test_instruction_refusals(decoder, tmp_path):
    from simcse_lab.modeling.encoder import Encoder

    path, _, _ = decoder
    with pytest.raises(UserError, match="leaves none"):
        Encoder(str(path), pooler="avg", precision="fp32", max_length=3, instruction=INSTRUCTION).encode(["a"])


@pytest.mark.parametrize("pooler,instruction", [("last_token", ""), ("weighted_avg", ""), ("avg", INSTRUCTION),
                                                ("weighted_avg", INSTRUCTION), ("last_token", INSTRUCTION),
                                                ("avg_top2", INSTRUCTION)])
def test_sentence_transformers_reproduces_it(decoder, tmp_path, pooler, instruction):
    """Saved as a sentence-transformers directory (lasttoken / weightedmean, the instruction as its default prompt
    with include_prompt=False), reloaded by sentence-transformers itself: the same vectors (1e-5)."""
    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.modeling.loading import load_sentence_transformer
    from simcse_lab.modeling.st_format import save_sentence_transformer

    path, model, _ = decoder
    enc = Encoder(str(path), pooler=pooler, precision="fp32", device="cpu", batch_size=2, instruction=instruction)
    out = save_sentence_transformer(enc.hf_model, enc.tokenizer, pooler, tmp_path / "st", instruction=instruction)
    loaded = load_sentence_transformer(str(out), device="cpu")
    got = loaded.encode(SENTENCES, convert_to_numpy=True, batch_size=3)
    np.testing.assert_allclose(got, enc.encode(SENTENCES), rtol=0, atol=1e-5)
    assert loaded.default_prompt_name == ("instruction" if instruction else None)
    if instruction:  # sentence-transformers' own count of the prompt's tokens is ours
        assert loaded[0]._get_prompt_length(instruction) == instruction_length(enc.tokenizer, instruction)


# -- exports -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pooler", ["last_token", "weighted_avg"])
@pytest.mark.parametrize("fmt", ["sentence-transformers", "hf", "onnx"])
def test_every_format_reproduces_the_decoder_poolers(decoder, tmp_path, pooler, fmt):
    """export verifies on reload (ST / hf 1e-5, ONNX 1e-4); checked here again against the source encoder on
    padded batches, through the encoder every command uses for the exported directory."""
    from simcse_lab.export.formats import export
    from simcse_lab.modeling.encoder import Encoder, load_encoder

    path, _, _ = decoder
    report = export(str(path), fmt, tmp_path / "out", pooler=pooler)
    assert report["pooler"] == pooler
    want = Encoder(str(path), pooler=pooler, precision="fp32", device="cpu").encode(SENTENCES)
    if fmt == "hf":
        got = Encoder(str(tmp_path / "out"), pooler=pooler, precision="fp32", device="cpu").encode(SENTENCES)
    else:
        got = load_encoder(str(tmp_path / "out"), precision="auto" if fmt == "onnx" else "fp32",
                           device="cpu", batch_size=3).encode(SENTENCES)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 if fmt == "onnx" else 1e-5)


def test_an_instruction_exports_as_sentence_transformers_and_evaluates_with_it(decoder, tmp_path):
    from simcse_lab.export.formats import export
    from simcse_lab.modeling.encoder import Encoder

    path, _, _ = decoder
    instruction = INSTRUCTION
    export(str(path), "sentence-transformers", tmp_path / "st", pooler="weighted_avg", instruction=instruction)
    want = Encoder(str(path), pooler="weighted_avg", precision="fp32", device="cpu",
                   instruction=instruction).encode(SENTENCES)
    reloaded = Encoder(str(tmp_path / "st"), precision="fp32", device="cpu", batch_size=3)  # its own modules
    assert reloaded.describe()["instruction"] == instruction
    np.testing.assert_allclose(reloaded.encode(SENTENCES), want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("fmt", ["hf", "onnx"])
def test_an_instruction_is_refused_where_the_format_drops_it(decoder, tmp_path, fmt):
    """hf and ONNX take token ids without the instruction: refused with one line, before anything is written."""
    from simcse_lab.export.formats import export

    path, _, _ = decoder
    with pytest.raises(UserError, match="export it as --format sentence-transformers"):
        export(str(path), fmt, tmp_path / "out", pooler="avg", instruction=INSTRUCTION)
    assert list(tmp_path.iterdir()) == []


# -- training with an instruction ----------------------------------------------------------------------------
def test_training_with_an_instruction_pools_and_exports_it(decoder, tmp_path):
    """unsup on a tiny Llama with --instruction: the cached rows are instruction + sentence, every batch masks the
    instruction out of pooling, and the saved model (a sentence-transformers dir with it as the default prompt)
    gives the trained embedder's vectors through the encoder every command uses."""
    from conftest import random_sentences, write_lines

    from simcse_lab.modeling.embedder import load_embedder
    from simcse_lab.modeling.encoder import EmbedderEncoder, Encoder
    from simcse_lab.training.config import TrainConfig
    from simcse_lab.training.examples import load_training_examples
    from simcse_lab.training.loop import train
    from simcse_lab.training.objectives import build_objective

    path, _, tokenizer = decoder
    instruction = INSTRUCTION
    data = write_lines(tmp_path / "corpus.txt", random_sentences(32))
    cfg = TrainConfig(model=str(path), data=str(data), batch_size=8, max_seq_len=24, lr=1e-3, eval_steps=0,
                      test_tasks="none", precision="fp32", log_steps=1, progress=False, pooler="weighted_avg",
                      instruction=instruction, max_steps=2, output_dir=str(tmp_path / "run"))
    train(cfg)
    from simcse_lab.modeling.embedder import set_attention

    tok, embedder = load_embedder(str(path), "weighted_avg", True)
    set_attention(embedder.backbone, embedder.family, cfg.bidirectional)  # as training set it
    head = tok(instruction)["input_ids"][:instruction_length(tok, instruction) - 1]  # its last may merge with a word
    examples = load_training_examples(cfg, tok)
    assert all(examples[i][:len(head)] == head for i in range(4))
    assert all(examples[i][-1] == tok.eos_token_id for i in range(4)) == bool(tok("a")["input_ids"][-1] ==
                                                                            tok.eos_token_id)
    objective = build_objective(cfg, tok, embedder)
    batch = objective.collate([examples[i] for i in range(4)], 0)
    skip = instruction_length(tok, instruction)
    assert batch["embed_mask"][:, :skip].sum() == 0
    assert (batch["embed_mask"].sum(1) == batch["attention_mask"].sum(1) - skip).all()

    import torch

    state = torch.load(tmp_path / "run" / "checkpoints" / "step-0000002" / "state.pt", weights_only=True)
    embedder.load_state_dict(state["model"])
    ours = EmbedderEncoder(embedder, tok, "fp32", torch.device("cpu"), "tiny", instruction=instruction).encode(SENTENCES)
    saved = Encoder(str(tmp_path / "run" / "final"), precision="fp32", device="cpu")
    assert saved.instruction == instruction
    np.testing.assert_allclose(saved.encode(SENTENCES), ours, rtol=0, atol=1e-5)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["config"]["instruction"] == instruction


def test_instruction_config_refusals():
    from simcse_lab.training.config import TrainConfig

    with pytest.raises(UserError, match="pooler 'cls'"):
        TrainConfig(pooler="cls", instruction=INSTRUCTION)
    with pytest.raises(UserError, match="esimcse"):
        TrainConfig(objective="esimcse", pooler="avg", instruction=INSTRUCTION)


@pytest.mark.parametrize("pooler", ["last_token", "weighted_avg"])
def test_chunks_and_mini_batches_keep_the_vectors(decoder, pooler):
    """The training forward's speed settings (length-sorted chunks, recomputed mini-batches) give the vectors of one
    pass, with an instruction mask in the batch too."""
    from simcse_lab.modeling.embedder import SimCSEEmbedder
    from simcse_lab.modeling.loading import load_model

    path, model, tokenizer = decoder
    batch, _ = _forward(model, tokenizer, [INSTRUCTION + s for s in SENTENCES], "right")
    batch = {**batch, "embed_mask": embed_mask(batch["attention_mask"], 3)}
    plain = SimCSEEmbedder(load_model(str(path)), pooler).train()
    want = plain(**batch, switches=PassSwitches(chunks=1))
    torch.testing.assert_close(plain(**batch, switches=PassSwitches(chunks=3)), want, rtol=0, atol=1e-5)
    cached = SimCSEEmbedder(load_model(str(path)), pooler, rows=RowRun(mini_batch_size=2)).train()
    torch.testing.assert_close(cached(**batch, switches=PassSwitches(chunks=1)), want, rtol=0, atol=1e-5)
    if pooler == "weighted_avg":  # the mask is read (last_token reads the last token either way)
        unmasked = {k: v for k, v in batch.items() if k != "embed_mask"}
        assert not torch.allclose(plain(**unmasked, switches=PassSwitches(chunks=1)), want)


def test_analyze_layer_profile_embeds_with_the_instruction(decoder, tmp_path):
    """analyze's one-pass layer profile gives the encoder's own sentence vectors, instruction included (a model
    saved with one, or run through its sentence-transformers modules and default prompt)."""
    from simcse_lab.analysis.layers import encode_layers
    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.modeling.st_format import save_sentence_transformer

    path, _, _ = decoder
    enc = Encoder(str(path), pooler="weighted_avg", precision="fp32", device="cpu", instruction=INSTRUCTION)
    np.testing.assert_allclose(encode_layers(enc, SENTENCES).sentence, enc.encode(SENTENCES), rtol=0, atol=1e-5)
    save_sentence_transformer(enc.hf_model, enc.tokenizer, "weighted_avg", tmp_path / "st", instruction=INSTRUCTION)
    st = Encoder(str(tmp_path / "st"), precision="fp32", device="cpu")
    np.testing.assert_allclose(encode_layers(st, SENTENCES).sentence, enc.encode(SENTENCES), rtol=0, atol=1e-5)
