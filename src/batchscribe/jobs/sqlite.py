"""The job store in SQLite (WAL) on local disk: the embedded default, for one machine.

Each thread of each process gets its own connection (sqlite3 connections are not safe to share:
one thread's BEGIN inside another's transaction fails, and its ROLLBACK undoes the other's work).
Writes take the database lock up front (BEGIN IMMEDIATE), so concurrent claimers queue on
SQLite's busy timeout instead of deadlocking; reads see one consistent snapshot.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Union

from batchscribe.jobs import migrations
from batchscribe.jobs.sql import DEFAULT_BACKOFF_SECONDS, DEFAULT_MAX_ATTEMPTS, SqlJobStore
from batchscribe.jobs.store import (
    JOB_COLUMNS,
    MAX_LOST_LEASES,
    Job,
    StoreMissing,
    store_location,
)
from batchscribe.storage.base import StoredObject

BUSY_TIMEOUT_SECONDS = 60


def _busy_retried(db: sqlite3.Connection, statement: str) -> None:
    """Run `statement`, waiting up to BUSY_TIMEOUT_SECONDS while another connection holds the lock.

    SQLite answers SQLITE_BUSY at once, without calling the busy handler that `timeout` sets, when
    waiting could deadlock: setting journal_mode=WAL while several processes open a new store
    together is such a case (https://www.sqlite.org/c3ref/busy_handler.html). Raises
    sqlite3.OperationalError when the lock is still held at the deadline, or on any other error.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    delay = 0.001
    while True:
        try:
            db.execute(statement)
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(2 * delay, 0.1)


class _Held:
    """A thread's connection, closed when the thread ends and its thread-local slot goes (the
    webhook's server starts a thread per request: their connections must not pile up)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.pid = os.getpid()

    def __del__(self) -> None:
        self.db.close()


class SqliteJobStore(SqlJobStore):
    def __init__(
        self,
        location: Union[str, os.PathLike],
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
        create: bool = True,
    ):
        self.location = store_location(location)
        if self.location.kind != "sqlite":
            raise ValueError(f"{self.location}: not a SQLite store")
        self.path = Path(self.location.target)
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self._create = create
        if not create and not self.path.is_file():
            raise StoreMissing(
                f"no job store at {self.path}: give the one your workers use with --store or BATCHSCRIBE_STORE"
            )
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: weakref.WeakSet[_Held] = weakref.WeakSet()  # for close()
        self._migrate()

    def _db(self) -> sqlite3.Connection:
        """This thread's connection (a forked child opens its own: a parent's must not be reused)."""
        held = getattr(self._local, "held", None)
        if held is not None and held.pid == os.getpid():
            return held.db
        target = str(self.path) if self._create else self.path.as_uri() + "?mode=rw"
        db = sqlite3.connect(
            target, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False, uri=not self._create
        )
        db.row_factory = sqlite3.Row
        _busy_retried(db, "PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a committed state survives a crash of the machine
        self._local.held = held = _Held(db)
        self._connections.add(held)
        return db

    def close(self) -> None:
        for held in list(self._connections):
            held.db.close()
        self._local = threading.local()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front so concurrent claimers queue instead of deadlocking."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One consistent snapshot for several SELECTs."""
        db = self._db()
        db.execute("BEGIN")
        try:
            yield db
        finally:
            if db.in_transaction:
                db.execute("COMMIT")

    def _now(self, cur: object) -> float:
        return time.time()

    def _migrate(self) -> None:
        with self._write() as db:
            table = migrations.MIGRATIONS_TABLE
            db.execute(f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY, applied REAL NOT NULL)")
            applied = {row[0] for row in db.execute(f"SELECT version FROM {table}")}
            for version, script in migrations.pending(migrations.SQLITE, applied):
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"INSERT INTO {table} VALUES (?, ?)", (version, time.time()))

    def enqueue(self, source: StoredObject, dest_root: str) -> Optional[int]:
        now = time.time()
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO jobs (source_root, key, version, dest_root, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (source.root, source.key, source.version, dest_root, now, now),
            )
            return cursor.lastrowid if cursor.rowcount else None

    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Job]:
        now = time.time()
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET state='dead', updated=?, lease_owner=NULL, finished=?, "
                "last_error='the worker stopped (killed or crashed) ' || (lost_leases + 1) || "
                "' times while transcribing this file' "
                "WHERE state='running' AND lease_expires < ? AND lost_leases + 1 >= ?",
                (now, now, now, MAX_LOST_LEASES),
            )
            rows = db.execute(
                "UPDATE jobs SET state='running', lease_owner=?, lease_expires=?, updated=?, "
                "lost_leases = lost_leases + (state = 'running') "
                "WHERE id IN (SELECT id FROM jobs WHERE (state IN ('queued', 'retrying') AND not_before <= ?) "
                f"OR (state='running' AND lease_expires < ?) ORDER BY id LIMIT ?) RETURNING {JOB_COLUMNS}",
                (owner, now + lease_seconds, now, now, now, limit),
            ).fetchall()
        return sorted((Job(**dict(row)) for row in rows), key=lambda job: job.id)

    def _succeeded_by_bucket(self, since: float, bucket_seconds: int) -> dict[int, tuple[int, float]]:
        with self._read() as db:
            rows = db.execute(
                "SELECT CAST((finished - ?) / ? AS INTEGER), COUNT(*), COALESCE(SUM(audio_seconds), 0) FROM jobs "
                "WHERE state='succeeded' AND finished >= ? GROUP BY 1",
                (since, bucket_seconds, since),
            ).fetchall()
        return {row[0]: (row[1], row[2]) for row in rows}
