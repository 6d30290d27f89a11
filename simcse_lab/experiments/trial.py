"""One trial: one ``simcse-lab train`` in its own process (or under ``accelerate launch``), run directory
DIR/trials/NNNN, its summary.json read back into the trial (the metric as its value; the test table, the
reproducibility record and the options as user attributes).

The run directory is the grid point's, so a trial run again after its worker died resumes the training from its
last checkpoint (``--resume``). The training process dies with its worker (Linux: PR_SET_PDEATHSIG)."""

from __future__ import annotations

import ctypes
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from simcse_lab.errors import UserError
from simcse_lab.experiments.study import claimed_elsewhere
from simcse_lab.experiments.sweep_file import SweepFile

TRIALS = "trials"
# tests only: the module run as ``python -m MODULE train ...`` instead of simcse_lab (a fake, fast trainer)
TRAINER_HOOK = "SIMCSE_LAB_SWEEP_TRAINER"


class TrialFailed(Exception):
    """The training process of a trial failed (its log says why); the trial is FAIL, the worker goes on."""


def flags(options: dict) -> list[str]:
    """``train``'s flags for ``options``."""
    out = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + name.replace("_", "-"))
        else:
            out += [flag, str(value)]
    return out


def _prctl():
    """libc's prctl, looked up here in the worker: the child only calls it (nothing loaded after the fork)."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the trainer may outlive a killed worker
        return None


PRCTL = _prctl()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: SIGKILL when the worker dies


@dataclass
class TrialRunner:
    """Runs the trials of ``sweep`` into ``output_dir``; ``launch``: accelerate launch's options, or None."""

    sweep: SweepFile
    output_dir: Path
    launch: str | None = None
    log: object = print

    def command(self, options: dict, run_dir: Path) -> list[str]:
        module = os.environ.get(TRAINER_HOOK, "simcse_lab")
        head = [sys.executable, "-m", module]
        if self.launch is not None:
            head = [sys.executable, "-m", "accelerate.commands.launch", *shlex.split(self.launch), "-m", module]
        config = ["--config", self.sweep.config] if self.sweep.config else []
        return [*head, "train", *config, *flags(self.sweep.trial_options(options)), "--output-dir", str(run_dir),
                "--resume", "--no-progress"]

    def options_of(self, trial) -> dict:
        """The trial's options: its grid point's, or (a search) those its sampler suggests."""
        search = self.sweep.search
        if search is None:
            return self.sweep.points()[trial.user_attrs["point"]].options
        options = {name: trial.suggest_categorical(name, values) for name, values in self.sweep.grid.items()}
        for name, bounds in search.space.items():
            suggest = trial.suggest_int if isinstance(bounds["low"], int) and isinstance(bounds["high"], int) \
                else trial.suggest_float
            options[name] = suggest(name, bounds["low"], bounds["high"], log=bool(bounds.get("log", False)))
        if self.sweep.variants:
            name = trial.suggest_categorical("variant", list(self.sweep.variants))
            options = {**self.sweep.variants[name], **options}
        if "point" not in trial.user_attrs:
            trial.set_user_attr("point", trial.number)
            trial.set_user_attr("key", f"search:{trial.number}")
        return options

    def __call__(self, trial) -> float:
        import optuna

        if self.sweep.search is None and "point" not in trial.user_attrs:
            raise optuna.TrialPruned("no grid point left (another worker took the last one)")
        why = claimed_elsewhere(trial.study, trial) if self.sweep.search is None else None
        if why:
            raise optuna.TrialPruned(why)
        options = self.options_of(trial)
        run_dir = self.output_dir / TRIALS / f"{trial.user_attrs['point']:04d}"
        command = self.command(options, run_dir)
        for name, value in {"options": options, "run_dir": str(run_dir), "command": shlex.join(command),
                            "worker": f"{socket.gethostname()}:{os.getpid()}"}.items():
            trial.set_user_attr(name, value)
        self.log(f"sweep: trial {trial.number}: point {trial.user_attrs['point']:04d} "
                 f"({trial.user_attrs.get('configuration', options)}) -> {run_dir}")
        self.run(command, run_dir)
        return self.record(trial, run_dir)

    def run(self, command: list[str], run_dir: Path) -> None:
        """The training process, its output appended to DIR/trials/NNNN.log; Ctrl-C stops it too."""
        log_path = run_dir.with_suffix(".log")
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log:
            log.write(f"$ {shlex.join(command)}\n")
            log.flush()
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                       preexec_fn=_die_with_parent if PRCTL else None)
            try:
                code = process.wait()
            except BaseException:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                raise
        if code != 0:
            tail = log_path.read_text().strip().splitlines()[-1:] or ["(no output)"]
            raise TrialFailed(f"train exited with {code}: {tail[0]} (log: {log_path})")

    def record(self, trial, run_dir: Path) -> float:
        """The run's summary.json into the trial; its value is the sweep's metric."""
        try:
            summary = json.loads((run_dir / "summary.json").read_text())
        except (OSError, ValueError) as err:
            raise TrialFailed(f"{run_dir / 'summary.json'}: cannot read it ({err})") from None
        for name in ("test_after", "reproducibility", "best_dev_spearman", "best_step", "steps", "train_seconds"):
            if name in summary:
                trial.set_user_attr(name, summary[name])
        return metric_value(summary, self.sweep.metric, run_dir)


def metric_value(summary: dict, metric: str, run_dir: Path) -> float:
    """The value at ``metric``'s dotted path in ``summary``."""
    value = summary
    for part in metric.split("."):
        if not isinstance(value, dict) or part not in value:
            raise TrialFailed(f"{run_dir / 'summary.json'}: no metric {metric!r}")
        value = value[part]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TrialFailed(f"{run_dir / 'summary.json'}: metric {metric!r} is {value!r}, not a number")
    return float(value)


def check_launch(launch: str | None) -> None:
    if launch is not None:
        try:
            shlex.split(launch)
        except ValueError as err:
            raise UserError(f"--launch {launch!r}: {err}") from None
