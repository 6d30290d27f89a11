"""ModernBERT: [CLS] at 0; rotary positions up to ``max_position_embeddings``; a GLU feed-forward (counted as
1.5 x intermediate_size); not packable here (alternating local attention windows, unverified)."""

from simcse_lab.modeling.families.base import Family, shape_from

FAMILY = Family("modernbert", ("modernbert",), summary_token=0,
                flop_shape=shape_from(("hidden_size",), ("intermediate_size",), ("num_hidden_layers",),
                                      gated=lambda config: True),
                lora_targets=("Wqkv", "Wo", "Wi"))
