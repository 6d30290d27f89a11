"""Tiny randomly initialised backbones of several families for unit tests (2 layers, hidden 32), saved with
``save_pretrained``: the offline model's WordPiece tokenizer for the encoder families (the family rules under
test read the config, not the vocabulary), and a small word-level tokenizer with an eos token but no pad token,
as GPT-2 / Llama tokenizers ship, for the pad-token fallback. Import as ``from tiny_backbones import ...``."""

from __future__ import annotations

from pathlib import Path

HIDDEN, LAYERS, HEADS, FFN, POSITIONS = 32, 2, 4, 64, 66


def _bert_tokenizer():
    from transformers import AutoTokenizer

    from simcse_lab.modeling.resolve import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))


def tiny_config(model_type: str, vocab: int, pad_id: int = 0, dropout: float = 0.0):
    """A 2-layer config of ``model_type`` with hidden 32 and a 66-row position table where it has one."""
    import transformers as tf

    common = {"vocab_size": vocab, "pad_token_id": pad_id}
    bert_like = {"hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
                 "intermediate_size": FFN, "max_position_embeddings": POSITIONS, "hidden_dropout_prob": dropout,
                 "attention_probs_dropout_prob": dropout}
    if model_type == "bert":
        return tf.BertConfig(**common, **bert_like)
    if model_type == "roberta":
        return tf.RobertaConfig(**common, **bert_like)
    if model_type == "xlm-roberta":
        return tf.XLMRobertaConfig(**common, **bert_like)
    if model_type == "electra":
        return tf.ElectraConfig(**common, **bert_like, embedding_size=HIDDEN)
    if model_type == "mpnet":
        return tf.MPNetConfig(**common, **bert_like)
    if model_type == "deberta-v2":
        return tf.DebertaV2Config(**common, **bert_like, relative_attention=True, position_biased_input=False,
                                  type_vocab_size=0, pos_att_type=["p2c", "c2p"], max_relative_positions=-1,
                                  position_buckets=32)
    if model_type == "distilbert":
        return tf.DistilBertConfig(**common, dim=HIDDEN, hidden_dim=FFN, n_layers=LAYERS, n_heads=HEADS,
                                   max_position_embeddings=POSITIONS, dropout=dropout, attention_dropout=dropout)
    if model_type == "modernbert":
        return tf.ModernBertConfig(**common, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
                                   num_attention_heads=HEADS, max_position_embeddings=POSITIONS,
                                   attention_dropout=dropout, mlp_dropout=dropout, embedding_dropout=dropout,
                                   bos_token_id=101, eos_token_id=102, cls_token_id=101, sep_token_id=102)
    if model_type == "t5":
        return tf.T5Config(**common, d_model=HIDDEN, d_ff=FFN, d_kv=HIDDEN // HEADS, num_layers=LAYERS, num_heads=HEADS,
                           dropout_rate=dropout, eos_token_id=1, decoder_start_token_id=0)
    if model_type == "gpt2":
        return tf.GPT2Config(**common, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_positions=POSITIONS,
                             resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout, bos_token_id=1, eos_token_id=1)
    raise ValueError(model_type)


def make_tiny(path: Path, model_type: str, seed: int = 0, dropout: float = 0.0) -> Path:
    """Save a tiny random ``model_type`` encoder (T5: ``T5EncoderModel``) and the offline model's tokenizer."""
    import torch
    import transformers as tf

    tokenizer = _bert_tokenizer()
    config = tiny_config(model_type, len(tokenizer), tokenizer.pad_token_id, dropout)
    torch.manual_seed(seed)
    model = tf.T5EncoderModel(config) if model_type == "t5" else tf.AutoModel.from_config(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)


WORDS = ("the a cat dog sat ran on under table house red big small quickly slowly park river tree man woman "
         "plays guitar").split()


def make_no_pad_gpt2(path: Path, seed: int = 0) -> Path:
    """A tiny GPT-2 whose tokenizer (word level, ``$A </s>``) has an eos token and no pad token."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import GPT2Model, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[UNK]", "</s>", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", eos_token="</s>")
    assert tokenizer.pad_token is None
    torch.manual_seed(seed)
    GPT2Model(tiny_config("gpt2", len(vocab), pad_id=None)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return Path(path)
