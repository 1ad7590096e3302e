"""`refcheck-server keys rotate` and `refcheck-server keys show`.

`rotate` runs docs/protocol.md's key rotation now (the server also runs it every
`oprf_key_rotation_days`); running workers follow it without a restart. `show` prints what the
secretariat writes into the MoU annex: the network id and the signing key's fingerprint, which
every credentials file carries and every SDK pins. `server.cli` mounts `keys_app`.
"""

from __future__ import annotations

import typer

from server.cli_common import DataDirOption, fail, open_context, session_scope

keys_app = typer.Typer(help="The network's keys.", no_args_is_help=True)


@keys_app.command("rotate")
def keys_rotate(data_dir: DataDirOption = None) -> None:
    """Rotate the OPRF key now: re-key every entry, announce the key, publish its filter."""
    from server.oprf.rotation import RotationAborted, rotate

    ctx = open_context(data_dir)
    try:
        done = rotate(ctx)
    except RotationAborted as exc:
        fail(str(exc))
    typer.echo(
        f"OPRF key rotated: key_seq {done.key_seq}, key {done.new_key_id} "
        f"(was {done.old_key_id}), {done.entries} entries re-keyed"
    )


@keys_app.command("show")
def keys_show(data_dir: DataDirOption = None) -> None:
    """Print the network id, the signing key's fingerprint and the OPRF key in force."""
    from server.oprf.services import current_key

    ctx = open_context(data_dir)
    with session_scope(ctx) as session:
        key = current_key(session, ctx)
        seq = ctx.keys.oprf_key_seq
    typer.echo(f"network_id: {ctx.keys.network_id}")
    typer.echo(f"network_signing_key_sha256: {ctx.keys.signing_key_sha256}")
    typer.echo(f"oprf key in force: key_seq {seq}, key_id {key.key_id}")
