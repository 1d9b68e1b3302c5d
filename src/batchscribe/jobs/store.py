"""The durable job store: one job per source object version, in SQLite (WAL) on local disk.

States: queued -> running (leased; the lease is renewed by a heartbeat) -> succeeded, or
-> retrying (after a failure, with exponential backoff) -> ... -> dead (after max attempts).
A worker that dies leaves a lease that expires; the job is then claimed again. Lost leases are
counted apart from failures, so a killed worker does not use up a file's attempts, yet a file
that kills every worker that touches it still ends up dead.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from batchscribe.storage.objects import StoredObject

STATES = ("queued", "running", "retrying", "succeeded", "dead")
MAX_LOST_LEASES = 10

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    source_root TEXT NOT NULL,
    key TEXT NOT NULL,
    version TEXT NOT NULL,
    dest_root TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    lost_leases INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires REAL,
    not_before REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    audio_seconds REAL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    finished REAL,
    UNIQUE (source_root, key, version)
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, not_before, id);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    received REAL NOT NULL,
    origin TEXT NOT NULL,
    body TEXT NOT NULL,
    error TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Job:
    id: int
    source_root: str
    key: str
    version: str
    dest_root: str
    state: str
    attempts: int
    lost_leases: int
    lease_owner: Optional[str]
    lease_expires: Optional[float]
    not_before: float
    last_error: Optional[str]
    audio_seconds: Optional[float]
    created: float
    updated: float
    finished: Optional[float]

    @property
    def source_uri(self) -> str:
        return self.source_root + self.key


@dataclass(frozen=True)
class DeadLetter:
    id: int
    received: float
    origin: str
    body: str
    error: str


@dataclass(frozen=True)
class StoreStatus:
    counts: dict[str, int]
    dead_letters: int
    oldest_queued_seconds: Optional[float]
    finished_last_hour: int
    audio_seconds_last_hour: float


class JobStore:
    """Safe to share between processes and threads: each call is one short transaction."""

    def __init__(self, path: Path, max_attempts: int = 3, backoff_seconds: float = 10.0):
        self.path = Path(path)
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed state survives a crash of the machine
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front so concurrent claimers queue instead of deadlocking."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def enqueue(self, source: StoredObject, dest_root: str) -> Optional[int]:
        """Add a job for this object version; None if it is already known (an event seen twice)."""
        now = time.time()
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO jobs (source_root, key, version, dest_root, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (source.root, source.key, source.version, dest_root, now, now),
            )
            return cursor.lastrowid if cursor.rowcount else None

    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Job]:
        """Lease up to `limit` runnable jobs: due ones, and running ones whose worker stopped renewing."""
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
                "OR (state='running' AND lease_expires < ?) ORDER BY id LIMIT ?) RETURNING *",
                (owner, now + lease_seconds, now, now, now, limit),
            ).fetchall()
        return sorted((Job(**dict(row)) for row in rows), key=lambda job: job.id)

    def heartbeat(self, owner: str, job_ids: list[int], lease_seconds: float) -> None:
        with self._write() as db:
            db.executemany(
                "UPDATE jobs SET lease_expires=? WHERE id=? AND lease_owner=? AND state='running'",
                [(time.time() + lease_seconds, job_id, owner) for job_id in job_ids],
            )

    def succeed(self, job_id: int, owner: str, audio_seconds: float) -> bool:
        """Mark done; False if this worker had lost the lease (another one took the job over)."""
        now = time.time()
        with self._write() as db:
            cursor = db.execute(
                "UPDATE jobs SET state='succeeded', audio_seconds=?, lease_owner=NULL, updated=?, finished=?, "
                "last_error=NULL WHERE id=? AND lease_owner=? AND state='running'",
                (audio_seconds, now, now, job_id, owner),
            )
            return cursor.rowcount == 1

    def fail(self, job_id: int, owner: str, error: str) -> Optional[str]:
        """Record a failed attempt: retrying with backoff, or dead after max attempts. Returns the new state."""
        now = time.time()
        with self._write() as db:
            row = db.execute(
                "SELECT attempts FROM jobs WHERE id=? AND lease_owner=? AND state='running'", (job_id, owner)
            ).fetchone()
            if row is None:
                return None
            attempts = row["attempts"] + 1
            state = "dead" if attempts >= self.max_attempts else "retrying"
            db.execute(
                "UPDATE jobs SET state=?, attempts=?, last_error=?, lease_owner=NULL, not_before=?, updated=?, "
                "finished=? WHERE id=?",
                (
                    state,
                    attempts,
                    error,
                    now + self.backoff_seconds * 2 ** (attempts - 1),
                    now,
                    now if state == "dead" else None,
                    job_id,
                ),
            )
        return state

    def release(self, owner: str, job_ids: list[int]) -> None:
        """Give leased jobs back untouched (a worker asked to stop before finishing them)."""
        with self._write() as db:
            db.executemany(
                "UPDATE jobs SET state = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'queued' END, "
                "lease_owner=NULL, not_before=0, updated=? WHERE id=? AND lease_owner=? AND state='running'",
                [(time.time(), job_id, owner) for job_id in job_ids],
            )

    def retry(self, job_ids: Optional[list[int]] = None, dead: bool = False) -> int:
        """Queue dead (or any named, unfinished) jobs again with fresh attempts."""
        now = time.time()
        with self._write() as db:
            if dead:
                cursor = db.execute(
                    "UPDATE jobs SET state='queued', attempts=0, lost_leases=0, not_before=0, updated=?, "
                    "finished=NULL WHERE state='dead'",
                    (now,),
                )
            else:
                cursor = db.executemany(
                    "UPDATE jobs SET state='queued', attempts=0, lost_leases=0, not_before=0, updated=?, "
                    "finished=NULL WHERE id=? AND state IN ('dead', 'retrying')",
                    [(now, job_id) for job_id in job_ids or []],
                )
            return cursor.rowcount

    def dead_letter(self, origin: str, body: str, error: str) -> None:
        """Keep a message that could not be understood, with why, for a person to look at."""
        with self._write() as db:
            db.execute(
                "INSERT INTO dead_letters (received, origin, body, error) VALUES (?, ?, ?, ?)",
                (time.time(), origin, body, error),
            )

    def jobs(self, state: Optional[str] = None, limit: int = 1000, offset: int = 0) -> list[Job]:
        """Jobs in id order (optionally of one state), a page of `limit` after skipping `offset`."""
        query = "SELECT * FROM jobs" + (" WHERE state=?" if state else "") + " ORDER BY id LIMIT ? OFFSET ?"
        rows = self._db.execute(query, ((state, limit, offset) if state else (limit, offset))).fetchall()
        return [Job(**dict(row)) for row in rows]

    def job(self, job_id: int) -> Optional[Job]:
        """One job by id (its attempts, lost leases and last error included); None if there is no such job."""
        row = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return None if row is None else Job(**dict(row))

    def throughput(self, hours: int = 24, bucket_seconds: int = 3600) -> list[tuple[float, int, float]]:
        """Jobs succeeded per time bucket over the last `hours`, oldest first, empty buckets included:
        (bucket start as epoch seconds, files, audio seconds)."""
        now = time.time()
        first = (now // bucket_seconds - (hours * 3600 // bucket_seconds) + 1) * bucket_seconds
        rows = self._db.execute(
            "SELECT CAST((finished - ?) / ? AS INTEGER) AS bucket, COUNT(*), COALESCE(SUM(audio_seconds), 0) "
            "FROM jobs WHERE state='succeeded' AND finished >= ? GROUP BY bucket",
            (first, bucket_seconds, first),
        ).fetchall()
        found = {row[0]: (row[1], row[2]) for row in rows}
        buckets = int((now - first) // bucket_seconds) + 1
        return [(first + n * bucket_seconds, *found.get(n, (0, 0.0))) for n in range(buckets)]

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        rows = self._db.execute("SELECT * FROM dead_letters ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [DeadLetter(**dict(row)) for row in rows]

    def unfinished(self) -> int:
        """Jobs that are queued, running or waiting to be retried."""
        row = self._db.execute("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running', 'retrying')")
        return row.fetchone()[0]

    def status(self) -> StoreStatus:
        now = time.time()
        counts = dict.fromkeys(STATES, 0)
        for row in self._db.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"):
            counts[row["state"]] = row["n"]
        oldest = self._db.execute("SELECT MIN(created) FROM jobs WHERE state='queued'").fetchone()[0]
        recent = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(audio_seconds), 0) FROM jobs WHERE state='succeeded' AND finished >= ?",
            (now - 3600,),
        ).fetchone()
        letters = self._db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
        return StoreStatus(counts, letters, None if oldest is None else now - oldest, recent[0], recent[1])
