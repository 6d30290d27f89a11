"""What a backbone family declares (:class:`Family`) and the shared rules its modules build it from.

A family is one record, read where the code used to assume BERT: how the encoder loads, where the sentence
token is (or that there is none), how padding works when the tokenizer has no pad token, which positions the
model can use (:meth:`Family.usable_max_length`), whether packed rows give exactly the padded batch's vectors
(:attr:`Family.packing_position`), whether the family has an MLM objective, and its matmul shape for the FLOP
count (:meth:`Family.flop_shape`). A decoder LLM (:func:`decoder`, issue 21) is causal as shipped and has no
sentence token; its tokenizer is made to append EOS (:attr:`Family.append_eos`), it trains bidirectionally by
default (:mod:`simcse_lab.modeling.attention`), and where transformers has a config flag that runs it
bidirectionally on load (Gemma) the family names it (:attr:`Family.bidirectional_config`). Nothing here imports torch or transformers: a config is checked before
anything loads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from simcse_lab.modeling.pooling import POOLERS, TEMPLATE_POOLERS

SUMMARY_POOLERS = ("cls", "cls_before_pooler")  # the poolers that read the sentence token
DEFAULT_MAX_LENGTH = 512  # a family with no position table (relative positions) and no length of its own
# the modules a LoRA adapter goes on by default (--lora-targets): LLM2Vec's attention and MLP projections of the
# Llama-style decoders (Llama, Mistral, Qwen2, Gemma, Phi-3 split), and BERT's attention and feed-forward layers
LLM2VEC_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
BERT_LORA_TARGETS = ("query", "key", "value", "dense")


def config_value(config, *names, default=None):
    """The first of ``names`` that ``config`` has and is not None, else ``default``."""
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def absolute_positions(config) -> int | None:
    """A position table indexed from 0: as many usable positions as it has rows."""
    return config_value(config, "max_position_embeddings", "n_positions")


def offset_positions(padding_idx: Callable[[object], int]) -> Callable[[object], int | None]:
    """RoBERTa's rule: positions start at ``padding_idx + 1``, so the table has ``padding_idx + 1`` rows fewer
    usable ones (roberta-base: 514 rows, 512 positions)."""
    def usable(config) -> int | None:
        rows = config_value(config, "max_position_embeddings")
        return None if rows is None else rows - padding_idx(config) - 1
    return usable


def no_position_table(config) -> None:
    """Relative positions (T5): no table to run past."""
    return None


def shape_from(hidden: tuple[str, ...], ffn: tuple[str, ...], layers: tuple[str, ...], gated: Callable = None):
    """A ``flop_shape`` reading (hidden, feed-forward, layers) from the family's own config names; a missing
    feed-forward size is GPT-2's default, 4 * hidden. ``gated(config)``: a GLU feed-forward (three matrices of
    hidden x ffn instead of two) is counted as 1.5 x ffn."""
    def shape(config) -> tuple[int, int, int] | None:
        h, n = config_value(config, *hidden), config_value(config, *layers)
        if h is None or n is None:
            return None
        f = config_value(config, *ffn, default=4 * h)
        if gated is not None and gated(config):
            f = f * 3 // 2
        return int(h), int(f), int(n)
    return shape


@dataclass(frozen=True)
class MaskedTokens:
    """A family's masked-token objective (``--do-mlm``; ``--objective mntp``): which position's output predicts a
    masked token, which head predicts it, and the mask token where the tokenizer has none."""

    name: str
    shift: int                  # token i is predicted from position i - shift (0: BERT's MLM; 1: next-token, MNTP)
    own_head: bool              # the model's own LM head (its ForCausalLM's); False: SimCSE's fresh MLM head
    mask_fallback: str | None   # the mask token where the tokenizer has none (None: refused without one)


MLM = MaskedTokens("mlm", shift=0, own_head=False, mask_fallback=None)
# LLM2Vec's masked next-token prediction: a decoder predicts token i from position i - 1 with its own LM head; a
# tokenizer without a mask token masks with "_" (LLM2Vec's mask_token_type "blank")
MNTP = MaskedTokens("mntp", shift=1, own_head=True, mask_fallback="_")


BERT_SHAPE = shape_from(("hidden_size",), ("intermediate_size",), ("num_hidden_layers",))
GLU_SHAPE = shape_from(("hidden_size",), ("intermediate_size",), ("num_hidden_layers",), gated=lambda config: True)


@dataclass(frozen=True)
class Family:
    """One backbone family (see the module docstring); each ``modeling/families/<name>.py`` declares ``FAMILY``."""

    name: str
    model_types: tuple[str, ...]              # transformers' config.model_type values it serves
    summary_token: int | None                 # the sentence token's position ([CLS], <s>); None: there is none
    usable_positions: Callable[[object], int | None] = absolute_positions  # tokens the model can take, or None
    packing_position: Callable[[object], int] | None = None  # first position id packing writes; None: not packable
    flop_shape: Callable[[object], tuple[int, int, int] | None] = BERT_SHAPE  # (hidden, ffn, layers) or None
    encoder_classes: dict = field(default_factory=dict)  # model_type -> transformers class of the encoder alone
    pad_fallback: tuple[str, ...] = ("eos_token", "sep_token", "unk_token")  # when the tokenizer has no pad token
    mlm: bool = True                          # an MLM objective exists for it (--do-mlm; a mask token is needed too)
    masked_lm: MaskedTokens = MLM             # which one: BERT's MLM, or MNTP for a decoder
    fp16_safe: bool = True                    # False: activations overflow fp16 (T5), training takes bf16/fp32
    note: str = ""                            # said once when the family is used (the generic fallback)
    causal: bool = False                      # a decoder LLM: causal attention as shipped (--bidirectional applies)
    append_eos: bool = False                  # EOS appended to every input where the tokenizer does not add it
    bidirectional_config: dict = field(default_factory=dict)  # config values that make transformers itself run it
    #                                           bidirectionally on load ({}: none, a saved model cannot say so)
    refused_poolers: dict = field(default_factory=dict)  # pooler -> why the family refuses it
    lora_targets: tuple[str, ...] = LLM2VEC_LORA_TARGETS  # module names a LoRA adapter goes on (--lora-targets)

    @property
    def natural_pooler(self) -> str:
        """The default pooler: the sentence token's vector where the family has one, else the mean of the tokens."""
        return "cls" if self.summary_token is not None else "avg"

    @property
    def fitting_poolers(self) -> tuple[str, ...]:
        """The poolers that read this family's plain sentences (``mask`` reads a template's token: not listed)."""
        return tuple(p for p in POOLERS if (self.summary_token is not None or p not in SUMMARY_POOLERS)
                     and p not in self.refused_poolers and p not in TEMPLATE_POOLERS)

    def usable_max_length(self, config) -> int | None:
        """How many tokens a sequence may have (None: no position table limits it)."""
        return self.usable_positions(config)

    def max_tokens(self, config, default: int = DEFAULT_MAX_LENGTH) -> int:
        """The longest input to encode: the usable length, or ``default`` where nothing limits it."""
        usable = self.usable_max_length(config)
        return default if usable is None else int(usable)

    def model_class(self, config) -> str | None:
        """The transformers class that loads the encoder alone (T5EncoderModel), or None for AutoModel."""
        return self.encoder_classes.get(getattr(config, "model_type", None))


DECODER_REFUSED = {"avg_first_last": "its first layer is a decoder LLM's near-embedding layer, not a sentence "
                                    "representation (LLM2Vec pools the last layer)"}


def decoder(name: str, model_types: tuple[str, ...], **kwargs) -> Family:
    """A decoder LLM family: no sentence token (position 0 is the first word, or BOS, which sees nothing of the
    sentence in a causal model), EOS appended, padding with EOS where there is no pad token, MNTP as its masked-token
    objective (its own LM head, token i from position i - 1, "_" as the mask token where the tokenizer has none),
    ``avg_first_last`` refused; a GLU feed-forward unless ``flop_shape`` says otherwise."""
    settings = dict(summary_token=None, causal=True, append_eos=True, mlm=True, masked_lm=MNTP, flop_shape=GLU_SHAPE,
                    pad_fallback=("eos_token", "unk_token"), refused_poolers=DECODER_REFUSED)
    return Family(name, model_types, **{**settings, **kwargs})
