"""LoRA through peft on a tiny random Llama (built here, offline): only the adapter trains, on the family's
declared targets; checkpoints hold the adapter only and resume bit-exact after kill -9 (ESimCSE: its momentum
encoder too); --mini-batch-size and gradient checkpointing give the loss and gradients of the plain step; the
merged export and the adapter directory encode like the adapter model; an init adapter is merged before the new
one; bf16 frozen weights; and every bad setting is one line before any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import WORDS, killed_at_checkpoint, padded_batch, random_sentences, randomise_adapter, write_lines

from simcse_lab.errors import UserError
from simcse_lab.modeling.embedder import PassSwitches
from simcse_lab.modeling.lora import BackboneSetup

pytest.importorskip("peft")

LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def make_tiny_llama(path: Path, seed: int = 0, dropout: float = 0.1) -> Path:
    """A 2-layer random LlamaModel (hidden 32, 4 heads, 2 kv heads) and a word-level tokenizer (eos appended)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import LlamaConfig, LlamaModel, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[UNK]", "</s>", "<pad>", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", eos_token="</s>", pad_token="<pad>")
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=66,
                         attention_dropout=dropout, pad_token_id=2, bos_token_id=1, eos_token_id=1)
    torch.manual_seed(seed)
    LlamaModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def lora_embedder(model, r: int = 4, **kwargs):
    from simcse_lab.modeling.embedder import load_embedder

    return load_embedder(str(model), "avg", mlp_only_train=False, setup=BackboneSetup(lora_r=r, **kwargs))


def encode(embedder, tokenizer, sentences) -> np.ndarray:
    from simcse_lab.modeling.encoder import EmbedderEncoder

    return EmbedderEncoder(embedder, tokenizer, "fp32", torch.device("cpu"), "tiny").encode(sentences)


SENTENCES = ["the cat sat on the table", "a big red house", "dog", "the man plays guitar slowly"]


def test_only_the_adapter_trains_on_the_family_targets(llama):
    from simcse_lab.modeling.lora import trained_state

    _, embedder = lora_embedder(llama)
    trainable = {n for n, p in embedder.named_parameters() if p.requires_grad}
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    wrapped = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n in trainable if "lora_A" in n}
    assert wrapped == set(LLAMA_TARGETS)
    assert len(trainable) == 2 * 2 * len(LLAMA_TARGETS)  # 2 layers, A and B per target
    assert set(trained_state(embedder)) == trainable  # what a checkpoint holds: the adapter, no base weight
    assert all(p.dtype == torch.float32 for p in embedder.parameters())
    # named targets: only those
    _, embedder = lora_embedder(llama, lora_targets="q_proj,v_proj")
    assert {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, p in embedder.named_parameters()
            if p.requires_grad and "lora_A" in n} == {"q_proj", "v_proj"}


def test_unknown_targets_are_one_line_naming_the_model_modules(llama):
    with pytest.raises(UserError, match=r"--lora-targets query,value: .*linear modules are .*q_proj"):
        lora_embedder(llama, lora_targets="query,value")


def test_merged_export_and_adapter_directory_encode_like_the_adapter_model(tmp_path, llama):
    from sentence_transformers import SentenceTransformer

    from simcse_lab.modeling.embedder import load_adapter_embedder
    from simcse_lab.modeling.st_format import save_embedder

    tokenizer, embedder = lora_embedder(llama)
    randomise_adapter(embedder)
    before = {k: v.clone() for k, v in embedder.state_dict().items()}
    ours = encode(embedder, tokenizer, SENTENCES)
    save_embedder(embedder, tokenizer, tmp_path / "merged")
    # the training model keeps its adapter and weights: merging worked on a copy
    after = embedder.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    merged = SentenceTransformer(str(tmp_path / "merged"), device="cpu")
    assert not any("lora" in n for n, _ in merged.named_parameters())
    np.testing.assert_allclose(merged.encode(SENTENCES, convert_to_numpy=True), ours, atol=1e-5)
    # the adapter is not a no-op: the base model alone encodes otherwise
    with embedder.backbone.disable_adapter():
        assert np.abs(encode(embedder, tokenizer, SENTENCES) - ours).max() > 1e-3

    embedder.export_adapter = str(llama)
    save_embedder(embedder, tokenizer, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    assert not (tmp_path / "adapter" / "model.safetensors").exists()  # the adapter only, not the base weights
    tokenizer2, reloaded = load_adapter_embedder(str(tmp_path / "adapter"))
    np.testing.assert_allclose(encode(reloaded, tokenizer2, SENTENCES), ours, atol=1e-6)


def test_merged_export_of_a_bidirectional_decoder_encodes_like_the_adapter_model(tmp_path, llama):
    """LLM2Vec's case: bidirectional attention + LoRA, merged on export into simcse-lab's own layout (no config
    flag for Llama's bidirectional attention), reloaded by simcse-lab's loader."""
    from simcse_lab.modeling.embedder import set_attention
    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.modeling.st_format import save_embedder

    tokenizer, embedder = lora_embedder(llama)
    set_attention(embedder.backbone, embedder.family, True)
    randomise_adapter(embedder, seed=5)
    ours = encode(embedder, tokenizer, SENTENCES)
    save_embedder(embedder, tokenizer, tmp_path / "merged")
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    reloaded = Encoder(str(tmp_path / "merged"), precision="fp32", device="cpu").encode(SENTENCES)
    np.testing.assert_allclose(reloaded, ours, atol=1e-5)
    set_attention(embedder.backbone, embedder.family, False)  # causal: other vectors (the test can fail)
    assert np.abs(encode(embedder, tokenizer, SENTENCES) - ours).max() > 1e-3


def test_init_adapter_is_merged_before_the_new_adapter(tmp_path, llama):
    from simcse_lab.modeling.st_format import save_embedder

    tokenizer, first = lora_embedder(llama)
    randomise_adapter(first, seed=3)
    first.export_adapter = str(llama)
    save_embedder(first, tokenizer, tmp_path / "mntp")
    expected = encode(first, tokenizer, SENTENCES)

    _, stacked = lora_embedder(llama, init_adapter=str(tmp_path / "mntp"))
    # a fresh adapter (lora_B = 0) on the merged weights: the first adapter's vectors
    np.testing.assert_allclose(encode(stacked, tokenizer, SENTENCES), expected, atol=1e-5)
    _, plain = lora_embedder(llama)
    assert np.abs(encode(plain, tokenizer, SENTENCES) - expected).max() > 1e-3
    trainable = [n for n, p in stacked.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def step_gradients(embedder, batch, weights, **kwargs):
    torch.manual_seed(7)
    vectors = embedder(**batch, **kwargs)
    (vectors * weights).sum().backward()
    grads = {n: p.grad.clone() for n, p in embedder.named_parameters() if p.grad is not None}
    embedder.zero_grad(set_to_none=True)
    return vectors.detach(), grads


@pytest.mark.parametrize("memory", ["mini_batch_size", "gradient_checkpointing"])
def test_memory_savers_give_the_plain_step_vectors_and_gradients(llama, memory):
    """Dropout on (attention and LoRA): the recomputed passes draw the same masks."""
    tokenizer, embedder = lora_embedder(llama, lora_dropout=0.2)
    randomise_adapter(embedder)
    embedder.train()
    batch = padded_batch(tokenizer, random_sentences(13, seed=1, lengths=(1, 20)))
    weights = torch.randn(13, 32, generator=torch.Generator().manual_seed(0))
    kept, kept_grads = step_gradients(embedder, batch, weights, switches=PassSwitches(chunks=4))
    if memory == "mini_batch_size":
        embedder.mini_batch_size = 4  # 13 rows -> 4 chunks, recomputed in backward
        saved, saved_grads = step_gradients(embedder, batch, weights)
    else:
        state = embedder.state_dict()
        tokenizer, embedder = lora_embedder(llama, lora_dropout=0.2, gradient_checkpointing=True)
        embedder.load_state_dict(state)  # the same adapter (lora_A is drawn at random when it is made)
        embedder.train()
        saved, saved_grads = step_gradients(embedder, batch, weights, switches=PassSwitches(chunks=4))
    torch.testing.assert_close(saved, kept, atol=0, rtol=0)
    assert saved_grads.keys() == kept_grads.keys() and len(kept_grads) == 28
    for name, grad in kept_grads.items():
        assert grad.abs().max() > 0, name
        torch.testing.assert_close(saved_grads[name], grad, atol=1e-6, rtol=1e-5, msg=name)
    # not trivially equal: another seed draws other dropout masks
    torch.manual_seed(8)
    assert not torch.allclose(embedder(**batch, switches=PassSwitches(chunks=4)), kept)


def test_a_checkpoint_saved_in_bf16_trains_in_fp32_unless_asked(tmp_path, llama):
    """transformers 5 loads a checkpoint in its saved dtype by default; --weights-dtype decides here."""
    from transformers import AutoModel, AutoTokenizer

    from simcse_lab.modeling.embedder import load_embedder

    saved = tmp_path / "bf16-saved"
    AutoModel.from_pretrained(llama).to(torch.bfloat16).save_pretrained(saved)
    AutoTokenizer.from_pretrained(llama).save_pretrained(saved)
    _, embedder = load_embedder(str(saved), "avg", mlp_only_train=False)
    assert {p.dtype for p in embedder.parameters()} == {torch.float32}
    _, embedder = lora_embedder(saved, weights_dtype="bf16")
    assert {p.dtype for n, p in embedder.named_parameters() if "lora_" not in n} == {torch.bfloat16}


def test_bf16_frozen_weights_under_an_fp32_adapter(tmp_path, llama):
    from sentence_transformers import SentenceTransformer

    from simcse_lab.modeling.st_format import save_embedder

    tokenizer, embedder = lora_embedder(llama, weights_dtype="bf16")
    randomise_adapter(embedder)
    dtypes = {n: p.dtype for n, p in embedder.named_parameters()}
    assert all(d == torch.float32 for n, d in dtypes.items() if "lora_" in n)
    assert all(d == torch.bfloat16 for n, d in dtypes.items() if "lora_" not in n)
    embedder.train()
    batch = padded_batch(tokenizer, random_sentences(6, seed=2))
    vectors = embedder(**batch)
    assert vectors.dtype == torch.float32
    vectors.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in embedder.parameters() if p.requires_grad)
    # the merged export is fp32 and encodes like the bf16 model (bf16's rounding apart)
    ours = encode(embedder, tokenizer, SENTENCES)
    save_embedder(embedder, tokenizer, tmp_path / "merged")
    merged = SentenceTransformer(str(tmp_path / "merged"), device="cpu")
    assert all(p.dtype == torch.float32 for p in merged.parameters())
    np.testing.assert_allclose(merged.encode(SENTENCES, convert_to_numpy=True), ours, atol=0.1)


def corpus(tmp_path) -> Path:
    return write_lines(tmp_path / "corpus.txt", random_sentences(120, seed=6, lengths=(2, 14)))


def train_config(tmp_path, model, **kw):
    from simcse_lab.training.config import TrainConfig

    base = dict(objective="esimcse", model=str(model), data=str(corpus(tmp_path)), pooler="avg", batch_size=8,
                max_seq_len=16, lr=1e-2, eval_steps=0, test_tasks="none", precision="fp32", log_steps=1,
                progress=False, lora_r=4, lora_dropout=0.1, queue_ratio=1.0)
    return TrainConfig(**{**base, **kw})


def losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_esimcse_with_lora_and_mini_batches_matches_the_kept_chunks(tmp_path, llama):
    """A whole ESimCSE run (momentum encoder on the LoRA model): --mini-batch-size 8 (16 online rows -> 2
    chunks) gives the losses and adapter weights of --length-chunks 2 with every activation kept."""
    from simcse_lab.training.loop import train

    curves, states = {}, {}
    for name, memory in {"kept": dict(length_chunks=2), "cached": dict(length_chunks=1, mini_batch_size=8)}.items():
        out = tmp_path / name
        train(train_config(tmp_path, llama, output_dir=str(out), max_steps=5, save_steps=5, **memory))
        curves[name] = losses(out)
        states[name] = torch.load(out / "checkpoints" / "step-0000005" / "state.pt", weights_only=True)
    assert len(curves["kept"]) == 5 and max(curves["kept"]) - min(curves["kept"]) > 0.01  # it trains
    # equal up to the order of float sums (the gradients of 2 chunks added in another order), over 5 steps
    torch.testing.assert_close(torch.tensor(curves["cached"]), torch.tensor(curves["kept"]), atol=1e-6, rtol=1e-5)
    kept = states["kept"]
    assert kept["model"].keys() == states["cached"]["model"].keys()
    assert all("lora_" in k for k in kept["model"]) and len(kept["model"]) == 28  # adapter-only checkpoint
    assert all("lora_" in k for k in kept["objective"]["momentum_encoder"])       # the momentum copy too
    for key, value in kept["model"].items():
        torch.testing.assert_close(states["cached"]["model"][key], value, atol=1e-6, rtol=1e-5, msg=key)


CLI = ["--objective", "esimcse", "--pooler", "avg", "--max-steps", "6", "--save-steps", "2", "--queue-ratio", "1.0",
       "--batch-size", "8", "--max-seq-len", "16", "--lr", "1e-2", "--eval-steps", "0", "--test-tasks", "none",
       "--precision", "fp32", "--log-steps", "1", "--no-progress", "--lora-r", "4", "--lora-dropout", "0.1"]


def test_lora_run_resumes_bit_exact_after_kill(tmp_path, llama):
    from simcse_lab.training.loop import train

    full = tmp_path / "full"
    cfg = train_config(tmp_path, llama, output_dir=str(full), max_steps=6, save_steps=2)
    train(cfg)

    cut = tmp_path / "cut"
    args = [sys.executable, "-m", "simcse_lab", "train", "--model", str(llama), "--data", cfg.data, *CLI,
            "--output-dir", str(cut)]
    killed_at_checkpoint(args, cut / "checkpoints" / "step-0000002", timeout=180)
    assert not (cut / "final").exists(), "killed too late to test resuming"
    train(train_config(tmp_path, llama, output_dir=str(cut), max_steps=6, save_steps=2, resume=True))

    assert losses(cut) == losses(full)  # bit for bit
    a, b = (torch.load(run / "checkpoints" / "step-0000006" / "state.pt", weights_only=True) for run in (full, cut))
    assert a["model"].keys() == b["model"].keys() and len(a["model"]) == 28
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    momentum_a, momentum_b = a["objective"]["momentum_encoder"], b["objective"]["momentum_encoder"]
    assert all(torch.equal(momentum_a[k], momentum_b[k]) for k in momentum_a)
    assert (cut / "final").is_dir() and not (cut / "final" / "adapter_config.json").exists()  # merged by default


def test_adapter_export_run_and_test_table(tmp_path, llama):
    """--no-merge-lora: final/ is an adapter directory, and the run's test table reads it back."""
    from simcse_lab.training.loop import train

    out = tmp_path / "run"
    summary = train(train_config(tmp_path, llama, objective="unsup", output_dir=str(out), max_steps=2,
                                 merge_lora=False, test_tasks="stsb"))
    assert (out / "final" / "adapter_config.json").is_file() and not (out / "final" / "modules.json").exists()
    from simcse_lab.modeling.resolve import model_identity

    assert json.loads((out / "final" / "simcse_lab_adapter.json").read_text()) == {
        "base_model": str(llama), "base_model_sha256": model_identity(llama), "base_weights_dtype": "fp32",
        "pooler": "avg",
        "bidirectional": True, "append_eos": True, "instruction": ""}  # a decoder trains bidirectional
    assert summary["test_after"]["model"] == str(out / "final")
    assert summary["test_after"]["avg"] != summary["test_before"]["avg"]


@pytest.mark.parametrize("settings, message", [
    (dict(weights_dtype="bf16"), "weights_dtype bf16: .* add --lora-r 16"),
    (dict(merge_lora=False), "--no-merge-lora saves the LoRA adapter, and there is none"),
    (dict(lora_r=4, merge_lora=False, init_adapter="mntp/final"),
     "--no-merge-lora with --init-adapter: .* would embed without the init adapter .* drop --no-merge-lora"),
    (dict(lora_targets="q_proj"), "lora_targets without lora_r"),
    (dict(weights_dtype="fp16", lora_r=4), "unknown weights_dtype 'fp16'"),
    (dict(lora_r=-1), "lora_r must be >= 0"),
    (dict(lora_r=4, lora_dropout=1.0), r"lora_dropout must be in \[0, 1\), got 1.0"),
])
def test_bad_lora_settings_are_one_line(settings, message):
    from simcse_lab.training.config import TrainConfig

    with pytest.raises(UserError, match=message):
        TrainConfig(**settings)


def test_refused_before_any_weights_load(tmp_path, llama, monkeypatch, tiny_bert):
    from simcse_lab.training.backbone import check_adaptation, resolve_backbone
    from simcse_lab.training.config import TrainConfig

    with pytest.raises(UserError, match="--init-adapter .*: not an adapter directory"):
        check_adaptation(TrainConfig(model=str(llama), lora_r=4, init_adapter=str(tmp_path)))
    with pytest.raises(UserError, match="--no-merge-lora: .* MLP head of pooler cls"):
        resolve_backbone(TrainConfig(model=str(tiny_bert), pooler="cls", mlp_only_train=False, lora_r=4,
                                     merge_lora=False))
    monkeypatch.setitem(sys.modules, "peft", None)  # as if peft were not installed
    with pytest.raises(UserError, match=r"LoRA needs peft, which is not installed: pip install 'simcse-lab\[llm\]'"):
        check_adaptation(TrainConfig(model=str(llama), lora_r=4))


def test_bert_takes_lora_on_its_declared_targets(tiny_bert):
    from simcse_lab.modeling.embedder import load_embedder

    _, embedder = load_embedder(str(tiny_bert), "cls", mlp_only_train=True, setup=BackboneSetup(lora_r=2))
    wrapped = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, p in embedder.named_parameters()
               if p.requires_grad and "lora_A" in n}
    assert wrapped == {"query", "key", "value", "dense"}
    assert {n.split(".")[0] for n, p in embedder.named_parameters() if p.requires_grad and "lora_" not in n} == {"mlp"}


def test_attention_dropout_is_the_configs(tmp_path, tiny_bert):
    """LLM2Vec's simcse_dropout: the backbone config's attention_dropout, the noise of unsupervised SimCSE."""
    from simcse_lab.training.backbone import resolve_backbone
    from simcse_lab.training.config import TrainConfig

    still = make_tiny_llama(tmp_path / "still", dropout=0.0)
    tokenizer, embedder = lora_embedder(still, lora_dropout=0.0)
    embedder.train()
    batch = padded_batch(tokenizer, random_sentences(4, seed=3))
    assert torch.equal(embedder(**batch), embedder(**batch))  # no dropout anywhere: one view
    tokenizer, embedder = lora_embedder(still, lora_dropout=0.0, attention_dropout=0.3)
    assert embedder.backbone.config.attention_dropout == 0.3
    embedder.train()
    assert not torch.allclose(embedder(**batch), embedder(**batch))
    with pytest.raises(UserError, match="attention_dropout: its config .bert. has no attention_dropout key"):
        resolve_backbone(TrainConfig(model=str(tiny_bert), attention_dropout=0.3))
    with pytest.raises(UserError, match="attention_dropout must be -1"):
        TrainConfig(attention_dropout=-0.5)


LLM2VEC_CONFIGS = [name for name in __import__("simcse_lab.training.config", fromlist=["x"]).shipped_configs()
                   if "/llm2vec-" in name]


def test_the_llm2vec_configs_are_shipped():
    assert sorted(c.rsplit("/", 1)[-1] for c in LLM2VEC_CONFIGS) == [
        "llm2vec-mntp-llama3-8b.yaml", "llm2vec-mntp-qwen2-0.5b.yaml", "llm2vec-simcse-llama3-8b.yaml",
        "llm2vec-simcse-qwen2-0.5b.yaml"]


@pytest.mark.parametrize("name", LLM2VEC_CONFIGS)
def test_llm2vec_configs_stop_offline_at_once_in_one_line(tmp_path, name):
    """Offline, each paper config stops in one line, exit 2, before anything is written: on its data (wiki1m is
    not in the test mirror, wikitext comes from the hub) and, given local data, on its hub model."""
    from simcse_lab.training.config import OBJECTIVE_NAMES, load_config

    if "mntp" in name and "mntp" not in OBJECTIVE_NAMES:
        pytest.skip("--objective mntp is not in this build")
    cfg = load_config(name)
    assert cfg.lora_r == 16 and cfg.lora_alpha == 32 and cfg.max_steps == 1000 and cfg.seed == 42
    if "simcse" in name:
        assert (cfg.objective, cfg.batch_size, cfg.lr, cfg.max_seq_len, cfg.attention_dropout, cfg.pooler) == (
            "unsup", 128, 3e-5, 128, 0.3, "avg")
        assert cfg.init_adapter.endswith("mntp-" + name.rsplit("simcse-", 1)[-1].removesuffix(".yaml") + "/final")
    data = write_lines(tmp_path / "corpus.txt", random_sentences(300))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SIMCSE_LAB_DATA": str(tmp_path / "no-mirror")}
    for extra, expected in (([], "error: "), (["--data", str(data)], f"cannot load model {cfg.model!r}")):
        out = tmp_path / f"run{len(extra)}"
        start = time.time()
        proc = subprocess.run([sys.executable, "-m", "simcse_lab", "train", "--config", name, "--output-dir", str(out),
                               *extra], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], proc.stderr
        assert time.time() - start < 30 and not out.exists()


@pytest.mark.parametrize("name", ["llama", "qwen2", "gemma", "gpt2", "phi3"])
def test_lora_on_each_decoder_family_merges_to_what_it_encodes(tmp_path, decoder_models, name):
    """The tiny decoders of tests/families.py (their own tokenizers, BOS/padding rules): the adapter goes on every
    module the family declares, and the merged bidirectional export reloads to the adapter model's vectors."""
    from simcse_lab.modeling.embedder import set_attention
    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.modeling.st_format import save_embedder

    tokenizer, embedder = lora_embedder(decoder_models[name])
    wrapped = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, p in embedder.named_parameters()
               if p.requires_grad and "lora_A" in n}
    assert wrapped == set(embedder.family.lora_targets), name
    set_attention(embedder.backbone, embedder.family, True)
    randomise_adapter(embedder, seed=2)
    ours = encode(embedder, tokenizer, SENTENCES)
    save_embedder(embedder, tokenizer, tmp_path / "merged")
    reloaded = Encoder(str(tmp_path / "merged"), precision="fp32", device="cpu").encode(SENTENCES)
    np.testing.assert_allclose(reloaded, ours, atol=1e-5)
    with embedder.backbone.disable_adapter():
        assert np.abs(encode(embedder, tokenizer, SENTENCES) - ours).max() > 1e-3


def test_a_lora_run_is_refused_as_a_trajectory_in_one_line(tmp_path):
    from simcse_lab.analysis.inputs import read_run_dir
    from simcse_lab.errors import InputError

    (tmp_path / "train_config.json").write_text(json.dumps({"model": "m", "pooler": "avg", "lora_r": 16}))
    with pytest.raises(InputError, match="a LoRA run .* analyze its best/ or final/ with --model instead"):
        read_run_dir(tmp_path)


def test_llm2vec_pipeline_mntp_adapter_then_simcse_from_it(tmp_path):
    """LLM2Vec's stacking on a tiny Llama whose vocabulary has "_": MNTP trains a LoRA adapter (the model's own LM
    head frozen, so the checkpoint holds the adapter only) saved unmerged; SimCSE starts from it merged."""
    from tiny_decoders import make_tiny_decoder

    from simcse_lab.modeling.embedder import load_adapter_embedder, load_embedder
    from simcse_lab.modeling.lora import merged_backbone
    from simcse_lab.training.config import OBJECTIVE_NAMES
    from simcse_lab.training.loop import train

    if "mntp" not in OBJECTIVE_NAMES:
        pytest.skip("--objective mntp is not in this build")
    model = make_tiny_decoder(tmp_path / "llama", "llama", seed=4)
    mntp = tmp_path / "mntp"
    train(train_config(tmp_path, model, objective="mntp", mlm_probability=0.2, output_dir=str(mntp), max_steps=2,
                       merge_lora=False))
    state = torch.load(mntp / "checkpoints" / "step-0000002" / "state.pt", weights_only=True)
    assert state["model"] and all("lora_" in k for k in state["model"])  # no LM head, no base weight
    assert (mntp / "final" / "adapter_config.json").is_file()

    train(train_config(tmp_path, model, objective="unsup", output_dir=str(tmp_path / "simcse"), max_steps=2,
                       init_adapter=str(mntp / "final")))
    _, stacked = load_embedder(str(model), "avg", False, setup=BackboneSetup(lora_r=4, init_adapter=str(mntp / "final")))
    _, adapted = load_adapter_embedder(str(mntp / "final"))
    _, plain = load_embedder(str(model), "avg", False)
    name = "layers.0.self_attn.q_proj.weight"
    merged = merged_backbone(adapted.backbone).state_dict()[name]
    start = stacked.backbone.get_base_model().state_dict()[name.replace("q_proj.", "q_proj.base_layer.")]
    torch.testing.assert_close(start, merged, atol=1e-6, rtol=0)
    assert (start - plain.backbone.state_dict()[name]).abs().max() > 1e-4  # the MNTP adapter moved it


def test_resume_refuses_another_merge_lora(tmp_path, llama):
    """best/ and final/ of one run are all merged or all adapter directories: --resume keeps --no-merge-lora."""
    from simcse_lab.training.loop import train

    out = tmp_path / "run"
    train(train_config(tmp_path, llama, objective="unsup", output_dir=str(out), max_steps=2, save_steps=2))
    with pytest.raises(UserError, match=r"--resume with changed merge_lora \(saved: merge_lora=True\)"):
        train(train_config(tmp_path, llama, objective="unsup", output_dir=str(out), max_steps=2, save_steps=2,
                           merge_lora=False, resume=True))


def test_an_adapter_with_pickled_weights_only_is_refused(tmp_path, llama):
    """peft would torch.load an adapter_model.bin: simcse-lab reads adapters from safetensors only."""
    from simcse_lab.modeling.lora import load_adapter
    from simcse_lab.modeling.st_format import save_embedder

    tokenizer, embedder = lora_embedder(llama)
    embedder.export_adapter = str(llama)
    save_embedder(embedder, tokenizer, tmp_path / "adapter")
    (tmp_path / "adapter" / "adapter_model.safetensors").rename(tmp_path / "adapter" / "adapter_model.bin")
    _, base = lora_embedder(llama, r=0)
    with pytest.raises(UserError, match="no adapter_model.safetensors; simcse-lab reads adapter weights from "
                                        "safetensors only"):
        load_adapter(base.backbone, str(tmp_path / "adapter"))


def test_an_adapter_whose_weights_fit_no_module_is_refused_not_loaded_as_zero(tmp_path, llama):
    """peft only warns when an adapter file's keys miss the model's modules (saved from another wrapping) and leaves
    lora_B at zero: the adapter would change nothing. simcse-lab refuses it in one line; the file as saved loads."""
    from safetensors.torch import load_file, save_file

    from simcse_lab.modeling.lora import load_adapter

    path, embedder, _ = adapter_dir(tmp_path, llama)
    weights = path / "adapter_model.safetensors"
    original = load_file(weights)
    _, base = lora_embedder(llama, r=0)
    loaded = load_adapter(base.backbone, str(path))
    assert max(p.abs().max().item() for n, p in loaded.named_parameters() if "lora_B" in n) > 0.1
    save_file({k.replace("base_model.model.", "base_model.model.model."): v for k, v in original.items()}, weights)
    _, base = lora_embedder(llama, r=0)
    with pytest.raises(UserError, match=r"adapter_model.safetensors: 28 of the model's adapter weights are not in it "
                                        r"\(e\.g\. base_model\.model\.layers\.0\..*another wrapping of it"):
        load_adapter(base.backbone, str(path))
    save_file({**original, "base_model.model.layers.9.mlp.up_proj.lora_A.weight": torch.zeros(4, 32)}, weights)
    _, base = lora_embedder(llama, r=0)
    with pytest.raises(UserError, match=r"1 of its weights fit no module of the model \(e\.g\. "
                                        r"base_model\.model\.layers\.9\.mlp\.up_proj\.lora_A\.weight\)"):
        load_adapter(base.backbone, str(path))


def adapter_dir(tmp_path, llama, instruction: str = "", bidirectional: bool = False) -> tuple:
    """(an adapter directory saved from a random adapter on ``llama``, its embedder, tokenizer)."""
    from simcse_lab.modeling.embedder import set_attention
    from simcse_lab.modeling.st_format import save_embedder

    tokenizer, embedder = lora_embedder(llama)
    set_attention(embedder.backbone, embedder.family, bidirectional)
    randomise_adapter(embedder, seed=7)
    embedder.export_adapter, embedder.instruction = str(llama), instruction
    save_embedder(embedder, tokenizer, tmp_path / "adapter")
    return tmp_path / "adapter", embedder, tokenizer


def test_an_adapter_directory_embeds_with_its_instruction(tmp_path, llama):
    """--no-merge-lora --instruction: the reloaded adapter (train's test table) embeds with the instruction."""
    from simcse_lab.modeling.encoder import EmbedderEncoder
    from simcse_lab.training.run_state import saved_encoder

    path, embedder, tokenizer = adapter_dir(tmp_path, llama, instruction="Represent the sentence: ")
    trained = EmbedderEncoder(embedder, tokenizer, "fp32", torch.device("cpu"), "tiny",
                              instruction="Represent the sentence: ").encode(SENTENCES)
    reloaded = saved_encoder(path, "fp32", torch.device("cpu")).encode(SENTENCES)
    np.testing.assert_allclose(reloaded, trained, atol=1e-6)
    assert np.abs(encode(embedder, tokenizer, SENTENCES) - trained).max() > 1e-3  # the instruction matters


@pytest.mark.parametrize("bidirectional, instruction", [(False, ""), (True, "Represent the sentence: ")])
def test_an_adapter_directory_is_a_model_for_eval_index_and_export(tmp_path, llama, bidirectional, instruction,
                                                                    capsys):
    """eval / analyze / index (Encoder) and export read an adapter directory as its base model with the adapter
    merged in, by the adapter's recipe: the vectors train's test table reads (1e-5); a training run whose best/ is
    one is a model too. A bidirectional Llama (no config flag for it) exports as ONNX only; train refuses it."""
    from simcse_lab.modeling.encoder import Encoder, load_encoder
    from simcse_lab.training.run_state import saved_encoder

    from conftest import one_line_refusal

    path, _, _ = adapter_dir(tmp_path, llama, instruction=instruction, bidirectional=bidirectional)
    trained = saved_encoder(path, "fp32", torch.device("cpu")).encode(SENTENCES)
    encoder = Encoder(str(path), precision="fp32", device="cpu")
    assert (encoder.pooler, encoder.bidirectional, encoder.instruction) == ("avg", bidirectional, instruction)
    np.testing.assert_allclose(encoder.encode(SENTENCES), trained, atol=1e-5)
    run = tmp_path / "run"
    run.mkdir()
    (path).rename(run / "best")
    np.testing.assert_allclose(load_encoder(str(run), precision="fp32", device="cpu").encode(SENTENCES), trained,
                               atol=1e-5)
    base = Encoder(str(llama), pooler="avg", precision="fp32", device="cpu", bidirectional=bidirectional,
                   instruction=instruction)
    assert np.abs(base.encode(SENTENCES) - trained).max() > 1e-3  # the adapter is in the vectors
    export = ["export", "--model", str(run / "best"), "--format", "sentence-transformers", "--output-dir",
              str(tmp_path / "st")]
    if bidirectional:
        assert "export it with --format onnx" in one_line_refusal(export, capsys)
        assert not (tmp_path / "st").exists()
    else:
        from simcse_lab.cli import main
        from simcse_lab.modeling.loading import load_sentence_transformer

        with pytest.raises(SystemExit) as done:
            main(export)
        assert done.value.code == 0
        exported = load_sentence_transformer(str(tmp_path / "st"), device="cpu").encode(SENTENCES)
        np.testing.assert_allclose(exported, trained, atol=1e-5)
    err = one_line_refusal(["train", "--model", str(run / "best"), "--output-dir", str(tmp_path / "t")], capsys)
    assert f"an adapter directory; to train from it, give its base model and the adapter: --model {llama} " \
           f"--init-adapter {run / 'best'}" in err


def test_an_adapter_trained_on_bf16_weights_reads_back_as_its_merged_export(tmp_path, llama):
    """--weights-dtype bf16 --no-merge-lora: the adapter directory records the bf16 base weights, and reading it
    (eval, or --init-adapter) rounds the base so (fp32 weights before: other vectors than the merged export)."""
    from simcse_lab.modeling.encoder import Encoder
    from simcse_lab.modeling.lora import adapter_meta
    from simcse_lab.modeling.st_format import save_embedder

    tokenizer, embedder = lora_embedder(llama, weights_dtype="bf16")
    randomise_adapter(embedder, seed=3)
    save_embedder(embedder, tokenizer, tmp_path / "merged")
    embedder.export_adapter = str(llama)
    save_embedder(embedder, tokenizer, tmp_path / "adapter")
    assert adapter_meta(tmp_path / "adapter").base_weights_dtype == "bf16"
    merged = Encoder(str(tmp_path / "merged"), precision="fp32", device="cpu").encode(SENTENCES)
    adapter = Encoder(str(tmp_path / "adapter"), precision="fp32", device="cpu").encode(SENTENCES)
    np.testing.assert_allclose(adapter, merged, atol=1e-5)
    # --init-adapter (LLM2Vec's MNTP adapter under a new run) starts from the same merged weights, fp32 run or not
    from simcse_lab.modeling.embedder import load_embedder
    from simcse_lab.modeling.lora import merged_backbone

    name = "layers.0.self_attn.q_proj.weight"
    export = merged_backbone(embedder.backbone).state_dict()[name]
    _, stacked = load_embedder(str(llama), "avg", False, setup=BackboneSetup(lora_r=4,
                                                                             init_adapter=str(tmp_path / "adapter")))
    start = stacked.backbone.get_base_model().state_dict()[name.replace("q_proj.", "q_proj.base_layer.")]
    torch.testing.assert_close(start, export, atol=1e-6, rtol=0)
    meta_file = tmp_path / "adapter" / "simcse_lab_adapter.json"
    meta = json.loads(meta_file.read_text())
    meta.pop("base_weights_dtype")  # as written before it was recorded: read on the fp32 weights
    meta_file.write_text(json.dumps(meta))
    unrounded = Encoder(str(tmp_path / "adapter"), precision="fp32", device="cpu").encode(SENTENCES)
    assert np.abs(unrounded - merged).max() > 1e-4  # what the record changes


@pytest.mark.parametrize("meta, message", [
    ({"pooler": "avg"}, "no 'base_model' field"),
    ({"base_model": "m", "pooler": "avg", "base_weights_dtype": "fp16"},
     "'base_weights_dtype' must be 'fp32' or 'bf16', not 'fp16'"),
    ({"base_model": 5, "pooler": "avg"}, "'base_model' must be a str, not 5"),
    ({"base_model": "m", "pooler": "avg", "bidirectional": "false"}, "'bidirectional' must be a bool, not 'false'"),
    ({"base_model": "m"}, "no 'pooler' field"),
    ({"base_model": "m", "pooler": "avg", "extra": 1}, "unknown field 'extra'"),
    ([1, 2], "is not a JSON object"),
])
def test_a_malformed_adapter_meta_is_one_line_naming_it(tmp_path, meta, message):
    from simcse_lab.modeling.embedder import load_adapter_embedder

    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "simcse_lab_adapter.json").write_text(json.dumps(meta))
    with pytest.raises(UserError) as err:
        load_adapter_embedder(str(tmp_path))
    assert str(err.value) == f"{tmp_path / 'simcse_lab_adapter.json'}: {message}"


def test_init_adapter_of_another_base_model_or_attention_is_refused(tmp_path, llama):
    """before any weights load: an adapter goes only on the base model and the attention it trained with."""
    from simcse_lab.modeling.families import family_of
    from simcse_lab.modeling.loading import load_config
    from simcse_lab.training.backbone import check_adaptation
    from simcse_lab.training.config import TrainConfig

    path, _, _ = adapter_dir(tmp_path, llama, bidirectional=True)
    family = family_of(load_config(str(llama)))
    check_adaptation(TrainConfig(model=str(llama), lora_r=4, init_adapter=str(path)), family)  # its own base
    other = make_tiny_llama(tmp_path / "other", seed=1)
    with pytest.raises(UserError, match=f"--init-adapter {path}: trained on the base model {llama}, not on {other}"):
        check_adaptation(TrainConfig(model=str(other), lora_r=4, init_adapter=str(path)), family)
    with pytest.raises(UserError, match="trained with bidirectional attention, this run's is causal; train with "
                                        "--bidirectional"):
        check_adaptation(TrainConfig(model=str(llama), lora_r=4, init_adapter=str(path), bidirectional=False), family)
