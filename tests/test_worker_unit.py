"""The worker on a real SQLite job store in a temp folder, with the fake engine (tests/fake_engine.py):
acknowledgement per file, a bad file's reason, the first and the second stop. About a second each;
the end-to-end runs with a real model and real processes are test_jobs_local.py and test_fleet.py."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from fake_engine import PHRASES, FakeEngine, expected_text, marked_speech, write_wav

from batchscribe.jobs.store import JobState, JobStore
from batchscribe.jobs.stores import open_job_store
from batchscribe.jobs.worker import Worker, WorkerOptions
from batchscribe.options import TranscribeOptions
from batchscribe.pipeline import Transcriber
from batchscribe.storage.local import LocalStore

OPTIONS = TranscribeOptions(formats=("txt", "json"), batch_size=1)


def queue_folder(
    tmp_path: Path, scripts: dict[str, list[int]], junk: tuple[str, ...] = (), backoff_seconds: float = 10.0
) -> JobStore:
    """Files saying `scripts` (and `junk`, random bytes) in tmp/in, one job each for tmp/out."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    for name, phrases in scripts.items():
        write_wav(inbox / f"{name}.wav", marked_speech(phrases))
    for name in junk:
        (inbox / f"{name}.wav").write_bytes(np.random.default_rng(0).bytes(20_000))
    store = open_job_store(tmp_path / "jobs.db", backoff_seconds=backoff_seconds)
    for item in LocalStore(inbox).list():
        store.enqueue(item, LocalStore(tmp_path / "out").root)
    return store


def worker(store: JobStore, engine: FakeEngine, files_per_batch: int = 16) -> Worker:
    options = WorkerOptions(files_per_batch=files_per_batch, poll_seconds=0.05, exit_when_idle=True)
    return Worker(store, OPTIONS, options, Transcriber(OPTIONS, engine_loader=engine.load))


def states(store: JobStore) -> dict[str, JobState]:
    return {Path(job.key).stem: job.state for job in store.jobs()}


def transcript(tmp_path: Path, name: str) -> str:
    return " ".join((tmp_path / "out" / f"{name}.wav.txt").read_text().split())


def test_each_file_is_acknowledged_once_stored_and_a_bad_one_fails_with_its_reason(tmp_path):
    """a fills the first model batch (with b's first phrase, if the VAD's pieces leave room for it), b's
    last phrase is in the second: when the second is decoded, a's transcript is already stored and its
    job succeeded, and the junk file is dead with its reason, while b still runs."""
    scripts = {"a": [0, 1, 2, 3, 4], "b": [5, 6]}
    store = queue_folder(tmp_path, scripts, junk=("bad",))
    seen = {}

    def second_batch(windows: list[list[str]]) -> None:
        if any(PHRASES[6] in window for window in windows):
            seen["states"] = states(store)
            seen["a stored"] = (tmp_path / "out" / "a.wav.txt").exists()

    worker(store, FakeEngine(before_decode=second_batch)).run()

    assert seen == {
        "states": {"a": JobState.SUCCEEDED, "b": JobState.RUNNING, "bad": JobState.DEAD},
        "a stored": True,
    }
    assert states(store) == {"a": JobState.SUCCEEDED, "b": JobState.SUCCEEDED, "bad": JobState.DEAD}
    for name, phrases in scripts.items():
        assert transcript(tmp_path, name) == expected_text(phrases)
        assert (tmp_path / "out" / f"{name}.wav.json").exists()
    (bad,) = store.jobs("dead")
    assert bad.attempts == 1 and bad.last_error.startswith(bad.source_uri + ": not a recognised audio")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".a.wav.batchscribe",  # the resume stamps (sinks/objects.py), and the bad file's failure beside it
        ".b.wav.batchscribe",
        ".bad.wav.batchscribe",
        "a.wav.json",
        "a.wav.txt",
        "b.wav.json",
        "b.wav.txt",
    ]


def test_the_model_failing_on_a_batch_fails_only_its_unfinished_jobs_which_a_retry_then_does(tmp_path):
    """The model fails from the second batch on, for the rest of the first attempt (the model, not a
    file: its pieces fail alone too): a, stored from the first batch, stays succeeded and is not
    transcribed again; b fails this attempt with the reason and succeeds on the next."""
    scripts = {"a": [0, 1, 2, 3, 4], "b": [5, 6]}
    store = queue_folder(tmp_path, scripts, backoff_seconds=0.05)
    tries = []
    broken = threading.Event()

    def fail_first_attempt(windows: list[list[str]]) -> None:
        jobs = {Path(job.key).stem: (job.state, job.attempts, job.last_error) for job in store.jobs()}
        if any(PHRASES[6] in window for window in windows):  # b's last phrase: always in the second batch
            tries.append(jobs)
        if jobs["b"][1] == 0 and (broken.is_set() or any(PHRASES[6] in window for window in windows)):
            broken.set()
            raise RuntimeError("scripted: CUDA out of memory")

    engine = FakeEngine(before_decode=fail_first_attempt)
    worker(store, engine).run()

    assert len(tries) >= 2  # in the first attempt the batch (and b's last piece alone), then the second
    state, attempts, error = tries[-1]["b"]
    assert (state, attempts) == (JobState.RUNNING, 1) and "CUDA out of memory" in error
    assert tries[-1]["a"] == (JobState.SUCCEEDED, 0, None)
    assert states(store) == {"a": JobState.SUCCEEDED, "b": JobState.SUCCEEDED}
    assert len([w for call in engine.calls for w in call if PHRASES[0] in w]) == 1  # a was not redone
    for name, phrases in scripts.items():
        assert transcript(tmp_path, name) == expected_text(phrases)


def test_a_stop_finishes_the_current_batch_claims_no_more_and_the_next_worker_does_the_rest(tmp_path):
    scripts = {"a": [0], "b": [1], "c": [2], "d": [3]}
    store = queue_folder(tmp_path, scripts)
    engine = FakeEngine(before_decode=lambda windows: first.request_stop())
    first = worker(store, engine, files_per_batch=2)
    first.run()  # returns once the claimed batch is done, though jobs are left

    assert states(store) == {"a": "succeeded", "b": "succeeded", "c": "queued", "d": "queued"}
    assert engine.calls == [[[PHRASES[0], PHRASES[1]]]]
    assert [job.attempts for job in store.jobs("queued")] == [0, 0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix == ".txt") == ["a.wav.txt", "b.wav.txt"]

    again = FakeEngine()
    worker(store, again, files_per_batch=2).run()
    assert states(store) == dict.fromkeys(scripts, "succeeded")
    assert again.calls == [[[PHRASES[2], PHRASES[3]]]]
    for name, phrases in scripts.items():
        assert transcript(tmp_path, name) == expected_text(phrases)


def test_a_second_stop_gives_the_unfinished_jobs_back_at_once(tmp_path):
    """Stopped twice while its batch is being decoded: nothing more is stored, every claimed job is
    queued again without an attempt counted against it, and no lease is left behind."""
    store = queue_folder(tmp_path, {"a": [0], "b": [1], "c": [2]})

    def stop_twice(windows: list[list[str]]) -> None:
        hurried.request_stop()
        hurried.request_stop()

    hurried = worker(store, FakeEngine(before_decode=stop_twice))
    hurried.run()

    assert states(store) == dict.fromkeys("abc", "queued")
    assert all(job.attempts == 0 and job.lease_owner is None for job in store.jobs())
    assert not (tmp_path / "out").exists()


def test_a_job_the_pipeline_finds_done_is_acknowledged_though_the_model_then_fails(tmp_path, monkeypatch):
    """a's transcripts are stored, but the worker's own look at its stamp failed (a store hiccup): the
    pipeline finds it done and reports it at once, so when the model fails on b's batch, a is
    succeeded, without an attempt used up, and only b fails this attempt."""
    from batchscribe.errors import ModelError
    from batchscribe.sinks.base import identity_of
    from batchscribe.sinks.objects import ObjectSink

    store = queue_folder(tmp_path, {"a": [0], "b": [1]})
    (queued_a,) = [job for job in store.jobs() if job.key == "a.wav"]
    keys = Transcriber(OPTIONS, engine_loader=FakeEngine().load).settings_keys()
    ObjectSink(LocalStore(tmp_path / "out")).write("a.wav", {"txt": "a", "json": "{}"}, queued_a.source_uri,
                                                   identity_of(queued_a), keys.current)  # fmt: skip
    looks = []
    real_is_done = ObjectSink.is_done

    def first_look_fails(self, name, *args):
        looks.append(name)
        if looks.count(name) == 1:
            raise ConnectionError("scripted: connection reset")
        return real_is_done(self, name, *args)

    monkeypatch.setattr(ObjectSink, "is_done", first_look_fails)

    def model_fails(windows: list[list[str]]) -> None:
        raise ModelError("scripted: the model failed")

    options = WorkerOptions(poll_seconds=0.05, exit_when_idle=False)
    engine = FakeEngine(before_decode=model_fails)
    hurt = Worker(store, OPTIONS, options, Transcriber(OPTIONS, engine_loader=engine.load))
    hurt.run_batch(store.claim(hurt.owner, 16, 60.0))

    jobs = {Path(job.key).stem: job for job in store.jobs()}
    assert (jobs["a"].state, jobs["a"].attempts) == (JobState.SUCCEEDED, 0)
    assert jobs["b"].attempts == 1 and "scripted: the model failed" in jobs["b"].last_error
    assert sorted(looks) == ["a.wav", "a.wav", "b.wav", "b.wav"]  # each failed look asked once more, no more


def test_a_file_the_model_always_fails_on_ends_dead_and_the_files_batched_with_it_succeed(tmp_path):
    """The first attempt packs the poisoned file's speech beside others: only its job fails, and again
    at each retry (claimed alone), until it is a dead letter with the model's reason; the others
    succeed at their first attempt."""
    store = queue_folder(tmp_path, {"a": [0, 1, 2], "b": [3, 4, 5], "c": [6, 7], "poison": [8]}, backoff_seconds=0.01)

    def poisoned(windows: list[list[str]]) -> None:
        if any(PHRASES[8] in window for window in windows):
            raise IndexError("scripted: list index out of range")

    worker(store, FakeEngine(before_decode=poisoned)).run()
    jobs = {Path(job.key).stem: job for job in store.jobs()}
    assert {name: (job.state, job.attempts) for name, job in jobs.items() if name != "poison"} == {
        name: (JobState.SUCCEEDED, 0) for name in "abc"
    }
    assert jobs["poison"].state is JobState.DEAD and jobs["poison"].attempts == 3
    assert "IndexError: scripted: list index out of range" in jobs["poison"].last_error
    for name, phrases in {"a": [0, 1, 2], "b": [3, 4, 5], "c": [6, 7]}.items():
        assert transcript(tmp_path, name) == expected_text(phrases)
