"""Shared fixtures: a tiny randomly initialised BERT with the offline model's vocabulary, and paths
to the shared data (integration tests skip, loudly, when ../shared/data is absent)."""

from __future__ import annotations

import os
from pathlib import Path

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


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"integration data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def mirror_env(shared_data, monkeypatch):
    """Point the registry at ../shared/data for one test."""
    monkeypatch.setenv("SIMCSE_LAB_DATA", str(shared_data))
    return shared_data


@pytest.fixture(autouse=True, scope="session")
def _offline():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
