"""The sync `Client` against a real uvicorn server on 127.0.0.1, set up by `refcheck-server
init --demo` in its own data directory: the credentials files it writes work as they are, and
the network signing key they name is the one the server shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from client_sdk import (
    CaseRegistration,
    CheckStatus,
    Client,
    ConsentExhausted,
    Credentials,
    KeyChanged,
)
from tests.sdk.live import LiveServer, running_server
from tests.server.blindmatch.people import OTHER, REGISTERED, SPELLING_VARIANTS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_server(tmp_path_factory.mktemp("live-sdk")) as server:
        yield server


def test_sync_client_runs_the_whole_path_against_a_real_server(
    live: LiveServer, tmp_path: Path
) -> None:
    pins = tmp_path / "pins.json"
    today = date.today()
    with Client.from_credentials_file(live.credentials("org-a-focal"), pin_file=pins) as focal:
        registration = focal.register_case(
            REGISTERED,
            CaseRegistration(
                category="sexual_exploitation",
                finding_date=today - timedelta(days=30),
                sanction="contract_termination",
                legal_basis="legitimate_interests",
                retention_until=today + timedelta(days=6 * 365),
                mou_reference="MoU-2026-01",
                subject_notified_on=today - timedelta(days=20),
                child_victim=True,
            ),
        )
        case_id = registration.case_id
        assert focal.get_case(case_id).child_victim is True
        assert [c.status for c in focal.verify_live([registration])] == ["present"]

    with Client.from_credentials_file(live.credentials("org-b-hr"), pin_file=pins) as hr:
        people = [SPELLING_VARIANTS[3], OTHER, REGISTERED]
        consents = [
            hr.record_consent(
                applicant_ref=f"LIVE-{i}",
                purpose="recruitment",
                position_ref="POS-9",
                form_sha256="cd" * 32,
                self_declared_finding=False,
            )
            for i in range(len(people))
        ]
        # Several checks in flight at once, over real sockets.
        results = hr.check_many(people, consents)
        assert [r.status for r in results] == [
            CheckStatus.MATCH,
            CheckStatus.NO_MATCH,
            CheckStatus.MATCH,
        ]
        assert {m.case_id for m in results[0].matches} == {case_id}
        with pytest.raises(ConsentExhausted):
            hr.check_applicant(OTHER, consents[1])

    # Both clients pinned the signing key their credentials name, with its announcements.
    document = json.loads(pins.read_text())
    (network,) = document["network"].values()
    named = Credentials.load(live.credentials("org-b-hr"))
    assert network["network_id"] == named.network_id and network["oprf_keys"]
    # Credentials naming another signing key: refused before anything else is asked.
    other = Credentials.from_dict(
        {
            **json.loads(live.credentials("org-b-hr").read_text()),
            "network_signing_key_sha256": "ab" * 32,
        }
    )
    with Client(other, pin_file=pins) as hr:
        with pytest.raises(KeyChanged, match="credentials file"):
            hr.oprf_key()
