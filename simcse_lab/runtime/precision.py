"""Precision policy: which device computes and in which precision, for evaluation and for training.

Evaluation, analysis and indexing (``PRECISIONS``): ``auto`` means bf16 autocast where the hardware has
native bf16 (recent GPUs; AMX or AVX512-BF16 CPUs), else fp32; these commands share this one policy, so a
number reported under ``--precision auto`` means the same thing in every command.

Training (``TRAINING_PRECISIONS``) runs through accelerate's mixed precision, not an autocast of ours:
``--precision`` maps onto ``Accelerator(mixed_precision=...)`` (fp32 -> ``no``; fp16 is autocast with
gradient scaling, which accelerate does). ``auto`` is bf16 where the device has it, else fp16 on CUDA, else
fp32. A precision given to ``accelerate launch --mixed_precision`` or set in an accelerate config file
reaches the process as ``ACCELERATE_MIXED_PRECISION`` and is honoured; accelerate's default ``no`` cannot be
told apart from an explicit ``no``, so it asks for nothing and ``--precision`` decides. A launcher precision
that differs from an explicit ``--precision`` is a one-line error. torch is imported only when a device is
asked about, so a config can be checked without it.
"""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache

from simcse_lab.errors import UserError

PRECISIONS = ("auto", "fp32", "bf16")
TRAINING_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
ACCELERATE_NAMES = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}  # ours -> Accelerator(mixed_precision=...)
LAUNCHER_ENV = "ACCELERATE_MIXED_PRECISION"  # what accelerate launch / an accelerate config file sets


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True on CPUs with native bf16 matmul (AMX or AVX512-BF16)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def default_device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_precision(precision: str, device) -> str:
    """An evaluation precision for ``device``: ``auto`` resolved; fp16 (a training precision whose model is
    evaluated the same way) only on CUDA."""
    if precision not in PRECISIONS + ("fp16",):
        raise UserError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise UserError("fp16 needs a CUDA GPU; use bf16 or fp32")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def autocast_context(precision: str, device):
    """The evaluation encoders' autocast (training uses accelerate's, see the module docstring)."""
    if precision in ("bf16", "fp16"):
        import torch

        return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return contextlib.nullcontext()


# -- training --------------------------------------------------------------------------------------------------
def launcher_precision(environ=None) -> str | None:
    """The mixed precision ``accelerate launch --mixed_precision`` or an accelerate config asked for (ours:
    bf16 / fp16), None when it asked for nothing (unset, or accelerate's default ``no``)."""
    value = (os.environ if environ is None else environ).get(LAUNCHER_ENV)
    if value is None or value.strip().lower() in ("", "no"):
        return None
    value = value.strip().lower()
    if value == "fp8":
        raise UserError(f"{LAUNCHER_ENV}=fp8 (accelerate launch --mixed_precision or its config): simcse-lab trains "
                        f"in fp32, bf16 or fp16; use --mixed_precision bf16 or fp16")
    if value not in ("bf16", "fp16"):
        raise UserError(f"{LAUNCHER_ENV}={value!r} is not a mixed precision accelerate knows (no, fp16, bf16)")
    return value


def choose_training_precision(requested: str, launcher: str | None, device_type: str, bf16_native: bool) -> str:
    """fp32, bf16 or fp16 for a training run: the pure decision (tested without a GPU).

    ``requested`` is ``--precision`` (``auto`` when not given), ``launcher`` what accelerate's launcher asked
    for (:func:`launcher_precision`), ``device_type`` ``cuda`` or ``cpu``, ``bf16_native`` whether the device
    computes bf16 natively."""
    if requested not in TRAINING_PRECISIONS:
        raise UserError(f"unknown precision {requested!r}; choose from {', '.join(TRAINING_PRECISIONS)}")
    if launcher is not None and requested not in ("auto", launcher):
        raise UserError(f"--precision {requested} conflicts with accelerate's mixed precision {launcher} "
                        f"(accelerate launch --mixed_precision or its config file); give one, or the same in both")
    chosen = launcher or requested
    if chosen == "auto":
        chosen = "bf16" if bf16_native else ("fp16" if device_type == "cuda" else "fp32")
    if chosen == "fp16" and device_type != "cuda":
        raise UserError("fp16 training needs a CUDA GPU (accelerate's fp16 autocast and gradient scaling); "
                        "on CPU use bf16 or fp32")
    if chosen == "bf16" and device_type == "cuda" and not bf16_native:
        raise UserError("bf16 training needs a GPU with bf16 (Ampere or newer); use fp16 or fp32")
    return chosen


def training_device_type() -> str:
    """``cuda`` when the loop's Accelerator will run on a GPU, else ``cpu`` (also under ``accelerate launch --cpu``)."""
    import torch

    forced_cpu = os.environ.get("ACCELERATE_USE_CPU", "").strip().lower() in ("1", "true", "yes", "y", "on")
    return "cuda" if torch.cuda.is_available() and not forced_cpu else "cpu"


def training_precision(requested: str) -> str:
    """:func:`choose_training_precision` for this process's environment and device."""
    device_type = training_device_type()
    if device_type == "cuda":
        import torch

        native = torch.cuda.is_bf16_supported()
    else:
        native = cpu_has_bf16()
    return choose_training_precision(requested, launcher_precision(), device_type, native)
