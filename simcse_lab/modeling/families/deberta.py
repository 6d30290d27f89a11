"""DeBERTa-v2/v3: [CLS] at 0; relative attention. v3 (``position_biased_input=False``) has no absolute position
table, so nothing limits the length (the encoder then truncates at 512, the length it was trained at); with
``position_biased_input`` the table's rows are the limit. Not packable (its relative positions run over the
whole row)."""

from simcse_lab.modeling.families.base import Family, absolute_positions


def _usable(config) -> int | None:
    return absolute_positions(config) if getattr(config, "position_biased_input", True) else None


FAMILY = Family("deberta", ("deberta-v2", "deberta"), summary_token=0, usable_positions=_usable)
