"""MPNet: <s> at position 0; RoBERTa's offset positions with ``padding_idx`` fixed at 1 by the model code
(whatever the config says), so 514 rows take 512 tokens; relative attention buckets come from differences
of positions, which packing keeps within a sentence (packable with ``2 + arange(n)``)."""

from simcse_lab.modeling.families.base import Family, offset_positions

MPNET_PADDING_IDX = 1  # transformers' MPNetEmbeddings.padding_idx

FAMILY = Family("mpnet", ("mpnet",), summary_token=0,
                usable_positions=offset_positions(lambda config: MPNET_PADDING_IDX),
                packing_position=lambda config: MPNET_PADDING_IDX + 1,
                lora_targets=("q", "k", "v", "o", "dense"))
