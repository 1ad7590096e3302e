"""The console in a real browser: Debian's Chromium driven by Playwright, against a real
server. Marked `browser`; skipped with a plain message when Chromium is absent, unless
REFCHECK_REQUIRE_BROWSER=1 (CI), which makes its absence a failure.

Screenshots of the main pages go to $REFCHECK_SCREENSHOTS when it is set (the README's are
made with `REFCHECK_SCREENSHOTS=docs/screenshots pytest -m browser tests/console`), else to a
temporary folder, so a test run leaves the checkout as it was."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from client_sdk import Client
from tests.console.conftest import (
    Console,
    ConsoleFactory,
    answered_requests,
    register_live_case,
)
from tests.sdk.live import LiveServer

pytestmark = pytest.mark.browser

SHOTS = Path(
    os.environ.get("REFCHECK_SCREENSHOTS")
    or Path(tempfile.gettempdir()) / "refcheck-console-screenshots"
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PERSON = {
    "full_name": "Budi Santoso",
    "date_of_birth": "1985-05-05",
    "national_id": "3174050505850002",
    "nationality": "ID",
}
TODAY = dt.date.today()


def chromium_or_skip(executable: str | None, env: Mapping[str, str]) -> str:
    """Chromium's path; without it the browser tests skip with a plain message, or fail when
    REFCHECK_REQUIRE_BROWSER=1 (CI must run them)."""
    if executable is None:
        message = "Chromium is not installed (apt-get install -y chromium)"
        if env.get("REFCHECK_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{message} and REFCHECK_REQUIRE_BROWSER=1: the browser tests must run")
        pytest.skip(f"{message}: the console's browser tests are skipped")
    return executable


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = chromium_or_skip(shutil.which("chromium"), os.environ)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("REFCHECK_REQUIRE_BROWSER") == "1":
            pytest.fail("playwright is not installed and REFCHECK_REQUIRE_BROWSER=1")
        pytest.skip("playwright is not installed: the console's browser tests are skipped")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Tab:
    """One browser context (its own cookies) on one console, recording every request."""

    def __init__(self, browser, console: Console, locale: str = "en-GB", width: int = 1280):
        self.console = console
        self.context = browser.new_context(viewport={"width": width, "height": 800}, locale=locale)
        self.requests: list[str] = []
        self.page = self.context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.set_default_timeout(30_000)

    def go(self, path: str) -> None:
        self.page.goto(self.console.base_url + path)

    def unlock(self) -> None:
        self.go("/unlock")
        self.page.fill("#f-secret", self.console.settings.access_code)
        self.page.press("#f-secret", "Enter")
        self.page.wait_for_url(self.console.base_url + "/")

    def submit(self, action: str) -> None:
        self.page.click(f"form[action='{action}'] button[type=submit]")
        self.page.wait_for_load_state()

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()

    def hosts(self) -> set[str]:
        return {urlsplit(u).hostname or "" for u in self.requests}


@pytest.fixture
def tabs(browser) -> Iterator[list[Tab]]:
    opened: list[Tab] = []
    yield opened
    for tab in opened:
        tab.close()


def open_tab(tabs: list[Tab], browser, console: Console, **kw) -> Tab:
    tab = Tab(browser, console, **kw)
    tabs.append(tab)
    return tab


def test_the_whole_story_in_the_browser(
    browser, tabs: list[Tab], console_for: ConsoleFactory, tmp_path: Path
):
    focal = open_tab(tabs, browser, console_for("org-a-focal", unlock=False), locale="id-ID")
    hr = open_tab(tabs, browser, console_for("org-b-hr", unlock=False), locale="en-GB")
    focal.go("/")
    assert focal.page.url.endswith("/unlock")
    focal.shot("unlock")
    focal.unlock()
    focal.shot("home-focal-point")

    # The focal point of org-a registers a case (first with a mistake, shown beside its field).
    focal.go("/cases/new")
    finding = TODAY - dt.timedelta(days=40)
    for name, value in PERSON.items():
        focal.page.fill(f"#f-{name}", value)
    focal.page.select_option("#f-category", "sexual_harassment")
    focal.page.fill("#f-finding_date", finding.isoformat())
    focal.page.select_option("#f-sanction", "contract_termination")
    focal.page.select_option("#f-legal_basis", "legitimate_interests")
    focal.page.fill("#f-retention_until", finding.replace(year=finding.year + 30).isoformat())
    focal.page.fill("#f-mou_reference", "MoU-2026-01")
    focal.page.fill("#f-subject_notified_on", TODAY.isoformat())
    focal.page.fill("#f-label", "Kasus kantor Palu")
    focal.submit("/cases/new")
    assert focal.page.get_attribute("#f-retention_until", "aria-invalid") == "true"
    assert "7" in focal.page.inner_text("#e-retention_until")
    focal.shot("register-inline-error")
    focal.page.fill("#f-retention_until", finding.replace(year=finding.year + 5).isoformat())
    focal.submit("/cases/new")
    assert "/cases" in focal.page.url
    assert focal.page.input_value("input[name=label]") == "Kasus kantor Palu"
    focal.shot("cases")

    # HR of org-b records consent, uploading the signed form, and gets the lookup code.
    hr.unlock()
    hr.go("/consents/new")
    signed = tmp_path / "signed-form.pdf"
    signed.write_bytes(b"%PDF-1.4 signed declaration of Budi")
    hr.page.fill("#f-applicant_ref", "APP-2026-0077")
    hr.page.fill("#f-position_ref", "POS-3")
    hr.page.select_option("#f-purpose", "recruitment")
    hr.page.check("#sd-no")
    hr.page.set_input_files("#f-signed_form", str(signed))
    hr.submit("/consents/new")
    code = hr.page.inner_text("#lookup-code")
    assert len(code) >= 8
    hr.shot("consent-lookup-code")

    # ... checks the applicant, reads the result in plain words, requests disclosure.
    hr.page.click("a[href^='/check?c=']")
    for name, value in PERSON.items():
        hr.page.fill(f"#f-{name}", value)
    hr.submit("/check")
    assert "/results/" in hr.page.url
    assert "Match" in hr.page.inner_text("main")
    hr.shot("check-result")
    hr.page.click("form[action$='/request'] button[type=submit]")
    hr.page.wait_for_url("**/requests?asked=1")

    # The focal point answers from the inbox (the applicant's details opened and verified).
    focal.go("/inbox")
    focal.shot("inbox")
    focal.page.locator("a[href^='/inbox/']").last.click()  # by due date: the newest is last
    assert "Budi Santoso" in focal.page.inner_text("main")
    focal.page.check("#sp-confirmed")
    focal.page.select_option("#f-category", "sexual_harassment")
    focal.page.fill("#f-finding_date", finding.isoformat())
    focal.page.select_option("#f-sanction", "contract_termination")
    focal.page.fill("#f-contact", "focal-point@org-a.example")
    focal.shot("answer")
    focal.page.click("form[action$='/answer'] button[type=submit]")
    focal.page.wait_for_url("**/inbox?sent=1")

    # HR reads the verified answer and records the outcome.
    hr.go("/requests")
    hr.page.locator("a[href^='/requests/']").last.click()
    assert "focal-point@org-a.example" in hr.page.inner_text("main")
    hr.page.check("#o-not_hired_disclosure")
    hr.page.click("form[action$='/outcome'] button[type=submit]")
    hr.page.wait_for_url("**?done=outcome")
    assert hr.page.is_checked("#o-not_hired_disclosure")
    hr.shot("answer-read")

    # Phone width.
    phone = open_tab(tabs, browser, hr.console, width=390)
    phone.context.add_cookies(hr.context.cookies())
    phone.go("/")
    phone.shot("home-phone")

    # Every request any page made went to 127.0.0.1.
    for tab in (focal, hr, phone):
        assert tab.requests and tab.hosts() == {"127.0.0.1"}


def test_admin_pages_flag_an_expiring_mou(
    browser, tabs: list[Tab], console_for: ConsoleFactory, network: LiveServer
):
    with Client.from_credentials_file(network.credentials("admin")) as admin:
        orgs = {o["short_name"]: o for o in admin.list_orgs()}
        admin.update_org(
            orgs["org-b"]["id"], mou_expires_on=(TODAY + dt.timedelta(days=12)).isoformat()
        )
    tab = open_tab(tabs, browser, console_for("admin", unlock=False))
    tab.unlock()
    tab.go("/admin/orgs")
    org_b = tab.page.locator("tr", has=tab.page.locator("th", has_text="org-b"))
    org_a = tab.page.locator("tr", has=tab.page.locator("th", has_text="org-a"))
    assert "EXPIRES SOON" in org_b.inner_text()
    assert "EXPIRES SOON" not in org_a.inner_text()
    tab.shot("admin-mou-registry")
    tab.go("/admin/stats")
    # The four counter charts, and the answer times' once a request fell due this year.
    answer_times = tab.page.locator("#answer-times").count()
    assert tab.page.locator("svg.chart").count() == 4 + answer_times
    tab.shot("admin-statistics")
    tab.go("/admin/audit")
    tab.shot("admin-audit")
    tab.go("/admin/policy")
    assert tab.hosts() == {"127.0.0.1"}


def test_a_forged_form_is_refused(browser, tabs: list[Tab], console_for: ConsoleFactory):
    tab = open_tab(tabs, browser, console_for("org-a-focal", unlock=False))
    tab.unlock()
    tab.go("/cases/new")
    tab.page.eval_on_selector(
        "form[action='/cases/new'] input[name=csrf]", "e => e.value = 'forged'"
    )
    tab.page.click("form[action='/cases/new'] button[type=submit]")
    tab.page.wait_for_load_state()
    assert "Form refused" in tab.page.inner_text("main")
    # A page of another site posting to the console: the SameSite cookie is not sent.
    other = tab.context.new_page()
    other.set_content(
        f"<form method=post action='{tab.console.base_url}/lock'>"
        "<input name=csrf value=guess><button>go</button></form>"
    )
    with other.expect_navigation():
        other.click("button")
    assert "Form refused" in other.inner_text("main")
    tab.go("/cases")
    assert tab.page.url.endswith("/cases")  # still unlocked: the forged lock did nothing


def test_the_page_locks_itself_after_the_idle_time(
    browser, tabs: list[Tab], console_for: ConsoleFactory
):
    console = console_for("org-a-focal", unlock=False, idle_seconds=2)
    tab = open_tab(tabs, browser, console)
    tab.unlock()
    tab.go("/cases")
    tab.page.wait_for_url("**/unlock?locked=1", timeout=15_000)
    console.clock.now += 3
    tab.go("/cases")
    assert "/unlock" in tab.page.url
    tab.shot("locked")


def test_the_language_switch(browser, tabs: list[Tab], console_for: ConsoleFactory):
    tab = open_tab(tabs, browser, console_for("org-b-hr", unlock=False), locale="id-ID")
    tab.unlock()
    tab.go("/check")
    assert tab.page.get_attribute("html", "lang") == "id"
    assert tab.page.inner_text("h1") == "Periksa pelamar"
    tab.page.select_option("#lang-select", "en")
    tab.page.click("form[action='/language'] button[type=submit]")
    tab.page.wait_for_load_state()
    assert tab.page.url.endswith("/check")
    assert tab.page.get_attribute("html", "lang") == "en"
    assert tab.page.inner_text("h1") == "Check an applicant"
    # Keyboard only: tab from the top reaches the skip link first.
    tab.page.keyboard.press("Tab")
    assert tab.page.evaluate("document.activeElement.className") == "skip"


def test_the_retention_overview_in_indonesian(
    browser, tabs: list[Tab], console_for: ConsoleFactory, network: LiveServer
):
    until = register_live_case(network, "Wulan Sari", years=4, day=10)
    tab = open_tab(tabs, browser, console_for("admin", unlock=False), locale="id-ID")
    tab.unlock()
    tab.page.click("nav a[href='/admin/retention']")
    tab.page.wait_for_url("**/admin/retention")
    assert tab.page.get_attribute("html", "lang") == "id"
    assert tab.page.inner_text("h1") == "Kasus aktif menurut bulan berakhirnya retensi"
    headers = tab.page.locator("#retention thead th").all_inner_texts()
    assert "org-a" in headers and headers[-1] == "Semua anggota"
    row = tab.page.locator("#retention tbody tr", has_text=i18n_month(until, "id"))
    cells = row.locator("td").all_inner_texts()
    assert int(cells[headers.index("org-a") - 1]) >= 1
    assert tab.page.locator("svg.chart").count() == 1
    tab.shot("admin-retention")
    assert tab.hosts() == {"127.0.0.1"}


def test_the_admin_reads_answer_times_against_the_deadline(
    browser, tabs: list[Tab], console_for: ConsoleFactory, network: LiveServer
):
    person = {"full_name": "Rahmat Hidayat", "date_of_birth": "1983-11-11", "nationality": "ID"}
    made = answered_requests(network, person)
    year = made[1].due_month[:4]  # answered late, due 36 hours ago
    with Client.from_credentials_file(network.credentials("admin")) as admin:
        data = admin.request("GET", "/v1/stats/answer-times", params={"year": year}).json()
    assert data["totals"]["late_1_to_3"] >= 1 and data["totals"]["open_overdue"] >= 1

    tab = open_tab(tabs, browser, console_for("admin", unlock=False))
    tab.unlock()
    tab.page.click("nav a[href='/admin/stats']")
    tab.page.wait_for_url("**/admin/stats")
    tab.go(f"/admin/stats?year={year}")
    section = tab.page.locator("section[aria-labelledby='answer-times-title']")
    assert section.locator("h2").inner_text() == "Disclosure answer times against the deadline"
    assert "Counts only" in section.locator("p").first.inner_text()
    chart = section.locator("svg[aria-label='Disclosure answer times against the deadline']")
    # One bar per bucket, each titled with its words and the server's figure for the year.
    bars = chart.locator("rect > title").all_text_contents()
    labels = {
        "early_7_plus": "Answered 7 or more days before the deadline",
        "early_3_to_6": "Answered 3 to 6 days before the deadline",
        "early_0_to_2": "Answered 0 to 2 days before the deadline",
        "late_1_to_3": "Answered 1 to 3 days late",
        "late_4_plus": "Answered 4 or more days late",
        "open_overdue": "Not answered yet, past the deadline",
        "expired": "Expired without an answer",
    }
    assert data["buckets"] == list(labels) and len(bars) == 7
    for bucket, words in labels.items():
        assert f"{words}: {data['totals'][bucket]}" in bars
    # The table says the same by month: the month the late answer fell due.
    headers = section.locator("#answer-times thead th").all_inner_texts()
    month = next(m for m in data["months"] if m["month"] == made[1].due_month)
    row = section.locator("#answer-times tbody tr", has_text=i18n_month_of(made[1].due_month))
    cells = [int(c) for c in row.locator("td").all_inner_texts()]
    assert cells == [*(month["counts"][b] for b in data["buckets"]), sum(month["counts"].values())]
    assert headers == ["Month due", *labels.values(), "All requests"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    section.screenshot(path=str(SHOTS / "admin-answer-times.png"))
    assert "Rahmat" not in tab.page.content()
    assert tab.hosts() == {"127.0.0.1"}


def i18n_month_of(month: str) -> str:
    return i18n_month(dt.date.fromisoformat(f"{month}-01"), "en")


def i18n_month(day: dt.date, lang: str) -> str:
    from client_sdk.console import i18n

    i18n.use_language(lang)
    return i18n.fmt_month(day.strftime("%Y-%m"))


def test_the_admin_replaces_a_members_keys_in_the_browser(
    browser, tabs: list[Tab], console_for: ConsoleFactory, network: LiveServer, tmp_path: Path
):
    import json

    from client_sdk.keystore import Keystore
    from client_sdk.pinning import org_key_fingerprint

    old = Keystore.generate().public_keys()
    with Client.from_credentials_file(network.credentials("admin")) as admin:
        org = admin.create_org(
            short_name="org-keys-browser",
            legal_name="Yayasan Kunci Baru",
            org_type="national_ngo",
            status="active",
            x25519_public_key=old["x25519_public_key"],
            ed25519_public_key=old["ed25519_public_key"],
        )
    tab = open_tab(tabs, browser, console_for("admin", unlock=False))
    tab.unlock()
    tab.go("/admin/orgs")
    row = tab.page.locator("tr", has=tab.page.locator("th", has_text="org-keys-browser"))
    row.locator("a[href$='/keys']").click()
    tab.page.wait_for_load_state()
    keys_path = urlsplit(tab.page.url).path
    # A key cut short when pasting: shown beside its field.
    tab.page.fill("#f-x25519_public_key", old["x25519_public_key"][:40])
    tab.submit(keys_path)
    assert tab.page.get_attribute("#f-x25519_public_key", "aria-invalid") == "true"
    assert "64" in tab.page.inner_text("#e-x25519_public_key")
    tab.shot("admin-keys-inline-error")
    # The member's public-key file (refcheck keys show --json): the new fingerprint shows.
    new = Keystore.generate().public_keys()
    public_file = tmp_path / "org-keys-browser.public.json"
    public_file.write_text(json.dumps({"keystore": "keys.json", **new}))
    tab.page.fill("#f-x25519_public_key", "")
    tab.page.fill("#f-ed25519_public_key", "")
    tab.page.set_input_files("#f-public_file", str(public_file))
    tab.submit(keys_path)
    fingerprint = org_key_fingerprint(
        bytes.fromhex(new["x25519_public_key"]), bytes.fromhex(new["ed25519_public_key"])
    )
    assert tab.page.inner_text("#new-fingerprint") == fingerprint
    tab.shot("admin-keys-fingerprint")
    # Not confirmed as read out: refused beside the box.
    tab.submit(keys_path)
    assert tab.page.is_visible("#e-read_out")
    tab.page.check("#f-read_out")
    tab.submit(keys_path)
    tab.page.wait_for_url("**/admin/orgs?done=keys")
    with Client.from_credentials_file(network.credentials("admin")) as admin:
        record = next(o for o in admin.list_orgs() if o["id"] == org["id"])
    assert record["x25519_public_key"] == new["x25519_public_key"]
    assert tab.hosts() == {"127.0.0.1"}


def test_hr_records_consents_in_bulk_and_downloads_the_codes_in_the_browser(
    browser, tabs: list[Tab], console_for: ConsoleFactory, tmp_path: Path
):
    import hashlib

    staff = tmp_path / "staff.csv"
    staff.write_text(
        "staff_ref;full_name;date_of_birth;nationality;form_sha256;self_declared_finding\r\n"
        "R-1;Gita Purnama;1992-10-10;ID;;no\r\n"
        "R-2;Hadi Gunawan;1986-11-11;ID;;no\r\n",
        encoding="utf-8",
    )
    declaration = tmp_path / "declaration.pdf"
    declaration.write_bytes(b"%PDF-1.4 one declaration signed by the whole team")
    tab = open_tab(tabs, browser, console_for("org-b-hr", unlock=False))
    tab.unlock()
    tab.go("/rescreen")
    # One form hash for all without choosing "same form for all": refused beside the hash.
    tab.page.set_input_files("#f-staff_list", str(staff))
    tab.page.check("#f-record_consents")
    tab.page.fill("#f-form_sha256", hashlib.sha256(declaration.read_bytes()).hexdigest())
    tab.submit("/rescreen")
    assert tab.page.get_attribute("#f-form_sha256", "aria-invalid") == "true"
    assert tab.page.is_visible("#e-form_sha256")
    assert tab.page.is_checked("#f-record_consents")
    tab.shot("rescreen-inline-error")
    # The explicit choice, with the one signed document uploaded (hashed on this computer).
    tab.page.set_input_files("#f-staff_list", str(staff))
    tab.page.fill("#f-form_sha256", "")
    tab.page.check("#f-same_form_for_all")
    tab.page.set_input_files("#f-common_form", str(declaration))
    tab.submit("/rescreen")
    tab.page.wait_for_selector("#codes-download", timeout=60_000)
    tab.shot("rescreen-lookup-codes")
    with tab.page.expect_download() as download:
        tab.page.click("#codes-download")
    lines = Path(download.value.path()).read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "staff_ref;lookup_code;consent_id"
    codes = [line.split(";")[1] for line in lines[1:]]
    assert len(codes) == 2 and all(len(code) >= 8 for code in codes)
    page_text = tab.page.inner_text("main")
    for code in codes:
        assert code not in page_text
        assert all(code not in url for url in tab.requests)
    assert tab.hosts() == {"127.0.0.1"}
