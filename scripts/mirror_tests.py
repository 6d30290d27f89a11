"""Move the flat tests/test_*.py into a tree that mirrors the package (issue 23), and rewrite every reference.

    python scripts/mirror_tests.py            # git mv each mapped file, rewrite references, regenerate nothing
    python scripts/mirror_tests.py --dry-run  # print the moves and the files whose text would change

A test file goes to the folder of the subpackage it tests (``tests/data/``, ``tests/modeling/``, ...), a run
across the package (real processes, the whole loop, the wheel, every family end to end) to
``tests/integration/``; the package-wide checks (the layout, io's file safety) stay in ``tests/``, beside the
shared helpers (``conftest.py``, ``families.py``, ``tiny_backbones.py``, ``tiny_decoders.py``, ``fixtures/``):
``tests/conftest.py`` puts ``tests/`` on ``sys.path`` (pytest's default ``prepend`` import mode), so
``from conftest import ...`` and ``from families import ...`` resolve from every folder. Test file names stay
unique across folders (the folders are not packages).

What it rewrites: ``tests/test_NAME.py`` -> ``tests/FOLDER/test_NAME.py`` in every tracked text file (the
subpackage docstrings' "Tests:" lines, README, docs, comments), and in a moved file
``Path(__file__).resolve().parents[1]`` (the repository root, one level deeper now) -> ``parents[2]``. It can be
run again after a merge or a change of MAPPING: a file already in its folder stays, one in another folder
moves, and a test file that MAPPING does not name is listed (add it to MAPPING, or to STAY). A test module that
imports another test module (``from test_tasks import ...``) must sit in that module's folder: pytest puts each
test file's own folder on ``sys.path``, and only ``tests/`` besides. Afterwards: ``python scripts/layout.py --write`` (the README's Layout).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"

MAPPING = {
    "data": ["content_hash", "data_fetch", "data_inspect", "readers", "registry", "sources", "training_data"],
    "modeling": ["templates", "decoder_poolers", "families", "length_chunks", "lora", "mini_batches", "packing", "pooling",
                 "resolve", "security_loading", "sentence_encoder", "st_format"],
    "training": ["conpvp", "objective_options", "promptbert", "checkpoint_safety", "config", "cos_reg", "mntp", "momentum", "objective_plugin", "objectives",
                 "repetition", "sampler", "tracking", "train_data", "training_precision", "trajectory"],
    # test_select imports test_tasks' word-count encoder: a test module imports another only in its own folder
    "experiments": ["sweep"],
    "evaluation": ["compare", "significance", "eval_geometry", "geometry", "mteb", "retrieval", "select", "sts_aggregation", "tables", "tasks",
                   "transfer"],
    "analysis": ["analyze", "degeneration", "eval_post_hoc", "flow", "report_sections", "token_dynamics", "whitening"],
    "search": ["index", "index_integrity"],
    "export": ["export", "onnx_serving"],
    "runtime": ["eval_reports", "gpu_check"],
    "commands": ["cli_flags", "cli_validation", "output_dirs"],
    # test_decoders runs the CLI on every decoder family through test_families_matrix's helpers
    "integration": ["decoders", "distributed", "families_matrix", "index_sharded", "sts_integration", "train_loop",
                    "wheel_install"],
}
STAY = {"layout", "file_safety"}  # package-wide: the layout of every subpackage, io's files and directories
TEXT_SUFFIXES = {".py", ".md", ".toml", ".sh", ".yaml", ".yml", ".cfg", ".txt", ".ini", ""}


def folder_of() -> dict[str, str]:
    out = {}
    for folder, names in MAPPING.items():
        for name in names:
            if name in out:
                raise SystemExit(f"test_{name}.py is mapped twice ({out[name]}, {folder})")
            out[name] = folder
    return out


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.split()
    return [ROOT / n for n in names if (ROOT / n).suffix in TEXT_SUFFIXES and (ROOT / n).is_file()]


def rewrite(text: str, folders: dict[str, str]) -> str:
    """``tests/test_NAME.py`` or ``tests/OTHER/test_NAME.py`` -> ``tests/FOLDER/test_NAME.py`` (MAPPING's folder)."""
    return re.sub(r"(?<![\w/])tests/(?:\w+/)?test_(\w+)\.py",
                  lambda m: f"tests/{folders[m.group(1)]}/test_{m.group(1)}.py" if m.group(1) in folders
                  else m.group(0), text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args()
    folders = folder_of()
    found = sorted(TESTS.glob("test_*.py")) + sorted(TESTS.glob("*/test_*.py"))
    unmapped = [str(f.relative_to(TESTS)) for f in found if f.stem[5:] not in folders and f.stem[5:] not in STAY]
    moves = [(f, TESTS / folders[f.stem[5:]] / f.name) for f in found
             if f.stem[5:] in folders and f.parent != TESTS / folders[f.stem[5:]]]
    for src, dst in moves:
        print(f"git mv {src.relative_to(ROOT)} {dst.relative_to(ROOT)}")
        if not args.dry_run:
            dst.parent.mkdir(exist_ok=True)
            subprocess.run(["git", "mv", str(src), str(dst)], cwd=ROOT, check=True)
            text = dst.read_text()
            if src.parent == TESTS:  # one level deeper now: the repository root is parents[2]
                dst.write_text(text.replace("Path(__file__).resolve().parents[1]",
                                            "Path(__file__).resolve().parents[2]"))
    for path in tracked_text_files():
        text = path.read_text(errors="surrogateescape")
        new = rewrite(text, folders)
        if new != text:
            print(f"rewrite {path.relative_to(ROOT)}")
            if not args.dry_run:
                path.write_text(new, errors="surrogateescape")
    if unmapped:
        print(f"not moved (add to MAPPING or STAY): {', '.join(unmapped)}", file=sys.stderr)
    return 1 if unmapped else 0


if __name__ == "__main__":
    sys.exit(main())
