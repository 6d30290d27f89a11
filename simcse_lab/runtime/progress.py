"""One rule for progress bars in every command: shown when stderr is a terminal.

So logs and pipes stay clean; ``--progress`` / ``--no-progress`` (or ``progress:`` in a training
config) override it."""

from __future__ import annotations

import sys


def progress_default() -> bool:
    return sys.stderr.isatty()
