"""Gemma 1-3 (text): ``<bos>`` first, ``<eos>`` appended here, a ``<pad>`` token of its own. transformers has a
config flag for bidirectional attention (``use_bidirectional_attention``, EmbeddingGemma's): with it and
``is_causal: false`` in config.json, plain ``AutoModel`` / sentence-transformers run a saved model
bidirectionally exactly as simcse-lab does, so a bidirectional Gemma is saved as a sentence-transformers
directory (:attr:`~.base.Family.bidirectional_config`)."""

from simcse_lab.modeling.families.base import decoder

FAMILY = decoder("gemma", ("gemma", "gemma2", "gemma3_text"),
                 bidirectional_config={"use_bidirectional_attention": True, "is_causal": False})
