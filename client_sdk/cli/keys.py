"""`refcheck keys`: make the organisation's and the principal's keys on this machine, and decide
which other organisations' public keys to trust.

Other members' public keys reach this machine through the server's directory, so the SDK pins
them on first use; `refcheck keys trust ORG --fingerprint FP` is how a changed key is accepted,
once the organisation has read its new fingerprint out (`refcheck keys show` on its side).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from client_sdk.cli._common import emit, handled, passphrase, state
from client_sdk.cli.i18n import _
from client_sdk.credentials import OrgKeys
from client_sdk.errors import CredentialsError, InvalidInput
from client_sdk.keystore import Keystore, export_org_keys, import_org_keys, org_public_keys
from client_sdk.pinning import OrgPublicKeys, org_key_fingerprint

app = typer.Typer(
    help="Generate and show keys (private keys never leave this machine); trust other "
    "organisations' public keys."
)


@app.command("init")
@handled
def init(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Keystore file to create (0600).")] = Path(
        "refcheck-keys.json"
    ),
    auth_only: Annotated[
        bool,
        typer.Option(
            help="Only a principal auth key (secretariat staff, or a second principal of an "
            "organisation whose keys exist already)."
        ),
    ] = False,
    no_passphrase: Annotated[
        bool,
        typer.Option(
            "--no-passphrase",
            help="Store private keys unencrypted (0600) for a service account that cannot "
            "type a passphrase.",
        ),
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing keystore.")] = False,
) -> None:
    """Generate the organisation's X25519 and Ed25519 keys and the principal's Ed25519 auth key,
    store them, and print the public keys for the network admin to register."""
    secret = None if no_passphrase else passphrase(_("New passphrase"), confirm=True)
    store = Keystore.generate(auth_only=auth_only)
    store.save(out, passphrase=secret, overwrite=overwrite)
    _show(ctx, store.public_keys(), out)


@app.command("show")
@handled
def show(
    ctx: typer.Context,
    keystore: Annotated[Path, typer.Argument(help="Keystore file.")],
) -> None:
    """Print the public keys of a keystore (needs its passphrase: it checks they match)."""
    secret = passphrase() if Keystore.is_sealed(keystore) else None
    _show(ctx, Keystore.load(keystore, passphrase=secret).public_keys(), keystore)


#: The passphrase of an export file (`keys export-org`/`import-org`), kept apart from the
#: keystore's own (REFCHECK_PASSPHRASE): the file is handed to someone who must not learn it.
ENV_EXPORT_PASSPHRASE = "REFCHECK_EXPORT_PASSPHRASE"


def export_passphrase(*, confirm: bool) -> str:
    from_env = os.environ.get(ENV_EXPORT_PASSPHRASE)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise CredentialsError(
            _("the export file needs a passphrase: set {variable} or run in a terminal").format(
                variable=ENV_EXPORT_PASSPHRASE
            )
        )
    value: str = typer.prompt(
        _("Passphrase of the export file"),
        hide_input=True,
        confirmation_prompt=_("Repeat for confirmation") if confirm else False,
    )
    return value


def _org_keys_from(ctx: typer.Context, keystore: Path | None) -> OrgKeys:
    """The organisation's keys from a keystore, else from the credentials file."""
    if keystore is not None:
        secret = passphrase() if Keystore.is_sealed(keystore) else None
        found = Keystore.load(keystore, passphrase=secret).org_keys
    else:
        found = state(ctx).credentials().org_keys
    if found is None:
        raise CredentialsError(
            _(
                "no organisation keys here (made with --auth-only?): export them from the "
                "keystore of the person who ran `refcheck keys init`"
            )
        )
    return found


@app.command("export-org")
@handled
def export_org(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Export file to write (0600).")],
    keystore: Annotated[
        Path | None,
        typer.Option(
            "--keys", help="Keystore holding the organisation's keys (else the credentials')."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing export file.")] = False,
) -> None:
    """Seal the organisation's private keys under a new passphrase, for a second staff member
    (`refcheck keys import-org`). Give the file and its passphrase by different routes."""
    st = state(ctx)
    org_keys = _org_keys_from(ctx, keystore)
    public = export_org_keys(
        org_keys, out, passphrase=export_passphrase(confirm=True), overwrite=overwrite
    )
    fingerprint = _fingerprint(public)
    emit(
        st,
        {"export": str(out), "org_fingerprint": fingerprint, **public},
        lambda: st.console.print(
            _(
                "Organisation keys sealed to {path} (fingerprint [bold]{fingerprint}[/]).\n"
                "Next, on the colleague's machine: refcheck keys import-org {name} --keys "
                "THEIR-KEYSTORE"
            ).format(path=out, fingerprint=fingerprint, name=out.name),
            highlight=False,
        ),
    )


@app.command("import-org")
@handled
def import_org(
    ctx: typer.Context,
    export: Annotated[Path, typer.Argument(help="File from `refcheck keys export-org`.")],
    keystore: Annotated[
        Path, typer.Option("--keys", help="Your keystore (from `keys init --auth-only`).")
    ],
    replace: Annotated[
        bool,
        typer.Option(help="Replace different organisation keys already in the keystore."),
    ] = False,
) -> None:
    """Add the organisation's keys from an export file to your keystore; then run
    `refcheck login` again so your credentials carry them."""
    st = state(ctx)
    org_keys = import_org_keys(export, passphrase=export_passphrase(confirm=False))
    sealed = Keystore.is_sealed(keystore)
    secret = passphrase() if sealed else None
    store = Keystore.load(keystore, passphrase=secret)
    if store.org_keys is not None and store.org_keys != org_keys and not replace:
        raise InvalidInput(
            _("this keystore already holds other organisation keys; pass --replace to swap them")
        )
    store.with_org_keys(org_keys).save(keystore, passphrase=secret, overwrite=True)
    public = org_public_keys(org_keys)
    fingerprint = _fingerprint(public)
    emit(
        st,
        {"keystore": str(keystore), "org_fingerprint": fingerprint, **public},
        lambda: st.console.print(
            _(
                "Organisation keys (fingerprint [bold]{fingerprint}[/]) added to {path}.\n"
                "Next: refcheck login --keys {path} ... --overwrite"
            ).format(fingerprint=fingerprint, path=keystore),
            highlight=False,
        ),
    )


def _fingerprint(public: dict[str, str]) -> str:
    return org_key_fingerprint(
        bytes.fromhex(public["x25519_public_key"]), bytes.fromhex(public["ed25519_public_key"])
    )


def _show(ctx: typer.Context, public: dict[str, str], path: Path) -> None:
    st = state(ctx)
    shown = dict(public)
    if "x25519_public_key" in public and "ed25519_public_key" in public:
        # What partner organisations compare before trusting these keys (`keys trust`).
        shown["org_fingerprint"] = org_key_fingerprint(
            bytes.fromhex(public["x25519_public_key"]), bytes.fromhex(public["ed25519_public_key"])
        )

    def human() -> None:
        st.console.print(_("Keystore: {path}").format(path=path))
        st.console.print(_("Give these PUBLIC keys to the network admin:"))
        for name, value in public.items():
            st.console.print(f"  {name}: {value}", highlight=False)
        if "org_fingerprint" in shown:
            st.console.print(
                _(
                    "Organisation key fingerprint (read it out to members who ask): "
                    "[bold]{fingerprint}[/]"
                ).format(fingerprint=shown["org_fingerprint"]),
                highlight=False,
            )

    emit(st, {"keystore": str(path), **shown}, human)


@app.command("trust")
@handled
def trust(
    ctx: typer.Context,
    org: Annotated[str, typer.Argument(help="Organisation short name or id.")],
    fingerprint: Annotated[
        str | None,
        typer.Option(
            help="The fingerprint the organisation gave you out of band (phone, MoU annex); "
            "needed to accept changed keys."
        ),
    ] = None,
) -> None:
    """Pin an organisation's public keys, or accept changed ones.

    Without --fingerprint: shows the keys, pinning them if this is the first use, and exits 6
    when the directory's keys differ from the pinned ones. With --fingerprint: pins the
    directory's keys if, and only if, they match it (exit 6 otherwise; nothing is pinned).
    """
    st = state(ctx)
    client = st.client()
    if fingerprint is None:
        keys, status = client.org_keys(org), "pinned"
    else:
        keys, status = client.trust_org_keys(org, fingerprint=fingerprint), "trusted"
    _show_trusted(ctx, keys, status)


def _show_trusted(ctx: typer.Context, keys: OrgPublicKeys, status: str) -> None:
    st = state(ctx)
    data = {
        "org_id": keys.org_id,
        "org": keys.short_name,
        "status": status,
        "fingerprint": keys.fingerprint,
        "x25519_public_key": keys.x25519.hex(),
        "ed25519_public_key": keys.ed25519.hex(),
    }

    def human() -> None:
        verb = _("Trusted (pin replaced)") if status == "trusted" else _("Pinned")
        st.console.print(
            _("{verb}: {org} ({org_id}), fingerprint [bold]{fingerprint}[/]").format(
                verb=verb,
                org=keys.short_name or keys.org_id,
                org_id=keys.org_id,
                fingerprint=keys.fingerprint,
            ),
            highlight=False,
        )

    emit(st, data, human)
