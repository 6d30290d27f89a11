"""One rule for progress bars in every command: shown when stderr is a terminal.

So logs and pipes stay clean; ``--progress`` / ``--no-progress`` (or ``progress:`` in a training
config) override it, for the libraries' own bars too (datasets' "Generating train split" of a hub
dataset, the hub client's downloads): :func:`library_bars`."""

from __future__ import annotations

import os
import sys

# the libraries whose bars a command may trigger: (module, the switch it reads at import, its disabler)
LIBRARY_BARS = (("datasets", "HF_DATASETS_DISABLE_PROGRESS_BARS", "datasets.utils"),
                ("huggingface_hub", "HF_HUB_DISABLE_PROGRESS_BARS", "huggingface_hub.utils"))


def progress_default() -> bool:
    return sys.stderr.isatty()


def library_bars(progress: bool) -> None:
    """Without progress, the libraries' bars are off as well: through their environment switch when they are
    not imported yet (read at import, and inherited by worker processes), else through their own call."""
    if progress:
        return
    import importlib

    for module, variable, disabler in LIBRARY_BARS:
        os.environ[variable] = "1"
        if module in sys.modules:
            importlib.import_module(disabler).disable_progress_bars()
