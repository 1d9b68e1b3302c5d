"""The job store's contract, on both stores: a real SQLite file and a real PostgreSQL server.

Every test here runs once per store (the `location` fixture); the concurrency test drives one
store from 8 threads in each of 4 processes at once.
"""

import gc
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import REPO
from store_hammer import OWN_JOBS, SHARED_JOBS, THREADS, keys, plan

from batchscribe.jobs.store import MAX_LOST_LEASES, JobState
from batchscribe.jobs.stores import open_job_store
from batchscribe.storage.objects import StoredObject

ROOT = "s3://media/audio-input/"
DEST = "s3://media/transcription-output/"


def obj(key="a.mp3", version="etag1"):
    return StoredObject(ROOT, key, version, 100)


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path):
    """A fresh, empty store of each kind."""
    if request.param == "sqlite":
        yield str(tmp_path / "jobs.db")
    else:
        yield request.getfixturevalue("postgres_database")


@pytest.fixture
def store(location):
    store = open_job_store(location, max_attempts=3, backoff_seconds=0.05)
    yield store
    store.close()


def test_one_job_per_object_version(store):
    first = store.enqueue(obj(), DEST)
    assert first is not None
    assert store.enqueue(obj(), DEST) is None  # the same event delivered again
    assert store.enqueue(obj(version="etag2"), DEST) is not None  # changed content: a new job
    assert store.status().counts["queued"] == 2


def test_claim_leases_each_job_to_one_worker(store):
    for n in range(5):
        store.enqueue(obj(f"{n}.mp3"), DEST)
    a = store.claim("a", 3, 60)
    b = store.claim("b", 3, 60)
    assert len(a) == 3 and len(b) == 2
    assert not {j.id for j in a} & {j.id for j in b}
    assert store.claim("c", 3, 60) == []


def test_failures_back_off_then_die_with_the_last_error(store):
    store.enqueue(obj(), DEST)
    for attempt in range(1, 4):
        time.sleep(0.05 * 2 ** (attempt - 1) + 0.01)
        (job,) = store.claim("w", 1, 60)
        state = store.fail(job.id, "w", f"bad audio #{attempt}")
        assert state == ("dead" if attempt == 3 else "retrying")
        assert store.claim("w", 1, 60) == []  # backoff: not due again at once
    (dead,) = store.jobs("dead")
    assert dead.attempts == 3 and dead.last_error == "bad audio #3"
    assert store.retry(dead=True) == 1
    assert store.claim("w", 1, 60)[0].attempts == 0


def test_an_expired_lease_is_taken_over_and_the_old_worker_cannot_ack(store):
    store.enqueue(obj(), DEST)
    (job,) = store.claim("killed", 1, 0.05)
    time.sleep(0.1)
    (again,) = store.claim("alive", 1, 60)
    assert again.id == job.id and again.lost_leases == 1 and again.attempts == 0
    assert not store.succeed(job.id, "killed", 1.0)
    assert store.succeed(job.id, "alive", 1.0)
    assert store.succeed(job.id, "alive", 1.0)  # the same acknowledgement retried: still recorded once
    assert not store.succeed(job.id, "killed", 1.0)
    assert store.status().counts["succeeded"] == 1 and store.jobs()[0].lease_owner == "alive"


def test_a_file_that_kills_every_worker_ends_dead(store):
    store.enqueue(obj(), DEST)
    for _ in range(MAX_LOST_LEASES):
        store.claim("w", 1, 0.001)
        time.sleep(0.005)
    assert store.claim("w", 1, 60) == []
    (dead,) = store.jobs("dead")
    assert "worker stopped" in dead.last_error


def test_heartbeat_keeps_the_lease_and_release_gives_it_back(store):
    store.enqueue(obj(), DEST)
    (job,) = store.claim("w", 1, 0.2)
    for _ in range(3):
        time.sleep(0.1)
        store.heartbeat("w", [job.id], 0.2)
        assert store.claim("other", 1, 60) == []
    store.release("w", [job.id])
    (again,) = store.claim("other", 1, 60)
    assert again.lost_leases == 0 and again.attempts == 0


def test_state_survives_reopening(location):
    first = open_job_store(location)
    first.enqueue(obj(), DEST)
    first.claim("w", 1, 60)
    first.dead_letter("sqs", "{", "not JSON")
    # no close(): as if the process died
    second = open_job_store(location)
    status = second.status()
    assert status.counts["running"] == 1 and status.dead_letters == 1
    assert second.jobs()[0].state is JobState.RUNNING and second.jobs()[0].state == "running"


def test_bad_input_is_dead_at_once_without_backoff(store):
    store.enqueue(obj(), DEST)
    (job,) = store.claim("w", 1, 60)
    assert store.fail(job.id, "w", "corrupt.wav: not a recognised audio file", permanent=True) is JobState.DEAD
    (dead,) = store.jobs("dead")
    assert dead.attempts == 1 and dead.last_error.startswith("corrupt.wav")
    assert store.unfinished() == 0


def test_queued_counts_what_a_worker_could_take_now(store):
    for n in range(3):
        store.enqueue(obj(f"{n}.mp3"), DEST)
    assert store.queued() == 3
    (job,) = store.claim("w", 1, 60)
    store.fail(job.id, "w", "transient")  # retrying, not due for 0.05 s
    store.claim("w", 1, 60)
    assert store.queued() == 1
    time.sleep(0.06)
    assert store.queued() == 2


def test_eight_threads_in_each_of_four_processes(location, tmp_path):
    """enqueue / claim / heartbeat / succeed / fail / retry / status from 32 threads at once: no call
    fails, no lease is lost while renewed, and every job ends as its plan and the calls say."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    hammer = Path(__file__).with_name("store_hammer.py")
    logs = [tmp_path / f"hammer{n}.json" for n in range(4)]
    processes = [subprocess.Popen([sys.executable, str(hammer), location, str(n), str(log)], env=env)
                 for n, log in enumerate(logs)]  # fmt: skip
    assert [process.wait(timeout=300) for process in processes] == [0, 0, 0, 0]
    calls = [json.loads(log.read_text()) for log in logs]
    errors = [error for log in calls for error in log["errors"]]
    violations = [v for log in calls for v in log["violations"]]
    jobs = {job.id: job for job in open_job_store(location).jobs(limit=100_000)}
    print(f"{len(jobs)} jobs, 4 processes x {THREADS} threads, {sum(log['calls'][0] for log in calls)} calls, "
          f"{len(errors)} errors, {len(violations)} leases lost while renewed")  # fmt: skip
    assert errors == [] and violations == []

    all_keys = {key for process in range(4) for thread in range(THREADS) for key in keys(process, thread)}
    assert len(jobs) == len(all_keys) == 4 * THREADS * OWN_JOBS + SHARED_JOBS
    assert sorted(job_id for log in calls for job_id in log["enqueued"]) == sorted(jobs)  # each created once
    acks = Counter(job_id for log in calls for job_id in log["succeeded"])
    fails = Counter(job_id for log in calls for job_id, _ in log["failed"])
    retried = [answer for log in calls for _, answer in log["retried"]]
    expected = {"ok": ("succeeded", 0, 0), "fail-once": ("succeeded", 1, 1), "bad": ("dead", 3, 3),
                "bad-retried": ("dead", 3, 6)}  # fmt: skip
    for job in jobs.values():
        state, attempts, failures = expected[plan(job.key)]
        assert (job.state, job.attempts, fails[job.id]) == (state, attempts, failures), job
        assert acks[job.id] == (1 if state == "succeeded" else 0), job
        assert job.lost_leases == 0 and (job.lease_owner is None) == (state == "dead"), job
    assert retried == [1] * sum(plan(job.key) == "bad-retried" for job in jobs.values())


def test_a_thread_per_request_leaves_no_connection_open(tmp_path):
    """The webhook's server starts a thread per request; each thread's SQLite connection closes with it."""
    store = open_job_store(tmp_path / "jobs.db")
    open_files = len(os.listdir("/proc/self/fd"))
    for _ in range(100):
        thread = threading.Thread(target=store.status)
        thread.start()
        thread.join()
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= open_files + 3


def test_a_new_migration_upgrades_a_live_store_once(location, monkeypatch):
    from batchscribe.jobs import migrations

    first = open_job_store(location)
    first.enqueue(obj(), DEST)
    first.close()
    kind = "POSTGRES" if location.startswith("postgresql") else "SQLITE"
    change = "ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0"
    monkeypatch.setattr(migrations, kind, [*getattr(migrations, kind), (2, change)])
    upgraded = open_job_store(location)
    assert len(upgraded.jobs()) == 1  # the live store's jobs are kept
    again = open_job_store(location)  # a second worker starting: nothing applied twice
    with again._write() if kind == "SQLITE" else again._transaction() as db:
        versions = [row[0] if kind == "SQLITE" else row["version"]
                    for row in db.execute("SELECT version FROM schema_migrations ORDER BY version")]  # fmt: skip
        db.execute("SELECT priority FROM jobs")
    assert versions == [1, 2]


def test_a_store_from_before_versioning_is_adopted(tmp_path):
    import sqlite3

    from batchscribe.jobs.migrations import SQLITE

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # the schema as stores were made before schema_migrations
        db.executescript(SQLITE[0][1])
        db.execute("INSERT INTO jobs (source_root, key, version, dest_root, created, updated) "
                   "VALUES ('s3://media/in/', 'a.mp3', 'e1', 's3://media/out/', 0, 0)")  # fmt: skip
    store = open_job_store(path)
    (job,) = store.jobs()
    assert job.key == "a.mp3" and job.state is JobState.QUEUED


def test_a_sqlite_store_opens_while_another_connection_writes_to_its_file(tmp_path):
    """Workers started together on a new store race to switch its file to WAL. SQLite refuses that
    switch at once, ignoring the busy timeout, to a connection that would otherwise deadlock with a
    writer (the CI run of 7d9004f lost one of four processes so): opening must wait the writer out."""
    import sqlite3

    path = tmp_path / "jobs.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO other VALUES (1)")
    commit = threading.Timer(0.3, writer.execute, ["COMMIT"])
    commit.start()
    try:
        store = open_job_store(path)
        assert store.enqueue(obj(), DEST) is not None and store.queued() == 1
        assert store._db().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        store.close()
    finally:
        commit.join()
        writer.close()
