"""ConPVP (--objective conpvp): its logits against a direct computation written here, row by row (each view built by
hand from the tokenizer, run alone through the backbone, read at its [MASK], less the template-only pass); the
prototype draw; two processes against one; resume; the saved model; bad input."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import make_tiny_bert, random_sentences, write_lines

PROTOTYPES = ("{sentence} means {mask} .\t{sentence} not means {mask} .\n"
              "about {sentence} : [MASK]\tnot {sentence} : [MASK]\n")


def conpvp_config(tmp_path, prompt_length: int = 3, seed: int = 7):
    path = tmp_path / "prototypes.tsv"
    path.write_text(PROTOTYPES)
    return SimpleNamespace(prototype_templates=str(path), prompt_length=prompt_length, temperature=0.05, seed=seed)


@pytest.fixture
def tiny(tmp_path):
    from simcse_lab.modeling.embedder import load_embedder
    from simcse_lab.training.objectives.conpvp import ConPVP

    tokenizer, embedder = load_embedder(str(make_tiny_bert(tmp_path / "bert", dropout=0.0)), "mask", False)
    torch.manual_seed(0)
    objective = ConPVP.from_config(conpvp_config(tmp_path), tokenizer, embedder)
    return tokenizer, embedder, objective


def words(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def hand_rows(tokenizer, sentence: str, pair: int, length: int):
    """(ids, index of [MASK], indices of the learned vectors, indices of the sentence) of the three views, by hand."""
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    mask, pad = tokenizer.mask_token_id, tokenizer.pad_token_id
    sent = words(tokenizer, sentence)
    anchor = [cls, *sent, *[pad] * length, mask, *words(tokenizer, "."), sep]
    if pair == 0:
        pos = [cls, *sent, *words(tokenizer, "means"), mask, *words(tokenizer, "."), sep]
        neg = [cls, *sent, *words(tokenizer, "not means"), mask, *words(tokenizer, "."), sep]
        spans = [range(1, 1 + len(sent))] * 3
    else:
        pos = [cls, *words(tokenizer, "about"), *sent, *words(tokenizer, ":"), mask, sep]
        neg = [cls, *words(tokenizer, "not"), *sent, *words(tokenizer, ":"), mask, sep]
        spans = [range(1, 1 + len(sent)), range(2, 2 + len(sent)), range(2, 2 + len(sent))]
    slots = list(range(1 + len(sent), 1 + len(sent) + length))
    return [(anchor, slots, spans[0]), (pos, [], spans[1]), (neg, [], spans[2])]


def hand_vector(backbone, vectors, ids, slots, sentence) -> np.ndarray:
    """One row alone: state at [MASK] with every token attended, minus the state with the sentence's tokens not."""
    with torch.no_grad():
        embeds = backbone.get_input_embeddings()(torch.tensor([ids]))
        for k, position in enumerate(slots):
            embeds[0, position] = vectors[k]
        read = ids.index(backbone.config.mask_id)
        template = torch.tensor([[0 if i in sentence else 1 for i in range(len(ids))]])
        full = backbone(inputs_embeds=embeds, attention_mask=torch.ones_like(template)).last_hidden_state[0, read]
        alone = backbone(inputs_embeds=embeds, attention_mask=template).last_hidden_state[0, read]
    return (full - alone).double().numpy()


def cos(a, b):
    return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))


def test_logits_equal_a_direct_computation(tiny):
    tokenizer, embedder, objective = tiny
    embedder.eval()
    sentences = random_sentences(5, seed=3)
    examples = [(10 + i, tokenizer(s)["input_ids"]) for i, s in enumerate(sentences)]
    pairs = [objective.prototypes.index(objective.draw(4, index)) for index, _ in examples]
    assert len(set(pairs)) == 2  # both template pairs are drawn in this batch
    with torch.no_grad():
        z1, z2, n1 = objective.embed(embedder, objective.collate(examples, step=4))
        logits = objective.logits(z1, z2, n1).double().numpy()
        loss = objective.loss_from_embeddings(z1, z2, n1).item()
    embedder.backbone.config.mask_id = tokenizer.mask_token_id
    vectors = embedder.continuous_prompt.vectors.detach()
    views = [[hand_vector(embedder.backbone, vectors, ids, slots, span)
              for ids, slots, span in hand_rows(tokenizer, s, p, 3)] for s, p in zip(sentences, pairs)]
    anchors, positives, negatives = zip(*views)
    np.testing.assert_allclose(z1.numpy(), np.stack(anchors), atol=2e-5)
    expected = np.array([[cos(a, c) / 0.05 for c in list(positives) + list(negatives)] for a in anchors])
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-3)
    hand_loss = np.mean([-(row[i] - math.log(np.exp(row).sum())) for i, row in enumerate(expected)])
    assert loss == pytest.approx(hand_loss, rel=1e-4)
    # the views really differ: the logits spread, and a mutant that dropped the subtraction or the slots would fail
    assert expected.std() > 1.0 and np.abs(np.stack(anchors) - np.stack(positives)).max() > 0.3 * np.abs(anchors).max()


def test_the_draw_is_seeded_and_covers_the_list(tiny, tmp_path):
    from simcse_lab.training.objectives.conpvp import ConPVP

    tokenizer, embedder, objective = tiny
    again = ConPVP(tokenizer, objective.prompt, objective.prototypes, seed=7)
    other = ConPVP(tokenizer, objective.prompt, objective.prototypes, seed=8)
    draws = [objective.draw(step, index) for step in range(4) for index in range(20)]
    assert draws == [again.draw(step, index) for step in range(4) for index in range(20)]
    assert draws != [other.draw(step, index) for step in range(4) for index in range(20)]
    assert {objective.prototypes.index(d) for d in draws} == {0, 1}


def test_the_model_embeds_a_sentence_as_training_embedded_its_anchor_and_so_does_the_saved_model(tiny, tmp_path):
    from simcse_lab.analysis.layers import encode_layers
    from simcse_lab.modeling.encoder import EmbedderEncoder, Encoder
    from simcse_lab.modeling.st_format import save_embedder

    tokenizer, embedder, objective = tiny
    embedder.eval()
    sentences = random_sentences(6, seed=5)
    with torch.no_grad():
        batch = objective.collate([(i, tokenizer(s)["input_ids"]) for i, s in enumerate(sentences)], step=0)
        anchors = objective.embed(embedder, batch)[0].numpy()
    live = EmbedderEncoder(embedder, tokenizer, "fp32", torch.device("cpu"), "live").encode(sentences)
    np.testing.assert_allclose(live, anchors, atol=1e-6)
    save_embedder(embedder, tokenizer, tmp_path / "saved")
    recipe = json.loads((tmp_path / "saved" / "simcse_lab_recipe.json").read_text())
    assert recipe["pooler"] == "mask" and recipe["continuous_prompt"] == 3
    assert (tmp_path / "saved" / "continuous_prompt.safetensors").is_file()
    assert not (tmp_path / "saved" / "modules.json").exists()  # no directory plain sentence-transformers would run
    reloaded = Encoder(str(tmp_path / "saved"), precision="fp32", device="cpu")
    assert reloaded.describe()["continuous_prompt"] == 3
    np.testing.assert_allclose(reloaded.encode(sentences), live, atol=1e-6)
    assert np.abs(live - Encoder(str(tmp_path / "bert"), pooler="avg", precision="fp32").encode(sentences)).max() > 0.1
    np.testing.assert_allclose(encode_layers(reloaded, sentences).sentence, live, atol=1e-6)  # analyze's path


def run_cli(argv: list[str]) -> None:
    from simcse_lab.cli import main

    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0


def test_an_index_of_the_saved_model_finds_each_sentence_first(tiny, tmp_path, capsys):
    """index build embeds the corpus, search the query, both through the saved prompt: each sentence finds itself."""
    from simcse_lab.modeling.st_format import save_embedder

    tokenizer, embedder, _ = tiny
    save_embedder(embedder, tokenizer, tmp_path / "saved")
    corpus = write_lines(tmp_path / "corpus.txt", sorted(set(random_sentences(40, seed=9))))
    run_cli(["index", "build", "--model", str(tmp_path / "saved"), "--corpus", str(corpus), "--output-dir",
             str(tmp_path / "index"), "--precision", "fp32", "--no-progress"])
    queries = corpus.read_text().splitlines()[:5]
    write_lines(tmp_path / "queries.txt", queries)
    capsys.readouterr()
    run_cli(["search", "--index", str(tmp_path / "index"), "--queries", str(tmp_path / "queries.txt"), "-k", "1",
             "--output", str(tmp_path / "hits.jsonl")])
    hits = [json.loads(line) for line in (tmp_path / "hits.jsonl").read_text().splitlines()]
    assert [h["results"][0]["text"] for h in hits] == queries, hits
    assert min(h["results"][0]["score"] for h in hits) > 0.9999


def test_the_saved_model_refuses_what_would_embed_otherwise(tiny, tmp_path, capsys):
    from conftest import one_line_refusal

    from simcse_lab.modeling.st_format import save_embedder

    tokenizer, embedder, _ = tiny
    save_embedder(embedder, tokenizer, tmp_path / "saved")
    saved = str(tmp_path / "saved")
    sts = write_lines(tmp_path / "sts.tsv", ["sentence1\tsentence2\tscore", "a cat\ta dog\t3.0", "red\tblue\t1.0"])
    err = one_line_refusal(["eval", "--model", saved, "--pooler", "avg", "--tasks", f"sts:{sts}"], capsys)
    assert "continuous prompt" in err and "drop --pooler avg" in err
    for fmt in ("sentence-transformers", "hf", "onnx"):
        err = one_line_refusal(["export", "--model", saved, "--format", fmt, "--output-dir", str(tmp_path / fmt)],
                               capsys)
        assert "ConPVP" in err and "simcse-lab" in err and not (tmp_path / fmt).exists()
    (tmp_path / "saved" / "continuous_prompt.safetensors").write_bytes(b"not safetensors")
    err = one_line_refusal(["eval", "--model", saved, "--tasks", f"sts:{sts}"], capsys)
    assert "continuous_prompt.safetensors" in err


def train_args(model, data, out, *extra: str) -> list[str]:
    return [sys.executable, "-m", "simcse_lab", "train", "--model", str(model), "--data", str(data), "--objective",
            "conpvp", "--prompt-length", "3", "--max-steps", "6", "--save-steps", "3", "--batch-size", "8",
            "--max-seq-len", "16", "--lr", "1e-3", "--eval-steps", "0", "--test-tasks", "none", "--precision", "fp32",
            "--log-steps", "1", "--no-progress", "--output-dir", str(out), *extra]


def test_a_killed_run_resumes_bit_exact(tmp_path):
    """Dropout on: the prototype draws (keyed by step and index), the RNG and the prompt's vectors and their AdamW
    state come back from the checkpoint; the losses and every weight end exactly as without the kill."""
    from conftest import killed_at_checkpoint

    model = make_tiny_bert(tmp_path / "bert", dropout=0.1)
    data = write_lines(tmp_path / "corpus.txt", random_sentences(96))
    subprocess.run(train_args(model, data, tmp_path / "full"), check=True, capture_output=True, timeout=900)
    killed_at_checkpoint(train_args(model, data, tmp_path / "cut"), tmp_path / "cut" / "checkpoints" / "step-0000003",
                         timeout=900)
    assert not (tmp_path / "cut" / "final").exists(), "killed too late to test resuming"
    subprocess.run(train_args(model, data, tmp_path / "cut", "--resume"), check=True, capture_output=True, timeout=900)

    def losses(run):
        return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]

    assert losses(tmp_path / "cut") == losses(tmp_path / "full") and len(set(losses(tmp_path / "full"))) > 1
    states = {n: torch.load(tmp_path / n / "checkpoints" / "step-0000006" / "state.pt", weights_only=True)["model"]
              for n in ("full", "cut")}
    assert "continuous_prompt.vectors" in states["full"]
    for key, value in states["full"].items():
        assert torch.equal(states["cut"][key], value), key


@pytest.mark.parametrize("extra, expected", [
    (("--prompt-length", "0"), "prompt_length"),
    (("--pooler", "cls"), "drop --pooler cls"),
    (("--do-mlm",), "--do-mlm"),
    (("--instruction", "query: "), "--instruction"),
    (("--prototype-templates", "{missing}"), "missing.tsv"),
    (("--prototype-templates", "{no_sentence}"), "no_sentence.tsv:2:"),
    (("--prototype-templates", "{no_mask}"), "no_mask.tsv:1:"),
    (("--prototype-templates", "{one_column}"), "one_column.tsv:1:"),
])
def test_bad_input_is_one_line_before_any_model_loads(tmp_path, capsys, extra, expected):
    from conftest import one_line_refusal

    files = {"no_sentence": "# a comment\nThis means {mask} .\t{sentence} not {mask} .\n",
             "no_mask": "{sentence} means .\t{sentence} not means {mask} .\n",
             "one_column": "{sentence} means {mask} .\n"}
    for name, text in files.items():
        (tmp_path / f"{name}.tsv").write_text(text)
    names = {name: str(tmp_path / f"{name}.tsv") for name in [*files, "missing"]}
    extra = tuple(arg.format(**names) if arg.startswith("{") else arg for arg in extra)
    data = write_lines(tmp_path / "corpus.txt", random_sentences(16))
    err = one_line_refusal(["train", "--model", str(tmp_path / "no-model"), "--data", str(data), "--objective",
                            "conpvp", "--output-dir", str(tmp_path / "run"), *extra], capsys)
    assert expected in err, err
    assert not (tmp_path / "run").exists()


def test_templates_the_tokenizer_cannot_read_are_one_line(tiny, tmp_path):
    from simcse_lab.errors import UserError
    from simcse_lab.training.objectives.conpvp import compile_prototypes

    tokenizer = tiny[0]
    with pytest.raises(UserError, match="pad token"):
        compile_prototypes(tokenizer, [("{sentence} [PAD] means {mask} .", "{sentence} not {mask} .")], "f.tsv")
    with pytest.raises(UserError, match="pair 1 negative"):
        compile_prototypes(tokenizer, [("{sentence} means {mask} .", "{sentence} not <mask> .")], "f.tsv")


def test_templates_are_checked_against_the_tokenizer_before_the_run_directory_is_claimed(tmp_path, capsys):
    from conftest import one_line_refusal

    model = make_tiny_bert(tmp_path / "bert")
    pairs = write_lines(tmp_path / "pairs.tsv", ["{sentence} means <mask> .\t{sentence} not means <mask> ."])
    data = write_lines(tmp_path / "corpus.txt", random_sentences(16))
    capsys.readouterr()  # the model's saving, above
    err = one_line_refusal(["train", "--model", str(model), "--data", str(data), "--objective", "conpvp",
                            "--prototype-templates", str(pairs), "--output-dir", str(tmp_path / "run")], capsys)
    assert "pair 1 positive" in err and "[MASK]" in err, err
    assert not (tmp_path / "run").exists()
