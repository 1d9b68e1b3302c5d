"""The result sinks (sinks/): one naming scheme, resume from stamps (old folders included), the
all-or-nothing write, and `batchscribe job` resuming against a real S3 server. The model is the
fake engine (tests/fake_engine.py); the audio, VAD, writers and SeaweedFS are real."""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path

import pytest
from fake_engine import FakeEngine, expected_text, marked_speech, write_wav

from batchscribe.names import text_key
from batchscribe.options import TranscribeOptions
from batchscribe.digests import content_sha256
from batchscribe.pipeline import Transcriber
from batchscribe.sinks import FolderSink, ObjectSink, SettingsKeys
from batchscribe.sinks.base import Failure, settings_key
from batchscribe.storage.local import LocalStore

OPTIONS = TranscribeOptions(formats=("txt", "json"), batch_size=1)


def transcriber(engine: FakeEngine) -> Transcriber:
    return Transcriber(OPTIONS, engine_loader=engine.load)


def write_as_before(out: Path, stem: str, source: Path) -> None:
    """A transcript set and stamp as `transcribe` wrote them before the one naming scheme: `c.txt`
    (or `c.mp3.txt` when two inputs shared the stem), `.c.batchscribe` with the content's sha256 and
    the key of TranscribeOptions.output_settings() (no backend, no batch size)."""
    for fmt in OPTIONS.formats:
        (out / f"{stem}.{fmt}").write_text(f"old {fmt}")
    record = {"source": text_key(str(source)), "sha256": content_sha256(source),
              "settings": settings_key(OPTIONS.output_settings())}  # fmt: skip
    (out / f".{stem}.batchscribe").write_text(json.dumps(record) + "\n")


def test_a_folder_transcribed_under_the_old_names_is_not_transcribed_again(tmp_path):
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    out.mkdir()
    for name, phrases in {"a.wav": [0], "c.wav": [1], "c.flac": [2], "new.wav": [3], "changed.wav": [4]}.items():
        write_wav(inbox / name, marked_speech(phrases))
    write_as_before(out, "a", inbox / "a.wav")  # a lone stem: `a.txt`
    write_as_before(out, "c.wav", inbox / "c.wav")  # two shared the stem `c`: each kept its extension
    write_as_before(out, "c.flac", inbox / "c.flac")
    write_as_before(out, "changed", inbox / "changed.wav")
    write_wav(inbox / "changed.wav", marked_speech([5]))  # new content since: transcribed again

    engine = FakeEngine()
    summary = transcriber(engine).run([str(inbox)], out)

    status = {Path(r.source).name: r.status for r in summary.results}
    assert status == {"a.wav": "skipped", "c.wav": "skipped", "c.flac": "skipped", "new.wav": "ok",
                      "changed.wav": "ok"}  # fmt: skip
    assert (out / "a.txt").read_text() == "old txt", "an old set is left as it is"
    assert " ".join((out / "new.wav.txt").read_text().split()) == expected_text([3])
    assert " ".join((out / "changed.wav.txt").read_text().split()) == expected_text([5])
    stamp = json.loads((out / ".new.wav.batchscribe").read_text())
    assert stamp["sha256"] == content_sha256(inbox / "new.wav") and stamp["formats"] == ["txt", "json"]

    again = FakeEngine()
    assert {r.status for r in transcriber(again).run([str(inbox)], out).results} == {"skipped"}
    assert again.calls == [], "a re-run of the new scheme transcribed again"


def test_a_changed_backend_or_batch_size_is_a_new_settings_key_but_an_old_stamp_still_counts():
    keys = SettingsKeys.of({"model": "tiny.en"}, {"backend": "ct2", "batch_size": 8})
    other = SettingsKeys.of({"model": "tiny.en"}, {"backend": "torch", "batch_size": 8})
    assert keys.current != other.current and not keys.matches(other.current)
    assert keys.matches(settings_key({"model": "tiny.en"}))  # a stamp from before the key had them


def test_a_folder_set_is_written_all_or_nothing_and_only_then_stamped(tmp_path, monkeypatch):
    sink = FolderSink(tmp_path)
    keys = SettingsKeys("k")
    real_open = open
    opened = []

    def full_disk(file, mode="r", *args, **kwargs):
        if "x" in mode:
            opened.append(file)
            if len(opened) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full_disk)
    with pytest.raises(OSError):
        sink.write("a/c.mp3", {"txt": "t", "json": "{}"}, "in/a/c.mp3", "abc", "k")
    monkeypatch.undo()
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir()), "half a set, or a stamp, was left"
    assert not sink.is_done("a/c.mp3", "abc", keys, ("txt", "json"))
    sink.write("a/c.mp3", {"txt": "t", "json": "{}"}, "in/a/c.mp3", "abc", "k")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [".c.mp3.batchscribe", "c.mp3.json", "c.mp3.txt"]
    assert sink.is_done("a/c.mp3", "abc", keys, ("txt", "json"))
    assert not sink.is_done("a/c.mp3", "abd", keys, ("txt",)), "another version of the source"
    assert not sink.is_done("a/c.mp3", "abc", keys, ("txt", "srt")), "a format not written"


class _FlakyStore(LocalStore):
    """A store that loses the connection on the second object of each set (as S3 can)."""

    fail_on = 2

    def __init__(self, folder: Path):
        super().__init__(folder)
        self.puts = 0

    def put_text(self, key: str, text: str) -> None:
        self.puts += 1
        if self.puts == self.fail_on:
            raise ConnectionError("connection reset")
        super().put_text(key, text)


def test_an_object_set_counts_as_done_only_once_its_stamp_is_stored(tmp_path):
    store = _FlakyStore(tmp_path)
    store.put_texts = None  # S3 has no multi-object write: each object alone
    sink = ObjectSink(store)
    keys = SettingsKeys("k")
    with pytest.raises(ConnectionError):
        sink.write("talks/c.mp3", {"txt": "t", "json": "{}"}, "s3://b/in/talks/c.mp3", "etag:e1", "k")
    assert (tmp_path / "talks/c.mp3.txt").exists() and not (tmp_path / "talks/.c.mp3.batchscribe").exists()
    assert not sink.is_done("talks/c.mp3", "etag:e1", keys, ("txt", "json"))
    sink.write("talks/c.mp3", {"txt": "t", "json": "{}"}, "s3://b/in/talks/c.mp3", "etag:e1", "k")
    assert sink.is_done("talks/c.mp3", "etag:e1", keys, ("txt", "json"))
    assert not sink.is_done("talks/c.mp3", "etag:e2", keys, ("txt", "json"))


def test_batchscribe_job_run_twice_for_one_object_version_transcribes_it_once(tmp_path, monkeypatch, caplog):
    """A duplicate EventBridge event or a Batch retry after the upload: the second `job` finds the stamp
    and neither downloads nor transcribes, nor does a worker (the same identity, in a versioned bucket
    too: sinks.base.identity_of); a new version of the object is transcribed again. A bad
    object's failure is recorded beside it, not in a shared failures.jsonl."""
    import boto3
    from services import CREDENTIALS, seaweedfs

    from batchscribe.aws.batch_job import EXIT_BAD_INPUT, EXIT_OK, ObjectName, run_job
    from batchscribe.jobs.stores import open_job_store
    from batchscribe.jobs.worker import Worker, WorkerOptions
    from batchscribe.storage.s3 import S3Store

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    write_wav(tmp_path / "a.wav", marked_speech([0, 1]))
    write_wav(tmp_path / "a2.wav", marked_speech([2]))
    caplog.set_level(logging.INFO, logger="batchscribe.job")
    with seaweedfs(tmp_path / "s3") as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="media")
        s3.put_bucket_versioning(Bucket="media", VersioningConfiguration={"Status": "Enabled"})  # as on AWS
        s3.upload_file(str(tmp_path / "a.wav"), "media", "in/talks/a.wav")
        s3.put_object(Bucket="media", Key="in/talks/junk.wav", Body=b"not audio at all" * 100)

        def job(key: str, engine: FakeEngine) -> int:
            return run_job([ObjectName("media", f"in/{key}")], "s3://media/in/", "s3://media/out/", OPTIONS,
                           endpoint, transcriber(engine))  # fmt: skip

        def stored() -> dict[str, tuple]:
            listing = s3.list_objects_v2(Bucket="media", Prefix="out/")["Contents"]
            return {o["Key"]: (o["ETag"], o["LastModified"]) for o in listing}

        first = FakeEngine()
        assert job("talks/a.wav", first) == EXIT_OK
        assert first.calls
        before = stored()
        assert set(before) == {"out/talks/a.wav.txt", "out/talks/a.wav.json", "out/talks/.a.wav.batchscribe"}
        text = s3.get_object(Bucket="media", Key="out/talks/a.wav.txt")["Body"].read().decode()
        assert " ".join(text.split()) == expected_text([0, 1])

        caplog.clear()
        second = FakeEngine()
        assert job("talks/a.wav", second) == EXIT_OK
        assert second.calls == [] and second.loads == 0, "the second job transcribed the same version again"
        assert "0 transcribed, 1 skipped" in caplog.text
        assert stored() == before, "the stored transcripts were written again"

        # a worker (its job from a listing, which has no VersionId) finds the stamp `job` wrote
        assert s3.head_object(Bucket="media", Key="in/talks/a.wav").get("VersionId") not in (None, "null")
        stamp = json.loads(s3.get_object(Bucket="media", Key="out/talks/.a.wav.batchscribe")["Body"].read())
        assert stamp["identity"] == "etag:" + s3.head_object(Bucket="media", Key="in/talks/a.wav")["ETag"].strip('"')
        jobs = open_job_store(tmp_path / "jobs.db")
        (listed,) = [item for item in S3Store("media", "in/", endpoint).list() if item.key == "talks/a.wav"]
        jobs.enqueue(listed, "s3://media/out/")
        worked = FakeEngine()
        options = WorkerOptions(poll_seconds=0.05, exit_when_idle=True, endpoint_url=endpoint)
        Worker(jobs, OPTIONS, options, transcriber(worked)).run()
        assert worked.calls == [] and [job.state for job in jobs.jobs()] == ["succeeded"]
        assert stored() == before

        s3.upload_file(str(tmp_path / "a2.wav"), "media", "in/talks/a.wav")  # a new version: new ETag
        third = FakeEngine()
        assert job("talks/a.wav", third) == EXIT_OK and third.calls
        text = s3.get_object(Bucket="media", Key="out/talks/a.wav.txt")["Body"].read().decode()
        assert " ".join(text.split()) == expected_text([2])

        assert job("talks/junk.wav", FakeEngine()) == EXIT_BAD_INPUT
        record = json.loads(s3.get_object(Bucket="media", Key="out/talks/.junk.wav.batchscribe")["Body"].read())
        assert record["source"] == "s3://media/in/talks/junk.wav" and "not a recognised audio" in record["error"]
        assert not [k for k in stored() if k.endswith("failures.jsonl")]

        assert_the_copy_is_of_the_content_looked_at(s3, endpoint, tmp_path / "copies")


def test_a_worker_with_a_fresh_job_store_skips_what_its_output_already_holds(tmp_path):
    """The job store forgotten (deleted, or another one), the outputs kept: the stamps beside them
    decide, as for `transcribe`, and the jobs succeed without a transcription or a download."""
    from batchscribe.jobs.store import JobStore
    from batchscribe.jobs.stores import open_job_store
    from batchscribe.jobs.worker import Worker, WorkerOptions

    inbox = tmp_path / "in"
    inbox.mkdir()
    for name, phrases in {"a": [0], "b": [1]}.items():
        write_wav(inbox / f"{name}.wav", marked_speech(phrases))

    def work(store_path: Path) -> tuple[FakeEngine, JobStore]:
        store = open_job_store(store_path)
        for item in LocalStore(inbox).list():
            store.enqueue(item, LocalStore(tmp_path / "out").root)
        engine = FakeEngine()
        options = WorkerOptions(poll_seconds=0.05, exit_when_idle=True)
        Worker(store, OPTIONS, options, transcriber(engine)).run()
        return engine, store

    first, _ = work(tmp_path / "one.db")
    assert first.calls
    again, store = work(tmp_path / "two.db")
    assert again.calls == [] and again.loads == 0
    assert {job.state for job in store.jobs()} == {"succeeded"}
    transcribed = transcriber(FakeEngine()).run([str(inbox)], tmp_path / "out")  # the same stamps, from transcribe
    assert {r.status for r in transcribed.results} == {"skipped"}


def test_two_versions_of_one_object_in_one_batch_each_get_a_result(tmp_path):
    """A file changed after it was queued is queued again (one job per version); claimed together, the
    two jobs share a source URI (and, in a folder, the file they read): each gets its own result in the
    first attempt, one run after the other."""
    from batchscribe.jobs.stores import open_job_store
    from batchscribe.jobs.worker import Worker, WorkerOptions

    inbox = tmp_path / "in"
    inbox.mkdir()
    store = open_job_store(tmp_path / "jobs.db")
    for phrases in ([0], [1]):
        write_wav(inbox / "a.wav", marked_speech(phrases))
        (item,) = LocalStore(inbox).list()
        store.enqueue(item, LocalStore(tmp_path / "out").root)
    engine = FakeEngine()
    Worker(store, OPTIONS, WorkerOptions(poll_seconds=0.05, exit_when_idle=True), transcriber(engine)).run()
    assert [(job.state, job.attempts) for job in store.jobs()] == [("succeeded", 0)] * 2  # none failed once
    assert len(engine.calls) == 2, "one run per version"
    assert " ".join((tmp_path / "out" / "a.wav.txt").read_text().split()) == expected_text([1])


def test_batchscribe_job_transcribes_anyway_with_a_warning_when_the_stamp_cannot_be_read(tmp_path, monkeypatch,
                                                                                          caplog):  # fmt: skip
    """A role that may not read the output prefix (S3 answers 403, not 404): the job must not fail
    and be retried until Batch gives up; it warns and transcribes, as `transcribe` and the worker do."""
    from botocore.exceptions import ClientError

    from batchscribe.aws import batch_job

    class Bucket(LocalStore):  # the input, as `job` sees an S3 prefix
        def __init__(self, folder: Path, root: str):
            super().__init__(folder)
            self.root = root

    class Denied(Bucket):
        def read_text(self, key: str) -> str:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

    (tmp_path / "in").mkdir()
    write_wav(tmp_path / "in" / "a.wav", marked_speech([0]))
    stores = {"s3://media/in/": Bucket(tmp_path / "in", "s3://media/in/"),
              "s3://media/out/": Denied(tmp_path / "out", "s3://media/out/")}  # fmt: skip
    monkeypatch.setattr(batch_job, "open_store", lambda uri, endpoint_url=None: stores[uri])
    caplog.set_level(logging.INFO, logger="batchscribe")
    engine = FakeEngine()
    code = batch_job.run_job([batch_job.ObjectName("media", "in/a.wav")], "s3://media/in/", "s3://media/out/",
                             OPTIONS, None, transcriber(engine))  # fmt: skip
    assert code == batch_job.EXIT_OK and engine.calls
    assert " ".join((tmp_path / "out" / "a.wav.txt").read_text().split()) == expected_text([0])
    assert "cannot tell whether it is already transcribed (An error occurred (AccessDenied)" in caplog.text


def test_a_failure_never_replaces_a_stamp_that_says_the_same_content_is_stored(tmp_path):
    """A worker whose lease passed to another that stored the set fails late, or a run with other
    settings fails: the valid stamp stays. A failure of other content, or with no stamp, is recorded."""
    sink = ObjectSink(LocalStore(tmp_path))
    keys = SettingsKeys("k")
    sink.write("a.wav", {"txt": "t", "json": "{}"}, "s3://b/in/a.wav", "etag:e1", "k")
    sink.record_failures([Failure("s3://b/in/a.wav", "s3://b/in/a.wav: batch failed", "a.wav", "etag:e1")])
    assert sink.is_done("a.wav", "etag:e1", keys, ("txt", "json")), "a late failure erased the stamp"

    sink.record_failures([Failure("s3://b/in/a.wav", "s3://b/in/a.wav: not audio", "a.wav", "etag:e2")])
    assert json.loads(sink.stamp("a.wav"))["error"] == "s3://b/in/a.wav: not audio"  # a new version failed
    sink.record_failures([Failure("s3://b/in/b.wav", "s3://b/in/b.wav: not audio", "b.wav", "etag:e3")])
    assert json.loads(sink.stamp("b.wav"))["identity"] == "etag:e3"



def assert_the_copy_is_of_the_content_looked_at(s3, endpoint: str, folder: Path) -> None:
    """An object overwritten between `job`'s HEAD and its download: a versioned bucket gives the version
    looked at; a plain one refuses (412), so a stamp never vouches for content it did not see. (Run
    inside the job test: one SeaweedFS start less.)"""
    from botocore.exceptions import ClientError

    from batchscribe.storage.s3 import S3Store

    for bucket, versions in (("kept", "Enabled"), ("plain", None)):
        s3.create_bucket(Bucket=bucket)
        if versions:
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": versions})
        s3.put_object(Bucket=bucket, Key="in/a.wav", Body=b"first" * 100)
        store = S3Store(bucket, "in/", endpoint)
        seen = store.stat("a.wav")
        s3.put_object(Bucket=bucket, Key="in/a.wav", Body=b"second" * 100)
        if versions:
            assert store.local_copy("a.wav", folder / bucket, seen).read_bytes() == b"first" * 100
        else:
            with pytest.raises(ClientError, match="PreconditionFailed"):
                store.local_copy("a.wav", folder / bucket, seen)
        again = store.local_copy("a.wav", folder / f"{bucket}-now", store.stat("a.wav"))
        assert again.read_bytes() == b"second" * 100


def test_a_second_input_of_the_same_name_is_not_taken_for_the_first_ones_old_set(tmp_path):
    """`x/c.mp3` and `y/c.mp3`, the same content: the old scheme's `c.txt` + `.c.batchscribe` stand for
    the first (`c.mp3`), never for the second, whose outputs are `c.mp3-2.*`."""
    (tmp_path / "x").mkdir()
    write_wav(tmp_path / "x" / "c.mp3", marked_speech([0]))  # the sink looks at names and stamps only
    out = tmp_path / "out"
    out.mkdir()
    write_as_before(out, "c", tmp_path / "x" / "c.mp3")
    sink, identity = FolderSink(out), content_sha256(tmp_path / "x" / "c.mp3")
    keys = SettingsKeys("new", (settings_key(OPTIONS.output_settings()),))
    assert sink.is_done("c.mp3", identity, keys, OPTIONS.formats)
    assert not sink.is_done("c.mp3-2", identity, keys, OPTIONS.formats)
    assert not sink.is_done("c.notes", identity, keys, OPTIONS.formats), "not a media file's name"
