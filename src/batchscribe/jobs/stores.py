"""Opening the job store a location names: SQLite (a path or sqlite:///path) or PostgreSQL.

Here, not in jobs/store.py, because it knows both stores and both import the interface.
"""

from __future__ import annotations

import os
from typing import Union

from batchscribe.jobs.sql import DEFAULT_BACKOFF_SECONDS, DEFAULT_MAX_ATTEMPTS
from batchscribe.jobs.store import JobStore, store_location


def open_job_store(
    location: Union[str, os.PathLike],
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
    create: bool = True,
) -> JobStore:
    """The store `location` names (see `store_location`), created with its schema (upgraded to the
    current version) unless `create` is False, when a missing store raises StoreMissing. Raises
    OptionsError for an unsupported location; an unreachable PostgreSQL server raises
    StoreUnreachable."""
    if store_location(location).kind == "postgresql":
        from batchscribe.jobs.postgres import PostgresJobStore  # psycopg only when it is used

        return PostgresJobStore(location, max_attempts, backoff_seconds, create)
    from batchscribe.jobs.sqlite import SqliteJobStore

    return SqliteJobStore(location, max_attempts, backoff_seconds, create)
