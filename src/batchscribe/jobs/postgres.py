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
from batchscribe.jobs.sql import DEFAULT_BACKOFF_SECONDS, DEFAULT_MAX_ATTEMPTS, SqlJobStore
from batchscribe.jobs.store import (
    JOB_COLUMNS,
    MAX_LOST_LEASES,
    Job,
    StoreMissing,
    store_location,
)
from batchscribe.storage.base import StoredObject

POOL_SIZE = 8  # a worker uses 2-3 connections (main, heartbeat, SQS intake); a webhook more
WAIT_SECONDS = 10.0  # for a connection: longer means the server is down; the caller decides what then
MIGRATION_LOCK = 0x62617463  # pg_advisory_xact_lock key: one process migrates at a time
_CLAIMED = ", ".join(f"jobs.{column}" for column in JOB_COLUMNS.split(", "))  # `id` alone is ambiguous there
_NOW = "SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8 AS now"


class StoreUnreachable(BatchscribeError):
    """The PostgreSQL server cannot be reached (or refused the login) when the store is opened."""


class PostgresJobStore(SqlJobStore):
    placeholder = "%s"
    lock_rows = " FOR UPDATE"

    def __init__(
        self,
        location: Union[str, os.PathLike],
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
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

    _write = _read = _transaction  # the server isolates each transaction; reads need nothing more

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

    def _succeeded_by_bucket(self, since: float, bucket_seconds: int) -> dict[int, tuple[int, float]]:
        with self._transaction() as cur:
            rows = cur.execute(
                "SELECT FLOOR((finished - %s) / %s)::int AS bucket, COUNT(*) AS n, "
                "COALESCE(SUM(audio_seconds), 0) AS s FROM jobs WHERE state='succeeded' AND finished >= %s GROUP BY 1",
                (since, bucket_seconds, since),
            ).fetchall()
        return {row["bucket"]: (row["n"], row["s"]) for row in rows}
