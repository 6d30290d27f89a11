"""DistilBERT: [CLS] at 0 and absolute positions, but its own config names (dim, hidden_dim, n_layers) and no
``position_ids`` argument, so packing cannot restart positions per sentence (not packable)."""

from simcse_lab.modeling.families.base import Family, shape_from

FAMILY = Family("distilbert", ("distilbert",), summary_token=0,
                flop_shape=shape_from(("dim",), ("hidden_dim",), ("n_layers",)),
                lora_targets=("q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"))
