"""What every `refcheck-server` command group shares: the `--data-dir` and `--database-url`
options, the settings they give, the server's context, a unit of work, and the one-line error.

`server.cli` and the command groups of the domains (`server.retention.cli`, `server.filter.cli`,
`server.oprf.cli`, `server.notifications.cli`) import this module; none of them imports
`server.cli`, which mounts them, so the groups are plain imports at the top of `server.cli`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from server.context import AppContext
from server.db import make_engine, transaction
from server.keys import KeyFileError
from server.policy.schema import PolicyError
from server.settings import Settings

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Directory of the server's key files and embedded database "
        "(default: $REFCHECK_DATA_DIR or ./var).",
        show_default=False,
    ),
]

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="SQLAlchemy URL of the database, e.g. postgresql+psycopg://refcheck@db/refcheck "
        "(default: $REFCHECK_DATABASE_URL, else the embedded SQLite file in the data dir). "
        "A URL with a password is better kept in $REFCHECK_DATABASE_URL: a command line is "
        "visible to every user of the machine.",
        show_default=False,
    ),
]


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr and exit `code`: 1 for a refused operation, 2 for configuration."""
    typer.echo(f"refcheck-server: {message}", err=True)
    raise typer.Exit(code)


def settings_for(data_dir: Path | None, *, database_url: str | None = None) -> Settings:
    overrides: dict[str, object] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if database_url is not None:
        overrides["database_url"] = database_url
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValueError as exc:
        fail(f"invalid configuration: {exc}", 2)


def open_context(data_dir: Path | None, *, settings: Settings | None = None) -> AppContext:
    """The same context the server builds (policy, keys, database), or exit 2 saying why not."""
    # Imported when a command runs: `refcheck-server --help` need not load the whole app.
    from server.app import build_context

    settings = settings or settings_for(data_dir)
    # No pool: a command opens a connection or two and exits; pooled connections would outlive
    # it until garbage collection.
    engine = make_engine(settings.effective_database_url, poolclass=NullPool)
    try:
        return build_context(settings, bind=engine)
    except (PolicyError, KeyFileError) as exc:
        engine.dispose()
        fail(str(exc), 2)


@contextmanager
def session_scope(ctx: AppContext) -> Iterator[Session]:
    """One unit of work: committed on success, rolled back on any error."""
    with transaction(ctx.sessions) as session:
        yield session
