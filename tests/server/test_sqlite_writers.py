"""Writers to one SQLite file take turns in `server.sqlite_writers.WriterQueue` (a thread lock
within an engine, an `flock` on `<database>-writer` across engines and processes), not in
SQLite's busy handler; the wait is bounded; the turn is given back however a transaction ends;
reads never take it; in-memory engines have no queue.

Every test runs on real SQLite files under `tmp_path`, with one table made by plain SQL. Writers
that must queue have `PRAGMA busy_timeout=0`: without the queue their `BEGIN IMMEDIATE` would fail
at once while another writer holds SQLite's lock (the controls show it does). Ordering is by
`threading.Event`s and by what a transaction reads, never by durations; the few `sleep`s only
make the contended case likely, and the joins' timeouts only guard against a hang.
"""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc

from server.db import Begin, bind_for, make_engine
from server.problems import database_busy

ROOT = Path(__file__).resolve().parents[2]

#: How long a holder keeps its write once the other writer is about to begin: long enough that
#: the other writer is almost surely waiting (not asserted).
HOLD_SECONDS = 0.3
#: A hang guard for joins and event waits, never an assertion about speed.
GUARD_SECONDS = 20.0


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    """Engines to dispose of at the end of the test (append to it)."""
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.dispose()


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A database file with one table `t (id, v)`, made through an engine of its own."""
    address = f"sqlite:///{tmp_path / 'writers.db'}"
    engine = make_engine(address)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
            conn.execute(text("INSERT INTO t (v) VALUES ('committed')"))
    finally:
        engine.dispose()
    return address


def _insert(conn: Connection, value: str) -> None:
    conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})


def _values(conn: Connection) -> list[str]:
    return list(conn.execute(text("SELECT v FROM t ORDER BY id")).scalars())


def _no_busy_wait(engine: Engine) -> Engine:
    """`engine`, its connections with SQLite's busy handler off (after `make_engine`'s own
    pragmas): a `BEGIN IMMEDIATE` that finds the lock taken fails at once."""

    @event.listens_for(engine, "connect")
    def _busy_timeout_zero(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()

    return engine


def _plain_engine(url: str) -> Engine:
    """The control: what `make_engine` did before the queue (BEGIN IMMEDIATE over pysqlite, WAL)
    with the busy handler off, and no queue."""
    engine = create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


#: A holder (`_hold_on`, `_other_process_hold`): opens its write, inserts 'holder', sets its
#: first event, waits for the second (the writer about to begin), keeps its write `HOLD_SECONDS`
#: more, then commits.
Hold = Callable[[threading.Event, threading.Event], None]


def _write_while_held(writer_engine: Engine, hold: Hold) -> BaseException | None:
    """Write on `writer_engine` in a thread while `hold`, in a thread of its own, keeps another
    write open until the writer is about to begin and `HOLD_SECONDS` more.

    Returns what the writer raised (None when it wrote); a writer that wrote must have seen the
    holder's row, i.e. it began its write after the holder committed.
    """
    begins = threading.Event()
    has_write = threading.Event()
    outcome: list[BaseException | None] = []
    seen: list[list[str]] = []
    holder_errors: list[BaseException] = []

    def _write() -> None:
        try:
            begins.set()
            with writer_engine.begin() as conn:
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 0
                seen.append(_values(conn))
                _insert(conn, "writer")
        except BaseException as exc:  # handed to the test
            outcome.append(exc)
        else:
            outcome.append(None)

    def _hold() -> None:
        try:
            hold(has_write, begins)
        except BaseException as exc:  # handed to the test
            holder_errors.append(exc)
            has_write.set()

    holding = threading.Thread(target=_hold, daemon=True)
    holding.start()
    assert has_write.wait(GUARD_SECONDS), "the holder never opened its write"
    assert not holder_errors, holder_errors
    writer = threading.Thread(target=_write, daemon=True)
    writer.start()
    writer.join(GUARD_SECONDS)
    holding.join(GUARD_SECONDS)
    assert not writer.is_alive() and not holding.is_alive(), "a writer hung"
    assert not holder_errors, holder_errors
    (result,) = outcome
    if result is None:
        assert seen == [["committed", "holder"]], "the writer wrote before the holder committed"
    return result


def _hold_on(engine: Engine) -> Hold:
    """A holder whose write is on `engine`, in this process."""

    def _hold(has_write: threading.Event, begins: threading.Event) -> None:
        with engine.begin() as conn:
            _insert(conn, "holder")
            has_write.set()
            assert begins.wait(GUARD_SECONDS), "the writer never began"
            time.sleep(HOLD_SECONDS)

    return _hold


def _other_process_hold(url: str) -> Hold:
    """A holder whose write is in another Python process (`make_engine` there): only the
    `flock` on `<database>-writer` can make this process's writer wait for it."""
    script = (
        "import sys\n"
        "from sqlalchemy import text\n"
        "from server.db import make_engine\n"
        "engine = make_engine(sys.argv[1], lock_wait_seconds=5)\n"
        "with engine.begin() as conn:\n"
        "    conn.execute(text(\"INSERT INTO t (v) VALUES ('holder')\"))\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.readline()\n"
        "engine.dispose()\n"
        "print('committed', flush=True)\n"
    )

    def _hold(has_write: threading.Event, begins: threading.Event) -> None:
        process = subprocess.Popen(
            [sys.executable, "-c", script, url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None and process.stdin is not None
            assert process.stdout.readline().strip() == "held"
            has_write.set()
            assert begins.wait(GUARD_SECONDS), "the writer never began"
            time.sleep(HOLD_SECONDS)
            process.stdin.write("\n")
            process.stdin.flush()
            assert process.stdout.readline().strip() == "committed"
            assert process.wait(GUARD_SECONDS) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()

    return _hold


# 1 and 2: writers queue on the turn instead of in SQLite's busy handler.


def test_a_writer_waits_for_a_write_held_on_the_same_engine_without_sqlites_busy_handler(
    url: str, engines: list[Engine]
) -> None:
    engine = _no_busy_wait(make_engine(url, lock_wait_seconds=5))
    engines.append(engine)
    assert _write_while_held(engine, _hold_on(engine)) is None


def test_a_writer_waits_for_a_write_held_on_another_engine_on_the_same_file(
    url: str, engines: list[Engine]
) -> None:
    """Two `make_engine`s are two queues: only the `flock` orders them, as between workers."""
    holder = make_engine(url, lock_wait_seconds=5)
    writer = _no_busy_wait(make_engine(url, lock_wait_seconds=5))
    engines += [holder, writer]
    assert _write_while_held(writer, _hold_on(holder)) is None


def test_a_writer_waits_for_a_write_held_by_another_process(
    url: str, engines: list[Engine]
) -> None:
    writer = _no_busy_wait(make_engine(url, lock_wait_seconds=5))
    engines.append(writer)
    assert _write_while_held(writer, _other_process_hold(url)) is None


@pytest.mark.parametrize("same_engine", [True, False], ids=["same engine", "two engines"])
def test_without_the_queue_the_same_writer_fails_at_once_with_database_locked(
    url: str, engines: list[Engine], same_engine: bool
) -> None:
    """The control for the three tests above: no queue and no busy handler, and the writer's
    BEGIN IMMEDIATE fails while the holder writes; so they pass only because the writer queued."""
    writer = _plain_engine(url)
    holder = writer if same_engine else _plain_engine(url)
    engines += [writer, holder]
    failure = _write_while_held(writer, _hold_on(holder))
    assert isinstance(failure, sa_exc.OperationalError)
    assert "database is locked" in str(failure)


# 3: the wait is bounded.


def _write_in_thread_while_held(
    url: str, engines: list[Engine], *, same_engine: bool
) -> BaseException | None:
    """A write with `lock_wait_seconds=0.3` while another connection holds the turn (of the same
    engine, or of another engine on the file); returns what it raised."""
    holder = make_engine(url, lock_wait_seconds=0.3)
    writer = holder if same_engine else make_engine(url, lock_wait_seconds=0.3)
    engines += [holder, writer]
    outcome: list[BaseException | None] = []

    def _write() -> None:
        try:
            with writer.begin() as conn:
                _insert(conn, "writer")
        except BaseException as exc:  # handed to the test
            outcome.append(exc)
        else:
            outcome.append(None)

    with holder.connect() as held, held.begin():
        _insert(held, "holder")
        thread = threading.Thread(target=_write, daemon=True)
        thread.start()
        thread.join(GUARD_SECONDS)
        assert not thread.is_alive(), "the writer's wait for the turn is not bounded"
    (result,) = outcome
    return result


@pytest.mark.parametrize("same_engine", [True, False], ids=["same engine", "two engines"])
def test_a_writer_stops_waiting_for_the_turn_after_lock_wait_seconds_with_database_locked(
    url: str, engines: list[Engine], same_engine: bool
) -> None:
    failure = _write_in_thread_while_held(url, engines, same_engine=same_engine)
    assert isinstance(failure, (sqlite3.OperationalError, sa_exc.OperationalError))
    assert "database is locked" in str(failure)


@pytest.mark.parametrize("same_engine", [True, False], ids=["same engine", "two engines"])
def test_a_writer_that_waited_too_long_for_the_turn_is_told_the_database_is_busy(
    url: str, engines: list[Engine], same_engine: bool
) -> None:
    failure = _write_in_thread_while_held(url, engines, same_engine=same_engine)
    assert isinstance(failure, sa_exc.OperationalError), repr(failure)
    assert "database is locked" in str(failure)
    assert database_busy(failure)


# 4: the turn is given back however a transaction ends.


def _commit(conn: Connection) -> None:
    conn.begin()
    _insert(conn, "ended")
    conn.commit()


def _rollback(conn: Connection) -> None:
    conn.begin()
    _insert(conn, "ended")
    conn.rollback()


def _raise_inside(conn: Connection) -> None:
    with pytest.raises(RuntimeError, match="inside"), conn.begin():
        _insert(conn, "ended")
        raise RuntimeError("inside the transaction")


def _invalidate(conn: Connection) -> None:
    conn.begin()
    _insert(conn, "ended")
    conn.invalidate()


@pytest.mark.parametrize(
    "end",
    [_commit, _rollback, _raise_inside, _invalidate],
    ids=["commit", "rollback", "exception inside begin()", "invalidated"],
)
def test_the_turn_is_given_back_when_the_transaction_ends_while_its_connection_stays_out(
    url: str, engines: list[Engine], end: Callable[[Connection], None]
) -> None:
    """The connection is kept checked out after its transaction ends, so the pool's
    reset-on-return (a rollback) cannot be what gives the turn back."""
    first = make_engine(url, lock_wait_seconds=0.5)
    other = make_engine(url, lock_wait_seconds=0.5)
    engines += [first, other]
    conn = first.connect()
    try:
        end(conn)
        with other.begin() as later:  # the flock was given back
            _insert(later, "other engine")
        with first.begin() as later:  # and the engine's own lock
            _insert(later, "same engine")
    finally:
        conn.close()


def test_the_turn_is_given_back_after_an_exception_inside_engine_begin(
    url: str, engines: list[Engine]
) -> None:
    first = make_engine(url, lock_wait_seconds=0.5)
    other = make_engine(url, lock_wait_seconds=0.5)
    engines += [first, other]
    with pytest.raises(RuntimeError, match="inside"), first.begin() as conn:
        _insert(conn, "rolled back")
        raise RuntimeError("inside the transaction")
    with other.begin() as later:
        _insert(later, "other engine")
    with first.begin() as later:
        _insert(later, "same engine")
        assert _values(later) == ["committed", "other engine", "same engine"]


def test_the_turn_is_given_back_when_begin_immediate_itself_fails(
    url: str, tmp_path: Path, engines: list[Engine]
) -> None:
    """A writer that does not queue (plain sqlite3) holds SQLite's lock: the queued writer gets
    the turn, then its BEGIN IMMEDIATE fails; the turn must not stay with it."""
    first = _no_busy_wait(make_engine(url, lock_wait_seconds=0.5))
    other = make_engine(url, lock_wait_seconds=0.5)
    engines += [first, other]
    outsider = sqlite3.connect(tmp_path / "writers.db", isolation_level=None)
    conn = first.connect()
    try:
        outsider.execute("BEGIN IMMEDIATE")
        with pytest.raises(sa_exc.OperationalError, match="database is locked"):
            conn.begin()
        outsider.execute("ROLLBACK")
        with other.begin() as later:
            _insert(later, "other engine")
        with first.begin() as later:
            _insert(later, "same engine")
    finally:
        conn.close()
        outsider.close()


# 5: reads never take the turn.


@pytest.mark.parametrize("same_engine", [True, False], ids=["same engine", "two engines"])
def test_a_read_transaction_neither_takes_nor_waits_for_the_turn(
    url: str, engines: list[Engine], same_engine: bool
) -> None:
    writing = make_engine(url, lock_wait_seconds=0.3)
    reading = writing if same_engine else make_engine(url, lock_wait_seconds=0.3)
    engines += [writing, reading]
    with writing.connect() as held, held.begin():
        _insert(held, "uncommitted")
        read = bind_for(reading, Begin.READ)
        assert isinstance(read, Engine)
        with read.connect() as conn, conn.begin():
            assert _values(conn) == ["committed"]
        # The write is really held: the same engine's writer times out meanwhile.
        with pytest.raises((sqlite3.OperationalError, sa_exc.OperationalError), match="locked"):
            with reading.begin() as conn:
                _insert(conn, "writer")


# 6: in-memory engines have no queue; a file engine's lock file is the owner's only.


def test_an_in_memory_engine_writes_without_a_queue_or_a_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engines: list[Engine]
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = make_engine("sqlite://", lock_wait_seconds=0.3)
    engines.append(engine)
    assert "do_commit" not in vars(engine.dialect)  # no queue wraps the commit
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"))
        _insert(conn, "first")
    with engine.begin() as conn:
        _insert(conn, "second")
    read = bind_for(engine, Begin.READ)
    assert isinstance(read, Engine)
    with read.connect() as conn, conn.begin():
        assert _values(conn) == ["first", "second"]
    assert list(tmp_path.iterdir()) == []


def test_a_file_engine_wraps_its_commit_for_the_queue(url: str, engines: list[Engine]) -> None:
    """The control for the in-memory test's `vars(dialect)` check."""
    engine = make_engine(url)
    engines.append(engine)
    assert "do_commit" in vars(engine.dialect)


def test_a_file_engines_writer_lock_file_is_readable_and_writable_by_its_owner_only(
    url: str, tmp_path: Path, engines: list[Engine]
) -> None:
    lock_file = tmp_path / "writers.db-writer"
    lock_file.unlink(missing_ok=True)  # the `url` fixture's own write made it
    engine = make_engine(url)
    engines.append(engine)
    with engine.begin() as conn:
        _insert(conn, "writer")
    assert stat.S_IMODE(lock_file.stat().st_mode) == 0o600
