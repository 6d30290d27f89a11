"""``eval --mteb``: mteb's own evaluators on a simcse-lab encoder, and mteb's own result files.

mteb is an optional extra (``pip install "simcse-lab[mteb]"``): :func:`require_mteb` is the one-line refusal
without it, and nothing here imports mteb before that check. :func:`run` evaluates each task with
``mteb.evaluate`` (mteb's evaluator, scores and result layout) and saves through mteb's ``ResultCache`` into
``DIR/results/<model name as path>/<revision>/<Task>.json`` beside ``model_meta.json`` and ``run_settings.jsonl``:
the files mteb's loader (``ResultCache(DIR).load_results``) and its submission tooling read. mteb's scores are in
[0, 1] (rounded to 6 digits in the files); simcse-lab's table shows them x 100, like its STS numbers.
"""

from __future__ import annotations

from simcse_lab.errors import UserError, first_line

EXTRA = 'pip install "simcse-lab[mteb]"'
METRIC = "main_score"


def require_mteb():
    """The ``mteb`` module, or one line saying which extra to install."""
    try:
        import mteb
    except ImportError as err:
        raise UserError(f"--mteb needs the mteb library, which is not installed ({first_line(err)}); "
                        f"install the extra: {EXTRA}") from None
    return mteb


def results_root(results_dir: str | None):
    """mteb's ResultCache on ``results_dir`` (None: mteb's default, ``$MTEB_CACHE`` or ``~/.cache/mteb``)."""
    from mteb.cache import ResultCache

    return ResultCache(results_dir) if results_dir else ResultCache()


def run(model, tasks: list, *, results_dir: str | None, batch_size: int, progress: bool, write: bool = True) -> dict:
    """Evaluate ``model`` (an mteb model, e.g. SimcseLabModel) on ``tasks`` (loaded); write mteb's result files
    when ``write`` (the main process); return simcse-lab's JSON-ready summary of mteb's scores."""
    import time

    import mteb

    cache = results_root(results_dir) if write else None
    meta = model.mteb_model_meta
    start = time.perf_counter()
    summary = {}
    for task in tasks:
        result = mteb.evaluate(model, task, cache=cache, overwrite_strategy="always", show_progress_bar=progress,
                               encode_kwargs={"batch_size": batch_size, "show_progress_bar": progress})
        task.unload_data()
        if result.exceptions:
            raise UserError(f"mteb task {task.metadata.name} failed: {first_line(result.exceptions[0])}")
        (task_result,) = result.task_results
        summary[task_result.task_name] = {
            "main_metric": task.metadata.main_score,
            "dataset_revision": task_result.dataset_revision,
            "splits": {split: {"main_score": task_result.get_score(splits=[split]), "subsets": entries}
                       for split, entries in task_result.scores.items()},
        }
    folder = cache.get_task_result_path(tasks[0].metadata.name, meta).parent if cache else None
    return {"mteb_version": mteb.__version__, "mteb_model": meta.name, "mteb_revision": meta.revision,
            "mteb_results": str(folder) if folder else None, "scale": "mteb scores in [0, 1]",
            "tasks": summary, "seconds": time.perf_counter() - start}


def format_table(summary: dict) -> str:
    """One row per task and split: mteb's main score x 100 (mean over its subsets, as mteb aggregates)."""
    from simcse_lab.evaluation.tables import text_table

    rows = [[name, split, task["main_metric"], f"{100 * s['main_score']:.2f}", str(len(s["subsets"]))]
            for name, task in summary["tasks"].items() for split, s in task["splits"].items()]
    return text_table(["mteb task", "split", "main metric", "score", "subsets"], rows, width=15, min_first=12)
