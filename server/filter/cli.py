"""`refcheck-server filter publish`: sign and store a new filter revision now.

The server publishes on its own (every `filter_publish_seconds`, at each day's retention cut, and
inside every change when that is 0); this command is for operators who want a revision at once
(after a policy change, on a server run without background jobs) and for tests. The revision is
served from the next request of every worker. `server.cli` mounts `filter_app`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

filter_app = typer.Typer(help="The registry filter.", no_args_is_help=True)


@filter_app.command("publish")
def filter_publish(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Directory of the server's key files and embedded database "
            "(default: $REFCHECK_DATA_DIR or ./var).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Publish a filter revision now and print its number, size and hash."""
    from server.cli import open_context, session_scope
    from server.filter.services import publish

    ctx = open_context(data_dir)
    with session_scope(ctx) as session:
        revision = publish(session, ctx)
        number, count, sha256 = revision.revision, revision.value_count, revision.sha256
    typer.echo(f"filter revision {number} published: {count} values, sha256 {sha256}")
