"""The sweep file: base training options, a grid (named variants too), an optional search, the metric.

Read with ``yaml.safe_load``; every option is checked against ``train``'s own options (and every grid point
against the training config's own checks) before any trial starts: a bad file is one line naming its line."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from simcse_lab.errors import InputError, UserError
from simcse_lab.training.config import FIELDS, coerce_value, load_config, resolve_config

SECTIONS = ("train", "grid", "variants", "search", "metric")
# options a sweep sets itself for every trial (its run directory, resuming it, no progress bar)
SWEEP_OWNED = ("output_dir", "resume", "progress")
SAMPLERS = ("random", "tpe")
DEFAULT_METRIC = "best_dev_spearman"  # summary.json's STS-B dev Spearman of the best checkpoint
# summary.json entries a metric may name (a dotted path below them: test_after.avg, test_after.tasks.stsb.spearman)
METRIC_ROOTS = ("best_dev_spearman", "best_select", "test_after", "steps", "train_seconds", "seconds_per_step")


@dataclass(frozen=True)
class Point:
    """One grid point: its index (its run directory, DIR/trials/NNNN), its variant and its options."""

    index: int
    variant: str | None
    options: dict

    @property
    def key(self) -> str:
        """The point's identity, the same in every worker: its variant and options as canonical JSON."""
        return json.dumps({"variant": self.variant, "options": self.options}, sort_keys=True)

    @property
    def configuration(self) -> str:
        """The point without its seed: what the report groups seeds under."""
        rest = [f"{k}={v}" for k, v in self.options.items() if k != "seed" and k not in self.variant_options]
        return ", ".join(([self.variant] if self.variant else []) + rest) or "base"

    variant_options: dict = field(default_factory=dict, compare=False)


@dataclass
class Search:
    sampler: str
    n_trials: int
    seed: int | None
    space: dict  # option -> {"low", "high", "log"} (a range) ; grid axes become categorical choices


@dataclass
class SweepFile:
    path: Path
    config: str | None      # the base config file (``train: {config: ...}``), else None
    train: dict             # base options, overriding the config file
    grid: dict              # option -> list of values
    variants: dict          # name -> options
    search: Search | None
    metric: str
    direction: str

    def points(self) -> list[Point]:
        """Every grid point, variants outermost, then the grid's axes in the file's order (seed innermost when
        it is the last axis)."""
        names = list(self.variants) or [None]
        axes = list(self.grid)
        points = []
        for variant in names:
            extra = self.variants.get(variant, {}) if variant else {}
            for values in itertools.product(*(self.grid[a] for a in axes)):
                options = {**extra, **dict(zip(axes, values))}
                points.append(Point(len(points), variant, options, variant_options=extra))
        return points

    def trial_options(self, options: dict) -> dict:
        """The options one trial trains with (base, then the point's), as ``train`` flags would give them."""
        return {**self.train, **options}

    @functools.cached_property
    def fingerprint(self) -> str:
        """What identifies this sweep in its study: the base options, the points, the search and the metric."""
        text = json.dumps({"config": self.config, "train": self.train, "points": [p.key for p in self.points()],
                           "search": self.search and vars(self.search), "metric": self.metric}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _lines(node) -> dict:
    """key -> line of a YAML mapping node's keys (1-based)."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: k.start_mark.line + 1 for k, _ in node.value}


def _child(node, key):
    for k, v in getattr(node, "value", []) if isinstance(node, yaml.MappingNode) else []:
        if k.value == key:
            return v
    return None


def _mapping(value, path: Path, line, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(path, line, f"{what} must be a mapping of option: value")
    return value


def _options(raw: dict, path: Path, lines: dict, what: str, listed: bool = False) -> dict:
    """``raw``'s options checked against train's and coerced; with ``listed``, each value is a list of values."""
    out = {}
    for key, value in raw.items():
        name, line = str(key).replace("-", "_"), lines.get(key)
        if name not in FIELDS:
            raise InputError(path, line, f"{what}: unknown option {key!r} (not an option of simcse-lab train)")
        if name in SWEEP_OWNED:
            raise InputError(path, line, f"{what}: {key!r} is set by the sweep for each trial; remove it")
        where = f"{path}:{line}"
        if not listed:
            out[name] = coerce_value(name, value, where)
            continue
        if not isinstance(value, list) or not value:
            raise InputError(path, line, f"{what}: {key} must be a non-empty list of values, got {value!r}")
        values = [coerce_value(name, v, where) for v in value]
        if len(set(map(repr, values))) < len(values):
            raise InputError(path, line, f"{what}: {key} lists a value twice")
        out[name] = values
    return out


def _metric(raw, path: Path, line) -> tuple[str, str]:
    if raw is None:
        return DEFAULT_METRIC, "maximize"
    raw = {"name": raw} if isinstance(raw, str) else raw
    if not isinstance(raw, dict) or set(raw) - {"name", "direction"} or not isinstance(raw.get("name"), str):
        raise InputError(path, line, "metric must be a summary.json entry, e.g. test_after.avg, or "
                                     "{name: ..., direction: maximize|minimize}")
    if raw["name"].split(".")[0] not in METRIC_ROOTS:
        raise InputError(path, line, f"metric {raw['name']!r}: not a recorded metric; one of {', '.join(METRIC_ROOTS)}"
                                     f" (a dotted path below test_after, e.g. test_after.tasks.stsb.spearman)")
    direction = raw.get("direction", "maximize")
    if direction not in ("maximize", "minimize"):
        raise InputError(path, line, f"metric direction {direction!r}: maximize or minimize")
    return raw["name"], direction


def _search(raw, node, path: Path, line) -> Search | None:
    if raw is None:
        return None
    raw = _mapping(raw, path, line, "search")
    lines = _lines(node)
    unknown = set(raw) - {"sampler", "n_trials", "seed", "space"}
    if unknown:
        raise InputError(path, lines.get(sorted(unknown)[0], line), f"search: unknown key {sorted(unknown)[0]!r}")
    sampler, n_trials = raw.get("sampler", "tpe"), raw.get("n_trials")
    if sampler not in SAMPLERS:
        raise InputError(path, lines.get("sampler", line), f"search: sampler {sampler!r}; choose from random, tpe")
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        raise InputError(path, lines.get("n_trials", line), f"search: n_trials must be a positive integer")
    space = _mapping(raw.get("space"), path, lines.get("space", line), "search: space")
    space_lines = _lines(_child(node, "space"))
    for key, bounds in space.items():
        _options({key: bounds.get("low") if isinstance(bounds, dict) else bounds}, path, space_lines, "search: space")
        if not (isinstance(bounds, dict) and set(bounds) <= {"low", "high", "log"} and {"low", "high"} <= set(bounds)):
            raise InputError(path, space_lines.get(key), f"search: space: {key} must be {{low: ..., high: ..., log: "
                                                         f"true|false}}")
    seed = raw.get("seed")
    return Search(sampler, n_trials, seed if isinstance(seed, int) else None,
                  {str(k).replace("-", "_"): v for k, v in space.items()})


def read_sweep_file(path) -> SweepFile:
    """The sweep file at ``path``, every option and every point checked; a problem is one line naming the line."""
    path = Path(path)
    try:
        text = path.read_text()
        node, data = yaml.compose(text), yaml.safe_load(text)
    except OSError as err:
        raise UserError(f"{path}: cannot read the sweep file ({err.strerror})") from None
    except UnicodeDecodeError:
        raise InputError(path, None, "not valid UTF-8") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise InputError(path, mark.line + 1 if mark else None, f"invalid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict):
        raise InputError(path, 1, f"a sweep file is a mapping of {', '.join(SECTIONS)}")
    top = _lines(node)
    for key in data:
        if key not in SECTIONS:
            raise InputError(path, top.get(key), f"unknown section {key!r}; the sections are {', '.join(SECTIONS)}")
    train = dict(_mapping(data.get("train"), path, top.get("train"), "train"))
    config = train.pop("config", None)
    if config is not None:
        resolve_config(config)  # a missing config file: one line
    sweep = SweepFile(path, None if config is None else str(config),
                      _options(train, path, _lines(_child(node, "train")), "train"),
                      _options(_mapping(data.get("grid"), path, top.get("grid"), "grid"), path,
                               _lines(_child(node, "grid")), "grid", listed=True),
                      _variants(data.get("variants"), _child(node, "variants"), path, top.get("variants")),
                      _search(data.get("search"), _child(node, "search"), path, top.get("search")),
                      *_metric(data.get("metric"), path, top.get("metric")))
    check_points(sweep, top)
    return sweep


def _variants(raw, node, path: Path, line) -> dict:
    raw = _mapping(raw, path, line, "variants")
    lines, out = _lines(node), {}
    for name, options in raw.items():
        where = lines.get(name)
        out[str(name)] = _options(_mapping(options, path, where, f"variants: {name}"), path,
                                  _lines(_child(node, name)), f"variants: {name}")
    return out


def check_points(sweep: SweepFile, top: dict) -> None:
    """An empty grid is refused; every point must make a valid training config (the checks ``train`` makes)."""
    if sweep.search is None and not sweep.grid and not sweep.variants:
        raise InputError(sweep.path, top.get("grid"), "empty grid: give grid: {option: [values]} or variants:")
    for point in sweep.points():
        try:
            load_config(sweep.config, sweep.trial_options(point.options))
        except UserError as err:
            raise InputError(sweep.path, top.get("variants" if point.variant else "grid"),
                             f"point {point.configuration} (seed {point.options.get('seed', '-')}): {err}") from None
