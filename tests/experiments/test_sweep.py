"""simcse-lab sweep: the sweep file's checks, workers sharing one study (SQLite and journal) with no trial run
twice, a SIGKILLed worker's trial retried by another, a finished sweep reporting the same bytes after a restart
(real ``train`` trials on a tiny BERT), the reproducibility record, --momentum-half-life."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PROJECT, one_line_refusal, random_sentences, write_lines

from simcse_lab.errors import UserError
from simcse_lab.training.config import load_config

TESTS = Path(__file__).resolve().parent


def sweep_file(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def env(tmp_path: Path, seconds: float = 0.0, fake: bool = True) -> dict:
    extra = {"FAKE_TRAIN_LOG": str(tmp_path / "runs.log"), "FAKE_TRAIN_SECONDS": str(seconds),
             "PYTHONPATH": os.pathsep.join([str(PROJECT), str(TESTS), *filter(None, [os.environ.get("PYTHONPATH")])]),
             "HF_HUB_OFFLINE": "1",
             "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    if fake:
        extra["SIMCSE_LAB_SWEEP_TRAINER"] = "fake_train"
    return {**os.environ, **extra}


def sweep_command(spec: Path, out: Path, *extra: str, heartbeat: int = 10) -> list[str]:
    """The sweep command; a heartbeat that a loaded machine keeps (a live worker's trial must not go stale)."""
    return [sys.executable, "-m", "simcse_lab", "sweep", str(spec), "--output-dir", str(out), "--heartbeat",
            str(heartbeat), *extra]


def runs(tmp_path: Path) -> list[str]:
    log = tmp_path / "runs.log"
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def study_trials(url: str):
    import optuna

    from simcse_lab.experiments.study import open_storage

    return optuna.load_study(study_name="sweep", storage=open_storage(url)).get_trials(deepcopy=False)


GRID4 = "train:\n  max_steps: 2\ngrid:\n  temperature: [0.05, 0.1]\n  seed: [1, 2]\n"


POSTGRES = "SIMCSE_LAB_TEST_POSTGRES"  # a PostgreSQL URL whose study "sweep" the test may delete (not in CI)


def store_url(tmp_path: Path, store: str) -> str:
    if store == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    if store == "journal":
        return f"journal:{tmp_path / 'journal.log'}"
    import optuna

    url = os.environ.get(POSTGRES)
    if not url:
        pytest.skip(f"set {POSTGRES} to a PostgreSQL URL (e.g. postgresql+psycopg2://u:p@localhost/db) to run it")
    try:
        optuna.delete_study(study_name="sweep", storage=url)
    except KeyError:  # no such study yet
        pass
    return url


@pytest.mark.parametrize("store", ["sqlite", "journal", "postgresql"])
def test_two_workers_share_one_study_and_run_no_trial_twice(tmp_path, store):
    spec, out = sweep_file(tmp_path / "grid.yaml", GRID4), tmp_path / "sweep"
    url = store_url(tmp_path, store)
    # SQLite, PostgreSQL: two commands started at once, as on two machines (both queue the grid: points queued
    # twice); the journal: one command with --workers 2
    commands = ([sweep_command(spec, out, "--storage", url)] * 2 if store != "journal"
                else [sweep_command(spec, out, "--storage", url, "--workers", "2")])
    workers = [subprocess.Popen(command, env=env(tmp_path, 0.5), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for command in commands]
    assert {w.wait(timeout=600) for w in workers} == {0}, [w.stderr.read() for w in workers]
    started = runs(tmp_path)
    assert sorted(started) == sorted({str(out / "trials" / f"{i:04d}") for i in range(4)})  # each point once
    complete = [t for t in study_trials(url) if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["point"] for t in complete) == [0, 1, 2, 3]
    assert {t.value for t in complete} == {81.0, 82.0}  # the metric read back from each run's summary.json


def test_a_killed_workers_trial_is_retried_by_another(tmp_path):
    spec, out = sweep_file(tmp_path / "grid.yaml", GRID4), tmp_path / "sweep"
    first = subprocess.Popen(sweep_command(spec, out, heartbeat=2), env=env(tmp_path, 60), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not runs(tmp_path) and time.time() < deadline:
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)  # mid-trial: its trial stays RUNNING in the study
    first.wait()
    killed_trainer = int((tmp_path / "runs.log").read_text().split()[1])
    second = subprocess.run(sweep_command(spec, out, heartbeat=2), env=env(tmp_path, 0), capture_output=True, text=True,
                            timeout=600)
    assert second.returncode == 0, second.stderr
    started = runs(tmp_path)
    assert len(started) == 5 and started.count(started[0]) == 2 and len(set(started)) == 4  # the killed one again
    trials = study_trials(f"sqlite:///{out / 'sweep.db'}")
    retried = [t for t in trials if t.state.name == "COMPLETE" and t.system_attrs.get("failed_trial") is not None]
    assert [t.user_attrs["run_dir"] for t in retried] == [started[0]]
    assert sum(t.state.name == "FAIL" for t in trials) == 1
    with pytest.raises(ProcessLookupError):  # the killed worker's trainer died with it
        for _ in range(50):
            os.kill(killed_trainer, 0)
            time.sleep(0.1)


def test_a_live_worker_whose_trial_another_failed_records_its_run_and_the_point_runs_once(tmp_path):
    """A worker stopped past two heartbeats (SIGSTOP: a suspended machine) while its trainer goes on: another
    worker fails its trial as stale and retries it, the retry's trainer is refused by the run directory's lock
    (the first trainer still writes into it); the first worker, continued, records its finished run as a new
    trial of the point instead of crashing on the failed one. The point trained once, and it is complete."""
    spec, out = sweep_file(tmp_path / "one.yaml", "train:\n  max_steps: 2\ngrid:\n  seed: [1]\n"), tmp_path / "sweep"
    first = subprocess.Popen(sweep_command(spec, out, heartbeat=1), env=env(tmp_path, 25), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not runs(tmp_path) and time.time() < deadline:
        time.sleep(0.1)
    first.send_signal(signal.SIGSTOP)  # its heartbeat stops; its trainer (another process) goes on
    try:
        time.sleep(3)
        second = subprocess.run(sweep_command(spec, out, heartbeat=1), env=env(tmp_path, 0), capture_output=True,
                                text=True, timeout=600)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 1, second.stderr  # its retry failed: the point is the first worker's
    assert "another simcse-lab run is writing into it" in (out / "trials" / "0000.log").read_text()
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr
    assert "trial 0 was failed by another worker while it ran here" in stdout and "recorded as a new trial" in stdout
    assert runs(tmp_path) == [str(out / "trials" / "0000")]  # trained once
    trials = study_trials(f"sqlite:///{out / 'sweep.db'}")
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "COMPLETE"]
    assert trials[2].value == 81.0 and trials[2].user_attrs["taken_over_from"] == 0
    assert trials[2].user_attrs["test_after"]["avg"] == 70.5


def test_a_searchs_retried_trial_is_not_run_where_its_point_completed(tmp_path):
    """A search trial's retry (queued by the heartbeat callback, the same key) whose original was meanwhile
    recorded complete (a late worker's run, taken over) is pruned, not trained again; a fresh search trial runs."""
    import optuna

    from simcse_lab.experiments.sweep_file import read_sweep_file
    from simcse_lab.experiments.trial import TrialRunner

    spec = sweep_file(tmp_path / "search.yaml", "grid:\n  seed: [1]\nsearch:\n  sampler: random\n  n_trials: 2\n"
                                                "  space:\n    lr: {low: 1.0e-5, high: 1.0e-4, log: true}\n")
    runner = TrialRunner(read_sweep_file(spec), tmp_path / "sweep", log=lambda message: None)
    trained = []
    runner.run = lambda command, run_dir: trained.append(run_dir)
    runner.record = lambda trial, run_dir: 1.0
    study = optuna.create_study()
    params, attrs = {"seed": 1, "lr": 3e-5}, {"key": "search:0", "point": 0}
    distributions = {"seed": optuna.distributions.CategoricalDistribution([1]),
                     "lr": optuna.distributions.FloatDistribution(1e-5, 1e-4, log=True)}
    study.add_trial(optuna.trial.create_trial(value=2.0, params=params, distributions=distributions, user_attrs=attrs))
    study.enqueue_trial(params, user_attrs=attrs)  # the retry
    study.optimize(runner, n_trials=1)
    assert study.trials[1].state.name == "PRUNED" and not trained
    study.optimize(runner, n_trials=1)  # a new trial of the search
    assert study.trials[2].state.name == "COMPLETE" and trained == [tmp_path / "sweep" / "trials" / "0002"]


def test_a_random_search_runs_its_budget_of_trials(tmp_path):
    spec = sweep_file(tmp_path / "search.yaml", "grid:\n  seed: [1, 2, 3]\nsearch:\n  sampler: random\n  n_trials: 3\n"
                                                "  seed: 0\n  space:\n    lr: {low: 1.0e-5, high: 1.0e-4, log: true}\n")
    out = tmp_path / "sweep"
    done = subprocess.run(sweep_command(spec, out), env=env(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    trials = [t for t in study_trials(f"sqlite:///{out / 'sweep.db'}") if t.state.name == "COMPLETE"]
    assert len(trials) == 3 and len(runs(tmp_path)) == 3
    assert all(1e-5 <= t.params["lr"] <= 1e-4 and t.params["seed"] in (1, 2, 3) for t in trials)
    assert all(f"--lr {t.params['lr']}" in t.user_attrs["command"] for t in trials)


@pytest.mark.integration
def test_real_train_trials_and_a_report_that_survives_a_restart(tmp_path, tiny_bert):
    data = write_lines(tmp_path / "corpus.txt", random_sentences(64))
    spec = sweep_file(tmp_path / "real.yaml", f"""
train:
  model: {tiny_bert}
  data: {data}
  pooler: avg
  batch_size: 8
  max_seq_len: 16
  max_steps: 2
  eval_steps: 0
  test_tasks: stsb
  test_before: false
  deterministic: true
  precision: fp32
grid:
  seed: [1, 2]
metric: test_after.avg
""")
    out = tmp_path / "sweep"
    first = subprocess.run(sweep_command(spec, out), env=env(tmp_path, fake=False), capture_output=True, text=True,
                           timeout=600)
    assert first.returncode == 0, first.stderr + first.stdout
    import json

    summary = json.loads((out / "trials" / "0000" / "summary.json").read_text())
    from simcse_lab.runtime.provenance import RECORD_KEYS

    record = summary["reproducibility"]
    assert list(record) == list(RECORD_KEYS) and record["deterministic"] is True and record["seed"] == 1
    assert record["data_fingerprint"] == summary["data"]["fingerprint"] and "test_before" not in summary
    report = subprocess.run([sys.executable, "-m", "simcse_lab", "sweep", "report", str(out)],
                            env=env(tmp_path, fake=False), capture_output=True, text=True, timeout=600)
    assert report.returncode == 0 and "2/2" in report.stdout, report.stderr
    written = {p.name: p.read_bytes() for p in out.iterdir() if p.name.startswith(("report", "seeds-"))}
    assert set(written) == {"report.json", "report.md", "seeds-base.png"}
    logs = {p.name: p.read_text() for p in (out / "trials").glob("*.log")}
    again = subprocess.run(sweep_command(spec, out), env=env(tmp_path, fake=False), capture_output=True, text=True,
                           timeout=600)  # a restart of a finished sweep: nothing runs again
    assert again.returncode == 0 and "0 queued" in again.stdout, again.stderr
    assert {p.name: p.read_text() for p in (out / "trials").glob("*.log")} == logs
    subprocess.run([sys.executable, "-m", "simcse_lab", "sweep", "report", str(out)], env=env(tmp_path, fake=False),
                   check=True, capture_output=True, timeout=600)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name in written} == written
    stats = json.loads(written["report.json"])["configurations"][0]["stats"]
    seeds = [json.loads((out / "trials" / f"000{i}" / "summary.json").read_text())["test_after"]["avg"]
             for i in range(2)]
    assert stats["avg"]["n"] == 2 and stats["avg"]["mean"] == pytest.approx(sum(seeds) / 2)


@pytest.mark.parametrize("body, message", [
    ("train:\n  learning_rate: 1e-3\ngrid:\n  seed: [1, 2]\n", "grid.yaml:2: train: unknown option 'learning_rate'"),
    ("grid:\n  seed: [1]\n  tempreature: [0.1]\n", "grid.yaml:3: grid: unknown option 'tempreature'"),
    ("variants:\n  a:\n    objective: esimcse\n    dupe_rate: 0.3\n", "grid.yaml:4: variants: a: unknown option"),
    ("train:\n  max_steps: 2\ngrid: {}\n", "grid.yaml:3: empty grid"),
    ("grid:\n  seed: []\n", "grid.yaml:2: grid: seed must be a non-empty list"),
    ("grid:\n  seed: [1]\n  output_dir: [x]\n", "'output_dir' is set by the sweep"),
    ("grid:\n  temperature: [0.05, -1]\n", "temperature"),
    ("variants:\n  hl:\n    momentum: 0.9\n    momentum_half_life: 6\n", "momentum and momentum_half_life"),
])
def test_bad_sweep_files_are_one_line_before_any_trial(tmp_path, capsys, body, message):
    spec, out = sweep_file(tmp_path / "grid.yaml", body), tmp_path / "sweep"
    assert message in one_line_refusal(["sweep", str(spec), "--output-dir", str(out)], capsys)
    assert not out.exists()


@pytest.mark.parametrize("url", ["nosuchdb://user@host/x", "journal:/no/such/dir/journal.log"])
def test_a_storage_that_cannot_be_opened_is_one_line(tmp_path, capsys, url):
    spec, out = sweep_file(tmp_path / "grid.yaml", GRID4), tmp_path / "sweep"
    assert f"--storage {url}: " in one_line_refusal(["sweep", str(spec), "--output-dir", str(out), "--storage", url],
                                                    capsys)
    assert not out.exists()


def test_momentum_half_life_sets_the_momentum_and_excludes_it():
    assert load_config(None, {"objective": "esimcse", "momentum_half_life": 6}).momentum == pytest.approx(0.5 ** (1 / 6))
    assert load_config(None, {"objective": "esimcse"}).momentum == 0.995
    with pytest.raises(UserError, match="momentum and momentum_half_life both given"):
        load_config(None, {"momentum": 0.9, "momentum_half_life": 6})
