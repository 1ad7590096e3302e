"""`client_sdk.tabular`: staff lists as Excel on Windows really saves them (`;`, tabs,
Windows-1252, a byte-order mark, .xlsx), and every line accounted for, with its problem named by
line and column."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest

from client_sdk.tabular import Table, TableError, read_table

HEADER = ["staff_ref", "full_name", "date_of_birth", "national_id"]
KNOWN = {*HEADER, "consent_id"}


def write(tmp_path: Path, data: bytes, name: str = "staff.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read(path: Path) -> Table:
    return read_table(path, required=("staff_ref", "full_name"), known=KNOWN)


def physical_lines(data: bytes) -> int:
    """What a person counts in a text editor (a final line break opens no line)."""
    return len(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").rstrip(b"\n").split(b"\n"))


@pytest.mark.parametrize(
    ("delimiter", "bom"),
    [(",", b""), (";", b""), ("\t", b""), (";", b"\xef\xbb\xbf"), (",", b"\xef\xbb\xbf")],
)
def test_delimiter_is_sniffed_and_a_bom_is_dropped(
    tmp_path: Path, delimiter: str, bom: bytes
) -> None:
    text = delimiter.join(HEADER) + "\r\n" + delimiter.join(["S1", "Siti Rahma", "", ""]) + "\r\n"
    table = read(write(tmp_path, bom + text.encode()))
    assert table.delimiter == delimiter
    assert table.header == tuple(HEADER)
    assert table.records[0].values["staff_ref"] == "S1"
    assert table.records[0].line == 2 and table.records[0].problem is None
    assert table.warnings == []


def test_windows_1252_is_read_with_a_warning_not_a_traceback(tmp_path: Path) -> None:
    data = "staff_ref;full_name\nS1;Jos\u00e9 Mar\u00eda\nS2;Budi\n".encode("cp1252")
    table = read(write(tmp_path, data))
    assert table.records[0].values["full_name"] == "Jos\u00e9 Mar\u00eda"
    assert table.records[0].problem is None
    assert len(table.warnings) == 1 and "Windows-1252" in table.warnings[0]
    assert "line(s) 2 " in table.warnings[0]


def test_a_file_mostly_utf8_keeps_its_utf8_lines(tmp_path: Path) -> None:
    data = "staff_ref,full_name\nS1,Nguy\u1ec5n\n".encode() + "S2,Andr\u00e9\n".encode("cp1252")
    table = read(write(tmp_path, data))
    assert [r.values["full_name"] for r in table.records] == ["Nguy\u1ec5n", "Andr\u00e9"]
    assert "line(s) 3 " in table.warnings[0]


def test_a_byte_neither_utf8_nor_windows_1252_names_its_line_and_column(tmp_path: Path) -> None:
    data = b"staff_ref,full_name,date_of_birth\nS1,Ok Name,1990-01-01\nS2,Bad\x81Name,1990-01-01\n"
    table = read(write(tmp_path, data))
    assert table.records[0].problem is None
    problem = table.records[1].problem
    assert problem is not None
    assert str(problem).startswith("line 3, column 2 (full_name): ")
    assert "neither UTF-8 nor Windows-1252" in problem.message


def test_a_nul_byte_is_its_lines_problem_and_a_file_of_them_is_refused(tmp_path: Path) -> None:
    table = read(write(tmp_path, b"staff_ref,full_name\nS1,Bu\x00di\nS2,Citra\n"))
    problem = table.records[0].problem
    assert problem is not None and problem.column == "2 (full_name)" and "NUL" in problem.message
    assert table.records[1].problem is None
    with pytest.raises(TableError, match="NUL bytes"):
        read(write(tmp_path, "staff_ref,full_name\n".encode("utf-16-le")))


def test_utf16_as_excel_unicode_text_saves_it(tmp_path: Path) -> None:
    text = "staff_ref\tfull_name\r\nS1\tNguy\u1ec5n V\u0103n A\r\n"
    table = read(write(tmp_path, text.encode("utf-16")))
    assert table.delimiter == "\t" and table.encoding == "utf-16"
    assert table.records[0].values["full_name"] == "Nguy\u1ec5n V\u0103n A"


def test_excel_sep_line_sets_the_delimiter(tmp_path: Path) -> None:
    table = read(write(tmp_path, b"sep=;\nstaff_ref;full_name\nS1;A, B\n"))
    assert table.delimiter == ";" and table.header_line == 2
    assert table.records[0].line == 3 and table.records[0].values["full_name"] == "A, B"


def test_an_unclosed_quote_swallows_no_line(tmp_path: Path) -> None:
    data = (
        b"staff_ref,full_name,date_of_birth\n"
        b'S1,"Budi Santoso,1990-01-01\n'  # the quote is never closed
        b"S2,Citra Lestari,1991-02-02\n"
        b"S3,Dian Utami,1992-03-03\n"
    )
    table = read(write(tmp_path, data))
    assert [r.line for r in table.records] == [2, 3, 4]
    first = table.records[0].problem
    assert first is not None and str(first) == (
        "line 2, column 2 (full_name): the quote that opens this field is not closed on this line"
    )
    assert table.records[1].values["staff_ref"] == "S2" and table.records[1].problem is None
    assert table.records[2].values["staff_ref"] == "S3" and table.records[2].problem is None


def test_quoted_fields_with_delimiters_and_doubled_quotes(tmp_path: Path) -> None:
    table = read(write(tmp_path, b'staff_ref;full_name\nS1;"Rahma; ""Ama"" Siti"\n'))
    assert table.records[0].values["full_name"] == 'Rahma; "Ama" Siti'


def test_text_after_a_closing_quote_is_named(tmp_path: Path) -> None:
    table = read(write(tmp_path, b'staff_ref,full_name\nS1,"Budi" Santoso\n'))
    problem = table.records[0].problem
    assert problem is not None and problem.column == "2 (full_name)"
    assert "after the closing quote" in problem.message


def test_field_counts_name_the_column(tmp_path: Path) -> None:
    data = (
        b"staff_ref,full_name,date_of_birth\n"
        b"S1,Budi,1990-01-01,surplus\n"
        b"S2,Citra\n"
        b"S3,Dian,1992-03-03,,\n"  # Excel's empty cells after the last column: fine
    )
    table = read(write(tmp_path, data))
    surplus, short, fine = table.records
    assert surplus.problem is not None and str(surplus.problem) == (
        "line 2, column 4: more fields than the header has columns (3)"
    )
    assert short.problem is not None and short.problem.column == "3 (date_of_birth)"
    assert fine.problem is None and fine.values["date_of_birth"] == "1992-03-03"


def test_empty_lines_are_records_too(tmp_path: Path) -> None:
    data = b"staff_ref,full_name\nS1,A\n\n,,\nS2,B\n"
    table = read(write(tmp_path, data))
    assert [r.line for r in table.records] == [2, 3, 4, 5]
    assert [r.empty for r in table.records] == [False, True, True, False]
    assert table.records[1].problem is not None
    assert table.records[1].problem.message == "empty line"


@pytest.mark.parametrize(
    "data",
    [
        b'staff_ref,full_name\nS1,"open\nS2,B\n',
        b"staff_ref;full_name\r\nS1;A;x\r\n\r\nS2\r\n\xff\xfe;\r\n",
        b'staff_ref\tfull_name\r"\r\n\t\t\t\n"""\n',
        b"\xef\xbb\xbfstaff_ref,full_name\n\x81\x8d,\x90\nS2,ok",
    ],
)
def test_every_line_after_the_header_is_one_record(tmp_path: Path, data: bytes) -> None:
    table = read(write(tmp_path, data))
    assert len(table.records) == physical_lines(data) - 1
    assert [r.line for r in table.records] == list(range(2, physical_lines(data) + 1))


def test_header_is_normalised_and_checked(tmp_path: Path) -> None:
    table = read(write(tmp_path, b"Staff Ref , FULL_NAME\nS1,A\n"))
    assert table.header == ("staff_ref", "full_name")
    with pytest.raises(TableError, match="lacks column"):
        read(write(tmp_path, b"staff_ref,name\nS1,A\n"))
    with pytest.raises(TableError, match=r"unknown column\(s\) 3 \(nickname\) on line 1"):
        read(write(tmp_path, b"staff_ref,full_name,nickname\n"))
    with pytest.raises(TableError, match="line 1, column 3: column staff_ref is already column 1"):
        read(write(tmp_path, b"staff_ref,full_name,staff_ref\n"))
    with pytest.raises(TableError, match="line 1, column 2: the column has no name"):
        read(write(tmp_path, b"staff_ref,,full_name\n"))
    with pytest.raises(TableError, match="empty"):
        read(write(tmp_path, b"\n\n"))


def test_files_that_are_not_csv_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(TableError, match=r"\.xls\)"):
        read(write(tmp_path, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100))
    with pytest.raises(TableError, match="not a readable .xlsx"):
        read(write(tmp_path, b"PK\x03\x04 not really a zip"))
    with pytest.raises(TableError, match="cannot be read"):
        read(tmp_path / "missing.csv")


def workbook(tmp_path: Path, rows: Sequence[Sequence[object]], *, sheets: int = 1) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    for n in range(1, sheets):
        book.create_sheet(f"Sheet {n + 1}")
    path = tmp_path / "staff.xlsx"
    book.save(path)
    return path


def test_xlsx_dates_numbers_and_row_numbers(tmp_path: Path) -> None:
    path = workbook(
        tmp_path,
        [
            ["Staff_Ref", "full_name", "date_of_birth", "national_id", None],
            ["S1", "Siti Rahma", date(1990, 1, 31), 3201234567890001, None],
            [None, None, None, None, None],
            ["S3", "Budi", datetime(1985, 5, 6), "3201234567890003", None],
            [None, None, None, None, None],
        ],
    )
    table = read(path)
    assert table.kind == "xlsx" and table.header == tuple(HEADER)
    assert [r.line for r in table.records] == [2, 3, 4]  # trailing empty rows are not lines
    first, empty, third = table.records
    assert first.values == {
        "staff_ref": "S1",
        "full_name": "Siti Rahma",
        "date_of_birth": "1990-01-31",
        "national_id": "3201234567890001",
    }
    assert empty.empty
    assert third.values["date_of_birth"] == "1985-05-06" and third.problem is None


def test_xlsx_number_longer_than_excel_keeps_is_refused_by_column(tmp_path: Path) -> None:
    path = workbook(
        tmp_path,
        [HEADER, ["S1", "Siti", "1990-01-31", 3201234567890000], ["S2", "Budi", "", 12.0]],
    )
    table = read(path)
    problem = table.records[0].problem
    assert problem is not None and problem.column == "D (national_id)"
    assert "Excel keeps only 15" in problem.message
    assert table.records[1].values["national_id"] == "12"


def test_xlsx_surplus_cell_and_other_sheets(tmp_path: Path) -> None:
    path = workbook(tmp_path, [HEADER, ["S1", "Siti", "", "", "stray"]], sheets=2)
    table = read(path)
    problem = table.records[0].problem
    assert problem is not None and str(problem) == (
        "line 2, column E: more fields than the header has columns (4)"
    )
    assert "first sheet" in table.warnings[0] and "2 sheets" in table.warnings[0]


def test_xlsx_is_recognised_by_content_whatever_its_name(tmp_path: Path) -> None:
    path = workbook(tmp_path, [HEADER, ["S1", "Siti", "", ""]])
    renamed = path.rename(tmp_path / "staff.csv")
    assert read(renamed).kind == "xlsx"
