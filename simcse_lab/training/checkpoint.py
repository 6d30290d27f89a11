"""Resumable training state, written atomically and read without running any code.

A checkpoint is ``OUTPUT/checkpoints/step-NNNNNNN/`` holding ``state.pt`` (model, optimizer, scheduler,
step, best dev score, objective state such as ESimCSE's queue and momentum encoder), one
``rng-RANK.pt`` per process (python, numpy, torch RNG states) and ``checksums.json`` (the sha256 of
each). It is written into a temporary directory and renamed into place once complete, so a
checkpoint interrupted half-way (kill -9) is never taken as the latest: only ``step-*`` directories
count. The temporary directory is named as :mod:`simcse_lab.io` names its temporary files
(``.step-N.tmp-PID-HOST-xxxx``), so only the leftovers of dead processes of this host are cleaned, never
the directory another live process is writing.

A checkpoint may come from someone else (a shared or downloaded run directory), and unpickling can
run code, so every file is read with ``torch.load(weights_only=True)``: tensors, numbers, strings
and containers only. The RNG states are therefore stored as lists and tensors; a file holding
anything else is refused with one line naming it. (RNG files of simcse-lab 0.1.0 hold numpy's
state as an ndarray: exactly the numpy types that rebuild a plain array are allowed for them.)
A damaged file (checksum, unreadable, not a torch checkpoint, wrong structure, tensors of the wrong
shape for the model: :func:`check_fits`) is named, with the newest older checkpoint that is intact, to
resume from instead (or, for a reader such as ``analyze --trajectory``, the hint it passes).
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from simcse_lab.errors import UserError, first_line
from simcse_lab.io import clean_leftovers, make_temp_dir, replace_dir_atomically, sha256_file, write_json

STEP_DIR = re.compile(r"^step-(\d+)$")
LEGACY_TMP_STEP_DIR = re.compile(r"^\.tmp-step-\d+$")  # before the writer's pid and host were in the name
CHECKSUMS = "checksums.json"
STATE_KEYS = ("model", "optimizer", "scheduler", "step", "best", "best_step", "summary")


def rng_state() -> dict:
    """Every RNG state as lists and tensors (what ``torch.load(weights_only=True)`` reads back)."""
    version, internal, gauss = random.getstate()
    kind, key, pos, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(internal), gauss],
            "numpy": {"kind": kind, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):
        np.random.set_state((numpy_state["kind"], np.asarray(numpy_state["key"], dtype=np.uint32),
                             numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    else:  # a 0.1.0 checkpoint: numpy's own tuple
        np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_checkpoints(output_dir) -> list[tuple[int, Path]]:
    """(step, directory) of every complete checkpoint of a run, in step order."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)) and p.is_dir())


def latest_checkpoint(output_dir) -> Path | None:
    steps = list_checkpoints(output_dir)
    return steps[-1][1] if steps else None


def save_checkpoint(output_dir, step: int, state: dict, accelerator, keep: int = 2) -> Path:
    """Collective: every process calls it. ``state`` only matters on the main process. The newest ``keep``
    checkpoints stay (``keep=0``: all of them, the run's whole trajectory)."""
    root = Path(output_dir) / "checkpoints"
    final = root / f"step-{step:07d}"
    name = [None]
    if accelerator.is_main_process:
        root.mkdir(parents=True, exist_ok=True)
        clean_leftovers(root)  # what killed runs of this host left (a live process's temporary dir stays)
        for stale in root.iterdir():  # the unowned names of versions before the pid was in them
            if LEGACY_TMP_STEP_DIR.match(stale.name):
                shutil.rmtree(stale, ignore_errors=True)
        name = [make_temp_dir(final).name]
    if getattr(accelerator, "num_processes", 1) > 1:  # the other processes write their RNG state into it too
        from accelerate.utils import broadcast_object_list

        broadcast_object_list(name)
    tmp = root / name[0]
    accelerator.wait_for_everyone()
    torch.save(rng_state(), tmp / f"rng-{accelerator.process_index}.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        torch.save(state, tmp / "state.pt")
        write_json(tmp / CHECKSUMS, {p.name: sha256_file(p) for p in sorted(tmp.glob("*.pt"))})
        replace_dir_atomically(tmp, final)
        older = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)))
        for _, path in (older[:-keep] if keep > 0 else []):
            shutil.rmtree(path, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


class _Damaged(Exception):
    """A checkpoint file that cannot be used: ``str(err)`` is '<file>: <problem>'."""


# the numpy types a 0.1.0 RNG file holds (numpy's MT19937 state: a uint32 ndarray); nothing else
def _legacy_rng_globals() -> list:
    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


# what a file torch.save wrote begins with: a zip archive (torch's format since 1.6), or a pickle (protocol 2+)
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")


def _load(path: Path, checksums: dict | None, legacy_numpy: bool = False):
    if not path.is_file():
        raise _Damaged(f"{path}: missing")
    if checksums is not None:
        if path.name not in checksums:
            raise _Damaged(f"{path}: not listed in {CHECKSUMS}")
        if sha256_file(path) != checksums[path.name]:
            raise _Damaged(f"{path}: sha256 differs from {CHECKSUMS} (damaged file)")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith(_TORCH_MAGIC):
        what = "an empty file" if not head else "neither a zip archive nor a pickle"
        raise _Damaged(f"{path}: not a torch checkpoint ({what})")
    try:
        if legacy_numpy:
            with torch.serialization.safe_globals(_legacy_rng_globals()):
                return torch.load(path, map_location="cpu", weights_only=True)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - the unpickler raises many types; all mean "not loadable"
        text = str(err)
        if "GLOBAL" in text or "Unsupported global" in text:
            raise _Damaged(f"{path}: holds objects other than tensors, numbers and strings; refusing to load "
                           f"it (unpickling them could run code)") from None
        if "Weights only load failed" in text or "weights_only" in text:
            reason = next((line.strip() for line in text.splitlines() if "Unsupported" in line), "")
            raise _Damaged(f"{path}: not a torch checkpoint of tensors, numbers and strings"
                           f"{f' ({reason})' if reason else ''}; refusing to load it") from None
        raise _Damaged(f"{path}: unreadable ({first_line(err, 200)})") from None


def _checked_state(path: Path, state) -> dict:
    if not isinstance(state, dict) or any(k not in state for k in STATE_KEYS) \
            or not isinstance(state["model"], dict) or not isinstance(state["optimizer"], dict) \
            or not isinstance(state["scheduler"], dict) or not isinstance(state["summary"], dict) \
            or not isinstance(state["step"], int):
        raise _Damaged(f"{path}: not a simcse-lab training state (expected a dict with {', '.join(STATE_KEYS)})")
    return state


def _checked_rng(path: Path, rng) -> dict:
    try:
        saved = rng_state()
        set_rng_state(rng)  # validates every part; the current state is put back right after
        set_rng_state(saved)
    except (TypeError, KeyError, ValueError, IndexError, RuntimeError) as err:
        raise _Damaged(f"{path}: not a simcse-lab RNG state ({err.__class__.__name__})") from None
    return rng


def _read(path: Path, process_index: int) -> tuple[dict, dict]:
    checksums = None
    if (path / CHECKSUMS).is_file():
        try:
            checksums = json.loads((path / CHECKSUMS).read_text())
        except (OSError, ValueError):
            raise _Damaged(f"{path / CHECKSUMS}: unreadable") from None
        if not isinstance(checksums, dict):
            raise _Damaged(f"{path / CHECKSUMS}: not a mapping of file names to sha256")
    state = _checked_state(path / "state.pt", _load(path / "state.pt", checksums))
    rng_file = path / f"rng-{process_index}.pt"
    rng = _checked_rng(rng_file, _load(rng_file, checksums, legacy_numpy=checksums is None))
    return state, rng


def tensor_shapes(tensors: dict) -> dict:
    """{name: shape} of a state dict (None for a value that is not a tensor): what :func:`fit_problem` compares."""
    return {name: tuple(value.shape) if torch.is_tensor(value) else None for name, value in tensors.items()}


def fit_problem(shapes: dict, expected: dict, exact: bool = True) -> str | None:
    """Why a state dict's tensors (``shapes``: :func:`tensor_shapes`) do not fit ``expected`` ({name: shape}):
    the first one of another shape, or (``exact``) a missing or extra one; None when they fit."""
    for name, shape in shapes.items():
        if shape is None:
            return f"{name!r} is not a tensor"
        if name in expected and tuple(shape) != tuple(expected[name]):
            return (f"tensor {name!r} has shape {list(shape)}, the model's has {list(expected[name])} "
                    f"(wrongly shaped tensors)")
    if exact:
        missing = [name for name in expected if name not in shapes]
        if missing:
            return f"tensor {missing[0]!r} is missing ({len(missing)} in all)"
        extra = [name for name in shapes if name not in expected]
        if extra:
            return f"holds a tensor {extra[0]!r} the model does not have ({len(extra)} in all)"
    return None


def _intact_before(path: Path, process_index: int, expected: dict | None = None) -> Path | None:
    """The newest checkpoint older than ``path`` that reads completely (and whose model tensors fit
    ``expected``, when given), if any."""
    older = sorted(((int(m.group(1)), p) for p in path.parent.iterdir()
                    if (m := STEP_DIR.match(p.name)) and p.is_dir() and p != path), reverse=True)
    for step, candidate in older:
        if step >= int(STEP_DIR.match(path.name).group(1)):
            continue
        try:
            state, _ = _read(candidate, process_index)
        except _Damaged:
            continue
        if expected is not None and fit_problem(tensor_shapes(state["model"]), expected):
            continue
        return candidate
    return None


def _resume_hint(path: Path, process_index: int, expected: dict | None = None) -> str:
    intact = _intact_before(path, process_index, expected) if STEP_DIR.match(path.name) else None
    return (f"; the older checkpoint {intact} is intact: move {path.name} out of {path.parent} and --resume "
            f"again to continue from it" if intact else "; no older intact checkpoint")


def load_checkpoint(path: Path, process_index: int, hint: str | None = None) -> tuple[dict, dict]:
    """(state, this process's rng state), read with weights_only=True; one line naming the file otherwise,
    ending with ``hint`` (default: the older intact checkpoint to --resume from)."""
    path = Path(path)
    rng_file = path / f"rng-{process_index}.pt"
    if not rng_file.is_file():
        raise UserError(f"{path}: no RNG state for process {process_index} (saved with fewer processes?)")
    try:
        return _read(path, process_index)
    except _Damaged as err:
        raise UserError(f"{err}{_resume_hint(path, process_index) if hint is None else hint}") from None


def check_fits(path: Path, shapes: dict, expected: dict, process_index: int, hint: str | None = None,
               exact: bool = True) -> None:
    """Refuse, in one line naming ``state.pt`` and the first tensor, a checkpoint's model weights (``shapes``:
    :func:`tensor_shapes`) that do not fit the model they are to go into (``expected``: {name: shape}), before
    anything is loaded into it; ``hint`` as for :func:`load_checkpoint` (the default looks for an older
    checkpoint that fits)."""
    problem = fit_problem(shapes, expected, exact)
    if problem:
        path = Path(path)
        raise UserError(f"{path / 'state.pt'}: {problem}"
                        f"{_resume_hint(path, process_index, expected) if hint is None else hint}")
