"""Tiny randomly initialised models of every backbone family simcse-lab supports (issue 17), each with a
tokenizer of its own family trained offline on the wiki fallback sentences, saved with ``save_pretrained``
so that ``AutoConfig`` / ``AutoTokenizer`` / ``AutoModel`` load them offline with no remote code.

- WordPiece: BERT, DistilBERT, ELECTRA (``[CLS] [SEP] [PAD] [MASK] [UNK]``), MPNet (``<s> </s> <pad> <mask>``);
- byte-level BPE: RoBERTa (``<s> </s> <pad> <mask>``), ModernBERT (``[CLS] $A [SEP]`` template, a plain
  ``PreTrainedTokenizerFast`` as ModernBERT ships it), GPT-2 without a pad token (the pad-fallback case);
- Unigram / Metaspace: XLM-R (``<s> <pad> </s> <unk>`` … ``<mask>``), DeBERTa-v2/v3 (``[PAD] [CLS] [SEP] [UNK]``
  … ``[MASK]``; relative attention, ``position_biased_input=False``, ``type_vocab_size=0``), T5 (``<pad>`` = 0,
  ``</s>`` = 1, ``<unk>`` = 2, only ``</s>`` appended, no mask token; saved as ``T5EncoderModel``).

Decoder LLMs (issue 21, :data:`DECODERS`, the ``decoder_models`` fixture): Llama, Mistral, Phi-3 (Metaspace BPE
with byte fallback, ``<s>`` added, no pad, left padding), Qwen2, Qwen3 (byte-level BPE, no BOS, pad = eos =
``<|endoftext|>``), Gemma, Gemma2, Gemma3 text (``<pad> <eos> <bos> <unk> <mask>``, ``<bos>`` added, left padding; Gemma3 with an
8-token sliding window on its first layer), saved as
their ``*ForCausalLM`` class, and GPT-2 (the no-pad model). None of their tokenizers appends EOS.

Every model has 2 layers and hidden size 32; the position tables are small (64 usable positions) so that a long
wiki sentence runs past them. Building is seeded and takes a few seconds for all of them (the tokenizers are
trained on the first :data:`TRAIN_LINES` wiki lines). :func:`build_families` is what the session fixture in
``tests/conftest.py`` calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

WIKI_FILE = "wiki-fallback/wiki1m_for_simcse.first11914lines.txt"
NLI_FILE = "nli-fallback/snli_devtest_triplets_for_simcse.csv"
TRAIN_LINES = 2000   # wiki lines the tokenizers are trained on
VOCAB = 800          # tokenizer vocabulary size (before any special token the family class appends)
HIDDEN, LAYERS, HEADS, FFN = 32, 2, 4, 64
USABLE = 64          # usable positions of every model with a position table


@dataclass(frozen=True)
class Family:
    """What the tests expect of one family's tiny model."""
    name: str                 # directory name and pytest id
    model_type: str           # config.model_type
    summary_token: str | None  # the token at position 0 that sums up the sentence ([CLS], <s>), None: no such token
    mask_token: str | None    # None: no MLM (--do-mlm is refused)
    position_table: int | None  # max_position_embeddings of an absolute position table (None: relative/rotary)
    usable_length: int | None   # the longest input the position table takes (None: no table)
    own_pooler_layer: bool    # the HF model class carries a pooler layer (BertPooler-like) in its weights
    packable: bool            # the issue says packing is exact for it (BERT, ELECTRA, the offset families)
    decoder: bool = False     # a decoder LLM (issue 21): causal as shipped, no summary token
    adds_bos: bool = False    # its tokenizer puts a BOS token first
    padding_side: str = "right"  # the tokenizer's padding side as the family ships it


FAMILIES = {f.name: f for f in [
    Family("bert", "bert", "[CLS]", "[MASK]", USABLE, USABLE, True, True),
    Family("roberta", "roberta", "<s>", "<mask>", USABLE + 2, USABLE, True, True),
    Family("xlm-roberta", "xlm-roberta", "<s>", "<mask>", USABLE + 2, USABLE, True, True),
    Family("distilbert", "distilbert", "[CLS]", "[MASK]", USABLE, USABLE, False, False),
    Family("electra", "electra", "[CLS]", "[MASK]", USABLE, USABLE, False, True),
    Family("mpnet", "mpnet", "<s>", "<mask>", USABLE + 2, USABLE, True, True),
    Family("deberta-v2", "deberta-v2", "[CLS]", "[MASK]", None, None, False, False),
    Family("modernbert", "modernbert", "[CLS]", "[MASK]", None, None, False, False),
    Family("t5", "t5", None, None, None, None, False, False),
]}
# not one of the nine: a decoder's tokenizer as GPT-2 / Llama ship it, without a pad token (a decoder family of
# issue 21: trained bidirectionally by default, saved in simcse-lab's own layout)
NO_PAD = Family("gpt2-nopad", "gpt2", None, None, USABLE, USABLE, False, False, True)
ALL = {**FAMILIES, NO_PAD.name: NO_PAD}


def _decoder(name, model_type, adds_bos, padding_side, mask_token=None):
    return Family(name, model_type, None, mask_token, None, None, False, False, True, adds_bos, padding_side)


# decoder LLMs (issue 21), saved as their *ForCausalLM class as the hub ships them (AutoModel loads the base);
# tokenizers as shipped: Llama/Mistral/Phi-3 (Metaspace BPE with byte fallback, <s> added, no pad), Qwen2/Qwen3
# (byte-level BPE, no BOS, pad = eos = <|endoftext|>), Gemma/Gemma2/Gemma3 (<pad> <eos> <bos> <unk> <mask>, <bos> added,
# left padding), GPT-2 (the no-pad model above). No tokenizer appends EOS.
DECODERS = {f.name: f for f in [
    _decoder("llama", "llama", True, "left"),
    _decoder("mistral", "mistral", True, "left"),
    _decoder("phi3", "phi3", True, "left"),
    _decoder("qwen2", "qwen2", False, "right"),
    _decoder("qwen3", "qwen3", False, "right"),
    _decoder("gemma", "gemma", True, "left", "<mask>"),
    _decoder("gemma2", "gemma2", True, "left", "<mask>"),
    _decoder("gemma3", "gemma3_text", True, "left", "<mask>"),
    Family("gpt2", "gpt2", None, None, USABLE, USABLE, False, False, True, False, "right"),
]}
EVERY = {**ALL, **DECODERS}


def wiki_lines(data: Path, n: int | None = None) -> list[str]:
    lines = [line.strip() for line in (data / WIKI_FILE).read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line]
    return lines[:n] if n else lines


# -- tokenizers (the `tokenizers` library's trainers, wrapped in each family's transformers class) ----------
def _train(tok, trainer, lines):
    tok.train_from_iterator(lines, trainer=trainer)
    return json.loads(tok.to_str())["model"]


def wordpiece_vocab(lines: list[str], specials: list[str]) -> dict[str, int]:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    _train(tok, trainers.WordPieceTrainer(vocab_size=VOCAB, special_tokens=specials, show_progress=False), lines)
    return tok.get_vocab()


def bytelevel_bpe(lines: list[str], specials: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    model = _train(tok, trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=specials, show_progress=False,
                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()), lines)
    return model["vocab"], [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]


def unigram_pieces(lines: list[str], specials: list[str], unk: str) -> list[tuple[str, float]]:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    model = _train(tok, trainers.UnigramTrainer(vocab_size=VOCAB, special_tokens=specials, unk_token=unk,
                                                show_progress=False), lines)
    return [(piece, float(score)) for piece, score in model["vocab"]]


BYTES = [f"<0x{i:02X}>" for i in range(256)]  # the byte-fallback pieces of Llama / Gemma vocabularies


def metaspace_bpe(lines: list[str], specials: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A SentencePiece-like BPE (``▁`` word starts, the 256 byte pieces after ``specials``), as Llama and Gemma."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    model = _train(tok, trainers.BpeTrainer(vocab_size=VOCAB + len(BYTES), special_tokens=specials + BYTES,
                                            show_progress=False), lines)
    return model["vocab"], [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]


def make_decoder_tokenizer(name: str, lines: list[str]):
    """A decoder family's tokenizer as it ships (special tokens, BOS, pad or none, padding side)."""
    import transformers as tf

    side = dict(padding_side=DECODERS[name].padding_side)  # an init argument, so that it is saved
    if name in ("llama", "mistral", "phi3"):  # <unk>=0 <s>=1 </s>=2, bytes; <s> added, no pad
        vocab, merges = metaspace_bpe(lines, ["<unk>", "<s>", "</s>"])
        tok = tf.LlamaTokenizer(vocab=vocab, merges=merges, add_bos_token=True, add_eos_token=False, **side)
    elif name in ("gemma", "gemma2", "gemma3"):  # <pad>=0 <eos>=1 <bos>=2 <unk>=3 <mask>=4, bytes; <bos> added
        vocab, merges = metaspace_bpe(lines, ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"])
        tok = tf.GemmaTokenizer(vocab=vocab, merges=merges, add_bos_token=True, add_eos_token=False, **side)
    elif name in ("qwen2", "qwen3"):  # <|endoftext|> is eos and pad, no bos
        vocab, merges = bytelevel_bpe(lines, ["<|endoftext|>"])
        tok = tf.Qwen2Tokenizer(vocab=vocab, merges=merges, **side)
    elif name == "gpt2":
        tok = make_tokenizer("gpt2-nopad", lines)
    else:
        raise KeyError(name)
    return tok


def make_tokenizer(name: str, lines: list[str]):
    if name in DECODERS:
        return make_decoder_tokenizer(name, lines)
    import transformers as tf

    if name in ("bert", "distilbert", "electra"):
        cls = {"bert": tf.BertTokenizer, "distilbert": tf.DistilBertTokenizer, "electra": tf.ElectraTokenizer}[name]
        return cls(vocab=wordpiece_vocab(lines, ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    if name == "mpnet":  # MPNet: <s>=0 <pad>=1 </s>=2 [UNK]=3 ... <mask>
        vocab = wordpiece_vocab(lines, ["<s>", "<pad>", "</s>", "[UNK]"])
        vocab["<mask>"] = len(vocab)
        return tf.MPNetTokenizer(vocab=vocab)
    if name == "roberta":  # <s>=0 <pad>=1 </s>=2 <unk>=3 <mask>=4
        vocab, merges = bytelevel_bpe(lines, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        return tf.RobertaTokenizer(vocab=vocab, merges=merges)
    if name == "modernbert":  # ModernBERT ships a PreTrainedTokenizerFast: byte-level BPE, [CLS] $A [SEP]
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

        specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
        vocab, merges = bytelevel_bpe(lines, specials)
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
        return tf.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", cls_token="[CLS]",
                                          sep_token="[SEP]", pad_token="[PAD]", mask_token="[MASK]",
                                          model_input_names=["input_ids", "attention_mask"])
    if name == "gpt2-nopad":  # as GPT-2 ships: <|endoftext|> is bos/eos/unk, no pad token
        vocab, merges = bytelevel_bpe(lines, ["<|endoftext|>"])
        return tf.GPT2Tokenizer(vocab=vocab, merges=merges)
    if name == "xlm-roberta":  # <s>=0 <pad>=1 </s>=2 <unk>=3 ... <mask> last
        pieces = unigram_pieces(lines, ["<s>", "<pad>", "</s>", "<unk>"], "<unk>")
        return tf.XLMRobertaTokenizer(vocab=pieces + [("<mask>", 0.0)])
    if name == "deberta-v2":  # [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3 ... [MASK] last (as deberta-v3)
        pieces = unigram_pieces(lines, ["[PAD]", "[CLS]", "[SEP]", "[UNK]"], "[UNK]")
        return tf.DebertaV2Tokenizer(vocab=pieces + [("[MASK]", 0.0)], unk_id=3)
    if name == "t5":  # <pad>=0 </s>=1 <unk>=2, no mask, no extra ids
        pieces = unigram_pieces(lines, ["<pad>", "</s>", "<unk>"], "<unk>")
        return tf.T5Tokenizer(vocab=pieces, extra_ids=0)
    raise KeyError(name)


# -- models --------------------------------------------------------------------------------------------------
def make_model(name: str, tokenizer, dropout: float = 0.1):
    import transformers as tf

    vocab, pad = len(tokenizer), tokenizer.pad_token_id
    common = dict(vocab_size=vocab, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                  intermediate_size=FFN, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    offsets = dict(pad_token_id=pad, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    if name == "bert":
        return tf.BertModel(tf.BertConfig(**common, max_position_embeddings=USABLE, pad_token_id=pad))
    if name == "roberta":
        return tf.RobertaModel(tf.RobertaConfig(**common, max_position_embeddings=USABLE + 2, type_vocab_size=1,
                                                **offsets))
    if name == "xlm-roberta":
        return tf.XLMRobertaModel(tf.XLMRobertaConfig(**common, max_position_embeddings=USABLE + 2,
                                                      type_vocab_size=1, **offsets))
    if name == "mpnet":
        # 32 relative buckets: MPNet's compute_position_bias assumes 32 whatever the config says
        return tf.MPNetModel(tf.MPNetConfig(**common, max_position_embeddings=USABLE + 2,
                                            relative_attention_num_buckets=32, **offsets))
    if name == "electra":
        return tf.ElectraModel(tf.ElectraConfig(**common, embedding_size=HIDDEN, max_position_embeddings=USABLE,
                                                pad_token_id=pad))
    if name == "distilbert":
        return tf.DistilBertModel(tf.DistilBertConfig(
            vocab_size=vocab, dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=FFN, dropout=dropout,
            attention_dropout=dropout, max_position_embeddings=USABLE, pad_token_id=pad))
    if name == "deberta-v2":  # v3 style
        return tf.DebertaV2Model(tf.DebertaV2Config(
            **common, max_position_embeddings=USABLE, relative_attention=True, position_biased_input=False,
            type_vocab_size=0, pos_att_type=["p2c", "c2p"], max_relative_positions=-1, position_buckets=32,
            norm_rel_ebd="layer_norm", share_att_key=True, pad_token_id=pad))
    if name == "modernbert":
        return tf.ModernBertModel(tf.ModernBertConfig(
            vocab_size=vocab, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
            num_attention_heads=HEADS, max_position_embeddings=USABLE, local_attention=16,
            attention_dropout=dropout, embedding_dropout=dropout, mlp_dropout=dropout,
            pad_token_id=pad, bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
            cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id))
    if name == "t5":
        return tf.T5EncoderModel(tf.T5Config(
            vocab_size=vocab, d_model=HIDDEN, d_kv=HIDDEN // HEADS, d_ff=FFN, num_layers=LAYERS, num_heads=HEADS,
            relative_attention_num_buckets=8, relative_attention_max_distance=32, dropout_rate=dropout,
            pad_token_id=pad, eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=pad))
    if name == "gpt2-nopad":
        return tf.GPT2Model(tf.GPT2Config(vocab_size=vocab, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS,
                                          n_inner=FFN, n_positions=USABLE, resid_pdrop=dropout, embd_pdrop=dropout,
                                          attn_pdrop=dropout, bos_token_id=tokenizer.bos_token_id,
                                          eos_token_id=tokenizer.eos_token_id))
    raise KeyError(name)


def make_decoder(name: str, tokenizer, dropout: float = 0.1):
    """A decoder family's tiny *ForCausalLM (GPT-2: the base GPT2Model, as the no-pad fixture)."""
    import transformers as tf

    if name == "gpt2":
        return make_model("gpt2-nopad", tokenizer, dropout)
    ids = dict(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    shape = dict(hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                 num_key_value_heads=HEADS // 2, max_position_embeddings=4 * USABLE, attention_dropout=dropout)
    head = dict(head_dim=HIDDEN // HEADS)
    made = {
        "llama": lambda: tf.LlamaForCausalLM(tf.LlamaConfig(**ids, **shape)),
        "mistral": lambda: tf.MistralForCausalLM(tf.MistralConfig(**ids, **shape, sliding_window=None)),
        "phi3": lambda: tf.Phi3ForCausalLM(tf.Phi3Config(**ids, **shape, resid_pdrop=dropout, embd_pdrop=dropout)),
        "qwen2": lambda: tf.Qwen2ForCausalLM(tf.Qwen2Config(**ids, **shape, tie_word_embeddings=True)),
        "qwen3": lambda: tf.Qwen3ForCausalLM(tf.Qwen3Config(**ids, **shape, **head, tie_word_embeddings=True)),
        "gemma": lambda: tf.GemmaForCausalLM(tf.GemmaConfig(**ids, **shape, **head)),
        "gemma2": lambda: tf.Gemma2ForCausalLM(tf.Gemma2Config(**ids, **shape, **head, query_pre_attn_scalar=8,
                                                               sliding_window=2 * USABLE)),
        # Gemma 3 text: a sliding window shorter than a long sentence on its first layer, full attention on the other
        "gemma3": lambda: tf.Gemma3ForCausalLM(tf.Gemma3TextConfig(
            **ids, **shape, **head, query_pre_attn_scalar=8, sliding_window=8,
            layer_types=["sliding_attention", "full_attention"])),
    }
    return made[name]()


def build_families(dest: Path, data: Path, names=tuple(ALL), dropout: float = 0.1, seed: int = 0,
                   tokenizers: dict | None = None) -> dict[str, Path]:
    """Save each named family's tiny model and tokenizer under ``dest/NAME``; return name -> directory.
    ``tokenizers`` (name -> tokenizer) is filled in and reused, so a second set (e.g. with dropout off)
    costs no tokenizer training."""
    import torch

    lines = wiki_lines(data, TRAIN_LINES)
    tokenizers = {} if tokenizers is None else tokenizers
    out = {}
    for i, name in enumerate(names):
        if name not in tokenizers:
            tokenizers[name] = make_tokenizer(name, lines)
        torch.manual_seed(seed + i)
        make = make_decoder if name in DECODERS else make_model
        model = make(name, tokenizers[name], dropout=dropout)
        path = dest / name
        model.save_pretrained(path)
        tokenizers[name].save_pretrained(path)
        out[name] = path
    return out


def build_sentence_t5(t5_dir: Path, dest: Path, seed: int = 0) -> Path:
    """A Sentence-T5-style sentence-transformers directory on the tiny T5 encoder: Transformer -> mean Pooling ->
    bias-free linear Dense (hidden -> hidden, as Sentence-T5's projection) -> Normalize."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer

    torch.manual_seed(seed)
    transformer = Transformer(str(t5_dir), max_seq_length=USABLE)
    modules = [transformer, Pooling(HIDDEN, pooling_mode="mean"),
               Dense(HIDDEN, HIDDEN, bias=False, activation_function=torch.nn.Identity()), Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(dest))
    return dest
