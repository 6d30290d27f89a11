"""BERT: [CLS] at position 0, absolute positions from 0 (packable), a trained pooler layer, MLM."""

from simcse_lab.modeling.families.base import BERT_LORA_TARGETS, Family

FAMILY = Family("bert", ("bert",), summary_token=0, packing_position=lambda config: 0,
                lora_targets=BERT_LORA_TARGETS)
