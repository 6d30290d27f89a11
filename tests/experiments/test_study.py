"""The sweep's storage: two processes popping one SQLite study's queue never get the same trial (Optuna's pop
relies on SELECT ... FOR UPDATE, which SQLite ignores; open_storage begins every transaction IMMEDIATE)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from conftest import PROJECT

from simcse_lab.experiments.study import open_storage

POP = """
import sys, time
import optuna
from simcse_lab.experiments.study import open_storage
study = optuna.load_study(study_name="queue", storage=open_storage(sys.argv[1]))
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
popped = []
while (trial_id := study._pop_waiting_trial_id()) is not None:  # what study.optimize does for a queued trial
    popped.append(trial_id)
print(" ".join(map(str, popped)))
"""


def race(url: str) -> list[set[int]]:
    """The trial ids each of two processes popped from the queue at ``url``, starting together."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT), "OMP_NUM_THREADS": "1"}
    start = str(time.time() + 8)  # both import optuna first, then pop together
    workers = [subprocess.Popen([sys.executable, "-c", POP, url, start], env=env, cwd=PROJECT, stdout=subprocess.PIPE,
                                text=True) for _ in range(2)]  # cwd: this checkout's simcse_lab, first on sys.path
    popped = [set(map(int, w.communicate(timeout=300)[0].split())) for w in workers]
    assert all(w.returncode == 0 for w in workers)
    return popped


def test_two_processes_popping_one_sqlite_queue_never_get_the_same_trial(tmp_path):
    import optuna

    for attempt in range(3):  # a race only where both popped (one may, rarely, take the whole queue)
        url = f"sqlite:///{tmp_path / f'queue{attempt}.db'}"
        study = optuna.create_study(study_name="queue", storage=open_storage(url))
        for i in range(300):
            study.enqueue_trial({"x": i}, skip_if_exists=False)
        popped = race(url)
        assert not popped[0] & popped[1], f"{len(popped[0] & popped[1])} trials popped by both workers"
        assert popped[0] | popped[1] == {t._trial_id for t in study.get_trials(deepcopy=False)}
        if all(popped):
            return
    pytest.fail("one worker popped the whole queue three times: the two never raced")
