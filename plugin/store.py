"""The embedded SQLite store: one file in the data dir, WAL, one writer thread.

Every statement runs on a single dedicated thread with its own connection, so the event loop
never blocks on disk and SQLite never sees two writers from this process. `queue.py`, `audit.py`
and `tenants.py` keep their SQL next to their own logic and call `run()` with a function of a
connection. SQLite errors that mean "cannot store right now" (disk full, locked, I/O error)
become `StoreUnavailableError`, which the webhook answers with 503 so the vendor retries.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

from .errors import ConfigError, StoreUnavailableError

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id           TEXT PRIMARY KEY,
    dedupe_key   TEXT NOT NULL UNIQUE,
    tenant_id    TEXT NOT NULL,
    vendor       TEXT NOT NULL,
    ref          TEXT NOT NULL,      -- TicketRef as JSON: ids and hints, never text
    priority     INTEGER NOT NULL,   -- higher is served first
    state        TEXT NOT NULL,      -- queued | leased | done | dead
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_run_at  REAL NOT NULL,
    lease_until  REAL,
    received_at  REAL NOT NULL,
    finished_at  REAL,
    last_error   TEXT                -- a reason CareRoute wrote, never vendor or ticket text
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (state, next_run_at);
-- Only finished jobs are purged by age: a partial index keeps every enqueue from writing
-- to it (an earlier (state, finished_at) index cost ~3 µs per webhook).
DROP INDEX IF EXISTS jobs_finished;
CREATE INDEX IF NOT EXISTS jobs_done_at ON jobs (finished_at) WHERE state = 'done';

CREATE TABLE IF NOT EXISTS journal (
    job_id  TEXT NOT NULL,
    step    TEXT NOT NULL,
    data    TEXT NOT NULL,
    at      REAL NOT NULL,
    PRIMARY KEY (job_id, step)
);

CREATE TABLE IF NOT EXISTS decisions (
    id          INTEGER PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    vendor      TEXT NOT NULL,
    ticket_id   TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    job_id      TEXT NOT NULL,
    event       TEXT NOT NULL,
    tier        TEXT NOT NULL,
    score       REAL NOT NULL,
    rule_ids    TEXT NOT NULL,
    categories  TEXT NOT NULL,
    flags       TEXT NOT NULL,
    language    TEXT NOT NULL,
    actions     TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    received_at REAL NOT NULL,
    decided_at  REAL NOT NULL,
    timings     TEXT NOT NULL,
    country     TEXT
);
CREATE INDEX IF NOT EXISTS decisions_ticket ON decisions (tenant_id, ticket_id, decided_at);
CREATE INDEX IF NOT EXISTS decisions_time ON decisions (decided_at);

CREATE TABLE IF NOT EXISTS oauth_tokens (
    tenant_id     TEXT PRIMARY KEY,
    access_token  TEXT NOT NULL,
    refresh_token TEXT,
    expires_at    REAL,
    updated_at    REAL NOT NULL
);
"""

# sqlite3.OperationalError messages that mean "try again later", not "bug".
_UNAVAILABLE = ("disk is full", "database is locked", "disk i/o error", "unable to open",
                "readonly database", "database or disk is full", "busy")


class Store:
    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000):
        self.path = Path(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="careroute-store")
        self._conn: sqlite3.Connection | None = None
        self._thread_id: int | None = None
        self._lock_file: int | None = None

    # -------------------------------------------------------------- lifecycle

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A batch's look-up and INSERT are prepared per batch size (1…64 rows): room for all of
        # them beside the other statements, so none is parsed again on every batch.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True,
                               cached_statements=512)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # enqueues use durable_transaction (FULL)
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(SCHEMA)
        self._conn = conn
        self._thread_id = threading.get_ident()

    async def open(self, *, exclusive: bool = False) -> "Store":
        """Open (and create) the database. `exclusive`: refuse if another service owns the dir."""
        if exclusive:
            self._lock_data_dir()
        await self.run(lambda _conn: None, _opening=True)
        return self

    def _lock_data_dir(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.parent / "careroute.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"another CareRoute process is using {self.path.parent}") from None
        self._lock_file = fd

    async def close(self) -> None:
        def _close(conn: sqlite3.Connection) -> None:
            conn.close()

        if self._conn is not None:
            try:
                await self.run(_close)
            finally:
                self._conn = None
        self._executor.shutdown(wait=True)
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None

    # -------------------------------------------------------------- running

    def _call(self, fn: Callable[[sqlite3.Connection], T], opening: bool) -> T:
        if self._conn is None:
            if not opening and self._thread_id is not None:
                raise StoreUnavailableError("store is closed")
            self._open()
        assert self._conn is not None
        return fn(self._conn)

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, _opening: bool = False) -> T:
        """Run `fn(connection)` on the store thread. Storage trouble → StoreUnavailableError."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._call, fn, _opening)
        except sqlite3.OperationalError as exc:
            if any(marker in str(exc).lower() for marker in _UNAVAILABLE):
                raise StoreUnavailableError("store unavailable") from None
            raise
        except RuntimeError as exc:  # executor shut down
            if "shutdown" in str(exc):
                raise StoreUnavailableError("store is closed") from None
            raise


def durable_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """A transaction whose commit is fsynced (synchronous=FULL) before it returns.

    The store runs at synchronous=NORMAL: in WAL mode a commit then survives a crash of the
    process but not of the machine. Worker bookkeeping can live with that (a lost ack or journal
    entry means an idempotent re-run). A job acknowledged to the helpdesk cannot: its enqueue
    commits through here, and that fsync also covers every earlier WAL frame.
    """
    conn.execute("PRAGMA synchronous=FULL")
    try:
        return transaction(conn, fn)
    finally:
        conn.execute("PRAGMA synchronous=NORMAL")


def transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run `fn` inside BEGIN IMMEDIATE … COMMIT; roll back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
    except BaseException:
        if conn.in_transaction:  # SQLite already rolled back on e.g. SQLITE_FULL
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result
