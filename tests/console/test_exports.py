"""Downloads of the leads list: CSV that Excel opens safely, XLSX that reads back, both with
the list's filters and a manager's own leads only."""
from __future__ import annotations

import csv
import io

from openpyxl import load_workbook

from hub.reports.export import csv_stream, neutralised
from hub.reports.leads import HEADER

EVIL = '=HYPERLINK("http://evil.example","click")'


def read_csv(body: bytes) -> list[dict]:
    assert body.startswith("\ufeff".encode())  # the BOM Excel needs to read UTF-8
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def test_the_csv_has_the_columns_and_neutralises_formulas(console, make_lead):
    make_lead(EVIL, "+7 916 123-45-67", utm_source="yandex", message='said "hi",\nthen left')
    make_lead("Пётр", "+7 916 765-43-21", utm_source="google")
    response = console("oleg").get("/console/leads.csv?utm_source=yandex")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert 'filename="leads-2026-12-01.csv"' in response.headers["Content-Disposition"]
    [row] = read_csv(response.data)
    assert list(row) == list(HEADER)
    assert row["name"] == "'" + EVIL and row["phone"] == "+79161234567"
    assert row["message"] == 'said "hi",\nthen left' and row["utm_source"] == "yandex"
    assert b'"said ""hi"",\nthen left"' in response.data and b"\r\n" in response.data  # RFC 4180


def test_cells_that_start_a_formula_become_text():
    assert [neutralised(v) for v in ("=1+2", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "+79161234567", "Ivan")] == [
        "'=1+2", "'+1", "'-1", "'@SUM(A1)", "'\t=1", "'\r=1", "+79161234567", "Ivan"]
    body = b"".join(csv_stream(["n"], ([str(i)] for i in range(20000))))
    assert body.count(b"\r\n") == 20001  # streamed in pieces, nothing lost between them


def test_the_xlsx_reads_back_with_openpyxl(console, make_lead):
    number = make_lead(EVIL, "+7 916 123-45-67", utm_source="yandex")
    response = console("oleg").get("/console/leads.xlsx")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.data)).active
    header, *rows = list(sheet.iter_rows(values_only=True))
    assert header == HEADER and len(rows) == 1
    row = dict(zip(header, rows[0], strict=True))
    assert (row["number"], row["name"], row["utm_source"]) == (number, EVIL, "yandex")  # text, not a formula
    assert row["created_at"].isoformat() == "2026-12-01T11:00:00"  # the team's time zone


def test_a_manager_downloads_only_their_own_leads(console, make_lead, hub):
    numbers = [make_lead(f"Client {i}", f"+7916222000{i}") for i in range(4)]
    mine = read_csv(console("anna").get("/console/leads.csv").data)
    everyone = read_csv(console("vera").get("/console/leads.csv").data)
    assert {int(row["number"]) for row in everyone} == set(numbers)
    assert {row["assignee"] for row in mine} == {"anna"} and 0 < len(mine) < len(numbers)
    assert console("vera").get("/console/leads.pdf").status_code == 404
