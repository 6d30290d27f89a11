"""What a corpus looks like to a model's tokenizer, streamed row by row (``simcse-lab data inspect``).

Rows come from the strict readers of :mod:`simcse_lab.data.streaming` (any ``--data`` spec; a malformed row
is the same ``file:line`` error as in training). Each text cell of a row is a sentence. Counted:

- rows, sentences, duplicate rows (equal to an earlier row, all columns) and duplicate sentences (from 64-bit
  digests: 8 bytes a row and a sentence are kept, not the texts);
- empty sentences (no token besides the special ones: e.g. only control or zero-width characters; a blank
  line or cell is already refused by the reader, as training refuses it) and one-word sentences (one
  whitespace-separated word);
- the length in tokens as the model sees it (special tokens included), its histogram and the share of
  sentences longer than ``max_seq_len`` (truncated in training);
- the unknown-token rate (unknown tokens / non-special tokens) and the unknown characters: a character is
  unknown when the tokenizer turns it, alone, into the unknown token; their share of the non-whitespace
  characters, and the most frequent ones;
- the Unicode scripts of the non-whitespace characters (the Unicode Script property, from fontTools'
  ``unicodedata``, which matplotlib already brings); languages are not guessed (that needs a language-ID
  model), the scripts are the evidence.

The tokenizer is the caller's (a Hugging Face tokenizer: ``__call__``, ``unk_token_id``, ``all_special_ids``);
this module reads data and counts, nothing else.
"""

from __future__ import annotations

import hashlib
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterable

import numpy as np

BATCH = 1024  # sentences tokenised at once
EXAMPLES = 5  # examples kept per finding
TOP_CHARACTERS = 20


def _key(text: str) -> int:
    """A 64-bit digest: duplicates are counted from 8 bytes per row and per sentence (a chance collision among
    10 million texts: ~3e-6)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def _repeats(keys: array) -> int:
    """How many keys equal an earlier one (all but the first of each value)."""
    return len(keys) - len(np.unique(np.frombuffer(keys, dtype=np.uint64))) if len(keys) else 0


class CorpusProfile:
    """Counts accumulated over a stream of rows (tuples of sentences); :meth:`report` summarises them."""

    def __init__(self, tokenizer, max_seq_len: int):
        self.tokenizer, self.max_seq_len = tokenizer, max_seq_len
        self.unk_id = tokenizer.unk_token_id
        self.special = set(tokenizer.all_special_ids) - {self.unk_id}  # the unknown token stands for text
        self.rows = 0
        self.row_keys, self.sentence_keys = array("Q"), array("Q")
        self.lengths: Counter = Counter()
        self.characters: Counter = Counter()
        self.tokens = self.unknown_tokens = self.sentences_with_unknown = 0
        self.examples: dict[str, list[str]] = {"empty": [], "one_word": [], "unknown": []}
        self.counts = Counter()  # empty, one_word
        self.pending: list[str] = []

    def add(self, row: tuple[str, ...]) -> None:
        self.rows += 1
        self.row_keys.append(_key("\x00".join(row)))
        for sentence in row:
            self.sentence_keys.append(_key(sentence))
            self.characters.update(sentence)
            if len(sentence.split()) == 1:
                self._found("one_word", sentence)
            self.pending.append(sentence)
        if len(self.pending) >= BATCH:
            self._tokenize()

    def _found(self, what: str, sentence: str) -> None:
        self.counts[what] += 1
        if len(self.examples[what]) < EXAMPLES:
            self.examples[what].append(sentence)

    def _tokenize(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        for sentence, ids in zip(batch, self.tokenizer(batch, add_special_tokens=True)["input_ids"]):
            self.lengths[len(ids)] += 1
            text_ids = [i for i in ids if i not in self.special]
            unknown = text_ids.count(self.unk_id) if self.unk_id is not None else 0
            self.tokens += len(text_ids)
            self.unknown_tokens += unknown
            if unknown:
                self.sentences_with_unknown += 1
                if len(self.examples["unknown"]) < EXAMPLES:
                    self.examples["unknown"].append(sentence)
            if not text_ids:
                self._found("empty", sentence)

    def unknown_characters(self) -> Counter:
        """The non-whitespace characters that the tokenizer turns, alone, into the unknown token, with counts."""
        if self.unk_id is None:
            return Counter()
        chars = [c for c in self.characters if not c.isspace()]
        ids = self.tokenizer(chars, add_special_tokens=False)["input_ids"] if chars else []
        return Counter({c: self.characters[c] for c, i in zip(chars, ids) if self.unk_id in i})

    def report(self) -> dict:
        self._tokenize()
        sentences = sum(self.lengths.values())
        lengths = np.repeat(np.array(list(self.lengths), dtype=np.int64), list(self.lengths.values()))
        visible = sum(n for c, n in self.characters.items() if not c.isspace())
        unknown_chars = self.unknown_characters()
        truncated = sum(n for length, n in self.lengths.items() if length > self.max_seq_len)
        rows, repeated = _repeats(self.row_keys), _repeats(self.sentence_keys)
        return {
            "rows": self.rows, "sentences": sentences,
            "duplicates": {"rows": rows, "rows_share": _share(rows, self.rows),
                           "sentences": repeated, "sentences_share": _share(repeated, sentences)},
            **{what: {"count": self.counts[what], "share": _share(self.counts[what], sentences),
                      "examples": self.examples[what]} for what in ("empty", "one_word")},
            "tokens": {"total": self.tokens, "length": _summary(lengths),
                       "histogram": dict(sorted(self.lengths.items())),
                       "max_seq_len": self.max_seq_len, "truncated": truncated,
                       "truncated_share": _share(truncated, sentences)},
            "unknown": {"token": self.tokenizer.unk_token if self.unk_id is not None else None,
                        "tokens": self.unknown_tokens, "token_rate": _share(self.unknown_tokens, self.tokens),
                        "sentences": self.sentences_with_unknown,
                        "sentences_share": _share(self.sentences_with_unknown, sentences),
                        "characters": sum(unknown_chars.values()), "visible_characters": visible,
                        "character_share": _share(sum(unknown_chars.values()), visible),
                        "top_characters": [_character(c, n) for c, n in unknown_chars.most_common(TOP_CHARACTERS)],
                        "examples": self.examples["unknown"]},
            "scripts": scripts(self.characters),
        }


def profile_rows(rows: Iterable[tuple[str, ...]], tokenizer, max_seq_len: int) -> dict:
    profile = CorpusProfile(tokenizer, max_seq_len)
    for row in rows:
        profile.add(row)
    return profile.report()


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _summary(lengths: np.ndarray) -> dict:
    if not len(lengths):
        return {}
    p50, p90, p99 = np.percentile(lengths, [50, 90, 99])
    return {"min": int(lengths.min()), "mean": float(lengths.mean()), "p50": float(p50), "p90": float(p90),
            "p99": float(p99), "max": int(lengths.max())}


def _character(c: str, count: int) -> dict:
    return {"char": c, "codepoint": f"U+{ord(c):04X}", "name": unicodedata.name(c, "?"), "count": count}


def scripts(characters: Counter) -> list[dict]:
    """Non-whitespace characters by Unicode script (Common: digits, punctuation, symbols; Inherited: combining
    marks), most frequent first, with their share."""
    from fontTools import unicodedata as ucd

    by_script: Counter = Counter()
    for c, n in characters.items():
        if not c.isspace():
            by_script[ucd.script_name(ucd.script(c))] += n
    total = sum(by_script.values())
    return [{"script": s, "characters": n, "share": n / total} for s, n in by_script.most_common()]


def _pct(share: float | None) -> str:
    """A share as a percentage: two decimals, or two significant digits below 0.1% (0.0038%, not 0.00%)."""
    if share is None:
        return "-"
    return f"{100 * share:.2f}%" if share == 0 or share >= 0.001 else f"{100 * share:.2g}%"


def summary_lines(report: dict) -> list[str]:
    """The findings, one line each (the terminal output and the bullets of report.md)."""
    t, u, d = report["tokens"], report["unknown"], report["duplicates"]
    length = t["length"]
    top = ", ".join(f"{c['char']!r} {c['codepoint']} x{c['count']}" for c in u["top_characters"][:8]) or "none"
    scripts_line = ", ".join(f"{s['script']} {_pct(s['share'])}" for s in report["scripts"][:8]) or "none"
    return [
        f"rows: {report['rows']}, sentences: {report['sentences']} ({', '.join(report['columns'])})",
        f"duplicates: {d['rows']} rows ({_pct(d['rows_share'])}), {d['sentences']} sentences "
        f"({_pct(d['sentences_share'])})",
        f"empty to the model (no token but special ones): {report['empty']['count']} "
        f"({_pct(report['empty']['share'])});"
        f" one word: {report['one_word']['count']} ({_pct(report['one_word']['share'])})",
        f"length in tokens (with special tokens): min {length.get('min')}, median {length.get('p50')}, "
        f"p90 {length.get('p90')}, p99 {length.get('p99')}, max {length.get('max')}",
        f"longer than --max-seq-len {t['max_seq_len']} (truncated): {t['truncated']} ({_pct(t['truncated_share'])})",
        f"unknown token {u['token']!r}: {u['tokens']} of {t['total']} tokens ({_pct(u['token_rate'])}), in "
        f"{u['sentences']} sentences ({_pct(u['sentences_share'])})" if u["token"] is not None else
        "unknown token: none (this tokenizer has no unknown token: every character is encoded)",
        f"unknown characters: {u['characters']} of {u['visible_characters']} non-whitespace characters "
        f"({_pct(u['character_share'])}); most often: {top}",
        f"scripts: {scripts_line} (languages are not guessed: no language-ID model)",
    ]


def markdown(report: dict, figure: str | None) -> str:
    lines = [f"# Data inspection: {report['data']}", "", f"Model (tokenizer): `{report['model']}`", ""]
    lines += [f"- {line}" for line in summary_lines(report)]
    if figure:
        lines += ["", f"![length distribution]({figure})"]
    lines += ["", "## Length histogram (tokens, special tokens included)", "", "| tokens | sentences |", "|---|---|"]
    lines += [f"| {n} | {c} |" for n, c in report["tokens"]["histogram"].items()]
    lines += ["", "## Most frequent unknown characters", "", "| char | code point | name | count |",
              "|---|---|---|---|"]
    lines += [f"| `{c['char']}` | {c['codepoint']} | {c['name']} | {c['count']} |"
              for c in report["unknown"]["top_characters"]]
    lines += ["", "## Scripts", "", "| script | characters | share |", "|---|---|---|"]
    lines += [f"| {s['script']} | {s['characters']} | {_pct(s['share'])} |" for s in report["scripts"]]
    return "\n".join(lines) + "\n"
