"""Every post-hoc map (:class:`~simcse_lab.analysis.post_hoc.PostHocMap`), in the order the outputs list them:
``eval --whiten/--flow``, ``analyze --whiten/--flow`` and the comparison table's rows."""

from __future__ import annotations

from simcse_lab.analysis.flow import FLOW
from simcse_lab.analysis.whitening import WHITENING

MAPS = (WHITENING, FLOW)
