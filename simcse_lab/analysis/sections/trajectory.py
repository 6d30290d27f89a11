"""Trajectory: a training run point by point: alignment, uniformity and dev Spearman from its metrics.jsonl,
and (given the run directory) its starting model and every saved checkpoint measured in step order, as the
report's checkpoints are (sentence geometry, token dynamics). Reading the trainer's checkpoints is the
command's business (``reader``): the analysis package never imports training."""

from __future__ import annotations

import json
from pathlib import Path

from simcse_lab.analysis import inputs
from simcse_lab.analysis.sections.base import Section, fmt
from simcse_lab.analysis.sections.token_dynamics import DYNAMICS_HEAD, DYNAMICS_KEYS
from simcse_lab.errors import UserError
from simcse_lab.evaluation.tables import markdown_table


class Trajectory(Section):
    """``reader``: ``read(path) -> (run_dir, steps)`` checks a run directory's checkpoints;
    ``measure(run_dir, steps, measure_point) -> [point]`` measures them."""

    place = 70.0

    def __init__(self, reader=None):
        self.reader = reader
        self.entry: dict | None = None  # report.json's "trajectory"
        self.run_dir = self.rows = self.keys = None
        self.steps: list = []

    def add_flags(self, p) -> None:
        p.add_argument("--trajectory", default=None, metavar="RUN_DIR|METRICS_JSONL",
                       help="a training run directory: its saved checkpoints (train --keep-checkpoints 0 keeps them "
                            "all) and starting model measured in step order, plus its metrics.jsonl; or a "
                            "metrics.jsonl alone: alignment/uniformity and dev Spearman over training steps")

    def configure(self, args) -> None:
        path = args.trajectory
        if path and Path(path).is_dir():
            self.run_dir, self.steps = self.reader.read(path)
            run = self.run_dir
            self.entry = {"path": str(run.metrics) if run.metrics else None, "run_dir": path, "model": run.model,
                          "pooler": run.pooler, "pooler_note": run.pooler_note}
            if run.metrics is None:
                self.entry["metrics_note"] = f"No alignment/uniformity curve: {path} has no metrics.jsonl."
                return
            try:
                self.rows, self.keys = inputs.read_trajectory(run.metrics)
                self.entry.update(inputs.summarize_trajectory(self.rows, self.keys))
            except UserError as err:  # e.g. a run without dev evaluation (--eval-steps 0): said in the report
                self.entry["metrics_note"] = f"No alignment/uniformity curve: {err}."
        elif path:
            self.rows, self.keys = inputs.read_trajectory(path)
            self.entry = {"path": path, **inputs.summarize_trajectory(self.rows, self.keys)}

    def wants_sentences(self) -> bool:
        return self.run_dir is not None

    def measure_run(self, measure_point) -> None:
        """Every point of the run directory, measured by ``measure_point(encoder, label)``."""
        if self.run_dir is not None:
            self.entry["checkpoints"] = self.reader.measure(self.run_dir, self.steps, measure_point)

    def chapters(self, report: dict) -> list:
        t = report.get("trajectory")
        if not t:
            return []
        out = ["## Training trajectory", ""]
        if t.get("points"):
            out += [f"From `{t['path']}`: {t['points']} evaluation points.", "",
                    "```json", json.dumps({k: t[k] for k in ("first", "last", "best") if k in t}, indent=1),
                    "```", ""]
        elif t.get("metrics_note"):
            out += [t["metrics_note"], ""]
        if t.get("checkpoints"):
            out += [f"Checkpoints of `{t['run_dir']}` in step order (step 0: the starting model {t['model']}), "
                    f"pooler {t['pooler']}{t.get('pooler_note', '')}; sentence columns on the analysis sentences, "
                    "token columns on the last layer.", ""]
            head = ["step", "IsoScore", "mean cos", "align", "uniform"] + list(DYNAMICS_HEAD)
            rows = []
            for p in t["checkpoints"]:
                last = p["token_dynamics"]["layers"][-1] if "token_dynamics" in p else {}
                rows.append([str(p["step"])] + [fmt(p["sentence"][k]) for k in
                                                ("isoscore", "mean_cosine", "alignment", "uniformity")]
                            + [fmt(last.get(k)) for k in DYNAMICS_KEYS])
            out += [markdown_table(head, rows), ""]
        return [(self.place, out)]

    def figures(self, report: dict, arrays: dict, out_dir) -> list:
        from simcse_lab.analysis import plots

        out = []
        if self.rows:
            out.append((self.place, plots.trajectory(self.rows, self.keys, out_dir / "trajectory.png")))
        if self.entry and self.entry.get("checkpoints"):
            out.append((self.place, plots.checkpoint_trajectory(self.entry["checkpoints"],
                                                                out_dir / "checkpoint_trajectory.png")))
        return out

    def printed(self, report: dict) -> list[str]:
        t = self.entry or {}
        out = []
        if t.get("points"):
            out.append(f"trajectory: {t['points']} points, first {t['first']}, last {t['last']}")
        if t.get("checkpoints"):
            out.append(f"trajectory: {len(t['checkpoints'])} checkpoints measured (steps "
                       f"{', '.join(str(p['step']) for p in t['checkpoints'])})")
        return out
