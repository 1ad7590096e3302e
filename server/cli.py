"""`refcheck-server`: initialise, migrate and serve a network server; verify its audit trail.

    refcheck-server init  --data-dir var [--demo]     schema, keys, secretariat, first admin
    refcheck-server serve --data-dir var --host 127.0.0.1 --port 8000
    refcheck-server migrate --data-dir var            apply pending migrations
    refcheck-server audit verify --data-dir var       exit 1 and name the first tampered entry
    refcheck-server audit checkpoint --data-dir var   seal and sign a tree head of the log now

Everything else comes from the environment (`REFCHECK_DATABASE_URL`, `REFCHECK_ISSUER`, ...; see
`server.settings`). Errors are one line on stderr and a non-zero exit: 1 for a refused operation
(already initialised, audit trail broken), 2 for configuration (invalid policy, missing keys).

Other domains add command groups (a `typer.Typer()` each) mounted below `app`::

    from server.retention.cli import retention_app
    app.add_typer(retention_app, name="retention")

and use `server.cli_common` (`DataDirOption`, `open_context(data_dir)`, `session_scope(ctx)`,
`fail`) for the server's context and a unit of work, so every command reads the same settings,
policy and keys as the server. They never import this module.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from server.cli_common import (
    DatabaseUrlOption,
    DataDirOption,
    fail,
    open_context,
    session_scope,
    settings_for,
)
from server.context import AppContext
from server.db import make_engine
from server.filter.cli import filter_app
from server.keys import KeyFileError, create_keys
from server.notifications.cli import notifications_app
from server.oprf.cli import keys_app
from server.policy.schema import PolicyError, load_policy
from server.retention.cli import retention_app
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
app.add_typer(retention_app, name="retention")
app.add_typer(filter_app, name="filter")
app.add_typer(keys_app, name="keys")
app.add_typer(notifications_app, name="notifications")

PassphraseFileOption = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="File whose first line is the backup passphrase (default: "
        "$REFCHECK_BACKUP_PASSPHRASE).",
        show_default=False,
        dir_okay=False,
    ),
]


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
    return settings_for(settings.data_dir, database_url=settings.database_url or None)


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
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create the schema, the server's keys and the first network admin (printed once)."""
    from server.bootstrap import AlreadyInitialised, init_network, is_initialised
    from server.credentials import credentials
    from server.demo import seed_demo, write_demo_files
    from server.transparency.sealer import seal

    settings = settings_for(data_dir, database_url=database_url)
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
def migrate(data_dir: DataDirOption = None, database_url: DatabaseUrlOption = None) -> None:
    """Apply pending database migrations (run before `serve` after an upgrade).

    Key files come first: a version-1 OPRF key file gains its `w` (crash-safely), then the
    database migration to protocol v2 wraps every stored pseudonym with it.
    """
    settings = settings_for(data_dir, database_url=database_url)
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
    database_url: DatabaseUrlOption = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert",
            help="PEM certificate chain (server certificate first): serve HTTPS, with HSTS.",
            show_default=False,
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option("--tls-key", help="PEM private key of --tls-cert.", show_default=False),
    ] = None,
    proxy_headers: Annotated[
        bool,
        typer.Option(
            "--proxy-headers/--no-proxy-headers",
            help="Behind a reverse proxy: take the client address and scheme from "
            "X-Forwarded-For and X-Forwarded-Proto, from --forwarded-allow-ips only.",
        ),
    ] = False,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            "--forwarded-allow-ips",
            help="Comma-separated addresses or networks of the proxies whose forwarded "
            "headers are believed (with --proxy-headers).",
        ),
    ] = "127.0.0.1",
) -> None:
    """Serve the API (uvicorn). Refuses to start on an invalid policy or missing key files."""
    import uvicorn

    from server.app import build_context, create_app
    from server.http_protocol import IMPORT_PATH as NODELAY_PROTOCOL
    from server.http_protocol import take_turns_at_accepting
    from server.migrate import is_current

    settings = settings_for(data_dir, database_url=database_url)
    _configure_logging(settings.log_level)
    transport = _transport_options(settings, tls_cert, tls_key, proxy_headers, forwarded_allow_ips)
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
    metrics_stop = _start_metrics_listener(settings, workers)
    if workers == 1:
        try:
            uvicorn.run(
                create_app(settings, context=ctx),
                host=host,
                port=port,
                log_level="info",
                **transport,
            )
        finally:
            metrics_stop()
        return
    # Each worker process builds its own app from the environment (`create_app` as a factory),
    # so the data dir chosen here goes there too. The context built above has done its job:
    # the policy and the key files were checked before any worker starts. Background jobs run
    # in every worker; each is safe to run concurrently (it re-checks what it changes under a
    # lock), so a duplicate run finds nothing left to do.
    os.environ["REFCHECK_DATA_DIR"] = str(settings.data_dir.resolve())
    if database_url is not None:
        os.environ["REFCHECK_DATABASE_URL"] = database_url
    take_turns_at_accepting(os.environ)
    ctx.sessions.kw["bind"].dispose()
    try:
        uvicorn.run(
            "server.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            # httptools with TCP_NODELAY, and (uvicorn's `loop="auto"`) uvloop: both in the
            # server extra; a burst's connections cost each worker a third to a half less CPU
            # than h11 on asyncio's loop (server.http_protocol, issue 15).
            http=NODELAY_PROTOCOL,
            loop="auto",
            log_level="info",
            **transport,
        )
    finally:
        metrics_stop()


def _transport_options(
    settings: Settings,
    tls_cert: Path | None,
    tls_key: Path | None,
    proxy_headers: bool,
    forwarded_allow_ips: str,
) -> dict[str, Any]:
    """uvicorn's TLS and proxy arguments, the certificate and key checked before any worker
    starts (a typo in a path should stop `serve`, not each worker in turn)."""
    import ssl

    options: dict[str, Any] = {
        "proxy_headers": proxy_headers,
        "forwarded_allow_ips": forwarded_allow_ips,
        "server_header": False,
    }
    if (tls_cert is None) != (tls_key is None):
        fail("--tls-cert and --tls-key go together", 2)
    if tls_cert is None or tls_key is None:
        return options
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls_cert, tls_key)
    except (OSError, ssl.SSLError) as exc:
        fail(f"cannot use the TLS certificate {tls_cert} with key {tls_key}: {exc}", 2)
    hsts = f"max-age={settings.hsts_max_age_seconds}"
    options.update(
        ssl_certfile=str(tls_cert),
        ssl_keyfile=str(tls_key),
        # HSTS (RFC 6797): a browser or client that once reached the server over HTTPS will not
        # be talked down to plain HTTP by someone on the path, who would then read bearer tokens.
        headers=[("Strict-Transport-Security", hsts)],
    )
    return options


def _start_metrics_listener(settings: Settings, workers: int) -> Callable[[], None]:
    """With `metrics_port` set, serve /metrics on a port of its own (from this process, which
    sums what every worker counted); returns what stops it."""
    if not (settings.metrics_enabled or settings.metrics_port):
        return lambda: None
    from server.metrics import prepare_multiprocess, start_metrics_server

    prepare_multiprocess(workers)
    if not settings.metrics_port:
        return lambda: None
    return start_metrics_server(settings)


@app.command()
def backup(
    out: Annotated[
        Path,
        typer.Option("--out", help="The archive to write (refused if it exists).", dir_okay=False),
    ],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    passphrase_file: PassphraseFileOption = None,
) -> None:
    """Write one encrypted archive of a consistent database snapshot and every key file.

    The server may go on running meanwhile. Keep the passphrase apart from the archives: with
    both, anyone holds the network's keys and registry.
    """
    from server.backup import BackupError, read_passphrase, write_backup

    settings = settings_for(data_dir, database_url=database_url)
    try:
        summary = write_backup(settings, out, read_passphrase(passphrase_file))
    except BackupError as exc:
        fail(str(exc))
    except FileExistsError:
        fail(f"{out} exists; nothing written")
    rows = sum(summary.tables.values())
    typer.echo(
        f"backup written to {out}: {summary.backend} database at revision "
        f"{','.join(summary.revision)} ({rows} rows), {len(summary.key_files)} key files, "
        f"network {summary.network_id}"
    )


@app.command()
def restore(
    archive: Annotated[
        Path, typer.Argument(help="An archive written by `refcheck-server backup`.")
    ],
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    passphrase_file: PassphraseFileOption = None,
) -> None:
    """Restore an archive into a new data dir (and a new, empty database), then verify the
    audit trail as `audit verify` does; exit 1 if it is broken."""
    from server.backup import BackupError, read_passphrase, restore_backup

    settings = settings_for(data_dir, database_url=database_url)
    try:
        summary = restore_backup(settings, archive, read_passphrase(passphrase_file))
    except BackupError as exc:
        fail(str(exc))
    typer.echo(
        f"restored the backup of {summary.created_at} (network {summary.network_id}, "
        f"{summary.backend}, revision {','.join(summary.revision)}) into {settings.data_dir}"
    )
    # Read again: a policy restored into the data dir is the one the server now reads.
    settings = settings_for(data_dir, database_url=database_url)
    if summary.policy_sha256 not in (None, _sha256_of(settings.policy_file)):
        typer.echo(
            f"note: {settings.policy_file} is not the policy file the backup was taken with "
            "(its SHA-256 differs); put that one back if it was not changed on purpose",
            err=True,
        )
    report_audit(open_context(None, settings=settings), [])


def _sha256_of(path: Path) -> str | None:
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


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
    database_url: DatabaseUrlOption = None,
) -> None:
    """Check every signed tree head, that the entries still make the trees they sign, and the
    hash chain of entries from before the log; exit 1 naming the first problem."""
    known = [bytes.fromhex(p.read_text().split()[0]) for p in head or []]
    settings = settings_for(data_dir, database_url=database_url)
    report_audit(open_context(None, settings=settings), known)


def report_audit(ctx: AppContext, known: list[bytes]) -> None:
    """What `audit verify` prints and exits with; `restore` ends with it too."""
    from server.transparency.verify import verify_trail

    with session_scope(ctx) as session:
        report = verify_trail(
            session,
            ctx.keys.audit_key.public_key(),
            ctx.keys.audit_key_id,
            network_id=ctx.keys.network_id,
            known_heads=known,
            earlier_keys=ctx.keys.signing_publics[:-1],
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
    # The secretariat hears of it whoever ran the verification (at most once a day a finding).
    from server.notifications.services import Event, notify

    with session_scope(ctx) as session:
        notify(
            session,
            ctx,
            Event.AUDIT_VERIFICATION_FAILED,
            facts={"problem": str(first.kind), "entry": first.seq},
        )
    raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint(
    data_dir: DataDirOption = None, database_url: DatabaseUrlOption = None
) -> None:
    """Seal what was appended and sign a tree head now (the server does it every
    `audit_seal_interval_seconds` by itself)."""
    from server.transparency.sealer import latest_head, seal

    ctx = open_context(None, settings=settings_for(data_dir, database_url=database_url))
    with session_scope(ctx) as session:
        sealed = seal(session, ctx) or latest_head(session)
        size, root = (sealed.tree_size, sealed.root_hash) if sealed else (0, "-")
    typer.echo(f"tree head signed at {size} leaves (root {root})")


def main() -> None:
    """Console entry point (`refcheck-server`)."""
    app(prog_name="refcheck-server")


# --- rotating the token-signing key and the network signing key (docs/operations.md) ---------


@keys_app.command("rotate-token")
def keys_rotate_token(
    data_dir: DataDirOption = None,
    database_url: DatabaseUrlOption = None,
    no_overlap: Annotated[
        bool,
        typer.Option(
            "--no-overlap",
            help="The old key leaked: refuse every token it signed at once (clients sign in "
            "again by themselves) instead of letting them run out.",
        ),
    ] = False,
) -> None:
    """Rotate the access-token key. Tokens the old key signed keep verifying until they expire
    (the JWKS lists both keys) unless --no-overlap; running workers follow within a second."""
    from server.audit.services import record
    from server.keys import rotate_token_key

    settings = settings_for(data_dir, database_url=database_url)
    ctx = open_context(None, settings=settings)
    with session_scope(ctx) as session:
        rotation = rotate_token_key(settings.server_key_dir, keep_previous=not no_overlap)
        record(
            session,
            ctx,
            None,
            "key.rotate",
            object_type="token_key",
            object_id=rotation.new_key_id,
            details={
                "key": "token-signing",
                "prev_key_id": rotation.old_key_id,
                "overlap": not no_overlap,
            },
        )
    typer.echo(
        f"token-signing key rotated: {rotation.new_key_id} (was {rotation.old_key_id}; "
        + ("its tokens are refused now)" if no_overlap else "its tokens verify until they expire)")
    )


@keys_app.command("rotate-signing")
def keys_rotate_signing(
    data_dir: DataDirOption = None, database_url: DatabaseUrlOption = None
) -> None:
    """Rotate the network signing key: the old key signs the new one into the signing history
    (served with GET /v1/network/keys), the OPRF key announcements are signed again, a filter
    revision and a tree head are signed with the new key. Prints the new fingerprint: credentials
    files issued from now on, and the MoU annex, name it."""
    from server.signing_rotation import rotate_network_signing_key

    settings = settings_for(data_dir, database_url=database_url)
    ctx = open_context(None, settings=settings)
    rotation, _framed = rotate_network_signing_key(ctx)
    typer.echo(
        f"network signing key rotated: {rotation.new_key_id} (was {rotation.old_key_id})\n"
        f"network_signing_key_sha256: {ctx.keys.signing_key_sha256}"
    )


if __name__ == "__main__":
    main()
