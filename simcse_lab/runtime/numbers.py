"""Numeric options checked once, the same way everywhere: a finite number in its range, else one line naming
the option (exit 2), before anything loads. NaN and infinities are never in range."""

from __future__ import annotations

import math

from simcse_lab.errors import UserError

SEED_LIMIT = 2**32  # numpy's and torch's seeds (and accelerate's set_seed) take [0, 2**32)


def check_number(value, name: str, low=None, high=None, *, low_open: bool = False, high_open: bool = False,
                 note: str = "") -> None:
    """``value`` (None: not given, nothing to check) finite and within [low, high] (``*_open``: the bound
    itself excluded); ``note`` is appended to the range in the message, e.g. ``" (0: off)"``."""
    if value is None:
        return
    if low is not None and high is not None:
        shown_high = "2**32" if high == SEED_LIMIT else high
        wanted = f"in {'(' if low_open else '['}{low}, {shown_high}{')' if high_open else ']'}"
    elif low is not None:
        wanted = f"{'>' if low_open else '>='} {low}"
    else:
        wanted = f"{'<' if high_open else '<='} {high}"
    finite = not isinstance(value, float) or math.isfinite(value)
    ok = finite and (low is None or (value > low if low_open else value >= low)) and \
        (high is None or (value < high if high_open else value <= high))
    if not ok:
        extra = "" if finite else " and finite"
        raise UserError(f"{name} must be {wanted}{note}{extra}, got {value}")


def check_seed(value, name: str = "seed") -> None:
    check_number(value, name, 0, SEED_LIMIT, high_open=True)
