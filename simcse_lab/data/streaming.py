"""Strict row-by-row readers for training sources of any size: a row at a time, a one-line ``file:line`` error
for a malformed row, nothing ever dropped.

Lines are split on ``\\n`` only (a trailing ``\\r`` is removed), so U+2028, NEL or a form feed inside a
sentence stay inside it; a UTF-8 byte-order mark at the start of a file is not part of the first row.
CSV/TSV rows go through :mod:`csv` with the decoded lines (a quoted field may span lines; the reported
line is where the row ends). Parquet rows are numbered from 0, as in the file. A saved (``save_to_disk``) or
hub dataset is checked column-wise in Arrow before its first row is used: a missing, empty or non-text cell
names its row.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from simcse_lab.data import readers, registry
from simcse_lab.data.columns import KNOWN_COLUMNS, listing
from simcse_lab.data.spec import DataSpec
from simcse_lab.errors import InputError, UserError

BOM = "\ufeff"
KNOWN_NAMES = {name for names in KNOWN_COLUMNS for name in names}


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, decoded line without its end), strictly UTF-8."""
    try:
        f = open(path, "rb")
    except OSError as err:
        raise InputError(path, None, f"cannot read ({err.strerror})") from None
    with f:
        for lineno, raw in enumerate(f, start=1):
            raw = raw[:-1] if raw.endswith(b"\n") else raw
            raw = raw[:-1] if raw.endswith(b"\r") else raw
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(path, lineno, f"not valid UTF-8 ({err.reason})") from None
            if lineno == 1 and text.startswith(BOM):
                text = text[1:]
            yield lineno, text


def _text_rows(path: Path, column: str = "text") -> Iterator[dict]:
    empty = True
    for lineno, line in iter_lines(path):
        text = line.strip()
        if not text:
            raise InputError(path, lineno, "blank line (one sentence a line expected)")
        empty = False
        yield {column: text}
    if empty:
        raise InputError(path, None, "no sentences")


def csv_reader(path: Path, delimiter: str):
    lines = iter_lines(path)
    numbered = {"line": 0}

    def feed():
        for lineno, line in lines:
            numbered["line"] = lineno
            yield line + "\n"

    return csv.reader(feed(), delimiter=delimiter), numbered


def csv_header(path: Path, delimiter: str) -> list[str]:
    reader, _ = csv_reader(path, delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(path, None, "empty file (a header line is expected)") from None
    except csv.Error as err:
        raise InputError(path, 1, f"unreadable header ({err})") from None
    if len(set(header)) != len(header) or any(not h.strip() for h in header):
        raise InputError(path, 1, f"header names must be distinct and non-empty, found {listing(map(repr, header))}")
    return header


def _csv_rows(path: Path, delimiter: str, columns: list[str]) -> Iterator[dict]:
    reader, where = csv_reader(path, delimiter)
    header = next(reader)
    index = {c: header.index(c) for c in columns}
    count = 0
    try:
        for row in reader:
            if len(row) != len(header):
                raise InputError(path, where["line"], f"expected {len(header)} fields ({','.join(header)}), "
                                                      f"found {len(row)}")
            cells = {c: row[i] for c, i in index.items()}
            for c, value in cells.items():
                if not value.strip():
                    raise InputError(path, where["line"], f"empty {c!r}")
            count += 1
            yield cells
    except csv.Error as err:
        raise InputError(path, where["line"], f"malformed CSV ({err})") from None
    if not count:
        raise InputError(path, None, "no rows after the header")


def json_object(path: Path, lineno: int, line: str) -> dict:
    """One line of a JSON-lines file as a dict, or a ``file:line`` error."""
    if not line.strip():
        raise InputError(path, lineno, "blank line (one JSON object a line expected)")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise InputError(path, lineno, f"not JSON ({err.msg})") from None
    if not isinstance(obj, dict):
        raise InputError(path, lineno, "a JSON object expected")
    return obj


def _jsonl_rows(path: Path, columns: list[str]) -> Iterator[dict]:
    count = 0
    for lineno, line in iter_lines(path):
        obj = json_object(path, lineno, line)
        row = {}
        for c in columns:
            row[c] = _jsonl_text(path, lineno, obj, c)
        count += 1
        yield row
    if not count:
        raise InputError(path, None, "no rows")


JSON_KINDS = {dict: "object", list: "array", bool: "boolean", int: "number", float: "number"}


def json_string(path: Path, lineno: int, obj: dict, column: str) -> str | None:
    """``obj[column]`` if it is a string, None if absent; any other JSON value is a ``file:line`` error."""
    value = obj.get(column)
    if value is not None and not isinstance(value, str):
        raise InputError(path, lineno, f"{column!r} must be a string, found a JSON {JSON_KINDS.get(type(value), 'value')}")
    return value


def _jsonl_text(path: Path, lineno: int, obj: dict, column: str) -> str:
    value = json_string(path, lineno, obj, column)
    if value is None or not value.strip():
        raise InputError(path, lineno, f"{column!r} must be a non-empty string, found {value!r}")
    return value


def _jsonl_columns(path: Path) -> list[str]:
    """The first object's string-valued keys, and the known column names (``text``, ``sentence`` ...) whatever
    their value: a known name holding an object is then chosen and refused (``file:1: 'text' must be a string``),
    not passed over for another string column."""
    for lineno, line in iter_lines(path):
        obj = json_object(path, lineno, line)
        return [k for k, v in obj.items() if isinstance(v, str) or k in KNOWN_NAMES]
    raise InputError(path, None, "no rows")


def check_first_row(spec: DataSpec, columns: list[str]) -> None:
    """The chosen ``columns`` of a JSON-lines source's first row are text (cheap: one line is read), so that a
    known column holding an object is a ``file:1`` error before any model loads. Other kinds: nothing to do
    here (a header or schema has no values; their rows are checked as they are read)."""
    if spec.kind == "jsonl":
        for lineno, line in iter_lines(spec.path):
            obj = json_object(spec.path, lineno, line)
            for c in columns:
                _jsonl_text(spec.path, lineno, obj, c)
            return


def _parquet_file(path: Path):
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise InputError(path, None, f"not a readable parquet file ({err})") from None


def _parquet_rows(path: Path, columns: list[str]) -> Iterator[dict]:
    number = 0
    for batch in _parquet_file(path).iter_batches(batch_size=8192, columns=columns):
        data = batch.to_pydict()
        for i in range(batch.num_rows):
            row = {c: data[c][i] for c in columns}
            for c, value in row.items():
                if not isinstance(value, str) or not value.strip():
                    raise InputError(path, None, f"row {number}: {c!r} must be a non-empty string, found {value!r}")
            number += 1
            yield row
    if not number:
        raise InputError(path, None, "no rows")


def _is_text(arrow_type) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return (pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
            or getattr(pa.types, "is_string_view", lambda t: False)(arrow_type))


def check_column_types(spec: DataSpec, columns: list[str]) -> None:
    """A parquet file's schema says at once whether a column holds text: one that does not is refused before
    any row is read (and any model loads), not at its first row."""
    if spec.kind != "parquet":
        return
    schema = _parquet_file(spec.path).schema_arrow
    for c in columns:
        if not _is_text(schema.field(c).type):
            raise InputError(spec.path, None, f"column {c!r} holds {schema.field(c).type}, not text")


def check_string_columns(ds, columns: list[str], where: str) -> None:
    """Saved and hub datasets: every cell of ``columns`` must be a non-empty string (no silent dropping)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = ds.data.table if hasattr(ds.data, "table") else ds.data
    for c in columns:
        col = table.column(c)
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            raise UserError(f"{where}: column {c!r} holds {col.type}, not text")
        bad = pc.or_kleene(pc.is_null(col), pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0))
        index = pc.index(bad, True).as_py()
        if index != -1:
            raise UserError(f"{where}: row {index}: column {c!r} is empty or missing")


def _dataset_rows(spec: DataSpec, columns: list[str]) -> Iterator[dict]:
    ds = spec.open_dataset().select_columns(columns)
    check_string_columns(ds, columns, spec.describe())
    if not len(ds):
        raise UserError(f"{spec.describe()}: no rows")
    for batch in ds.iter(batch_size=8192):
        for i in range(len(batch[columns[0]])):
            yield {c: batch[c][i] for c in columns}


def _registry_files(spec: DataSpec) -> tuple[str, Path]:
    info = registry.info(spec.name)
    split = info.splits[spec.split]
    return info.kind, (registry.locate(spec.name, split["path"]) if "path" in split else None)


def source_columns(spec: DataSpec) -> list[str]:
    """The columns a source offers (read from its header, schema or first row; nothing else is read)."""
    if spec.kind == "registry":  # known from the registry, before (or without) fetching its files
        kind = registry.info(spec.name).kind
        return {"text": ["text"], "nli_csv": list(readers.NLI_COLUMNS)}.get(kind, ["sent1", "sent2"])
    if spec.kind == "txt":
        return ["text"]
    if spec.kind in ("csv", "tsv"):
        return csv_header(spec.path, "," if spec.kind == "csv" else "\t")
    if spec.kind == "jsonl":
        return _jsonl_columns(spec.path)
    if spec.kind == "parquet":
        return list(_parquet_file(spec.path).schema_arrow.names)
    return list(spec.open_dataset().column_names)


def iter_rows(spec: DataSpec, columns: list[str]) -> Iterator[dict]:
    """The source's rows as {column: text}, only ``columns``, strictly checked (every kind of source)."""
    if spec.kind == "registry":
        kind, path = _registry_files(spec)
        if kind == "text":
            yield from _text_rows(path, columns[0])
        elif kind == "nli_csv":
            yield from _csv_rows(path, ",", columns)
        else:  # STS-style pair sets are small: their strict readers, then the pairs as rows
            data = registry.load_split(spec.name, spec.split)
            for ps in (data.values() if isinstance(data, dict) else [data]):
                for a, b in zip(ps.sent1, ps.sent2):
                    yield {k: v for k, v in (("sent1", a), ("sent2", b)) if k in columns}
    elif spec.kind == "txt":
        yield from _text_rows(spec.path, columns[0])
    elif spec.kind in ("csv", "tsv"):
        yield from _csv_rows(spec.path, "," if spec.kind == "csv" else "\t", columns)
    elif spec.kind == "jsonl":
        yield from _jsonl_rows(spec.path, columns)
    elif spec.kind == "parquet":
        yield from _parquet_rows(spec.path, columns)
    else:
        yield from _dataset_rows(spec, columns)
