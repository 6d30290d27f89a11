"""``simcse-lab data inspect`` (issue 20, part 5): a corpus made here with known contents, read with the offline
model's tokenizer (no model weights are loaded): rows, duplicates, empty and one-word sentences, lengths and
the truncated share, unknown tokens and characters (their share reported exactly), scripts, the files written;
bad input is one line, exit 2."""

import json
import pytest

from simcse_lab.cli import main
from simcse_lab.data.inspect import profile_rows

SNOW, SMILE = "\u2603", "\U0001F600"  # unknown to all-MiniLM-L6-v2's WordPiece vocabulary (checked below)
# every word below is one token of that vocabulary: a sentence of k words is k + 2 tokens ([CLS] ... [SEP])
LINES = ([f"the cat {SNOW} sat on a mat"] * 3 + [f"{SMILE} a red tree"] * 2 + ["dog"] * 4
         + ["the big house by the river was red and old and the dog sat"] + ["\u200b"] + [f"a {SNOW}{SNOW} b"])


@pytest.fixture(scope="module")
def tokenizer():
    from simcse_lab.modeling.loading import load_tokenizer
    from simcse_lab.modeling.resolve import resolve_model

    return load_tokenizer(resolve_model("all-MiniLM-L6-v2"))


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr()


def test_known_share_of_unknown_characters_is_reported_exactly(tmp_path, tokenizer, capsys):
    for c in (SNOW, SMILE):  # the premise: each alone is the unknown token
        assert tokenizer(c, add_special_tokens=False)["input_ids"] == [tokenizer.unk_token_id]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    out = tmp_path / "report"
    code, printed = run(["data", "inspect", "--data", str(corpus), "--max-seq-len", "8", "--output-dir", str(out)],
                        capsys)
    assert code == 0, printed.err
    report = json.loads((out / "report.json").read_text())
    visible = sum(1 for line in LINES for c in line if not c.isspace())
    unknown = sum(line.count(SNOW) + line.count(SMILE) for line in LINES)
    assert (unknown, visible) == (7, 128)  # 3 + 2 + 2 unknown among 48 + 18 + 12 + 45 + 1 + 4
    u = report["unknown"]
    assert (u["characters"], u["visible_characters"]) == (unknown, visible)
    assert u["character_share"] == unknown / visible
    assert [(c["char"], c["count"]) for c in u["top_characters"]] == [(SNOW, 5), (SMILE, 2)]
    # tokens: 3 x 7 words, 2 x 4, 4 x 1, 14, the zero-width line none, "a ☃☃ b" 3 ([UNK] for the whole word)
    assert report["tokens"]["total"] == 21 + 8 + 4 + 14 + 0 + 3
    assert u["tokens"] == 3 + 2 + 1 and u["token_rate"] == 6 / 50 and u["sentences"] == 6
    assert report["rows"] == report["sentences"] == len(LINES) == 12
    assert report["duplicates"]["rows"] == 2 + 1 + 3
    assert report["empty"]["count"] == 1 and report["empty"]["examples"] == ["\u200b"]
    assert report["one_word"]["count"] == 4 + 1  # "dog" x4 and the zero-width character
    # lengths with [CLS] and [SEP]: 9 x3, 6 x2, 3 x4, 16, 2, 5; longer than 8: 3 + 1
    assert {int(k): v for k, v in report["tokens"]["histogram"].items()} == {9: 3, 6: 2, 3: 4, 16: 1, 2: 1, 5: 1}
    assert report["tokens"]["truncated"] == 4 and report["tokens"]["truncated_share"] == 4 / 12
    scripts = {s["script"]: s["characters"] for s in report["scripts"]}
    assert scripts == {"Latin": visible - unknown - 1, "Common": unknown + 1}  # U+200B is Common too
    assert (out / "length_histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "U+2603" in md and "length_histogram.png" in md
    assert f"{100 * unknown / visible:.2f}%" in printed.out


def test_pairs_rows_and_scripts(tmp_path, tokenizer):
    rows = [("abc \u4e2d\u6587", "abc"), ("abc \u4e2d\u6587", "abc"), ("\u0434\u0430", "abc")]
    report = profile_rows(iter(rows), tokenizer, max_seq_len=32)
    assert report["rows"] == 3 and report["sentences"] == 6
    assert report["duplicates"]["rows"] == 1 and report["duplicates"]["sentences"] == 2 + 1  # abc x3, the pair
    assert {s["script"]: s["characters"] for s in report["scripts"]} == {"Latin": 15, "Han": 4, "Cyrillic": 2}
    assert report["unknown"]["characters"] == 0 and report["tokens"]["truncated"] == 0


def test_a_tokenizer_without_unknown_token():
    class ByteLevel:  # every character encodes: no unknown token
        unk_token_id, unk_token, all_special_ids = None, None, [0, 1]

        def __call__(self, texts, add_special_tokens=True):
            return {"input_ids": [[0] + [ord(c) for c in t] + [1] for t in texts]}

    report = profile_rows(iter([("ab",), ("c",)]), ByteLevel(), max_seq_len=3)
    assert report["unknown"]["token"] is None and report["unknown"]["tokens"] == 0
    assert report["tokens"]["total"] == 3 and report["tokens"]["truncated"] == 1


def test_jsonl_columns(tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"sentence": f"a cat {i % 2}", "positive": "a dog", "id": i}) + "\n"
                            for i in range(5)))
    code, printed = run(["data", "inspect", "--data", str(data)], capsys)
    assert code == 0, printed.err
    assert "rows: 5, sentences: 10 (sentence, positive)" in printed.out
    assert "duplicates: 3 rows (60.00%), 7 sentences (70.00%)"  # 3 distinct of 10 in printed.out


@pytest.mark.parametrize("content, argv, expected", [
    (b"a cat\n\nthe dog\n", [], "corpus.txt:2: blank line"),
    (b"a cat\n\xff\xfe oops\n", [], "corpus.txt:2: not valid UTF-8"),
    (b"a cat\n", ["--max-seq-len", "0"], "--max-seq-len must be at least 1"),
    (b"a cat\n", ["--columns", "sentence"], "sentence"),
    (b"a cat\n", ["--model", "/no/such/model"], "/no/such/model"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, content, argv, expected):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    code, printed = run(["data", "inspect", "--data", str(corpus), "--output-dir", str(tmp_path / "out")] + argv,
                        capsys)
    assert code == 2 and printed.err.count("\n") == 1 and "Traceback" not in printed.err, printed.err
    assert expected in printed.err


def test_bad_input_writes_nothing(tmp_path, capsys):
    code, printed = run(["data", "inspect", "--data", str(tmp_path / "missing.txt"), "--output-dir",
                         str(tmp_path / "out")], capsys)
    assert code == 2 and "no such file" in printed.err and not (tmp_path / "out").exists()
