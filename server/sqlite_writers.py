"""Writers to one SQLite file wait their turn in a queue that wakes them, instead of polling.

SQLite has one write lock per database file. A `BEGIN IMMEDIATE` that finds it taken does not
wait on it: SQLite's busy handler sleeps and tries again, 1, 2, 5, 10, 15, 20, 25, 25, 25, 50,
50 and then 100 ms at a time, whenever the lock was freed meanwhile. Under load a writer then
sleeps long after the lock it waits for is free: with the checks of two workers taking it for a
millisecond or two each, `BEGIN IMMEDIATE` waited 3 ms at the median, 38 ms at the 90th
percentile and 330 ms at the 99th, and the workers sat idle for half the time (issue 17;
loadtests/README.md).

So every write transaction that `server.db.make_engine`'s engines begin on a database file first
takes this queue's turn, and gives it back when the transaction ends (commit, rollback, or the
connection closed or invalidated with it open):

* within a process, a `threading.Lock`: the next writer is woken as soon as the lock is free;
* across processes (uvicorn's workers, the CLI, the jobs), an exclusive `flock` on a file beside
  the database (`<database>-writer`), tried every 0.1 to 1 ms: one waiter per process polls,
  cheaply, instead of every thread sleeping in SQLite. Without `fcntl` (Windows) the thread
  lock alone applies, and processes meet in SQLite's busy handler as before.

The wait is bounded as SQLite's own is (`lock_wait_seconds`); past it the begin fails with
`sqlite3.OperationalError("database is locked")`, the error SQLite itself would raise, which
the app answers 503 `busy` (`server.problems.database_busy`). Then SQLite's own lock is almost
always free on `BEGIN IMMEDIATE`, and its busy handler is left for writers that do not queue
here (a read transaction that turns into a write).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

#: Polling interval of the cross-process lock, first and at most.
_FIRST_POLL = 0.0001
_MAX_POLL = 0.001


class WriterQueue:
    """The turn to write to one SQLite database file, for the connections of one engine."""

    def __init__(self, database: Path, wait_seconds: float) -> None:
        self._wait = wait_seconds
        self._turn = threading.Lock()
        self._file = Path(f"{database}-writer")
        self._fd: int | None = None
        self._fd_pid = 0
        #: Which DBAPI connections hold the turn (by `id`; a connection is forgotten when it
        #: gives the turn back, and when it is closed).
        self._holders: set[int] = set()

    def acquire(self, dbapi_connection: Any) -> None:
        """Wait for the turn, for at most the wait; then the caller runs `BEGIN IMMEDIATE`."""
        deadline = time.monotonic() + self._wait
        if not self._turn.acquire(timeout=self._wait):
            raise sqlite3.OperationalError("database is locked")
        try:
            self._lock_file(deadline)
        except BaseException:
            self._turn.release()
            raise
        self._holders.add(id(dbapi_connection))

    def release(self, dbapi_connection: Any) -> None:
        """Give the turn back, if this connection holds it (else nothing: a read ended)."""
        key = id(dbapi_connection)
        if key not in self._holders:
            return
        self._holders.discard(key)
        try:
            if fcntl is not None and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._turn.release()

    def _lock_file(self, deadline: float) -> None:
        if fcntl is None:
            return
        if self._fd is None or self._fd_pid != os.getpid():
            # Opened per process: a forked child sharing its parent's open file would share
            # its lock too, and the two would no longer exclude each other.
            self._fd = os.open(self._file, os.O_RDWR | os.O_CREAT, 0o600)
            self._fd_pid = os.getpid()
        poll = _FIRST_POLL
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise sqlite3.OperationalError("database is locked") from None
                time.sleep(poll)
                poll = min(_MAX_POLL, poll * 2)


def raw_connection(connection: Any) -> Any:
    """The DBAPI connection under SQLAlchemy's pool proxy (or the connection itself)."""
    return getattr(connection, "dbapi_connection", connection)
