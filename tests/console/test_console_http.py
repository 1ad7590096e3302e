"""The console over HTTP against a real server: the lock, CSRF, headers, inline errors, the
whole disclosure story, the admin's MoU registry and the language."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import time
from pathlib import Path

from client_sdk import Client
from tests.console.conftest import ConsoleFactory, hidden, links
from tests.sdk.live import LiveServer

PERSON = {
    "full_name": "Siti Rahmawati",
    "date_of_birth": "1990-01-31",
    "national_id": "3201234567890001",
    "nationality": "ID",
}
TODAY = dt.date.today()


def case_form(**overrides: str) -> dict[str, str]:
    finding = TODAY - dt.timedelta(days=30)
    return {
        **PERSON,
        "category": "sexual_abuse",
        "finding_date": finding.isoformat(),
        "sanction": "dismissal",
        "legal_basis": "legitimate_interests",
        "retention_until": finding.replace(year=finding.year + 5).isoformat(),
        "mou_reference": "MoU-2026-01",
        "subject_notified_on": TODAY.isoformat(),
        **overrides,
    }


def test_every_page_is_locked_until_the_access_code_is_given(console_for: ConsoleFactory):
    console = console_for("org-a-focal", unlock=False)
    assert str(console.get("/cases").url).endswith("/unlock")
    wrong = console.post("/unlock", {"secret": "00000000"})
    assert wrong.status_code == 401
    assert 'aria-invalid="true"' in wrong.text
    assert str(console.get("/cases").url).endswith("/unlock")
    console.unlock()
    assert console.get("/cases").status_code == 200


def test_a_form_without_the_csrf_token_or_from_another_origin_is_refused(
    console_for: ConsoleFactory,
):
    console = console_for("org-a-focal")
    no_token = console.http.post("/cases/new", data=case_form())
    assert no_token.status_code == 403
    wrong_token = console.http.post("/cases/new", data={**case_form(), "csrf": "x" * 43})
    assert wrong_token.status_code == 403
    cross = console.http.post(
        "/cases/new",
        data={**case_form(), "csrf": console.csrf()},
        headers={"Origin": "http://evil.example"},
    )
    assert cross.status_code == 403
    assert "Form refused" in cross.text or "Formulir ditolak" in cross.text
    # Locking is a form too.
    assert console.http.post("/lock", data={}).status_code == 403


def test_every_answer_carries_a_strict_content_security_policy(console_for: ConsoleFactory):
    console = console_for("org-a-focal")
    for path in ("/", "/unlock", "/cases/new", "/static/console.css"):
        headers = console.get(path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"
    page = console.get("/cases/new").text
    assert "<script>" not in page and " on" + "click=" not in page
    assert not re.search(r"<script(?![^>]*src=\"/static/)", page)


def test_a_host_header_naming_another_site_is_refused(console_for: ConsoleFactory):
    console = console_for("org-a-focal")
    assert console.http.get("/", headers={"Host": "evil.example"}).status_code == 400


def test_the_console_locks_after_the_idle_time(console_for: ConsoleFactory):
    console = console_for("org-a-focal", idle_seconds=60)
    assert console.get("/cases").status_code == 200
    console.clock.now += 59
    assert str(console.get("/cases").url).endswith("/cases")
    console.clock.now += 61
    locked = console.get("/cases")
    assert str(locked.url).endswith("/unlock")
    assert console.settings.credentials_path.name in str(console.settings.credentials_path)
    console.unlock()
    assert console.get("/cases").status_code == 200


def test_registration_errors_show_next_to_their_field(console_for: ConsoleFactory):
    console = console_for("org-a-focal")
    page = console.post(
        "/cases/new",
        case_form(
            sanction="flogging", retention_until=TODAY.replace(year=TODAY.year + 40).isoformat()
        ),
    )
    assert page.status_code == 422
    assert re.search(r'id="f-sanction"[^>]*aria-invalid="true"', page.text, re.S)
    assert 'id="e-sanction"' in page.text
    assert 'id="e-retention_until"' in page.text
    assert 'id="e-full_name"' not in page.text
    assert 'value="Siti Rahmawati"' in page.text  # what was typed stays
    # The choices come from the policy.
    for choice in ("sexual_exploitation", "contract_termination", "legal_obligation"):
        assert f'value="{choice}"' in page.text


def test_the_whole_story_over_http(console_for: ConsoleFactory, network: LiveServer):
    focal = console_for("org-a-focal")
    hr = console_for("org-b-hr")

    # Focal point of org-a registers a case with a private label.
    registered = focal.post("/cases/new", {**case_form(), "label": "Palu dismissal 2026"})
    assert registered.status_code == 200 and "/cases" in str(registered.url)
    assert "Palu dismissal 2026" in registered.text
    labels = focal.settings.credentials_path.with_name("org-a-focal.console-labels.json")
    assert labels.exists() and b"Palu" not in labels.read_bytes()
    assert oct(labels.stat().st_mode & 0o777) == "0o600"
    # The case's filter values are kept beside the pins, as `refcheck case register` keeps them,
    # and verify-live finds every registered case published.
    verified = focal.post("/cases/verify-live")
    assert verified.status_code == 200
    assert "MISSING" not in verified.text and "HILANG" not in verified.text
    assert "Published" in verified.text or "Dipublikasikan" in verified.text

    # HR of org-b records consent with the signed form, and gets the lookup code.
    form = b"%PDF-1.4 signed declaration"
    done = hr.http.post(
        "/consents/new",
        data={
            "csrf": hr.csrf(),
            "applicant_ref": "APP-2026-0042",
            "position_ref": "POS-17",
            "purpose": "recruitment",
            "self_declared_finding": "no",
        },
        files={"signed_form": ("form.pdf", form, "application/pdf")},
    )
    assert done.status_code == 200, done.text
    import hashlib

    assert hashlib.sha256(form).hexdigest() in done.text
    assert re.search(r'id="lookup-code">[A-Z0-9-]{8,}<', done.text)
    check_link = links(done.text, "/check?c=")[0]
    handle = check_link.split("=", 1)[1]

    # ... checks the applicant: a match, explained in plain words.
    result = hr.post("/check", {"c": handle, **PERSON})
    assert "/results/" in str(result.url)
    assert "Match" in result.text or "Cocok" in result.text
    assert "sealed on this computer" in result.text or "disegel" in result.text
    asked = hr.post(str(result.url.path) + "/request")
    assert "/requests" in str(asked.url)
    assert "org-a" in asked.text

    # Focal point answers from the inbox, which shows the applicant's details it was sent.
    inbox = focal.get("/inbox")
    open_link = links(inbox.text, "/inbox/")[-1]  # sorted by due date: the newest is last
    one = focal.get(open_link)
    assert "Siti Rahmawati" in one.text
    answered = focal.post(
        open_link + "/answer",
        {
            "same_person": "confirmed",
            "category": "sexual_abuse",
            "finding_date": (TODAY - dt.timedelta(days=30)).isoformat(),
            "sanction": "dismissal",
            "contact": "focal-point@org-a.example",
        },
    )
    assert answered.status_code == 200 and "/inbox" in str(answered.url)

    # HR reads the verified answer, records the outcome, exports the PDF.
    mine = hr.get("/requests")
    request_link = links(mine.text, "/requests/")[-1]
    read = hr.get(request_link)
    assert "focal-point@org-a.example" in read.text
    outcome = hr.post(request_link + "/outcome", {"outcome": "not_hired_disclosure"})
    assert outcome.status_code == 200
    assert 'value="not_hired_disclosure" checked' in outcome.text
    pdf = hr.get(request_link + "/answer.pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")

    # No identifier ever appeared in a URL the consoles served.
    for url in focal.visited + hr.visited:
        for value in PERSON.values():
            assert value not in url and value.replace(" ", "+") not in url


def test_expiring_mous_are_flagged_in_the_registry(
    console_for: ConsoleFactory, network: LiveServer
):
    with Client.from_credentials_file(network.credentials("admin")) as admin:
        orgs = {o["short_name"]: o for o in admin.list_orgs()}
        admin.update_org(
            orgs["org-b"]["id"],
            mou_expires_on=(TODAY + dt.timedelta(days=10)).isoformat(),
        )
    console = console_for("admin")
    page = console.get("/admin/orgs").text
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(
            r"<tr class=\"[^\"]*\">\s*<th scope=\"row\">([\w-]+)<.*?</tr>", page, re.S
        )
    }
    assert "EXPIRES SOON" in rows["org-b"] or "SEGERA BERAKHIR" in rows["org-b"]
    assert "EXPIRES SOON" not in rows["org-a"] and "SEGERA BERAKHIR" not in rows["org-a"]
    for path in ("/admin/policy", "/admin/stats", "/admin/audit", "/admin/overdue"):
        assert console.get(path).status_code == 200, path
    assert "<svg" in console.get("/admin/stats").text
    csv = console.get("/admin/stats.csv")
    assert csv.text.startswith("year,scope,org,recruitments")


def test_the_auditor_sees_audit_and_statistics_and_nothing_to_change(
    console_for: ConsoleFactory,
):
    console = console_for("auditor")
    assert console.get("/admin/audit").status_code == 200
    assert console.get("/admin/stats").status_code == 200
    assert console.get("/admin/orgs").status_code == 403
    assert console.post("/admin/orgs/suspended", {"h": "x"}).status_code == 403


def test_language_from_the_browser_then_from_the_switch(console_for: ConsoleFactory):
    console = console_for("org-a-focal")
    english = console.get("/cases/new", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in english.text and "Register a case" in english.text
    indonesian = console.get("/cases/new", headers={"Accept-Language": "id-ID,id;q=0.9,en;q=0.5"})
    assert '<html lang="id">' in indonesian.text and "Daftarkan kasus" in indonesian.text
    switched = console.post("/language", {"lang": "en", "back": "/cases/new"})
    assert '<html lang="en">' in switched.text
    assert str(switched.url).endswith("/cases/new")
    still = console.get("/", headers={"Accept-Language": "id"})
    assert '<html lang="en">' in still.text


def test_the_console_refuses_another_address_without_allow_remote(tmp_path):
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("refcheck")),
            "console",
            "--credentials",
            str(tmp_path / "c.json"),
            "--host",
            "0.0.0.0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--allow-remote" in out.stderr
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("refcheck")),
            "console",
            "--credentials",
            str(tmp_path / "c.json"),
            "--host",
            "0.0.0.0",
            "--allow-remote",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--tls-cert" in out.stderr


def test_the_base_cli_does_not_import_the_console_extra():
    code = (
        "import json, sys, client_sdk.cli; extra = ('starlette', 'uvicorn', 'babel'); "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in extra)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


_ = hidden


def test_rescreening_an_uploaded_staff_list_with_progress_and_results(
    console_for: ConsoleFactory, network: LiveServer
):
    with Client.from_credentials_file(network.credentials("org-b-hr")) as sdk:
        consent = sdk.record_consent(
            applicant_ref="STAFF-1",
            purpose="rescreening",
            position_ref="staff-rescreening",
            form_sha256="ab" * 32,
            self_declared_finding=False,
        )
    staff = (
        "staff_ref;full_name;date_of_birth;nationality;national_id;consent_id\r\n"
        f"STAFF-1;Siti Rahmawati;1990-01-31;ID;3201234567890001;{consent.id}\r\n"
        "STAFF-2;Andi Wijaya;1992-02-02;ID;;\r\n"
    ).encode("cp1252")
    hr = console_for("org-b-hr")
    started = hr.http.post(
        "/rescreen",
        data={"csrf": hr.csrf()},
        files={"staff_list": ("staff.csv", staff, "text/csv")},
    )
    assert started.status_code == 200 and "/rescreen/" in str(started.url)
    job = started.url.path
    for _ in range(100):
        progress = hr.get(job + "/progress").json()
        if progress["finished"]:
            break
        time.sleep(0.2)
    assert progress == {"done": 2, "total": 2, "finished": True}
    page = hr.get(job)
    assert "<progress" in page.text and "results.csv" in page.text
    results = hr.get(job + "/results.csv").content.decode("utf-8-sig").splitlines()
    assert (
        results[0]
        == "line;staff_ref;status;holder_orgs;entry_ids;consent_id;error;disclosure_requests"
    )
    rows = {r.split(";")[1]: r.split(";")[2] for r in results[1:]}
    # STAFF-1 was checked (a match once the story's case is registered, else no match); STAFF-2
    # has no consent, and the console records none in bulk.
    assert rows["STAFF-1"] in ("match", "no_match") and rows["STAFF-2"] == "invalid"


def test_an_unreadable_staff_list_is_refused_beside_the_upload(console_for: ConsoleFactory):
    hr = console_for("org-b-hr")
    refused = hr.http.post(
        "/rescreen",
        data={"csrf": hr.csrf()},
        files={"staff_list": ("staff.csv", b"name;birthday\r\nx;y\r\n", "text/csv")},
    )
    assert refused.status_code == 422
    assert 'id="e-staff_list"' in refused.text


def test_a_passphrase_protected_credentials_file_unlocks_with_its_passphrase(
    network: LiveServer, tmp_path
):
    import httpx

    from client_sdk import Credentials
    from client_sdk.console.app import ConsoleSettings
    from tests.console.conftest import serve_console

    sealed = tmp_path / "org-a-focal.json"
    Credentials.load(network.credentials("org-a-focal")).save(sealed, passphrase="kata sandi 7")
    settings = ConsoleSettings(credentials_path=sealed)
    with (
        serve_console(settings) as base_url,
        httpx.Client(base_url=base_url, follow_redirects=True, timeout=60) as http,
    ):
        page = http.get("/unlock")
        assert "Passphrase" in page.text or "Frasa sandi" in page.text
        csrf = http.cookies["rc_csrf"]
        # The start-up access code is not the passphrase.
        code = http.post("/unlock", data={"csrf": csrf, "secret": settings.access_code})
        assert code.status_code == 401
        wrong = http.post("/unlock", data={"csrf": csrf, "secret": "kata sandi 8"})
        assert wrong.status_code == 401
        right = http.post("/unlock", data={"csrf": csrf, "secret": "kata sandi 7"})
        assert right.status_code == 200 and str(right.url).endswith("/")
        assert http.get("/cases").status_code == 200
        http.post("/lock", data={"csrf": csrf})
        assert str(http.get("/cases").url).endswith("/unlock")


def test_the_admin_adds_and_deactivates_people_of_a_member(console_for: ConsoleFactory):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = (
        Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    )
    console = console_for("admin")
    registry = console.get("/admin/orgs").text
    people = next(link for link in links(registry, "/admin/orgs/") if link.endswith("/people"))
    refused = console.post(people, {"action": "add", "name": "Dewi", "auth_public_key": "zz"})
    assert refused.status_code == 422
    assert 'id="e-auth_public_key"' in refused.text and 'id="e-roles"' in refused.text
    added = console.post(
        people,
        {"action": "add", "name": "Dewi (HR)", "role_hr_checker": "1", "auth_public_key": key},
    )
    assert added.status_code == 200 and "Dewi (HR)" in added.text
    row = added.text[added.text.index("Dewi (HR)") :]
    p = hidden(row, "p")[0]
    gone = console.post(people, {"action": "deactivate", "p": p})
    assert gone.status_code == 200
    row = gone.text[gone.text.index("Dewi (HR)") :].split("</tr>")[0]
    assert "Deactivate" not in row and "Nonaktifkan" not in row
