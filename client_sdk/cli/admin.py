"""`refcheck admin`: the network secretariat onboards, suspends and lists members; members'
focal points set where their organisation's notifications go (`org update --notify-email`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from client_sdk._client import Client
from client_sdk.cli._common import emit, handled, state
from client_sdk.cli._http import call_json
from client_sdk.cli.i18n import _
from client_sdk.errors import CredentialsError, InvalidInput, PermissionDenied
from client_sdk.secretfile import load_json_secret

app = typer.Typer(help="Network secretariat: the MoU registry.")
org_app = typer.Typer(help="Member organisations.")
principal_app = typer.Typer(help="People and service accounts of an organisation.")
app.add_typer(org_app, name="org")
app.add_typer(principal_app, name="principal")


def public_keys_of(keystore: Path) -> dict[str, str]:
    """The public half of a keystore, read without its passphrase."""
    public = load_json_secret(keystore).get("public")
    if not isinstance(public, dict):
        raise CredentialsError(_("{keystore} is not a refcheck keystore").format(keystore=keystore))
    return {str(k): str(v) for k, v in public.items()}


def resolve_org(client: Client, org: str) -> dict[str, Any]:
    """An organisation by id or short name (the secretariat thinks in short names)."""
    for item in client.list_orgs():
        if org in (item.get("id"), item.get("short_name")):
            return item
    raise InvalidInput(_("no organisation with that id or short name"))


def _show_org(ctx: typer.Context, org: dict[str, Any], message: str) -> None:
    """`org` as JSON, or `message` (translated, with {name}, {id} and {status}) for people."""
    st = state(ctx)
    emit(
        st,
        org,
        lambda: st.console.print(
            message.format(name=org.get("short_name"), id=org.get("id"), status=org.get("status")),
            highlight=False,
        ),
    )


@org_app.command("add")
@handled
def org_add(
    ctx: typer.Context,
    short_name: Annotated[str, typer.Option(help="Short name, e.g. org-c.")],
    legal_name: Annotated[str, typer.Option(help="Registered legal name.")],
    org_type: Annotated[
        str,
        typer.Option(
            help="un_agency, red_cross_red_crescent, ingo, national_ngo, cso or government."
        ),
    ],
    country: Annotated[str, typer.Option(help="ISO country code.")] = "ID",
    membership: Annotated[str, typer.Option(help="member or observer.")] = "member",
    status: Annotated[str, typer.Option(help="pending or active.")] = "pending",
    keys: Annotated[
        Path | None,
        typer.Option(help="The member's keystore (only its public keys are read)."),
    ] = None,
    x25519_public_key: Annotated[str | None, typer.Option(help="Hex, if not --keys.")] = None,
    ed25519_public_key: Annotated[str | None, typer.Option(help="Hex, if not --keys.")] = None,
    mou_version: Annotated[str | None, typer.Option()] = None,
    mou_sha256: Annotated[str | None, typer.Option(help="SHA-256 of the signed MoU.")] = None,
    mou_signed_on: Annotated[str | None, typer.Option(help="YYYY-MM-DD.")] = None,
    mou_expires_on: Annotated[str | None, typer.Option(help="YYYY-MM-DD.")] = None,
    data_sharing_agreement: Annotated[bool, typer.Option(help="A DSA is signed.")] = False,
    legal_basis: Annotated[str | None, typer.Option(help="e.g. legitimate_interests.")] = None,
    may_register: Annotated[bool, typer.Option(help="The MoU permits registering.")] = False,
    may_check: Annotated[bool, typer.Option(help="The MoU permits checks.")] = False,
) -> None:
    """Add a member organisation to the registry."""
    st = state(ctx)
    fields: dict[str, Any] = {
        "short_name": short_name,
        "legal_name": legal_name,
        "org_type": org_type,
        "country": country,
        "membership": membership,
        "status": status,
        "data_sharing_agreement": data_sharing_agreement,
        "may_register": may_register,
        "may_check": may_check,
        "mou_version": mou_version,
        "mou_sha256": mou_sha256,
        "mou_signed_on": mou_signed_on,
        "mou_expires_on": mou_expires_on,
        "legal_basis": legal_basis,
        "x25519_public_key": x25519_public_key,
        "ed25519_public_key": ed25519_public_key,
    }
    if keys is not None:
        public = public_keys_of(keys)
        if "x25519_public_key" not in public:
            raise InvalidInput(_("that keystore has no organisation keys (made with --auth-only)"))
        fields["x25519_public_key"] = public["x25519_public_key"]
        fields["ed25519_public_key"] = public["ed25519_public_key"]
    org = st.client().create_org(**{k: v for k, v in fields.items() if v is not None})
    _show_org(ctx, org, _("Added {name} ({id}): status {status}"))


def _set_status(ctx: typer.Context, org: str, status: str, message: str) -> None:
    client = state(ctx).client()
    found = resolve_org(client, org)
    _show_org(ctx, client.update_org(str(found["id"]), status=status), message)


@org_app.command("suspend")
@handled
def org_suspend(
    ctx: typer.Context, org: Annotated[str, typer.Argument(help="Id or short name.")]
) -> None:
    """Suspend a member: its principals can no longer register or check."""
    _set_status(ctx, org, "suspended", _("Suspended {name} ({id}): status {status}"))


@org_app.command("activate")
@handled
def org_activate(
    ctx: typer.Context, org: Annotated[str, typer.Argument(help="Id or short name.")]
) -> None:
    """Activate a member (after its MoU and data-sharing agreement are on record)."""
    _set_status(ctx, org, "active", _("Activated {name} ({id}): status {status}"))


#: Roles an address may be for (`ROLE=ADDRESS`); with none, it gets all the organisation's.
NOTIFY_ROLES = ("focal_point", "hr_checker")


def parse_notify_target(value: str, key: str) -> dict[str, Any]:
    """`ADDRESS` or `ROLE=ADDRESS` (ROLE focal_point or hr_checker) as the API's entry, with
    `key` "address" (e-mail) or "url" (webhook). Only a known role before the first `=` counts
    as one, so a URL with `=` in its query string is taken whole."""
    role, sep, rest = value.partition("=")
    if sep and role in NOTIFY_ROLES:
        return {key: rest.strip(), "role": role}
    return {key: value.strip(), "role": None}


def resolve_own_or_any(client: Client, org: str) -> dict[str, Any]:
    """`resolve_org` for the network admin; a focal point (who may not list organisations)
    names its own organisation, by id or short name."""
    try:
        return resolve_org(client, org)
    except PermissionDenied:
        me = client.me()
        if org not in (me.get("org_id"), me.get("org_short_name")):
            raise InvalidInput(
                _("a focal point can update only its own organisation's addresses")
            ) from None
        return {"id": me.get("org_id"), "short_name": me.get("org_short_name")}


def _set_notification_addresses(
    client: Client, org_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    path = f"/v1/orgs/{quote(org_id, safe='')}/notification-addresses"
    payload = call_json(client, "PATCH", path, body)
    if not isinstance(payload, dict):
        raise InvalidInput(_("the server's answer was not the organisation's addresses"))
    return payload


@org_app.command("update")
@handled
def org_update(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(help="Id or short name.")],
    notify_email: Annotated[
        list[str] | None,
        typer.Option(
            help="Notification e-mail address, repeatable; replaces the list. ROLE=ADDRESS "
            "(focal_point= or hr_checker=) limits it to that role's notifications.",
        ),
    ] = None,
    webhook: Annotated[
        list[str] | None,
        typer.Option(
            help="Webhook URL (https), repeatable; replaces the list. ROLE=URL as above.",
        ),
    ] = None,
    clear_notify_emails: Annotated[
        bool, typer.Option("--clear-notify-emails", help="Remove every e-mail address.")
    ] = False,
    clear_webhooks: Annotated[
        bool, typer.Option("--clear-webhooks", help="Remove every webhook URL.")
    ] = False,
    legal_name: Annotated[str | None, typer.Option(help="Registered legal name.")] = None,
    mou_version: Annotated[str | None, typer.Option()] = None,
    mou_sha256: Annotated[str | None, typer.Option(help="SHA-256 of the signed MoU.")] = None,
    mou_signed_on: Annotated[str | None, typer.Option(help="YYYY-MM-DD.")] = None,
    mou_expires_on: Annotated[str | None, typer.Option(help="YYYY-MM-DD.")] = None,
    keys: Annotated[
        Path | None,
        typer.Option(help="The member's keystore: its public keys replace those on record."),
    ] = None,
) -> None:
    """Change an organisation: where its notifications go (the network admin for any
    organisation, a focal point for its own), and, for the network admin, its MoU record and
    public keys."""
    st = state(ctx)
    if notify_email and clear_notify_emails:
        raise InvalidInput(_("give --notify-email or --clear-notify-emails, not both"))
    if webhook and clear_webhooks:
        raise InvalidInput(_("give --webhook or --clear-webhooks, not both"))
    addresses: dict[str, Any] = {}
    if notify_email or clear_notify_emails:
        addresses["emails"] = [parse_notify_target(v, "address") for v in notify_email or []]
    if webhook or clear_webhooks:
        addresses["webhooks"] = [parse_notify_target(v, "url") for v in webhook or []]
    fields: dict[str, Any] = {
        k: v
        for k, v in {
            "legal_name": legal_name,
            "mou_version": mou_version,
            "mou_sha256": mou_sha256,
            "mou_signed_on": mou_signed_on,
            "mou_expires_on": mou_expires_on,
        }.items()
        if v is not None
    }
    if keys is not None:
        public = public_keys_of(keys)
        if "x25519_public_key" not in public:
            raise InvalidInput(_("that keystore has no organisation keys (made with --auth-only)"))
        fields["x25519_public_key"] = public["x25519_public_key"]
        fields["ed25519_public_key"] = public["ed25519_public_key"]
    if not addresses and not fields:
        raise InvalidInput(_("nothing to change: give at least one option"))
    client = st.client()
    found = resolve_own_or_any(client, org) if not fields else resolve_org(client, org)
    org_id = str(found["id"])
    result: dict[str, Any] = dict(found)
    if fields:
        result = client.update_org(org_id, **fields)
    if addresses:
        set_to = _set_notification_addresses(client, org_id, addresses)
        result = {**result, "notify_emails": set_to["emails"], "webhooks": set_to["webhooks"]}

    def human() -> None:
        st.console.print(
            _("Updated {name} ({id})").format(name=result.get("short_name"), id=org_id),
            highlight=False,
        )
        if addresses:
            for items, key, none, each in (
                (
                    result.get("notify_emails") or [],
                    "address",
                    _("  no e-mail notifications"),
                    _("  e-mail: {target} ({role})"),
                ),
                (
                    result.get("webhooks") or [],
                    "url",
                    _("  no webhook notifications"),
                    _("  webhook: {target} ({role})"),
                ),
            ):
                if not items:
                    st.console.print(none, highlight=False)
                for item in items:
                    role = item.get("role") or _("all notifications")
                    st.console.print(each.format(target=item.get(key), role=role), highlight=False)

    emit(st, result, human)


def mou_state(org: dict[str, Any], today: date) -> str:
    """`in_force`, `expired`, `no_expiry` (signed, no end date: to be warned about) or `none`."""
    expires = org.get("mou_expires_on")
    if expires:
        return "expired" if date.fromisoformat(str(expires)) < today else "in_force"
    if org.get("mou_signed_on") or org.get("mou_version") or org.get("mou_sha256"):
        return "no_expiry"
    return "none"


def mou_warnings(orgs: list[dict[str, Any]], _: Callable[[str], str]) -> list[str]:
    """Warnings of expired MoUs and of MoUs without an expiry date, through `_` (`str` for
    English: the messages are the catalog's, extracted from the `_(...)` calls here)."""
    expired = [str(o.get("short_name")) for o in orgs if o["mou_state"] == "expired"]
    open_ended = [str(o.get("short_name")) for o in orgs if o["mou_state"] == "no_expiry"]
    warnings = []
    if expired:
        warnings.append(
            _(
                "MoU expired: {orgs} (renew with `refcheck admin org update ORG "
                "--mou-signed-on DATE --mou-expires-on DATE`)"
            ).format(orgs=", ".join(expired))
        )
    if open_ended:
        warnings.append(
            _(
                "MoU without an expiry date: {orgs} (set one with "
                "`refcheck admin org update ORG --mou-expires-on DATE`)"
            ).format(orgs=", ".join(open_ended))
        )
    return warnings


@org_app.command("list")
@handled
def org_list(ctx: typer.Context) -> None:
    """All organisations with their status and MoU state; warns of expired MoUs and of MoUs
    without an expiry date (renew with `admin org update ORG --mou-expires-on DATE`)."""
    st = state(ctx)
    today = date.today()
    orgs = [{**o, "mou_state": mou_state(o, today)} for o in st.client().list_orgs()]
    # In English for --json (what scripts read), in the chosen language for people.
    warnings = mou_warnings(orgs, str)

    def shown_expiry(o: dict[str, Any]) -> str:
        if o["mou_state"] == "expired":
            return _("[bold red]EXPIRED {date}[/]").format(date=o.get("mou_expires_on"))
        if o["mou_state"] == "no_expiry":
            return _("[yellow]no expiry date[/]")
        return str(o.get("mou_expires_on") or "-")

    def human() -> None:
        table = Table(
            _("short name"),
            _("legal name"),
            _("type"),
            _("status"),
            _("MoU expires"),
            _("register/check"),
        )
        for o in orgs:
            table.add_row(
                str(o.get("short_name")),
                str(o.get("legal_name")),
                str(o.get("org_type")),
                str(o.get("status")),
                shown_expiry(o),
                f"{'R' if o.get('may_register') else '-'}/{'C' if o.get('may_check') else '-'}",
            )
        st.console.print(table)
        for warning in mou_warnings(orgs, _):
            st.errors.print(
                _("[bold yellow]warning:[/] {warning}").format(warning=warning), highlight=False
            )

    emit(st, {"items": orgs, "warnings": warnings}, human)


@principal_app.command("add")
@handled
def principal_add(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(help="Organisation id or short name.")],
    name: Annotated[str, typer.Option(help="Person's name or the service account's label.")],
    role: Annotated[
        list[str],
        typer.Option(help="focal_point, hr_checker, network_admin or auditor (repeatable)."),
    ],
    kind: Annotated[str, typer.Option(help="person or service.")] = "person",
    keys: Annotated[
        Path | None, typer.Option(help="The principal's keystore (public part is read).")
    ] = None,
    auth_public_key: Annotated[str | None, typer.Option(help="Hex, if not --keys.")] = None,
) -> None:
    """Register a principal by its public auth key; prints the client id for `refcheck login`."""
    st = state(ctx)
    if (keys is None) == (auth_public_key is None):
        raise InvalidInput(_("give exactly one of --keys and --auth-public-key"))
    key = public_keys_of(keys)["auth_public_key"] if keys is not None else auth_public_key or ""
    client = st.client()
    found = resolve_org(client, org)
    principal = client.add_principal(
        str(found["id"]), name=name, kind=kind, roles=role, auth_public_key=key
    )
    # What the new principal's `refcheck login` needs besides its own keystore: the server,
    # and the network and signing key fingerprint its credentials pin (the admin's own, which
    # the secretariat issued): without them its SDK refuses to send anything.
    own = client.credentials
    login_command = (
        f"refcheck login --keys KEYSTORE --client-id {principal.get('id')} "
        f"--server {client.base_url} --network-id {own.network_id} "
        f"--network-fingerprint {own.network_signing_key_sha256} --out credentials.json"
    )
    enrolment = {
        **principal,
        "server": client.base_url,
        "network_id": own.network_id,
        "network_signing_key_sha256": own.network_signing_key_sha256,
        "login_command": login_command,
    }
    emit(
        st,
        enrolment,
        lambda: st.console.print(
            _(
                "Added principal {name} - client id: [bold]{id}[/]\n"
                "Network {network}, signing key fingerprint (SHA-256):\n"
                "  {fingerprint}\n"
                "Hand them the client id and this fingerprint (read it out or send it apart from "
                "the client id). Next, on their machine:\n"
                "  {login_command}"
            ).format(
                name=principal.get("name"),
                id=principal.get("id"),
                network=own.network_id,
                fingerprint=own.network_signing_key_sha256,
                login_command=login_command,
            ),
            highlight=False,
            soft_wrap=True,
        ),
    )


@principal_app.command("list")
@handled
def principal_list(
    ctx: typer.Context, org: Annotated[str, typer.Argument(help="Id or short name.")]
) -> None:
    """Principals of one organisation."""
    st = state(ctx)
    client = st.client()
    items = client.list_principals(str(resolve_org(client, org)["id"]))

    def human() -> None:
        table = Table(_("id"), _("name"), _("kind"), _("roles"), _("active"))
        for p in items:
            table.add_row(
                str(p.get("id")),
                str(p.get("name")),
                str(p.get("kind")),
                ", ".join(p.get("roles") or []),
                str(p.get("active")),
            )
        st.console.print(table)

    emit(st, {"items": items}, human)


@principal_app.command("deactivate")
@handled
def principal_deactivate(
    ctx: typer.Context,
    principal_id: Annotated[str, typer.Argument(help="The principal's client id.")],
) -> None:
    """Deactivate a person or service account (someone who left): their key stops working at
    once. Their organisation's data stays; a new person gets their own key."""
    st = state(ctx)
    principal = st.client().deactivate_principal(principal_id)
    emit(
        st,
        principal,
        lambda: st.console.print(
            _("Deactivated {name} ({id})").format(
                name=principal.get("name"), id=principal.get("id")
            ),
            highlight=False,
        ),
    )


@app.command("retention")
@handled
def retention_overview(ctx: typer.Context) -> None:
    """Live cases by the month their retention ends, per member (counts only): what the
    retention policy will delete, and when."""
    st = state(ctx)
    overview = call_json(st.client(), "GET", "/v1/stats/retention")

    def human() -> None:
        orgs = overview.get("organisations") or []
        months = [m["month"] for m in overview.get("months") or []]
        table = Table(_("expires (month)"), *[str(o.get("short_name")) for o in orgs], _("all"))
        for month in months:
            cells = []
            for o in orgs:
                found = {m["month"]: m["live_cases"] for m in o.get("months") or []}
                cells.append(str(found.get(month, 0)))
            total = next(m["live_cases"] for m in overview["months"] if m["month"] == month)
            table.add_row(month, *cells, str(total))
        table.add_row(
            _("all"), *[str(o.get("live_cases")) for o in orgs], str(overview.get("live_cases"))
        )
        st.console.print(table)
        st.console.print(
            _("Live cases as of {date}").format(date=overview.get("as_of")), highlight=False
        )

    emit(st, overview, human)
