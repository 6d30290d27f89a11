"""DeBERTa-v2/v3: [CLS] at 0; relative attention (v3: ``position_biased_input=False``, no absolute table). The
usable length is ``max_position_embeddings``, the length it was built for (512 for deberta-v3-base) and the one
sentence-transformers caps its tokenizer at on reload, so an export encodes as the encoder does. Not packable
(its relative positions run over the whole row)."""

from simcse_lab.modeling.families.base import Family

FAMILY = Family("deberta", ("deberta-v2", "deberta"), summary_token=0,
                lora_targets=("query_proj", "key_proj", "value_proj", "dense"))
