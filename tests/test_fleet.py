"""A fleet on one machine: three worker processes, each in its own scratch folder as if on its own
machine, take real speech from S3 (SeaweedFS) through one job store while one of them is SIGKILLed
five times and restarted; and a worker that loses its PostgreSQL store for 10 s mid-batch.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import LIBRISPEECH, REPO, reference, wer
from services import CREDENTIALS, seaweedfs
from test_jobs_local import assert_transcribed, copy_files, wait_for
from test_jobs_s3 import client

from batchscribe.jobs.stores import open_job_store

pytestmark = pytest.mark.e2e
FILES = sorted(LIBRISPEECH.glob("*.flac"))
INPUT, OUTPUT = "s3://media/audio-input/", "s3://media/transcription-output/"
DONE = re.compile(r"INFO batchscribe\.worker: done: (\S+)")


def start_worker(args: list[str], home: Path, log: Path, env: dict | None = None) -> subprocess.Popen:
    """`batchscribe worker` with its own working folder and temporary folder (its 'machine')."""
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, **CREDENTIALS, "PYTHONPATH": str(REPO / "src"), "TMPDIR": str(home / "tmp"),
                   **(env or {})}  # fmt: skip
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "batchscribe", "worker", *args], stdout=out, stderr=out,
                                env=environment, cwd=home)  # fmt: skip


def acks(logs: list[Path]) -> Counter:
    return Counter(match.group(1) for log in logs if log.exists() for match in DONE.finditer(log.read_text()))


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as endpoint:
        client("s3", endpoint).create_bucket(Bucket="media")
        yield endpoint


@pytest.mark.parametrize("kind, copies", [("postgresql", 2), ("sqlite", 1)])
def test_three_workers_one_killed_five_times_transcribe_each_file_once(kind, copies, seaweed, tmp_path, request):
    """PostgreSQL: the 60 LibriSpeech test-other files under two keys each (120 jobs); SQLite (the
    workers share one file, so one machine): the 60 once, to keep the suite's time."""
    location = request.getfixturevalue("postgres_database") if kind == "postgresql" else str(tmp_path / "jobs.db")
    s3 = client("s3", seaweed)
    prefix = f"audio-input/{kind}/"
    keys = {}
    for copy in range(copies):
        for path in FILES:
            key = f"{prefix}{copy}/{path.name}"
            s3.upload_file(str(path), "media", key)
            keys[key] = f"librispeech/test-other/{path.name}"
    common = ["--store", location, "--endpoint-url", seaweed]
    submit = subprocess.run([sys.executable, "-m", "batchscribe", "submit", f"s3://media/{prefix}", "-o", OUTPUT + kind,
                             *common], capture_output=True, text=True, env={**os.environ, **CREDENTIALS,
                             "PYTHONPATH": str(REPO / "src")}, timeout=120)  # fmt: skip
    assert f"{len(keys)} queued" in submit.stdout, submit.stdout + submit.stderr
    store = open_job_store(location)
    worker = [*common, "--files-per-batch", "4", "--lease-seconds", "3"]
    homes = [tmp_path / f"machine{n}" for n in range(3)]
    logs = [tmp_path / "machine0-0.log", tmp_path / "machine1.log", tmp_path / "machine2.log"]
    steady = []
    rng = random.Random(11)
    kills = 0
    victim = start_worker(worker, homes[0], logs[0])
    for n in range(5):

        def holding(victim=victim):
            running = store.jobs("running", limit=10_000)
            return any(f":{victim.pid}:" in (job.lease_owner or "") for job in running)

        wait_for(lambda: holding() or store.unfinished() == 0, 120, "the victim's batch")
        time.sleep(rng.uniform(0.5, 2.5))  # somewhere in its batch: before, during or after the model loaded
        kills += holding()
        victim.kill()  # SIGKILL: no chance to clean up
        victim.wait()
        if n == 0:  # the other two machines join once the first kill has landed, so all five land mid-batch
            steady = [start_worker([*worker, "--exit-when-idle"], homes[m], logs[m]) for m in (1, 2)]
        logs.append(tmp_path / f"machine0-{n + 1}.log")
        victim = start_worker([*worker, *(["--exit-when-idle"] if n == 4 else [])], homes[0], logs[-1])
    for process in (*steady, victim):
        assert process.wait(timeout=300) == 0, "\n".join(log.read_text()[-3000:] for log in logs)

    jobs = store.jobs(limit=10_000)
    acked = acks(logs)
    duplicates = sum(count - 1 for count in acked.values() if count > 1)
    lost = sum(job.state != "succeeded" for job in jobs)
    taken_over = sum(job.lost_leases for job in jobs)
    print(f"{kind}: {len(jobs)} files, 3 workers, {kills} of 5 kills mid-batch, {taken_over} files taken over, "
          f"{duplicates} duplicates, {lost} lost")  # fmt: skip
    assert sorted(job.source_uri for job in jobs) == sorted(f"s3://media/{key}" for key in keys)
    assert lost == 0 and duplicates == 0 and sorted(acked) == sorted(job.source_uri for job in jobs)
    assert kills >= 3, "the kills should land while the victim holds jobs"
    listed = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket="media", Prefix=f"transcription-output/{kind}/") for item in page.get("Contents", [])
        if not item["Key"].rsplit("/", 1)[-1].startswith(".")]  # less the resume stamps  # fmt: skip
    expected = {f"transcription-output/{kind}/{key[len(prefix):]}.{fmt}" for key in keys
                for fmt in ("txt", "srt", "vtt", "json")}  # fmt: skip
    assert sorted(listed) == sorted(expected)  # every transcript set whole, nothing else (no partial objects)
    hypotheses, references = [], []
    for key, corpus_name in keys.items():
        body = s3.get_object(Bucket="media", Key=f"transcription-output/{kind}/{key[len(prefix):]}.json")["Body"]
        document = json.loads(body.read())
        assert document["source"] == f"s3://media/{key}"
        hypotheses.append(document["text"])
        references.append(reference(corpus_name))
    assert wer(references, hypotheses) <= 0.16


def test_a_worker_keeps_its_transcripts_through_a_postgresql_outage(postgres_server, postgres_database, tmp_path):
    """PostgreSQL stops for 10 s mid-batch: the worker keeps what it finished, reconnects, and
    acknowledges it; nothing acknowledged before the outage is transcribed again."""
    inputs = copy_files(tmp_path / "in", 40)
    out = tmp_path / "out"
    common = ["--store", postgres_database]
    submit = subprocess.run([sys.executable, "-m", "batchscribe", "submit", str(tmp_path / "in"), "-o", str(out),
                             *common], capture_output=True, text=True, env={**os.environ,
                             "PYTHONPATH": str(REPO / "src")}, timeout=120)  # fmt: skip
    assert "40 queued" in submit.stdout, submit.stderr
    store = open_job_store(postgres_database)
    log = tmp_path / "worker.log"
    worker = start_worker([*common, "--files-per-batch", "40", "--exit-when-idle"], tmp_path / "machine", log)
    try:
        wait_for(lambda: store.status().counts["succeeded"] >= 1 or worker.poll() is not None, 180, "first acks")
        store.close()
        postgres_server.stop()
        acked_before = acks([log])
        written_before = {uri: (out / f"{Path(uri).name}.json").stat().st_mtime_ns for uri in acked_before}
        time.sleep(10)
    finally:
        postgres_server.start()
    assert worker.wait(timeout=300) == 0, log.read_text()[-3000:]
    text = log.read_text()
    store = open_job_store(postgres_database)
    jobs = store.jobs()
    acked = acks([log])
    kept = text.count("to be recorded when it answers") + text.count("still unreachable")
    print(f"outage: {len(acked_before)} files acknowledged before, {len(jobs) - len(acked_before)} after; "
          f"{text.count('recorded after the store came back')} updates recorded after reconnecting")  # fmt: skip
    assert kept >= 1 and "recorded after the store came back" in text, text[-3000:]
    assert [job.state for job in jobs] == ["succeeded"] * 40
    assert all(job.attempts == 0 and job.lost_leases == 0 for job in jobs)
    assert sorted(acked) == sorted(job.source_uri for job in jobs) and max(acked.values()) == 1
    for uri, mtime in written_before.items():  # acknowledged before the outage: never transcribed again
        assert (out / f"{Path(uri).name}.json").stat().st_mtime_ns == mtime
    assert_transcribed(inputs, out)
