"""Training configuration: bad values stop with one-line errors, before any work starts."""

from __future__ import annotations

import pytest

from simcse_lab.training.config import load_config
from simcse_lab.errors import InputError, UserError


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("temperature: .nan\n", "temperature must be > 0"),
    ("log_steps: 0\n", "log_steps must be >= 1"),
    ("eval_batch_size: 0\n", "eval_batch_size must be >= 1"),
    ("dup_rate: -0.1\n", "dup_rate must be >= 0"),
    ("lr: .nan\n", "lr must be > 0"),
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
