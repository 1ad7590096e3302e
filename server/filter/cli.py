"""`refcheck-server filter publish`: sign and store a new filter revision now.

The server publishes on its own (every `filter_publish_seconds`, at each day's retention cut, and
inside every change when that is 0); this command is for operators who want a revision at once
(after a policy change, on a server run without background jobs) and for tests. The revision is
served from the next request of every worker. `server.cli` mounts `filter_app`.
"""

from __future__ import annotations

import typer

from server.cli_common import DataDirOption, open_context, session_scope

filter_app = typer.Typer(help="The registry filter.", no_args_is_help=True)


@filter_app.command("publish")
def filter_publish(
    data_dir: DataDirOption = None,
) -> None:
    """Publish a filter revision now and print its number, size and hash."""
    from server.filter.services import publish

    ctx = open_context(data_dir)
    with session_scope(ctx) as session:
        revision = publish(session, ctx)
        number, count, sha256 = revision.revision, revision.value_count, revision.sha256
    typer.echo(f"filter revision {number} published: {count} values, sha256 {sha256}")
