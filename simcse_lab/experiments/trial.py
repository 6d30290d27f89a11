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
from dataclasses import dataclass, field
from pathlib import Path

from simcse_lab.errors import UserError
from simcse_lab.experiments.study import claimed_elsewhere, trials_by_point
from simcse_lab.experiments.sweep_file import SweepFile

TRIALS = "trials"
RECORDED = ("test_after", "reproducibility", "best_dev_spearman", "best_step", "steps", "train_seconds")
# tests only: the module run as ``python -m MODULE train ...`` instead of simcse_lab (a fake, fast trainer)
TRAINER_HOOK = "SIMCSE_LAB_SWEEP_TRAINER"


class TrialFailed(Exception):
    """The training process of a trial failed (its log says why); the trial is FAIL, the worker goes on."""


class TrialTakenOver(Exception):
    """This worker's trial was failed by another worker while it ran (its heartbeat came late: a suspended or
    overloaded machine); the finished run was recorded as a new trial of its point (:meth:`TrialRunner.adopt`).
    Optuna then refuses to tell the failed trial (a ValueError out of ``optimize``), which :func:`work` expects."""


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
    taken_over: int | None = field(default=None, init=False)  # the trial another worker failed while it ran here

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
        why = claimed_elsewhere(trial.study, trial)  # a search's new trial has no key yet: None; its retry has one
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
        self.run_or_adopt(trial, command, run_dir)
        try:
            return self.record(trial, run_dir)
        except optuna.exceptions.UpdateFinishedTrialError:  # failed by another worker while being recorded
            self.adopt(trial, run_dir)

    def run_or_adopt(self, trial, command: list[str], run_dir: Path) -> None:
        """:meth:`run`; where another worker failed ``trial`` meanwhile, :meth:`adopt` its run (or, if the run
        failed too, say so and re-raise)."""
        try:
            self.run(command, run_dir)
        except TrialFailed as err:
            if not _still_running(trial):  # failed here and elsewhere: nothing to record
                self.taken_over = trial.number
                self.log(f"sweep: trial {trial.number} was failed by another worker while it ran here, and its "
                         f"run failed too: {err}")
            raise
        if not _still_running(trial):
            self.adopt(trial, run_dir)

    def adopt(self, trial, run_dir: Path):
        """The run of ``trial``, which another worker failed while it ran (its heartbeat came late: a suspended
        or overloaded machine), recorded as a new COMPLETE trial of its point, unless the point has one already
        (the report reads one trial per point); then :class:`TrialTakenOver`."""
        import optuna

        self.taken_over = trial.number
        summary = read_summary(run_dir)
        value = metric_value(summary, self.sweep.metric, run_dir)
        of_point = trials_by_point(trial.study)[trial.user_attrs["key"]]
        done = [t.number for t in of_point if t.state.name == "COMPLETE"]
        if done:
            what = f"not recorded again (trial {done[0]} completed the point)"
        else:
            frozen = next(t for t in of_point if t.number == trial.number)
            trial.study.add_trial(optuna.trial.create_trial(
                value=value, params=frozen.params, distributions=frozen.distributions,
                user_attrs={**frozen.user_attrs, **recorded(summary), "taken_over_from": trial.number}))
            what = "recorded as a new trial"
        self.log(f"sweep: trial {trial.number} was failed by another worker while it ran here (its heartbeat came "
                 f"late); its finished run {run_dir} is {what}")
        raise TrialTakenOver(trial.number)

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
        summary = read_summary(run_dir)
        for name, value in recorded(summary).items():
            trial.set_user_attr(name, value)
        return metric_value(summary, self.sweep.metric, run_dir)


def _still_running(trial) -> bool:
    """Whether ``trial`` is still RUNNING in the storage (not failed by another worker as stale)."""
    return trial.study.get_trials(deepcopy=False)[trial.number].state.name == "RUNNING"


def read_summary(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError) as err:
        raise TrialFailed(f"{run_dir / 'summary.json'}: cannot read it ({err})") from None


def recorded(summary: dict) -> dict:
    """What a trial keeps of its run's summary.json (user attributes)."""
    return {name: summary[name] for name in RECORDED if name in summary}


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
