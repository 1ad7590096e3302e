"""`refcheck-server`: initialise, migrate and serve a network server; verify its audit trail.

    refcheck-server init  --data-dir var [--demo]     schema, keys, secretariat, first admin
    refcheck-server serve --data-dir var --host 127.0.0.1 --port 8000
    refcheck-server migrate --data-dir var            apply pending migrations
    refcheck-server audit verify --data-dir var       exit 1 and name the first tampered entry
    refcheck-server audit checkpoint --data-dir var   seal and sign a tree head of the log now

Everything else comes from the environment (`REFCHECK_DATABASE_URL`, `REFCHECK_ISSUER`, ...; see
`server.settings`). Errors are one line on stderr and a non-zero exit: 1 for a refused operation
(already initialised, audit trail broken), 2 for configuration (invalid policy, missing keys).

Other domains add command groups at the bottom of this module::

    from server.retention.cli import retention_app        # a typer.Typer()
    app.add_typer(retention_app, name="retention")

and use `open_context(data_dir)` / `session_scope(ctx)` for the server's context and a unit of
work, so every command reads the same settings, policy and keys as the server.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from server.context import AppContext
from server.db import make_engine, transaction
from server.keys import KeyFileError, create_keys
from server.policy.schema import PolicyError, load_policy
from server.settings import Settings

log = logging.getLogger("refcheck.server.cli")

app = typer.Typer(
    name="refcheck-server",
    help="The refcheck network server.",
    no_args_is_help=True,
    add_completion=False,
)
audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Directory of the server's key files and embedded database "
        "(default: $REFCHECK_DATA_DIR or ./var).",
        show_default=False,
    ),
]


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"refcheck-server: {message}", err=True)
    raise typer.Exit(code)


def settings_for(data_dir: Path | None) -> Settings:
    try:
        return Settings(data_dir=data_dir) if data_dir is not None else Settings()
    except ValueError as exc:
        fail(f"invalid configuration: {exc}", 2)


def open_context(data_dir: Path | None, *, settings: Settings | None = None) -> AppContext:
    """The same context the server builds (policy, keys, database), or exit 2 saying why not."""
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


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic announces its dialect at INFO on every readiness probe; that is noise.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _migrate(settings: Settings) -> None:
    from server.migrate import upgrade

    if not settings.database_url:
        # The embedded database holds pseudonyms and the audit trail: owner-only, like the keys.
        # SQLite gives its -wal and -shm files the permissions of the database file.
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = settings.embedded_database_path
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    upgrade(
        settings.effective_database_url,
        key_dir=settings.server_key_dir,
        keys_per_check=load_policy(settings.policy_file).keys_per_check,
    )


def _write_demo_policy(settings: Settings) -> Settings:
    """The demo network's policy: the packaged one, publishing the registry filter inside every
    change (`filter_publish_seconds = 0`, docs/protocol.md), so a case registered in the demo is
    in the very next check's filter. Written beside the keys, where `serve` finds it."""
    from server.settings import LOCAL_POLICY_FILE

    target = settings.data_dir / LOCAL_POLICY_FILE
    if not target.exists():
        text = settings.policy_file.read_text(encoding="utf-8")
        demo_text, replaced = re.subn(
            r"(?m)^filter_publish_seconds = \d+$", "filter_publish_seconds = 0", text
        )
        if replaced != 1:
            fail("the policy file has no filter_publish_seconds line to set for the demo", 2)
        target.write_text(
            "# The demo network's policy, written by `refcheck-server init --demo`.\n" + demo_text,
            encoding="utf-8",
        )
    return settings_for(settings.data_dir)


@app.command()
def init(
    data_dir: DataDirOption = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Also seed org-a and org-b and write credentials files.")
    ] = False,
    base_url: Annotated[
        str, typer.Option(help="Server URL written into credentials files.")
    ] = "http://127.0.0.1:8000",
    secretariat_name: Annotated[str, typer.Option()] = "PSEAH Network Secretariat",
    secretariat_short_name: Annotated[str, typer.Option()] = "secretariat",
    country: Annotated[str, typer.Option(help="ISO 3166 alpha-2 country code.")] = "ID",
    admin_name: Annotated[str, typer.Option(help="Name of the first network admin.")] = (
        "Network admin"
    ),
    network_id: Annotated[
        str,
        typer.Option(
            help="The network's short id (lower-case letters, digits, hyphens), written into "
            "every credentials file and every signed object."
        ),
    ] = "refcheck",
) -> None:
    """Create the schema, the server's keys and the first network admin (printed once)."""
    from server.bootstrap import AlreadyInitialised, init_network, is_initialised
    from server.credentials import credentials
    from server.demo import seed_demo, write_demo_files
    from server.transparency.sealer import seal

    settings = settings_for(data_dir)
    try:
        load_policy(settings.policy_file)
    except PolicyError as exc:
        fail(str(exc), 2)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _migrate(settings)
    engine = make_engine(settings.effective_database_url)
    try:
        with engine.connect() as conn, Session(bind=conn) as probe:
            if is_initialised(probe):
                # Checked before any key file is touched: a fresh OPRF key beside an existing
                # database would orphan every stored pseudonym.
                fail("this database already holds an initialised network; nothing changed")
    finally:
        engine.dispose()
    if demo and "policy_file" not in settings.model_fields_set:
        settings = _write_demo_policy(settings)
    try:
        create_keys(settings.server_key_dir, network_id=network_id)
    except KeyFileError as exc:
        fail(str(exc))
    ctx = open_context(None, settings=settings)
    files = {}
    try:
        with session_scope(ctx) as session:
            boot = init_network(
                session,
                ctx,
                secretariat_name=secretariat_name,
                secretariat_short_name=secretariat_short_name,
                country=country,
                admin_name=admin_name,
            )
            admin_credentials = credentials(
                base_url=base_url,
                issuer=settings.issuer,
                principal=boot.admin,
                org=boot.secretariat,
                auth_key=boot.admin_key,
                org_keys=None,
                network=ctx.keys,
            )
            if demo:
                files = seed_demo(session, ctx, boot, base_url=base_url)
            seal(session, ctx)
    except AlreadyInitialised as exc:
        fail(exc.detail)
    typer.echo(f"Initialised the network in {settings.data_dir}.", err=True)
    if demo:
        for path in write_demo_files(settings.data_dir / "demo", files):
            typer.echo(f"  wrote {path}", err=True)
    if demo:
        # The admin's credentials are in demo/admin.json already: `make run` prints no key.
        typer.echo(
            f"The first network admin's credentials are in {settings.data_dir / 'demo'}.", err=True
        )
        return
    typer.echo(
        "The first network admin's credentials follow. They are shown only this once and the "
        "server keeps no copy: store them as a 0600 file now "
        "(`refcheck-server init ... > admin.json`).",
        err=True,
    )
    typer.echo(json.dumps(admin_credentials, indent=2))


@app.command()
def migrate(data_dir: DataDirOption = None) -> None:
    """Apply pending database migrations (run before `serve` after an upgrade).

    Key files come first: a version-1 OPRF key file gains its `w` (crash-safely), then the
    database migration to protocol v2 wraps every stored pseudonym with it.
    """
    settings = settings_for(data_dir)
    if (settings.server_key_dir / "oprf.key").exists():
        try:
            create_keys(settings.server_key_dir)
        except KeyFileError as exc:
            fail(str(exc))
    _migrate(settings)
    typer.echo("Database schema is current.", err=True)


@app.command()
def serve(
    data_dir: DataDirOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Server processes; one per core the server may use (a check's cryptography "
            "and its answer run on the worker's core).",
        ),
    ] = 1,
) -> None:
    """Serve the API (uvicorn). Refuses to start on an invalid policy or missing key files."""
    import uvicorn

    from server.app import build_context, create_app
    from server.migrate import is_current
    from server.tcp_nodelay import IMPORT_PATH as NODELAY_PROTOCOL

    settings = settings_for(data_dir)
    _configure_logging(settings.log_level)
    engine = make_engine(settings.effective_database_url)
    try:
        current = is_current(engine)
    finally:
        engine.dispose()
    if not current:
        if settings.database_url:
            fail("the database schema is not current; run `refcheck-server migrate` first", 2)
        # The embedded demo database follows the code on its own; a shared database is
        # migrated deliberately, by whoever deploys.
        log.info("applying pending migrations to the embedded database")
        _migrate(settings)
    try:
        ctx = build_context(settings)  # pooled: the server lives as long as the process
    except (PolicyError, KeyFileError) as exc:
        fail(str(exc), 2)
    if workers == 1:
        uvicorn.run(create_app(settings, context=ctx), host=host, port=port, log_level="info")
        return
    # Each worker process builds its own app from the environment (`create_app` as a factory),
    # so the data dir chosen here goes there too. The context built above has done its job:
    # the policy and the key files were checked before any worker starts. Background jobs run
    # in every worker; each is safe to run concurrently (it re-checks what it changes under a
    # lock), so a duplicate run finds nothing left to do.
    os.environ["REFCHECK_DATA_DIR"] = str(settings.data_dir.resolve())
    ctx.sessions.kw["bind"].dispose()
    uvicorn.run(
        "server.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=NODELAY_PROTOCOL,
        log_level="info",
    )


@audit_app.command("verify")
def audit_verify(
    data_dir: DataDirOption = None,
    head: Annotated[
        list[Path] | None,
        typer.Option(
            help="A signed tree head kept outside the database (a file of its hex, as the "
            "witness keeps it); the log must still hold the tree it signs. Repeatable."
        ),
    ] = None,
) -> None:
    """Check every signed tree head, that the entries still make the trees they sign, and the
    hash chain of entries from before the log; exit 1 naming the first problem."""
    from server.audit.verify import verify_trail

    known = [bytes.fromhex(p.read_text().split()[0]) for p in head or []]
    ctx = open_context(data_dir)
    with session_scope(ctx) as session:
        report = verify_trail(
            session,
            ctx.keys.audit_key.public_key(),
            ctx.keys.audit_key_id,
            network_id=ctx.keys.network_id,
            known_heads=known,
        )
    first = report.first
    if first is None:
        typer.echo(
            f"audit trail intact: {report.entries} entries, {report.heads} signed tree heads "
            f"(newest: {report.tree_size} leaves), {report.checkpoints} checkpoints"
        )
        return
    typer.echo(f"AUDIT TRAIL BROKEN: {first.message}")
    for finding in report.findings:
        if finding is not first:
            typer.echo(f"  also: {finding.message}")
    raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint(data_dir: DataDirOption = None) -> None:
    """Seal what was appended and sign a tree head now (the server does it every
    `audit_seal_interval_seconds` by itself)."""
    from server.transparency.sealer import latest_head, seal

    ctx = open_context(data_dir)
    with session_scope(ctx) as session:
        sealed = seal(session, ctx) or latest_head(session)
        size, root = (sealed.tree_size, sealed.root_hash) if sealed else (0, "-")
    typer.echo(f"tree head signed at {size} leaves (root {root})")


def main() -> None:
    """Console entry point (`refcheck-server`)."""
    app(prog_name="refcheck-server")


# --- command groups of other domains ---------------------------------------------------------
# Append `app.add_typer(<group>, name="<name>")` here (see the module docstring).
from server.retention.cli import retention_app  # noqa: E402 - mounted after `app` exists

app.add_typer(retention_app, name="retention")

from server.filter.cli import filter_app  # noqa: E402 - mounted after `app` exists

app.add_typer(filter_app, name="filter")

from server.oprf.cli import keys_app  # noqa: E402 - mounted after `app` exists

app.add_typer(keys_app, name="keys")

from server.notifications.cli import notifications_app  # noqa: E402 - mounted after `app` exists

app.add_typer(notifications_app, name="notifications")


if __name__ == "__main__":
    main()
