"""BERT-flow's hyper-parameters as flags (``--flow-levels`` ... ``--flow-max-steps``), the same for
``analyze --flow`` and ``eval --flow``; defaults are the phase-1 module's (:mod:`simcse_lab.analysis.flow`)."""

from __future__ import annotations

import argparse

from simcse_lab.analysis import flow

# (fit_flow keyword, type, default)
FLOW_SETTINGS = (("levels", int, flow.LEVELS), ("depth", int, flow.DEPTH), ("hidden", int, flow.HIDDEN),
                 ("coupling", str, "affine"), ("lr", float, flow.LR), ("batch_size", int, flow.BATCH_SIZE),
                 ("epochs", float, flow.EPOCHS), ("max_steps", int, flow.MAX_STEPS))


def add_flow_settings(p: argparse.ArgumentParser) -> None:
    for name, kind, default in FLOW_SETTINGS:
        extra = {"choices": flow.COUPLINGS} if name == "coupling" else {}
        p.add_argument("--flow-" + name.replace("_", "-"), type=kind, default=default,
                       help=f"flow {name.replace('_', ' ')} (default {default})", **extra)


def flow_settings(args) -> dict:
    """fit_flow's keyword arguments from the parsed --flow-* flags."""
    return {name: getattr(args, f"flow_{name}") for name, _, _ in FLOW_SETTINGS}
