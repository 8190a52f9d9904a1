"""Tables as downloads: CSV for Excel (UTF-8 with BOM, RFC 4180 quoting, formulas neutralised)
and XLSX (openpyxl's write-only mode). Both take rows one at a time and give the file in
pieces, so a million rows cost no more memory than ten."""
from __future__ import annotations

import csv
import io
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PHONE = re.compile(r"\+\d{6,15}")  # an E.164 phone starts with + yet is no formula
CHUNK = 64 * 1024


def neutralised(value: str) -> str:
    """A spreadsheet runs a cell starting with = + - @ (or tab/CR before one) as a formula;
    a leading apostrophe makes it text."""
    if value.startswith(FORMULA_STARTS) and not PHONE.fullmatch(value):
        return "'" + value
    return value


def csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value if isinstance(value, int | float) else neutralised(str(value))


def csv_stream(header: Sequence[str], rows: Iterable[Sequence]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180: CRLF, quotes doubled
    buffer.write("\ufeff")  # the BOM: Excel reads UTF-8 only with it
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def xlsx_cell(sheet, value) -> WriteOnlyCell:
    if isinstance(value, str):
        cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("", value))
        cell.data_type = "s"  # text stays text: openpyxl would take "=…" for a formula
        return cell
    if isinstance(value, datetime):
        value = value.replace(tzinfo=None)  # already in the team's zone; Excel has none
    return WriteOnlyCell(sheet, value=value)


def xlsx_stream(header: Sequence[str], rows: Iterable[Sequence], title: str = "Leads") -> Iterator[bytes]:
    """Rows go to a temporary file as they come; the finished file is read back in pieces."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31])
    sheet.append(list(header))
    for row in rows:
        sheet.append([xlsx_cell(sheet, value) for value in row])
    with tempfile.TemporaryFile() as file:
        book.save(file)
        file.seek(0)
        while chunk := file.read(CHUNK):
            yield chunk


FORMATS = {"csv": ("text/csv; charset=utf-8", csv_stream),
           "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", xlsx_stream)}
