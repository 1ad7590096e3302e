"""`refcheck`: the command line for focal points, HR staff and the network secretariat.

Every command is a thin layer over `client_sdk.Client`; what a command may print and its exit
code are decided in `client_sdk.cli._common`. Exit codes: see `ExitCode` and
client_sdk/README.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from client_sdk.cli import (
    admin,
    audit,
    cases,
    check,
    consent,
    demo,
    disclosures,
    form,
    keys,
    rescreen,
    transparency,
)
from client_sdk.cli._common import (
    ENV_ALLOW_INSECURE_HTTP,
    ENV_BASE_URL,
    ENV_CA_FILE,
    ENV_CREDENTIALS,
    ENV_PIN_FILE,
    ExitCode,
    emit,
    handled,
    state,
)
from client_sdk.cli.i18n import ENV_LANG, LANGUAGES, LocalisedGroup, _
from client_sdk.console import command as console_command

__all__ = ["ExitCode", "app", "main"]

app = typer.Typer(
    name="refcheck",
    cls=LocalisedGroup,
    help="Privacy-preserving reference checks for a PSEAH network.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _known_language(value: str | None) -> str | None:
    """Refuse a `--lang` (or REFCHECK_LANG) we have no catalog for; the language itself was
    chosen before parsing (client_sdk.cli.i18n.LocalisedGroup)."""
    if value is not None and value not in LANGUAGES:
        raise typer.BadParameter(
            _("unknown language {value!r}: use id (Bahasa Indonesia) or en (English)").format(
                value=value
            )
        )
    return value


@app.callback()
def _global(
    ctx: typer.Context,
    credentials: Annotated[
        Path | None,
        typer.Option(
            "--credentials",
            envvar=ENV_CREDENTIALS,
            help="Credentials file (from `refcheck login` or `refcheck-server init`).",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", envvar=ENV_BASE_URL, help="Server URL (default: the credentials')."
        ),
    ] = None,
    pin_file: Annotated[
        Path | None,
        typer.Option(
            "--pin-file",
            envvar=ENV_PIN_FILE,
            help="Where the network's keys and organisations' keys are pinned (default: beside "
            "the credentials); the registry filter and your registrations are kept beside it.",
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            envvar=ENV_CA_FILE,
            help="The network's CA bundle (PEM), when its server's certificate is not from a "
            "public CA.",
        ),
    ] = None,
    allow_insecure_http: Annotated[
        bool,
        typer.Option(
            "--allow-insecure-http",
            envvar=ENV_ALLOW_INSECURE_HTTP,
            help="Allow a plain http:// server URL that is not this machine (127.0.0.1, "
            "localhost): only for a test network, never with real cases.",
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Machine-readable JSON output for scripts.")
    ] = False,
    lang: Annotated[
        str | None,
        typer.Option(
            "--lang",
            envvar=ENV_LANG,
            metavar="id|en",
            callback=_known_language,
            help="Language of messages and help: id (Bahasa Indonesia) or en (English). "
            "Default: REFCHECK_LANG, else the computer's language (LANG), else English.",
        ),
    ] = None,
) -> None:
    st = state(ctx)
    st.credentials_path = credentials
    st.base_url = base_url
    st.pin_file = pin_file
    st.ca_file = ca_file
    st.allow_insecure_http = allow_insecure_http
    st.json_output = json_output


@app.command()
@handled
def login(
    ctx: typer.Context,
    keys_file: Annotated[Path, typer.Option("--keys", help="Keystore from `refcheck keys init`.")],
    client_id: Annotated[str, typer.Option(help="Principal id the network admin registered.")],
    out: Annotated[Path, typer.Option("--out", help="Credentials file to write (0600).")],
    url: Annotated[
        str | None, typer.Option("--server", help="Server URL (else --base-url).")
    ] = None,
    issuer: Annotated[str, typer.Option(help="The server's issuer name.")] = "refcheck",
    org_keys_file: Annotated[
        Path | None,
        typer.Option("--org-keys", help="Keystore holding the organisation's keys, if not --keys."),
    ] = None,
    network_fingerprint: Annotated[
        str | None,
        typer.Option(
            "--network-fingerprint",
            help="The network signing key's fingerprint (64 hex digits, any grouping), as the "
            "secretariat gave it to you (`refcheck admin principal add` prints it; so does the "
            "MoU annex).",
        ),
    ] = None,
    network_id: Annotated[
        str | None,
        typer.Option(
            "--network-id", help="The network's id, as the secretariat gave it (optional)."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing credentials file.")] = False,
) -> None:
    """Turn a keystore, a client id, a server URL and the network's fingerprint into a
    credentials file.

    Signs in once to prove the key is registered and to record the principal's name, roles and
    organisation, and checks that the server's network signing key is the one whose fingerprint
    the secretariat gave you (else nothing is written: exit 6). A passphrase-protected keystore
    gives a passphrase-protected credentials file.
    """
    from client_sdk._client import Client
    from client_sdk.cli._common import passphrase
    from client_sdk.credentials import Credentials
    from client_sdk.errors import CredentialsError
    from client_sdk.keystore import Keystore

    st = state(ctx)
    server = url or st.base_url
    if not server:
        raise CredentialsError(_("no server URL: pass --server or --base-url"))
    secret = passphrase() if Keystore.is_sealed(keys_file) else None
    store = Keystore.load(keys_file, passphrase=secret)
    org_keys = store.org_keys
    if org_keys_file is not None:
        org_secret = (
            passphrase(_("Passphrase of the org keystore"))
            if Keystore.is_sealed(org_keys_file)
            else None
        )
        org_keys = Keystore.load(org_keys_file, passphrase=org_secret).org_keys
    fingerprint = _fingerprint_option(network_fingerprint)
    insecure = st.allow_insecure_http
    # The network id as the server names it, unless the secretariat gave one: it is only
    # trusted together with the fingerprint, which the client compares before signing in.
    if network_id is None:
        network_id = _network_named_by(server, ca_file=st.ca_file, allow_insecure_http=insecure)
    creds = Credentials(
        client_id=client_id,
        auth_private_key=store.auth_private_key,
        issuer=issuer,
        base_url=server,
        org_keys=org_keys,
        network_id=network_id,
        network_signing_key_sha256=fingerprint,
    )
    with Client(creds, ca_file=st.ca_file, allow_insecure_http=insecure) as probe:
        me = probe.me()
    creds = Credentials(
        client_id=client_id,
        auth_private_key=store.auth_private_key,
        issuer=issuer,
        base_url=server,
        principal_name=str(me.get("name") or ""),
        roles=tuple(me.get("roles") or ()),
        org_id=me.get("org_id"),
        org_short_name=me.get("org_short_name"),
        org_keys=org_keys,
        network_id=network_id,
        network_signing_key_sha256=creds.network_signing_key_sha256,
    )
    # The whole check the SDK makes before every first request: the signing key is the
    # fingerprint's, and every OPRF key announcement verifies under it. A mismatch is a
    # KeyChanged (exit 6) and no file is written.
    with Client(creds, ca_file=st.ca_file, allow_insecure_http=insecure) as verify:
        verify.oprf_key()
    creds.save(out, passphrase=secret, overwrite=overwrite)
    summary = {
        "credentials": str(out),
        "principal": creds.principal_name,
        "org": creds.org_short_name,
        "roles": list(creds.roles),
        "network_id": creds.network_id,
        "network_signing_key_sha256": creds.network_signing_key_sha256,
    }
    emit(
        st,
        summary,
        lambda: st.console.print(
            _(
                "Signed in as [bold]{name}[/] of {org} ({roles}); credentials written to {path}"
            ).format(
                name=creds.principal_name,
                org=creds.org_short_name,
                roles=", ".join(creds.roles),
                path=out,
            )
        ),
    )


def _network_named_by(server: str, *, ca_file: str | Path | None, allow_insecure_http: bool) -> str:
    """The network id `GET /v1/network/keys` names (a public endpoint: nothing is signed for a
    server before its signing key has been compared with the fingerprint)."""
    import httpx

    from client_sdk._client import check_server_url, tls_verify
    from client_sdk.errors import CredentialsError

    check_server_url(server, allow_insecure_http=allow_insecure_http)
    url = server.rstrip("/") + "/v1/network/keys"
    try:
        response = httpx.get(url, verify=tls_verify(ca_file), timeout=30)
        named = response.json().get("network_id") if response.is_success else None
    except (httpx.HTTPError, ValueError) as exc:
        raise CredentialsError(
            _("could not read the network's keys at {url}: {problem}").format(url=url, problem=exc)
        ) from exc
    if not isinstance(named, str) or not named:
        raise CredentialsError(_("the server does not name its network ({url})").format(url=url))
    return named


def _fingerprint_option(value: str | None) -> str:
    """The `--network-fingerprint` as 64 lower-case hex digits (read out with spaces, colons or
    dashes, it is the same fingerprint)."""
    from client_sdk.errors import CredentialsError
    from client_sdk.pinning import normalise_fingerprint

    if not value:
        # The advice of client_sdk.pinning.NO_NETWORK_PIN, whole, so that it can be translated.
        raise CredentialsError(
            _(
                "--network-fingerprint is required: Ask the network secretariat for the network "
                "signing key's fingerprint (printed by `refcheck admin principal add` and in the "
                "MoU annex) and sign in again: refcheck login ... --network-fingerprint "
                "FINGERPRINT"
            )
        )
    digits = normalise_fingerprint(value)
    if len(digits) != 64 or len(value.strip()) > 2 * 64:
        raise CredentialsError(
            _(
                "--network-fingerprint must be the 64 hex digits of the network signing key's "
                "SHA-256, as the secretariat gave them"
            )
        )
    return digits


@app.command()
@handled
def whoami(ctx: typer.Context) -> None:
    """Sign in and show who the credentials belong to."""
    st = state(ctx)
    me = st.client().me()
    emit(
        st,
        me,
        lambda: st.console.print(
            _("{name} of {org} - roles: {roles}").format(
                name=me.get("name"),
                org=me.get("org_short_name"),
                roles=", ".join(me.get("roles") or []),
            )
        ),
    )


app.add_typer(keys.app, name="keys")
app.add_typer(consent.app, name="consent")
app.command(name="check")(check.check)
app.command(name="rescreen")(rescreen.rescreen)
app.add_typer(cases.app, name="case")
app.add_typer(admin.app, name="admin")
app.add_typer(form.app, name="form")
app.command(name="demo")(demo.demo)
app.add_typer(disclosures.app, name="disclosures")
app.add_typer(transparency.app, name="transparency")
app.add_typer(audit.app, name="audit")
app.command(name="lookup")(disclosures.lookup)
app.command(name="stats")(disclosures.stats)
# Imports no web framework: the `console` extra loads when the command runs.
app.command(name="console")(console_command.console)


def main() -> None:
    """Console entry point (`refcheck`)."""
    app()
