"""The embedded default end to end: folder -> job store -> workers -> transcripts, with faults injected.

Every test runs the real CLI in its own processes on real speech.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import LIBRISPEECH, REPO, reference, run_cli, wer

from batchscribe.jobs.stores import open_job_store

pytestmark = pytest.mark.e2e
FILES = sorted(LIBRISPEECH.glob("*.flac"))


def start(*args: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "batchscribe", *args], stdout=out, stderr=out, env=env)


def copy_files(folder: Path, count: int, offset: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for n in range(offset, offset + count):
        source = FILES[n % len(FILES)]
        copy = folder / f"{n:03d}_{source.name}"
        shutil.copy(source, copy)
        copies.append(copy)
    return copies


def source_of(copy: Path) -> str:
    return f"librispeech/test-other/{copy.name.split('_', 1)[1]}"


def assert_transcribed(inputs: list[Path], out: Path, bound: float = 0.16) -> None:
    """Every input has all four transcripts, nothing half-written is left, and the words are right."""
    hypotheses = []
    for path in inputs:
        for fmt in ("txt", "srt", "vtt", "json"):
            assert (out / f"{path.name}.{fmt}").exists(), f"{path.name}.{fmt} missing"
        hypotheses.append((out / f"{path.name}.txt").read_text())
        assert json.loads((out / f"{path.name}.json").read_text())["source"].endswith(path.name)
    assert not list(out.rglob("*.partial")), "a half-written transcript was left behind"
    assert wer([reference(source_of(p)) for p in inputs], hypotheses) <= bound


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_run_once_transcribes_a_folder_and_a_corrupt_file_dies_with_its_reason(tmp_path):
    inputs = copy_files(tmp_path / "in", 6)
    (tmp_path / "in" / "notes.txt").write_text("not audio, not picked up")
    corrupt = tmp_path / "in" / "corrupt.wav"
    corrupt.write_bytes(FILES[0].read_bytes()[:3000])  # a truncated flac named .wav
    store = tmp_path / "jobs.db"
    args = ("--store", str(store), "--max-attempts", "2", "--retry-backoff", "0.2")
    result = run_cli("run", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--once", *args)
    assert result.returncode == 1, result.stderr
    assert "6 succeeded, 1 dead" in result.stdout
    assert "corrupt.wav" in result.stdout
    assert_transcribed(inputs, tmp_path / "out")
    (dead,) = open_job_store(store).jobs("dead")
    assert dead.key == "corrupt.wav" and dead.attempts == 1 and "corrupt.wav" in dead.last_error  # never retried

    listing = run_cli("jobs", "--state", "dead", "--store", str(store), check=True).stdout
    assert "corrupt.wav" in listing and "attempts 1" in listing
    status = run_cli("status", "--store", str(store), check=True).stdout
    assert "succeeded 6" in status and "dead 1" in status
    # Fixed by the user, retried: the new content is a new version, and `retry` re-queues the dead job.
    shutil.copy(FILES[6], corrupt)
    assert "1 job(s) queued again" in run_cli("retry", "--dead", "--store", str(store), check=True).stdout
    again = run_cli("run", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--once", *args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / "out" / "corrupt.wav.txt").exists()


def test_folder_watch_takes_files_once_fully_written(tmp_path):
    incoming, out, log = tmp_path / "in", tmp_path / "out", tmp_path / "run.log"
    incoming.mkdir()
    already = copy_files(incoming, 2)
    process = start("run", str(incoming), "-o", str(out), "--store", str(tmp_path / "jobs.db"),
                    "--settle-seconds", "1", log=log)  # fmt: skip
    try:
        wait_for(lambda: all((out / f"{p.name}.txt").exists() for p in already), 120, "files present at start")
        # A slow upload under a partial name, then renamed; and a file written in several steps.
        data = FILES[10].read_bytes()
        partial = incoming / "upload.flac.part"
        with open(partial, "wb") as handle:
            for start_byte in range(0, len(data), len(data) // 4 + 1):
                handle.write(data[start_byte : start_byte + len(data) // 4 + 1])
                handle.flush()
                time.sleep(0.4)
        uploaded = partial.rename(incoming / f"010_{FILES[10].name}")
        arrived = [uploaded, *copy_files(incoming, 1, offset=11)]
        wait_for(lambda: all((out / f"{p.name}.txt").exists() for p in arrived), 120, "new files")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()
    keys = [job.key for job in open_job_store(tmp_path / "jobs.db").jobs()]
    assert sorted(keys) == sorted(p.name for p in [*already, *arrived])  # the .part name never became a job
    assert_transcribed([*already, *arrived], out)


def test_sigkill_mid_batch_five_times_loses_nothing_and_acks_each_file_once(tmp_path):
    inputs = copy_files(tmp_path / "in", 40)
    store_path, out = tmp_path / "jobs.db", tmp_path / "out"
    run_cli("submit", str(tmp_path / "in"), "-o", str(out), "--store", str(store_path), check=True)
    store = open_job_store(store_path)
    worker = ("worker", "--store", str(store_path), "--files-per-batch", "4", "--lease-seconds", "2")
    logs = []
    rng = random.Random(7)
    kills = 0
    for n in range(5):
        logs.append(tmp_path / f"worker{n}.log")
        process = start(*worker, log=logs[-1])
        before = store.status().counts["succeeded"]

        def progressed(before=before, process=process):
            done = store.status().counts["succeeded"]
            return done > before or store.unfinished() == 0 or process.poll() is not None

        wait_for(progressed, 120, "a worker's first acknowledged file")
        time.sleep(rng.uniform(0.1, 0.8))
        if store.status().counts["running"]:
            kills += 1
        process.kill()  # SIGKILL: no chance to clean up
        process.wait()
    logs.append(tmp_path / "final.log")
    final = start(*worker, "--exit-when-idle", log=logs[-1])
    assert final.wait(timeout=300) == 0, logs[-1].read_text()

    jobs = store.jobs()
    assert kills >= 3, "the kills should land while jobs are running"
    assert [job.state for job in jobs] == ["succeeded"] * len(inputs)
    acks = [line for log in logs for line in log.read_text().splitlines() if "INFO batchscribe.worker: done:" in line]
    assert sorted(line.split("done: ")[1] for line in acks) == sorted(job.source_uri for job in jobs)
    taken_over = sum(job.lost_leases for job in jobs)
    print(f"kills landing mid-batch: {kills}; files taken over after a kill: {taken_over}; lost: 0")
    assert taken_over >= 1
    assert_transcribed(inputs, out)


def test_a_hundred_files_while_workers_start_and_stop(tmp_path):
    store_path, out, incoming = tmp_path / "jobs.db", tmp_path / "out", tmp_path / "in"
    worker = ("worker", "--store", str(store_path), "--files-per-batch", "8")
    submit = ("submit", str(incoming), "-o", str(out), "--store", str(store_path))
    inputs: list[Path] = []
    for round_number in range(4):  # files arrive in waves while a worker is started and stopped gently
        inputs += copy_files(incoming, 25, offset=25 * round_number)
        run_cli(*submit, check=True)
        processes = ("--workers", str(1 + round_number % 2))  # one or two worker processes sharing the store
        process = start(*worker, *processes, log=tmp_path / f"worker{round_number}.log")
        time.sleep(3 + round_number)
        process.send_signal(signal.SIGTERM)  # finish the batch in hand, take no more
        assert process.wait(timeout=120) == 0
    final = start(*worker, "--exit-when-idle", log=tmp_path / "final.log")
    assert final.wait(timeout=300) == 0
    jobs = open_job_store(store_path).jobs()
    assert len(jobs) == 100 and {job.state for job in jobs} == {"succeeded"}
    assert_transcribed(inputs, out)


def test_the_same_file_submitted_twice_is_one_job(tmp_path):
    copy_files(tmp_path / "in", 3)
    args = ("submit", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--store", str(tmp_path / "jobs.db"))
    assert "3 queued, 0 already known" in run_cli(*args, check=True).stdout
    assert "0 queued, 3 already known" in run_cli(*args, check=True).stdout


def test_a_second_sigterm_gives_unfinished_jobs_back_at_once(tmp_path):
    copy_files(tmp_path / "in", 40)
    store_path = tmp_path / "jobs.db"
    run_cli("submit", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--store", str(store_path), check=True)
    store = open_job_store(store_path)
    process = start("worker", "--store", str(store_path), "--files-per-batch", "40", log=tmp_path / "worker.log")
    wait_for(lambda: store.status().counts["succeeded"] > 0, 120, "the first file of the batch")
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # two signals at once would reach Python's handler as one
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    counts = store.status().counts
    assert counts["running"] == 0 and counts["dead"] == 0 and counts["retrying"] == 0
    assert counts["queued"] > 0 and counts["queued"] + counts["succeeded"] == 40
    assert all(job.attempts == 0 and job.lost_leases == 0 for job in store.jobs("queued"))
