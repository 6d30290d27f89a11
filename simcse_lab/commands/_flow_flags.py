"""The post-hoc maps' own settings as flags (``--whiten-k``; BERT-flow's ``--flow-levels`` ...
``--flow-max-steps``), the same for ``analyze`` and ``eval``; each map declares its flags and reads its
settings back (:mod:`simcse_lab.analysis.post_hoc`)."""

from __future__ import annotations

import argparse

from simcse_lab.analysis.maps import MAPS


def add_map_settings(p: argparse.ArgumentParser) -> None:
    for method in MAPS:
        method.add_flags(p)


def chosen_settings(args, methods) -> dict:
    """{map name: its checked settings} of the chosen maps: a bad setting is one line, before any corpus is read."""
    return {m.name: m.settings(args) for m in methods}
