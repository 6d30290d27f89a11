"""Experiment tracking through accelerate's trackers: TensorBoard writes its events offline beside
metrics.jsonl (which stays); unknown or uninstalled trackers are one line before any work."""

from __future__ import annotations

import importlib.util
import json

import pytest

from conftest import random_sentences, write_lines

from simcse_lab.errors import UserError
from simcse_lab.training.config import TrainConfig
from simcse_lab.training.tracking import parse_report_to, tracked_values


def test_tensorboard_events_are_written_and_metrics_jsonl_stays(tmp_path, tiny_bert):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from simcse_lab.training.loop import train

    out = tmp_path / "run"
    data = write_lines(tmp_path / "corpus.txt", random_sentences(48))
    train(TrainConfig(model=str(tiny_bert), data=str(data), pooler="avg", batch_size=8, max_seq_len=16, lr=1e-3,
                      max_steps=3, eval_steps=0, test_tasks="none", precision="fp32", log_steps=1, progress=False,
                      report_to="tensorboard", output_dir=str(out)))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    (events,) = (out / "logs" / "simcse-lab").glob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events.parent))
    accumulator.Reload()
    logged = accumulator.Scalars("loss")
    assert [e.step for e in logged] == [r["step"] for r in records] == [1, 2, 3]
    assert [e.value for e in logged] == pytest.approx([r["loss"] for r in records], rel=1e-6)
    assert {"lr", "steps_per_s", "peak_memory_mb"} <= set(accumulator.Tags()["scalars"])


def test_report_to_is_checked():
    assert parse_report_to("none") == [] and parse_report_to("") == [] and parse_report_to(None) == []
    assert parse_report_to("TensorBoard") == ["tensorboard"]
    with pytest.raises(UserError, match="--report-to nosuch: not a tracker accelerate knows"):
        parse_report_to("nosuch")
    with pytest.raises(UserError, match="'none' cannot be combined"):
        parse_report_to("none,tensorboard")


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_an_uninstalled_tracker_is_refused_not_dropped(tmp_path, tiny_bert, capsys):
    """accelerate would drop it with a debug line and track nothing; here it stops the run before any work."""
    from simcse_lab.cli import main

    data = write_lines(tmp_path / "corpus.txt", random_sentences(16))
    with pytest.raises(SystemExit) as exc:
        main(["train", "--model", str(tiny_bert), "--data", str(data), "--report-to", "tensorboard,wandb",
              "--output-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert "--report-to wandb: the wandb package is not installed (pip install wandb)" in err
    assert not (tmp_path / "run").exists()


def test_trackers_get_the_numbers_of_a_record():
    record = {"step": 3, "loss": 0.5, "lr": 1e-5, "dev_spearman": 80.1, "note": "x", "flag": True}
    assert tracked_values(record) == {"loss": 0.5, "lr": 1e-5, "dev_spearman": 80.1}
