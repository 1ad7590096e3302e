"""Database plumbing shared by every domain: the declarative base, column shortcuts, sessions.

SQLite (embedded, for `make run` and the default test run) and PostgreSQL (production, CI) must
behave the same, so timestamps are stored timezone-aware on both and ids are UUIDs generated here.

Who commits (issue 21), in one place:

- A request's session (`server.auth.deps.Db`) is the request's one transaction: it commits
  when the route returns, before the response is sent, and rolls back when anything raises.
  Routes and services only `flush` (to get ids, sequence numbers, constraint errors), so a
  domain error raised half-way, after a flush, leaves the database as it was.
- Where the OPRF key's work leaves the server or begins in transactions of its own, the service
  commits first with `commit_for_key_work`, which says why (checks, entry claims, registrations
  and re-keys, the first key announcement, the rotation job).
- A refused check is recorded after its transaction is rolled back, in a transaction of its
  own (`server.checks.services.record_refused_check`): the refusal's rollback must not undo it.
- Background work owns its sessions and commits them through `transaction`: the periodic
  jobs (`server.jobs` commits each job's session: retention, deadlines, notices, rotation),
  the transparency sealer (a seal per transaction), the notification worker (a delivery per
  transaction), the rotation itself (`server.oprf.rotation.rotate`), the CLI
  (`server.cli_common.session_scope`) and start-up.
- The audit export streams after its route has returned, from a session of its own
  (`server.audit.services.export_session`), read-only.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    Connection,
    DateTime,
    Engine,
    MetaData,
    String,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool

from server.settings import Settings
from server.sqlite_writers import WriterQueue, raw_connection


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on every backend.

    SQLite drops tzinfo; comparing a naive value read back with an aware `now()` would raise or,
    worse, compare wrongly and keep a record past its retention date.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


# Column shortcuts (warehouse style). UUIDs are stored as 36-char strings: identical on both
# backends and readable in the audit trail.
UUIDPK = Annotated[str, mapped_column(String(36), primary_key=True, default=new_id)]
UUIDFK = Annotated[str, mapped_column(String(36))]
CreatedAt = Annotated[datetime, mapped_column(UTCDateTime(), default=utcnow)]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
        list[dict[str, Any]]: JSON(),
    }


#: SQLite's default upper limit for memory-mapped I/O (SQLITE_MAX_MMAP_SIZE); address space, not
#: memory: the pages are the operating system's file cache, shared with every process.
SQLITE_MMAP_BYTES = 0x7FFF0000

#: How long a statement may wait for a lock when the caller names nothing: SQLite's busy timeout.
DEFAULT_LOCK_WAIT_SECONDS = 10.0


class Begin(StrEnum):
    """How a transaction begins on SQLite; PostgreSQL takes row locks as it goes either way.

    `WRITE` (BEGIN IMMEDIATE) takes the database's one write lock up front: two writers that both
    read the audit head and then upgrade to write would otherwise fail with SQLITE_BUSY (or,
    worse, fork the chain). `READ` (BEGIN DEFERRED) takes no lock at all in WAL mode: it reads a
    snapshot while writers go on. A read-only request must never begin `WRITE`: it would queue
    behind every writer for a lock it does not need, and make every writer queue behind it.
    """

    READ = "DEFERRED"
    WRITE = "IMMEDIATE"


#: Execution options read by the engine's `begin` listeners (`make_engine`, `bind_for`).
BEGIN_OPTION = "refcheck_begin"
STATEMENT_TIMEOUT_OPTION = "refcheck_statement_timeout_ms"


def make_engine(url: str, *, lock_wait_seconds: float | None = None, **kwargs: Any) -> Engine:
    """An engine for `url`; pool arguments (`pool_size`, `max_overflow`, `pool_timeout`) pass
    through. `lock_wait_seconds` is SQLite's busy timeout: how long a writer waits for the
    write lock before the statement fails (default `DEFAULT_LOCK_WAIT_SECONDS`)."""
    if url.startswith("sqlite"):
        connect_args = {"check_same_thread": False}
        memory = url in ("sqlite://", "sqlite:///:memory:")
        if memory:
            kwargs.setdefault("poolclass", StaticPool)
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        wait = DEFAULT_LOCK_WAIT_SECONDS if lock_wait_seconds is None else lock_wait_seconds
        busy_ms = int(1000 * wait)
        database = engine.url.database
        on_file = bool(database) and database != ":memory:" and "mode=memory" not in url
        writers = _queue_writers(engine, Path(database or ""), wait) if on_file else None

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite opens transactions lazily and silently commits around DDL and SAVEPOINT;
            # taking BEGIN over ourselves (SQLAlchemy's documented recipe) makes transactions and
            # savepoints mean on SQLite what they mean on PostgreSQL.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            # Foreign keys are off by default in SQLite; WAL lets readers proceed during a write.
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            # Deleted rows (withdrawn and purged cases, ended requests) are overwritten with
            # zeros, not left readable in free pages of a file someone may copy. Some SQLite
            # builds do this by default, others do not.
            cur.execute("PRAGMA secure_delete=ON")
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
                # Reads through a memory map instead of a read() per page: a check's buckets are
                # thousands of rows on scattered pages in a large registry, and this halved the
                # time to fetch them at a million pseudonyms. Capped by SQLite's own build limit.
                cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # WRITE unless the session said otherwise (`bind_for`): a job, a CLI command or a
            # test that forgot to say stays correct, if slower (`Begin`).
            begin = Begin(conn.get_execution_options().get(BEGIN_OPTION, Begin.WRITE))
            statement = f"BEGIN {begin.value}"
            if writers is None or begin != Begin.WRITE:
                conn.exec_driver_sql(statement)
                return
            raw = raw_connection(conn.connection)
            try:
                writers.acquire(raw)
            except sqlite3.OperationalError as exc:
                # Raised in an event listener, which SQLAlchemy does not wrap as it wraps the
                # driver's errors: wrapped here, the app answers it 503 `busy` as it answers
                # SQLite's own "database is locked" (`server.problems.database_busy`).
                raise OperationalError(statement, None, exc) from exc
            try:
                conn.exec_driver_sql(statement)
            except BaseException:
                writers.release(raw)
                raise

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "begin")
        def _postgres_begin(conn: Connection) -> None:
            # Per transaction and only for the sessions of requests (`bind_for`): a periodic
            # job's retention sweep or a migration may legitimately run longer than a request.
            timeout_ms = conn.get_execution_options().get(STATEMENT_TIMEOUT_OPTION)
            if timeout_ms:
                conn.exec_driver_sql(
                    "SELECT set_config('statement_timeout', %(ms)s, true)",
                    {"ms": f"{timeout_ms}ms"},
                )

    return engine


def _queue_writers(engine: Engine, database: Path, wait_seconds: float) -> WriterQueue:
    """`server.sqlite_writers`: the engine's write transactions take a turn of the file's
    writer queue at BEGIN and give it back when they end, however they end."""
    writers = WriterQueue(database.resolve(), wait_seconds)
    dialect = engine.dialect

    def releasing(end: Callable[[Any], None]) -> Callable[[Any], None]:
        def ended(dbapi_connection: Any) -> None:
            try:
                end(dbapi_connection)
            finally:
                writers.release(raw_connection(dbapi_connection))

        return ended

    # The dialect is this engine's own (and its `execution_options` copies'); SQLAlchemy has no
    # event after a commit or rollback, only before.
    dialect.do_commit = releasing(dialect.do_commit)  # type: ignore[method-assign, assignment]
    dialect.do_rollback = releasing(dialect.do_rollback)  # type: ignore[method-assign, assignment]

    @event.listens_for(engine, "close")
    def _closed(dbapi_connection: Any, _record: Any) -> None:
        writers.release(dbapi_connection)

    @event.listens_for(engine, "invalidate")
    def _invalidated(dbapi_connection: Any, _record: Any, _exc: Any) -> None:
        writers.release(dbapi_connection)

    return writers


def engine_arguments(settings: Settings) -> dict[str, Any]:
    """The pool and lock-wait arguments of the server's engine (README, "What to tune").

    A pool timeout shorter than the admission queue's wait: an admitted request that still finds
    no connection is told "busy" (503) rather than held past the point of being useful.
    """
    url = settings.effective_database_url
    arguments: dict[str, Any] = {"lock_wait_seconds": settings.database_statement_timeout_seconds}
    if url not in ("sqlite://", "sqlite:///:memory:"):
        arguments.update(
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_pool_max_overflow,
            pool_timeout=settings.database_pool_timeout_seconds,
        )
    return arguments


def bind_for(
    bind: Engine | Connection, begin: Begin, *, statement_timeout: float | None = None
) -> Engine | Connection:
    """`bind` for a session whose transactions begin as `begin` says (SQLite) and whose
    statements may each run `statement_timeout` seconds (PostgreSQL; on SQLite a writer's wait
    for the lock is bounded by the engine's busy timeout instead).

    Same pool, same connections: only the execution options differ. A `Connection` (the tests'
    outer transaction, where every session is a SAVEPOINT of one transaction) is returned as is.
    """
    if not isinstance(bind, Engine):
        return bind
    key = (begin, statement_timeout)
    cache: dict[tuple[Begin, float | None], Engine] = bind.__dict__.setdefault(
        "_refcheck_binds", {}
    )
    found = cache.get(key)
    if found is None:
        options: dict[str, Any] = {BEGIN_OPTION: begin}
        if statement_timeout:
            options[STATEMENT_TIMEOUT_OPTION] = max(1, int(statement_timeout * 1000))
        found = cache[key] = bind.execution_options(**options)
    return found


def is_sqlite(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "sqlite"


@contextmanager
def read_step(session: Session) -> Iterator[Session]:
    """Run a short read (authentication) in a transaction of its own that begins as a read,
    when `session` would begin its transactions as a write and has none open yet.

    On SQLite the read then takes no lock, and the request's own work begins its write
    transaction after it: a request waiting for the write lock has at least been authenticated,
    and an unauthenticated flood never queues for it. Anywhere else (PostgreSQL, a session that
    reads anyway, a transaction already open) the read simply runs in the session.
    """
    bind = session.bind
    if (
        session.in_transaction()
        or not isinstance(bind, Engine)
        or not is_sqlite(bind)
        or bind.get_execution_options().get(BEGIN_OPTION, Begin.WRITE) == Begin.READ
    ):
        yield session
        return
    session.bind = bind_for(bind, Begin.READ)
    try:
        yield session
    finally:
        # Ends the read (releasing its snapshot and connection) before the write begins.
        session.rollback()
        session.bind = bind


def make_session_factory(bind: Engine | Connection) -> sessionmaker[Session]:
    """Sessions for the app. Bound to a `Connection` (tests), each session works in a SAVEPOINT
    of the connection's outer transaction, so a request's commit is real for the code under
    test yet the test's rollback still undoes everything."""
    if isinstance(bind, Connection):
        return sessionmaker(
            bind=bind, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
    return sessionmaker(bind=bind, expire_on_commit=False)


def commit_for_key_work(session: Session) -> None:
    """Commit now, inside a service, because the OPRF key's work is about to leave the server
    or to begin in transactions of its own; everywhere else the request commits (module doc).

    - An answer that carries the key's work (a check's evaluations, the handles of claimed
      entries, a registration's filter values, a signed key announcement) is built only after
      what accounts for that work is durable: the quota and consent budget spent, the check or
      case with its audit entry, the claim, the announcement in the log. Then no evaluation
      exists that the records do not count, and a failed commit refuses the work instead of
      handing it out uncounted. It holds whoever calls the service (a route, the in-process
      load test, a script), not only behind `Db`.
    - A rotation writes in transactions of its own: on SQLite a write still open in the job's
      session would lock them out.
    """
    session.commit()


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back everything on any error.

    This is what makes "a failure half-way leaves the database as it was" true for services.
    """
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
