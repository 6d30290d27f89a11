"""What a run ran on: the reproducibility record of every run's summary.json, and ``--deterministic``.

The record (``summary["reproducibility"]``, also a sweep trial's user attributes) names every version, the
machine, the precision, the seed, whether torch ran deterministic algorithms, the data's fingerprint and the
world size: two runs whose records differ may differ for that reason alone (SimCSE #63, #246, #258)."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

# the distributions whose version the record names (the record's key: the distribution's name)
VERSIONED = {"torch": "torch", "transformers": "transformers", "accelerate": "accelerate", "datasets": "datasets",
             "sentence_transformers": "sentence-transformers"}
# the record's keys, in order (the compare command reads exactly these)
RECORD_KEYS = ("python", *VERSIONED, "peft", "simcse_lab", "git_commit", "device", "cpu_model", "gpu_model",
               "precision", "seed", "deterministic", "data_fingerprint", "world_size")


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the checkout simcse_lab is imported from (``+dirty`` when its tracked files changed), None
    when it is not a git checkout (an installed wheel) or git is not there."""
    root = path or Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_model(device) -> str | None:
    """The GPU's name when ``device`` is one, else None."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return None


def reproducibility_record(cfg, world_size: int, precision: str, device, data: dict | None) -> dict:
    """The record of a training run with config ``cfg`` (a TrainConfig) on ``device``; ``data`` is what it
    trains on (its ``fingerprint``). peft's version only when the run uses it (a LoRA adapter)."""
    from simcse_lab import __version__

    uses_peft = bool(getattr(cfg, "lora_r", 0) or getattr(cfg, "init_adapter", ""))
    record = {"python": platform.python_version(),
              **{key: package_version(name) for key, name in VERSIONED.items()},
              "peft": package_version("peft") if uses_peft else None,
              "simcse_lab": __version__, "git_commit": git_commit(), "device": str(device),
              "cpu_model": cpu_model(), "gpu_model": gpu_model(device), "precision": precision, "seed": cfg.seed,
              "deterministic": bool(getattr(cfg, "deterministic", False)),
              "data_fingerprint": (data or {}).get("fingerprint"), "world_size": world_size}
    return {key: record[key] for key in RECORD_KEYS}


def make_deterministic() -> None:
    """torch's reproducibility notes, all of them: deterministic algorithms (an op without one raises), cuDNN
    deterministic and not benchmarking, and cuBLAS's fixed workspace (set before CUDA starts; a value the user
    set is kept)."""
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.set_float32_matmul_precision("highest")  # no TF32 matmuls, whose results depend on the GPU
