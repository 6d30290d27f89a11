"""Objectives own their options (issue 22): declared once (training/objective_options.py), named on the class,
and from there a config field with its default, a flag with its help, a YAML key, and one check."""

from __future__ import annotations

import dataclasses

import pytest

from simcse_lab.errors import UserError
from simcse_lab.training.config import FIELDS, NUMBER_RANGES, TrainConfig, load_config
from simcse_lab.training.objective_options import OBJECTIVE_OPTIONS, Option, all_options
from simcse_lab.training.objectives import OBJECTIVES
from simcse_lab.training.objectives.base import Objective, register


def test_each_objective_names_its_declared_options():
    for name, cls in OBJECTIVES.items():
        assert tuple(cls.options) == OBJECTIVE_OPTIONS.get(name, ()), name
    assert [o.name for o in OBJECTIVES["esimcse"].options] == ["dup_rate", "fixed_repetition", "momentum",
                                                               "queue_ratio", "momentum_half_life"]
    assert [o.name for o in OBJECTIVES["sup"].options] == ["hard_negative_weight"]


def test_options_are_config_fields_with_their_defaults_and_ranges():
    defaults = TrainConfig()
    for option in all_options():
        assert FIELDS[option.name].type == option.kind
        assert getattr(defaults, option.name) == option.default
        if option.numeric:
            assert NUMBER_RANGES[option.name] == option.range
    # the values the ESimCSE and sup options had as plain config fields, unchanged
    assert (defaults.dup_rate, defaults.fixed_repetition, defaults.momentum, defaults.queue_ratio,
            defaults.hard_negative_weight) == (0.32, False, 0.995, 2.5, 0.0)
    assert dataclasses.asdict(TrainConfig(queue_ratio=1.0))["queue_ratio"] == 1.0


def test_yaml_and_flags_reach_the_options(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("objective: promptbert\ntemplate: 'A \"{sentence}\" is [MASK] .'\ntemplate_denoise: false\n")
    cfg = load_config(path, {"dup_rate": 0.5})
    assert (cfg.template, cfg.template_denoise, cfg.dup_rate, cfg.pooler) == ('A "{sentence}" is [MASK] .', False,
                                                                              0.5, "mask")
    with pytest.raises(UserError, match="--template 'no slot \\[MASK\\]': no \\{sentence\\} slot"):
        load_config(None, {"objective": "promptbert", "template": "no slot [MASK]"})


def test_train_help_lists_each_option_with_its_objective(capsys):
    from simcse_lab.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in all_options():
        assert "--" + option.name.replace("_", "-") in text
        assert " ".join(option.help.split())[:40] in text


def test_a_plugin_cannot_declare_options_the_config_does_not_carry():
    class Extra(Objective):
        options = (Option("strength", "float", 1.0, "made up"),)

    with pytest.raises(ValueError, match="declare them there"):
        register("extra-options")(Extra)
    assert "extra-options" not in OBJECTIVES
