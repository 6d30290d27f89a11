"""Checks the sub-commands run on their arguments before any model or dataset is loaded, so that a bad
flag or output path costs a one-line error (exit 2), not a traceback after minutes of work."""

from __future__ import annotations

import os
from pathlib import Path

from simcse_lab.errors import UserError
from simcse_lab.runtime.numbers import check_number, check_seed


def output_file(path, flag: str = "--output") -> None:
    """``path`` can be written as a file: not a directory, not '.'/'..', and no file where a parent
    directory must be."""
    if path is None:
        return
    p = Path(path)
    if p.name in ("", ".", "..") or str(path).endswith(os.sep):
        raise UserError(f"{flag} {path}: names a directory; give a file path")
    if p.is_dir():
        raise UserError(f"{flag} {path}: is an existing directory; give a file path")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{flag} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{flag} {path}: {parent} is not writable")


def at_least(value, minimum: int, flag: str) -> None:
    if value is not None and value < minimum:
        raise UserError(f"{flag} must be at least {minimum} (got {value})")


def seed(value, flag: str = "--seed") -> None:
    """A seed numpy and torch take: [0, 2**32)."""
    check_seed(value, flag)


def finite(value, flag: str) -> None:
    """A float flag: a finite number (argparse's float() takes 'nan' and 'inf')."""
    check_number(value, flag)


def process_env() -> None:
    """The variables ``accelerate launch``/torchrun set: integers in range, when set at all."""
    for name, minimum in (("WORLD_SIZE", 1), ("RANK", 0), ("LOCAL_RANK", 0), ("LOCAL_WORLD_SIZE", 1)):
        value = os.environ.get(name)
        if value is None:
            continue
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or number < minimum:
            raise UserError(f"environment variable {name}={value!r} is not an integer >= {minimum}")
