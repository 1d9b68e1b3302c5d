"""The job store's state machine, on a real SQLite file."""

import time

import pytest

from batchscribe.jobs.store import MAX_LOST_LEASES, JobStore
from batchscribe.storage.objects import StoredObject

ROOT = "s3://media/audio-input/"
DEST = "s3://media/transcription-output/"


def obj(key="a.mp3", version="etag1"):
    return StoredObject(ROOT, key, version, 100)


@pytest.fixture
def store(tmp_path):
    return JobStore(tmp_path / "jobs.db", max_attempts=3, backoff_seconds=0.05)


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
    assert store.status().counts["succeeded"] == 1


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


def test_state_survives_reopening(tmp_path):
    path = tmp_path / "jobs.db"
    first = JobStore(path)
    first.enqueue(obj(), DEST)
    first.claim("w", 1, 60)
    first.dead_letter("sqs", "{", "not JSON")
    # no close(): as if the process died
    second = JobStore(path)
    status = second.status()
    assert status.counts["running"] == 1 and status.dead_letters == 1
