"""The hardware's own limit: the best matmul rate this machine reaches on the model's shapes, fp32 and bf16.

    python eval/matmul_peak.py [--tokens 4096] [--hidden 384] [--ffn 1536] [--device cpu]

Prints :func:`simcse_lab.runtime.benchmark.measure_peaks` as JSON: each of one BERT layer's training-step shapes
(:func:`~simcse_lab.runtime.benchmark.matmul_shapes`) timed for about ``--seconds`` after a warm-up, the best of
several repeats, and the peak (the best shape's rate). The benchmarks measure it in their own process, beside what
they compare with it.
"""

from __future__ import annotations

import argparse
import json

from simcse_lab.runtime.benchmark import measure_peaks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=384)
    p.add_argument("--ffn", type=int, default=1536)
    p.add_argument("--seconds", type=float, default=0.5)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    print(json.dumps(measure_peaks(args.tokens, args.hidden, args.ffn, args.seconds, args.device), indent=1))


if __name__ == "__main__":
    main()
