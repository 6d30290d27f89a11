"""T5 / mT5 / UMT5 encoders (Sentence-T5): the encoder alone (``T5EncoderModel``: ``AutoModel`` would build the
encoder-decoder, whose forward needs decoder inputs); no sentence token (position 0 is the first word piece),
so mean pooling is the natural one and ``cls`` is refused; relative positions (no table); config names
d_model / d_ff / num_layers, a gated feed-forward counted as 1.5 x d_ff; no MLM (T5 pre-trains with span
corruption); fp16 overflows its activations, so training takes bf16 or fp32."""

from simcse_lab.modeling.families.base import Family, no_position_table, shape_from

FAMILY = Family("t5", ("t5", "mt5", "umt5"), summary_token=None, usable_positions=no_position_table,
                flop_shape=shape_from(("d_model",), ("d_ff",), ("num_layers",),
                                      gated=lambda config: getattr(config, "is_gated_act", False)),
                encoder_classes={"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"},
                pad_fallback=("eos_token", "unk_token"), mlm=False, fp16_safe=False,
                lora_targets=("q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"))
