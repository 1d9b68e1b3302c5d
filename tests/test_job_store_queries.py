"""The store queries the service asks (paging, one job, throughput per hour), on both stores."""

import pytest

from batchscribe.jobs.stores import open_job_store
from batchscribe.storage.objects import StoredObject

ROOT, DEST = "s3://media/audio-input/", "s3://media/transcription-output/"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    location = str(tmp_path / "jobs.db") if request.param == "sqlite" else request.getfixturevalue("postgres_database")
    store = open_job_store(location, max_attempts=1)
    yield store
    store.close()


def test_pages_one_job_and_hourly_throughput(store):
    ids = [store.enqueue(StoredObject(ROOT, f"{n}.mp3", "e", 1), DEST) for n in range(7)]
    claimed = store.claim("w", 3, 60)
    for job in claimed[:2]:
        store.succeed(job.id, "w", 12.5)
    store.fail(claimed[2].id, "w", "broken.mp3: no audio")
    assert [job.id for job in store.jobs(limit=3, offset=2)] == ids[2:5]
    assert [job.id for job in store.jobs("queued", limit=10, offset=1)] == ids[4:]
    dead = store.job(claimed[2].id)
    assert dead.state == "dead" and dead.attempts == 1 and dead.last_error == "broken.mp3: no audio"
    assert store.job(10_000) is None
    hours = store.throughput(hours=6)
    assert len(hours) == 6 and [files for _, files, _ in hours] == [0, 0, 0, 0, 0, 2]
    assert hours[-1][2] == 25.0 and hours[-1][0] - hours[-2][0] == 3600
