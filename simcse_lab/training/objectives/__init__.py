"""Objectives, one module each on one base class with a name -> class registry (base.py): unsup, sup,
esimcse, ESimCSE's word repetition and momentum queue, promptbert (templates, [MASK] pooling, denoising),
conpvp (a continuous prompt against positive and negated prototypes), mntp (a decoder's masked next-token
prediction alone), and the cosine regulariser any of them can add (``--cos-reg``). Importing the package registers them.
Extension point: a new objective is one module here, a subclass of ``base.Objective`` under ``@register(NAME)``,
its options declared in ``training/objective_options.py`` (tests/training/test_objective_plugin.py adds one from outside).
Tests: tests/training/test_objectives.py, tests/training/test_objective_plugin.py, tests/training/test_momentum.py, tests/training/test_repetition.py,
tests/training/test_cos_reg.py, tests/training/test_mntp.py, tests/training/test_conpvp.py."""

from __future__ import annotations

from simcse_lab.training.mlm import MaskedLMAuxiliary
from simcse_lab.training.objectives import conpvp, esimcse, mntp, promptbert, sup, unsup  # noqa: F401  (each registers itself)
from simcse_lab.training.objectives.base import OBJECTIVES, Objective


def build_objective(cfg, tokenizer, embedder) -> Objective:
    """The registered objective ``cfg.objective`` set up from ``cfg`` (the name was checked by TrainConfig)."""
    objective = OBJECTIVES[cfg.objective].from_config(cfg, tokenizer, embedder)
    objective.max_positions = embedder.family.max_tokens(embedder.backbone.config)
    if cfg.instruction:
        objective.add_instruction(tokenizer, cfg.instruction, cfg.max_seq_len)
    if cfg.do_mlm:
        objective.add_mlm(tokenizer, cfg.mlm_weight, MaskedLMAuxiliary.for_run(cfg, tokenizer, embedder))
    if cfg.cos_reg > 0:
        objective.add_cos_reg(cfg.cos_reg)
    return objective
