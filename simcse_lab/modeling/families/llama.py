"""Llama (1-3): a decoder LLM (:func:`~.base.decoder`): its tokenizer puts BOS (``<s>``, ``<|begin_of_text|>``)
first and appends no EOS (appended here), ships no pad token (EOS pads); rotary positions up to
``max_position_embeddings``; no config flag for bidirectional attention."""

from simcse_lab.modeling.families.base import decoder

FAMILY = decoder("llama", ("llama",))
