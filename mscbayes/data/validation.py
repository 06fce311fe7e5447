"""Read tidy-data CSV files robustly and validate them against a table schema.

Why pandera: it is DataFrame-native and validates lazily, collecting every failure with its row index and failing value.
Not pydantic: it validates one row object at a time, is slower on long tables and awkward for cross-row rules.

Every problem, whatever stage finds it, becomes one `Problem(file, row, column, value, expected)`; all of them are
collected and raised together as one `DataValidationError`, so a user fixes the whole file in one pass.

The stages of `validate_frame` (used by `fate`, `coculture` and `nk`):

1. headers: case/space-insensitive match to the schema; missing, misspelt, duplicated and unknown columns
   (extra columns whose name starts with ``note`` or ``x_`` are the user's own and are kept);
2. cell parsing (pandera, on the strings): numbers, whole numbers, true/false, vocabularies (aliases normalised
   case-insensitively, unknown values get a did-you-mean), ';'-separated sets, DOI/PMCID references;
3. typed checks (pandera, on the typed frame): dtypes, ranges, required cells;
4. the table's own conditional and cross-row rules (small functions using `Checker`), then duplicated keys.

A cell that fails one stage is marked bad and is skipped by the later stages, so one mistake gives one message.
Stages 2 and 3 run `VALIDATE_BLOCK_ROWS` rows at a time and keep only the typed columns; stage 4 sees the whole
typed table. `validate_csv` (what `read_table` uses for a path) feeds the blocks straight from the file, so the
raw strings of a whole file are never held (benchmarks/validate_memory.py measures it).
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import gzip
import hashlib
import io
import math
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import pandera.pandas as pa

__all__ = [
    "Problem",
    "DataValidationError",
    "Vocabulary",
    "ColumnSpec",
    "TableSpec",
    "Checker",
    "Table",
    "read_csv_text",
    "read_csv_header",
    "validate_frame",
    "read_table",
    "frame_sha256",
    "DATAFRAME_NAME",
    "USER_COLUMN_PREFIXES",
    "PercentUnit",
    "percent_hint",
    "READ_BLOCK_ROWS",
    "VALIDATE_BLOCK_ROWS",
    "read_csv_blocks",
    "validate_csv",
]

DATAFRAME_NAME = "<DataFrame>"
USER_COLUMN_PREFIXES = ("note", "x_")


# --------------------------------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a data file, located as precisely as possible.

    file: the file name as the user gave it (or "<DataFrame>"); row: 1-based line number in the file
    (header = line 1, first data row = line 2), None for file-level problems; column: the column concerned
    or None; value: the bad value as found (a string), None when the cell is empty or absent;
    expected: plain words saying what was expected.
    """

    file: str
    row: int | None
    column: str | None
    value: object
    expected: str

    def __str__(self) -> str:
        loc = self.file
        if self.row is not None:
            loc += f", row {self.row}"
        if self.column is not None:
            loc += f", column '{self.column}'"
        if self.value is not None:
            return f"{loc}: got {str(self.value)!r}; expected {self.expected}"
        if self.row is not None and self.column is not None:
            return f"{loc}: empty; expected {self.expected}"
        return f"{loc}: {self.expected}"


def _sort_key(p: Problem, order: Mapping[str, int]) -> tuple:
    return (
        -1 if p.row is None else p.row,
        order.get(p.column, len(order)) if p.column is not None else -1,
        p.expected,
    )


class DataValidationError(ValueError):
    """All the problems found in one file. str(err): a header line "data.csv: 3 problems", then one line each.

    A long list is capped on screen: beyond `PRINT_LIMIT` problems, str(err) shows the first `per_column` of
    each column (problems without a column count as one more column) and how many more each has; set
    `per_column` (None = every problem) and `full_list` (where the whole list is) to change it.
    `err.problems` always holds every problem and `write_csv(path)` writes them all.
    """

    PRINT_LIMIT = 200
    PER_COLUMN = 10

    def __init__(self, problems: Sequence[Problem], file: str | None = None):
        self.problems: list[Problem] = list(problems)
        self.file = file if file is not None else (self.problems[0].file if self.problems else DATAFRAME_NAME)
        self.per_column: int | None = self.PER_COLUMN if len(self.problems) > self.PRINT_LIMIT else None
        self.full_list = "every problem is in DataValidationError.problems, or write them with write_csv(path)"
        super().__init__(self._head())  # the text is built when shown: a long list is not kept twice

    def _head(self) -> str:
        n = len(self.problems)
        return f"{self.file}: {n} problem{'s' if n != 1 else ''}"

    def _message(self) -> str:
        if self.per_column is None:
            return "\n".join([self._head()] + [f"  {p}" for p in self.problems])
        shown: dict[str | None, int] = {}
        lines = []
        for p in self.problems:
            k = shown.get(p.column, 0)
            shown[p.column] = k + 1
            if k < self.per_column:
                lines.append(f"  {p}")
        more = [f"{n - self.per_column} more in column '{c}'" if c is not None else
                f"{n - self.per_column} more without a column" for c, n in shown.items() if n > self.per_column]
        if not more:
            return "\n".join([self._head()] + lines)
        head = f"{self._head()} (the first {self.per_column} of each column are shown)"
        return "\n".join([head] + lines + [f"  ... and {', '.join(more)}; {self.full_list}"])

    def __str__(self) -> str:
        return self._message()

    def write_csv(self, path) -> Path:
        """Every problem as CSV (file,row,column,value,expected; one line each), written atomically."""
        from mscbayes.provenance import atomic_write

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh, lineterminator="\n")
                w.writerow(["file", "row", "column", "value", "expected"])
                for p in self.problems:
                    w.writerow([p.file, "" if p.row is None else p.row, p.column or "",
                                "" if p.value is None else str(p.value), p.expected])

        return atomic_write(path, write, force=True, what="problems file")

    def __reduce__(self):
        return (self.__class__, (self.problems, self.file))


# ------------------------------------------------------------------------------------------------- reading CSV

_DELIMITER_NAMES = {";": "semicolon", "\t": "tab"}


def _show_bytes(text: str) -> str:
    """A field decoded with surrogateescape, shown with its undecodable bytes as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_SURROGATE = re.compile("[\udc80-\udcff]")

#: Rows read at a time: memory while reading is the compact columns so far plus one block of Python strings.
READ_BLOCK_ROWS = 10_000
#: Rows validated at a time (cell parsing and range checks); the cross-row rules then see the whole typed table.
VALIDATE_BLOCK_ROWS = 20_000

_XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # OLE2 compound file: Excel 97-2003 .xls (or .doc, .ppt)
_GZIP_MAGIC = b"\x1f\x8b"
_SAVE_AS_CSV = "export it as CSV (in Excel or LibreOffice: File > Save As > 'CSV UTF-8') and validate that file"


def _zip_kind(name: str) -> str:
    """What a ZIP container is, from its member names (Office Open XML and OpenDocument are ZIP files)."""
    try:
        with zipfile.ZipFile(name) as z:
            names = z.namelist()
            mimetype = z.read("mimetype").decode("ascii", "replace") if "mimetype" in names else ""
    except (zipfile.BadZipFile, OSError, KeyError):
        return "a damaged ZIP archive"
    if any(n.startswith("xl/") for n in names):
        return "an Excel workbook (.xlsx)"
    if "spreadsheet" in mimetype:
        return "an OpenDocument spreadsheet (.ods)"
    if any(n.startswith("word/") for n in names) or "text" in mimetype:
        return "a word-processor document"
    return "a ZIP archive"


def _binary_kind(name: str, head: bytes) -> str | None:
    """Plain words for a file that is not CSV text ("an Excel workbook (.xlsx)"), from its first bytes; None
    for text. Magic numbers: ZIP 'PK\\x03\\x04', OLE2 D0 CF 11 E0, PDF '%PDF', UTF-16 byte-order marks."""
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(name)
    if head.startswith(_XLS_MAGIC):
        return "an Excel 97-2003 workbook (.xls) or another Microsoft Office file"
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16 text (Excel's 'Unicode Text')"
    if b"\x00" in head:
        return "a binary file"
    return None


def _open_text(name: str, fail):
    """The file as a text stream (UTF-8, undecodable bytes kept as surrogates, BOM dropped); a gzip file is
    decompressed transparently. Files that are not CSV text are refused with what they are."""
    try:
        with open(name, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        fail(f"expected a readable CSV file, but it could not be read ({exc.strerror or exc})")
    opener = open
    if head.startswith(_GZIP_MAGIC):
        opener = gzip.open
        try:
            with gzip.open(name, "rb") as fh:
                head = fh.read(4096)
        except (OSError, EOFError, zlib.error) as exc:
            fail(f"expected a CSV file; this is a gzip-compressed file that cannot be decompressed ({exc})")
    what = _binary_kind(name, head)
    if what is not None:
        fail(f"expected a CSV text file, but this is {what}: {_SAVE_AS_CSV}")
    if len(head) < 4096 and not head.removeprefix(b"\xef\xbb\xbf").strip():
        fail("expected a header line with column names and at least one data row, but the file is empty")
    return opener(name, "rt", encoding="utf-8-sig", errors="surrogateescape", newline="")


def _bad_byte_problems(name: str, line: int, fields: list[str], header: list[str] | None) -> list[Problem]:
    """One problem per field with an undecodable byte: its line, column and byte."""
    out = []
    for j, f in enumerate(fields):
        m = _SURROGATE.search(f)
        if m:
            byte = ord(m.group()) - 0xDC00
            col = None
            if header is not None and j < len(header) and not _SURROGATE.search(header[j]):
                col = header[j].strip()
            where = f"byte 0x{byte:02x} at character {m.start() + 1} of the value"
            out.append(Problem(
                name, line, col, _show_bytes(f.strip()),
                f"UTF-8 text, but {where} is not valid UTF-8 (the file looks Latin-1/Windows-1252 encoded; "
                "save it as 'CSV UTF-8')",
            ))
    return out


def _repeated_header(fields: list[str], header_keys: list[str]) -> str | None:
    """Words for a data row that is the header again (two CSV files pasted together), else None."""
    keys = [_header_key(f) for f in fields if f.strip()]
    if keys == header_keys:
        return "repeats the header (two files pasted together?): delete it"
    if len(keys) > 1 and sorted(keys) == sorted(header_keys):
        return ("repeats the header with the columns in another order (two files pasted together?): move the "
                "rows below it into the first header's column order and delete it")
    return None


class _Columns:
    """Columns of strings built a block of rows at a time: each block becomes compact string arrays, so the
    Python string of every cell lives only while its block is read."""

    def __init__(self, width: int):
        self.width = width
        self.block: list[list[str]] = []
        self.parts: list[list[pd.Series]] = [[] for _ in range(width)]

    def add(self, fields: list[str]):
        self.block.append(fields)
        if len(self.block) >= READ_BLOCK_ROWS:
            self.flush()

    def flush(self):
        if not self.block:
            return
        for j, col in enumerate(zip(*self.block)):
            self.parts[j].append(pd.Series(col, dtype="str"))
        self.block = []

    def frame(self, header: list[str], lines: list[int]) -> pd.DataFrame:
        self.flush()
        cols = {}
        for j in range(self.width):
            s = pd.concat(self.parts[j], ignore_index=True) if self.parts[j] else pd.Series([], dtype="str")
            self.parts[j] = []
            cols[j] = s
        frame = pd.DataFrame(cols)
        frame.columns = list(header)
        frame.index = pd.Index(lines, name="line")
        return frame


def _existing_file(path):
    """The path as a string and a `fail(expected, row=None, ...)` raising one problem; fails now if the path
    is missing or a directory."""
    name = str(os.fspath(path))

    def fail(expected: str, row=None, column=None, value=None):
        raise DataValidationError([Problem(name, row, column, value, expected)], name)

    if not os.path.exists(name):
        fail(f"expected a CSV file here, but there is no such file ({os.path.abspath(name)})")
    if os.path.isdir(name):
        fail("expected a CSV file, but this is a directory")
    return name, fail


def read_csv_header(path) -> list[str]:
    """The column names of a CSV file (its first non-blank line), refusing a missing, empty or non-CSV file as
    `read_csv_text` does; the rest of the file is not read (telling a table's kind needs only its header)."""
    name, fail = _existing_file(path)
    try:
        with _open_text(name, fail) as fh:
            for fields in csv.reader(fh):
                if fields and any(f.strip() for f in fields):
                    return fields
    except csv.Error as exc:
        fail(f"expected well-formed CSV ({exc}; check the quotes on the header line)")
    except (OSError, EOFError, zlib.error) as exc:
        fail(f"expected a readable CSV file, but reading it failed ({exc})")
    fail("expected a header line with column names and at least one data row, but the file has only empty lines")


def read_csv_text(path) -> pd.DataFrame:
    """Read a comma-separated file as strings, with the file's line numbers as the index (named "line").

    Every cell is a str (nothing is turned into NaN: an empty cell is ""). Blank lines and lines whose fields
    are all empty are skipped. A gzip-compressed file is decompressed transparently. Raises
    `DataValidationError` (never a traceback) when the file is missing, empty or header-only, not CSV text (an
    Excel workbook, a PDF ... is named as such), not UTF-8 (each bad line, its column and byte named), not
    comma-separated, repeats its header further down (one problem per repeated line), or has rows with a
    different number of fields than the header. A UTF-8 byte-order mark is accepted. Quoted fields may span
    lines; a row's number is the line on which it starts. The file is read a block of rows at a time
    (`READ_BLOCK_ROWS`), so memory stays near the size of the table's compact string columns.
    """
    blocks = list(read_csv_blocks(path, rows=None))
    return blocks[0]


def read_csv_blocks(path, rows: int | None):
    """`read_csv_text` a block of `rows` rows at a time (None = the whole file as one block): yields frames of
    strings indexed by their file lines. The file's reading problems (bad bytes, ragged rows, a repeated
    header ...) are raised together, as one `DataValidationError`, after the last block: a caller validating
    the blocks as they come must let that error win over its own findings."""
    name, fail = _existing_file(path)
    problems: list[Problem] = []
    header: list[str] | None = None
    columns: _Columns | None = None
    lines: list[int] = []
    n_rows = 0
    next_line = 1
    try:
        with _open_text(name, fail) as fh:
            reader = csv.reader(fh)
            for fields in reader:
                start, next_line = next_line, reader.line_num + 1
                if not fields or all(not f.strip() for f in fields):
                    continue
                bad_bytes = _SURROGATE.search(",".join(fields)) is not None
                if header is None:
                    header = fields
                    header_keys = [_header_key(h) for h in header if h.strip()]
                    first_keys = {h.strip().lower() for h in header}
                    columns = _Columns(len(header))
                    if bad_bytes:
                        problems.extend(_bad_byte_problems(name, start, fields, None))
                    continue
                if bad_bytes:
                    problems.extend(_bad_byte_problems(name, start, fields, header))
                    continue
                n_rows += 1
                if fields[0].strip().lower() in first_keys:
                    words = _repeated_header(fields, header_keys)
                    if words:
                        problems.append(Problem(name, start, None, None, f"this line {words}"))
                        continue
                k, m = len(fields), len(header)
                if k > m and all(not f.strip() for f in fields[m:]):
                    fields = fields[:m]  # trailing empty cells, as spreadsheet exports often write
                elif k != m:
                    problems.append(Problem(
                        name, start, None, None,
                        f"expected every row to have the header's {m} fields, but this line has {k} "
                        "(a comma inside a value must be enclosed in double quotes)",
                    ))
                    continue
                if not problems:  # once the file is known to be bad, only its problems are collected
                    columns.add(fields)
                    lines.append(start)
                    if rows is not None and len(lines) >= rows:
                        yield columns.frame(header, lines)
                        columns, lines = _Columns(len(header)), []
    except csv.Error as exc:
        fail(f"expected well-formed CSV ({exc}; check the quotes on this line)", row=next_line)
    except (OSError, EOFError, zlib.error) as exc:
        fail(f"expected a readable CSV file, but reading it failed at line {next_line} ({exc})")
    if header is None:
        fail("expected a header line with column names and at least one data row, but the file has only empty lines")
    if len(header) == 1 and not problems:
        for delim, word in _DELIMITER_NAMES.items():
            if delim in header[0]:
                shown = header[0].strip()
                shown = repr(shown if len(shown) <= 60 else shown[:57] + "...")
                fail(f"expected comma-separated values; this file looks {word}-separated (header {shown}); "
                     "save it as CSV with commas between values")
    if problems:
        raise DataValidationError(problems, name)
    if n_rows == 0:
        fail("expected at least one data row after the header line, but the file has only the header")
    if lines or rows is None:
        yield columns.frame(header, lines)


# -------------------------------------------------------------------------------------------------- vocabulary

_GREEK = {"β": "beta", "γ": "gamma", "α": "alpha", "κ": "kappa", "µ": "u", "μ": "u", "−": "-", "–": "-"}


def _tight(s: str) -> str:
    s = s.strip().lower()
    for k, v in _GREEK.items():
        s = s.replace(k, v)
    return re.sub(r"\s+", "", s)


def _loose(s: str) -> str:
    t = _tight(s).replace("+", "pos")
    k = re.sub(r"[^0-9a-z]", "", t)
    return k or t


class Vocabulary:
    """A closed set of canonical snake_case values, each with a meaning, plus case-insensitive aliases.

    `normalise(raw)` returns the canonical value or None; matching is first exact (ignoring case and spaces),
    then loose (ignoring punctuation too, so "Cr-51", "cr51" and "CR 51" match). `suggest(raw)` gives the
    closest canonical value for a did-you-mean, or None.
    """

    def __init__(self, values: Mapping[str, str], aliases: Mapping[str, str] | None = None, hint: str = ""):
        self.meanings: dict[str, str] = dict(values)
        self.values: tuple[str, ...] = tuple(values)
        self.aliases: dict[str, str] = dict(aliases or {})
        self.hint = hint
        self._tight: dict[str, str] = {}
        loose: dict[str, set[str]] = {}
        for word, canon in [(v, v) for v in self.values] + list(self.aliases.items()):
            if canon not in self.meanings:
                raise ValueError(f"alias {word!r} points to unknown value {canon!r}")
            t = _tight(word)
            if self._tight.get(t, canon) != canon:
                raise ValueError(f"alias {word!r} is ambiguous ({self._tight[t]!r} and {canon!r})")
            self._tight[t] = canon
            loose.setdefault(_loose(word), set()).add(canon)
        self._loose = {k: next(iter(v)) for k, v in loose.items() if len(v) == 1}

    def __contains__(self, item) -> bool:
        return item in self.meanings

    def __iter__(self):
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        return f"Vocabulary({', '.join(self.values)})"

    def normalise(self, raw: str) -> str | None:
        return self._tight.get(_tight(raw)) or self._loose.get(_loose(raw))

    def suggest(self, raw: str) -> str | None:
        key = _loose(raw)
        if not key:
            return None
        close = difflib.get_close_matches(key, list(self._loose), n=1, cutoff=0.6)
        if close:
            return self._loose[close[0]]
        # a canonical value or alias contained in the raw text ("lung tissue" -> lung)
        hits = {c for k, c in self._loose.items() if len(k) >= 3 and (k in key or key in k)}
        return hits.pop() if len(hits) == 1 else None

    def expected(self, raw: str | None = None) -> str:
        text = "one of " + ", ".join(self.values)
        if raw is not None:
            s = self.suggest(raw)
            if s:
                text += f" (did you mean '{s}'?)"
        if self.hint:
            text += f"; {self.hint}"
        return text


# ------------------------------------------------------------------------------------------------ column specs

KINDS = ("str", "float", "int", "bool", "category", "set", "ref")


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a table schema.

    kind: str (free text), float, int (whole number), bool (true/false/yes/no/1/0), category (one value of
    `vocabulary`), set (';'-separated values of `vocabulary`, stored sorted and ';'-joined, "" = none),
    ref (a DOI or PMCID). required: the header must be present and every cell filled. ge/gt/le/lt: bounds.
    default: filled into empty cells. unit / meaning / required_when: for messages and docs.
    ratio: also accept "a:b" (stored as a/b). fraction: a 0-1 quantity (a percentage gets a divide-by-100 hint).
    """

    name: str
    kind: str
    required: bool = False
    vocabulary: Vocabulary | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    default: object = None
    unit: str = ""
    meaning: str = ""
    required_when: str = ""
    ratio: bool = False
    fraction: bool = False
    hint: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name}: unknown kind {self.kind!r}")
        if self.kind in ("category", "set") and self.vocabulary is None:
            raise ValueError(f"column {self.name}: a {self.kind} column needs a vocabulary")

    @property
    def dtype(self) -> str:
        if self.kind == "float":
            return "float64"
        if self.kind == "int":
            return "Int64"
        if self.kind == "bool":
            return "bool" if self.default is not None else "boolean"
        return "str"

    def bounds_text(self) -> str:
        lo = ("ge", self.ge) if self.ge is not None else ("gt", self.gt) if self.gt is not None else None
        hi = ("le", self.le) if self.le is not None else ("lt", self.lt) if self.lt is not None else None
        if lo and hi and lo[0] == "ge" and hi[0] == "le":
            return f" between {_num(lo[1])} and {_num(hi[1])}"
        parts = []
        if lo:
            parts.append(f"{'>=' if lo[0] == 'ge' else '>'} {_num(lo[1])}")
        if hi:
            parts.append(f"{'<=' if hi[0] == 'le' else '<'} {_num(hi[1])}")
        return (" " + " and ".join(parts)) if parts else ""

    def describe(self) -> str:
        """Plain words for a valid cell of this column, e.g. "a number >= 0 (hours after administration)"."""
        if self.kind in ("float", "int"):
            text = ("a number" if self.kind == "float" else "a whole number") + self.bounds_text()
        elif self.kind == "bool":
            text = "true or false (yes/no and 1/0 are also accepted)"
        elif self.kind == "category":
            text = self.vocabulary.expected()
        elif self.kind == "set":
            text = "a ';'-separated list of " + ", ".join(self.vocabulary.values) + " (empty = none)"
        elif self.kind == "ref":
            text = "a DOI (10.xxxx/...) or a PMCID (PMC1234567), or 'simulated ...' for data simulated by mscbayes"
        else:
            text = f"text ({self.meaning})" if self.meaning else "some text"
        if self.kind in ("float", "int") and (self.unit or self.ratio):
            text += " (" + "; ".join(p for p in (self.unit, self.ratio and "a ratio a:b is also accepted") if p) + ")"
        return text


def _num(x) -> str:
    if isinstance(x, (int, np.integer)) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e15):
        return str(int(x))
    return repr(float(x))


# --------------------------------------------------------------------------------------------- cell parsing

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_RATIO = re.compile(r"\s*([0-9.eE+-]+)\s*:\s*([0-9.eE+-]+)\s*")
_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}
_EMPTY_SET_WORDS = {"none", "no", "-", "nil"}
_DOI = re.compile(r"(?i)^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)?(10\.\d{4,9}/\S+)$")
_PMCID = re.compile(r"(?i)^(?:pmcid:\s*)?(pmc\d+)$")


def parse_number(s: str, ratio: bool = False) -> float | None:
    """A finite float from text, or None. With ratio=True, "1:10" -> 0.1."""
    s = s.strip()
    if _NUMBER.fullmatch(s):
        x = float(s)
        return x if math.isfinite(x) else None
    if ratio:
        m = _RATIO.fullmatch(s)
        if m and _NUMBER.fullmatch(m.group(1)) and _NUMBER.fullmatch(m.group(2)):
            a, b = float(m.group(1)), float(m.group(2))
            if b != 0 and math.isfinite(a / b):
                return a / b
    return None


def parse_int(s: str) -> int | None:
    x = parse_number(s)
    if x is None or not float(x).is_integer():
        return None
    return int(x)


def parse_bool(s: str) -> bool | None:
    t = s.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    return None


def normalise_ref(s: str) -> str | None:
    s = s.strip()
    if s.lower().startswith("simulated"):  # data simulated by this package label themselves so
        return s
    m = _DOI.match(s)
    if m:
        return m.group(1)
    m = _PMCID.match(s)
    if m:
        return m.group(1).upper()
    return None


def _split_set(s: str) -> list[str]:
    return [t.strip() for t in s.split(";") if t.strip() and t.strip().lower() not in _EMPTY_SET_WORDS]


def _number_hint(s: str, spec: ColumnSpec) -> str:
    t = s.strip()
    if re.fullmatch(r"[+-]?\d+,\d+", t) and not re.fullmatch(r"\d{1,3}(,\d{3})+", t):
        return "use a point as the decimal separator"
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", t) or re.fullmatch(r"\d+(_\d+)+(\.\d+)?", t):
        return "write the number without thousands separators"
    m = re.fullmatch(r"([\d.]+)\s*[x×*]\s*10\s*\^?\s*([-+]?\d+)", t)
    if m:
        return f"write {m.group(1)}e{m.group(2)}"
    if t.endswith("%"):
        if spec.fraction:
            return "write a fraction, not a percentage: divide by 100"
        return "write the number without '%'"
    if t[:1] in "<>≤≥":
        return "write the number only" + (f"; {spec.hint}" if spec.hint else "")
    if "±" in t or "+/-" in t:
        return "write the number only; a spread goes in its own column"
    if t.lower() in {"nan", "na", "n/a", "nd", "n.d.", "inf", "-inf", "none", "null", "-", "?"}:
        return "leave the cell empty when there is no value"
    if re.match(r"[+-]?(\d+\.?\d*|\.\d+)", t):
        return "write the number only; the unit is fixed by the column"
    return ""


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


# ------------------------------------------------------------------------------------------------ table spec


@dataclass(frozen=True)
class TableSpec:
    """A table kind: its columns, its conditional/cross-row rules and its unique key."""

    kind: str
    columns: tuple[ColumnSpec, ...]
    rules: Callable[["Checker"], None] | None = None
    key: tuple[str, ...] = ()
    key_note: str = ""
    finalise: Callable[[pd.DataFrame], pd.DataFrame] | None = None  # derived defaults on the valid frame
    percent: "PercentUnit | None" = None  # rows whose unit says percent are converted to fractions

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


@dataclass(frozen=True)
class PercentUnit:
    """An explicit percent unit: in rows whose `column` is `percent` (and, with `when`, whose column when[0]
    is when[1]), the `values` columns are divided by 100 and the unit becomes `fraction` before any check,
    so every rule sees fractions. A unit is never guessed from the values (docs/data_schema.md)."""

    column: str
    values: tuple[str, ...]
    percent: str = "percent"
    fraction: str = "fraction"
    when: tuple[str, str] | None = None


def _header_key(h: str) -> str:
    """A header as a column name: case, spaces, hyphens, brackets and Greek letters ignored
    ("Diameter mean (µm)" -> "diameter_mean_um", "Time h" -> "time_h")."""
    s = str(h).strip().lower()
    for k, v in _GREEK.items():
        s = s.replace(k, v)
    return re.sub(r"[\s\-()\[\]]+", "_", s).strip("_")


def _is_user_column(h: str) -> bool:
    return _header_key(h).startswith(USER_COLUMN_PREFIXES)


# --------------------------------------------------------------------------------------------------- checker


class Checker:
    """What a table's rule functions work with.

    frame: the typed frame (canonical dtypes, defaults filled; index 0..n-1); raw: the stripped strings as
    found (index 0..n-1, "" = empty), or None when they are not kept (`validate_frame`: a problem's cell text
    is then read back after the rules); lines: file line of each row; bad: True where a cell already failed.
    Problems are added with `flag`, `require`, `forbid` or `add`; a row is skipped by a rule when any column
    it uses is bad, so one mistake gives one message.
    """

    def __init__(self, spec: TableSpec, frame: pd.DataFrame, raw: pd.DataFrame | None, lines: np.ndarray,
                 file: str, bad: pd.DataFrame, present: set[str]):
        self.spec = spec
        self.frame = frame
        self.raw = raw
        self.lines = lines
        self.file = file
        self.bad = bad
        self.present = present
        self.problems: list[Problem] = []

    # --- helpers
    def ok(self, *columns: str) -> pd.Series:
        """True for rows where none of `columns` is bad."""
        if not columns:
            return pd.Series(True, index=self.frame.index)
        m = self.bad[columns[0]].to_numpy()
        for c in columns[1:]:
            m = m | self.bad[c].to_numpy()
        return pd.Series(~m, index=self.frame.index)

    def has(self, column: str) -> pd.Series:
        """True where the cell is filled and good."""
        return self.frame[column].notna() & ~self.bad[column]

    def empty(self, column: str) -> pd.Series:
        return self.frame[column].isna() & ~self.bad[column]

    def line(self, i) -> int:
        return int(self.lines[i])

    def value(self, i, column: str):
        """The raw cell as found (None when empty); without `raw`, a `_Cell` whose text is read back later."""
        if self.raw is None:
            return _Cell(int(i), column)
        v = self.raw.at[i, column] if column in self.raw.columns else ""
        return v if v != "" else None

    def add(self, i, column: str | None, expected: str, value=...):
        """One problem at row position i (value defaults to the raw cell of `column`)."""
        if value is ...:
            value = self.value(i, column) if column is not None else None
        self.problems.append(Problem(self.file, self.line(i), column, value, expected))
        if column is not None and column in self.bad.columns:
            self.bad.at[i, column] = True

    def flag(self, mask: pd.Series, column: str, expected, uses: Iterable[str] = ()):
        """A problem in `column` for every row of `mask` (rows with a bad cell in column/uses are skipped).

        expected: a string, or a function of the row position returning one.
        """
        mask = mask.fillna(False).astype(bool) & self.ok(column, *uses)
        for i in mask.index[mask.to_numpy()]:
            self.add(i, column, expected(i) if callable(expected) else expected)

    def require(self, mask: pd.Series, column: str, expected, uses: Iterable[str] = ()):
        """`column` must be filled in the rows of `mask`. If the column is absent from the file, one
        file-level problem is given instead of one per row."""
        mask = mask.fillna(False).astype(bool) & self.ok(*uses) & self.empty(column)
        if not mask.any():
            return
        if column not in self.present:
            idx = mask.index[mask.to_numpy()]
            first = self.line(idx[0])
            text = expected(idx[0]) if callable(expected) else expected
            self.problems.append(Problem(
                self.file, None, column, None,
                f"missing column '{column}', needed by {len(idx)} row{'s' if len(idx) > 1 else ''} "
                f"(first: row {first}; {text})",
            ))
            self.bad.loc[idx, column] = True
            return
        self.flag(mask, column, expected)

    def forbid(self, mask: pd.Series, column: str, expected, uses: Iterable[str] = ()):
        """`column` must be empty in the rows of `mask`."""
        self.flag(mask & self.has(column), column, expected, uses)


# ------------------------------------------------------------------------------------------------ validation


def _as_text(v) -> str:
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (float, np.floating)):
        return "" if math.isnan(v) else repr(float(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return str(v).strip()


def _map_unique(s: pd.Series, fn) -> list:
    """fn applied to each value of s, computed once per distinct value (files repeat their values a lot)."""
    cache: dict = {}
    out = []
    for v in s.tolist():
        try:
            out.append(cache[v])
        except KeyError:
            cache[v] = r = fn(v)
            out.append(r)
        except TypeError:  # unhashable
            out.append(fn(v))
    return out


def _column_text(s: pd.Series) -> list[str]:
    """A column as stripped strings ("" = empty), whatever its dtype."""
    return _map_unique(s.astype(object), _as_text)


def _raw_column(s: pd.Series) -> pd.Series:
    """A column as stripped strings ("" = empty) on the index 0..n-1. A string column (as `read_csv_text`
    returns) that needs no stripping is shared, not copied: a long table is not held twice."""
    if isinstance(s.dtype, pd.StringDtype) and not s.isna().any() and s.str.strip().eq(s).all():
        return s.reset_index(drop=True)
    return pd.Series(_column_text(s), dtype="str")


def _is_na(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _vector_check(fn, name: str) -> pa.Check:
    """A pandera check of every filled cell, evaluated once per distinct value."""
    def check(s: pd.Series) -> pd.Series:
        ok = _map_unique(s.astype(object), lambda v: True if _is_na(v) else bool(fn(v)))
        return pd.Series(ok, index=s.index, dtype=bool)
    return pa.Check(check, name=name)


def _line_numbers(df: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """File line of each row, and the frame without a `source_row` column.

    An index named "line" (from `read_csv_text`) wins; else a numeric `source_row` column (a validated
    frame passed back in); else rows are counted as in a CSV with a header (first row = line 2).
    """
    has_source = "source_row" in df.columns
    if df.index.name == "line" and pd.api.types.is_integer_dtype(df.index):
        return df.index.to_numpy(dtype=int), (df.drop(columns="source_row") if has_source else df)
    if has_source:
        lines = pd.to_numeric(df["source_row"], errors="coerce")
        if lines.notna().all():
            return lines.astype(int).to_numpy(), df.drop(columns="source_row")
    return np.arange(2, len(df) + 2), df


def _check_headers(spec: TableSpec, columns: list[str], file: str):
    """Map found headers to canonical names; report missing, misspelt, duplicated and unknown columns."""
    problems: list[Problem] = []
    canon = {c.name: c for c in spec.columns}
    rename: dict[int, str] = {}
    seen: dict[str, int] = {}
    unknown: list[tuple[int, str]] = []
    for j, h in enumerate(columns):
        key = _header_key(h)
        if key in canon:
            if key in seen:
                problems.append(Problem(file, None, key, None,
                                        f"expected each column once, but '{key}' appears as column {seen[key] + 1} "
                                        f"and column {j + 1}"))
                continue
            seen[key] = j
            rename[j] = key
        elif _is_user_column(h):
            if h in seen:
                problems.append(Problem(file, None, h, None, f"expected each column once, but '{h}' appears twice"))
                continue
            seen[h] = j
            rename[j] = h
        else:
            unknown.append((j, h))
    missing = [c for c in spec.columns if c.name not in seen]
    used_unknown: set[int] = set()
    absent_required: list[str] = []
    for c in missing:
        cand = {_header_key(h): (j, h) for j, h in unknown if j not in used_unknown and str(h).strip()}
        close = difflib.get_close_matches(c.name, list(cand), n=1, cutoff=0.75)
        if c.required:
            absent_required.append(c.name)
            if close:
                j, h = cand[close[0]]
                used_unknown.add(j)
                problems.append(Problem(file, None, c.name, None,
                                        f"missing required column '{c.name}' (found '{h}': did you mean it?)"))
            else:
                problems.append(Problem(file, None, c.name, None,
                                        f"missing required column '{c.name}' ({c.meaning or c.describe()})"))
        elif close:
            j, h = cand[close[0]]
            used_unknown.add(j)
            problems.append(Problem(file, None, str(h), None,
                                    f"unknown column '{h}' (did you mean '{c.name}'?)"))
    for j, h in unknown:
        if j in used_unknown:
            continue
        if not str(h).strip() or str(h).startswith("Unnamed:"):
            continue  # handled by caller: a nameless column must be empty
        close = difflib.get_close_matches(_header_key(h), list(spec.names), n=1, cutoff=0.75)
        if close:
            text = f"unknown column '{h}' (did you mean '{close[0]}'?)"
        else:
            text = f"unknown column '{h}'; the columns are {', '.join(spec.names)}"
        problems.append(Problem(file, None, str(h), None,
                                text + "; your own extra columns must start with 'note' or 'x_'"))
    nameless = [j for j, h in unknown if not str(h).strip() or str(h).startswith("Unnamed:")]
    return rename, problems, absent_required, nameless


def _failure_cases(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame:
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        return exc.failure_cases
    return pd.DataFrame(columns=["column", "check", "failure_case", "index"])


def canonical_set(v: str, vocab: Vocabulary) -> str | None:
    """';'-separated aliases -> sorted canonical values joined by ';' ("" = none); None if any item is
    unknown or listed twice."""
    canon = [vocab.normalise(t) for t in _split_set(v)]
    if any(x is None for x in canon) or len(set(canon)) != len(canon):
        return None
    return ";".join(sorted(canon))


def _parse_stage_schema(spec: TableSpec, names: list[str]) -> pa.DataFrameSchema:
    """Pandera schema over normalised strings: can each filled cell be read as its column's type?"""
    cols = {}
    for name in names:
        c = spec.column(name)
        checks = []
        if c.kind == "category":
            checks.append(pa.Check.isin(list(c.vocabulary.values), name="vocabulary"))
        elif c.kind == "bool":
            checks.append(pa.Check.isin(["true", "false"], name="bool"))
        elif c.kind == "float":
            checks.append(_vector_check(lambda v, r=c.ratio: parse_number(v, r) is not None, "number"))
        elif c.kind == "int":
            checks.append(_vector_check(lambda v: parse_int(v) is not None, "integer"))
        elif c.kind == "set":
            checks.append(_vector_check(lambda v, voc=c.vocabulary: canonical_set(v, voc) == v, "set"))
        elif c.kind == "ref":
            checks.append(_vector_check(lambda v: normalise_ref(v) == v, "ref"))
        cols[name] = pa.Column(str, checks=checks, nullable=True, coerce=False)
    return pa.DataFrameSchema(cols, strict=False, name=f"{spec.kind} (cells)")


def _typed_stage_schema(spec: TableSpec, names: list[str]) -> pa.DataFrameSchema:
    """Pandera schema over the typed frame: dtypes, ranges, required cells."""
    cols = {}
    for name in names:
        c = spec.column(name)
        checks = []
        if c.kind in ("float", "int"):
            if c.ge is not None:
                checks.append(pa.Check.ge(c.ge))
            if c.gt is not None:
                checks.append(pa.Check.gt(c.gt))
            if c.le is not None:
                checks.append(pa.Check.le(c.le))
            if c.lt is not None:
                checks.append(pa.Check.lt(c.lt))
        cols[name] = pa.Column(c.dtype, checks=checks, nullable=not c.required, coerce=False)
    return pa.DataFrameSchema(cols, strict=False, name=f"{spec.kind} (typed)")


def _set_problem_text(raw: str, spec: ColumnSpec) -> str:
    vocab = spec.vocabulary
    items = _split_set(raw)
    unknown = [t for t in items if vocab.normalise(t) is None]
    parts = []
    for t in unknown:
        s = vocab.suggest(t)
        parts.append(f"'{t}' is not one of them" + (f" (did you mean '{s}'?)" if s else ""))
    canon = [vocab.normalise(t) for t in items if vocab.normalise(t)]
    dup = sorted({x for x in canon if canon.count(x) > 1})
    if dup:
        parts.append("listed twice: " + ", ".join(dup))
    if ";" not in raw and re.search(r"[,+/&]", raw):
        pieces = [p for p in re.split(r"[,+/&]|\band\b", raw) if p.strip()]
        if pieces and all(vocab.normalise(p) for p in pieces):
            parts = ["separate the values with ';'"]
    return "a ';'-separated list of " + ", ".join(vocab.values) + " (empty = none)" + (
        "; " + "; ".join(parts) if parts else "")


def _cell_problem_text(raw: str, spec: ColumnSpec) -> str:
    if spec.kind == "category":
        return spec.vocabulary.expected(raw)
    if spec.kind in ("float", "int"):
        hint = _number_hint(raw, spec)
        if spec.kind == "int" and parse_number(raw) is not None:
            hint = ""
        return _join(spec.describe(), hint)
    if spec.kind == "set":
        return _set_problem_text(raw, spec)
    return spec.describe()


def percent_hint(value, unit_column: str = "") -> str:
    """The "divide by 100" hint (docs/data_schema.md, General rules) for a value of a 0-1 column that looks
    like a percentage (1 < value <= 100), else ""; names the unit column when the table has one."""
    if not isinstance(value, (int, float, np.integer, np.floating)) or not 1 < float(value) <= 100:
        return ""
    hint = "this looks like a percentage: divide by 100"
    return hint + (f", or write percent in '{unit_column}'" if unit_column else "")


def _range_problem_text(raw: str, value, spec: ColumnSpec) -> str:
    return _join(spec.describe(), percent_hint(value) if spec.fraction else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _readings_notice(column: str, pairs: list[tuple[str, str, int]], limit: int = 5) -> str | None:
    """One notice line for a column: "route: 'IV' read as 'intravenous' (12 rows), ..." (most frequent first)."""
    if not pairs:
        return None
    pairs = sorted(pairs, key=lambda p: -p[2])
    shown = ", ".join(f"{v!r} read as {c!r} ({_plural(k, 'row')})" for v, c, k in pairs[:limit])
    more = f", and {_plural(len(pairs) - limit, 'other spelling')}" if len(pairs) > limit else ""
    return f"{column}: {shown}{more}"


def _alias_pairs(original: pd.Series, canonical: Callable[[str], str | None]) -> list[tuple[str, str, int]]:
    """(text as written, canonical value, rows) for every distinct cell text that a vocabulary changes
    (an alias, another case, surrounding spaces); unknown values are left to the problems."""
    counts = original.astype(object).value_counts(sort=False)
    pairs = []
    for v, k in counts.items():
        if not isinstance(v, str) or not v.strip():
            continue
        canon = canonical(v.strip())
        if canon is not None and canon != v:
            pairs.append((v, canon, int(k)))
    return pairs


def _header_notice(headers: list[str], rename: dict[int, str], spec: TableSpec) -> str | None:
    """One notice line for headers read as a schema column under another spelling."""
    names = set(spec.names)
    pairs = [(headers[j], key) for j, key in rename.items() if key in names and headers[j] != key]
    if not pairs:
        return None
    return "headers: " + ", ".join(f"{h!r} read as {k!r}" for h, k in pairs)


def _convert_percent(spec: TableSpec, typed: pd.DataFrame, bad: pd.DataFrame, lines: np.ndarray) -> list[int]:
    """Divide the `spec.percent` columns by 100 in rows whose unit says percent; the lines of those rows."""
    pu = spec.percent
    if pu is None:
        return []
    rows = typed[pu.column].eq(pu.percent).fillna(False) & ~bad[pu.column]
    if pu.when is not None:
        rows &= typed[pu.when[0]].eq(pu.when[1]).fillna(False) & ~bad[pu.when[0]]
    if not rows.any():
        return []
    mask = rows.to_numpy()
    for c in pu.values:
        typed.loc[mask, c] = typed.loc[mask, c] / 100
    typed.loc[mask, pu.column] = pu.fraction
    return [int(x) for x in lines[mask]]


def _percent_notice(spec: TableSpec, converted: list[int]) -> str | None:
    """One notice line for the rows converted from percent (`_convert_percent`), or None."""
    if not converted:
        return None
    pu = spec.percent
    shown = ", ".join(str(r) for r in converted[:10]) + (" ..." if len(converted) > 10 else "")
    what = f" of {pu.when[0]} {pu.when[1]}" if pu.when else ""
    return (f"{pu.column}: {_plural(len(converted), 'row')}{what} in {pu.percent} (rows {shown}): "
            f"{', '.join(pu.values)} divided by 100 and read as {pu.fraction}s")


def _note_percent(problems: list[Problem], start: int, converted: set[int], spec: TableSpec) -> None:
    """Problems found after the percent conversion, in a converted cell, say that the value was divided by 100."""
    if not converted:
        return
    cols = set(spec.percent.values)
    for k in range(start, len(problems)):
        p = problems[k]
        if p.row in converted and p.column in cols:
            problems[k] = dataclasses.replace(
                p, expected=f"{p.expected} (unit {spec.percent.percent}: this value was divided by 100)")


@dataclass(frozen=True)
class _Cell:
    """The raw cell at row position `row` of `column`, named by a cross-row rule: its text is fetched once the
    rules have run (the raw strings of a whole table are never kept)."""

    row: int
    column: str


def _concat_columns(blocks: list[pd.DataFrame]) -> pd.DataFrame:
    """The blocks one under the other (index 0..n-1), built a column at a time and freeing each block's column
    as it goes, so the table is never held twice."""
    cols = {}
    for c in list(blocks[0].columns):
        cols[c] = pd.concat([b[c] for b in blocks], ignore_index=True)
        for b in blocks:
            del b[c]
    return pd.DataFrame(cols, copy=False)


class _Validation:
    """One table validated a block of rows at a time (`VALIDATE_BLOCK_ROWS`): the headers once (stage 1), then
    the cell parsing and typed checks of each block (stages 2-3), of which only the typed columns are kept; the
    table's own cross-row rules and unique key (stage 4) then run on the whole typed table. Peak memory is the
    typed table (what is returned) plus one block."""

    def __init__(self, spec: TableSpec, headers: list[str], file: str):
        self.spec, self.file, self.headers = spec, file, headers
        self.order = {c.name: k for k, c in enumerate(spec.columns)}
        self.rename, self.early, self.absent_required, self.nameless = _check_headers(spec, headers, file)
        self.source_of = {key: j for j, key in self.rename.items()}
        self.present = {c for c in spec.names if c in self.source_of}
        self.user_cols = [self.rename[j] for j in sorted(self.rename) if self.rename[j] not in self.order]
        self.late: list[Problem] = []  # found after the percent conversion: stages 3 and 4
        self.nameless_done: set[int] = set()
        self.readings: dict[str, dict[tuple[str, str], int]] = {}
        self.converted: list[int] = []
        self.typed: list[pd.DataFrame] = []
        self.bad: list[pd.DataFrame] = []
        self.lines: list[np.ndarray] = []

    def _raw(self, df: pd.DataFrame, lines: np.ndarray) -> pd.DataFrame:
        """The block's stripped strings under canonical names (index 0..m-1); a filled nameless column is a
        problem (once, at its first filled cell)."""
        spec = self.spec
        raw = pd.DataFrame(index=pd.RangeIndex(len(df)))
        for j in range(df.shape[1]):
            if j in self.rename:
                raw[self.rename[j]] = _raw_column(df.iloc[:, j])
            elif j in self.nameless and j not in self.nameless_done:
                vals = _column_text(df.iloc[:, j])
                if any(vals):
                    k = next(i for i, v in enumerate(vals) if v)
                    self.nameless_done.add(j)
                    self.early.append(Problem(self.file, int(lines[k]), None, vals[k],
                                              f"a header for every filled column, but column {j + 1} has no header"))
        for c in spec.names:
            if c not in raw.columns:
                raw[c] = ""
        return raw[list(spec.names) + self.user_cols].astype(str)

    def block(self, df: pd.DataFrame, lines: np.ndarray) -> None:
        """Stages 2 and 3 on one block of rows (`df` with the file's columns, `lines` their file lines)."""
        spec, file, order = self.spec, self.file, self.order
        raw = self._raw(df, lines)
        bad = pd.DataFrame(False, index=raw.index, columns=list(spec.names))
        for c in self.absent_required:
            bad[c] = True

        # ---- stage 2: cell parsing (pandera on normalised strings)
        norm = pd.DataFrame(index=raw.index)
        for c in spec.columns:
            col = raw[c.name]
            if c.kind in ("category", "set") and c.name in self.source_of:
                canon = c.vocabulary.normalise if c.kind == "category" else (
                    lambda v, voc=c.vocabulary: canonical_set(v, voc))
                counts = self.readings.setdefault(c.name, {})
                for v, cv, k in _alias_pairs(df.iloc[:, self.source_of[c.name]], canon):
                    counts[(v, cv)] = counts.get((v, cv), 0) + k
            if c.kind == "category":
                f = lambda v, voc=c.vocabulary: (voc.normalise(v) or v) if v else None
            elif c.kind == "bool":
                f = lambda v: None if not v else ({True: "true", False: "false"}.get(parse_bool(v), v))
            elif c.kind == "set":
                def f(v, voc=c.vocabulary):
                    canon = canonical_set(v, voc)
                    return v if canon is None else canon
            elif c.kind == "ref":
                f = lambda v: (normalise_ref(v) or v) if v else None
            else:
                f = lambda v: v if v else None
            norm[c.name] = pd.Series(_map_unique(col, f), index=raw.index, dtype="str")
        checked = [c for c in spec.names if c in self.present]
        fc = _failure_cases(_parse_stage_schema(spec, checked), norm)
        for _, r in fc.iterrows():
            i, col = r["index"], r["column"]
            if i is None or pd.isna(i) or col not in order:
                self.early.append(Problem(file, None, col, None, f"{r['check']} ({r['failure_case']})"))
                continue
            i = int(i)
            if bad.at[i, col]:
                continue
            bad.at[i, col] = True
            self.early.append(Problem(file, int(lines[i]), col, raw.at[i, col],
                                      _cell_problem_text(raw.at[i, col], spec.column(col))))

        # ---- typed block
        typed = pd.DataFrame(index=raw.index)
        for c in spec.columns:
            s = norm[c.name].astype(object).where(~bad[c.name], None)
            del norm[c.name]
            typed[c.name] = _typed_column(s, c, bad[c.name])
        del norm
        self.converted.extend(_convert_percent(spec, typed, bad, lines))

        # ---- stage 3: typed checks (pandera): ranges, required cells
        fc = _failure_cases(_typed_stage_schema(spec, checked), typed)
        for _, r in fc.iterrows():
            i, col = r["index"], r["column"]
            if i is None or pd.isna(i) or col not in order:
                self.late.append(Problem(file, None, col, None, f"{r['check']} ({r['failure_case']})"))
                continue
            i = int(i)
            if bad.at[i, col]:
                continue
            bad.at[i, col] = True
            c = spec.column(col)
            if r["check"] == "not_nullable":
                self.late.append(Problem(file, int(lines[i]), col, None,
                                         _join(c.describe(), "this column must be filled in every row")))
            else:
                self.late.append(Problem(file, int(lines[i]), col, raw.at[i, col],
                                         _range_problem_text(raw.at[i, col], typed.at[i, col], c)))
        for c in self.user_cols:
            typed[c] = raw[c].astype("str")
        self.typed.append(typed)
        self.bad.append(bad)
        self.lines.append(np.asarray(lines, dtype=int))

    def notices(self) -> list[str]:
        found = [_header_notice(self.headers, self.rename, self.spec)]
        found += [_readings_notice(c, [(v, cv, k) for (v, cv), k in counts.items()])
                  for c, counts in self.readings.items()]
        found.append(_percent_notice(self.spec, self.converted))
        return [n for n in found if n]

    def finish(self, cells: Callable[[dict[int, set[int]]], dict[tuple[int, int], str]],
               notices: list[str] | None = None) -> pd.DataFrame:
        """Stage 4 on the whole typed table, then every problem raised together, or the valid frame returned.
        `cells({row position: {file column}})` gives the raw text of the cells that cross-row problems name."""
        spec = self.spec
        typed = _concat_columns(self.typed)
        bad = pd.concat(self.bad, ignore_index=True)
        lines = np.concatenate(self.lines)
        self.typed, self.bad, self.lines = [], [], []

        # ---- stage 4: the table's own rules, then the unique key
        checker = Checker(spec, typed, None, lines, self.file, bad, self.present)
        if spec.rules is not None:
            spec.rules(checker)
        if spec.key:
            _check_key(checker, spec.key, spec.key_note)
        late = self.late + checker.problems
        del checker, bad
        _note_percent(late, 0, set(self.converted), spec)
        problems = self.early + late
        if problems:
            problems = self._fill_cells(problems, cells)
            problems.sort(key=lambda p: _sort_key(p, self.order))
            raise DataValidationError(problems, self.file)

        out = typed  # no copy: the typed frame is what is returned (a long table is not held twice)
        out["source_row"] = pd.Series(lines, index=out.index, dtype="int64")
        if spec.finalise is not None:
            out = spec.finalise(out)
        if notices is not None:
            notices.extend(self.notices())
        return out

    def _fill_cells(self, problems: list[Problem], cells) -> list[Problem]:
        """Problems whose value is a `_Cell` get the cell's raw text (None when empty or the column is absent)."""
        need: dict[int, set[int]] = {}
        for p in problems:
            if isinstance(p.value, _Cell) and p.value.column in self.source_of:
                need.setdefault(p.value.row, set()).add(self.source_of[p.value.column])
        texts = cells(need) if need else {}

        def text(cell: _Cell):
            j = self.source_of.get(cell.column)
            return texts.get((cell.row, j)) or None

        return [dataclasses.replace(p, value=text(p.value)) if isinstance(p.value, _Cell) else p for p in problems]


def _typed_column(s: pd.Series, c: ColumnSpec, bad: pd.Series) -> pd.Series:
    """A column of normalised strings (None = empty or bad) as the column's dtype, its default filled."""
    if c.kind == "float":
        vals = _map_unique(s, lambda v, r=c.ratio: parse_number(v, r) if isinstance(v, str) else np.nan)
        out = pd.Series(vals, index=s.index, dtype="float64")
    elif c.kind == "int":
        out = pd.Series(_map_unique(s, lambda v: parse_int(v) if isinstance(v, str) else None),
                        index=s.index, dtype="Int64")
    elif c.kind == "bool":
        out = pd.Series(_map_unique(s, lambda v: parse_bool(v) if isinstance(v, str) else None),
                        index=s.index, dtype="boolean")
    else:
        out = pd.Series([v if isinstance(v, str) else None for v in s.tolist()], index=s.index, dtype="str")
    if c.default is not None:
        fill = out.isna() & ~bad
        if fill.any():
            out = out.astype(object)
            out[fill] = c.default
    if c.kind == "bool" and c.default is not None:
        return out.fillna(bool(c.default)).astype("bool")
    return out.astype(c.dtype)


def validate_frame(df: pd.DataFrame, spec: TableSpec, file: str = DATAFRAME_NAME,
                   notices: list[str] | None = None) -> pd.DataFrame:
    """Validate a frame of strings (or values) against `spec`; return the canonical typed frame.

    Row numbers: taken from a `source_row` column if present, else from an index named "line" (as returned
    by `read_csv_text`), else counted as in a CSV with a header (first row = line 2).
    Raises DataValidationError listing every problem found. `notices`, when given, receives one line per
    column whose cells were read under another spelling (aliases, case, spaces: "route: 'IV' read as
    'intravenous' (12 rows)"), one for renamed headers and one for rows converted from percent.
    The cells are parsed and checked `VALIDATE_BLOCK_ROWS` rows at a time; `validate_csv` does the same
    straight from a file.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    lines, df = _line_numbers(df)
    if df.shape[1] == 0:
        raise DataValidationError([Problem(
            file, None, None, None, "expected a table with a header and at least one data row, but it has no columns")])
    if len(df) == 0:
        raise DataValidationError([Problem(
            file, None, None, None, "expected at least one data row after the header, but there are none")])
    v = _Validation(spec, [str(h) for h in df.columns], file)
    step = VALIDATE_BLOCK_ROWS
    for start in range(0, len(df), step):
        v.block(df.iloc[start:start + step], lines[start:start + step])
    return v.finish(lambda need: {(i, j): _as_text(df.iat[i, j]) for i, js in need.items() for j in js}, notices)


def validate_csv(path, spec: TableSpec, notices: list[str] | None = None) -> pd.DataFrame:
    """`validate_frame` straight from a CSV file, a block of `VALIDATE_BLOCK_ROWS` rows at a time, so the raw
    strings of the whole file are never held: memory is the typed table plus one block. The same problems, in
    the same order, as `validate_frame(read_csv_text(path), spec)`; the cells named by cross-row problems are
    read back from the file."""
    name = os.fspath(path)
    v: _Validation | None = None
    for block in read_csv_blocks(path, VALIDATE_BLOCK_ROWS):
        lines, block = _line_numbers(block)
        if v is None:
            v = _Validation(spec, [str(h) for h in block.columns], name)
        v.block(block, lines)

    def cells(need: dict[int, set[int]]) -> dict[tuple[int, int], str]:
        found, offset = {}, 0
        for block in read_csv_blocks(path, VALIDATE_BLOCK_ROWS):
            _, block = _line_numbers(block)
            for i in [i for i in need if offset <= i < offset + len(block)]:
                for j in need[i]:
                    found[(i, j)] = _as_text(block.iat[i - offset, j])
            offset += len(block)
        return found

    return v.finish(cells, notices)


def _key_text(frame: pd.DataFrame, i, key: Sequence[str]) -> str:
    vals = []
    for k in key:
        v = frame.at[i, k]
        vals.append(_num(v) if isinstance(v, (float, np.floating)) and not pd.isna(v) else _as_text(v))
    return ", ".join(vals)


def _check_key(ck: Checker, key: Sequence[str], note: str = "") -> None:
    """Every duplicate of the key, with the line of its first occurrence."""
    ok = ck.ok(*key)
    frame = ck.frame
    sub = frame.loc[ok.to_numpy(), list(key)]
    if sub.empty:
        return
    dup = sub.duplicated(keep=False)
    if not dup.any():
        return
    tuples = [tuple("" if pd.isna(v) else v for v in row) for row in sub.itertuples(index=False)]
    first: dict[tuple, int] = {}
    for i, t in zip(sub.index, tuples):
        if t in first:
            ck.problems.append(Problem(
                ck.file, ck.line(i), None, None,
                f"duplicated key: this row repeats row {ck.line(first[t])} "
                f"({_key_text(frame, i, key)}); each ({', '.join(key)}) must appear once"
                + (f" ({note})" if note else ""),
            ))
        else:
            first[t] = i


# ------------------------------------------------------------------------------------------------------ table


def frame_sha256(frame: pd.DataFrame) -> str:
    """sha256 of a canonical CSV serialisation of a validated frame.

    Row order and column order are kept (they are canonical after validation); `source_row` is left out so
    that moving the data within a file (blank lines, comments) does not change the hash; floats are written
    with repr (shortest round-trip), booleans as true/false, missing values as empty cells.
    """
    cols = [c for c in frame.columns if c != "source_row"]
    digest = hashlib.sha256()

    def feed(rows) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        digest.update(buf.getvalue().encode("utf-8"))

    feed([cols])
    for start in range(0, len(frame), READ_BLOCK_ROWS):  # a block at a time: the same bytes, bounded memory
        block = frame.iloc[start:start + READ_BLOCK_ROWS]
        feed(zip(*[_column_text(block[c]) for c in cols]))
    return digest.hexdigest()


@dataclass(frozen=True)
class Table:
    """A validated table.

    kind: "fate", "coculture" or "nk"; frame: canonical dtypes and vocabulary, defaults filled, the file's
    line of each row in `source_row`; source: the file name or "<DataFrame>"; sha256: `frame_sha256(frame)`;
    notices: one line per column whose cells (or headers) were read under another spelling or converted from
    percent, e.g. "route: 'IV' read as 'intravenous' (12 rows)".
    """

    kind: str
    frame: pd.DataFrame = field(repr=False)
    source: str
    sha256: str
    notices: tuple[str, ...] = field(default=(), compare=False)  # what was read under another spelling

    def __len__(self) -> int:
        return len(self.frame)

    def notice_lines(self) -> list[str]:
        return notice_lines(self)


def notice_lines(table) -> list[str]:
    """A table's notices as every command prints them: "note: route: 'IV' read as 'intravenous' (12 rows)"
    (none for a table without notices, e.g. a model family's own table type)."""
    return [f"note: {n}" for n in getattr(table, "notices", ())]


def read_table(path_or_frame, spec: TableSpec, table_cls: type[Table] = Table, *, file: str | None = None) -> Table:
    """Read a CSV path (or take a DataFrame), validate it against `spec` and wrap it in a Table (its
    `notices` say which cells and headers were read under another spelling). `file` names a DataFrame
    already read from a file (e.g. by `read_csv_text`) in messages."""
    notices: list[str] = []
    if isinstance(path_or_frame, pd.DataFrame):
        name = file or DATAFRAME_NAME
        frame = validate_frame(path_or_frame, spec, file=name, notices=notices)
    elif isinstance(path_or_frame, (str, os.PathLike)):
        name = os.fspath(path_or_frame)
        frame = validate_csv(path_or_frame, spec, notices=notices)  # a block at a time: bounded memory
    else:
        raise TypeError(f"expected a file path or a pandas DataFrame, got {type(path_or_frame).__name__}")
    return table_cls(kind=spec.kind, frame=frame, source=name, sha256=frame_sha256(frame), notices=tuple(notices))
