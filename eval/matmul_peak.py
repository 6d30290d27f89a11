"""The hardware's own limit: the best matmul rate this machine reaches on the model's shapes, fp32 and bf16.

Shapes are those of one training step of a BERT layer on ``tokens`` positions: the feed-forward up
projection ``(tokens x h) @ (h x f)`` and its backward layouts (input gradient ``(tokens x f) @ (f x h)``,
weight gradient ``(h x tokens) @ (tokens x f)``), and the square projections ``(tokens x h) @ (h x h)``.
Each is timed for about ``seconds`` after a warm-up and the best of several repeats is kept; the peak is the
best shape's rate. Measured in the same process, with the same threads, as whatever it is compared with.
On a GPU (``device``) the operands are made on the device and each timing is bracketed by a device
synchronisation, so it counts the kernels, not their launch.
"""

from __future__ import annotations

import time

import torch


def shapes(tokens: int, hidden: int, ffn: int) -> dict[str, tuple[int, int, int]]:
    """name -> (m, k, n) of ``(m x k) @ (k x n)``."""
    return {"ffn_up": (tokens, hidden, ffn), "ffn_down_grad_input": (tokens, ffn, hidden),
            "ffn_grad_weight": (hidden, tokens, ffn), "qkvo": (tokens, hidden, hidden)}


def time_matmul(m: int, k: int, n: int, dtype: torch.dtype, seconds: float = 0.5, repeats: int = 5,
                device: str | torch.device = "cpu") -> float:
    """Best achieved TFLOP/s of ``(m x k) @ (k x n)`` in ``dtype`` on ``device``."""
    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gen = torch.Generator(device).manual_seed(0)
    a = torch.randn(m, k, generator=gen, device=device).to(dtype)
    b = torch.randn(k, n, generator=gen, device=device).to(dtype)
    out = torch.empty(m, n, dtype=dtype, device=device)
    for _ in range(3):
        torch.mm(a, b, out=out)
    sync()
    t0 = time.perf_counter()
    torch.mm(a, b, out=out)
    sync()
    once = max(time.perf_counter() - t0, 1e-6)
    iters = max(1, int(seconds / repeats / once))
    best = float("inf")
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        for _ in range(iters):
            torch.mm(a, b, out=out)
        sync()
        best = min(best, (time.perf_counter() - t0) / iters)
    return 2.0 * m * k * n / best / 1e12


def measure_peaks(tokens: int, hidden: int, ffn: int, seconds: float = 0.5, device: str | torch.device = "cpu",
                  dtypes: tuple[str, ...] = ("fp32", "bf16")) -> dict:
    """{"fp32": {...}, "bf16": {...}} with each shape's TFLOP/s and the peak (best shape)."""
    out = {}
    for name in dtypes:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
        rates = {label: time_matmul(*mkn, dtype, seconds, device=device)
                 for label, mkn in shapes(tokens, hidden, ffn).items()}
        out[name] = {"shapes": rates, "peak_tflops": max(rates.values())}
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(measure_peaks(4096, 384, 1536), indent=1))


def machine() -> dict:
    """What the rates of a benchmark depend on: the CPU, its bf16 support, the threads and how busy it was."""
    import os
    import platform
    from pathlib import Path

    from simcse_lab.runtime.precision import cpu_has_bf16

    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "native_bf16": cpu_has_bf16(),
            "amx": "amx_bf16" in Path("/proc/cpuinfo").read_text(), "torch": torch.__version__,
            "load_average_1min": os.getloadavg()[0]}


def is_busy(load_1min: float, cores: int) -> bool:
    """Whether other work shared the machine: a benchmark keeps one thread per core busy (a load of about the
    core count), so only a load above that, by more than half a core, is someone else's."""
    return load_1min > cores + 0.5


def busy_note(start: dict, end: dict) -> str:
    """The load average of a run, with a caution when other work shared the machine (:func:`is_busy`)."""
    text = f"load average {start['load_average_1min']:.1f} at the start, {end['load_average_1min']:.1f} at the end"
    if is_busy(max(start["load_average_1min"], end["load_average_1min"]), start["cores"]):
        text += " (**shared** with other jobs while this ran: absolute seconds are slow and noisy)"
    return text
