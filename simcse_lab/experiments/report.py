"""The report of a sweep: per configuration (a grid point without its seed), mean ± std (n) over seeds of every
STS test task, their average, the dev metric and the geometry (alignment, uniformity, IsoScore), the
best-on-dev configuration, and a seed-distribution figure per configuration.

Read from the study alone (its completed trials' user attributes), in the grid's order, with no clock in it:
a finished sweep reports the same bytes whenever and wherever it is reported."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

from simcse_lab.errors import UserError
from simcse_lab.evaluation.sts import LABELS
from simcse_lab.evaluation.tables import markdown_table, text_table
from simcse_lab.experiments.study import STUDY_NAME, open_storage, trials_by_point
from simcse_lab.io import write_json, write_text

# the geometry a trial's test table records (summary.json test_after.geometry): name -> (where, key)
GEOMETRY = {"alignment": ("avg", "alignment"), "uniformity": ("avg", "uniformity"),
            "isoscore": ("isotropy", "isoscore"), "mean_cosine": ("isotropy", "mean_cosine"),
            "effective_rank": ("isotropy", "effective_rank")}
GEOMETRY_LABELS = {"alignment": "align", "uniformity": "uniform", "isoscore": "IsoScore", "mean_cosine": "mean cos",
                   "effective_rank": "eff. rank"}


def stats(values: list[float]) -> dict:
    """mean, sample standard deviation (None for one value) and n."""
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values)}


def shown(s: dict, digits: int = 2) -> str:
    if s["mean"] is None:
        return "-"
    return f"{s['mean']:.{digits}f}" + (f" ± {s['std']:.{digits}f}" if s["std"] is not None else "")


def trial_record(trial) -> dict:
    """What the report keeps of one completed trial: seed, run directory, the metric, the test table's numbers."""
    test = trial.user_attrs.get("test_after") or {}
    geometry = test.get("geometry") or {}
    return {"trial": trial.number, "point": trial.user_attrs["point"],
            "seed": (trial.user_attrs.get("options") or {}).get("seed"), "run_dir": trial.user_attrs.get("run_dir"),
            "metric": trial.value, "avg": test.get("avg"),
            "tasks": {task: r.get("spearman") for task, r in (test.get("tasks") or {}).items()},
            "geometry": {name: (geometry.get(where) or {}).get(key) for name, (where, key) in GEOMETRY.items()},
            "reproducibility": trial.user_attrs.get("reproducibility")}


def configurations(study) -> list[dict]:
    """The study's configurations in the grid's order, each with its completed trials (one per point)."""
    by_key = trials_by_point(study)
    out: dict[str, dict] = {}
    for point in study.user_attrs.get("points", []):
        entry = out.setdefault(point["configuration"], {
            "configuration": point["configuration"], "variant": point["variant"],
            "options": {k: v for k, v in point["options"].items() if k != "seed"}, "points": 0, "trials": []})
        entry["points"] += 1
        done = [t for t in by_key.get(point["key"], []) if t.state.name == "COMPLETE"]
        if done:
            entry["trials"].append(trial_record(done[0]))
    return list(out.values())


def summarise(entry: dict) -> dict:
    """mean ± std (n) of the metric, each task, the average and each geometry number over the seeds."""
    trials = entry["trials"]
    tasks = list(dict.fromkeys(t for r in trials for t in r["tasks"]))
    return {"metric": stats([r["metric"] for r in trials]), "avg": stats([r["avg"] for r in trials]),
            "tasks": {task: stats([r["tasks"].get(task) for r in trials]) for task in tasks},
            "geometry": {name: stats([r["geometry"][name] for r in trials]) for name in GEOMETRY}}


def best_on_dev(entries: list[dict], direction: str) -> dict | None:
    """The configuration with the best mean metric (ties: the first in the grid)."""
    scored = [e for e in entries if e["stats"]["metric"]["mean"] is not None]
    if not scored:
        return None
    sign = 1 if direction == "maximize" else -1
    best = max(scored, key=lambda e: (sign * e["stats"]["metric"]["mean"], -entries.index(e)))
    return {"configuration": best["configuration"], "metric": best["stats"]["metric"], "test_avg": best["stats"]["avg"]}


def machines(entries: list[dict]) -> list[str]:
    """The machines the trials ran on, from their reproducibility records."""
    seen = []
    for entry in entries:
        for r in entry["trials"]:
            rec = r["reproducibility"] or {}
            text = (f"{rec.get('gpu_model') or rec.get('cpu_model')} ({rec.get('device')}, {rec.get('precision')}, "
                    f"world size {rec.get('world_size')}; torch {rec.get('torch')}, simcse-lab {rec.get('simcse_lab')} "
                    f"{rec.get('git_commit')})")
            if text not in seen:
                seen.append(text)
    return seen


def sts_rows(entries: list[dict]) -> tuple[list[str], list[list[str]]]:
    tasks = list(dict.fromkeys(t for e in entries for t in e["stats"]["tasks"]))
    head = ["configuration", "n", *(LABELS.get(t, t) for t in tasks), "Avg.", "dev"]
    rows = [[e["configuration"], f"{len(e['trials'])}/{e['points']}",
             *(shown(e["stats"]["tasks"][t]) if t in e["stats"]["tasks"] else "-" for t in tasks),
             shown(e["stats"]["avg"]), shown(e["stats"]["metric"])] for e in entries]
    return head, rows


def geometry_rows(entries: list[dict]) -> tuple[list[str], list[list[str]]]:
    head = ["configuration", "n", *(GEOMETRY_LABELS[g] for g in GEOMETRY)]
    digits = {"effective_rank": 1}
    rows = [[e["configuration"], f"{len(e['trials'])}/{e['points']}",
             *(shown(e["stats"]["geometry"][g], digits.get(g, 3)) for g in GEOMETRY)] for e in entries]
    return head, rows


def build_report(study, command: str, settings: dict) -> dict:
    """report.json's content; ``command`` is the one that writes it."""
    entries = configurations(study)
    for entry in entries:
        entry["stats"] = summarise(entry)
    direction = settings.get("direction", "maximize")
    complete = sum(len(e["trials"]) for e in entries)
    return {"command": command, "sweep_file": settings.get("sweep_file"),
            "storage": settings.get("storage"), "metric": study.user_attrs.get("metric"), "direction": direction,
            "points": sum(e["points"] for e in entries), "complete": complete, "machines": machines(entries),
            "best_on_dev": best_on_dev(entries, direction), "configurations": entries}


def markdown(report: dict, figures: dict[str, str]) -> str:
    best = report["best_on_dev"]
    lines = [f"# Sweep report: {Path(report['sweep_file'] or '').name}", "",
             f"Command: `{report['command']}` (sweep file `{report['sweep_file']}`, storage `{report['storage']}`).",
             f"Trials ran on: {'; '.join(report['machines']) or '-'}.",
             f"{report['complete']} of {report['points']} grid points complete. Numbers: mean ± sample std over "
             f"seeds (n = completed seeds / seeds in the grid); STS test Spearman x100 of each run's selected "
             f"checkpoint; dev = {report['metric']}.", ""]
    if best:
        lines += [f"Best on dev ({report['metric']}, {report['direction']}): **{best['configuration']}**, dev "
                  f"{shown(best['metric'])}, test Avg. {shown(best['test_avg'])}.", ""]
    lines += ["## STS test (Spearman x100)", "", markdown_table(*sts_rows(report["configurations"])), "",
              "## Geometry of the test sentences (alignment, uniformity: Wang & Isola; IsoScore)", "",
              markdown_table(*geometry_rows(report["configurations"])), "", "## Seeds", ""]
    for entry in report["configurations"]:
        runs = ", ".join(f"seed {r['seed']}: {r['avg']:.2f} ({r['run_dir']})" for r in entry["trials"]
                         if r["avg"] is not None)
        lines.append(f"- {entry['configuration']}: {runs or 'no completed trial'}")
        if entry["configuration"] in figures:
            lines.append(f"  ![{entry['configuration']}]({figures[entry['configuration']]})")
    return "\n".join(lines) + "\n"


def printed(report: dict) -> str:
    sts, geometry = sts_rows(report["configurations"]), geometry_rows(report["configurations"])
    best = report["best_on_dev"]
    tail = (f"best on dev: {best['configuration']} (dev {shown(best['metric'])}, test Avg. {shown(best['test_avg'])})"
            if best else "no completed trial yet")
    return "\n\n".join([f"{report['complete']} of {report['points']} points complete (mean ± std over seeds)",
                        text_table(*sts, width=max(len(c) for r in sts[1] for c in r[1:])),
                        text_table(*geometry, width=max(len(c) for r in geometry[1] for c in r[1:])), tail])


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", name).strip("_") or "base"


def write_report(url: str, settings: dict, directory: Path, command: str) -> str:
    """``directory``/report.json, report.md and seeds-*.png from the study at ``url``; the printed tables."""
    import optuna

    from simcse_lab.experiments.figures import seed_distribution

    try:
        study = optuna.load_study(study_name=STUDY_NAME, storage=open_storage(url))
    except KeyError:
        raise UserError(f"{url}: holds no sweep study") from None
    report = build_report(study, command, settings)
    figures = {}
    for entry in report["configurations"]:
        if entry["trials"]:
            name = f"seeds-{slug(entry['configuration'])}.png"
            seed_distribution(entry, directory / name, f"{report['command']}; {'; '.join(report['machines'])}")
            figures[entry["configuration"]] = name
    write_json(directory / "report.json", report)
    write_text(directory / "report.md", markdown(report, figures))
    return printed(report) + f"\n\nwrote {directory / 'report.md'}, report.json and {len(figures)} figure(s)"
