"""GPT-2: the small decoder (test case of the decoder rules): ``<|endoftext|>`` is BOS, EOS and unk, no pad token
(EOS pads), no BOS added, EOS appended here; an absolute position table (``n_positions``); config names n_embd /
n_inner (None: 4 x n_embd) / n_layer, a plain (not gated) feed-forward."""

from simcse_lab.modeling.families.base import decoder, shape_from

FAMILY = decoder("gpt2", ("gpt2",), flop_shape=shape_from(("n_embd",), ("n_inner",), ("n_layer",)),
                 lora_targets=("c_attn", "c_proj", "c_fc"))  # its fused attention and MLP projections
