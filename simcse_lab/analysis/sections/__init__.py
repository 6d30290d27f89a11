"""The geometry report's sections, one module each (a :class:`~.base.Section`): sentence geometry, layers,
token degeneration, post-hoc maps (and the comparison table), token dynamics, trajectory. Each owns its flags,
its measurement, its chapter of report.md, its figures and its printed summary lines; ``analyze`` only wires
them, in place order. A new measure is one module here, listed in :func:`build`.
Tests: tests/analysis/test_report_sections.py, tests/analysis/test_analyze.py, tests/evaluation/test_tables.py, tests/training/test_trajectory.py."""

from __future__ import annotations

from simcse_lab.analysis.sections.base import Section
from simcse_lab.analysis.sections.layers import Layers
from simcse_lab.analysis.sections.post_hoc_maps import PostHocMaps
from simcse_lab.analysis.sections.geometry import SentenceGeometry
from simcse_lab.analysis.sections.degeneration import TokenDegeneration
from simcse_lab.analysis.sections.token_dynamics import TokenDynamics
from simcse_lab.analysis.sections.trajectory import Trajectory


def build(reader=None) -> list[Section]:
    """Fresh sections in place order; ``reader`` reads a training run's checkpoints (see :class:`Trajectory`)."""
    sections = [SentenceGeometry(), Layers(), TokenDegeneration(), PostHocMaps(), TokenDynamics(),
                Trajectory(reader)]
    return sorted(sections, key=lambda s: s.place)
