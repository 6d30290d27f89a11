"""Shared fixtures and helpers: a tiny randomly initialised BERT with the offline model's vocabulary,
tiny random models of every backbone family with their own tokenizers (tests/families.py), random toy
corpora, a free TCP port for multi-process runs, and paths to the shared data (integration tests skip,
loudly, when ../shared/data is absent). Test modules import the helpers as
``from conftest import ...``."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

PROJECT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED_DATA = PROJECT.parent / "shared" / "data"


def make_tiny_bert(path: Path, seed: int = 0, layers: int = 2, hidden: int = 32, dropout: float = 0.1) -> Path:
    """Save a 2-layer random BertModel (+ the offline model's tokenizer) to ``path``; return it."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from simcse_lab.modeling.resolve import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=4, intermediate_size=4 * hidden, max_position_embeddings=128,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    torch.manual_seed(seed)
    model = BertModel(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# toy vocabularies: plain sentences for training, a second set for search tests
WORDS = "the a cat dog sat ran on under table house red big small quickly slowly park river tree".split()
SEARCH_WORDS = "man woman dog cat plays eats runs guitar piano ball food park beach slowly quickly red blue".split()


def random_sentences(n: int, seed: int = 0, words=WORDS, lengths: tuple[int, int] = (3, 12)) -> list[str]:
    """``n`` seeded random sentences of ``lengths[0]`` to ``lengths[1] - 1`` words (repeats possible)."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, size=rng.integers(*lengths))) for _ in range(n)]


def padded_batch(tokenizer, sentences: list[str], max_length: int = 24) -> dict:
    """Model inputs of ``sentences``: tokenised, right-padded, token type ids all 0."""
    from simcse_lab.modeling.batching import pad_batch

    ids = tokenizer(sentences, truncation=True, max_length=max_length)["input_ids"]
    return pad_batch(ids, tokenizer.pad_token_id, [[0] * len(i) for i in ids])


def randomise_adapter(embedder, seed: int = 0) -> None:
    """lora_B starts at zero (the adapter changes nothing); random values make the adapter's effect visible."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in embedder.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)


def masked_copy(tokenizer, batch: dict, probability: float = 0.3, seed: int = 0):
    """(masked input ids, MLM labels) of ``batch``, SimCSE's auxiliary-MLM masking under a fixed seed."""
    import torch

    from simcse_lab.training.mlm import mask_tokens

    torch.manual_seed(seed)
    return mask_tokens(batch["input_ids"], batch["attention_mask"], tokenizer.all_special_ids,
                       tokenizer.mask_token_id, len(tokenizer), probability=probability)


def rewrite_state(ckpt: Path, change) -> None:
    """Change a checkpoint's state.pt and fix its checksums.json: damage that a checksum cannot see."""
    import torch

    from simcse_lab.io import sha256_file

    state = torch.load(ckpt / "state.pt", weights_only=True)
    change(state)
    torch.save(state, ckpt / "state.pt")
    sums = json.loads((ckpt / "checksums.json").read_text())
    sums["state.pt"] = sha256_file(ckpt / "state.pt")
    (ckpt / "checksums.json").write_text(json.dumps(sums))


def killed_at_checkpoint(args: list[str], target: Path, timeout: float) -> None:
    """Run ``args`` (a training command) in a subprocess and SIGKILL it as soon as the checkpoint ``target``
    exists (or it ended, or ``timeout`` seconds passed); assert the checkpoint was reached."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + timeout
    while not target.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target.exists(), f"the run did not reach its {target.name} checkpoint"


def one_line_refusal(argv: list[str], capsys) -> str:
    """Run the CLI on ``argv``; assert it stopped with exit 2 and one line on stderr, no traceback; that line."""
    from simcse_lab.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def free_port() -> int:
    """A TCP port nobody listens on now (for torchrun's rendezvous in multi-process tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def toy_registry(tmp_path, monkeypatch):
    """A registry with one STS-B-like dataset (``toystsb``, split ``test``) whose mirror is tmp_path/mirror,
    and one text dataset (``toytext``, splits ``train`` and ``dev``)."""
    from simcse_lab.data import registry

    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    shutil.copy(FIXTURES / "stsb_toy.csv", mirror / "toy" / "sts-test.csv")
    write_lines(mirror / "toy" / "train.txt", ["first train sentence", "second train sentence"])
    write_lines(mirror / "toy" / "dev.txt", ["a dev sentence"])
    files = {rel: registry.sha256_file(mirror / rel) for rel in ("toy/sts-test.csv", "toy/train.txt", "toy/dev.txt")}
    manifest = {"format": 1, "datasets": {
        "toystsb": {"description": "toy", "kind": "stsb_csv", "license": "test", "url": None, "offline_note": "fixture",
                    "splits": {"test": {"path": "toy/sts-test.csv"}}, "files": {"toy/sts-test.csv": files["toy/sts-test.csv"]}},
        "toytext": {"description": "toy text", "kind": "text", "license": "test", "url": None, "offline_note": "fixture",
                    "splits": {"dev": {"path": "toy/dev.txt"}, "train": {"path": "toy/train.txt"}},
                    "files": {"toy/train.txt": files["toy/train.txt"], "toy/dev.txt": files["toy/dev.txt"]}}}}
    path = tmp_path / "registry.json"
    path.write_text(json.dumps(manifest))
    monkeypatch.setattr(registry, "MANIFEST", path)
    registry.manifest.cache_clear()
    monkeypatch.setenv("SIMCSE_LAB_DATA", str(mirror))
    monkeypatch.setenv("SIMCSE_LAB_CACHE", str(tmp_path / "cache"))
    yield mirror
    registry.manifest.cache_clear()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"integration data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def family_tokenizers() -> dict:
    """name -> the family tokenizer tests/families.py trained (filled in by the fixtures below, shared by them)."""
    return {}


@pytest.fixture(scope="session")
def family_models(tmp_path_factory, shared_data, family_tokenizers) -> dict[str, Path]:
    """name -> directory of a tiny random model of each backbone family (and ``gpt2-nopad``), with its own
    family's tokenizer trained on the wiki sentences (tests/families.py); built once per session."""
    from families import build_families

    return build_families(tmp_path_factory.mktemp("families"), shared_data, tokenizers=family_tokenizers)


@pytest.fixture(scope="session")
def still_family_models(tmp_path_factory, shared_data, family_tokenizers) -> dict[str, Path]:
    """As ``family_models`` with dropout off (training-mode passes are deterministic), the same tokenizers."""
    from families import build_families

    return build_families(tmp_path_factory.mktemp("still-families"), shared_data, dropout=0.0,
                          tokenizers=family_tokenizers)


@pytest.fixture(scope="session")
def decoder_models(tmp_path_factory, shared_data, family_tokenizers) -> dict[str, Path]:
    """name -> directory of a tiny random decoder LLM of each decoder family (``families.DECODERS``: llama,
    mistral, phi3, qwen2, qwen3, gemma, gemma2, gpt2), saved as the hub ships them (``*ForCausalLM``, GPT-2 as
    ``GPT2Model``) with the family's own tokenizer (BOS, pad or none, padding side); dropout 0.1; once per session."""
    from families import DECODERS, build_families

    return build_families(tmp_path_factory.mktemp("decoders"), shared_data, names=tuple(DECODERS),
                          tokenizers=family_tokenizers)


@pytest.fixture(scope="session")
def still_decoder_models(tmp_path_factory, shared_data, family_tokenizers) -> dict[str, Path]:
    """As ``decoder_models`` with dropout off, the same tokenizers."""
    from families import DECODERS, build_families

    return build_families(tmp_path_factory.mktemp("still-decoders"), shared_data, names=tuple(DECODERS),
                          dropout=0.0, tokenizers=family_tokenizers)


@pytest.fixture
def mirror_env(shared_data, monkeypatch):
    """Point the registry at ../shared/data for one test."""
    monkeypatch.setenv("SIMCSE_LAB_DATA", str(shared_data))
    return shared_data


@pytest.fixture(autouse=True, scope="session")
def _offline(tmp_path_factory):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # the tokenised training data (and fetched sets) of the tests never land in the user's cache
    os.environ.setdefault("SIMCSE_LAB_CACHE", str(tmp_path_factory.mktemp("simcse-lab-cache")))


def explicit_delta(model, tok, tpl, k: int):
    """PromptBERT's delta for a sentence of k tokens, written out: [CLS] prefix suffix [SEP] with the positions of
    suffix and [SEP] moved k further, the state at [MASK]. The attention mask is given: without one, transformers 5
    reads a jump in the position ids as the start of another packed sequence and masks across it."""
    import torch

    row = [tok.cls_token_id, *tpl.prefix, *tpl.suffix, tok.sep_token_id]
    positions = list(range(1 + len(tpl.prefix))) + [1 + len(tpl.prefix) + k + j for j in range(len(tpl.suffix) + 1)]
    with torch.no_grad():
        out = model(input_ids=torch.tensor([row]), position_ids=torch.tensor([positions]),
                    attention_mask=torch.ones(1, len(row), dtype=torch.long)).last_hidden_state
    return out[0, row.index(tok.mask_token_id)]


@pytest.fixture
def no_model_loads(monkeypatch):
    """Loading any model (or index) is a test failure: the checks must come first."""
    import sys

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr("simcse_lab.modeling.encoder.Encoder", refuse)
    monkeypatch.setattr("simcse_lab.modeling.encoder.OnnxEncoder", refuse)
    monkeypatch.setattr("simcse_lab.modeling.embedder.load_embedder", refuse)
    if "simcse_lab.training.loop" in sys.modules:  # imported by an earlier test: it holds its own name for it
        monkeypatch.setattr("simcse_lab.training.loop.load_embedder", refuse)
    monkeypatch.setattr("simcse_lab.search.index.Index", refuse)
