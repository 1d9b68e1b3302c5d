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
from batchscribe.jobs.store import (
    JOB_COLUMNS,
    LETTER_COLUMNS,
    MAX_LOST_LEASES,
    STATES,
    UNFINISHED,
    DeadLetter,
    Job,
    JobState,
    JobStore,
    StoreMissing,
    StoreStatus,
    store_location,
)
from batchscribe.storage.objects import StoredObject

BUSY_TIMEOUT_SECONDS = 60


class _Held:
    """A thread's connection, closed when the thread ends and its thread-local slot goes (the
    webhook's server starts a thread per request: their connections must not pile up)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.pid = os.getpid()

    def __del__(self) -> None:
        self.db.close()


class SqliteJobStore(JobStore):
    def __init__(
        self,
        location: Union[str, os.PathLike],
        max_attempts: int = 3,
        backoff_seconds: float = 10.0,
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
        db.execute("PRAGMA journal_mode=WAL")
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

    def heartbeat(self, owner: str, job_ids: list[int], lease_seconds: float) -> int:
        with self._write() as db:
            expires = time.time() + lease_seconds
            held = 0
            for job_id in job_ids:
                held += db.execute(
                    "UPDATE jobs SET lease_expires=? WHERE id=? AND lease_owner=? AND state='running'",
                    (expires, job_id, owner),
                ).rowcount
            return held

    def succeed(self, job_id: int, owner: str, audio_seconds: float) -> bool:
        now = time.time()
        with self._write() as db:
            cursor = db.execute(
                "UPDATE jobs SET state='succeeded', audio_seconds=?, updated=?, finished=?, "
                "last_error=NULL WHERE id=? AND lease_owner=? AND state='running'",
                (audio_seconds, now, now, job_id, owner),
            )
            if cursor.rowcount == 1:
                return True
            again = "SELECT 1 FROM jobs WHERE id=? AND lease_owner=? AND state='succeeded'"
            return db.execute(again, (job_id, owner)).fetchone() is not None

    def fail(self, job_id: int, owner: str, error: str, permanent: bool = False) -> Optional[JobState]:
        now = time.time()
        with self._write() as db:
            row = db.execute(
                "SELECT attempts FROM jobs WHERE id=? AND lease_owner=? AND state='running'", (job_id, owner)
            ).fetchone()
            if row is None:
                return None
            attempts = row["attempts"] + 1
            state, not_before = self.next_failure(attempts, permanent, now)
            db.execute(
                "UPDATE jobs SET state=?, attempts=?, last_error=?, lease_owner=NULL, not_before=?, updated=?, "
                "finished=? WHERE id=?",
                (state.value, attempts, error, not_before, now, now if state is JobState.DEAD else None, job_id),
            )
        return state

    def release(self, owner: str, job_ids: list[int]) -> None:
        with self._write() as db:
            db.executemany(
                "UPDATE jobs SET state = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'queued' END, "
                "lease_owner=NULL, not_before=0, updated=? WHERE id=? AND lease_owner=? AND state='running'",
                [(time.time(), job_id, owner) for job_id in job_ids],
            )

    def retry(self, job_ids: Optional[list[int]] = None, dead: bool = False) -> int:
        now = time.time()
        reset = "UPDATE jobs SET state='queued', attempts=0, lost_leases=0, not_before=0, updated=?, finished=NULL "
        with self._write() as db:
            if dead:
                return db.execute(reset + "WHERE state='dead'", (now,)).rowcount
            return sum(
                db.execute(reset + "WHERE id=? AND state IN ('dead', 'retrying')", (now, job_id)).rowcount
                for job_id in job_ids or []
            )

    def dead_letter(self, origin: str, body: str, error: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO dead_letters (received, origin, body, error) VALUES (?, ?, ?, ?)",
                (time.time(), origin, body, error),
            )

    def jobs(self, state: Optional[str] = None, limit: int = 1000, offset: int = 0) -> list[Job]:
        where = " WHERE state=?" if state else ""
        query = f"SELECT {JOB_COLUMNS} FROM jobs{where} ORDER BY id LIMIT ? OFFSET ?"
        with self._read() as db:
            rows = db.execute(query, ((str(state), limit, offset) if state else (limit, offset))).fetchall()
        return [Job(**dict(row)) for row in rows]

    def job(self, job_id: int) -> Optional[Job]:
        with self._read() as db:
            row = db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()
        return None if row is None else Job(**dict(row))

    def _succeeded_by_bucket(self, since: float, bucket_seconds: int) -> dict[int, tuple[int, float]]:
        with self._read() as db:
            rows = db.execute(
                "SELECT CAST((finished - ?) / ? AS INTEGER), COUNT(*), COALESCE(SUM(audio_seconds), 0) FROM jobs "
                "WHERE state='succeeded' AND finished >= ? GROUP BY 1",
                (since, bucket_seconds, since),
            ).fetchall()
        return {row[0]: (row[1], row[2]) for row in rows}

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        with self._read() as db:
            rows = db.execute(f"SELECT {LETTER_COLUMNS} FROM dead_letters ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [DeadLetter(**dict(row)) for row in rows]

    def unfinished(self) -> int:
        with self._read() as db:
            return db.execute("SELECT COUNT(*) FROM jobs WHERE state IN (?, ?, ?)", UNFINISHED).fetchone()[0]

    def queued(self) -> int:
        now = time.time()
        with self._read() as db:
            return db.execute(
                "SELECT COUNT(*) FROM jobs WHERE (state IN ('queued', 'retrying') AND not_before <= ?) "
                "OR (state='running' AND lease_expires < ?)",
                (now, now),
            ).fetchone()[0]

    def status(self) -> StoreStatus:
        now = time.time()
        counts = dict.fromkeys(STATES, 0)
        with self._read() as db:
            for row in db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"):
                counts[row["state"]] = row["n"]
            oldest = db.execute("SELECT MIN(created) FROM jobs WHERE state='queued'").fetchone()[0]
            recent = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(audio_seconds), 0) FROM jobs WHERE state='succeeded' AND finished >= ?",
                (now - 3600,),
            ).fetchone()
            letters = db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
        return StoreStatus(counts, letters, None if oldest is None else now - oldest, recent[0], recent[1])
