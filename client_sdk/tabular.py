"""Reading the tables people actually have: CSV as Excel saves it, and `.xlsx` workbooks.

Focal points and HR officers keep staff lists in Excel on Windows. Indonesian Excel saves "CSV"
with `;` between fields and, unless told "CSV UTF-8", in Windows-1252; Excel's "Unicode Text"
is UTF-16 with tabs. `read_table` takes any of these, and `.xlsx`:

- the encoding: UTF-8 with or without a byte-order mark, UTF-16 with one, and lines that are
  not UTF-8 read as Windows-1252 with a warning (never a traceback);
- the delimiter: `,`, `;` or tab, sniffed from the header line (or Excel's `sep=;` first line);
- `.xlsx`/`.xlsm` (recognised by content, whatever the file is called): the first worksheet,
  with dates as `YYYY-MM-DD` and whole numbers without `.0`.

**Every line is accounted for.** Each physical line after the header is one `Record`, whatever
is wrong with it: a problem (an unclosed quote, a field too many, an undecodable byte, an empty
line) is attached to that record, naming its line and column, and the next line is read on its
own. In particular a quote left open does not swallow the lines after it, as it does in
`csv.reader`: no column of these tables holds a line break, so a quoted field ends on its line.
For a workbook a "line" is the sheet's row number, so line numbers match what people see in
Excel either way.

Usage::

    table = read_table(Path("staff.csv"), required=("staff_ref", "full_name"))
    for warning in table.warnings: print(warning)
    for record in table.records:
        if record.problem: print(record.problem)     # "line 7, column 3 (full_name): ..."
        else: use(record.values)                     # {"staff_ref": "S1", ...}
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal

from client_sdk.errors import InvalidInput

__all__ = ["DELIMITERS", "Problem", "Record", "Table", "TableError", "read_table"]

#: The delimiters sniffed, in order of preference when a header line splits equally.
DELIMITERS = (",", ";", "\t")

_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_LINE_BREAK = re.compile(rb"\r\n|\n|\r")
_TEXT_LINE_BREAK = re.compile(r"\r\n|\n|\r")
# Excel keeps 15 significant digits of a number: a 16-digit NIK typed into a number cell has
# already lost its last digit when the file is saved.
_EXCEL_EXACT_DIGITS = 15


class TableError(InvalidInput):
    """The file cannot be read as a table at all (no header, not a spreadsheet, unreadable).
    The message names the file's problem and, where there is one, its line and column."""


@dataclass(frozen=True)
class Problem:
    """What is wrong with one line, and where: `str()` gives "line 7, column 3 (full_name): …".

    `column` is the column as a person finds it: its position (a letter in a workbook) and its
    header name; None when the problem is the whole line's.
    """

    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"

    @property
    def reason(self) -> str:
        """The problem without its line number (for a results file that has a line column)."""
        return f"column {self.column}: {self.message}" if self.column else self.message


@dataclass(frozen=True)
class Record:
    """One line after the header. `values` maps each header column to its text (stripped, ""
    when empty); it is empty when `problem` says the line could not be split into fields.
    `empty` marks a line with nothing on it (its problem says so too)."""

    line: int
    values: dict[str, str]
    problem: Problem | None = None
    empty: bool = False


@dataclass
class Table:
    """A table read by `read_table`: its header, one record per line after it, and warnings
    (such as lines read as Windows-1252) for the person running the command."""

    path: Path
    kind: Literal["csv", "xlsx"]
    header: tuple[str, ...]
    header_line: int
    records: list[Record]
    warnings: list[str] = field(default_factory=list)
    delimiter: str = ","
    encoding: str = "utf-8"
    sheet: str | None = None

    def position(self, name: str) -> str:
        """Where column `name` is: "3", or "C" in a workbook (as Excel labels it)."""
        index = self.header.index(name)
        return _column_letter(index) if self.kind == "xlsx" else str(index + 1)

    def column(self, name: str) -> str:
        """How a problem names column `name`: "3 (full_name)", or "C (full_name)" in a
        workbook."""
        if name not in self.header:
            return name
        return f"{self.position(name)} ({name})"

    def problem(self, line: int, column: str | None, message: str) -> Problem:
        """A problem of line `line` in column `column` (a header name), named as people see
        it."""
        return Problem(line, None if column is None else self.column(column), message)


def read_table(
    path: Path,
    *,
    required: Sequence[str] = (),
    known: Collection[str] | None = None,
    what: str = "file",
) -> Table:
    """Read a CSV file or an `.xlsx` workbook (see the module's docstring).

    Header names are compared in lower case with spaces as underscores ("Staff Ref" is
    `staff_ref`). Raises `TableError` when there is no usable header: a column of `required`
    missing, a column not in `known` (a typo would otherwise be ignored silently), an empty or
    repeated column name. Problems of single lines never raise: they are in the records.
    """
    try:
        data = Path(path).read_bytes()
    except OSError:
        raise TableError(f"the {what} cannot be read") from None
    if data.startswith(_XLS_MAGIC):
        raise TableError(
            f"the {what} is an Excel 97-2003 workbook (.xls): save it as .xlsx or as CSV"
        )
    if data.startswith(_XLSX_MAGIC):
        table = _read_xlsx(Path(path), data, what)
    else:
        table = _read_csv(Path(path), data, what)
    _check_header(table, required, known, what)
    return table


# -- header ------------------------------------------------------------------------------------


def _header_name(raw: str) -> str:
    return "_".join(raw.strip().lower().split())


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _clean_header(cells: list[str], line: int, kind: str, what: str) -> tuple[str, ...]:
    names = [_header_name(c) for c in cells]
    while names and not names[-1]:
        names.pop()  # Excel leaves empty header cells after the last column
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        position = _column_letter(index) if kind == "xlsx" else str(index + 1)
        if not name:
            raise TableError(f"{what}: line {line}, column {position}: the column has no name")
        if name in seen:
            first = seen[name]
            first_pos = _column_letter(first) if kind == "xlsx" else str(first + 1)
            raise TableError(
                f"{what}: line {line}, column {position}: column {name} is already column "
                f"{first_pos}"
            )
        seen[name] = index
    return tuple(names)


def _check_header(
    table: Table, required: Sequence[str], known: Collection[str] | None, what: str
) -> None:
    missing = [c for c in required if c not in table.header]
    if missing:
        raise TableError(
            f"{what}: the header (line {table.header_line}) lacks column(s): {', '.join(missing)}"
        )
    if known is not None:
        unknown = [c for c in table.header if c not in known]
        if unknown:
            raise TableError(
                f"{what}: unknown column(s) "
                + ", ".join(table.column(c) for c in unknown)
                + f" on line {table.header_line}"
            )


def _fit(
    header: tuple[str, ...], cells: list[str], line: int, column: Callable[[int], str]
) -> Record:
    """Match a line's cells to the header: surplus empty cells are Excel's and are dropped;
    a surplus value or a missing field is the line's problem."""
    width = len(header)
    values = [c.strip() for c in cells]
    if not any(values):
        return Record(line, dict.fromkeys(header, ""), Problem(line, None, "empty line"), True)
    surplus = [i for i in range(width, len(values)) if values[i]]
    if surplus:
        message = f"more fields than the header has columns ({width})"
        return Record(line, {}, Problem(line, column(surplus[0]), message))
    if len(values) < width:
        message = f"the line ends after {len(values)} field(s); the header has {width} columns"
        return Record(line, {}, Problem(line, column(len(values)), message))
    return Record(line, dict(zip(header, values[:width], strict=True)))


# -- CSV ---------------------------------------------------------------------------------------


class _FieldError(Exception):
    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


def split_line(text: str, delimiter: str) -> list[str]:
    """Split one line of CSV (RFC 4180 quoting, `""` for a quote inside quotes).

    Raises `_FieldError` naming the field: a quote that is not closed on the line, or text
    after a closing quote. A quote inside an unquoted field is kept as it is (as Excel does).
    """
    fields: list[str] = []
    i, n = 0, len(text)
    while True:
        if i < n and text[i] == '"':
            parts: list[str] = []
            j = i + 1
            while True:
                k = text.find('"', j)
                if k == -1:
                    raise _FieldError(
                        len(fields), "the quote that opens this field is not closed on this line"
                    )
                parts.append(text[j:k])
                if k + 1 < n and text[k + 1] == '"':
                    parts.append('"')
                    j = k + 2
                    continue
                i = k + 1
                break
            end = text.find(delimiter, i)
            trailer = text[i:] if end == -1 else text[i:end]
            if trailer.strip():
                raise _FieldError(len(fields), "text after the closing quote of this field")
            fields.append("".join(parts))
        else:
            end = text.find(delimiter, i)
            fields.append(text[i:] if end == -1 else text[i:end])
        if end == -1:
            return fields
        i = end + len(delimiter)


def _sniff(header: str) -> str:
    """The delimiter that splits the header line into the most fields (`,` on a tie)."""
    best, width = ",", 0
    for candidate in DELIMITERS:
        try:
            count = len(split_line(header, candidate))
        except _FieldError:
            continue
        if count > width:
            best, width = candidate, count
    return best


_NOT_DECODABLE = "a byte that is neither UTF-8 nor Windows-1252"
_NUL = "a NUL byte: this line is not text (is the file damaged?)"


def _lines(data: bytes) -> tuple[list[str], list[int], str, dict[int, tuple[int, str]]]:
    """Decode `data` line by line: (lines, numbers of lines read as Windows-1252, encoding,
    {line: (character offset, problem)} for the lines that cannot be read as text)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            raise TableError("the file starts as UTF-16 but is not valid UTF-16") from None
        parts = _TEXT_LINE_BREAK.split(text)
        if parts and parts[-1] == "":
            parts.pop()
        return parts, [], "utf-16", _nul_lines(parts)
    encoding = "utf-8"
    if data.startswith(b"\xef\xbb\xbf"):
        data, encoding = data[3:], "utf-8-sig"
    elif data[:4096].count(0) * 4 > len(data[:4096]):
        raise TableError(
            "the file is mostly NUL bytes: it is not a text file that can be read (UTF-16 "
            "without a byte-order mark, or a workbook?): save it as .xlsx or as CSV"
        )
    raw = _LINE_BREAK.split(data)
    if raw and raw[-1] == b"":
        raw.pop()
    lines: list[str] = []
    legacy: list[int] = []
    broken: dict[int, tuple[int, str]] = {}
    for number, chunk in enumerate(raw, start=1):
        try:
            lines.append(chunk.decode("utf-8"))
            continue
        except UnicodeDecodeError:
            pass
        try:
            lines.append(chunk.decode("cp1252"))
            legacy.append(number)
        except UnicodeDecodeError as exc:
            lines.append(chunk.decode("cp1252", errors="replace"))
            broken[number] = (exc.start, _NOT_DECODABLE)  # one byte, one character in cp1252
    return lines, legacy, encoding, {**_nul_lines(lines), **broken}


def _nul_lines(lines: list[str]) -> dict[int, tuple[int, str]]:
    return {n: (text.index("\x00"), _NUL) for n, text in enumerate(lines, 1) if "\x00" in text}


def _line_list(numbers: list[int], limit: int = 8) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


def _read_csv(path: Path, data: bytes, what: str) -> Table:
    lines, legacy, encoding, broken = _lines(data)
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    if start == len(lines):
        raise TableError(f"the {what} is empty: it needs a header line")
    delimiter: str | None = None
    directive = re.fullmatch(r'"?sep=(.)"?\s*', lines[start], flags=re.IGNORECASE)
    if directive:  # Excel's own hint, written by some exports: "sep=;"
        delimiter = directive.group(1)
        start += 1
        if start == len(lines):
            raise TableError(f"the {what} has no header line after its sep= line")
    header_line = start + 1
    header_text = lines[start].lstrip("\ufeff")
    if header_line in broken:
        raise TableError(f"{what}: line {header_line}: {broken[header_line][1]}")
    delimiter = delimiter or _sniff(header_text)
    try:
        cells = split_line(header_text, delimiter)
    except _FieldError as exc:
        raise TableError(
            f"{what}: line {header_line}, column {exc.index + 1}: {exc.message}"
        ) from None
    table = Table(
        path=path,
        kind="csv",
        header=_clean_header(cells, header_line, "csv", what),
        header_line=header_line,
        records=[],
        delimiter=delimiter,
        encoding=encoding,
    )
    header_width = len(table.header)

    def column(index: int) -> str:
        return table.column(table.header[index]) if index < header_width else str(index + 1)

    for offset, text in enumerate(lines[start + 1 :], start=start + 2):
        if offset in broken:
            at, message = broken[offset]
            problem = Problem(offset, column(_field_at(text, delimiter, at)), message)
            table.records.append(Record(offset, {}, problem))
            continue
        try:
            cells = split_line(text, delimiter)
        except _FieldError as exc:
            problem = Problem(offset, column(exc.index), exc.message)
            table.records.append(Record(offset, {}, problem))
            continue
        table.records.append(_fit(table.header, cells, offset, column))
    if legacy:
        table.encoding = "cp1252" if len(legacy) == len(lines) else f"{encoding}+cp1252"
        table.warnings.append(
            f"{path.name}: line(s) {_line_list(legacy)} are not UTF-8 and were read as "
            "Windows-1252 (as Excel on Windows saves CSV). Check accented names in the "
            'results; saving as "CSV UTF-8" avoids this.'
        )
    return table


def _field_at(text: str, delimiter: str, offset: int) -> int:
    """The (0-based) field of a line that character `offset` is in, counting delimiters
    outside quotes."""
    index, quoted = 0, False
    for char in text[:offset]:
        if char == '"':
            quoted = not quoted
        elif char == delimiter and not quoted:
            index += 1
    return index


# -- xlsx --------------------------------------------------------------------------------------


def _cell_text(value: Any) -> tuple[str, str | None]:
    """A cell's value as text, and a problem with it when it cannot be trusted."""
    if value is None:
        return "", None
    if isinstance(value, bool):
        return ("true" if value else "false"), None
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat(), None
        return value.isoformat(sep=" "), None
    if isinstance(value, date | time):
        return value.isoformat(), None
    if isinstance(value, int | float) and float(value).is_integer():
        text = str(int(value))
        digits = len(text.lstrip("-"))
        if digits > _EXCEL_EXACT_DIGITS:
            # A number cell, not a text cell: Excel had already cut it to 15 digits (a NIK has
            # 16), whatever the file now says.
            return text, (
                f"a number of {digits} digits: Excel keeps only {_EXCEL_EXACT_DIGITS}, so its "
                "last digits are lost; format the column as Text and type it again"
            )
        return text, None
    if isinstance(value, float):
        return repr(value), None
    return str(value).strip(), None


def _read_xlsx(path: Path, data: bytes, what: str) -> Table:
    try:
        import openpyxl
        from openpyxl.utils.exceptions import InvalidFileException
    except ImportError:  # pragma: no cover - a base dependency
        raise TableError("reading .xlsx needs openpyxl (pip install openpyxl)") from None
    try:
        # From the bytes: given a path, openpyxl refuses a workbook not named .xlsx.
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError):
        raise TableError(f"the {what} is not a readable .xlsx workbook") from None
    try:
        if not book.worksheets:
            raise TableError(f"the {what} has no worksheet")
        sheet = book.worksheets[0]
        rows = list(_sheet_rows(sheet))
    finally:
        book.close()
    warnings = []
    if len(book.sheetnames) > 1:
        warnings.append(
            f"{path.name}: read the first sheet ({sheet.title!r}) only; the workbook has "
            f"{len(book.sheetnames)} sheets"
        )
    while rows and not any(v is not None and str(v).strip() for v in rows[-1]):
        rows.pop()  # formatted but empty rows after the data
    start = 0
    while start < len(rows) and not any(v is not None and str(v).strip() for v in rows[start]):
        start += 1
    if start == len(rows):
        raise TableError(f"the {what}'s first sheet is empty: it needs a header row")
    header_line = start + 1
    header_cells = [_cell_text(v)[0] for v in rows[start]]
    table = Table(
        path=path,
        kind="xlsx",
        header=_clean_header(header_cells, header_line, "xlsx", what),
        header_line=header_line,
        records=[],
        warnings=warnings,
        encoding="xlsx",
        sheet=str(sheet.title),
    )
    width = len(table.header)

    def column(index: int) -> str:
        return table.column(table.header[index]) if index < width else _column_letter(index)

    for offset, row in enumerate(rows[start + 1 :], start=header_line + 1):
        cells: list[str] = []
        problem: Problem | None = None
        for index, value in enumerate(row):
            text, trouble = _cell_text(value)
            cells.append(text)
            if trouble and problem is None and index < width:
                problem = Problem(offset, column(index), trouble)
        cells += [""] * (width - len(cells))  # a workbook row simply ends early
        record = _fit(table.header, cells, offset, column)
        if record.problem is None and problem is not None:
            record = Record(offset, record.values, problem)
        table.records.append(record)
    return table


def _sheet_rows(sheet: Any) -> Iterator[tuple[Any, ...]]:
    # From row 1 explicitly: in read-only mode the iteration otherwise starts at the sheet's
    # recorded first row, and row numbers would shift.
    yield from sheet.iter_rows(min_row=1, values_only=True)
