"""``simcse-lab sweep``: a grid (or random / TPE search) of training runs on an Optuna study, and its report.

``sweep SWEEP.yaml --output-dir DIR`` runs the trials (any number of workers, here or on other machines, join
by running the same command on the same storage); ``sweep report DIR`` writes DIR/report.md, report.json and
the seed-distribution figures."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

SETTINGS = "sweep.json"  # DIR/sweep.json: the storage and the sweep file a sweep ran with (for sweep report)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", metavar="SWEEP.yaml|report",
                   help="the sweep file to run, or 'report' followed by the sweep's directory")
    p.add_argument("directory", nargs="?", default=None, help="with 'report': the sweep's --output-dir")
    p.add_argument("--output-dir", default=None, help="the sweep's directory: DIR/trials/NNNN (one training run "
                                                      "per trial), DIR/sweep.db (the default storage), the report; "
                                                      "with 'report': where the report goes (default: DIR)")
    p.add_argument("--storage", default=None,
                   help="the Optuna storage: an RDB URL (postgresql://..., mysql+pymysql://..., sqlite:///...) or "
                        "journal:PATH (a journal file on a shared filesystem); default sqlite:///DIR/sweep.db")
    p.add_argument("--workers", type=int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument("--launch", default=None,
                   help="run each trial as 'accelerate launch OPTIONS -m simcse_lab train ...' "
                        "(e.g. \"--multi_gpu --num_processes 2\")")
    p.add_argument("--heartbeat", type=int, default=30,
                   help="seconds between a running trial's heartbeats; a trial silent for twice that (its worker "
                        "died) is queued again (default 30)")


def run(args) -> int:
    from simcse_lab.errors import UserError

    if args.what == "report":
        if args.directory is None:
            raise UserError("sweep report: name the sweep's directory (sweep report DIR [--output-dir OUT])")
        return report(Path(args.directory), args.storage, Path(args.output_dir or args.directory))
    if args.output_dir is None:
        raise UserError("sweep: --output-dir DIR is required")
    if args.workers < 1 or args.heartbeat < 1:
        raise UserError("sweep: --workers and --heartbeat must be at least 1")
    return sweep(args)


def _settings(url: str, sweep_file) -> dict:
    from sqlalchemy.engine import make_url

    try:
        shown = make_url(url).render_as_string(hide_password=True) if not url.startswith("journal:") else url
    except Exception:  # not a URL sqlalchemy parses: opening it already failed
        shown = url
    return {"storage": shown, "sweep_file": str(Path(sweep_file.path).resolve()), "fingerprint": sweep_file.fingerprint,
            "metric": sweep_file.metric, "direction": sweep_file.direction}


def sweep(args) -> int:
    from simcse_lab.experiments.study import enqueue_missing, open_storage, open_study, progress, storage_url, work
    from simcse_lab.experiments.sweep_file import read_sweep_file
    from simcse_lab.experiments.trial import TrialFailed, TrialRunner, check_launch
    from simcse_lab.io import claim_output_dir, write_json

    sweep_file = read_sweep_file(args.what)
    check_launch(args.launch)
    out = Path(args.output_dir)
    storage = open_storage(args.storage, args.heartbeat) if args.storage else None
    claim_output_dir(out, "sweep")
    url = storage_url(out, args.storage)
    storage = storage or open_storage(url, args.heartbeat)
    study = open_study(storage, sweep_file)
    write_json(out / SETTINGS, _settings(url, sweep_file))
    if sweep_file.search is None:
        points = sweep_file.points()
        queued = enqueue_missing(study, points)
        print(f"sweep: {len(points)} points, {queued} queued now; storage {url}", flush=True)
    if args.workers > 1:
        return _workers(args, url)
    runner = TrialRunner(sweep_file, out, args.launch, log=lambda m: print(m, flush=True))
    budget = sweep_file.search.n_trials if sweep_file.search else None
    work(study, runner, (TrialFailed,), args.heartbeat, budget, log=lambda m: print(m, flush=True))
    state = progress(study)
    print(f"sweep: {state.complete} complete, {state.failed} failed; report: simcse-lab sweep report {out}")
    return 0 if not state.failed else 1


def _workers(args, url: str) -> int:
    """``--workers N``: N worker processes of this same command, each with one worker; their worst exit code."""
    command = [sys.executable, "-m", "simcse_lab", "sweep", args.what, "--output-dir", args.output_dir,
               "--storage", url, "--workers", "1", "--heartbeat", str(args.heartbeat)]
    if args.launch is not None:
        command += ["--launch", args.launch]
    children = [subprocess.Popen(command) for _ in range(args.workers)]
    try:
        return max(child.wait() for child in children)
    except KeyboardInterrupt:
        for child in children:
            child.wait()
        raise


def report(directory: Path, storage: str | None, out: Path) -> int:
    """``sweep report DIR``: the report of the sweep in DIR, written into ``out`` (DIR unless --output-dir)."""
    import shlex

    from simcse_lab.errors import UserError
    from simcse_lab.experiments.report import write_report
    from simcse_lab.io import claim_output_dir

    settings_path = directory / SETTINGS
    try:
        settings = json.loads(settings_path.read_text())
    except (OSError, ValueError):
        raise UserError(f"{directory}: not a sweep directory (no readable {SETTINGS})") from None
    url = storage or settings["storage"]
    if "***" in url:
        raise UserError(f"{directory}: the sweep's storage needs a password; pass --storage URL")
    command = shlex.join(["simcse-lab", "sweep", "report", str(directory)] + (
        ["--output-dir", str(out)] if out != directory else []) + (["--storage", storage] if storage else []))
    if out != directory:
        claim_output_dir(out, "analysis")
    print(write_report(url, settings, out, command))
    return 0
