"""``compare``'s reports (two models on the same STS pairs, groups of runs over seeds): JSON, tables, markdown.

Every difference is reported with its 95% interval, and the words say only what the interval says: that it
excludes 0 (the data show a difference, in its sign) or covers 0 (they do not show one); never a ranking
without the interval beside it. The tests are in :mod:`simcse_lab.evaluation.significance` (pairs) and
:mod:`simcse_lab.evaluation.seed_groups` (runs).
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

from simcse_lab.evaluation.pair_scores import ScoredResult
from simcse_lab.evaluation.run_results import RunResult
from simcse_lab.evaluation.seed_groups import MIN_RUNS, group_test
from simcse_lab.evaluation.significance import holm, paired_tests
from simcse_lab.evaluation.sts import LABELS
from simcse_lab.evaluation.tables import markdown_table, text_table
from simcse_lab.evaluation.tasks.sts import RANGE

AVG = "avg"
ASO_THRESHOLD = 0.5  # deepsig's reading of ε_min: below it, the first almost stochastically dominates the second
ASO_STRICT = 0.2     # the stricter threshold deepsig's documentation gives; between the two, the order is weak


def label(task: str) -> str:
    """A column or row head: SentEval's names, a user's file ``sts:PATH[:LOW-HIGH]`` by its file's stem."""
    if task.startswith("sts:"):
        return Path(RANGE.sub(r"\g<path>", task[4:])).stem
    return "Avg." if task == AVG else LABELS.get(task, task)


def n_runs(n: int) -> str:
    return f"{n} run" + "s" * (n != 1)


def signed(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:+.{digits}f}"


def interval_words(ci) -> str:
    if ci is None:
        return "no interval (n too small)"
    return "excludes 0" if ci[0] > 0 or ci[1] < 0 else "covers 0"


# -- two models on the same pairs ------------------------------------------------------------------------------
def paired_report(a: ScoredResult, b: ScoredResult, tasks: list[str], resamples: int, seed: int) -> dict:
    """Per task and for the average: Spearman of A and B, Δ = A - B, its paired bootstrap interval, the paired
    permutation p-value and Holm's adjustment over the rows (the tasks and the average)."""
    tests, average = paired_tests([(a.tasks[t].cosine, b.tasks[t].cosine, a.tasks[t].gold) for t in tasks],
                                  resamples, seed)
    adjusted = holm([t.p for t in tests] + [average.p])
    rows = [{"task": task, **test.summary(), "p_holm": p, "ci_excludes_0": interval_words(test.ci) == "excludes 0"}
            for task, test, p in zip(tasks + [AVG], tests + [average], adjusted)]
    report = {"kind": "paired", "a": a.label, "b": b.label, "sources": {"a": a.source, "b": b.source},
              "method": {"difference": "Spearman x100 of A minus B, on the same pairs",
                         "interval": f"95% percentile paired bootstrap over pairs, {resamples} resamples, seed {seed}",
                         "p": f"two-sided paired permutation test (each pair's ranks under A and B swapped), "
                              f"{resamples} permutations",
                         "holm": f"Holm over the {len(rows)} rows (tasks and average)",
                         "average": "mean over tasks; each draw the mean of one independent draw per task"},
              "rows": rows}
    report["verdict"] = paired_verdict(report)
    return report


def paired_verdict(report: dict) -> str:
    avg = report["rows"][-1]
    words = interval_words((avg["ci_low"], avg["ci_high"]))
    reading = (f"on these pairs {'A' if avg['delta'] > 0 else 'B'} scores higher" if words == "excludes 0"
               else "these pairs do not show a difference")
    return (f"Avg. Spearman, A - B = {signed(avg['delta'])} points, 95% CI [{signed(avg['ci_low'])}, "
            f"{signed(avg['ci_high'])}] over {avg['n']} pairs: the interval {words}, {reading} (permutation p = "
            f"{avg['p_permutation']:.4f}, Holm {avg['p_holm']:.4f}).")


def paired_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    head = ["task", "n", "A", "B", "Δ (A-B)", "CI low", "CI high", "p", "p Holm", "CI vs 0"]
    rows = [[label(r["task"]), str(r["n"]), f"{r['spearman_a']:.2f}", f"{r['spearman_b']:.2f}", signed(r["delta"]),
             signed(r["ci_low"]), signed(r["ci_high"]), f"{r['p_permutation']:.4f}", f"{r['p_holm']:.4f}",
             "excludes" if r["ci_excludes_0"] else "covers"] for r in report["rows"]]
    return head, rows


# -- groups of runs over seeds ---------------------------------------------------------------------------------
def group_report(groups: dict[str, list[RunResult]], tasks: list[str], resamples: int, seed: int,
                 aso: str = "all") -> dict:
    """Each pair of groups (in the order named): per task and for the average (each run's mean over ``tasks``),
    mean ± std (n) per group, Δ of the means with its intervals and ASO both ways (``aso``: in every column,
    only the average's, or none: deepsig takes seconds per column)."""
    columns = tasks + [AVG]
    with_aso = {"all": columns, "avg": [AVG], "none": []}[aso]

    def scores(runs: list[RunResult], task: str) -> list[float]:
        return [sum(r.spearman[t] for t in tasks) / len(tasks) if task == AVG else r.spearman[task] for r in runs]

    comparisons = []
    for (name_a, runs_a), (name_b, runs_b) in combinations(groups.items(), 2):
        rows = []
        for task in columns:
            test = group_test(scores(runs_a, task), scores(runs_b, task), resamples, seed, len(with_aso),
                              task in with_aso)
            rows.append({"task": task, **test.summary()})
        comparisons.append({"a": name_a, "b": name_b, "rows": rows,
                            "verdict": group_verdict(name_a, name_b, rows[-1])})
    return {"kind": "groups", "groups": {name: [r.source for r in runs] for name, runs in groups.items()},
            "method": {"difference": "mean Spearman x100 of group A minus group B (runs as samples)",
                       "interval": f"95% percentile bootstrap over runs (groups resampled independently), "
                                   f"{resamples} resamples, seed {seed}; Welch's t interval beside it",
                       "aso": (f"deepsig.aso in {len(with_aso)} column(s), confidence 0.95 Bonferroni-corrected for "
                               f"them; ε_min < {ASO_THRESHOLD}: the first almost stochastically dominates the "
                               f"second (deepsig's rule), only weakly unless it is also below {ASO_STRICT}, the "
                               "stricter one") if with_aso else "not computed",
                       "min_runs": f"no interval or ASO below {MIN_RUNS} runs in a group"},
            "comparisons": comparisons}


def aso_words(a: str, b: str, eps_ab: float | None, eps_ba: float | None) -> str:
    if eps_ab is None:
        return "no ASO"
    shown = f"ε_min({a} over {b}) = {eps_ab:.2f}, ε_min({b} over {a}) = {eps_ba:.2f}"
    below = [x for x, e in ((a, eps_ab), (b, eps_ba)) if e < ASO_THRESHOLD]
    if len(below) == 1:
        other = b if below[0] == a else a
        if min(eps_ab, eps_ba) < ASO_STRICT:
            return f"{shown}: {below[0]} almost stochastically dominates {other} (ε_min < {ASO_STRICT})"
        return (f"{shown}: {below[0]} almost stochastically dominates {other} only weakly (ε_min below "
                f"{ASO_THRESHOLD}, not below the stricter {ASO_STRICT})")
    return f"{shown}: {'both' if below else 'neither'} below {ASO_THRESHOLD}, no almost stochastic order"


def group_verdict(a: str, b: str, avg: dict) -> str:
    if avg["ci"] is None:
        return (f"Avg. Spearman, {a} - {b} = {signed(avg['delta'])} points over {n_runs(avg['n_a'])} vs "
                f"{n_runs(avg['n_b'])}: {avg['note']}.")
    boot = interval_words(avg["ci"])
    welch = interval_words(avg["welch_ci"]) if avg["welch_ci"] else "is not defined (no spread)"
    plural = {"excludes 0": "exclude 0", "covers 0": "cover 0"}
    both = (f"both intervals {plural[boot]}" if boot == welch
            else f"the bootstrap interval {boot}, Welch's {welch}")
    higher = a if avg["delta"] > 0 else b
    reading = (f"over these runs {higher} scores higher" if boot == "excludes 0" and welch != "covers 0"
               else "these runs do not show a difference")
    ci, wci = avg["ci"], avg["welch_ci"] or [None, None]
    return (f"Avg. Spearman, {a} - {b} = {signed(avg['delta'])} points over {n_runs(avg['n_a'])} vs "
            f"{n_runs(avg['n_b'])}, 95% bootstrap CI [{signed(ci[0])}, {signed(ci[1])}], Welch [{signed(wci[0])}, "
            f"{signed(wci[1])}]: {both}, {reading}; "
            f"{aso_words(a, b, avg['aso_eps_min_a_over_b'], avg['aso_eps_min_b_over_a'])}.")


def group_rows(comparison: dict) -> tuple[list[str], list[list[str]]]:
    a, b = comparison["a"], comparison["b"]
    head = ["task", f"{a} mean", "std", f"{b} mean", "std", "Δ (A-B)", "boot low", "boot high", "Welch low",
            "Welch high", "ε(A>B)", "ε(B>A)"]

    def pm(x):
        return "-" if x is None else f"{x:.2f}"

    rows = [[label(r["task"]), f"{r['mean_a']:.2f}", pm(r["std_a"]), f"{r['mean_b']:.2f}", pm(r["std_b"]),
             signed(r["delta"]), *[signed(x) for x in (r["ci"] or [None, None])],
             *[signed(x) for x in (r["welch_ci"] or [None, None])], pm(r["aso_eps_min_a_over_b"]),
             pm(r["aso_eps_min_b_over_a"])] for r in comparison["rows"]]
    return head, rows


# -- rendering -------------------------------------------------------------------------------------------------
def sections(report: dict) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, head, rows, verdict) of each table of ``report``."""
    if report["kind"] == "paired":
        head, rows = paired_rows(report)
        return [(f"A = {report['a']}, B = {report['b']}", head, rows, report["verdict"])]
    out = []
    for c in report["comparisons"]:
        n_a, n_b = c["rows"][-1]["n_a"], c["rows"][-1]["n_b"]
        head, rows = group_rows(c)
        out.append((f"A = {c['a']} ({n_runs(n_a)}), B = {c['b']} ({n_runs(n_b)})", head, rows, c["verdict"]))
    return out


def format_text(report: dict) -> str:
    parts = [f"{title}\n{text_table(head, rows, width=9, min_first=7)}\n{verdict}"
             for title, head, rows, verdict in sections(report)]
    method = "\n".join(f"  {k}: {v}" for k, v in report["method"].items())
    return "\n\n".join(parts) + f"\n\nmethod:\n{method}"


def format_markdown(report: dict, command: str) -> str:
    parts = [f"**{title}**\n\n{markdown_table(head, rows)}\n\n{verdict}"
             for title, head, rows, verdict in sections(report)]
    method = "\n".join(f"- {k}: {v}" for k, v in report["method"].items())
    warned = "".join(f"**Warning**: {line}\n\n" for line in report.get("warnings", []))
    return f"# compare\n\n```\n{command}\n```\n\n{warned}" + "\n\n".join(parts) + f"\n\nMethod:\n\n{method}\n"
