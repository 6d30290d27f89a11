"""eval/'s benchmark reports: every eval/NAME.md that a script renders is what its ``render`` gives from
eval/NAME.json alone (the harness, simcse_lab/runtime/benchmark.py, writes both); the few hand-written notes are
named, with why; the scripts import the harness as a package module, never through sys.path."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

EVAL = Path(__file__).resolve().parents[2] / "eval"

# eval/STEM.md -> the script whose render(report) writes it from eval/STEM.json
RENDERED = {
    "bench_llm": "bench_llm", "bench_llm_12layers": "bench_llm", "bench_llm_pair": "bench_llm",
    "bench_llm_24layers": "bench_llm", "bench_llm_12layers_pair": "bench_llm",
    "eval_geometry": "bench_eval_geometry", "mini_batches": "bench_mini_batches", "prompt_methods": "prompt_methods",
    "roofline": "bench_roofline", "scale": "bench_scale", "serving": "bench_serving",
    "step_changes": "bench_step_changes", "sts_speed": "bench_sts_speed", "train_bench": "bench_train",
    "train_runs": "record_train_runs",
}
# written by hand around a run's JSON (or without one): prose with numbers the JSON does not hold
HAND_WRITTEN = {
    "compare_poolers": "notes around `compare`'s own output (compare_poolers.json is the scores.json it wrote, "
                       "its table the scores.md), with the commands and their timings read by hand",
    "train_2proc": "a two-process run's log read by hand (no JSON)",
    "gpu_check": "how to run eval/gpu_check.py on the device machine (its JSON is the check's own output)",
}


def load_script(name: str, monkeypatch):
    """eval/NAME.py as a module (eval/ on the path as when it runs as a script: its own directory is sys.path[0])."""
    monkeypatch.syspath_prepend(str(EVAL))
    spec = importlib.util.spec_from_file_location(f"eval_{name}", EVAL / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


def test_every_report_is_rendered_or_named_as_hand_written():
    stems = {p.stem for p in EVAL.glob("*.md")}
    assert stems == set(RENDERED) | set(HAND_WRITTEN), (
        f"unlisted: {sorted(stems - set(RENDERED) - set(HAND_WRITTEN))}; "
        f"gone: {sorted(set(RENDERED) | set(HAND_WRITTEN) - stems)}")
    assert not set(RENDERED) & set(HAND_WRITTEN)


@pytest.mark.parametrize("stem", sorted(RENDERED))
def test_report_renders_again_from_its_json(stem, monkeypatch):
    from simcse_lab.runtime.benchmark import rerender

    script = load_script(RENDERED[stem], monkeypatch)
    assert rerender(EVAL / f"{stem}.json", script.render) == (EVAL / f"{stem}.md").read_text()


def test_scripts_import_the_harness_not_each_other_through_sys_path():
    for path in sorted(EVAL.glob("*.py")):
        source = path.read_text()
        assert "sys.path" not in source, f"{path.name} edits sys.path"
        assert not re.search(r"^\s*def machine\(", source, re.M), f"{path.name} has its own machine()"
        assert not re.search(r"^from matmul_peak import|^import matmul_peak", source, re.M), path.name


def test_harness_reads_both_machine_schemas_and_measures_a_process(tmp_path):
    import sys as _sys

    from simcse_lab.runtime.benchmark import load_note, machine, measure_process, time_matmul

    now = machine()
    assert now["cores"] >= 1 and now["load_average"][0] == round(now["load_average_1min"], 2)
    old = {"cpus": 2, "load_average": [9.0, 8.0, 7.0]}  # eval/scale.json's machine, recorded before the harness
    assert load_note(old, {"cpus": 2, "load_average": [1.0, 1.0, 1.0]}).startswith(
        "load average 9.0 at the start, 1.0 at the end (**shared**")
    assert "shared" not in load_note({"cores": 2, "load_average_1min": 1.0}, {"cores": 2, "load_average_1min": 2.4})
    result = measure_process([_sys.executable, "-c", "print('hello')"], {}, (lambda: None, lambda: None),
                             tmp_path / "log.txt", timeout=60, cwd=tmp_path)
    assert result["returncode"] == 0 and not result["timed_out"] and result["log_tail"] == ["hello"]
    assert result["peak_rss_gb"] > 0
    import torch

    assert time_matmul((32, 32, 32), torch.float32, seconds=0.01, repeats=2) > 0
