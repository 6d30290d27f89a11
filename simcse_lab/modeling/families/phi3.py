"""Phi-3: Llama's tokenizer rules (``<s>`` first, no EOS appended by the tokenizer); a fused gate/up projection
(a GLU feed-forward); no bidirectional config flag."""

from simcse_lab.modeling.families.base import decoder

FAMILY = decoder("phi3", ("phi3",), lora_targets=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"))  # fused names
