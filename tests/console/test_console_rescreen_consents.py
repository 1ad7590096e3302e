"""Re-screening with consents recorded in bulk in the console, over HTTP against a real server:
a form hash shared by rows refused unless "same form for all" is chosen, the lookup codes
offered as a download only, and the consents the server holds afterwards."""

from __future__ import annotations

import csv
import hashlib
import io
import time

import httpx

from client_sdk import Client
from tests.console.conftest import Console, ConsoleFactory
from tests.sdk.live import LiveServer


def post_file(
    console: Console, path: str, data: dict[str, str], files: dict[str, tuple[str, bytes, str]]
) -> httpx.Response:
    return console.http.post(path, data={"csrf": console.csrf(), **data}, files=files)


# -- re-screening with consents recorded -----------------------------------------------------


def staff_csv(*rows: str, header: str = "") -> bytes:
    head = (
        header or "staff_ref;full_name;date_of_birth;nationality;form_sha256;self_declared_finding"
    )
    return ("\r\n".join([head, *rows]) + "\r\n").encode("utf-8")


def rescreening_consents(network: LiveServer) -> int:
    with Client.from_credentials_file(network.credentials("admin")) as admin:
        figures = admin.stats()
    # An organisation without any counted event this year is not listed: 0.
    org_b = [o for o in figures["organisations"] if o["short_name"] == "org-b"]
    return int(org_b[0]["totals"]["consents_rescreening"]) if org_b else 0


def run_job(console: Console, response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    job = response.url.path
    assert job.startswith("/rescreen/")
    for _ in range(150):
        if console.get(job + "/progress").json()["finished"]:
            return job
        time.sleep(0.2)
    raise AssertionError("the re-screening did not finish")


def test_hr_records_consents_in_bulk_and_downloads_the_lookup_codes(
    console_for: ConsoleFactory, network: LiveServer
):
    hr = console_for("org-b-hr")
    a, b = hashlib.sha256(b"form of Ayu").hexdigest(), hashlib.sha256(b"form of Bayu").hexdigest()

    # Two rows with one form hash, without "same form for all": refused before anything.
    before = rescreening_consents(network)
    shared = post_file(
        hr,
        "/rescreen",
        {"record_consents": "1"},
        {
            "staff_list": (
                "staff.csv",
                staff_csv(
                    f"B-1;Ayu Lestari;1991-04-04;ID;{a};no", f"B-2;Bayu Putra;1993-06-06;ID;{a};no"
                ),
                "text/csv",
            )
        },
    )
    assert shared.status_code == 422 and 'id="e-staff_list"' in shared.text
    assert "form_sha256" in shared.text
    # One hash typed for all rows without choosing "same form for all": refused beside it.
    typed = post_file(
        hr,
        "/rescreen",
        {"record_consents": "1", "form_sha256": a},
        {"staff_list": ("staff.csv", staff_csv("B-1;Ayu Lestari;1991-04-04;ID;;no"), "text/csv")},
    )
    assert typed.status_code == 422 and 'id="e-form_sha256"' in typed.text
    assert rescreening_consents(network) == before

    # Each row its own form: two consents recorded, their codes in the download only.
    started = post_file(
        hr,
        "/rescreen",
        {"record_consents": "1"},
        {
            "staff_list": (
                "staff.csv",
                staff_csv(
                    f"B-1;Ayu Lestari;1991-04-04;ID;{a};no",
                    f"B-2;Bayu Putra;1993-06-06;ID;{b};tidak",
                    "B-3;Citra Dewi;1994-07-07;ID;;no",
                ),
                "text/csv",
            )
        },
    )
    job = run_job(hr, started)
    page = hr.get(job)
    assert "lookup-codes.csv" in page.text
    codes = list(
        csv.reader(
            io.StringIO(hr.get(job + "/lookup-codes.csv").content.decode("utf-8-sig")),
            delimiter=";",
        )
    )
    assert codes[0] == ["staff_ref", "lookup_code", "consent_id"]
    assert sorted(r[0] for r in codes[1:]) == ["B-1", "B-2"]
    assert all(len(r[1]) >= 8 for r in codes[1:])
    assert rescreening_consents(network) == before + 2
    results = hr.get(job + "/results.csv").content.decode("utf-8-sig").splitlines()
    status = {r.split(";")[1]: r.split(";")[2] for r in results[1:]}
    assert status["B-1"] in ("match", "no_match") and status["B-2"] in ("match", "no_match")
    assert status["B-3"] == "invalid"  # no form hash of its own, and no "same form for all"
    for _, code, _ in codes[1:]:
        assert code not in page.text
        assert all(code not in url for url in hr.visited)

    # "Same form for all" with the one signed form uploaded: its hash covers every row.
    common = b"%PDF-1.4 one declaration signed by every staff member"
    together = post_file(
        hr,
        "/rescreen",
        {"record_consents": "1", "same_form_for_all": "1"},
        {
            "staff_list": (
                "staff.csv",
                staff_csv("C-1;Dian Sari;1990-08-08;ID;;no", "C-2;Eko Prasetyo;1989-09-09;ID;;no"),
                "text/csv",
            ),
            "common_form": ("declaration.pdf", common, "application/pdf"),
        },
    )
    job = run_job(hr, together)
    lines = hr.get(job + "/lookup-codes.csv").content.decode("utf-8-sig").splitlines()
    assert len(lines) == 3
    assert rescreening_consents(network) == before + 4
