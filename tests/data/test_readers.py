"""Readers: the right rows from well-formed files, and a one-line file:line error for malformed ones."""

from __future__ import annotations

import pytest

from simcse_lab.data import readers
from simcse_lab.errors import InputError

from conftest import FIXTURES


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_senteval_sts_skips_empty_gold_and_normalises_whitespace():
    ps = readers.read_senteval_sts(FIXTURES / "STS.input.toy.txt", FIXTURES / "STS.gs.toy.txt", "toy")
    assert len(ps) == 3  # the 4th pair has an empty gold line, skipped as SentEval does
    assert ps.scores == [4.8, 0.4, 3.9]
    assert ps.sent1[0] == "a man is playing a guitar ."


def test_senteval_sts_errors(tmp_path):
    inp = write(tmp_path, "in.txt", "one\ttwo\nonly-one-column\n")
    gs = write(tmp_path, "gs.txt", "1.0\n2.0\n")
    with pytest.raises(InputError, match=r"in\.txt:2: expected 2 tab-separated"):
        readers.read_senteval_sts(inp, gs)
    bad_gold = write(tmp_path, "gs2.txt", "1.0\nfive\n")
    inp2 = write(tmp_path, "in2.txt", "a\tb\nc\td\n")
    with pytest.raises(InputError, match=r"gs2\.txt:2: gold score 'five' is not a number"):
        readers.read_senteval_sts(inp2, bad_gold)
    short_gold = write(tmp_path, "gs3.txt", "1.0\n")
    with pytest.raises(InputError, match="1 gold lines but in2.txt has 2"):
        readers.read_senteval_sts(inp2, short_gold)


def test_stsb_keeps_rows_with_quotes():
    ps = readers.read_stsb_csv(FIXTURES / "stsb_toy.csv")
    assert len(ps) == 2
    assert ps.sent1 == ["A plane is taking off.", 'He said "no" loudly']
    assert ps.scores == [5.0, 1.0]


def test_stsb_errors(tmp_path):
    path = write(tmp_path, "sts.csv", "g\tf\t2012\t1\t5.0\ta\tb\ng\tf\t2012\t1\tx\ta\tb\n")
    with pytest.raises(InputError, match=r"sts\.csv:2: score 'x' is not a number"):
        readers.read_stsb_csv(path)
    path = write(tmp_path, "short.csv", "g\tf\t2012\t1\t5.0\ta\n")
    with pytest.raises(InputError, match=r"short\.csv:1: expected at least 7"):
        readers.read_stsb_csv(path)
    path = write(tmp_path, "nan.csv", "g\tf\t2012\t1\tnan\ta\tb\n")
    with pytest.raises(InputError, match="not finite"):
        readers.read_stsb_csv(path)


def test_sick_with_crlf_and_errors(tmp_path):
    ps = readers.read_sick(FIXTURES / "sick_toy.txt")
    assert ps.scores == [4.5, 1.2] and ps.sent2[1] == "A man cooks"
    with pytest.raises(InputError, match=r"bad\.txt:1: expected a header"):
        readers.read_sick(write(tmp_path, "bad.txt", "id\ta\tb\n"))
    path = write(tmp_path, "bad2.txt", "pair_ID\tsentence_A\tsentence_B\trelatedness_score\n1\ta\tb\n")
    with pytest.raises(InputError, match=r"bad2\.txt:2: expected at least 4"):
        readers.read_sick(path)


def test_nli_csv_quoting_and_errors(tmp_path):
    rows = readers.read_nli_csv(FIXTURES / "nli_toy.csv")
    assert rows[1] == ("A dog, brown, runs.", "A dog runs.", "A cat sleeps.")
    with pytest.raises(InputError, match=r"h\.csv:1: expected header sent0,sent1,hard_neg"):
        readers.read_nli_csv(write(tmp_path, "h.csv", "a,b\nx,y\n"))
    with pytest.raises(InputError, match=r"f\.csv:3: expected 3 fields"):
        readers.read_nli_csv(write(tmp_path, "f.csv", "sent0,sent1,hard_neg\na,b,c\na,b\n"))
    with pytest.raises(InputError, match=r"e\.csv:2: empty sentence"):
        readers.read_nli_csv(write(tmp_path, "e.csv", "sent0,sent1,hard_neg\na,,c\n"))


def test_text_and_errors(tmp_path):
    assert readers.read_text(FIXTURES / "text_toy.txt") == ["The first sentence.", "The second one."]
    with pytest.raises(InputError, match=r"blank\.txt:2: blank line"):
        readers.read_text(write(tmp_path, "blank.txt", "one\n\nthree\n"))
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"fine\ncaf\xe9\n")
    with pytest.raises(InputError, match=r"latin1\.txt:2: not valid UTF-8"):
        readers.read_text(path)
    with pytest.raises(InputError, match="file not found"):
        readers.read_text(tmp_path / "missing.txt")


def test_lines_split_on_newline_only(tmp_path):
    """U+2028, NEL, form feed and friends may occur inside a sentence: they split nothing (str.splitlines would)."""
    inside = ["a\u2028b", "c\x85d", "e\x0cf", "g\x0bh", "i\x1cj\x1dk\x1el", "m\u2029n"]
    path = tmp_path / "odd.txt"
    path.write_bytes(("\n".join(inside) + "\n").encode())
    assert readers.read_text(path) == inside
    blank = write(tmp_path, "blank.txt", "one\u2028still one\ntwo\n\nfour\n")
    with pytest.raises(InputError, match=r"blank\.txt:3: blank line"):  # line numbers as an editor shows them
        readers.read_text(blank)
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"first\r\nsecond\r\nno newline at the end")
    assert readers.read_text(crlf) == ["first", "second", "no newline at the end"]


def test_a_quoted_csv_field_keeps_its_newline(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_bytes(b'sent0,sent1,hard_neg\r\n"line one\nline two",b,c\r\nd,e,f\r\n')
    assert readers.read_nli_csv(path) == [("line one\nline two", "b", "c"), ("d", "e", "f")]
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b'sent0,sent1,hard_neg\na,b,c\nd,e\n')
    with pytest.raises(InputError, match=r"bad\.csv:3: expected 3 fields"):
        readers.read_nli_csv(bad)


def test_a_utf8_byte_order_mark_is_not_part_of_the_text(tmp_path):
    text = tmp_path / "bom.txt"
    text.write_bytes(b"\xef\xbb\xbfYMCA in South Australia\nsecond\n")
    assert readers.read_text(text) == ["YMCA in South Australia", "second"]
    nli = tmp_path / "excel.csv"
    nli.write_bytes(b"\xef\xbb\xbfsent0,sent1,hard_neg\r\na,b,c\r\n")
    assert readers.read_nli_csv(nli) == [("a", "b", "c")]


def test_a_path_that_is_not_a_regular_file_is_refused_before_reading(tmp_path):
    """search --queries /dev/zero (or a FIFO, a directory) was read for ever / a traceback: one line instead.
    The directory comes first: on the old code it fails fast instead of reading /dev/zero."""
    with pytest.raises(InputError, match="not a regular file"):
        readers.read_text(tmp_path)
    with pytest.raises(InputError, match=r"/dev/zero: not a regular file"):
        readers.read_text("/dev/zero")
