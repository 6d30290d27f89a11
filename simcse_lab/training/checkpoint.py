"""Resumable training state, written atomically.

A checkpoint is ``OUTPUT/checkpoints/step-NNNNNNN/`` holding ``state.pt`` (model, optimizer, scheduler,
step, best dev score, objective state such as ESimCSE's queue and momentum encoder) and one
``rng-RANK.pt`` per process (python, numpy, torch RNG states). It is written into a temporary
directory and renamed into place once complete, so a checkpoint interrupted half-way (kill -9) is
never taken as the latest: only ``step-*`` directories count, never ``.tmp-*``.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from simcse_lab.errors import UserError
from simcse_lab.io import replace_dir_atomically

STEP_DIR = re.compile(r"^step-(\d+)$")


def rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def latest_checkpoint(output_dir) -> Path | None:
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return None
    steps = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return max(steps)[1] if steps else None


def save_checkpoint(output_dir, step: int, state: dict, accelerator, keep: int = 2) -> Path:
    """Collective: every process calls it. ``state`` only matters on the main process."""
    root = Path(output_dir) / "checkpoints"
    final = root / f"step-{step:07d}"
    tmp = root / f".tmp-step-{step:07d}"
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    accelerator.wait_for_everyone()
    torch.save(rng_state(), tmp / f"rng-{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        torch.save(state, tmp / "state.pt")
        replace_dir_atomically(tmp, final)
        older = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)))
        for _, path in older[:-keep]:
            shutil.rmtree(path, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(path: Path, process_index: int) -> tuple[dict, dict]:
    """(state, this process's rng state)."""
    rng_file = path / f"rng-{process_index}.pt"
    if not rng_file.is_file():
        raise UserError(f"{path}: no RNG state for process {process_index} (saved with fewer processes?)")
    try:
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
        rng = torch.load(rng_file, weights_only=False)
    except (OSError, RuntimeError, EOFError) as err:
        raise UserError(f"{path}: unreadable checkpoint ({err})") from None
    return state, rng
