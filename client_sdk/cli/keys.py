"""`refcheck keys`: make the organisation's and the principal's keys on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from client_sdk.cli._common import emit, handled, passphrase, state
from client_sdk.keystore import Keystore

app = typer.Typer(help="Generate and show keys (private keys never leave this machine).")


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

    def human() -> None:
        st.console.print(f"Keystore: {path}")
        st.console.print("Give these PUBLIC keys to the network admin:")
        for name, value in public.items():
            st.console.print(f"  {name}: {value}", highlight=False)

    emit(st, {"keystore": str(path), **public}, human)
