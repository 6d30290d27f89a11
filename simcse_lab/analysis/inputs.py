"""What an analysis report reads: checkpoint specs, the analysis sentences and their positive pairs,
corpora, a training run's metrics.jsonl and its train_config.json.

Light to import (no model code), so ``simcse-lab analyze`` checks all of its inputs before it loads
anything; the measuring is in :mod:`simcse_lab.analysis.report`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simcse_lab.data import sources
from simcse_lab.data.streaming import json_object
from simcse_lab.errors import InputError, UserError
from simcse_lab.evaluation.sts import POSITIVE_GOLD
from simcse_lab.modeling.pooling import check_pooler


@dataclass
class Checkpoint:
    model: str
    pooler: str | None

    @property
    def label(self) -> str:
        base = os.path.basename(os.path.normpath(self.model)) or self.model
        if base in ("best", "final"):  # a training run's models: name the run too
            base = "/".join(Path(os.path.normpath(self.model)).parts[-2:])
        return f"{base} [{self.pooler or 'default'}]"


def parse_checkpoint(spec: str, pooler: str | None = None) -> Checkpoint:
    """``MODEL`` or ``MODEL@POOLER``."""
    if "@" in spec:
        spec, pooler = spec.rsplit("@", 1)
        check_pooler(pooler, " in checkpoint spec")
    if not spec:
        raise UserError("empty model in checkpoint spec")
    return Checkpoint(spec, pooler)


@dataclass
class SentenceData:
    source: str
    sentences: list[str]
    pairs: list[tuple[int, int]] = field(default_factory=list)  # positive pairs, indices into sentences


def subsample(items: list, limit: int | None, seed: int) -> list:
    if limit is None or len(items) <= limit:
        return items
    rng = np.random.default_rng(seed)
    return [items[i] for i in sorted(rng.choice(len(items), limit, replace=False))]


def load_corpus(spec: str, split: str = "train", limit: int | None = None, seed: int = 0,
                unique: bool = True, columns: list[str] | None = None) -> list[str]:
    """Sentences of a data spec (:mod:`simcse_lab.data.sources`; pairs and triples are flattened);
    ``unique=False`` keeps repeated sentences (token frequencies must count every occurrence)."""
    sentences = sources.sentences(sources.resolve(spec, split, columns).rows)
    return subsample(list(dict.fromkeys(sentences)) if unique else sentences, limit, seed)


def load_sentence_data(spec: str = "stsb", split: str = "dev", limit: int | None = None,
                       seed: int = 0, columns: list[str] | None = None) -> SentenceData:
    """Analysis sentences and their positive pairs: STS pairs with gold > POSITIVE_GOLD, NLI (premise,
    entailment) and any (sentence, positive) columns; a text file or text set gives sentences only (no
    alignment). ``columns`` (``--columns``) names the sentence / positive columns of a file or dataset."""
    source = sources.resolve(spec, split, columns)
    data = source.rows
    raw_pairs: list[tuple[str, str]] = []
    if source.kind in ("nli_csv", "pairs"):
        raw_pairs = [(t[0], t[1]) for t in data]
    elif source.kind != "text":
        sets = data.values() if isinstance(data, dict) else [data]
        raw_pairs = [(a, b) for ps in sets for a, b, g in zip(ps.sent1, ps.sent2, ps.scores) if g > POSITIVE_GOLD]
    sentences = subsample(list(dict.fromkeys(sources.sentences(data))), limit, seed)
    index = {s: i for i, s in enumerate(sentences)}
    pairs = [(index[a], index[b]) for a, b in raw_pairs if a in index and b in index]
    if len(sentences) < 3:
        raise UserError(f"{spec}: need at least 3 distinct sentences to analyse, got {len(sentences)}")
    label = spec if source.name is None else f"{source.name}/{source.split}"
    return SentenceData(label, sentences, pairs)


# -- a training run's metrics.jsonl ---------------------------------------------------------------
# role -> the key simcse-lab's trainer writes in metrics.jsonl
_TRAJECTORY_KEYS = {"step": "step", "alignment": "alignment", "uniformity": "uniformity", "spearman": "dev_spearman"}


def read_trajectory(path) -> tuple[list[dict], dict[str, str]]:
    """The records of a training run's metrics.jsonl that carry alignment and uniformity, and the keys used."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "no such file")
    records = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():  # a blank line in metrics.jsonl is skipped, not an error
            records.append((lineno, json_object(path, lineno, line)))
    keys = {}
    for role, key in _TRAJECTORY_KEYS.items():
        found = key if any(key in r for _, r in records) else None
        if found is None and role != "spearman":
            raise InputError(path, None, f"no record has a {key!r} value (a simcse-lab metrics.jsonl expected)")
        keys[role] = found
    rows = []
    for lineno, rec in records:
        if rec.get(keys["alignment"]) is None or rec.get(keys["uniformity"]) is None:
            continue  # e.g. loss-only logging steps
        if rec.get(keys["step"]) is None:
            raise InputError(path, lineno, f"record with alignment/uniformity but no {keys['step']!r}")
        rows.append(rec)
    if not rows:
        raise InputError(path, None, "no record has both alignment and uniformity")
    if keys["spearman"] and any(r.get(keys["spearman"]) is None for r in rows):
        keys["spearman"] = None
    return rows, keys


def summarize_trajectory(rows: list[dict], keys: dict[str, str]) -> dict:
    first, last = rows[0], rows[-1]
    out = {"points": len(rows), "keys": keys,
           "first": {role: first[k] for role, k in keys.items() if k},
           "last": {role: last[k] for role, k in keys.items() if k}}
    if keys.get("spearman"):
        best = max(rows, key=lambda r: r[keys["spearman"]])
        out["best"] = {role: best[k] for role, k in keys.items() if k}
    return out


# -- a training run directory (analyze --trajectory RUN_DIR) ----------------------------------------------
@dataclass
class RunDir:
    """What ``analyze --trajectory RUN_DIR`` needs from a run besides its checkpoints (which the command
    lists and reads with the trainer's own functions): the starting model, the pooler every point is read
    with, and the metrics log if there is one."""

    path: Path
    model: str  # the starting model named in train_config.json (step 0)
    pooler: str
    pooler_note: str
    metrics: Path | None
    bidirectional: bool | None = None  # a decoder LLM's attention in training (None: not recorded)
    instruction: str = ""  # the text put before every input in training (--instruction; "": none)


def read_run_dir(path) -> RunDir:
    path = Path(path)
    config_path = path / "train_config.json"
    if not config_path.is_file():
        raise InputError(config_path, None, "no such file (--trajectory takes a simcse-lab training run directory "
                                            "or its metrics.jsonl)")
    try:
        cfg = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(config_path, None, f"not valid JSON ({err})") from None
    if not (isinstance(cfg, dict) and isinstance(cfg.get("model"), str) and isinstance(cfg.get("pooler"), str)):
        raise InputError(config_path, None, "no 'model' and 'pooler' strings (a simcse-lab train_config.json "
                                            "expected)")
    if cfg.get("lora_r") or cfg.get("init_adapter"):
        raise InputError(config_path, None, "a LoRA run (lora_r/init_adapter): its checkpoints hold the adapter only, "
                                            "not the weights a trajectory point is read from; analyze its best/ or "
                                            "final/ with --model instead")
    pooler, note = check_pooler(cfg["pooler"]), ""
    if pooler == "mask":
        raise InputError(config_path, None, "a run read through a template (pooler mask): its checkpoints would be "
                                            "read without it; analyze its best/ or final/ with --model instead")
    if pooler == "cls":  # the run's sentence vector without its MLP head, as training evaluates an unsup run
        pooler = "cls_before_pooler"
        note = (" (trained with cls + MLP in training only: evaluated without the MLP, as the run itself does)"
                if cfg.get("mlp_only_train") else
                " (trained with cls + a kept MLP, whose fresh initialisation at step 0 is not saved: every point "
                "is read without the MLP, for a like-for-like curve)")
    metrics = path / "metrics.jsonl"
    bidirectional = cfg.get("bidirectional") if isinstance(cfg.get("bidirectional"), bool) else None
    instruction = cfg.get("instruction", "")
    if not isinstance(instruction, str):
        raise InputError(config_path, None, f"'instruction' must be a string, not {instruction!r}")
    return RunDir(path, cfg["model"], pooler, note, metrics if metrics.is_file() else None, bidirectional,
                  instruction)
