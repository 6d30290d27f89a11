"""ELECTRA (discriminator): BERT's layout without a pooler layer; [CLS] at 0, absolute positions from 0
(packable: the same embeddings and 4-D attention masks as BERT)."""

from simcse_lab.modeling.families.base import BERT_LORA_TARGETS, Family

FAMILY = Family("electra", ("electra",), summary_token=0, packing_position=lambda config: 0,
                lora_targets=BERT_LORA_TARGETS)
