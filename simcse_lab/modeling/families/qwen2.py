"""Qwen2 / Qwen2.5 / Qwen3: byte-level BPE with no BOS and ``<|endoftext|>`` as EOS (and as pad token, so pad
and EOS share an id: only the attention mask tells them apart); EOS appended here; no bidirectional config flag."""

from simcse_lab.modeling.families.base import decoder

FAMILY = decoder("qwen2", ("qwen2", "qwen3"))
