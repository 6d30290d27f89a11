"""The geometry beside the STS scores, from the vectors the STS evaluation already encoded (no second pass).

Per task: alignment over its pairs with gold > ``POSITIVE_GOLD`` (SimCSE's p_pos: STS pairs "with a score higher
than 4"; a user's file on another scale: the same point of its range, e.g. 0.8 of 0-1, kept in its result) and uniformity over its distinct sentences (SimCSE's p_data: all its sentences); for every sentence
encoded, the isotropy measures of ``analyze`` (:func:`simcse_lab.evaluation.isotropy.spectral_profile`: mean
cosine, IsoScore, I(Z), effective rank, top-PC share). Rows are L2-normalised in float32, as
``analyze`` normalises them (:func:`unit_rows`), so the numbers equal ``analyze``'s on the same sentences.
"""

from __future__ import annotations

import numpy as np

from simcse_lab.evaluation.isotropy import spectral_profile
from simcse_lab.evaluation.tables import text_table
from simcse_lab.evaluation.vectors import alignment, l2_normalize, uniformity

ISOTROPY = {"mean_cosine": "mean cos", "isoscore": "IsoScore", "partition_isotropy": "I(Z)",
            "effective_rank": "eff. rank", "top_pc_share": "top PC"}


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """The rows every geometry number is computed on: L2-normalised in float32 (the encoders' precision)."""
    return l2_normalize(vectors, dtype=np.float32)


def task_geometry(unit: np.ndarray, rows: dict[str, int], pairsets, positive_gold: float) -> dict:
    """Alignment (pairs with gold > ``positive_gold``; None when a task has none) and uniformity (distinct
    sentences) of one task's PairSets, from ``unit`` rows indexed by sentence."""
    a = [rows[s] for ps in pairsets for s, g in zip(ps.sent1, ps.scores) if g > positive_gold]
    b = [rows[s] for ps in pairsets for s, g in zip(ps.sent2, ps.scores) if g > positive_gold]
    own = sorted({rows[s] for ps in pairsets for s in ps.sent1 + ps.sent2})
    return {"alignment": alignment(unit[a], unit[b]) if a else None, "alignment_pairs": len(a),
            "positive_gold": float(positive_gold), "uniformity": uniformity(unit[own]), "sentences": len(own)}


def cutoff_label(per_task: dict[str, dict]) -> str:
    """The alignment cut-off of the tasks: ``> 4.0`` when they share one, else each task's (``stsb > 4, x > 0.8``)."""
    cuts = {task: g["positive_gold"] for task, g in per_task.items()}
    if len(set(cuts.values())) == 1:
        return f"> {next(iter(cuts.values()))}"
    return ", ".join(f"{task} > {cut:g}" for task, cut in cuts.items())


def suite_geometry(unit: np.ndarray, per_task: dict[str, dict]) -> dict:
    """The top-level ``geometry`` entry: isotropy of every sentence encoded, the task means, the cut-off(s) (each
    task's own is in its result: a user's file on another scale cuts at the same point of its own range)."""
    aligned = [g["alignment"] for g in per_task.values() if g["alignment"] is not None]
    return {"positive_gold": cutoff_label(per_task), "normalised": "L2, float32",
            "isotropy": spectral_profile(unit),
            "avg": {"alignment": float(np.mean(aligned)) if aligned else None,
                    "uniformity": float(np.mean([g["uniformity"] for g in per_task.values()]))}}


def _cell(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def geometry_table(results: list[dict], names: list[str], labels: dict[str, str]) -> str:
    """Alignment and uniformity per task (and their means), then the isotropy of all sentences encoded,
    one row per result (results without geometry are left out); empty when none has it."""
    kept = [(r, n) for r, n in zip(results, names) if "geometry" in r]
    if not kept:
        return ""
    results, names = [r for r, _ in kept], [n for _, n in kept]
    tasks = list(results[0]["tasks"])
    cuts = [results[0]["tasks"][t].get("positive_gold") for t in tasks]  # None: a result written before they were kept
    shared = len(set(cuts)) == 1 or None in cuts
    head = [f"geometry (gold {results[0]['geometry']['positive_gold'] if shared else '> the row below'})"]
    head += [labels.get(t, t) for t in tasks]
    rows = [] if shared else [["positive: gold >"] + [f"{cut:g}" for cut in cuts] + [""]]
    rows += [[f"{name}  {metric}"] + [_cell(r["tasks"][t][metric]) for t in tasks]
             + [_cell(r["geometry"]["avg"][metric])]
             for metric in ("alignment", "uniformity") for name, r in zip(names, results)]
    iso_head = [f"isotropy of the {results[0]['geometry']['isotropy']['n']} sentences"] + list(ISOTROPY.values())
    iso_rows = [[name] + [_cell(r["geometry"]["isotropy"][k], 1 if k == "effective_rank" else 3) for k in ISOTROPY]
                for name, r in zip(names, results)]
    return (text_table(head + ["Avg."], rows, width=7, min_first=12) + "\n\n"
            + text_table(iso_head, iso_rows, width=9, min_first=12))
