"""The sweep report's figure: one configuration's seed distribution, task by task (box plot + every seed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from simcse_lab.evaluation.sts import LABELS  # noqa: E402
from simcse_lab.io import atomic_path  # noqa: E402


def seed_distribution(entry: dict, path, caption: str) -> str:
    """Per STS task and the average: a box over the configuration's seeds and each seed as a point (spread
    by its order, no random jitter, so the file is the same on every run)."""
    trials = entry["trials"]
    tasks = list(dict.fromkeys(t for r in trials for t in r["tasks"]))
    columns = [[r["tasks"].get(t) for r in trials] for t in tasks] + [[r["avg"] for r in trials]]
    columns = [[v for v in c if v is not None] for c in columns]
    labels = [LABELS.get(t, t) for t in tasks] + ["Avg."]
    fig, ax = plt.subplots(figsize=(1.0 * len(labels) + 2, 4.0))
    ax.boxplot(columns, positions=range(len(labels)), widths=0.5, showfliers=False)
    spread = max(len(trials) - 1, 1)
    for x, values in enumerate(columns):
        xs = [x - 0.15 + 0.3 * i / spread for i in range(len(values))]
        ax.scatter(xs, values, s=14, zorder=3, color="C0")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("STS test Spearman x100")
    seeds = ", ".join(str(r["seed"]) for r in trials)
    ax.set_title(f"{entry['configuration']} (seeds {seeds})", fontsize=10)
    fig.text(0.01, -0.02, caption, fontsize=6, ha="left", va="top", wrap=True)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100, bbox_inches="tight", metadata={"Software": None})
    finally:
        plt.close(fig)
    return str(path)
