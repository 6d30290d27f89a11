"""Experiment tracking the ecosystem's way: ``--report-to`` names accelerate trackers (TensorBoard, Weights &
Biases, MLflow ...), checked before any work; the loop hands them what it writes to ``metrics.jsonl``.

``metrics.jsonl`` is always written; trackers are extra. accelerate itself drops a tracker whose package is not
installed with only a debug log line: here that is a one-line error instead, so a run never silently tracks
nothing. Local trackers (TensorBoard) write under ``OUTPUT/logs/``.
"""

from __future__ import annotations

from simcse_lab.errors import UserError

PROJECT = "simcse-lab"  # the trackers' project name (TensorBoard: OUTPUT/logs/simcse-lab/)
LOG_DIR = "logs"


def parse_report_to(text: str | None) -> list[str]:
    """The trackers of ``--report-to a,b`` (``none``: no tracker; ``all``: every installed one), each
    known to accelerate and installed; anything else is a one-line error."""
    names = [n.strip().lower() for n in str(text or "none").split(",") if n.strip()]
    if not names or names == ["none"]:
        return []
    if "none" in names:
        raise UserError(f"--report-to {text}: 'none' cannot be combined with trackers")
    from accelerate.tracking import get_available_trackers
    from accelerate.utils import LoggerType

    available = [str(t.value) for t in get_available_trackers()]
    if names == ["all"]:
        if not available:
            raise UserError("--report-to all: no tracker package is installed (e.g. pip install tensorboard)")
        return available
    known = [str(t.value) for t in LoggerType if t.value != "all"]
    for name in names:
        if name not in known:
            raise UserError(f"--report-to {name}: not a tracker accelerate knows; choose from none, all, "
                            f"{', '.join(known)}")
        if name not in available:
            raise UserError(f"--report-to {name}: the {name} package is not installed (pip install {name})")
    return list(dict.fromkeys(names))


def tracked_values(record: dict) -> dict:
    """The numbers of a metrics.jsonl record, as trackers take them (the step is passed on its own)."""
    return {k: v for k, v in record.items() if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)}
