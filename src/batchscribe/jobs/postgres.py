"""The job store in PostgreSQL: one queue shared by workers on several machines.

Same semantics as the SQLite store. Claims lock the rows they take with FOR UPDATE SKIP LOCKED,
so concurrent claimers never wait on each other or take the same job. Times come from the
server's clock (`clock_timestamp()`), so leases do not depend on the workers' clocks agreeing.
Connections come from a psycopg_pool pool, checked before use: after the server restarts, a
broken connection is replaced instead of failing the next call.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Optional, Union

from batchscribe.errors import BatchscribeError, OptionsError
from batchscribe.jobs import migrations
from batchscribe.jobs.store import (
    JOB_COLUMNS,
    LETTER_COLUMNS,
    MAX_LOST_LEASES,
    STATES,
    DeadLetter,
    Job,
    JobState,
    JobStore,
    StoreMissing,
    StoreStatus,
    store_location,
)
from batchscribe.storage.objects import StoredObject

POOL_SIZE = 8  # a worker uses 2-3 connections (main, heartbeat, SQS intake); a webhook more
WAIT_SECONDS = 10.0  # for a connection: longer means the server is down; the caller decides what then
MIGRATION_LOCK = 0x62617463  # pg_advisory_xact_lock key: one process migrates at a time
_CLAIMED = ", ".join(f"jobs.{column}" for column in JOB_COLUMNS.split(", "))  # `id` alone is ambiguous there
_NOW = "SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8 AS now"


class StoreUnreachable(BatchscribeError):
    """The PostgreSQL server cannot be reached (or refused the login) when the store is opened."""


class PostgresJobStore(JobStore):
    def __init__(
        self,
        location: Union[str, os.PathLike],
        max_attempts: int = 3,
        backoff_seconds: float = 10.0,
        create: bool = True,
    ):
        try:
            import psycopg
            from psycopg.rows import dict_row
            from psycopg_pool import ConnectionPool, PoolTimeout
        except ImportError as error:
            raise OptionsError(
                f"a PostgreSQL job store needs psycopg 3 and psycopg_pool: pip install 'batchscribe[postgres]' "
                f"({error})"
            ) from None

        self.location = store_location(location)
        if self.location.kind != "postgresql":
            raise ValueError(f"{self.location}: not a PostgreSQL store")
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self._pool = ConnectionPool(
            self.location.target,
            min_size=1,
            max_size=POOL_SIZE,
            timeout=WAIT_SECONDS,
            kwargs={"row_factory": dict_row, "connect_timeout": 5},
            check=ConnectionPool.check_connection,
            open=False,
            name="batchscribe-jobs",
        )
        try:
            psycopg.connect(self.location.target, connect_timeout=5).close()  # the server's own words on failure
            self._pool.open(wait=True, timeout=WAIT_SECONDS)
            self._migrate(create)
        except (psycopg.OperationalError, PoolTimeout) as error:
            self._pool.close()
            reason = " ".join(str(error).split())
            raise StoreUnreachable(f"cannot reach the job store {self.location}: {reason}") from error
        except BaseException:
            self._pool.close()
            raise

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _transaction(self) -> Iterator:
        """One transaction on a pooled connection (committed on success, rolled back on error)."""
        with self._pool.connection() as conn:
            with conn.cursor() as cursor:
                yield cursor

    def _migrate(self, create: bool) -> None:
        table = migrations.MIGRATIONS_TABLE
        with self._transaction() as cur:
            if not create:
                if cur.execute("SELECT to_regclass(%s) AS t", (table,)).fetchone()["t"] is None:
                    raise StoreMissing(
                        f"no job store in {self.location} (no {table} table): give the one your workers use "
                        "with --store or BATCHSCRIBE_STORE"
                    )
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY, applied DOUBLE PRECISION)")
            applied = {row["version"] for row in cur.execute(f"SELECT version FROM {table}")}
            for version, script in migrations.pending(migrations.POSTGRES, applied):
                cur.execute(script)
                cur.execute(f"INSERT INTO {table} VALUES (%s, EXTRACT(EPOCH FROM now()))", (version,))

    def _now(self, cur) -> float:
        return cur.execute(_NOW).fetchone()["now"]

    def enqueue(self, source: StoredObject, dest_root: str) -> Optional[int]:
        with self._transaction() as cur:
            now = self._now(cur)
            row = cur.execute(
                "INSERT INTO jobs (source_root, key, version, dest_root, created, updated) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (source_root, key, version) DO NOTHING RETURNING id",
                (source.root, source.key, source.version, dest_root, now, now),
            ).fetchone()
        return None if row is None else row["id"]

    def claim(self, owner: str, limit: int, lease_seconds: float) -> list[Job]:
        with self._transaction() as cur:
            now = self._now(cur)
            cur.execute(
                "UPDATE jobs SET state='dead', updated=%(now)s, lease_owner=NULL, finished=%(now)s, "
                "last_error='the worker stopped (killed or crashed) ' || (lost_leases + 1) || "
                "' times while transcribing this file' "
                "WHERE id IN (SELECT id FROM jobs WHERE state='running' AND lease_expires < %(now)s "
                "AND lost_leases + 1 >= %(most)s FOR UPDATE SKIP LOCKED)",
                {"now": now, "most": MAX_LOST_LEASES},
            )
            rows = cur.execute(
                "WITH picked AS (SELECT id FROM jobs WHERE (state IN ('queued', 'retrying') AND not_before <= %(now)s) "
                "OR (state='running' AND lease_expires < %(now)s) ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
                "UPDATE jobs SET state='running', lease_owner=%(owner)s, lease_expires=%(expires)s, updated=%(now)s, "
                "lost_leases = jobs.lost_leases + CASE WHEN jobs.state = 'running' THEN 1 ELSE 0 END "
                "FROM picked WHERE jobs.id = picked.id RETURNING " + _CLAIMED,
                {"now": now, "limit": limit, "owner": owner, "expires": now + lease_seconds},
            ).fetchall()
        return sorted((Job(**row) for row in rows), key=lambda job: job.id)

    def heartbeat(self, owner: str, job_ids: list[int], lease_seconds: float) -> int:
        with self._transaction() as cur:
            now = self._now(cur)
            return cur.execute(
                "UPDATE jobs SET lease_expires=%s WHERE id = ANY(%s) AND lease_owner=%s AND state='running'",
                (now + lease_seconds, list(job_ids), owner),
            ).rowcount

    def succeed(self, job_id: int, owner: str, audio_seconds: float) -> bool:
        with self._transaction() as cur:
            now = self._now(cur)
            done = cur.execute(
                "UPDATE jobs SET state='succeeded', audio_seconds=%s, updated=%s, finished=%s, "
                "last_error=NULL WHERE id=%s AND lease_owner=%s AND state='running'",
                (audio_seconds, now, now, job_id, owner),
            ).rowcount
            if done == 1:
                return True
            again = "SELECT 1 FROM jobs WHERE id=%s AND lease_owner=%s AND state='succeeded'"
            return cur.execute(again, (job_id, owner)).fetchone() is not None

    def fail(self, job_id: int, owner: str, error: str, permanent: bool = False) -> Optional[JobState]:
        with self._transaction() as cur:
            now = self._now(cur)
            row = cur.execute(
                "SELECT attempts FROM jobs WHERE id=%s AND lease_owner=%s AND state='running' FOR UPDATE",
                (job_id, owner),
            ).fetchone()
            if row is None:
                return None
            attempts = row["attempts"] + 1
            state, not_before = self.next_failure(attempts, permanent, now)
            cur.execute(
                "UPDATE jobs SET state=%s, attempts=%s, last_error=%s, lease_owner=NULL, not_before=%s, updated=%s, "
                "finished=%s WHERE id=%s",
                (state.value, attempts, error, not_before, now, now if state is JobState.DEAD else None, job_id),
            )
        return state

    def release(self, owner: str, job_ids: list[int]) -> None:
        with self._transaction() as cur:
            cur.execute(
                "UPDATE jobs SET state = CASE WHEN attempts > 0 THEN 'retrying' ELSE 'queued' END, "
                "lease_owner=NULL, not_before=0, updated=%s WHERE id = ANY(%s) AND lease_owner=%s AND state='running'",
                (self._now(cur), list(job_ids), owner),
            )

    def retry(self, job_ids: Optional[list[int]] = None, dead: bool = False) -> int:
        reset = "UPDATE jobs SET state='queued', attempts=0, lost_leases=0, not_before=0, updated=%s, finished=NULL "
        with self._transaction() as cur:
            now = self._now(cur)
            if dead:
                return cur.execute(reset + "WHERE state='dead'", (now,)).rowcount
            return cur.execute(
                reset + "WHERE id = ANY(%s) AND state IN ('dead', 'retrying')", (now, list(job_ids or []))
            ).rowcount

    def dead_letter(self, origin: str, body: str, error: str) -> None:
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO dead_letters (received, origin, body, error) VALUES (%s, %s, %s, %s)",
                (self._now(cur), origin, body.replace("\x00", "\ufffd"), error),  # TEXT cannot hold NUL
            )

    def jobs(self, state: Optional[str] = None, limit: int = 1000, offset: int = 0) -> list[Job]:
        where = " WHERE state=%s" if state else ""
        query = f"SELECT {JOB_COLUMNS} FROM jobs{where} ORDER BY id LIMIT %s OFFSET %s"
        with self._transaction() as cur:
            rows = cur.execute(query, ((str(state), limit, offset) if state else (limit, offset))).fetchall()
        return [Job(**row) for row in rows]

    def job(self, job_id: int) -> Optional[Job]:
        with self._transaction() as cur:
            row = cur.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=%s", (job_id,)).fetchone()
        return None if row is None else Job(**row)

    def _succeeded_by_bucket(self, since: float, bucket_seconds: int) -> dict[int, tuple[int, float]]:
        with self._transaction() as cur:
            rows = cur.execute(
                "SELECT FLOOR((finished - %s) / %s)::int AS bucket, COUNT(*) AS n, "
                "COALESCE(SUM(audio_seconds), 0) AS s FROM jobs WHERE state='succeeded' AND finished >= %s GROUP BY 1",
                (since, bucket_seconds, since),
            ).fetchall()
        return {row["bucket"]: (row["n"], row["s"]) for row in rows}

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        with self._transaction() as cur:
            rows = cur.execute(f"SELECT {LETTER_COLUMNS} FROM dead_letters ORDER BY id LIMIT %s", (limit,)).fetchall()
        return [DeadLetter(**row) for row in rows]

    def unfinished(self) -> int:
        with self._transaction() as cur:
            return cur.execute(UNFINISHED_COUNT).fetchone()["count"]

    def queued(self) -> int:
        with self._transaction() as cur:
            return cur.execute(QUEUED_NOW).fetchone()["n"]

    def status(self) -> StoreStatus:
        counts = dict.fromkeys(STATES, 0)
        with self._transaction() as cur:
            now = self._now(cur)
            for row in cur.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"):
                counts[row["state"]] = row["n"]
            oldest = cur.execute("SELECT MIN(created) AS t FROM jobs WHERE state='queued'").fetchone()["t"]
            recent = cur.execute(
                "SELECT COUNT(*) AS n, COALESCE(SUM(audio_seconds), 0) AS s FROM jobs "
                "WHERE state='succeeded' AND finished >= %s",
                (now - 3600,),
            ).fetchone()
            letters = cur.execute("SELECT COUNT(*) AS n FROM dead_letters").fetchone()["n"]
        return StoreStatus(counts, letters, None if oldest is None else now - oldest, recent["n"], recent["s"])


# Jobs queued, running or waiting for a retry: what an autoscaler scales workers on (running ones
# count, so scaling down never takes a worker whose batch is still needed). deploy/kubernetes/keda.yaml
# runs this query as it is; its test checks that it is the same text.
UNFINISHED_COUNT = "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running', 'retrying')"
# Jobs a worker could claim now (due queued/retrying ones and expired leases).
QUEUED_NOW = (
    "SELECT COUNT(*) AS n FROM jobs WHERE (state IN ('queued', 'retrying') "
    "AND not_before <= EXTRACT(EPOCH FROM clock_timestamp())) "
    "OR (state = 'running' AND lease_expires < EXTRACT(EPOCH FROM clock_timestamp()))"
)
