"""Every backbone family end to end (issue 17): tiny random models of the nine families (tests/families.py) run
through the real CLI in-process (train unsup / sup / esimcse / --do-mlm, eval, analyze, export in every format,
index build on sentences longer than the position table, search), plus the checks behind the cells: the
exported sentence-transformers directory reloaded with plain ``SentenceTransformer`` and the ONNX graph give
simcse-lab's own vectors, each pooler equals an explicit loop over rows, length chunks and packing equal the
padded batch with dropout off. Every cell works or is a one-line refusal (exit 2) naming what fits; none may
be silently wrong. One 2-step training run per family and cell is shared by the eval / export / index tests.
``gpt2-nopad`` (a GPT-2 tokenizer without a pad token, as decoders ship) covers the pad-token fallback, and a
Sentence-T5 directory (T5 encoder, mean, bias-free Dense, Normalize) the projection's way through eval, export,
training and search. Needs ../shared/data (the tokenizers are trained on its wiki sentences): integration.
The eval / analyze cells score the first 150 pairs of STS-B's splits (a registry mirror of those)."""

from __future__ import annotations

import functools
import io
import json
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_lines
from families import ALL, FAMILIES, NLI_FILE, wiki_lines

pytestmark = pytest.mark.integration

NINE = list(FAMILIES)
EVERY = list(ALL)  # the nine and gpt2-nopad
# the families whose default run is a sentence-transformers directory: not a decoder trained bidirectionally
# without a config flag for it (gpt2-nopad: simcse-lab's own layout, exported as ONNX only; tests/integration/test_decoders.py)
ST_SAVED = [name for name in EVERY if not ALL[name].decoder]
NO_SUMMARY = [name for name, f in ALL.items() if f.summary_token is None]  # t5, gpt2-nopad
SUMMARY_POOLERS = ("cls", "cls_before_pooler")
POOLERS = ("cls", "cls_before_pooler", "avg", "avg_first_last", "avg_top2", "last_token", "weighted_avg")
SENTENCES = ["A man is playing a guitar.", "A woman slices an onion on a wooden board in the kitchen.",
             "Dogs run.", "The physicist was born in Ulm and later moved to the United States of America.",
             "An old red car is parked outside the small house near the river."]


# -- the CLI, in-process -------------------------------------------------------------------------------------
@dataclass
class Result:
    rc: int
    out: str
    err: str

    def cause(self) -> str:
        """The last non-empty stderr line: the refusal, or the exception of a crash."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        return lines[-1] if lines else "(no stderr)"


def cli(*argv) -> Result:
    """``simcse-lab ARGV`` in this process: its exit code and output; an uncaught exception is exit 1 with its
    traceback on stderr, as the console script would show it."""
    from accelerate.state import AcceleratorState

    from simcse_lab.cli import main

    # a fresh process each time, as far as accelerate is concerned: an earlier test of the session may have left
    # its Accelerator's state (another mixed precision), which accelerate refuses to change in one process
    AcceleratorState._reset_state(reset_partial_state=True)
    out, err = io.StringIO(), io.StringIO()
    rc = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main([str(a) for a in argv])
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception:  # noqa: BLE001 - a crash is a result of the cell, reported with its cause
            rc = 1
            err.write(traceback.format_exc())
    return Result(rc, out.getvalue(), err.getvalue())


def works(result: Result, what: str) -> None:
    assert result.rc == 0, f"{what}: exit {result.rc}: {result.cause()}"


def refused(result: Result, what: str, *needles: str) -> str:
    """Exit 2 with one ``simcse-lab: error:`` line (no traceback) holding every needle (case-insensitive)."""
    assert result.rc == 2, f"{what}: expected a refusal (exit 2), got exit {result.rc}: {result.cause()}"
    assert "Traceback" not in result.err, f"{what}: a traceback, not a one-line refusal"
    errors = [line for line in result.err.splitlines() if line.startswith("simcse-lab: error:")]
    assert len(errors) == 1, f"{what}: expected one error line, got {result.err!r}"
    for needle in needles:
        assert needle.lower() in errors[0].lower(), f"{what}: {needle!r} not in {errors[0]!r}"
    print(f"REFUSED {what}: {errors[0]}")  # for a matrix of the run (pytest -rP shows it)
    return errors[0]


def natural_pooler(family: str) -> str:
    """The family's natural pooler on a raw encoder: the summary token where it has one, else the mean. It is also
    what a run trained with the default pooler embeds with (``cls`` without its MLP: mlp_only_train)."""
    return "cls_before_pooler" if ALL[family].summary_token else "avg"


TRAIN_COMMON = ("--max-steps", "2", "--batch-size", "4", "--eval-steps", "0", "--test-tasks", "none",
                "--no-progress")
TRAIN_CELLS = ("unsup", "sup", "esimcse", "mlm")


class Matrix:
    """The family models and one memoised run of each CLI cell, shared by the tests of this module."""

    def __init__(self, models: dict[str, Path], data: Path, tmp: Path):
        self.models, self.data, self.tmp = models, data, tmp
        lines = wiki_lines(data)
        short = [line for line in lines if 5 <= len(line.split()) <= 25]
        self.wiki = write_lines(tmp / "wiki40.txt", short[:40])
        self.nli = tmp / "nli40.csv"
        self.nli.write_text("".join((data / NLI_FILE).read_text(encoding="utf-8").splitlines(True)[:41]))
        # the index corpus: long wiki sentences (past any 64-position table) and short ones
        self.long = [line for line in lines if len(line.split()) >= 70][:6]
        self.corpus = write_lines(tmp / "corpus.txt", self.long + short[100:130])
        self.token_corpus = write_lines(tmp / "tokens.txt", short[200:400])

    @functools.cache
    def train(self, family: str, cell: str) -> tuple[Result, Path]:
        out = self.tmp / "runs" / f"{family}-{cell}"
        args = {"unsup": ("--objective", "unsup", "--data", self.wiki),  # the family's default pooler
                "sup": ("--objective", "sup", "--data", self.nli, "--pooler", natural_pooler(family)),
                "esimcse": ("--objective", "esimcse", "--data", self.wiki, "--pooler", "avg"),
                "mlm": ("--objective", "unsup", "--data", self.wiki, "--do-mlm", "--pooler",
                        "avg_top2" if ALL[family].decoder else "avg_first_last")}[cell]
        return cli("train", "--model", self.models[family], *args, *TRAIN_COMMON, "--output-dir", out), out

    def run_dir(self, family: str) -> Path:
        """The family's unsup run (default pooler), which the eval / export / index cells use."""
        result, out = self.train(family, "unsup")
        if result.rc != 0:
            pytest.fail(f"{family}: the unsup training run the cell needs failed: exit {result.rc}: "
                        f"{result.cause()}")
        return out

    @functools.cache
    def export(self, family: str, fmt: str) -> tuple[Result, Path]:
        out = self.tmp / "exports" / f"{family}-{fmt}"
        quantize = ("--quantize", "int8") if fmt == "int8" else ()
        return cli("export", "--model", self.run_dir(family), "--format", "onnx" if fmt == "int8" else fmt,
                   *quantize, "--output-dir", out), out

    def exported(self, family: str, fmt: str) -> Path:
        result, out = self.export(family, fmt)
        if result.rc != 0:
            pytest.fail(f"{family}: export {fmt} failed: exit {result.rc}: {result.cause()}")
        return out


STS_PAIRS = 150  # pairs of each STS-B split the eval / analyze cells score (the cells test the families, not STS)


def small_stsb_registry(monkeypatch, shared: Path, mirror: Path) -> None:
    """Point the registry at a mirror whose ``stsb`` holds the first STS_PAIRS pairs of the real dev and test
    splits (the shipped entry, its files re-hashed): an eval cell encodes 300 sentences, not 2,758."""
    from simcse_lab.data import registry

    entry = json.loads((Path(registry.__file__).parent / "registry.json").read_text())["datasets"]["stsb"]
    splits = {split: entry["splits"][split] for split in ("dev", "test")}
    files = {}
    for split in splits.values():
        rel = split["path"]
        lines = (shared / rel).read_text(encoding="utf-8").splitlines(True)[:STS_PAIRS]
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        (mirror / rel).write_text("".join(lines), encoding="utf-8")
        files[rel] = registry.sha256_file(mirror / rel)
    path = mirror / "registry.json"
    path.write_text(json.dumps({"format": 1, "datasets": {"stsb": {**entry, "splits": splits, "files": files}}}))
    monkeypatch.setattr(registry, "MANIFEST", path)
    monkeypatch.setenv("SIMCSE_LAB_DATA", str(mirror))
    registry.manifest.cache_clear()


@pytest.fixture(scope="module")
def matrix(family_models, shared_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("families-matrix")
    with pytest.MonkeyPatch.context() as monkeypatch:
        small_stsb_registry(monkeypatch, shared_data, tmp / "mirror")
        yield Matrix(family_models, shared_data, tmp)
    from simcse_lab.data import registry

    registry.manifest.cache_clear()


def hf_encoder(path, pooler: str):
    """simcse-lab's own encoder on the Hugging Face path (not a sentence-transformers directory's modules)."""
    from simcse_lab.modeling.encoder import Encoder

    return Encoder(str(path), pooler=pooler, precision="fp32", batch_size=3)


# -- the fixtures themselves ---------------------------------------------------------------------------------
@pytest.mark.parametrize("family", EVERY)
def test_fixture_model_loads_offline_with_its_family_tokenizer(family_models, shared_data, family):
    """AutoConfig / AutoTokenizer / the saved architecture load each fixture offline; position 0 is the family's
    summary token where it has one, and a word piece where it has none."""
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    spec = ALL[family]
    config = AutoConfig.from_pretrained(family_models[family])
    tokenizer = AutoTokenizer.from_pretrained(family_models[family])
    assert config.model_type == spec.model_type
    model = getattr(transformers, config.architectures[0]).from_pretrained(family_models[family])
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 32
    ids = tokenizer("A man is playing a guitar.")["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    if spec.summary_token:
        assert tokens[0] == spec.summary_token == tokenizer.cls_token
    else:
        assert tokenizer.cls_token is None and tokens[0] not in tokenizer.all_special_tokens
    assert (tokenizer.mask_token is not None) == (spec.mask_token is not None)
    if family == "t5":
        assert config.architectures == ["T5EncoderModel"] and tokens[-1] == "</s>" and tokenizer.pad_token_id == 0
    if family == "gpt2-nopad":
        assert tokenizer.pad_token is None
    if spec.position_table:
        assert config.max_position_embeddings == spec.position_table
        long_ids = [tokenizer(line)["input_ids"] for line in wiki_lines(shared_data)[:2000] if len(line.split()) >= 70]
        assert max(map(len, long_ids)) > spec.position_table  # a long wiki sentence runs past the table


# -- training ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", TRAIN_CELLS)
@pytest.mark.parametrize("family", EVERY)
def test_train(matrix, family, cell):
    """unsup (the family's default pooler), sup (its natural raw pooler), esimcse (avg), --do-mlm (avg_first_last;
    a decoder: avg_top2, and its MNTP, masking with "_" where the tokenizer has no mask token): 2 steps each;
    --do-mlm on an encoder family without a mask token is a one-line refusal."""
    result, out = matrix.train(family, cell)
    if cell == "mlm" and ALL[family].decoder:
        works(result, f"{family} train {cell}")
        assert json.loads((out / "summary.json").read_text())["masked_lm"]["objective"] == "mntp"
    if cell == "mlm" and ALL[family].mask_token is None and not ALL[family].decoder:
        refused(result, f"{family} --do-mlm", "mask")
        assert not (out / "final").exists()
        return
    works(result, f"{family} train {cell}")
    if ALL[family].decoder:  # bidirectional by default, no config flag for it: simcse-lab's own layout
        assert (out / "final" / "simcse_lab_recipe.json").is_file() and (out / "final" / "backbone").is_dir()
        assert not (out / "final" / "modules.json").exists()
    else:
        assert (out / "final" / "modules.json").is_file()


@pytest.mark.parametrize("family", EVERY)
def test_default_pooler_is_the_familys_natural_one(matrix, family):
    """Trained without --pooler: [CLS]/<s> where the family has a summary token, the mean where it has none."""
    run = matrix.run_dir(family)
    if ALL[family].decoder:
        assert json.loads((run / "final" / "simcse_lab_recipe.json").read_text())["pooler"] == "avg"
        return
    mode = json.loads((run / "final" / "1_Pooling" / "config.json").read_text())["pooling_mode"]
    assert mode == ("cls" if ALL[family].summary_token else "mean")


@pytest.mark.parametrize("command", ["train", "eval", "export", "index"])
@pytest.mark.parametrize("pooler", SUMMARY_POOLERS)
@pytest.mark.parametrize("family", NO_SUMMARY)
def test_summary_pooler_on_a_family_without_one_is_refused(matrix, family, pooler, command, tmp_path):
    """T5 (and a decoder) have no summary token: position 0 is a word piece, so cls / cls_before_pooler would be
    silently wrong. One line (exit 2), before any work, naming the family and a pooler that fits."""
    model, out = matrix.models[family], tmp_path / "out"
    args = {"train": ("train", "--model", model, "--data", matrix.wiki, *TRAIN_COMMON, "--output-dir", out),
            "eval": ("eval", "--model", model, "--tasks", "stsb", "--precision", "fp32", "--no-progress"),
            "export": ("export", "--model", model, "--format", "sentence-transformers", "--output-dir", out),
            "index": ("index", "build", "--model", model, "--corpus", matrix.corpus, "--output-dir", out,
                      "--no-progress")}[command]
    line = refused(cli(*args, "--pooler", pooler), f"{family} {command} --pooler {pooler}", "avg")
    assert ALL[family].model_type in line.lower() or family.split("-")[0] in line.lower(), line
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_fp16_training_of_t5_is_a_one_line_refusal(matrix, tmp_path):
    """T5's activations overflow fp16: training in fp16 is refused in one line pointing to bf16 (on a CPU, fp16
    is refused for every family, with the same pointer)."""
    out = tmp_path / "run"
    refused(cli("train", "--model", matrix.models["t5"], "--data", matrix.wiki, "--precision", "fp16", *TRAIN_COMMON,
                "--output-dir", out), "t5 train --precision fp16", "bf16")
    assert not (out / "final").exists()


# -- eval, analyze -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", EVERY)
def test_eval_trained(matrix, family, tmp_path):
    result = cli("eval", "--model", matrix.run_dir(family), "--tasks", "stsb", "--precision", "fp32",
                 "--no-progress", "--output", tmp_path / "r.json")
    works(result, f"{family} eval")
    spearman = json.loads((tmp_path / "r.json").read_text())["tasks"]["stsb"]["spearman"]
    assert np.isfinite(spearman)


@pytest.mark.parametrize("family", EVERY)
def test_eval_raw_model_with_the_default_pooler(matrix, family, tmp_path):
    """A raw checkpoint, no --pooler: works with the family's default, or (cls without trained pooler weights) is a
    one-line refusal naming a pooler that fits. Families without a summary token default to the mean and work."""
    result = cli("eval", "--model", matrix.models[family], "--tasks", "stsb", "--precision", "fp32",
                 "--no-progress", "--output", tmp_path / "r.json")
    if ALL[family].summary_token is None or ALL[family].own_pooler_layer:
        works(result, f"{family} eval raw")
        assert json.loads((tmp_path / "r.json").read_text())["pooler"] == (
            "cls" if ALL[family].summary_token else "avg")
    elif result.rc == 0:  # a family without pooler weights whose default reads the raw summary token
        assert json.loads((tmp_path / "r.json").read_text())["pooler"] in SUMMARY_POOLERS
    else:
        refused(result, f"{family} eval raw", "cls_before_pooler")


@pytest.mark.parametrize("family", EVERY)
def test_analyze(matrix, family, tmp_path):
    result = cli("analyze", "--model", matrix.run_dir(family), "--output-dir", tmp_path / "a", "--max-sentences",
                 "40", "--max-pairs", "200", "--token-corpus", matrix.token_corpus, "--knn-sample", "20",
                 "--token-dynamics-sentences", "40", "--precision", "fp32", "--no-progress")
    works(result, f"{family} analyze")
    assert (tmp_path / "a" / "report.json").is_file()


# -- export --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["sentence-transformers", "hf", "onnx", "int8"])
@pytest.mark.parametrize("family", EVERY)
def test_export(matrix, family, fmt):
    """Every format exports (and passes the exporter's own verification on reload); a bidirectional decoder run
    only as ONNX: the directory formats, which would run it causal, are refused before anything is written."""
    result, out = matrix.export(family, fmt)
    if ALL[family].decoder and fmt in ("sentence-transformers", "hf"):
        refused(result, f"{family} export {fmt}", "onnx", "causal")
        assert not out.exists()
        return
    works(result, f"{family} export {fmt}")
    assert out.is_dir()


@pytest.mark.parametrize("family", ST_SAVED)
def test_sentence_transformers_reload_equals_simcse_lab(matrix, family):
    """Plain ``SentenceTransformer(dir)`` on the export gives simcse-lab's own vectors (HF path, the run's pooler),
    max abs diff <= 1e-5 in fp32; its max_seq_length is the family's usable length."""
    from sentence_transformers import SentenceTransformer

    run, st_dir = matrix.run_dir(family), matrix.exported(family, "sentence-transformers")
    ours = hf_encoder(run / "final", natural_pooler(family)).encode(SENTENCES + matrix.long[:2])
    st = SentenceTransformer(str(st_dir), device="cpu")
    theirs = st.encode(SENTENCES + matrix.long[:2], convert_to_numpy=True, batch_size=3)
    assert np.abs(theirs - ours).max() <= 1e-5
    if ALL[family].usable_length:
        assert st.max_seq_length == ALL[family].usable_length


@pytest.mark.parametrize("family", ST_SAVED)
def test_hf_export_equals_simcse_lab(matrix, family):
    """The plain HF export, encoded with the run's pooler, gives the run's vectors (inputs past the table too)."""
    run, hf_dir = matrix.run_dir(family), matrix.exported(family, "hf")
    sentences = SENTENCES + matrix.long[:2]
    ours = hf_encoder(run / "final", natural_pooler(family)).encode(sentences)
    assert np.abs(hf_encoder(hf_dir, natural_pooler(family)).encode(sentences) - ours).max() <= 1e-5


@pytest.mark.parametrize("fmt", ["onnx", "int8"])
@pytest.mark.parametrize("family", EVERY)
def test_onnx_equals_simcse_lab(matrix, family, fmt):
    """The ONNX graph gives simcse-lab's own vectors (<= 1e-4); int8 keeps each vector's direction (cos >= 0.95)."""
    from simcse_lab.modeling.encoder import load_encoder

    run = matrix.run_dir(family)
    sentences = SENTENCES + matrix.long[:2]  # past the position table: truncated alike
    ours = hf_encoder(run / "final", natural_pooler(family)).encode(sentences)
    onnx = load_encoder(str(matrix.exported(family, fmt)), batch_size=3).encode(sentences)  # at the graph's precision
    if fmt == "onnx":
        assert np.abs(onnx - ours).max() <= 1e-4
    else:
        cos = (onnx * ours).sum(1) / np.linalg.norm(onnx, axis=1) / np.linalg.norm(ours, axis=1)
        assert cos.min() >= 0.95


# -- index and search ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", EVERY)
def test_index_build_on_sentences_longer_than_the_position_table_and_search(matrix, family, tmp_path):
    """The corpus holds wiki sentences longer than any 64-position table: they are truncated to the usable
    length (RoBERTa-style families: max_position_embeddings - padding_idx - 1) and the index works; a long
    sentence searched for finds itself first."""
    tokenizer = __import__("transformers").AutoTokenizer.from_pretrained(matrix.models[family])
    assert max(len(tokenizer(s)["input_ids"]) for s in matrix.long) > 66
    index = tmp_path / "index"
    works(cli("index", "build", "--model", matrix.run_dir(family), "--corpus", matrix.corpus, "--output-dir", index,
              "--precision", "fp32", "--no-progress"), f"{family} index build")
    result = cli("search", "--index", index, "--query", matrix.long[0], "-k", "3")
    works(result, f"{family} search")
    first_hit = result.out.splitlines()[1]  # "query: ..." then "  1  SCORE  [ID] TEXT"
    assert first_hit.split()[0] == "1" and first_hit.endswith(matrix.long[0]), result.out


# -- the poolers against a loop over rows --------------------------------------------------------------------
def reference_vectors(path: Path, pooler: str, sentences: list[str], max_length: int | None,
                      eos: bool = False) -> np.ndarray:
    """Each sentence alone (no padding) through the saved architecture, pooled by hand; ``eos``: the tokenizer's
    EOS appended (a decoder family's rule), within ``max_length``."""
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(path)
    model = getattr(transformers, config.architectures[0]).from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = []
    with torch.inference_mode():
        for sentence in sentences:
            enc = tokenizer(sentence, return_tensors="pt", truncation=max_length is not None,
                            max_length=max_length - eos if max_length else None)
            if eos:
                enc = {"input_ids": torch.cat([enc["input_ids"], torch.tensor([[tokenizer.eos_token_id]])], 1),
                       "attention_mask": torch.cat([enc["attention_mask"], torch.tensor([[1]])], 1)}
            out = model(**enc, output_hidden_states=True)
            states = out.hidden_states
            if pooler == "cls":
                rows.append(out.pooler_output[0])  # the backbone's own pooler layer on position 0
            elif pooler == "cls_before_pooler":
                rows.append(out.last_hidden_state[0, 0])
            elif pooler == "avg":
                rows.append(out.last_hidden_state[0].mean(0))
            elif pooler == "avg_first_last":
                rows.append(((states[1][0] + states[-1][0]) / 2).mean(0))
            elif pooler == "last_token":
                rows.append(out.last_hidden_state[0, -1])
            elif pooler == "weighted_avg":  # SGPT: position weights 1..L, normalised
                weights = torch.arange(1, out.last_hidden_state.shape[1] + 1, dtype=out.last_hidden_state.dtype)
                rows.append((weights[:, None] * out.last_hidden_state[0]).sum(0) / weights.sum())
            else:
                rows.append(((states[-2][0] + states[-1][0]) / 2).mean(0))
    return torch.stack(rows).numpy()


@pytest.mark.parametrize("pooler", POOLERS)
@pytest.mark.parametrize("family", EVERY)
def test_pooler_equals_a_loop_over_rows(matrix, family, pooler):
    """simcse-lab's encoder on a raw checkpoint (padded, length-sorted batches) equals each sentence run alone and
    pooled by hand; inputs past the position table are truncated to the usable length; a tokenizer without a pad
    token (gpt2-nopad) pads with a fallback the mask hides. A pooler that cannot work on the family (no summary
    token; cls without pooler weights) is a one-line refusal naming one that fits."""
    from simcse_lab.errors import UserError
    from simcse_lab.modeling.embedder import PassSwitches, RowRun

    spec = ALL[family]
    sentences = SENTENCES + (matrix.long[:2] if spec.usable_length else [])
    try:
        ours = hf_encoder(matrix.models[family], pooler).encode(sentences)
    except UserError as err:
        message = str(err)
        print(f"REFUSED {family} pooler {pooler}: {message}")
        assert "\n" not in message
        if pooler in SUMMARY_POOLERS and spec.summary_token is None:
            assert "avg" in message and spec.model_type in message.lower(), message
            return
        if pooler == "cls" and not spec.own_pooler_layer:
            assert "cls_before_pooler" in message, message
            return
        if pooler == "avg_first_last" and spec.decoder:
            assert "refused for the gpt2 family" in message and "avg" in message, message
            return
        raise
    assert spec.summary_token is not None or pooler not in SUMMARY_POOLERS, "a summary pooler on a family without one"
    reference = reference_vectors(matrix.models[family], pooler, sentences, spec.usable_length, eos=spec.decoder)
    assert np.abs(ours - reference).max() <= 1e-5


# -- length chunks and packing equal the padded batch (dropout off) -------------------------------------------
def still_embedder(path: Path, pooler: str, **kwargs):
    from simcse_lab.modeling.embedder import load_embedder

    tokenizer, embedder = load_embedder(str(path), pooler, mlp_only_train=False, **kwargs)
    embedder.train()  # dropout is 0 in these models: training mode is deterministic
    return tokenizer, embedder


def batch_of(tokenizer, sentences: list[str]) -> dict:
    from simcse_lab.modeling.batching import pad_batch

    enc = tokenizer(sentences, truncation=True, max_length=40)
    types = enc.get("token_type_ids")
    batch = pad_batch(enc["input_ids"], tokenizer.pad_token_id, types)
    return {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


@pytest.mark.parametrize("family", NINE)
def test_length_chunks_equal_the_padded_batch(still_family_models, matrix, family):
    from simcse_lab.modeling.embedder import PassSwitches

    pooler = natural_pooler(family)
    tokenizer, embedder = still_embedder(still_family_models[family], pooler)
    batch = batch_of(tokenizer, SENTENCES * 2 + matrix.long[:1])
    whole = embedder(**batch, switches=PassSwitches(chunks=1))
    for chunks in (2, 3):
        parts = embedder(**batch, switches=PassSwitches(chunks=chunks))
        torch.testing.assert_close(parts, whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", NINE)
def test_packing_equals_the_padded_batch_or_is_refused(still_family_models, family):
    """Packing is exact for BERT, ELECTRA and the offset families (positions padding_idx + 1 + arange(n)); any
    other family may refuse it in one line naming length_chunks."""
    from simcse_lab.errors import UserError
    from simcse_lab.modeling.embedder import PassSwitches, RowRun

    spec = ALL[family]
    try:
        tokenizer, embedder = still_embedder(still_family_models[family], natural_pooler(family),
                                             rows=RowRun(pack_width=48))
    except UserError as err:
        print(f"REFUSED {family} packing: {err}")
        assert not spec.packable, f"{family}: packing refused: {err}"
        assert "\n" not in str(err) and "length_chunks" in str(err)
        return
    batch = batch_of(tokenizer, SENTENCES * 3)
    whole = embedder(**batch, switches=PassSwitches(chunks=1, pack=False))
    seen = []
    hook = embedder.backbone.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["input_ids"].shape[0]), with_kwargs=True)
    packed = embedder(**batch)
    hook.remove()
    assert seen and seen[0] < batch["input_ids"].shape[0]  # really packed: fewer rows than sentences
    torch.testing.assert_close(packed, whole, atol=1e-5, rtol=1e-5)



# -- Sentence-T5: a T5 encoder, mean pooling, a bias-free Dense projection, Normalize ---------------------------
@pytest.fixture(scope="module")
def sentence_t5(family_models, tmp_path_factory) -> Path:
    from families import build_sentence_t5

    return build_sentence_t5(family_models["t5"], tmp_path_factory.mktemp("sentence-t5") / "st5")


def st_encode(path: Path, sentences: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu").encode(sentences, convert_to_numpy=True, batch_size=3)


def module_types(path: Path) -> list[str]:
    return [m["type"].rsplit(".", 1)[-1] for m in json.loads((path / "modules.json").read_text())]


def test_sentence_t5_encodes_through_its_own_modules(matrix, sentence_t5, tmp_path):
    """simcse-lab's encoder and eval on a Sentence-T5 directory use its projection and normalisation: the vectors
    of plain SentenceTransformer(dir)."""
    from simcse_lab.modeling.encoder import load_encoder

    sentences = SENTENCES + matrix.long[:2]
    ours = load_encoder(str(sentence_t5), precision="fp32", batch_size=3).encode(sentences)
    assert np.abs(ours - st_encode(sentence_t5, sentences)).max() <= 1e-5
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    works(cli("eval", "--model", sentence_t5, "--tasks", "stsb", "--precision", "fp32", "--no-progress"),
          "sentence-t5 eval")


@pytest.mark.parametrize("fmt", ["sentence-transformers", "onnx", "hf"])
def test_sentence_t5_export_keeps_the_projection(matrix, sentence_t5, fmt, tmp_path):
    """Exported as Transformer -> Pooling -> Dense -> Normalize (and ONNX with the same vectors); the plain HF
    format cannot hold a linear projection: it exports the same vectors or is refused in one line."""
    from simcse_lab.modeling.encoder import load_encoder

    out = tmp_path / "out"
    result = cli("export", "--model", sentence_t5, "--format", fmt, "--output-dir", out)
    sentences = SENTENCES + matrix.long[:2]
    reference = st_encode(sentence_t5, sentences)
    if fmt == "hf" and result.rc != 0:
        refused(result, "sentence-t5 export hf", "sentence-transformers")
        return
    works(result, f"sentence-t5 export {fmt}")
    if fmt == "sentence-transformers":
        assert module_types(out) == ["Transformer", "Pooling", "Dense", "Normalize"]
        assert np.abs(st_encode(out, sentences) - reference).max() <= 1e-5
    else:
        vectors = load_encoder(str(out), batch_size=3).encode(sentences)
        assert np.abs(vectors - reference).max() <= 1e-4


def test_sentence_t5_training_keeps_the_projection_or_refuses(matrix, sentence_t5, tmp_path):
    """Training from a Sentence-T5 directory keeps its Dense + Normalize in the trained model (mean pooling by
    default), or is refused in one line; it never silently drops the projection."""
    out = tmp_path / "run"
    result = cli("train", "--model", sentence_t5, "--data", matrix.wiki, *TRAIN_COMMON, "--output-dir", out)
    if result.rc == 2:
        refused(result, "sentence-t5 train")
        return
    works(result, "sentence-t5 train")
    assert module_types(out / "final")[-2:] == ["Dense", "Normalize"], module_types(out / "final")
    assert json.loads((out / "final" / "1_Pooling" / "config.json").read_text())["pooling_mode"] == "mean"


def test_sentence_t5_index_and_search(matrix, sentence_t5, tmp_path):
    index = tmp_path / "index"
    works(cli("index", "build", "--model", sentence_t5, "--corpus", matrix.corpus, "--output-dir", index,
              "--precision", "fp32", "--no-progress"), "sentence-t5 index build")
    result = cli("search", "--index", index, "--query", matrix.long[0], "-k", "3")
    works(result, "sentence-t5 search")
    assert result.out.splitlines()[1].endswith(matrix.long[0]), result.out
