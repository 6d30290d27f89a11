"""The options an objective owns: name, type, default, help and validation, declared once per objective.

An objective class names its options (``options = OBJECTIVE_OPTIONS["esimcse"]``; tests/training/test_objective_options.py
checks every registered class against this table); the training config (:mod:`simcse_lab.training.config`) turns
each into a field, so a ``--config`` file and a flag (``train --help`` lists them with their objective) set it, and
:func:`check_options` (with the config's numeric ranges) validates it before torch is imported. The declarations
live here, not in the objective modules, because those import torch and a config is checked without it.

An option of another objective than the one named is accepted and checked, and has no effect (as before).
"""

from __future__ import annotations

from dataclasses import dataclass



@dataclass(frozen=True)
class Option:
    """One option of an objective: a config field ``name`` of type ``kind`` ("int", "float", "str", "bool")."""

    name: str
    kind: str
    default: object
    help: str
    low: float | None = None     # a numeric option's range (None: unbounded), as the config's NUMBER_RANGES
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str = ""               # appended to the range in the message, e.g. " (0: off)"

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float")

    @property
    def range(self) -> tuple:
        """(low, high, low excluded, high excluded, note): the config's NUMBER_RANGES entry."""
        return self.low, self.high, self.low_open, self.high_open, self.note


def _check_template(option: Option, value: str) -> None:
    if value:
        from simcse_lab.modeling.template import check_template_text

        check_template_text(value, f"--{option.name.replace('_', '-')}")


def _check_prototypes(option: Option, value: str) -> None:
    if value:
        from simcse_lab.training.prototypes import read_prototypes

        read_prototypes(value)


OBJECTIVE_OPTIONS: dict[str, tuple[Option, ...]] = {
    "sup": (
        Option("hard_negative_weight", "float", 0.0, "sup: log-weight added to each anchor's own hard-negative "
               "logit (SimCSE; default 0)", note=" (a log-weight, any sign)"),
    ),
    "esimcse": (
        Option("dup_rate", "float", 0.32, "esimcse: the word-repetition rate (default 0.32)", 0, 1),
        Option("fixed_repetition", "bool", False, "esimcse: draw the word repetition once per sentence (official "
               "code) instead of every step"),
        Option("momentum", "float", 0.995, "esimcse: the momentum encoder's decay (default 0.995)", 0, 1,
               high_open=True),
        Option("queue_ratio", "float", 2.5, "esimcse: the momentum queue's size as a multiple of the batch size "
               "(default 2.5)", 0),
        Option("momentum_half_life", "float", 0.0, "esimcse: the momentum from a half-life in steps, "
               "m = 0.5 ** (1 / STEPS), tying it to the run's length (0.995 is a half-life of 138 steps); not with "
               "--momentum", 0, note=" (0: off, --momentum applies)"),
    ),
    "promptbert": (
        Option("template", "str", "", "promptbert: the first view's template, also the saved model's: "
               "'This sentence of \"{sentence}\" means [MASK] .' with the tokenizer's mask token or {mask} "
               "(default: PromptBERT's, for a BERT-like or a RoBERTa-like tokenizer by its mask token)"),
        Option("second_template", "str", "", "promptbert: the second view's template (default: PromptBERT's)"),
        Option("template_denoise", "bool", True, "promptbert: subtract the template's own [MASK] state for the "
               "sentence's length, in training and in the saved model (PromptBERT's template denoising; default "
               "on)"),
    ),
    "conpvp": (
        Option("prompt_length", "int", 10, "conpvp: learned vectors of the anchor's continuous prompt "
               "'{sentence} [PAD]*N [MASK] .' (default 10)", 1),
        Option("prototype_templates", "str", "", "conpvp: a file of 'positive<TAB>negative' template pairs, one a "
               "line, each with {sentence} and the mask token once (default: the paper's eight pairs)"),
    ),
}
# the pooler an objective reads its vectors with (its default; another one is refused)
OBJECTIVE_POOLERS = {"promptbert": "mask", "conpvp": "mask"}
VALIDATORS = {"template": _check_template, "second_template": _check_template, "prototype_templates": _check_prototypes}


def all_options() -> list[Option]:
    """Every declared option, each name once (two objectives may share one only with the same declaration)."""
    seen: dict[str, Option] = {}
    for options in OBJECTIVE_OPTIONS.values():
        for option in options:
            if seen.setdefault(option.name, option) != option:
                raise ValueError(f"option {option.name!r} is declared twice, differently")
    return list(seen.values())


def check_options(values) -> None:
    """Every declared option's own check on ``values`` (a TrainConfig): one line for a bad value. (Numeric ranges are
    checked with the config's other numbers: NUMBER_RANGES holds each option's :attr:`Option.range`.)"""
    for option in all_options():
        check = VALIDATORS.get(option.name)
        if check is not None:
            check(option, getattr(values, option.name))


def objective_options(objective: str, values) -> dict:
    """{name: value} of the options ``objective`` owns, read off ``values`` (a TrainConfig)."""
    return {option.name: getattr(values, option.name) for option in OBJECTIVE_OPTIONS.get(objective, ())}


def check_declared(name: str, options: tuple[Option, ...]) -> None:
    """A registered objective's ``options`` must be the ones this table lists for it (the config's fields are made
    from the table, before any objective registers); else a ValueError for the objective's author."""
    if tuple(options) != OBJECTIVE_OPTIONS.get(name, ()):
        raise ValueError(f"objective {name!r} declares options {[o.name for o in options]}, and "
                         f"simcse_lab.training.objective_options.OBJECTIVE_OPTIONS lists "
                         f"{[o.name for o in OBJECTIVE_OPTIONS.get(name, ())]} for it: declare them there")
