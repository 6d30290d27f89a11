"""Mistral / Mixtral: Llama's layout and tokenizer rules (BOS first, no EOS, no pad token); a sliding attention
window where the config sets one, which bidirectional attention keeps on both sides."""

from simcse_lab.modeling.families.base import decoder

FAMILY = decoder("mistral", ("mistral", "mixtral"))
