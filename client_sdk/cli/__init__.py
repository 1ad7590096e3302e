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
    ENV_BASE_URL,
    ENV_CA_FILE,
    ENV_CREDENTIALS,
    ENV_PIN_FILE,
    ExitCode,
    emit,
    handled,
    state,
)
from client_sdk.console import command as console_command

__all__ = ["ExitCode", "app", "main"]

app = typer.Typer(
    name="refcheck",
    help="Privacy-preserving reference checks for a PSEAH network.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
    json_output: Annotated[
        bool, typer.Option("--json", help="Machine-readable JSON output for scripts.")
    ] = False,
) -> None:
    st = state(ctx)
    st.credentials_path = credentials
    st.base_url = base_url
    st.pin_file = pin_file
    st.ca_file = ca_file
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
    overwrite: Annotated[bool, typer.Option(help="Replace an existing credentials file.")] = False,
) -> None:
    """Turn a keystore, a client id and a server URL into a credentials file.

    Signs in once to prove the key is registered and to record the principal's name, roles and
    organisation. A passphrase-protected keystore gives a passphrase-protected credentials file.
    """
    from client_sdk._client import Client
    from client_sdk.cli._common import passphrase
    from client_sdk.credentials import Credentials
    from client_sdk.errors import CredentialsError
    from client_sdk.keystore import Keystore

    st = state(ctx)
    server = url or st.base_url
    if not server:
        raise CredentialsError("no server URL: pass --server or --base-url")
    secret = passphrase() if Keystore.is_sealed(keys_file) else None
    store = Keystore.load(keys_file, passphrase=secret)
    org_keys = store.org_keys
    if org_keys_file is not None:
        org_secret = (
            passphrase("Passphrase of the org keystore")
            if Keystore.is_sealed(org_keys_file)
            else None
        )
        org_keys = Keystore.load(org_keys_file, passphrase=org_secret).org_keys
    creds = Credentials(
        client_id=client_id,
        auth_private_key=store.auth_private_key,
        issuer=issuer,
        base_url=server,
        org_keys=org_keys,
    )
    with Client(creds, ca_file=st.ca_file) as probe:
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
    )
    creds.save(out, passphrase=secret, overwrite=overwrite)
    summary = {
        "credentials": str(out),
        "principal": creds.principal_name,
        "org": creds.org_short_name,
        "roles": list(creds.roles),
    }
    emit(
        st,
        summary,
        lambda: st.console.print(
            f"Signed in as [bold]{creds.principal_name}[/] of {creds.org_short_name} "
            f"({', '.join(creds.roles)}); credentials written to {out}"
        ),
    )


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
            f"{me.get('name')} of {me.get('org_short_name')} - roles: "
            f"{', '.join(me.get('roles') or [])}"
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
