"""What the SQLite and PostgreSQL job stores share: every statement that means the same in both.

A store supplies its transactions (`_write`, `_read`: each yields an object whose `execute(sql,
params)` returns a cursor with `fetchone`, `fetchall` and `rowcount`, and whose rows are read by
column name), its clock (`_now`) and its placeholder; the statements here are written once with
`?` placeholders. Claiming, enqueueing and migrations differ (SKIP LOCKED, ON CONFLICT, DDL) and
stay in each store's module.
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager
from typing import Any, Optional

from batchscribe.jobs.store import (
    JOB_COLUMNS,
    LETTER_COLUMNS,
    STATES,
    DeadLetter,
    Job,
    JobState,
    JobStore,
    StoreStatus,
)

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKOFF_SECONDS = 10.0  # before the first retry; doubles with each failed attempt
# Jobs queued, running or waiting for a retry: what an autoscaler scales workers on (running ones
# count, so scaling down never takes a worker whose batch is still needed). deploy/kubernetes/keda.yaml
# runs this query as it is; its test checks that it is the same text.
UNFINISHED_COUNT = "SELECT COUNT(*) AS n FROM jobs WHERE state IN ('queued', 'running', 'retrying')"


class SqlJobStore(JobStore):
    placeholder = "?"  # psycopg's is %s
    lock_rows = ""  # appended to a SELECT whose rows the transaction then updates (PostgreSQL: FOR UPDATE)

    @abstractmethod
    def _write(self) -> AbstractContextManager[Any]: ...

    @abstractmethod
    def _read(self) -> AbstractContextManager[Any]: ...

    @abstractmethod
    def _now(self, cur: Any) -> float: ...

    def _sql(self, statement: str) -> str:
        """The statement in this store's placeholder style. Statements here hold no literal `?` or `%`
        (psycopg would read a `%` as a placeholder too): values always travel as parameters."""
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    def _run(self, cur: Any, statement: str, params: tuple = ()) -> Any:
        return cur.execute(self._sql(statement), params)

    @staticmethod
    def _ids(job_ids: list[int]) -> str:
        """`id IN (?, ?, ...)` for these ids: one statement for a list, in both dialects."""
        return "id IN (" + ", ".join("?" * len(job_ids)) + ")"

    def heartbeat(self, owner: str, job_ids: list[int], lease_seconds: float) -> int:
        if not job_ids:
            return 0
        with self._write() as cur:
            expires = self._now(cur) + lease_seconds
            renew = f"UPDATE jobs SET lease_expires=? WHERE {self._ids(job_ids)} AND lease_owner=? AND state='running'"
            return self._run(cur, renew, (expires, *job_ids, owner)).rowcount

    def succeed(self, job_id: int, owner: str, audio_seconds: float) -> bool:
        with self._write() as cur:
            now = self._now(cur)
            done = self._run(
                cur,
                "UPDATE jobs SET state='succeeded', audio_seconds=?, updated=?, finished=?, "
                "last_error=NULL WHERE id=? AND lease_owner=? AND state='running'",
                (audio_seconds, now, now, job_id, owner),
            ).rowcount
            if done == 1:
                return True
            again = "SELECT 1 AS one FROM jobs WHERE id=? AND lease_owner=? AND state='succeeded'"
            return self._run(cur, again, (job_id, owner)).fetchone() is not None

    def fail(self, job_id: int, owner: str, error: str, permanent: bool = False) -> Optional[JobState]:
        with self._write() as cur:
            now = self._now(cur)
            row = self._run(
                cur,
                "SELECT attempts FROM jobs WHERE id=? AND lease_owner=? AND state='running'" + self.lock_rows,
                (job_id, owner),
            ).fetchone()
            if row is None:
                return None
            attempts = row["attempts"] + 1
            state, not_before = self.next_failure(attempts, permanent, now)
            self._run(
                cur,
                "UPDATE jobs SET state=?, attempts=?, last_error=?, lease_owner=NULL, not_before=?, updated=?, "
                "finished=? WHERE id=?",
                (state.value, attempts, error, not_before, now, now if state is JobState.DEAD else None, job_id),
            )
        return state

    def release(self, owner: str, job_ids: list[int]) -> None:
        if not job_ids:
            return
        with self._write() as cur:
            self._run(
                cur,
                "UPDATE jobs SET state = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'queued' END, "
                f"lease_owner=NULL, not_before=0, updated=? WHERE {self._ids(job_ids)} AND lease_owner=? "
                "AND state='running'",
                (self._now(cur), *job_ids, owner),
            )

    def retry(self, job_ids: Optional[list[int]] = None, dead: bool = False) -> int:
        reset = "UPDATE jobs SET state='queued', attempts=0, lost_leases=0, not_before=0, updated=?, finished=NULL "
        with self._write() as cur:
            now = self._now(cur)
            if dead:
                return self._run(cur, reset + "WHERE state='dead'", (now,)).rowcount
            if not job_ids:
                return 0
            again = reset + f"WHERE {self._ids(job_ids)} AND state IN ('dead', 'retrying')"
            return self._run(cur, again, (now, *job_ids)).rowcount

    def dead_letter(self, origin: str, body: str, error: str) -> None:
        with self._write() as cur:
            self._run(
                cur,
                "INSERT INTO dead_letters (received, origin, body, error) VALUES (?, ?, ?, ?)",
                (self._now(cur), origin, body.replace("\x00", "\ufffd"), error),  # PostgreSQL TEXT cannot hold NUL
            )

    def jobs(self, state: Optional[str] = None, limit: int = 1000, offset: int = 0) -> list[Job]:
        where = " WHERE state=?" if state else ""
        query = f"SELECT {JOB_COLUMNS} FROM jobs{where} ORDER BY id LIMIT ? OFFSET ?"
        with self._read() as cur:
            rows = self._run(cur, query, (str(state), limit, offset) if state else (limit, offset)).fetchall()
        return [Job(**dict(row)) for row in rows]

    def job(self, job_id: int) -> Optional[Job]:
        with self._read() as cur:
            row = self._run(cur, f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()
        return None if row is None else Job(**dict(row))

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        with self._read() as cur:
            rows = self._run(cur, f"SELECT {LETTER_COLUMNS} FROM dead_letters ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [DeadLetter(**dict(row)) for row in rows]

    def unfinished(self) -> int:
        with self._read() as cur:
            return self._run(cur, UNFINISHED_COUNT).fetchone()["n"]

    def queued(self) -> int:
        with self._read() as cur:
            now = self._now(cur)
            return self._run(
                cur,
                "SELECT COUNT(*) AS n FROM jobs WHERE (state IN ('queued', 'retrying') AND not_before <= ?) "
                "OR (state='running' AND lease_expires < ?)",
                (now, now),
            ).fetchone()["n"]

    def status(self) -> StoreStatus:
        counts = dict.fromkeys(STATES, 0)
        with self._read() as cur:
            now = self._now(cur)
            for row in self._run(cur, "SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").fetchall():
                counts[row["state"]] = row["n"]
            oldest = self._run(cur, "SELECT MIN(created) AS t FROM jobs WHERE state='queued'").fetchone()["t"]
            recent = self._run(
                cur,
                "SELECT COUNT(*) AS n, COALESCE(SUM(audio_seconds), 0) AS s FROM jobs "
                "WHERE state='succeeded' AND finished >= ?",
                (now - 3600,),
            ).fetchone()
            letters = self._run(cur, "SELECT COUNT(*) AS n FROM dead_letters").fetchone()["n"]
        return StoreStatus(counts, letters, None if oldest is None else now - oldest, recent["n"], recent["s"])
