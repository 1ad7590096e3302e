"""Notification addresses: set by the network admin for any organisation and by a focal point
for its own; every address and URL checked; the mail settings refused when half or unsafe."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import select

from server.audit.models import AuditEntry
from server.notifications.events import Event
from server.notifications.services import notify
from server.notifications.smtp import check_mail_settings, parse_smtp_url
from server.policy.schema import NetworkPolicy
from server.registry.addresses import AddressRefused, check_email, check_webhook_url
from server.settings import Settings
from tests.factories import AppClient, Network

pytestmark = pytest.mark.anyio


def path(org_id: str) -> str:
    return f"/v1/orgs/{org_id}/notification-addresses"


async def test_a_focal_point_sets_its_own_organisations_addresses(client: AppClient, network):
    response = await client.patch(
        path(network.org_a.id),
        headers=network.a_focal.headers,
        json={
            "emails": [
                {"address": "focal-point@org-a.example", "role": "focal_point"},
                {"address": "pseah@org-a.example"},
            ],
            "webhooks": [{"url": "https://hr.org-a.example/refcheck", "role": "hr_checker"}],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["short_name"] == "org-a"
    assert body["emails"][1] == {"address": "pseah@org-a.example", "role": None}
    # Sending only one list leaves the other as it is.
    response = await client.patch(
        path(network.org_a.id), headers=network.a_focal.headers, json={"webhooks": []}
    )
    assert response.json()["webhooks"] == [] and len(response.json()["emails"]) == 2
    org = await client.get(f"/v1/orgs/{network.org_a.id}", headers=network.a_hr.headers)
    assert [e["address"] for e in org.json()["notify_emails"]] == [
        "focal-point@org-a.example",
        "pseah@org-a.example",
    ]


async def test_the_admin_sets_any_organisations_addresses_and_the_change_is_audited(
    client: AppClient, network: Network, session
):
    response = await client.patch(
        path(network.org_b.id),
        headers=network.admin.headers,
        json={"emails": [{"address": "hr@org-b.example", "role": "hr_checker"}]},
    )
    assert response.status_code == 200, response.text
    session.expire_all()
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "org.notification_addresses")
    ).one()
    assert entry.object_id == network.org_b.id
    assert "hr@org-b.example" not in str(entry.details)


async def test_a_focal_point_cannot_set_another_organisations_addresses(client, network):
    response = await client.patch(
        path(network.org_b.id),
        headers=network.a_focal.headers,
        json={"emails": [{"address": "attacker@evil.example"}]},
    )
    assert response.status_code == 404


@pytest.mark.parametrize("actor", ["a_hr", "auditor"])
async def test_other_roles_cannot_set_addresses(client, network, actor):
    response = await client.patch(
        path(network.org_a.id),
        headers=network.actors[actor].headers,
        json={"emails": []},
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"emails": [{"address": "x@example.org\r\nBcc: all@example.org"}]},
        {"emails": [{"address": "Name <x@example.org>"}]},
        {"emails": [{"address": "x@example.org"}, {"address": "X@example.org"}]},
        {"emails": [{"address": "x@example.org", "role": "auditor"}]},
        {"emails": [{"address": f"a{i}@example.org"} for i in range(11)]},
        {"webhooks": [{"url": "http://hooks.example.org/x"}]},
        {"webhooks": [{"url": "ftp://hooks.example.org/x"}]},
        {"webhooks": [{"url": "https://user:pw@hooks.example.org/x"}]},
        {"webhooks": [{"url": "https://10.0.0.5/x"}]},
        {"webhooks": [{"url": "https://169.254.169.254/latest"}]},
        {"webhooks": [{"url": "https://hooks.example.org/x#frag"}]},
        {},
    ],
)
async def test_unsafe_or_malformed_addresses_are_refused(client, network, body):
    response = await client.patch(
        path(network.org_a.id), headers=network.a_focal.headers, json=body
    )
    assert response.status_code == 422, response.text


def test_http_to_loopback_is_allowed_only_outside_production():
    assert check_webhook_url("http://127.0.0.1:8080/hook", environment="test")
    assert check_webhook_url("http://127.0.0.1:8080/hook", environment="development")
    with pytest.raises(AddressRefused):
        check_webhook_url("http://127.0.0.1:8080/hook", environment="production")
    with pytest.raises(AddressRefused):
        check_webhook_url("https://127.0.0.1/hook", environment="production")
    assert check_webhook_url("https://hooks.example.org/x?token=a=b", environment="production")


def test_plain_e_mail_addresses_only():
    assert check_email("focal-point@org-a.example")
    for bad in ("no-at-sign", "a@b", "a b@example.org", "a@example.org,b@example.org"):
        with pytest.raises(AddressRefused):
            check_email(bad)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.org", ("mail.example.org", 25, "none", None)),
        ("smtp://127.0.0.1:2525", ("127.0.0.1", 2525, "none", None)),
        (
            "smtp+starttls://u%40x:p%3Aw@mail.example.org",
            ("mail.example.org", 587, "starttls", "u@x"),
        ),
        ("smtps://user:pw@mail.example.org:465", ("mail.example.org", 465, "tls", "user")),
    ],
)
def test_the_three_smtp_url_forms_are_understood(url, expected):
    config = parse_smtp_url(url)
    assert (config.host, config.port, config.security, config.username) == expected
    assert "pw" not in repr(config) and "p:w" not in repr(config)


@pytest.mark.parametrize(
    "url",
    ["http://mail.example.org", "smtp://", "smtp://user@mail.example.org", "smtp://h/path"],
)
def test_a_malformed_smtp_url_is_refused_without_echoing_it(url):
    with pytest.raises(ValueError) as caught:
        parse_smtp_url(url)
    assert url not in str(caught.value)


def test_mail_settings_come_together_and_no_password_travels_without_tls_in_production():
    with pytest.raises(ValueError, match="together"):
        check_mail_settings("smtp://mail.example.org", "", environment="test")
    with pytest.raises(ValueError, match="together"):
        check_mail_settings("", "refcheck@network.example", environment="test")
    with pytest.raises(ValueError, match="TLS"):
        check_mail_settings(
            "smtp://u:secret@mail.example.org", "refcheck@network.example", environment="production"
        )
    with pytest.raises(ValueError, match="MAIL_FROM"):
        check_mail_settings("smtp://mail.example.org", "not an address", environment="test")
    check_mail_settings(
        "smtps://u:secret@mail.example.org",
        "refcheck <r@network.example>",
        environment="production",
    )


def test_settings_refuse_a_half_mail_configuration_and_hide_the_url(tmp_path):
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, smtp_url=SecretStr("smtp://mail.example.org"))
    settings = Settings(
        data_dir=tmp_path,
        smtp_url=SecretStr("smtps://u:topsecret@mail.example.org"),
        mail_from="r@network.example",
    )
    assert "topsecret" not in repr(settings)


def test_a_policy_whose_retry_maximum_is_below_its_base_is_refused(ctx):
    values = ctx.policy.model_dump()
    values.update(notification_retry_base_seconds=600, notification_retry_max_seconds=60)
    with pytest.raises(ValidationError, match="notification_retry_max_seconds"):
        NetworkPolicy.model_validate(values)


def test_notify_refuses_facts_its_event_does_not_take(ctx, session):
    with pytest.raises(ValueError, match="takes no fact"):
        notify(session, ctx, Event.KEY_ROTATED, facts={"applicant": "Siti"})
    with pytest.raises(ValueError, match="request="):
        notify(session, ctx, Event.DISCLOSURE_REQUESTED)
    with pytest.raises(ValueError, match="org_id="):
        notify(session, ctx, Event.MOU_EXPIRED)
