"""Small file helpers: atomic writes, so nothing already written is left half-replaced."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_text(path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path, data) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")
