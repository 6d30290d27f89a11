"""The fallback for a model type no family module declares: right for the poolers that need no sentence token
(``avg``, ``avg_first_last``, ``avg_top2``, its default), which is all it allows. Positions: the config's
``max_position_embeddings`` / ``n_positions``; FLOP shape from the usual config names (BERT's, T5's, GPT-2's,
DistilBERT's); not packable; the pad-token fallback is the eos token (the attention mask hides it)."""

from simcse_lab.modeling.families.base import LLM2VEC_LORA_TARGETS, Family, shape_from

FAMILY = Family("generic", (), summary_token=None,
                flop_shape=shape_from(("hidden_size", "d_model", "n_embd", "dim"),
                                      ("intermediate_size", "d_ff", "n_inner", "hidden_dim", "ffn_dim"),
                                      ("num_hidden_layers", "num_layers", "n_layer", "n_layers")),
                pad_fallback=("eos_token", "unk_token"),
                lora_targets=LLM2VEC_LORA_TARGETS + ("c_attn", "c_proj", "c_fc"),  # and GPT-2's names
                note="no backbone family declares model type {model_type!r}: using the generic rule (no sentence "
                     "token: poolers {poolers}; no packing); add a module to simcse_lab/modeling/families/ for it")
