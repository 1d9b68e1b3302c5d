"""The durable job store: one job per source object version, its states, and where it is kept.

States: queued -> running (leased; the lease is renewed by a heartbeat) -> succeeded, or
-> retrying (after a failure, with exponential backoff) -> ... -> dead (after max attempts, or at
once for input that fails the same way every time). A worker that dies leaves a lease that
expires; the job is then claimed again. Lost leases are counted apart from failures, so a killed
worker does not use up a file's attempts, yet a file that kills every worker that touches it
still ends up dead.

Two stores keep these semantics: SQLite on local disk (the embedded default, jobs/sqlite.py)
and PostgreSQL for several machines (jobs/postgres.py). `open_job_store(location)` (jobs/stores.py)
opens the one a location names: a path or `sqlite:///path`, or `postgresql://...`.
"""

from __future__ import annotations

import os
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Optional, Union
from urllib.parse import urlsplit, urlunsplit

from batchscribe.errors import OptionsError
from batchscribe.storage.base import StoredObject

MAX_LOST_LEASES = 10
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")  # two letters or more: `C:` is a Windows drive


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"  # failed, waiting for its backoff to pass
    SUCCEEDED = "succeeded"
    DEAD = "dead"  # no more attempts: a person decides (`batchscribe retry`)

    def __str__(self) -> str:  # the same on every Python: 'queued', not 'JobState.QUEUED'
        return self.value


STATES = tuple(state.value for state in JobState)


@dataclass(frozen=True)
class Job:
    """One source object version to transcribe. Times are seconds since the epoch (the store's clock)."""

    id: int
    source_root: str
    key: str
    version: str
    dest_root: str
    state: JobState
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", JobState(self.state))

    @property
    def source_uri(self) -> str:
        return self.source_root + self.key


# Named, not `*`: a later migration may add columns that an older worker's Job does not have.
JOB_COLUMNS = ", ".join(field.name for field in fields(Job))


@dataclass(frozen=True)
class DeadLetter:
    id: int
    received: float
    origin: str
    body: str
    error: str


LETTER_COLUMNS = ", ".join(field.name for field in fields(DeadLetter))


@dataclass(frozen=True)
class StoreStatus:
    counts: dict[str, int]  # state value -> jobs
    dead_letters: int
    oldest_queued_seconds: Optional[float]
    finished_last_hour: int
    audio_seconds_last_hour: float


class StoreMissing(OptionsError):
    """A reading command was pointed at a store that does not exist (it never creates one)."""


@dataclass(frozen=True)
class StoreLocation:
    """Where a job store lives: kind 'sqlite' with a path, or 'postgresql' with a connection URI."""

    kind: str
    target: str

    def __str__(self) -> str:
        """For messages: the path, or the URI without its password."""
        if self.kind == "sqlite":
            return self.target
        parts = urlsplit(self.target)
        if parts.password is None:
            return self.target
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))


def store_location(location: Union[str, os.PathLike]) -> StoreLocation:
    """Parse `--store` / BATCHSCRIBE_STORE: a path, `sqlite:///relative.db`, `sqlite:////absolute.db`
    (SQLAlchemy's spelling), or `postgresql://user:password@host:port/database` (also `postgres://`).
    Raises OptionsError for any other scheme: it is never taken for a folder name."""
    text = os.fspath(location)
    match = _SCHEME.match(text)
    if match is None:
        return StoreLocation("sqlite", str(Path(text).absolute()))
    scheme = match.group(1).lower()
    if scheme == "sqlite":
        if not text.startswith("sqlite:///") or text == "sqlite:///":
            raise OptionsError(f"{text}: write a SQLite store as sqlite:///relative/path.db or sqlite:////abs/path.db")
        return StoreLocation("sqlite", str(Path(text[len("sqlite:///") :]).absolute()))
    if scheme in ("postgresql", "postgres"):
        return StoreLocation("postgresql", text)
    raise OptionsError(
        f"{text}: unsupported job store {scheme}://; use a file path (SQLite), sqlite:///path "
        "or postgresql://user:password@host:port/database"
    )


class JobStore(ABC):
    """The queue every front end and worker shares. Every method is one transaction, safe to call
    from any thread of any process at the same time.

    `open_job_store(location)` (jobs/stores.py) opens the store that `location` names. Errors from
    an unreachable store (a PostgreSQL server restarting) propagate; callers that must not lose
    work retry them."""

    location: StoreLocation
    max_attempts: int
    backoff_seconds: float

    def next_failure(self, attempts: int, permanent: bool, now: float) -> tuple[JobState, float]:
        """After a failed attempt (`attempts` counts it): the new state and when it may run again."""
        if permanent or attempts >= self.max_attempts:
            return JobState.DEAD, now
        return JobState.RETRYING, now + self.backoff_seconds * 2 ** (attempts - 1)

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def enqueue(self, source: StoredObject, dest_root: str) -> Optional[int]:
        """Add a job for this object version; None if it is already known (an event seen twice)."""

    @abstractmethod
    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Job]:
        """Lease up to `limit` runnable jobs (due ones, and running ones whose worker stopped
        renewing), oldest first; each job is leased to one owner only."""

    @abstractmethod
    def heartbeat(self, owner: str, job_ids: list[int], lease_seconds: float) -> int:
        """Renew this owner's leases; returns how many it still held."""

    @abstractmethod
    def succeed(self, job_id: int, owner: str, audio_seconds: float) -> bool:
        """Mark done; False if this worker had lost the lease (another one took the job over). True
        again for an acknowledgement already recorded (retried after its reply was lost with the
        connection): a succeeded job keeps the owner that finished it in `lease_owner`."""

    @abstractmethod
    def fail(self, job_id: int, owner: str, error: str, permanent: bool = False) -> Optional[JobState]:
        """Record a failed attempt: retrying with backoff, or dead after max attempts, or dead at
        once when `permanent` (bad input fails the same way every time). Returns the new state,
        None if this worker no longer held the lease."""

    @abstractmethod
    def release(self, owner: str, job_ids: list[int]) -> None:
        """Give leased jobs back untouched (a worker asked to stop before finishing them)."""

    @abstractmethod
    def retry(self, job_ids: Optional[list[int]] = None, dead: bool = False) -> int:
        """Queue dead (or any named, unfinished) jobs again with fresh attempts; returns how many."""

    @abstractmethod
    def dead_letter(self, origin: str, body: str, error: str) -> None:
        """Keep a message that could not be understood, with why, for a person to look at."""

    @abstractmethod
    def jobs(self, state: Optional[str] = None, limit: int = 1000, offset: int = 0) -> list[Job]:
        """Jobs in id order (optionally of one state): a page of `limit` after skipping `offset`."""

    @abstractmethod
    def job(self, job_id: int) -> Optional[Job]:
        """One job by id (its attempts, lost leases and last error included); None if there is none."""

    def throughput(self, hours: int = 24, bucket_seconds: int = 3600) -> list[tuple[float, int, float]]:
        """Jobs succeeded per time bucket over the last `hours`, oldest first, empty buckets included:
        (bucket start in epoch seconds, files, audio seconds)."""
        now = time.time()
        first = (now // bucket_seconds - hours * 3600 // bucket_seconds + 1) * bucket_seconds
        found = self._succeeded_by_bucket(first, bucket_seconds)
        count = int((now - first) // bucket_seconds) + 1
        return [(first + n * bucket_seconds, *found.get(n, (0, 0.0))) for n in range(count)]

    @abstractmethod
    def _succeeded_by_bucket(self, since: float, bucket_seconds: int) -> dict[int, tuple[int, float]]:
        """Bucket number (0 from `since`) -> (jobs succeeded, their audio seconds)."""

    @abstractmethod
    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]: ...

    @abstractmethod
    def unfinished(self) -> int:
        """Jobs that are queued, running or waiting to be retried."""

    @abstractmethod
    def queued(self) -> int:
        """Jobs a worker could claim now (due queued/retrying ones and expired leases)."""

    @abstractmethod
    def status(self) -> StoreStatus: ...
