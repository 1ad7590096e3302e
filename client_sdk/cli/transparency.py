"""`refcheck transparency verify`: check that the network's log only grew since this machine
last looked (RFC 9162 consistency proof against the tree head kept beside the pin file)."""

from __future__ import annotations

from typing import Annotated

import typer

from client_sdk.cli._common import beside, emit, handled, state
from client_sdk.cli.i18n import _
from client_sdk.transparency import TreeHeadStore, verify_log

app = typer.Typer(help="The network's transparency log.")


@app.command("verify")
@handled
def verify(
    ctx: typer.Context,
    tree_head_file: Annotated[
        str | None,
        typer.Option(
            "--tree-head-file",
            help="Where the newest verified tree head is kept (default: beside the pin file, "
            "<name>.treehead.json).",
        ),
    ] = None,
) -> None:
    """Fetch the signed tree head, verify it and its consistency with the one seen before.

    Exit 6 (security) when the log was rewritten, shrank or differs from what this machine was
    shown before: alert the network secretariat and keep the tree head file as evidence.
    """
    st = state(ctx)
    path = tree_head_file or beside(st.pins(), ".treehead.json")
    store = TreeHeadStore(path)
    client = st.client()
    before = store.load(client.base_url)
    head = verify_log(client, store)
    data = {
        "tree_size": head.size,
        "root_hash": head.root.hex(),
        "issued_at": head.issued_at,
        "first_seen": before is None,
        "tree_head_file": None if path is None else str(path),
    }

    def human() -> None:
        how = (
            _("first tree head kept") if before is None else _("consistent with the last one seen")
        )
        st.console.print(
            _("transparency log OK: {size} entries, root {root}…, signed {issued} ({how})").format(
                size=head.size, root=head.root.hex()[:16], issued=head.issued_at, how=how
            )
        )

    emit(st, data, human)
