"""Scale benchmark (issue 10): time to the first training step and peak memory at corpus scale, simcse-lab's
loader against sentence-transformers' trainer, on deterministic corpora built from the shared sets.

Every run is a fresh process launched by this script (the corpora and caches live under ``--workdir``, never
in the repository):

- cold: an empty cache (our tokenised cache, ``$SIMCSE_LAB_CACHE``; datasets' cache, ``$HF_DATASETS_CACHE``, for
  sentence-transformers), then warm: the same command again, a cache hit;
- time to first step: from launch to the first logged step (ours: ``--log-steps 1``, ``metrics.jsonl`` polled;
  sentence-transformers: a ``TrainerCallback`` writing the time of step 1), wall-clock in both; and time to
  ready: from launch to training about to start, model loaded and data ready (ours: the ``training ...``
  line; sentence-transformers: ``on_train_begin``), so that the data's share is seen apart from one step's
  compute;
- peak memory, two ways: ``os.wait4``'s ``ru_maxrss`` (what ``/usr/bin/time -v`` reports: the largest process
  of the tree, datasets' map workers included) and the peak of the whole tree's summed PSS (proportional set
  size: a page that forked workers share with their parent counts once), sampled every 0.25 s. The gates use
  the larger of the two.

Cases: unsup SimCSE on 1,000,000 lines, sup SimCSE on 1,000,000 NLI triplets and MultipleNegativesRankingLoss
(SentenceTransformerTrainer) on the same two, all on all-MiniLM-L6-v2, batch 64, max length 32, 20 steps, in
the default precision (``--precision auto``: bf16 on a CPU with native bf16, and then ``bf16=True`` for
sentence-transformers too); the "floor" runs train the same way on the first 5,000 rows, so the memory that
the model and its training take whatever the corpus is visible beside the 1M runs; then unsup on 10,000,000
lines (cold, under ``--timeout-10m``, and warm), ``--short-steps`` steps. Sup again with ``--mini-batch-size 64``
(bounded activation memory: the step's 192 rows encoded 64 at a time and recomputed in the backward pass; cold,
warm and on the floor corpus) and sentence-transformers' CachedMultipleNegativesRankingLoss with
``mini_batch_size=64`` (warm). ``--baseline-src DIR`` adds the old
in-memory loader (a source tree from before this change) on the 1M corpus, ``--short-steps`` steps.

    python eval/scale_corpus.py sentences 1000000 /tmp/scale-bench/wiki-1m.txt    # the corpora, once
    python eval/scale_corpus.py triplets 1000000 /tmp/scale-bench/nli-1m.csv
    python eval/scale_corpus.py sentences 10000000 /tmp/scale-bench/wiki-10m.txt
    python eval/bench_scale.py --workdir /tmp/scale-bench [--baseline-src /tmp/scale-base]

Writes eval/scale.json and eval/scale.md; ``python eval/bench_scale.py --render`` re-writes the .md (and the
notes) from the .json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from simcse_lab.runtime.benchmark import (command_line, cores, is_busy, load_1min, machine, measure_process,
                                          write_report)

ROOT = Path(__file__).resolve().parents[1]
MODEL = "all-MiniLM-L6-v2"


# -- the runs ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OurRun:
    """One simcse-lab training process of the plan: its name, corpus, objective and cache; the source tree it runs
    (another one: the old loader), its time limit, its steps (default ``--steps``) and extra flags."""

    name: str
    data: Path
    objective: str
    cache: Path
    src: Path = ROOT
    timeout: float = 3600
    steps: int | None = None
    extra: tuple[str, ...] = ()


def ours(args, run: OurRun) -> dict:
    """One simcse-lab training process."""
    name, src = run.name, run.src
    out = args.workdir / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "simcse_lab", "train", "--objective", run.objective, "--model", MODEL,
           "--data", str(run.data), "--pooler", "cls", "--batch-size", "64", "--max-seq-len", "32", "--lr", "3e-5",
           "--max-steps", str(run.steps or args.steps), "--log-steps", "1", "--eval-steps", "0", "--test-tasks",
           "none", "--precision", args.precision, "--no-progress", "--output-dir", str(out), *run.extra]

    def first_step():
        path = out / "metrics.jsonl"
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line).get("step", 0) >= 1:
                        return path.stat().st_mtime
                except ValueError:
                    pass
        return None

    log = args.workdir / f"{name}.log"

    def ready():
        if log.is_file() and any(line.startswith("training ") for line in log.read_text(errors="replace").splitlines()):
            return time.time()  # polled every 0.25 s
        return None

    result = measure_process(cmd, child_env({"SIMCSE_LAB_CACHE": str(run.cache)}, src), (first_step, ready), log,
                             run.timeout, ROOT)
    summary = out / "summary.json"
    if summary.is_file():
        s = json.loads(summary.read_text())
        result.update(steps=s["steps"], seconds_per_step=round(s["seconds_per_step"], 3), precision=s["precision"])
    return {"name": name, "trainer": "simcse-lab" if src == ROOT else "simcse-lab (old loader)",
            "command": shlex.join(cmd[1:]), **result}


def sentence_transformers(args, name: str, data: Path, kind: str, cache: Path, mini_batch_size: int = 0) -> dict:
    out = args.workdir / "runs" / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    marker, began = out / "first_step.txt", out / "ready.txt"
    cmd = [sys.executable, str(Path(__file__).resolve()), "st-worker", "--data", str(data), "--kind", kind,
           "--steps", str(args.steps), "--out", str(out), "--precision", args.st_precision,
           "--mini-batch-size", str(mini_batch_size)]

    def first_step():
        return float(marker.read_text()) if marker.is_file() and marker.read_text() else None

    def ready():
        return float(began.read_text()) if began.is_file() and began.read_text() else None

    result = measure_process(cmd, child_env({"HF_DATASETS_CACHE": str(cache)}, ROOT), (first_step, ready),
                             args.workdir / f"{name}.log", args.timeout, ROOT)
    done = out / "done.json"
    if done.is_file():
        result.update(json.loads(done.read_text()))
    return {"name": name, "trainer": "sentence-transformers", "command": shlex.join(cmd[1:]), **result}


def st_worker(args) -> None:
    """SentenceTransformerTrainer + MultipleNegativesRankingLoss (with ``--mini-batch-size`` N > 0 its cached
    variant, CachedMultipleNegativesRankingLoss), as its documentation loads a text / csv file."""
    import datasets
    from sentence_transformers import (SentenceTransformer, SentenceTransformerTrainer,
                                       SentenceTransformerTrainingArguments)
    from sentence_transformers.sentence_transformer.losses import (CachedMultipleNegativesRankingLoss,
                                                                   MultipleNegativesRankingLoss)
    from transformers import TrainerCallback

    from simcse_lab.modeling.resolve import resolve_model

    out = Path(args.out)

    class FirstStep(TrainerCallback):
        def on_train_begin(self, targs, state, control, **kwargs):
            (out / "ready.txt").write_text(repr(time.time()))

        def on_step_end(self, targs, state, control, **kwargs):
            if state.global_step == 1:
                (out / "first_step.txt").write_text(repr(time.time()))

    model = SentenceTransformer(resolve_model(MODEL), device="cpu")
    model.max_seq_length = 32
    if args.kind == "sentences":  # unsupervised SimCSE with MNRL: each sentence is its own positive
        data = datasets.load_dataset("text", data_files=args.data, split="train")
        data = data.map(lambda b: {"anchor": b["text"], "positive": b["text"]}, batched=True, remove_columns=["text"])
    else:  # (anchor, positive, hard negative) in column order
        data = datasets.load_dataset("csv", data_files=args.data, split="train")
    training_args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "trainer"), per_device_train_batch_size=64, learning_rate=3e-5, max_steps=args.steps,
        use_cpu=True, bf16=args.precision == "bf16", seed=42, save_strategy="no", eval_strategy="no", logging_steps=1,
        dataloader_drop_last=True,
        report_to="none", disable_tqdm=True)
    loss = (CachedMultipleNegativesRankingLoss(model, mini_batch_size=args.mini_batch_size) if args.mini_batch_size
            else MultipleNegativesRankingLoss(model))
    trainer = SentenceTransformerTrainer(model=model, args=training_args, train_dataset=data,
                                         loss=loss, callbacks=[FirstStep()])
    t0 = time.perf_counter()
    result = trainer.train()
    (out / "done.json").write_text(json.dumps({"steps": result.global_step, "precision": args.precision,
                                               "seconds_per_step": round((time.perf_counter() - t0) / args.steps, 3)}))


# -- the report --------------------------------------------------------------------------------------------------
def gates(runs: dict, steps: int) -> dict:
    """The issue's acceptance, computed from the runs (peak = the process tree's)."""
    def get(name, key):
        return runs.get(name, {}).get(key)

    out = {}
    for case in ("unsup-1m", "sup-1m"):
        names = (f"{case}-cold", f"{case}-warm")
        trained = all(get(n, "returncode") == 0 and get(n, "steps") == steps for n in names)
        peaks = [get(n, "peak_gb") for n in names]
        out[f"{case}: {steps} steps, peak RSS <= 2 GB"] = bool(trained and max(peaks) <= 2.0)
        warm = get(f"{case}-warm", "first_step_s")
        out[f"{case}: warm start <= 15 s to the first step"] = bool(warm is not None and warm <= 15)
    if "sup-1m-warm-chunks4" in runs:
        out["sup-1m with --length-chunks 4 (warm): 20 steps, peak RSS <= 2 GB"] = bool(
            get("sup-1m-warm-chunks4", "returncode") == 0 and get("sup-1m-warm-chunks4", "peak_gb") <= 2.0)
    names = ("sup-1m-cold-mb64", "sup-1m-warm-mb64")
    if all(n in runs for n in names):
        out[f"sup-1m with --mini-batch-size 64 (cold and warm): {steps} steps, peak RSS <= 2 GB"] = bool(
            all(get(n, "returncode") == 0 and get(n, "steps") == steps for n in names)
            and max(get(n, "peak_gb") for n in names) <= 2.0)
        warm = get("sup-1m-warm-mb64", "first_step_s")
        out["sup-1m with --mini-batch-size 64: warm start <= 15 s to the first step"] = bool(warm is not None
                                                                                           and warm <= 15)
    first, peak = get("unsup-10m-cold", "first_step_s"), get("unsup-10m-cold", "peak_gb")
    out["unsup-10m: starts training, peak RSS <= 4 GB"] = bool(first is not None and peak is not None and peak <= 4.0)
    return out


def render(report: dict) -> str:
    m, m_end = report["machine"], report["machine_end"]
    lines = ["# Scale benchmark (issue 10)", "",
             "Time to the first training step and peak memory at corpus scale: simcse-lab's tokenised, "
             "memory-mapped loader against sentence-transformers' trainer (SentenceTransformerTrainer + "
             "MultipleNegativesRankingLoss) on the same deterministic corpora, same model (all-MiniLM-L6-v2), "
             f"batch 64, max length 32, {report['steps']} steps, {report['precision']} on CPU. A fresh process per "
             "run; cold = empty cache, warm = the same command again.", "",
             "```bash", *report.get("commands", [report["command"]]), "```", "",
             *(["(The later commands re-ran the runs they name; the table keeps the others from the first.)", ""]
               if len(report.get("commands", [])) > 1 else []),
             f"Machine: {cores(m)} CPU cores, {m['memory_gb']} GB, {m['platform']}; load average "
             f"{m['load_average']} at the start, {m_end['load_average']} at the end"
             + (" (**shared with other jobs while this ran**: times are upper bounds for an idle machine; the runs "
                "took turns under the same conditions)." if is_busy(max(load_1min(m), load_1min(m_end)), cores(m))
                else "."), "",
             "| run | trainer | exit | steps | ready (s) | first step (s) | wall (s) | s/step | "
             "peak RSS, largest process (GB) | peak PSS, process tree (GB) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["runs"].values():
        exit_ = "timeout" if r["timed_out"] else r["returncode"]
        lines.append(f"| {r['name']} | {r['trainer']} | {exit_} | {r.get('steps', '')} | {r['ready_s']} | "
                     f"{r['first_step_s']} | {r['wall_s']} | {r.get('seconds_per_step', '')} | {r['peak_rss_gb']} | "
                     f"{r['peak_tree_pss_gb']} |")
    lines += ["", "Gates (computed from the table; peak = the larger of the two memory columns):", ""]
    lines += [f"- {name}: **{'pass' if passed else 'FAIL'}**" for name, passed in report["gates"].items()]
    lines += ["", "Corpora (built by `eval/scale_corpus.py`, kept in the work directory, not in the repository):", ""]
    lines += [f"- `{name}`: {info['lines']:,} lines, {info['mb']} MB" for name, info in report["corpora"].items()]
    if report.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


def _st_worker_main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("st-worker")
    for flag in ("--data", "--kind", "--out", "--precision"):
        p.add_argument(flag, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--mini-batch-size", type=int, default=0)
    st_worker(p.parse_args())


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("/tmp/scale-bench"))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--short-steps", type=int, default=3, help="steps of the floor, 10M and old-loader runs")
    p.add_argument("--precision", default="auto", help="ours (sentence-transformers gets what it resolves to)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per 1M run")
    p.add_argument("--timeout-10m", type=float, default=5400, help="seconds for the 10M cold run")
    p.add_argument("--baseline-src", type=Path, default=None, help="a source tree with the old in-memory loader")
    p.add_argument("--only", default=None, help="comma-separated run names (for a partial re-run)")
    p.add_argument("--note", default=None, help="a sentence for the notes (e.g. what else ran on the machine)")
    return p.parse_args(argv)


def _floor_corpora(corpora: dict, workdir: Path) -> dict:
    """The first 5,000 rows of the 1M corpora: what training the model takes whatever the corpus is."""
    floors = {"unsup": workdir / "floor-5k.txt", "sup": workdir / "floor-5k.csv"}
    for source, floor, rows in ((corpora["wiki-1m.txt"], floors["unsup"], 5000),
                                (corpora["nli-1m.csv"], floors["sup"], 5001)):  # + the csv header
        with open(source, "rb") as f, open(floor, "wb") as out:
            for _, line in zip(range(rows), f):
                out.write(line)
    return floors


def _describe_corpora(corpora: dict) -> dict:
    described = {}
    for name, path in corpora.items():
        with open(path, "rb") as f:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b""))
        described[name] = {"path": str(path), "lines": lines, "mb": round(path.stat().st_size / 2**20, 1)}
    return described


def _one_million_runs(args, corpora: dict, ours_cache: Path, st_cache: Path) -> list:
    """Cold and warm, ours and sentence-transformers', on the 1M corpora."""
    plan = []
    for case, data, objective, kind in (("unsup-1m", corpora["wiki-1m.txt"], "unsup", "sentences"),
                                        ("sup-1m", corpora["nli-1m.csv"], "sup", "triplets")):
        plan += [(f"{case}-cold", lambda d=data, o=objective, c=case: ours(
                     args, OurRun(f"{c}-cold", d, o, _fresh(ours_cache), timeout=args.timeout))),
                 (f"{case}-warm", lambda d=data, o=objective, c=case: ours(
                     args, OurRun(f"{c}-warm", d, o, ours_cache, timeout=args.timeout))),
                 (f"st-{case}-cold", lambda d=data, k=kind, c=case: sentence_transformers(
                     args, f"st-{c}-cold", d, k, _fresh(st_cache))),
                 (f"st-{case}-warm", lambda d=data, k=kind, c=case: sentence_transformers(
                     args, f"st-{c}-warm", d, k, st_cache))]
    return plan


def _plan(args, corpora: dict, floors: dict) -> list:
    """(name, run()) of every run, in order."""
    ours_cache, st_cache, nli = args.workdir / "cache-ours", args.workdir / "cache-st", corpora["nli-1m.csv"]
    mb64 = ("--mini-batch-size", "64")
    floor_cache = args.workdir / "cache-floor"
    plan = [(f"{o}-floor-5k", lambda o=o: ours(args, OurRun(f"{o}-floor-5k", floors[o], o, _fresh(floor_cache),
                                                            timeout=args.timeout, steps=args.short_steps)))
            for o in ("unsup", "sup")]
    plan.append(("sup-floor-5k-mb64", lambda: ours(args, OurRun("sup-floor-5k-mb64", floors["sup"], "sup",
                                                                _fresh(floor_cache), timeout=args.timeout,
                                                                steps=args.short_steps, extra=mb64))))
    plan += _one_million_runs(args, corpora, ours_cache, st_cache)
    # the sup step's activations are most of its peak (see the floor run): fewer padded positions per chunk
    plan.append(("sup-1m-warm-chunks4", lambda: ours(args, OurRun("sup-1m-warm-chunks4", nli, "sup", ours_cache,
                                                                  timeout=args.timeout,
                                                                  extra=("--length-chunks", "4")))))
    # bounded activation memory: the step's rows 64 at a time, recomputed in the backward pass (and the peer's
    # cached-gradient loss, warm)
    plan += [("sup-1m-cold-mb64", lambda: ours(args, OurRun("sup-1m-cold-mb64", nli, "sup", _fresh(ours_cache),
                                                            timeout=args.timeout, extra=mb64))),
             ("sup-1m-warm-mb64", lambda: ours(args, OurRun("sup-1m-warm-mb64", nli, "sup", ours_cache,
                                                            timeout=args.timeout, extra=mb64))),
             ("st-sup-1m-warm-cached64", lambda: sentence_transformers(args, "st-sup-1m-warm-cached64", nli,
                                                                       "triplets", st_cache, mini_batch_size=64))]
    if args.baseline_src:
        plan.append(("old-loader-unsup-1m", lambda: ours(args, OurRun(
            "old-loader-unsup-1m", corpora["wiki-1m.txt"], "unsup", _fresh(args.workdir / "cache-old"),
            src=args.baseline_src, timeout=args.timeout, steps=args.short_steps))))
    ten = corpora["wiki-10m.txt"]
    plan += [("unsup-10m-cold", lambda: ours(args, OurRun("unsup-10m-cold", ten, "unsup",
                                                          _fresh(args.workdir / "cache-10m"),
                                                          timeout=args.timeout_10m, steps=args.short_steps))),
             ("unsup-10m-warm", lambda: ours(args, OurRun("unsup-10m-warm", ten, "unsup", args.workdir / "cache-10m",
                                                          timeout=args.timeout, steps=args.short_steps)))]
    return plan


def _keep_earlier(report: dict, only, note: str | None) -> None:
    """A partial re-run keeps the other runs' results (and the first run's machine), and says so."""
    previous = ROOT / "eval" / "scale.json"
    if only and previous.is_file():
        earlier = json.loads(previous.read_text())
        report["runs"] = earlier["runs"]
        report["commands"] = earlier.get("commands", [earlier["command"]]) + [report["command"]]
        report["machine"], report["machine_end"] = earlier["machine"], earlier.get("machine_end")
        report["extra_notes"] = earlier.get("extra_notes", [])
    if note:
        report.setdefault("extra_notes", []).append(note)


def main() -> None:
    if sys.argv[1:] == ["--render"]:
        rerender()
        return
    if len(sys.argv) > 1 and sys.argv[1] == "st-worker":
        return _st_worker_main()
    args = _parse(sys.argv[1:])
    corpora = {"wiki-1m.txt": args.workdir / "wiki-1m.txt", "nli-1m.csv": args.workdir / "nli-1m.csv",
               "wiki-10m.txt": args.workdir / "wiki-10m.txt"}
    for path in corpora.values():
        if not path.is_file():
            raise SystemExit(f"{path}: missing; build it with eval/scale_corpus.py (see this script's docstring)")
    only = set(args.only.split(",")) if args.only else None
    from simcse_lab.runtime.precision import training_precision

    args.st_precision = training_precision(args.precision)
    floors = _floor_corpora(corpora, args.workdir)
    report = {"command": command_line("eval/bench_scale.py", sys.argv[1:]), "machine": machine(),
              "steps": args.steps, "short_steps": args.short_steps, "precision": args.st_precision,
              "corpora": _describe_corpora(corpora), "runs": {}}
    plan = _plan(args, corpora, floors)
    _keep_earlier(report, only, args.note)
    for name, run in plan:
        if only and name not in only:
            continue
        if name == "unsup-10m-warm" and report["runs"].get("unsup-10m-cold", {}).get("returncode") != 0:
            continue  # no cache to hit
        print(f"{name} ...", file=sys.stderr, flush=True)
        report["runs"][name] = run()
        print(f"  {json.dumps({k: v for k, v in report['runs'][name].items() if k not in ('command', 'log_tail')})}",
              file=sys.stderr, flush=True)
    report["machine_end"] = report.get("machine_end") or machine()  # a partial re-run keeps the first run's
    report["gates"] = gates(report["runs"], args.steps)
    report["notes"] = notes(report)
    print(write_report(ROOT / "eval", "scale", report, render))


def notes(report: dict) -> list[str]:
    """What the table means, with its numbers (computed from the runs, so a re-run updates them)."""
    runs = report["runs"]
    out = []
    old = runs.get("old-loader-unsup-1m")
    if old:
        out.append(f"The issue measured 8.4 GB peak RSS for the in-memory loader on a 1M-line corpus. Re-measured here "
                   f"(the source tree before this loader, on this 1M corpus of two-sentence lines cut at 32 tokens) it "
                   f"peaked at {old['peak_gb']} GB and needed {old['ready_s']} s before training"
                   + (": the 8.4 GB figure is not reproduced on this corpus." if old["peak_gb"] < 8.4 else ".")
                   + " What the new loader changes is the warm start (a cache hit "
                   "memory-maps the tokenised corpus) and that no per-sentence Python object is kept, so memory "
                   "does not grow with the corpus the way a list of token lists does.")
    floors = {o: runs.get(f"{o}-floor-5k", {}).get("peak_gb") for o in ("unsup", "sup")}
    for case, objective in (("unsup-1m", "unsup"), ("sup-1m", "sup")):
        peaks = [runs.get(f"{case}-{w}", {}).get("peak_gb") for w in ("cold", "warm")]
        if floors[objective] and all(peaks):
            out.append(f"{case}: peak {max(peaks)} GB, of which {floors[objective]} GB is what training the model "
                       f"takes on a 5,000-row corpus (the floor run: libraries, weights, AdamW state, the step's "
                       f"activations); the 1M corpus adds {max(peaks) - floors[objective]:.2f} GB.")
    cached = [runs.get(f"sup-1m-{w}-mb64") for w in ("cold", "warm")]
    plain, st_cached = runs.get("sup-1m-warm"), runs.get("st-sup-1m-warm-cached64")
    if all(cached) and plain and cached[1].get("seconds_per_step") and plain.get("seconds_per_step"):
        peak = max(r["peak_gb"] for r in cached)
        floor = runs.get("sup-floor-5k-mb64", {}).get("peak_gb")
        out.append(f"sup-1m with `--mini-batch-size 64` (the step's 192 rows encoded 64 at a time and recomputed in "
                   f"the backward pass): peak {peak} GB cold and warm"
                   + (f" ({floor} GB on the 5,000-row floor corpus)" if floor else "")
                   + f" against {plain['peak_gb']} GB for the same warm run with every activation kept, at "
                   f"{cached[1]['seconds_per_step']} s/step against {plain['seconds_per_step']} "
                   f"({cached[1]['seconds_per_step'] / plain['seconds_per_step']:.2f}x the time: one more forward "
                   f"pass, and 3 chunks instead of 2)."
                   + (f" sentence-transformers' CachedMultipleNegativesRankingLoss (mini_batch_size 64) on the same "
                      f"warm corpus: {st_cached['peak_gb']} GB, {st_cached.get('seconds_per_step')} s/step."
                      if st_cached else ""))
    chunks4 = runs.get("sup-1m-warm-chunks4")
    if chunks4:
        out.append(f"sup-1m-warm-chunks4 (the same run with `--length-chunks 4`, less padding per chunk): "
                   f"{chunks4['peak_gb']} GB"
                   + (", so removing more padding does not bring the sup step under 2 GB; what is left is the "
                      "activations of 192 rows (anchor, positive, hard negative) and what the allocator keeps."
                      if chunks4["peak_gb"] > 2.0 else ", within 2 GB."))
    ten, one = runs.get("unsup-10m-warm"), runs.get("unsup-1m-warm")
    if ten and one:
        out.append(f"unsup-10m-warm: {ten['peak_gb']} GB against {one['peak_gb']} GB for unsup-1m-warm: ten times the "
                   f"corpus adds {ten['peak_gb'] - one['peak_gb']:.2f} GB. The tokenised cache is one memory-mapped "
                   f"Arrow file of 100,000-row record batches, so opening it touches a page or so per batch.")
    out += report.get("extra_notes", [])
    out.append("sentence-transformers tokenises each batch in its collator, so its cold start is datasets' Arrow "
               "conversion of the file only; simcse-lab's cold start also tokenises the whole corpus once (into a "
               "cache that every later run with the same corpus, tokenizer and max length memory-maps).")
    return out


def rerender() -> None:
    """eval/scale.md again from eval/scale.json (notes recomputed), without running anything."""
    report = json.loads((ROOT / "eval" / "scale.json").read_text())
    report["notes"] = notes(report)
    write_report(ROOT / "eval", "scale", report, render)


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


if __name__ == "__main__":
    main()
