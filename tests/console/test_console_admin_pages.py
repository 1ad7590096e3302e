"""The secretariat's retention overview and key replacement in the console, over HTTP against a
real server: each refusal shown beside its field, and what the registry holds afterwards."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from client_sdk import Client
from client_sdk.keystore import Keystore
from client_sdk.pinning import org_key_fingerprint
from tests.console.conftest import (
    Console,
    ConsoleFactory,
    answered_requests,
    hidden,
    links,
    register_live_case,
)
from tests.sdk.live import LiveServer


def new_member(network: LiveServer, short_name: str) -> dict[str, str]:
    """A member organisation of its own, so replacing its keys touches no other test's."""
    keys = Keystore.generate().public_keys()
    with Client.from_credentials_file(network.credentials("admin")) as admin:
        org: dict[str, str] = admin.create_org(
            short_name=short_name,
            legal_name=f"{short_name} foundation",
            org_type="national_ngo",
            status="active",
            x25519_public_key=keys["x25519_public_key"],
            ed25519_public_key=keys["ed25519_public_key"],
        )
    return org


def org_record(network: LiveServer, org_id: str) -> dict[str, str]:
    with Client.from_credentials_file(network.credentials("admin")) as admin:
        return next(o for o in admin.list_orgs() if o["id"] == org_id)


def keys_link(console: Console, short_name: str) -> str:
    registry = console.get("/admin/orgs").text
    row = registry[registry.index(f">{short_name}<") :].split("</tr>")[0]
    return next(link for link in links(row, "/admin/orgs/") if link.endswith("/keys"))


def post_file(
    console: Console, path: str, data: dict[str, str], files: dict[str, tuple[str, bytes, str]]
) -> httpx.Response:
    return console.http.post(path, data={"csrf": console.csrf(), **data}, files=files)


# -- retention -------------------------------------------------------------------------------


def test_the_retention_overview_counts_live_cases_by_month_and_member(
    console_for: ConsoleFactory, network: LiveServer
):
    until = register_live_case(network, "Rina Kusuma", years=6, day=15)
    admin = console_for("admin")
    page = admin.get("/admin/retention", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert 'href="/admin/retention"' in page.text  # in the navigation
    table = page.text[page.text.index('<table id="retention">') :]
    members = re.findall(r'<th scope="col">([^<]+)</th>', table.split("</thead>")[0])
    column = members.index("org-a")
    month = until.strftime("%b %Y")
    row = table[table.index(month) :].split("</tr>")[0]
    cells = re.findall(r"<td>(?:<strong>)?(\d+)", row)
    assert int(cells[column - 1]) >= 1
    assert "<svg" in page.text and "Rina" not in page.text
    # In Indonesian, with the month's name in Indonesian.
    indonesian = admin.get("/admin/retention", headers={"Accept-Language": "id"})
    assert '<html lang="id">' in indonesian.text
    assert "Kasus aktif menurut bulan berakhirnya retensi" in indonesian.text
    # The auditor reads it too; an HR officer does not.
    assert console_for("auditor").get("/admin/retention").status_code == 200
    assert console_for("org-b-hr").get("/admin/retention").status_code == 403


# -- replacing a member's keys ---------------------------------------------------------------


def test_the_admin_replaces_a_members_keys_after_the_fingerprint_is_read_out(
    console_for: ConsoleFactory, network: LiveServer, tmp_path: Path
):
    org = new_member(network, "org-keys-http")
    console = console_for("admin")
    link = keys_link(console, "org-keys-http")
    page = console.get(link)
    old = org_key_fingerprint(
        bytes.fromhex(org["x25519_public_key"]), bytes.fromhex(org["ed25519_public_key"])
    )
    assert old in page.text

    # Pasted keys that are not keys: refused beside their field, nothing changed.
    bad = console.post(link, {"step": "preview", "x25519_public_key": "abc"})
    assert bad.status_code == 422
    assert re.search(r'id="f-x25519_public_key"[^>]*aria-invalid="true"', bad.text)
    assert 'id="e-x25519_public_key"' in bad.text and 'id="e-ed25519_public_key"' in bad.text

    # A keystore holding its private keys in the clear is refused, beside the file field.
    new = Keystore.generate()
    clear = tmp_path / "clear.json"
    new.save(clear, passphrase=None)
    leaked = post_file(
        console,
        link,
        {"step": "preview"},
        {"public_file": ("keys.json", clear.read_bytes(), "application/json")},
    )
    assert leaked.status_code == 422 and 'id="e-public_file"' in leaked.text
    assert new.public_keys()["x25519_public_key"] not in leaked.text

    # `refcheck keys show --json` output: the new fingerprint is shown for read-out.
    public = new.public_keys()
    shown = {"keystore": "org-c-keys.json", **public}
    preview = post_file(
        console,
        link,
        {"step": "preview"},
        {"public_file": ("public.json", json.dumps(shown).encode(), "application/json")},
    )
    assert preview.status_code == 200
    fingerprint = org_key_fingerprint(
        bytes.fromhex(public["x25519_public_key"]), bytes.fromhex(public["ed25519_public_key"])
    )
    assert re.search(rf'id="new-fingerprint">{fingerprint}<', preview.text)
    confirm = dict(
        zip(
            ("step", "fingerprint", "x25519_public_key", "ed25519_public_key"),
            (
                hidden(preview.text, "step")[0],
                hidden(preview.text, "fingerprint")[0],
                hidden(preview.text, "x25519_public_key")[0],
                hidden(preview.text, "ed25519_public_key")[0],
            ),
            strict=True,
        )
    )
    # Not confirmed as read out: refused beside the box, the registry unchanged.
    unconfirmed = console.post(link, confirm)
    assert unconfirmed.status_code == 422 and 'id="e-read_out"' in unconfirmed.text
    assert org_record(network, org["id"])["x25519_public_key"] == org["x25519_public_key"]
    # Keys swapped after the fingerprint was shown: refused.
    swapped = console.post(
        link,
        {
            **confirm,
            "read_out": "1",
            "x25519_public_key": Keystore.generate().public_keys()["x25519_public_key"],
        },
    )
    assert swapped.status_code == 422
    assert org_record(network, org["id"])["x25519_public_key"] == org["x25519_public_key"]

    done = console.post(link, {**confirm, "read_out": "1"})
    assert done.status_code == 200 and str(done.url).endswith("/admin/orgs?done=keys")
    record = org_record(network, org["id"])
    assert record["x25519_public_key"] == public["x25519_public_key"]
    assert record["ed25519_public_key"] == public["ed25519_public_key"]
    # The same keys again: nothing would change, so refused.
    again = console.post(link, {"step": "preview", **{k: public[k] for k in confirm if "key" in k}})
    assert again.status_code == 422 and 'id="e-x25519_public_key"' in again.text
    assert "sudah kunci yang tercatat" in again.text  # the console's default language


# -- answer times on the statistics page -------------------------------------------------------


def answer_times(network: LiveServer, year: str) -> dict[str, Any]:
    with Client.from_credentials_file(network.credentials("admin")) as admin:
        response = admin.request("GET", "/v1/stats/answer-times", params={"year": year})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def table_of(html: str) -> dict[str, list[int]]:
    """The answer-times table's rows: the month's words -> its counts, the total last."""
    table = html[html.index('<table id="answer-times">') :].split("</table>")[0]
    body = table.split("<tbody>")[1].split("</tbody>")[0]
    return {
        re.findall(r'<th scope="row">([^<]+)</th>', row)[0]: [
            int(n) for n in re.findall(r"<td>(?:<strong>)?(\d+)", row)
        ]
        for row in body.split("</tr>")
        if "<th" in row
    }


def test_the_statistics_page_shows_answer_times_against_the_deadline(
    console_for: ConsoleFactory, network: LiveServer
):
    person = {"full_name": "Dewi Lestari", "date_of_birth": "1990-07-07", "nationality": "ID"}
    year = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=36)).strftime("%Y")
    before = answer_times(network, year)
    made = answered_requests(network, person)
    after = answer_times(network, year)
    # What the server counts went up by exactly the three requests (those due in `year`).
    for month_before, month_after in zip(before["months"], after["months"], strict=True):
        added = Counter(r.bucket for r in made if r.due_month == month_after["month"])
        for bucket in after["buckets"]:
            assert month_after["counts"][bucket] - month_before["counts"][bucket] == added[bucket]
    assert sum(1 for r in made if r.due_month.startswith(year)) >= 2

    admin = console_for("admin")
    page = admin.get(f"/admin/stats?year={year}", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert "Disclosure answer times against the deadline" in page.text
    assert "Answered 1 to 3 days late" in page.text
    expected = {
        dt.date.fromisoformat(m["month"] + "-01").strftime("%b %Y"): [
            *(m["counts"][b] for b in after["buckets"]),
            sum(m["counts"].values()),
        ]
        for m in after["months"]
        if sum(m["counts"].values())
    }
    assert table_of(page.text) == expected
    footer = page.text[page.text.index('<table id="answer-times">') :].split("<tfoot>")[1]
    totals = [int(n) for n in re.findall(r"<td>(?:<strong>)?(\d+)", footer.split("</tfoot>")[0])]
    everything = after["totals"]
    assert totals == [*(everything[b] for b in after["buckets"]), sum(everything.values())]
    chart = page.text.split('aria-label="Disclosure answer times against the deadline"')[1]
    assert "Answered 1 to 3 days late: " + str(after["totals"]["late_1_to_3"]) in chart
    assert "Dewi" not in page.text
    # In Indonesian.
    indonesian = admin.get(f"/admin/stats?year={year}", headers={"Accept-Language": "id"})
    assert "Waktu jawaban pengungkapan dibandingkan tenggat" in indonesian.text
    assert "Dijawab terlambat 1 sampai 3 hari" in indonesian.text
    # The auditor reads it too; an HR officer does not, nor the server's answer times.
    assert console_for("auditor").get(f"/admin/stats?year={year}").status_code == 200
    assert console_for("org-b-hr").get("/admin/stats").status_code == 403
    with Client.from_credentials_file(network.credentials("org-b-hr")) as hr:
        assert hr.request("GET", "/v1/stats/answer-times").status_code == 403
