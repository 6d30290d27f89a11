"""The training examples: ``--data`` in the one spec syntax, checked before any model loads, then tokenised
at corpus scale by :mod:`simcse_lab.data.training_data` (Arrow, fingerprint-cached, memory-mapped).

The objective declares what it reads (``data_columns``, ``with_index`` on its class); the columns are
``--columns`` or a known naming. The items are what the objective's ``collate`` expects: token id lists
for sentence data, (anchor, positive, negative) id triplets for ``sup``, (sentence index, ids) for
``esimcse``; the loop fetches a step's rows with ``examples.take(indices)``."""

from __future__ import annotations

from simcse_lab.data import training_data
from simcse_lab.data.columns import choose_columns, listing
from simcse_lab.data.spec import DataSpec, parse_spec
from simcse_lab.data.streaming import check_column_types, check_first_row, source_columns
from simcse_lab.errors import UserError
from simcse_lab.evaluation.tasks import parse_select
from simcse_lab.training.config import TrainConfig

SHAPES = {1: "sentences", 2: "(sentence, positive) pairs", 3: "(sent0, sent1, hard_neg) triplets"}


def objective_class(name: str):
    from simcse_lab.training.objectives import OBJECTIVES

    return OBJECTIVES[name]


def check_training_data(cfg: TrainConfig, fetch: bool = True) -> tuple[DataSpec, list[str]]:
    """``cfg.data`` parsed (a registry dataset fetched and verified on first use unless ``fetch`` is False) and
    the columns ``cfg.objective`` will read, checked without reading the rows (before any model loads)."""
    spec = parse_spec(cfg.data, default_split="train", fetch=fetch)
    needed = objective_class(cfg.objective).data_columns
    available = source_columns(spec)
    if cfg.column_names is None and len(available) < needed:
        raise UserError(f"{spec.describe()}: objective {cfg.objective} needs {SHAPES.get(needed, f'{needed} columns')}"
                        f" (e.g. --data nli), this source has {listing(available)}; or name them with --columns")
    chosen = choose_columns(available, needed, cfg.column_names, spec.describe())
    check_column_types(spec, chosen)
    check_first_row(spec, chosen)
    return spec, chosen


def data_identity(cfg: TrainConfig) -> dict:
    """What a run trains on, as its summary and checkpoints record it (and ``--resume`` checks it): the content
    fingerprint of ``cfg.data`` (the one its tokenised cache is keyed by: ``DataSpec.fingerprint``, a file's
    sha256 read once per file state), the columns read, and with ``--select sts:FILE:METRIC`` that file's sha256
    (the checkpoint is chosen on it). Computed before any model loads."""
    spec, columns = check_training_data(cfg)
    identity = {"fingerprint": spec.fingerprint(), "columns": columns}
    select_file = getattr(parse_select(cfg.select).task, "path", None)
    if select_file is not None:  # --select sts:FILE:METRIC: the checkpoint is chosen on that file's content
        from simcse_lab.data.registry import sha256_file

        identity["select_sha256"] = sha256_file(select_file)
    return identity


def load_training_examples(cfg: TrainConfig, tokenizer, vocab_size: int | None = None,
                           data: dict | None = None) -> training_data.TrainingExamples:
    """The examples of ``cfg.data`` for ``cfg.objective``: tokenised once per (corpus, tokenizer, max length,
    columns), memory-mapped, indexable by int and by a batch of ints (``take``); every id below ``vocab_size``
    (the model's input embeddings) when given. ``data``: what :func:`data_identity` found (its columns and
    fingerprint), so that the source is not checked and hashed again."""
    objective = objective_class(cfg.objective)
    if data is None:
        data = {"fingerprint": None, "columns": check_training_data(cfg)[1]}
    options = training_data.LoadOptions(progress=cfg.progress, vocab_size=vocab_size, fingerprint=data["fingerprint"])
    return training_data.load_training_examples(cfg.data, tokenizer, cfg.max_seq_len, objective.data_columns,
                                                with_index=objective.with_index, columns=data["columns"],
                                                prefix=cfg.instruction, options=options)
