"""Tiny random decoder LMs (Llama, Qwen2; 2 layers, hidden 32) with a word-level tokenizer that adds ``<s>`` in
front, has ``</s>`` and no pad and no mask token (as Llama / Qwen tokenizers ship), saved as a causal-LM
checkpoint (``*ForCausalLM``: the base model plus its LM head) for the pooler, instruction and MNTP tests.
Import as ``from tiny_decoders import make_tiny_decoder``."""

from __future__ import annotations

from pathlib import Path

from tiny_backbones import WORDS

SPECIALS = ["[UNK]", "<s>", "</s>"]


def decoder_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate([*SPECIALS, *WORDS, ":", ".", "_", "query", "retrieve", "passage"])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", bos_token="<s>", eos_token="</s>")


def make_tiny_decoder(path: Path, model_type: str = "llama", seed: int = 0) -> Path:
    """Save a tiny random ``model_type`` (llama | qwen2) causal LM and :func:`decoder_tokenizer` at ``path``."""
    import torch
    import transformers as tf

    tokenizer = decoder_tokenizer()
    common = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, bos_token_id=1,
                  eos_token_id=2, pad_token_id=None, tie_word_embeddings=False)
    config = tf.LlamaConfig(**common) if model_type == "llama" else tf.Qwen2Config(**common)
    torch.manual_seed(seed)
    tf.AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)
