"""`refcheck keys`: make the organisation's and the principal's keys on this machine, and decide
which other organisations' public keys to trust.

Other members' public keys reach this machine through the server's directory, so the SDK pins
them on first use; `refcheck keys trust ORG --fingerprint FP` is how a changed key is accepted,
once the organisation has read its new fingerprint out (`refcheck keys show` on its side).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from client_sdk.cli._common import emit, handled, passphrase, state
from client_sdk.keystore import Keystore
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
    secret = None if no_passphrase else passphrase("New passphrase", confirm=True)
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


def _show(ctx: typer.Context, public: dict[str, str], path: Path) -> None:
    st = state(ctx)
    shown = dict(public)
    if "x25519_public_key" in public and "ed25519_public_key" in public:
        # What partner organisations compare before trusting these keys (`keys trust`).
        shown["org_fingerprint"] = org_key_fingerprint(
            bytes.fromhex(public["x25519_public_key"]), bytes.fromhex(public["ed25519_public_key"])
        )

    def human() -> None:
        st.console.print(f"Keystore: {path}")
        st.console.print("Give these PUBLIC keys to the network admin:")
        for name, value in public.items():
            st.console.print(f"  {name}: {value}", highlight=False)
        if "org_fingerprint" in shown:
            st.console.print(
                f"Organisation key fingerprint (read it out to members who ask): "
                f"[bold]{shown['org_fingerprint']}[/]",
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
        verb = "Trusted (pin replaced)" if status == "trusted" else "Pinned"
        st.console.print(
            f"{verb}: {keys.short_name or keys.org_id} ({keys.org_id}), fingerprint "
            f"[bold]{keys.fingerprint}[/]",
            highlight=False,
        )

    emit(st, data, human)
