"""The job stores' schemas, as numbered migrations, so a later change upgrades a live store.

Each store records the versions it has applied in `schema_migrations`; opening a store applies
the missing ones in order, in one transaction under a lock (SQLite: BEGIN IMMEDIATE; PostgreSQL:
an advisory lock), so several workers starting at once upgrade it once. A new schema change is a
new entry at the end of both lists; entries already released are never edited.
SQLite's first migration uses IF NOT EXISTS: it adopts stores made before versioning.
"""

from __future__ import annotations

MIGRATIONS_TABLE = "schema_migrations"

SQLITE: list[tuple[int, str]] = [
    (
        1,
        """
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
""",
    ),
]

POSTGRES: list[tuple[int, str]] = [
    (
        1,
        """
CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    source_root TEXT NOT NULL,
    key TEXT NOT NULL,
    version TEXT NOT NULL,
    dest_root TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'retrying', 'succeeded', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    lost_leases INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires DOUBLE PRECISION,
    not_before DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_error TEXT,
    audio_seconds DOUBLE PRECISION,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    finished DOUBLE PRECISION,
    UNIQUE (source_root, key, version)
);
CREATE INDEX jobs_by_state ON jobs (state, not_before, id);
CREATE INDEX jobs_by_lease ON jobs (lease_expires) WHERE state = 'running';
CREATE TABLE dead_letters (
    id BIGSERIAL PRIMARY KEY,
    received DOUBLE PRECISION NOT NULL,
    origin TEXT NOT NULL,
    body TEXT NOT NULL,
    error TEXT NOT NULL
);
""",
    ),
]


def pending(migrations: list[tuple[int, str]], applied: set[int]) -> list[tuple[int, str]]:
    """The migrations still to apply, in order."""
    return [(version, script) for version, script in migrations if version not in applied]
