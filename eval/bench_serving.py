"""Benchmark: CPU serving backends for retrieval, side by side in one run.

Backends: torch fp32 and torch bf16 (the model's own sentence-transformers modules, simcse-lab's encode
path), and the model exported to ONNX by ``simcse-lab export --format onnx`` (fp32) and
``--format onnx --quantize int8`` (onnxruntime dynamic quantization), each read back through the ONNX
encoder that ``eval``, ``index build`` and ``search`` use. For each: sentences/s encoding
``--sentences`` wiki sentences (length-sorted batches of 128, the same path for every backend), the
backends taking turns within each of ``--rounds`` rounds (medians), the matmul peak measured in every
round; then the STS-B test Spearman and the retrieval MRR@10 (STS-B + SICK-R test pairs with gold >= 4,
exact search), and the drop of each against torch fp32.

    python eval/bench_serving.py                 # writes eval/serving.json and eval/serving.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from simcse_lab.data import registry
from simcse_lab.evaluation import retrieval, sts
from simcse_lab.export.formats import export
from simcse_lab.modeling.encoder import load_encoder
from simcse_lab.runtime.benchmark import command_line, load_note, machine, measure_peaks, write_report


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    ap.add_argument("--sentences", type=int, default=2000, help="wiki sentences encoded per backend per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--work", default=None, help="where the ONNX exports go (default: a temporary directory)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent))
    return ap.parse_args()


def _exports(model: str, work: Path) -> dict:
    exports = {}
    for name, quantize in (("onnx-fp32", None), ("onnx-int8", "int8")):
        t0 = time.perf_counter()
        exports[name] = export(model, "onnx", work / name, quantize=quantize, overwrite=True)
        exports[name]["seconds"] = time.perf_counter() - t0
        exports[name]["size_mb"] = (work / name / "model.onnx").stat().st_size / 1e6
    return exports


def _timed_rounds(encoders: dict, corpus: list[str], rounds: int) -> tuple[dict, list]:
    """Each round: the matmul peak, then every backend encoding the corpus in turn; ({backend: seconds}, peaks)."""
    for encoder in encoders.values():  # warm-up (oneDNN / onnxruntime kernel choice, allocations)
        encoder.encode(corpus[:256])
    seconds = {name: [] for name in encoders}
    peaks = []
    for r in range(rounds):
        peaks.append(measure_peaks(4096, 384, 1536, seconds=0.5))
        for name, encoder in encoders.items():
            t0 = time.perf_counter()
            encoder.encode(corpus)
            seconds[name].append(time.perf_counter() - t0)
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {len(corpus) / v[-1]:.0f}/s" for n, v in seconds.items()),
              flush=True)
    return seconds, peaks


def _rows(encoders: dict, corpus: list[str], seconds: dict) -> dict:
    """Each backend's speed, STS-B Spearman and MRR@10, and their change against torch fp32."""
    rows = {}
    for name, encoder in encoders.items():
        stsb = sts.evaluate(encoder, ["stsb"], "test")
        ret = retrieval.evaluate(encoder, ["stsb", "sickr"], "test")
        rows[name] = {**encoder.describe(), "sentences_per_s": len(corpus) / statistics.median(seconds[name]),
                      "seconds_all": seconds[name], "stsb_spearman": stsb["avg"], "mrr10": ret["avg"]["mrr@10"],
                      "mrr10_tasks": {t: v["mrr@10"] for t, v in ret["tasks"].items()}}
        print(f"{name}: STS-B {stsb['avg']:.2f}, MRR@10 {ret['avg']['mrr@10']:.2f}", flush=True)
    reference = rows["torch fp32"]
    for row in rows.values():
        row["speedup_vs_torch_fp32"] = row["sentences_per_s"] / reference["sentences_per_s"]
        row["stsb_drop"] = reference["stsb_spearman"] - row["stsb_spearman"]
        row["mrr10_drop"] = reference["mrr10"] - row["mrr10"]
    return rows


def main() -> int:
    import onnxruntime

    args = _parse()
    command = command_line("eval/bench_serving.py", sys.argv[1:])
    start_machine = machine()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-serving-"))
    exports = _exports(args.model, work)
    encoders = {"torch fp32": load_encoder(args.model, precision="fp32"),
                "torch bf16": load_encoder(args.model, precision="bf16"),
                "ONNX fp32": load_encoder(str(work / "onnx-fp32")),
                "ONNX int8": load_encoder(str(work / "onnx-int8"))}
    corpus = registry.load_split("wiki", "train")[: args.sentences]
    seconds, peaks = _timed_rounds(encoders, corpus, args.rounds)
    rows = _rows(encoders, corpus, seconds)
    report = {"command": command, "machine_start": start_machine, "machine_end": machine(),
              "onnxruntime": onnxruntime.__version__, "model": args.model, "sentences": len(corpus),
              "rounds": args.rounds, "peaks": {"fp32": [p["fp32"]["peak_tflops"] for p in peaks],
                                               "bf16": [p["bf16"]["peak_tflops"] for p in peaks]},
              "exports": exports, "backends": rows}
    print(write_report(args.out, "serving", report, render))
    return 0


def table(r: dict) -> str:
    lines = ["| backend | sentences/s | vs torch fp32 | STS-B test Spearman | drop | MRR@10 (STS-B + SICK-R) | drop |",
             "|---|---|---|---|---|---|---|"]
    for name, b in r["backends"].items():
        lines.append(f"| {name} | {b['sentences_per_s']:.0f} | {b['speedup_vs_torch_fp32']:.2f}× | {b['stsb_spearman']:.2f} | "
                     f"{b['stsb_drop']:+.2f} | {b['mrr10']:.2f} | {b['mrr10_drop']:+.2f} |")
    return "\n".join(lines)


def render(r: dict) -> str:
    m0, m1 = r["machine_start"], r["machine_end"]
    int8 = r["exports"]["onnx-int8"]
    return "\n".join([
        f"# CPU serving backends ({r['model']})", "", f"Command: `{r['command']}`", "",
        f"Machine: {m0['cores']} cores ({m0['cpu']}, AMX: {m0['amx']}), torch {m0['torch']} ({m0['torch_threads']} threads), "
        f"onnxruntime {r['onnxruntime']} (same threads); {load_note(m0, m1)}; the backends took turns "
        f"within each of {r['rounds']} rounds encoding the same {r['sentences']} wiki sentences, medians. Matmul peak "
        f"in the same run: bf16 {statistics.median(r['peaks']['bf16']):.3f} TFLOP/s, fp32 "
        f"{statistics.median(r['peaks']['fp32']):.3f} TFLOP/s (medians of the rounds).", "",
        table(r), "",
        f"ONNX exports (`simcse-lab export --format onnx [--quantize int8]`): fp32 {r['exports']['onnx-fp32']['size_mb']:.0f} MB, "
        f"verified max abs diff {r['exports']['onnx-fp32']['max_abs_diff']:.2g}; int8 {int8['size_mb']:.0f} MB, its fp32 graph "
        f"verified at {int8['fp32_max_abs_diff']:.2g}, the int8 graph against the fp32 source: max abs diff "
        f"{int8['max_abs_diff']:.3f}, min cosine {int8['min_cosine']:.4f} over {int8['verified_sentences']} sentences.", "",
        "Drops are torch fp32 minus the backend (positive: the backend scores lower).", ""])


if __name__ == "__main__":
    sys.exit(main())
