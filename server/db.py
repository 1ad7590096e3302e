"""Database plumbing shared by every domain: the declarative base, column shortcuts, sessions.

SQLite (embedded, for `make run` and the default test run) and PostgreSQL (production, CI) must
behave the same, so timestamps are stored timezone-aware on both and ids are UUIDs generated here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
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
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool


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


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        connect_args = {"check_same_thread": False}
        memory = url in ("sqlite://", "sqlite:///:memory:")
        if memory:
            kwargs.setdefault("poolclass", StaticPool)
        engine = create_engine(url, connect_args=connect_args, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite opens transactions lazily and silently commits around DDL and SAVEPOINT;
            # taking BEGIN over ourselves (SQLAlchemy's documented recipe) makes transactions and
            # savepoints mean on SQLite what they mean on PostgreSQL.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            # Foreign keys are off by default in SQLite; WAL lets readers proceed during a write.
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
                # Reads through a memory map instead of a read() per page: a check's buckets are
                # thousands of rows on scattered pages in a large registry, and this halved the
                # time to fetch them at a million pseudonyms. Capped by SQLite's own build limit.
                cur.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # IMMEDIATE takes the write lock up front: two writers that both read the audit head
            # and then upgrade to write would otherwise fail with SQLITE_BUSY (or, worse, fork the
            # chain). SQLite has one writer anyway; PostgreSQL uses row locks instead.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def make_session_factory(bind: Engine | Connection) -> sessionmaker[Session]:
    """Sessions for the app. Bound to a `Connection` (tests), each session works in a SAVEPOINT
    of the connection's outer transaction, so a route's `commit()` is real for the code under
    test yet the test's rollback still undoes everything."""
    if isinstance(bind, Connection):
        return sessionmaker(
            bind=bind, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
    return sessionmaker(bind=bind, expire_on_commit=False)


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
