"""The STS test table of finished runs, read for a comparison over seeds, and their reproducibility records.

A run is a training run directory (its ``summary.json``: ``test_after``, the chosen checkpoint's STS test table,
``config``, its training options, and ``reproducibility``, the versions, hardware, precision, seed and data a run
records), a ``summary.json`` itself, or an ``eval --output`` JSON file (its ``tasks``). A group is the runs a glob
matches, optionally only those whose training options have given values (``KEY=VALUE``: a sweep names its
trials by number, ``DIR/trials/0007``, so its variants are told apart by their options). Reading only JSON,
nothing of training is imported.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from simcse_lab.errors import UserError
from simcse_lab.io import read_json

RECORD_KEY = "reproducibility"
VALUE_WIDTH = 40  # a differing value is shown up to this many characters
FILTERS = re.compile(r"^(?P<pattern>.+?):(?P<filters>[A-Za-z_]\w*=[^,]*(?:,[A-Za-z_]\w*=[^,]*)*)$")


@dataclass
class RunResult:
    source: str
    spearman: dict[str, float]   # task -> Spearman x100 on the test split
    record: dict                 # the run's reproducibility record ({} when it has none)
    config: dict = field(default_factory=dict)  # its training options ({} for an eval result)


def read_run(path: str | Path) -> RunResult:
    """One run's STS table (a run directory, its summary.json, or an eval JSON), one line naming the problem."""
    path = Path(path)
    file = path / "summary.json" if path.is_dir() else path
    data = read_json(file, missing="no such file (a run that has not finished?)")
    table = data.get("test_after", data) if isinstance(data, dict) else None
    tasks = table.get("tasks") if isinstance(table, dict) else None
    if not isinstance(tasks, dict) or not tasks:
        raise UserError(f"{file}: no STS test table (test_after of a training run, or tasks of an eval result)")
    try:
        spearman = {task: float(entry["spearman"]) for task, entry in tasks.items()}
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{file}: an STS task without a Spearman value") from None
    record, config = data.get(RECORD_KEY) or {}, data.get("config") or {}
    return RunResult(os.path.normpath(path), spearman, record if isinstance(record, dict) else {},
                     config if isinstance(config, dict) else {})


def expand(pattern: str, what: str) -> list[str]:
    """The paths ``pattern`` matches, sorted (``~`` expanded); none is one line naming ``what``."""
    paths = sorted(glob.glob(os.path.expanduser(pattern)))
    if not paths:
        raise UserError(f"{what}: {pattern!r} matches nothing")
    return paths


def split_filters(spec: str) -> tuple[str, dict]:
    """``GLOB`` or ``GLOB:KEY=VALUE[,KEY=VALUE...]`` -> (the glob, {key: value}); each VALUE is read as YAML
    (``6`` a number, ``null`` none, ``esimcse`` a string)."""
    match = FILTERS.match(spec)
    if not match:
        return spec, {}
    filters = {}
    for item in match["filters"].split(","):
        key, _, text = item.partition("=")
        filters[key] = yaml.safe_load(text) if text.strip() else ""
    return match["pattern"], filters


def select(runs: list[RunResult], filters: dict, what: str) -> list[RunResult]:
    """The runs whose training options have every ``filters`` value; an option no run has, or no run left,
    is one line naming ``what``."""
    for key in filters:
        if not any(key in r.config for r in runs):
            raise UserError(f"{what}: no run matched has a training option {key!r}")
    chosen = [r for r in runs if all(key in r.config and r.config[key] == value for key, value in filters.items())]
    if not chosen:
        shown = ",".join(f"{k}={v}" for k, v in filters.items())
        raise UserError(f"{what}: none of the {len(runs)} runs matched has {shown}")
    return chosen


def read_group(spec: str, what: str) -> list[RunResult]:
    """The runs of ``GLOB[:KEY=VALUE,...]`` (see :func:`split_filters`), each read and checked."""
    pattern, filters = split_filters(spec)
    return select([read_run(path) for path in expand(pattern, what)], filters, what)


def common_tasks(runs: list[RunResult], tasks: list[str] | None = None) -> list[str]:
    """``tasks`` (each present in every run), else the first run's, which every run must have."""
    wanted = tasks or list(runs[0].spearman)
    for run in runs:
        missing = [t for t in wanted if t not in run.spearman]
        if missing:
            raise UserError(f"{run.source}: no {', '.join(missing)} in its STS table (it has "
                            f"{', '.join(run.spearman)}); name the tasks to compare with --tasks")
    return wanted


def _shown(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def record_differences(records: dict[str, dict], ignore: tuple[str, ...] = ()) -> str | None:
    """One line saying in which fields the records differ (each field compared among the runs that have it;
    ``ignore``: fields expected to differ, e.g. the seed within a comparison over seeds), and how many runs
    carry no record; None when nothing differs."""
    parts = []
    fields = dict.fromkeys(k for r in records.values() for k in r if k not in ignore)
    for key in fields:
        values = {}
        for source, record in records.items():
            if key in record:
                values.setdefault(_shown(record[key]), []).append(source)
        if len(values) > 1:
            parts.append(f"{key} (" + " | ".join(f"{v}: {len(s)} run{'s' * (len(s) > 1)}"
                                                 for v, s in values.items()) + ")")
    missing = [s for s, r in records.items() if not r]
    line = f"the runs differ in their reproducibility record: {'; '.join(parts)}" if parts else ""
    if missing:
        line += ("; " if line else "") + f"{len(missing)} of {len(records)} runs carry no reproducibility record"
    return line or None
