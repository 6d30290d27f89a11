"""The sweep's Optuna study: its storage (SQLite by default, any RDB URL, or a journal file), the grid points
claimed through it, and one worker's loop.

Every grid point is enqueued once with its key (a user attribute); a worker pops a waiting trial (Optuna sets it
RUNNING: atomic under PostgreSQL/MySQL row locks and the journal's ordered log; on SQLite only because every
transaction here begins with the write lock, :func:`_begin_immediate`) and runs it unless the same point already
completed or an earlier trial holds it, so several workers, on one machine or many, never run a point twice. A
worker keeps its running trial's heartbeat; the trial of a worker that died (kill -9, a lost machine) goes stale, is
failed, and Optuna's ``RetryHeartbeatStaleTrialCallback`` queues it again for any worker. A sweep started again
enqueues the points that have no completed, running or waiting trial and continues; a finished trial is never run
again."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from simcse_lab.errors import UserError, first_line
from simcse_lab.experiments.sweep_file import Point, SweepFile

STUDY_NAME = "sweep"
JOURNAL = "journal:"
MAX_RETRY = 3  # a trial whose worker died is queued again at most this many times
LIVE = ("COMPLETE", "RUNNING", "WAITING")


def storage_url(output_dir: Path, storage: str | None) -> str:
    """``--storage``, else SQLite at DIR/sweep.db."""
    return storage or f"sqlite:///{(Path(output_dir) / 'sweep.db').resolve()}"


def _journal_storage(path: str, heartbeat: int, callback):
    """A journal file (a shared filesystem for many machines) with Optuna's heartbeat interface: the journal
    backend keeps no heartbeat, so each beat is a system attribute of the running trial."""
    from optuna.storages import JournalStorage
    from optuna.storages._heartbeat import BaseHeartbeat
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
        def record_heartbeat(self, trial_id: int) -> None:
            self.set_trial_system_attr(trial_id, "heartbeat", time.time())

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            now = time.time()
            running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
            return [t._trial_id for t in running
                    if now - t.system_attrs.get("heartbeat", t.datetime_start.timestamp()) > 2 * heartbeat]

        def get_heartbeat_interval(self) -> int:
            return heartbeat

        def get_heartbeat_stale_trial_callback(self):
            return callback

    return HeartbeatJournalStorage(JournalFileBackend(path))


def _begin_immediate(engine) -> None:
    """Every transaction on ``engine`` begins with SQLite's write lock (BEGIN IMMEDIATE). Optuna pops a waiting
    trial by reading its state and then setting it RUNNING, relying on SELECT ... FOR UPDATE, which SQLite ignores;
    and Python's sqlite3 runs that read outside any transaction. Two workers then both read WAITING and both set
    RUNNING: both run the same trial (measured: 15 of 300 trials popped twice by two processes). With the lock
    taken at BEGIN, the read and the write are one step; other workers wait (the driver's timeout)."""
    from sqlalchemy import event

    event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))


def open_storage(url: str, heartbeat: int = 30, attempts: int = 3):
    """The storage at ``url`` with a heartbeat every ``heartbeat`` seconds (stale after twice that); one line
    when it cannot be opened. Workers starting together race to create the tables: the loser tries again."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # the heartbeat: experimental since 2.8
    callback = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
    if url.startswith(JOURNAL):
        path = Path(url[len(JOURNAL):]).expanduser()
        if not path.parent.is_dir():
            raise UserError(f"--storage {url}: cannot open it (no directory {path.parent})")
        return _journal_storage(str(path), heartbeat, callback)
    sqlite = url.startswith("sqlite")
    # SQLite: the driver's own transactions off (isolation_level None), each one begun IMMEDIATE (below)
    engine = {"connect_args": {"timeout": 120, "isolation_level": None}} if sqlite else None
    for attempt in range(attempts):
        try:
            storage = RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat,
                                 grace_period=2 * heartbeat, heartbeat_stale_trial_callback=callback)
            if sqlite:
                _begin_immediate(storage.engine)
            return storage
        except Exception as err:  # sqlalchemy's URL, driver and connection errors; the table-creation race
            if attempt + 1 == attempts or type(err).__name__ not in ("IntegrityError", "OperationalError"):
                raise UserError(f"--storage {url}: cannot open it ({type(err).__name__}: "
                                f"{first_line(err, 200)})") from None
            time.sleep(1 + attempt)


def open_study(storage, sweep: SweepFile):
    """The study in ``storage``, created if absent; one made from another sweep file is refused."""
    import optuna

    sampler = None
    if sweep.search is not None:
        seed = sweep.search.seed
        sampler = (optuna.samplers.RandomSampler(seed=seed) if sweep.search.sampler == "random"
                   else optuna.samplers.TPESampler(seed=seed))
    study = optuna.create_study(storage=storage, study_name=STUDY_NAME, direction=sweep.direction,
                                sampler=sampler, load_if_exists=True)
    made_from = study.user_attrs.get("fingerprint")
    if made_from is None:
        study.set_user_attr("fingerprint", sweep.fingerprint)
        study.set_user_attr("metric", sweep.metric)
        study.set_user_attr("points", [{"index": p.index, "key": p.key, "configuration": p.configuration,
                                        "variant": p.variant, "options": p.options} for p in sweep.points()])
    elif made_from != sweep.fingerprint:
        raise UserError(f"the study in this storage was made from another sweep file (fingerprint {made_from}, "
                        f"{sweep.path} is {sweep.fingerprint}); use another --output-dir or --storage")
    return study


def trials_by_point(study) -> dict[str, list]:
    """point key -> the study's trials of that point, oldest first."""
    out: dict[str, list] = {}
    for trial in study.get_trials(deepcopy=False):
        key = trial.user_attrs.get("key")
        if key is not None:
            out.setdefault(key, []).append(trial)
    return out


def run_order(points: list[Point]) -> list[Point]:
    """The points in the order they run: each configuration's first point (its first seed), then each one's
    second, ...: a sweep stopped early has as many seeds of every configuration, give or take one."""
    rank, seen = {}, {}
    for point in points:
        rank[point.index] = seen.get(point.configuration, 0)
        seen[point.configuration] = rank[point.index] + 1
    return sorted(points, key=lambda p: (rank[p.index], p.index))


def enqueue_missing(study, points: list[Point]) -> int:
    """Queue each point that has no completed, running or waiting trial (in :func:`run_order`); the number
    queued."""
    held = {key for key, trials in trials_by_point(study).items() if any(t.state.name in LIVE for t in trials)}
    missing = [p for p in run_order(points) if p.key not in held]
    for point in missing:
        study.enqueue_trial({}, user_attrs={"key": point.key, "point": point.index,
                                            "configuration": point.configuration})
    return len(missing)


def claimed_elsewhere(study, trial) -> str | None:
    """Why ``trial`` (just popped) must not run its point: another trial of the point completed, or an earlier
    one is running or waiting. None: it is this trial's to run."""
    key = trial.user_attrs.get("key")
    for other in trials_by_point(study).get(key, []):
        if other.number == trial.number:
            continue
        if other.state.name == "COMPLETE":
            return f"trial {other.number} completed this point"
        if other.state.name in ("RUNNING", "WAITING") and other.number < trial.number:
            return f"trial {other.number} holds this point"
    return None


@dataclass
class Progress:
    waiting: int
    running: int
    complete: int
    failed: int


def progress(study) -> Progress:
    """The counts of the study's grid-point trials by state (failed: points whose last trial failed)."""
    counts = {"WAITING": 0, "RUNNING": 0, "COMPLETE": 0}
    failed = 0
    for trials in trials_by_point(study).values():
        states = [t.state.name for t in trials]
        for state in counts:
            counts[state] += state in states
        failed += not any(s in LIVE for s in states)
    return Progress(counts["WAITING"], counts["RUNNING"], counts["COMPLETE"], failed)


def work(study, objective, catch: tuple, heartbeat: int, budget: int | None = None, log=print) -> None:
    """One worker: run waiting trials until none is left (a search: new ones too, until ``budget`` trials are
    complete, running or waiting); while other workers' trials still run, wait (a dead worker's trial goes
    stale after two heartbeats and comes back as a waiting one). ``objective``: a
    :class:`~simcse_lab.experiments.trial.TrialRunner`, whose ``taken_over`` names a trial that another worker
    failed as stale while it ran here (its run recorded as a new trial where it finished): the worker goes on."""
    from optuna.storages import fail_stale_trials

    said = None
    while True:
        fail_stale_trials(study)
        state = progress(study)
        if state.waiting or (budget is not None and state.waiting + state.running + state.complete < budget):
            objective.taken_over = None
            try:
                study.optimize(objective, n_trials=1, catch=catch)
            except Exception:
                if objective.taken_over is None:
                    raise  # not a trial that another worker failed while it ran here (Optuna cannot tell that one)
        elif state.running:
            if said != state.running:
                log(f"sweep: {state.running} trial(s) running in other workers; waiting for them")
            said = state.running
            time.sleep(heartbeat)
        else:
            return
