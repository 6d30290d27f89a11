"""RoBERTa and its relatives (XLM-R, CamemBERT, ...): <s> at position 0; positions start at
``padding_idx + 1`` (the config's pad_token_id), so a table of N rows takes N - padding_idx - 1 tokens
(roberta-base: 514 rows, 512 tokens). Packing writes ``padding_idx + 1 + arange(n)`` per sentence, the ids
the model builds itself from ``input_ids``."""

from simcse_lab.modeling.families.base import BERT_LORA_TARGETS, Family, offset_positions


def _padding_idx(config) -> int:
    return config.pad_token_id if config.pad_token_id is not None else 1


FAMILY = Family("roberta", ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm"),
                summary_token=0, usable_positions=offset_positions(_padding_idx),
                packing_position=lambda config: _padding_idx(config) + 1, lora_targets=BERT_LORA_TARGETS)
