"""The ``--data`` loader at scale: every source kind, strict rows, the tokenised cache, hub ids mocked at datasets."""

from __future__ import annotations

import json
import re
from unittest import mock

import pytest

from simcse_lab.data import training_data
from simcse_lab.data.spec import parse_spec
from simcse_lab.data.training_data import choose_columns, load_training_examples
from simcse_lab.errors import InputError, UserError

SENTENCES = ["A man is playing a guitar.", "Two dogs run on the beach.", "A woman slices an onion.",
             "Stocks fell sharply on Tuesday.", "Is this the way to the station?"]
TRIPLETS = [("A man sings.", "A person sings.", "A woman sleeps."),
            ("Dogs run.", "Animals move.", "Cats sit still."),
            ("It rains, a lot.", "The weather is wet.", "It is sunny.")]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from simcse_lab.modeling.resolve import resolve_model

    return AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIMCSE_LAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "tokenized"


def ids(tokenizer, text, max_length=32):
    return tokenizer(text, truncation=True, max_length=max_length)["input_ids"]


def test_txt_tokenised_once_then_memory_mapped(tmp_path, tokenizer, cache):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(SENTENCES) + "\n")
    spec = parse_spec(str(path))
    first, key, hit = training_data.build_tokenized(spec, tokenizer, 32, ["text"], cache)
    assert not hit and [list(r) for r in first["ids0"]] == [ids(tokenizer, s) for s in SENTENCES]
    again, key2, hit2 = training_data.build_tokenized(spec, tokenizer, 32, ["text"], cache)
    assert hit2 and key2 == key
    assert again.cache_files and all(f["filename"].startswith(str(cache)) for f in again.cache_files)  # memory-mapped
    # another max length or changed content is another entry, never a stale hit
    assert training_data.build_tokenized(spec, tokenizer, 8, ["text"], cache)[1] != key
    path.write_text("\n".join(reversed(SENTENCES)) + "\n")
    changed, key3, hit3 = training_data.build_tokenized(parse_spec(str(path)), tokenizer, 32, ["text"], cache)
    assert not hit3 and key3 != key and list(changed[0]["ids0"]) == ids(tokenizer, SENTENCES[-1])
    assert not list(cache.glob(".*tmp-*"))  # work directories are removed


def test_cache_file_has_few_large_record_batches(tmp_path, tokenizer, cache, monkeypatch):
    """Opening the memory-mapped cache reads every record batch's header (and the pages around it): the map
    writes 1,000-row pieces, the cache file holds RECORD_BATCH_ROWS-row batches, so few headers."""
    import pyarrow as pa

    path = tmp_path / "corpus.txt"
    rows = [f"{SENTENCES[i % len(SENTENCES)]} {i}" for i in range(2500)]
    path.write_text("\n".join(rows) + "\n")
    ds, key, _ = training_data.build_tokenized(parse_spec(str(path)), tokenizer, 32, ["text"], cache)

    def batches(entry):
        with pa.memory_map(str(cache / entry / training_data.DATA_FILE)) as source:
            return [b.num_rows for b in pa.ipc.open_stream(source)]

    assert batches(key) == [2500]  # the map's three 1,000-row pieces combined into one batch
    assert [list(r) for r in ds.select([0, 1999, 2499])["ids0"]] == [ids(tokenizer, rows[i]) for i in (0, 1999, 2499)]
    monkeypatch.setattr(training_data, "RECORD_BATCH_ROWS", 1000 // 3)
    _, key2, _ = training_data.build_tokenized(parse_spec(str(path)), tokenizer, 16, ["text"], cache)
    assert batches(key2) == [333] * 7 + [2500 - 7 * 333]


def test_compact_integer_columns(tmp_path, tokenizer, cache):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(SENTENCES) + "\n")
    ds, _, _ = training_data.build_tokenized(parse_spec(str(path)), tokenizer, 32, ["text"], cache)
    assert str(ds.features["ids0"].feature.dtype) == "uint16"  # 30,522 ids fit in 16 bits


def test_example_shapes_per_objective(tmp_path, tokenizer, cache):
    path = tmp_path / "nli.csv"
    path.write_text("sent0,sent1,hard_neg\n" + "".join(f'"{a}","{b}","{c}"\n' for a, b, c in TRIPLETS))
    triplets = load_training_examples(str(path), tokenizer, 32, 3)
    assert len(triplets) == 3 and triplets[1] == tuple(ids(tokenizer, s) for s in TRIPLETS[1])
    assert triplets.take([2, 0]) == [triplets[2], triplets[0]]
    anchors = load_training_examples(str(path), tokenizer, 32, 1, with_index=True)
    assert anchors[2] == (2, ids(tokenizer, TRIPLETS[2][0]))
    with pytest.raises(UserError, match="needs 3"):
        load_training_examples(str(path), tokenizer, 32, 3, columns=["sent0"])


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "tsv", "saved"])
def test_each_local_kind_with_named_columns(tmp_path, tokenizer, cache, kind):
    import datasets

    rows = [{"anchor": a, "positive": b, "negative": c, "label": 1} for a, b, c in TRIPLETS]
    if kind == "jsonl":
        path = tmp_path / "d.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif kind == "tsv":
        path = tmp_path / "d.tsv"
        path.write_text("label\tanchor\tpositive\tnegative\n" + "".join(f"1\t{a}\t{b}\t{c}\n" for a, b, c in TRIPLETS))
    elif kind == "parquet":
        path = tmp_path / "d.parquet"
        datasets.Dataset.from_list(rows).to_parquet(str(path))
    else:
        path = tmp_path / "saved"
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
    examples = load_training_examples(str(path), tokenizer, 32, 3)  # anchor,positive,negative found by name
    assert examples[0] == tuple(ids(tokenizer, s) for s in TRIPLETS[0])
    positives = load_training_examples(str(path), tokenizer, 32, 1, columns=["positive"])
    assert positives[1] == ids(tokenizer, TRIPLETS[1][1])


def test_registry_names(mirror_env, tokenizer, cache):
    wiki = load_training_examples("wiki", tokenizer, 32, 1)
    assert len(wiki) == 11914
    nli = load_training_examples("nli", tokenizer, 32, 3)
    assert len(nli) == 6503 and len(nli[0]) == 3
    stsb = load_training_examples("stsb:train", tokenizer, 32, 1, columns=["sent2"])
    assert len(stsb) == 5749


def test_hub_dataset_through_datasets_boundary(tokenizer, cache):
    import datasets

    fake = datasets.Dataset.from_list([{"anchor": a, "positive": b, "negative": c} for a, b, c in TRIPLETS])
    with mock.patch("datasets.load_dataset", return_value=fake) as load:
        examples = load_training_examples("hub:sentence-transformers/all-nli:triplet@train", tokenizer, 32, 3)
    load.assert_called_with("sentence-transformers/all-nli", "triplet", split="train")
    assert examples[2] == tuple(ids(tokenizer, s) for s in TRIPLETS[2])
    with mock.patch("datasets.load_dataset", side_effect=ConnectionError("no network\nmore")):
        with pytest.raises(UserError, match="cannot load the hub dataset .no network.$"):
            load_training_examples("hub:someone/missing", tokenizer, 32, 1)


@pytest.mark.parametrize("name,content,line,problem", [
    ("blank.txt", "one\n\nthree\n", 2, "blank line"),
    ("bad.txt", b"fine\nbad \xff\n", 2, "not valid UTF-8"),
    ("short.csv", "sent0,sent1,hard_neg\na,b,c\nd,e\n", 3, "expected 3 fields"),
    ("empty.csv", "sent0,sent1,hard_neg\na,b,c\nd, ,f\n", 3, "empty 'sent1'"),
    ("multi.csv", 'sent0,sent1,hard_neg\n"a\nb",c,d\ne,f\n', 4, "expected 3 fields"),
    ("notjson.jsonl", '{"text": "a"}\n{"text": \n', 2, "not JSON"),
    ("missing.jsonl", '{"text": "a"}\n{"other": "b"}\n', 2, "'text' must be a non-empty string"),
])
def test_malformed_row_is_one_line_error(tmp_path, tokenizer, cache, name, content, line, problem):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    needed = 3 if name.endswith(".csv") else 1
    with pytest.raises(InputError) as err:
        load_training_examples(str(path), tokenizer, 32, needed)
    assert err.value.line == line and problem in err.value.problem and "\n" not in str(err.value)


def test_parquet_null_cell_names_the_row(tmp_path, tokenizer, cache):
    import datasets

    path = tmp_path / "d.parquet"
    datasets.Dataset.from_list([{"text": "fine"}, {"text": None}]).to_parquet(str(path))
    with pytest.raises(InputError, match=r"row 1: 'text' must be a non-empty string"):
        load_training_examples(str(path), tokenizer, 32, 1)


def test_lines_split_on_newline_only_and_bom_dropped(tmp_path, tokenizer, cache):
    path = tmp_path / "odd.txt"
    path.write_bytes("\ufeffone\u2028inside\r\ntwo\x0cthree\nfour\x85five\n".encode())
    examples = load_training_examples(str(path), tokenizer, 64, 1)
    assert len(examples) == 3
    assert examples[0] == ids(tokenizer, "one\u2028inside", 64)


@pytest.mark.parametrize("spec,message", [
    ("", "--data is empty"),
    ("nosuchset", "not a registry dataset"),
    ("some/missing.txt", "no such file"),
    ("wiki:dev", "has no split 'dev'"),
    ("hub:", "no dataset id"),
])
def test_bad_specs(spec, message, cache, mirror_env):
    with pytest.raises(UserError, match=message):
        parse_spec(spec)


def test_unknown_file_type_and_plain_directory(tmp_path):
    (tmp_path / "x.xlsx").write_text("a")
    with pytest.raises(UserError, match="unknown data file type"):
        parse_spec(str(tmp_path / "x.xlsx"))
    with pytest.raises(UserError, match="not one written by Dataset.save_to_disk"):
        parse_spec(str(tmp_path))


def test_download_only_set_offline_is_one_line(tmp_path, monkeypatch, cache):
    import urllib.error

    monkeypatch.setenv("SIMCSE_LAB_DATA", str(tmp_path / "empty-mirror"))
    with mock.patch("urllib.request.urlopen", side_effect=urllib.error.URLError("Name or service not known")):
        with pytest.raises(UserError) as err:
            parse_spec("wiki1m")
    message = str(err.value)
    assert "\n" not in message and "SIMCSE_LAB_DATA" in message and "data fetch" in message


def test_column_choice():
    assert choose_columns(["label", "anchor", "positive", "negative"], 3, None, "f") == ["anchor", "positive", "negative"]
    assert choose_columns(["only"], 1, None, "f") == ["only"]
    with pytest.raises(UserError, match="name them with --columns"):
        choose_columns(["a", "b"], 1, None, "f")
    with pytest.raises(UserError, match="no column nope"):
        choose_columns(["a", "b"], 1, ["nope"], "f")


# -- the cache's entries are checked before they are trusted (issue 18: 4, 5, 6, 7) ---------------------------
C1 = ("the cat sat on the mat\na dog runs in the park\nthe sun is bright today\nmusic fills the room\n"
      "birds sing at dawn\nrain falls on the roof\nchildren play outside\nthe river flows slowly\n")
C2 = ("zebra quantum xylophone\nvolcano erupts lava\nastronaut floats in orbit\nsubmarine dives deep\n"
      "glacier melts slowly\ncomet streaks across sky\ndesert sand dunes shift\njungle canopy is dense\n"
      "extra line nine\n")


class _Forgetful(dict):
    """Stands for content_hash's per-process digests in a test that plays several runs in one process."""

    def __setitem__(self, key, value):
        pass


@pytest.fixture
def runs(tmp_path, cache, monkeypatch):
    """Two corpora (the review's c1, 8 lines, and c2, 9 lines); memos written at once (no racy window), and
    every build_tokenized call a new run (no digest kept in the process)."""
    from simcse_lab.data import content_hash

    monkeypatch.setattr(content_hash, "RACY_SECONDS", 0.0)
    monkeypatch.setattr(content_hash, "_READ_HERE", _Forgetful(), raising=False)
    (tmp_path / "c1.txt").write_text(C1)
    (tmp_path / "c2.txt").write_text(C2)
    return tmp_path


def _build(tokenizer, cache, path):
    return training_data.build_tokenized(parse_spec(str(path)), tokenizer, 32, ["text"], cache)


def _rows(dataset):
    return [list(r) for r in dataset["ids0"]]


def _patch_id(data_file, old: int, new: int) -> None:
    """Overwrite, in place (same inode), the first uint16 ``old`` in ``data_file`` with ``new``."""
    import struct

    data = data_file.read_bytes()
    at = data.find(struct.pack("<H", old))
    assert at > 0
    with open(data_file, "r+b") as f:
        f.seek(at)
        f.write(struct.pack("<H", new))


def _swap(entry, other, tokenizer):
    (entry / training_data.DATA_FILE).write_bytes((other / training_data.DATA_FILE).read_bytes())


def _truncate(entry, other, tokenizer):
    data = (entry / training_data.DATA_FILE).read_bytes()
    (entry / training_data.DATA_FILE).write_bytes(data[:300])


def _other_word(entry, other, tokenizer):
    cat, dog = tokenizer.convert_tokens_to_ids(["cat", "dog"])
    _patch_id(entry / training_data.DATA_FILE, cat, dog)


def _beyond_vocab(entry, other, tokenizer):
    _patch_id(entry / training_data.DATA_FILE, tokenizer.convert_tokens_to_ids("cat"), 65535)


def _no_manifest(entry, other, tokenizer):
    (entry / training_data.MANIFEST).unlink()


def _manifest_max_id_beyond_vocab(entry, other, tokenizer):
    manifest = json.loads((entry / training_data.MANIFEST).read_text())
    (entry / training_data.MANIFEST).write_text(json.dumps({**manifest, "max_id": len(tokenizer)}))


@pytest.mark.parametrize("damage,reason", [
    (_swap, "tokens.arrow (is .* bytes|does not match its checksum)"), (_truncate, "truncated or replaced"),
    (_other_word, "does not match its checksum"),
    (_beyond_vocab, "does not match its checksum"), (_no_manifest, "no manifest.json"),
    (_manifest_max_id_beyond_vocab, "ids up to 30522, beyond the tokenizer's 30522")])
def test_a_damaged_entry_is_rebuilt_with_one_line(runs, tokenizer, cache, capsys, damage, reason):
    """The review's reproductions: c2's tokens.arrow copied into c1's entry (trained as c1 with 9 rows), an id
    changed in place to another word's or past the vocabulary (an IndexError at step 1), a truncated file (an
    ArrowInvalid traceback on every run). Each is noticed, said in one line naming the entry, discarded and
    built again; the next run is a plain hit."""
    truth, key, _ = _build(tokenizer, cache, runs / "c1.txt")
    expected = _rows(truth)
    _, key2, _ = _build(tokenizer, cache, runs / "c2.txt")
    assert _build(tokenizer, cache, runs / "c1.txt")[2]  # a hit, whose tokens.arrow state is now remembered
    capsys.readouterr()
    damage(cache / key, cache / key2, tokenizer)
    again, key_again, hit = _build(tokenizer, cache, runs / "c1.txt")
    err = capsys.readouterr().err
    assert not hit and key_again == key and _rows(again) == expected
    assert err.count("\n") == 1 and f"{cache / key}: " in err and re.search(reason, err) and "tokenising again" in err
    assert _build(tokenizer, cache, runs / "c1.txt")[2] and capsys.readouterr().err == ""
    assert sorted(p.name for p in cache.iterdir()) == sorted([key, key2])  # nothing left beside the entries


def test_a_warm_hit_reads_tokens_arrow_once_per_file_state(runs, tokenizer, cache, monkeypatch):
    """The checksum's cost: verified by reading the file on the first hit after it is written, then by its
    state (inode, size, times) and a 64 KiB sample, like the corpus's own digest."""
    from simcse_lab.data import content_hash

    key = _build(tokenizer, cache, runs / "c1.txt")[1]
    reads = []
    real = content_hash.sha256_file
    monkeypatch.setattr(content_hash, "sha256_file", lambda path: reads.append(path.name) or real(path))
    assert _build(tokenizer, cache, runs / "c1.txt")[2] and reads.count(training_data.DATA_FILE) == 1
    assert _build(tokenizer, cache, runs / "c1.txt")[2] and reads.count(training_data.DATA_FILE) == 1
    assert json.loads((cache / key / training_data.MANIFEST).read_text())["rows"] == 8


@pytest.mark.parametrize("c2_size", ["other", "same"])
def test_a_memo_naming_another_corpus_does_not_select_its_entry(runs, tokenizer, cache, capsys, c2_size):
    """The review's reproduction of #5: c1's memo given sha256(c2) (path, state and sample kept) selected c2's
    entry, and c1 was trained on c2's 9 rows. The entry records the size and sample digest of the file it was
    built from; c1 does not match them, so its digest is read again and c1's own entry is used."""
    import hashlib

    from simcse_lab.data.content_hash import memo_path

    if c2_size == "same":  # the size alone cannot tell them apart
        (runs / "c2.txt").write_text(C2[:len(C1)])
    truth, key1, _ = _build(tokenizer, cache, runs / "c1.txt")
    _, key2, _ = _build(tokenizer, cache, runs / "c2.txt")
    memo = memo_path((runs / "c1.txt").resolve())
    saved = json.loads(memo.read_text())
    memo.write_text(json.dumps({**saved, "sha256": hashlib.sha256((runs / "c2.txt").read_bytes()).hexdigest()}))
    capsys.readouterr()
    got, key, hit = _build(tokenizer, cache, runs / "c1.txt")
    err = capsys.readouterr().err
    assert key == key1 and hit and _rows(got) == _rows(truth) and len(got) == 8
    assert err.count("\n") == 1 and f"c1.txt: the sha256 remembered in {memo} is not this file's" in err
    assert (cache / key2).is_dir()  # c2's entry is sound: kept


@pytest.mark.parametrize("selected", ["no entry", "a damaged entry"])
def test_a_wrong_memo_never_names_a_new_entry(runs, tokenizer, cache, capsys, selected):
    """A wrong digest that names no entry, or one that must be rebuilt: the entry is built under the file's own
    digest, never under the memo's (else a later corpus with that digest would find c1's rows)."""
    import hashlib
    import shutil

    from simcse_lab.data.content_hash import memo_path

    truth, key1, _ = _build(tokenizer, cache, runs / "c1.txt")
    _, key2, _ = _build(tokenizer, cache, runs / "c2.txt")
    shutil.rmtree(cache / key1)
    if selected == "no entry":
        shutil.rmtree(cache / key2)
    else:
        (cache / key2 / training_data.MANIFEST).unlink()
    memo = memo_path((runs / "c1.txt").resolve())
    memo.write_text(json.dumps({**json.loads(memo.read_text()),
                                "sha256": hashlib.sha256((runs / "c2.txt").read_bytes()).hexdigest()}))
    got, key, hit = _build(tokenizer, cache, runs / "c1.txt")
    assert key == key1 and not hit and _rows(got) == _rows(truth)
    assert "the sha256 remembered in" in capsys.readouterr().err


def test_stale_build_cleanup_spares_other_hosts_and_live_builds(runs, tokenizer, cache):
    """Work directories are named .KEY.tmp-PID-HOST-xxxx (io.py's names): a build removes those of dead
    processes of this host only. A name without a host (the review's repro, and 0.2's own names) is kept."""
    from simcse_lab import io

    dead = int(open("/proc/sys/kernel/pid_max").read()) + 1  # no process has it
    cache.mkdir(parents=True)
    key = "0123456789abcdef0123456789abcdef"
    other_host = "0" * 8 if io._host() != "0" * 8 else "1" * 8
    kept = [cache / f".tmp-{key}-{dead}-otherhost", cache / f".{key}.tmp-{dead}-{other_host}-abcd",
            cache / f".{key}.tmp-{__import__('os').getpid()}-{io._host()}-live"]
    removed = cache / f".{key}.tmp-{dead}-{io._host()}-abcd"
    for path in (*kept, removed):
        path.mkdir()
        (path / "part.arrow").write_bytes(b"x")
    _build(tokenizer, cache, runs / "c1.txt")
    assert all((p / "part.arrow").is_file() for p in kept) and not removed.exists()


def test_ids_beyond_the_models_embeddings_are_one_line(runs, tokenizer, cache):
    """The entry records its largest id; a model with fewer input embeddings (a tokenizer that is not the
    model's) would be an IndexError at the first step."""
    examples = load_training_examples(str(runs / "c1.txt"), tokenizer, 32, 1,
                                      options=training_data.LoadOptions(vocab_size=len(tokenizer)))
    top = max(max(examples[i]) for i in range(len(examples)))
    with pytest.raises(UserError, match=rf"c1.txt: the tokenizer gives ids up to {top}, the model has {top} input "):
        load_training_examples(str(runs / "c1.txt"), tokenizer, 32, 1, options=training_data.LoadOptions(vocab_size=top))


# -- long rows: cut before tokenising only where the kept tokens cannot change (data.long_rows) ----------------
def _byte_level_and_metaspace_tokenizers():
    """Two tiny fast tokenizers of the other pre-tokeniser kinds: byte-level BPE (GPT-2 / RoBERTa style, with
    <s> ... </s>) and a metaspace BPE (SentencePiece style) behind an NFKC + collapse-spaces normaliser."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [s.lower() for s in SENTENCES] * 20 + ["lorem ipsum dolor sit amet, naïve café 北京 don't"] * 20
    made = []
    for kind in ("byte_level", "metaspace"):
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        if kind == "byte_level":
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            tok.decoder = decoders.ByteLevel()
            alphabet = pre_tokenizers.ByteLevel.alphabet()
        else:
            tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
            tok.pre_tokenizer = pre_tokenizers.Metaspace()
            alphabet = []
        tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>", "<unk>"],
                                                            initial_alphabet=alphabet))
        tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[
            ("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))])
        made.append(PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                            unk_token="<unk>"))
    return made


def test_a_long_row_is_cut_only_where_its_kept_tokens_cannot_change(tokenizer):
    """Review 2 #13: the whole of a long row was tokenised before truncation. Cut rows must give exactly the
    ids the whole row gives (BERT WordPiece, byte-level BPE, metaspace), on random text with pathological
    whitespace, control and zero-width characters, combining marks, CJK and over-long words; a row that
    cannot be cut safely is tokenised whole, or refused, never silently changed."""
    import random

    from simcse_lab.data import long_rows

    rng = random.Random(0)
    pieces = ["lorem", "ipsum", "Ünïcödé", "naïve", "北京大学", "\u200b", "\x00", "\t", "\u3000", "  ", "a" * 150,
              "don't", "e\u0301", ",", "...", "\u2028", "\r\n", "\xa0"]
    cut = 0
    for tok in [tokenizer] + _byte_level_and_metaspace_tokenizers():
        for _ in range(40):
            text = "".join(rng.choice(pieces) + rng.choice([" ", "", "  ", " \t "]) for _ in range(rng.randint(50, 900)))
            for max_length in (8, 32):
                cut += long_rows.cut_point(text, long_rows.char_bound(max_length)) is not None
                whole = tok([text], truncation=True, max_length=max_length)["input_ids"][0]
                try:
                    assert long_rows.tokenize_bounded(tok, [text], max_length) == [whole], (type(tok), text[:200])
                except UserError as err:  # refused: fine, as long as it says so
                    assert "cannot be cut safely" in str(err)
    assert cut > 100  # the cut really happened, mostly
    # a cut inside a word would change the kept tokens here: a 150-character word is one [UNK], its first 14
    # characters are 8 word pieces; the space cut leaves too few tokens, so the row is tokenised whole
    text = "x" * 120 + " " + "y" * 120 + " " + "z" * 150 + " end"
    assert long_rows.tokenize_bounded(tokenizer, [text], 8) == [ids(tokenizer, text, 8)]


def test_a_row_that_cannot_be_cut_is_refused_with_its_line(tokenizer, cache, tmp_path):
    path = tmp_path / "blob.txt"
    path.write_text("a short sentence\n" + "x" * (long_rows_bound := 32 * 8 * 64 + 1) + "\nanother one\n")
    with pytest.raises(UserError, match=rf"blob\.txt:2: a row of {long_rows_bound} characters that cannot be cut"):
        load_training_examples(str(path), tokenizer, 8, 1, options=training_data.LoadOptions(cache_root=cache))


def test_one_very_long_line_costs_bounded_memory(tmp_path):
    """Review 2 #13: a 50 MB line took 7.2 GB. An 8 MB line of words now adds far less than its
    tokenisation would (about 150 bytes a character: over 1 GB here), and keeps the same ids."""
    import subprocess
    import sys

    code = """
import resource, sys
from transformers import AutoTokenizer
from simcse_lab.data.training_data import _tokenize_batch
from simcse_lab.modeling.resolve import resolve_model
tok = AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))
line = "lorem ipsum " * 700_000
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = _tokenize_batch({"text": [line, "short line"]}, [0, 1], tok, ["text"], 32)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start
assert out["ids0"][0] == tok(line[:2000], truncation=True, max_length=32)["input_ids"], "other ids"
print(grown // 1024)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) < 200, f"peak grew by {proc.stdout.split()[-1]} MB"
