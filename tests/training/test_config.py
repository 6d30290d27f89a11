"""Training configuration: bad values stop with one-line errors, before any work starts."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest

from simcse_lab.training.config import NUMBER_RANGES, TrainConfig, load_config
from simcse_lab.errors import InputError, UserError


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("temperature: .nan\n", "temperature must be > 0 and finite"),
    ("log_steps: 0\n", "log_steps must be >= 1"),
    ("eval_batch_size: 0\n", "eval_batch_size must be >= 1"),
    ("dup_rate: -0.1\n", r"dup_rate must be in \[0, 1\]"),
    ("lr: .nan\n", "lr must be > 0 and finite"),
    ("lr: .inf\n", "lr must be > 0 and finite, got inf"),
    ("max_grad_norm: -1\n", r"max_grad_norm must be >= 0 \(0: off\), got -1"),
    ("seed: -1\n", r"seed must be in \[0, 2\*\*32\), got -1"),
    ("seed: 5000000000\n", r"seed must be in \[0, 2\*\*32\)"),
    ("output_dir:\n", "output_dir must be a"),
    ("batch_size: [1, 2]\n", "batch_size must be a"),
    ("batch_size: many\n", "batch_size must be a int"),
    ("objective: nope\n", "unknown objective 'nope'"),
    ("pooler: first\n", "unknown pooler 'first'"),
    ("no_such_option: 1\n", "unknown option 'no_such_option'"),
    ("length_chunks: 0\n", "length_chunks must be >= 1"),
    ("adamw: sparse\n", "unknown adamw 'sparse'"),
])
def test_bad_values_are_refused(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        load_config(write(tmp_path, "objective: unsup\n" + text))


def _out_of_range(low, high, low_open, high_open, kind):
    """Values each just outside the range (an int option only gets ints), and nan / +-inf for a float one."""
    step = 1 if kind == "int" else 0.5
    values = []
    if low is not None:
        values.append(low if low_open else low - step)
    if high is not None:
        values.append(high if high_open else high + step)
    if kind == "float":
        values += [math.nan, math.inf, -math.inf]
    return values


def test_every_numeric_option_is_finite_and_in_range():
    """Each int / float option of TrainConfig has a range (NUMBER_RANGES), and a value outside it (nan and the
    infinities included) is refused by name, as a flag or a YAML value would be, before anything loads; the
    bounds themselves, where included, are accepted."""
    numeric = {f.name: f.type for f in fields(TrainConfig) if f.type in ("int", "float")}
    assert set(numeric) == set(NUMBER_RANGES)  # a new numeric option must say its range
    for name, (low, high, low_open, high_open, _) in NUMBER_RANGES.items():
        for value in _out_of_range(low, high, low_open, high_open, numeric[name]):
            with pytest.raises(UserError, match=rf"^{name} must be "):
                load_config(None, {name: value})
        for bound, is_open in ((low, low_open), (high, high_open)):
            if bound is not None and not is_open:
                assert getattr(load_config(None, {name: bound}), name) == bound


def test_yaml_errors_name_the_line(tmp_path):
    with pytest.raises(InputError, match=r"c\.yaml:3: unknown option"):
        load_config(write(tmp_path, "objective: unsup\nlr: 1.0e-5\nbogus: 2\n"))
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"objective: unsup\n# caf\xe9\n")
    with pytest.raises(InputError, match=r"latin1\.yaml:2: not valid UTF-8"):
        load_config(path)


def test_flags_override_the_file(tmp_path):
    cfg = load_config(write(tmp_path, "objective: unsup\nlr: 1.0e-5\nbatch_size: 32\n"), {"lr": 3e-5, "seed": None})
    assert cfg.lr == 3e-5 and cfg.batch_size == 32 and cfg.seed == 42


def test_reading_a_config_imports_no_torch():
    """A bad config is refused in a fraction of a second: checking names needs no torch (nor a model)."""
    import subprocess
    import sys
    from pathlib import Path

    config = "configs/unsup.yaml"
    code = (f"import sys; from simcse_lab.training.config import load_config; load_config({str(config)!r}); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
