"""Deterministic large training corpora built from the registry's small sets, for the scale benchmark.

Line k of a sentence corpus joins two wiki sentences, ``s[a] + " " + s[b]`` with ``a = k mod n`` and
``b = (a + k div n + 1) mod n``: every (a, b) pair occurs once, so up to n*(n-1) lines (n = 11,914 gives
141M) are distinct pairs, and the text looks like the real corpus (two Wikipedia sentences, truncated to the
max length by the tokenizer). NLI triplets are built the same way, column by column, from the SNLI triplets.
Written streaming: memory does not grow with the number of lines.

    python eval/scale_corpus.py sentences 1000000 /tmp/wiki-1m.txt
    python eval/scale_corpus.py triplets 1000000 /tmp/nli-1m.csv
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def pair_indices(k: int, n: int) -> tuple[int, int]:
    a = k % n
    return a, (a + k // n + 1) % n


def write_sentences(lines: int, path: Path) -> Path:
    from simcse_lab.data import registry

    source = registry.load_split("wiki", "train")
    n = len(source)
    if lines > n * (n - 1):
        raise SystemExit(f"at most {n * (n - 1)} distinct lines from {n} sentences")
    with open(path, "w", encoding="utf-8") as f:
        for k in range(lines):
            a, b = pair_indices(k, n)
            f.write(f"{source[a]} {source[b]}\n")
    return path


def write_triplets(rows: int, path: Path) -> Path:
    from simcse_lab.data import registry

    source = registry.load_split("nli", "train")
    n = len(source)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sent0", "sent1", "hard_neg"])
        for k in range(rows):
            a, b = pair_indices(k, n)
            writer.writerow([f"{source[a][c]} {source[b][c]}" for c in range(3)])
    return path


if __name__ == "__main__":
    kind, count, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    (write_sentences if kind == "sentences" else write_triplets)(count, out)
    print(f"wrote {count} {kind} to {out}")
