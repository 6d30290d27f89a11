"""The benchmark harness of ``eval/``: what every benchmark script there shares.

- :func:`machine`: one description of the machine a benchmark ran on (CPU, cores, bf16/AMX, threads, torch,
  memory, GPU, load average), recorded at a run's start and end;
- :func:`load_note`: the load average of a run as a sentence, with a caution when other work shared the machine;
- :func:`interleaved`, :func:`paired_ratio`, :func:`median`: a peer timed in the same run, in turn, so that load
  drifts reach both; :func:`time_matmul` / :func:`measure_peaks`: the hardware's own matmul limit, measured in
  the same process as what it is compared with; :func:`measure_process`: a child process's wall clock and peak
  memory;
- :func:`write_report` / :func:`rerender`: a report is a JSON file and a markdown file rendered from it alone
  (``render(report) -> str``), so every ``eval/NAME.md`` can be written again from ``eval/NAME.json``.

A new benchmark is one script ``eval/bench_NAME.py`` with a ``render(report)`` and a ``main`` that measures and
calls :func:`write_report`; list its report in tests' re-render check (tests/runtime/test_eval_reports.py).
Reports recorded before this harness describe the machine with older keys (``cpus``, a ``load_average`` list
without ``load_average_1min``); :func:`cores` and :func:`load_1min` read both.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable

GB = 1024 ** 3


# -- the machine --------------------------------------------------------------------------------------------------
def machine() -> dict:
    """What the rates of a benchmark depend on: the CPU, its bf16 support, the threads, memory, a GPU and how
    busy the machine was (load average over 1, 5 and 15 minutes)."""
    import torch

    from simcse_lab.runtime.precision import cpu_has_bf16

    cpuinfo = Path("/proc/cpuinfo")
    load = os.getloadavg()
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "native_bf16": cpu_has_bf16(),
            "amx": cpuinfo.is_file() and "amx_bf16" in cpuinfo.read_text(), "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GB, 1),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average_1min": load[0], "load_average": [round(x, 2) for x in load]}


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it ("" where there is none)."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in (cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return ""


def cores(m: dict) -> int:
    """The core count of a machine description (``cores``; ``cpus`` in reports recorded before the harness)."""
    return m["cores"] if "cores" in m else m["cpus"]


def load_1min(m: dict) -> float:
    """The 1-minute load average of a machine description (older reports: the first of ``load_average``)."""
    return m["load_average_1min"] if "load_average_1min" in m else m["load_average"][0]


def is_busy(load: float, core_count: int) -> bool:
    """Whether other work shared the machine: a benchmark keeps one thread per core busy (a load of about the
    core count), so only a load above that, by more than half a core, is someone else's."""
    return load > core_count + 0.5


def load_note(start: dict, end: dict) -> str:
    """The load average of a run, with a caution when other work shared the machine (:func:`is_busy`)."""
    text = f"load average {load_1min(start):.1f} at the start, {load_1min(end):.1f} at the end"
    if is_busy(max(load_1min(start), load_1min(end)), cores(start)):
        text += " (**shared** with other jobs while this ran: absolute seconds are slow and noisy)"
    return text


def command_line(script: str, argv: list[str]) -> str:
    """The command a report records: ``python eval/SCRIPT.py ARGS`` (shell-quoted), as run from the repo root."""
    return "python " + shlex.join([script, *argv])


# -- timing against a peer in the same run ------------------------------------------------------------------------
def interleaved(runners: dict, rounds: int, warmup: int = 1, between=None, log=None) -> dict:
    """``rounds`` rounds of one step of each runner in turn (A B C, A B C, ...), after ``warmup`` untimed
    steps each, so that every runner sees the same load drifts; a runner has ``run(phases: bool) -> dict`` with
    its ``seconds``; ``between(round)`` runs after each round (e.g. a peak measurement). Returns {name: [per-step
    results, one per round]}."""
    for runner in runners.values():
        for _ in range(warmup):
            runner.run()
    results = {name: [] for name in runners}
    for r in range(rounds):
        for name, runner in runners.items():
            results[name].append(runner.run(phases=True))
        if between is not None:
            between(r)
        if log is not None:
            log(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {v[-1]['seconds']:.2f}s" for n, v in results.items()))
    return results


def median(results: list[dict], key: str = "seconds") -> float:
    return statistics.median(r[key] for r in results)


def paired_ratio(base: list[dict], other: list[dict], key: str = "seconds") -> float:
    """Median over rounds of base/other step time, each pair measured back to back: > 1 means ``other`` is
    faster. Per-round pairs cancel the load drift between rounds."""
    return statistics.median(b[key] / o[key] for b, o in zip(base, other))


# -- the hardware's own limit -------------------------------------------------------------------------------------
def matmul_shapes(tokens: int, hidden: int, ffn: int) -> dict[str, tuple[int, int, int]]:
    """name -> (m, k, n) of ``(m x k) @ (k x n)``: one training step of a BERT layer on ``tokens`` positions (the
    feed-forward up projection and its backward layouts, and the square projections)."""
    return {"ffn_up": (tokens, hidden, ffn), "ffn_down_grad_input": (tokens, ffn, hidden),
            "ffn_grad_weight": (hidden, tokens, ffn), "qkvo": (tokens, hidden, hidden)}


def time_matmul(shape: tuple[int, int, int], dtype, seconds: float = 0.5, repeats: int = 5, device="cpu") -> float:
    """Best achieved TFLOP/s of ``(m x k) @ (k x n)`` (``shape`` = (m, k, n)) in ``dtype`` on ``device``: timed for
    about ``seconds`` after a warm-up, the best of ``repeats``; on a GPU each timing is bracketed by a device
    synchronisation, so it counts the kernels, not their launch."""
    import torch

    m, k, n = shape
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


def measure_peaks(tokens: int, hidden: int, ffn: int, seconds: float = 0.5, device="cpu",
                  dtypes: tuple[str, ...] = ("fp32", "bf16")) -> dict:
    """{"fp32": {...}, "bf16": {...}} with each shape's TFLOP/s (:func:`matmul_shapes`) and the peak (best
    shape)."""
    import torch

    out = {}
    for name in dtypes:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
        rates = {label: time_matmul(mkn, dtype, seconds, device=device)
                 for label, mkn in matmul_shapes(tokens, hidden, ffn).items()}
        out[name] = {"shapes": rates, "peak_tflops": max(rates.values())}
    return out


# -- a child process's time and memory ----------------------------------------------------------------------------
def _tree_pss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def _wait(proc: subprocess.Popen, timeout: float, started: float, poll: Callable[[], None]) -> tuple[bool, object]:
    """Wait for ``proc`` (killing its process group after ``timeout`` seconds), calling ``poll()`` every 0.25 s;
    (timed out, resource usage)."""
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return False, usage
        poll()
        if time.time() - started > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            return True, usage
        time.sleep(0.25)


def child_env(extra: dict, src) -> dict:
    """The environment of a benchmark's child process: the package from ``src``, offline, unbuffered, on the CPU
    (no CUDA device visible), plus ``extra``."""
    env = {**os.environ, "PYTHONPATH": str(src), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.update(extra)
    return env


def measure_process(cmd: list[str], env: dict, markers: tuple[Callable, Callable], log: Path, timeout: float,
                    cwd: Path) -> dict:
    """Run ``cmd`` in ``cwd``: its exit, wall clock, peak RSS (``ru_maxrss``) and the peak PSS of its process tree
    (sampled every 0.25 s). ``markers`` = (``first_step()``, ``ready()``): each returns the wall-clock time of
    step 1 / of training about to start once it is known (else None)."""
    first_step, ready = markers
    started = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
    seen = {"peak_tree": 0, "first": None, "ready": None}

    def poll() -> None:
        seen["peak_tree"] = max(seen["peak_tree"], _tree_pss(proc.pid))
        seen["ready"] = seen["ready"] or ready()
        seen["first"] = seen["first"] or first_step()

    timed_out, usage = _wait(proc, timeout, started, poll)
    first, ready_at = seen["first"] or first_step(), seen["ready"] or ready()
    ended = time.time()
    rss, pss = usage.ru_maxrss * 1024 / GB, seen["peak_tree"] / GB  # ru_maxrss: KiB on Linux
    return {"returncode": proc.returncode, "timed_out": timed_out, "wall_s": round(ended - started, 1),
            "ready_s": round(ready_at - started, 1) if ready_at else None,
            "first_step_s": round(first - started, 1) if first else None,
            "peak_rss_gb": round(rss, 3), "peak_tree_pss_gb": round(pss, 3), "peak_gb": round(max(rss, pss), 3),
            "log_tail": log.read_text(errors="replace").strip().splitlines()[-3:]}


# -- the report -----------------------------------------------------------------------------------------------------
def write_json(path, report: dict, indent: int = 1) -> None:
    """A report's JSON, written atomically (its folder made if needed)."""
    from simcse_lab.io import write_text

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(report, indent=indent) + "\n")


def write_report(directory, stem: str, report: dict, render: Callable[[dict], str], indent: int = 1) -> str:
    """Write ``directory/STEM.json`` (``report``) and ``directory/STEM.md`` (``render(report)``), each atomically;
    returns the markdown."""
    from simcse_lab.io import write_text

    directory = Path(directory)
    text = render(report)
    write_json(directory / f"{stem}.json", report, indent)
    write_text(directory / f"{stem}.md", text)
    return text


def rerender(json_path, render: Callable[[dict], str], write: bool = False) -> str:
    """The markdown of a recorded report, rendered again from its JSON alone (``write``: replace the .md beside
    it)."""
    from simcse_lab.io import write_text

    json_path = Path(json_path)
    text = render(json.loads(json_path.read_text()))
    if write:
        write_text(json_path.with_suffix(".md"), text)
    return text
