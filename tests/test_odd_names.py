"""Any file name the OS can hold works in every front end (issue 13, kind 1).

The names are built here from one real speech clip: bytes that are not UTF-8 (Latin-1, CP1252),
a line break, glob characters, a leading dash, quotes, CJK, emoji, and names at the 255-byte
limit. The handed case ../shared/bugs/13-odd-filenames is checked against its expected.txt too.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from conftest import DATA, normalize, run_cli, wer

from batchscribe.jobs.stores import open_job_store
from batchscribe.names import NAME_MAX, fit_name, path_name, shown, text_key
from batchscribe.outputs.writers import write_set
from batchscribe.storage.keys import checked_key, output_key
from batchscribe.storage.local import LocalStore
from batchscribe.triggers.route import Route
from batchscribe.triggers.watch import FolderWatch

CASE = DATA.parent / "bugs" / "13-odd-filenames"
CLIP_TEXT = "you didn't want to come"  # the Latin-1 named clip of the handed case
FORMATS = ("txt", "srt", "vtt", "json")


def _odd_names() -> list[bytes]:
    long_stem = "🎙️ interview " + "ü" * 200  # multi-byte characters up to the limit
    long_name = long_stem.encode()[: NAME_MAX - 4].decode("utf-8", "ignore") + ".wav"
    return [
        b"ni\xf1o \xbfqu\xe9 pas\xf3.wav",  # Latin-1
        b"\x93smart quotes\x94 100%E9.wav",  # CP1252, and a literal %XX that must stay literal
        b"two\nlines.wav",
        b"-dash first.wav",
        b"[take 1] *best? {a,b}.wav",  # glob characters
        b'it\'s "quoted" & $HOME `x`.wav',
        "会議 録音 🎧.wav".encode(),
        long_name.encode(),
        b"x" * (NAME_MAX - 4) + b".wav",  # exactly at the limit: its .json and stamp are longer
    ]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """The handed case's Latin-1 named clip, unpacked from names.tar."""
    folder = tmp_path_factory.mktemp("case13")
    with tarfile.open(CASE / "names.tar") as tar:
        tar.extractall(folder, filter="data")
    return folder


@pytest.fixture(scope="module")
def odd_folder(clip, tmp_path_factory) -> Path:
    source = next(p for p in (clip / "names").iterdir() if os.fsencode(p.name).startswith(b"caf"))
    folder = tmp_path_factory.mktemp("odd") / "in"
    os.makedirs(folder)
    for name in _odd_names():
        shutil.copy(source, os.path.join(os.fsencode(folder), name))
    return folder


def _stem(path: Path) -> str:
    return path.name[: -len(path.suffix)]


def _assert_sets(out: Path, inputs: list[Path]) -> None:
    for path in inputs:
        stem = path.name  # every front end: the input's name plus .FORMAT
        found = {fmt: out / fit_name(stem, f".{fmt}") for fmt in FORMATS}
        for output in found.values():
            assert output.exists(), f"{os.fsencode(output.name)!r} missing"
        assert normalize(found["txt"].read_text()) == normalize(CLIP_TEXT), found["txt"].read_text()
        document = json.loads(found["json"].read_text(encoding="utf-8"))
        assert document["source"].endswith(text_key(path.name)) and "\udce9" not in document["source"]
    assert not list(out.rglob("*.partial"))


def test_names_as_text_round_trip_and_fit():
    for name in [os.fsdecode(n) for n in _odd_names()] + ["100%", "a%25b", "%zz", "plain.wav"]:
        key = text_key(name)
        key.encode("utf-8")  # always valid text
        assert "\n" not in key and path_name(key) == name
        assert output_key(key, "json") == key + ".json"
    assert text_key("plain name (1).wav") == "plain name (1).wav"  # valid names unchanged
    assert checked_key("a\nb.mp3") == "a\nb.mp3"  # an S3 key may hold a line break too
    assert shown("caf\udce9\nx") == "caf%E9\nx"
    for name in [os.fsdecode(n) for n in _odd_names()]:
        for suffix in (".json", ".batchscribe", ""):
            fitted = fit_name(name, suffix)
            assert len(os.fsencode(fitted)) <= NAME_MAX and fitted.endswith(suffix)
    long = "é" * 200
    assert fit_name(long, ".json") != fit_name(long + "x", ".json")  # distinct names stay distinct


def test_a_transcript_set_is_written_all_or_nothing(tmp_path, monkeypatch):
    paths = {tmp_path / f"{'y' * 250}.{fmt}": f"{fmt} text" for fmt in FORMATS}
    write_set(paths)  # temporaries of names at the limit fit too
    assert all(p.read_text() == t for p, t in paths.items())
    real_open = open
    calls = []

    def full_disk(file, mode="r", *args, **kwargs):
        if "x" in mode:
            calls.append(file)
            if len(calls) == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full_disk)
    with pytest.raises(OSError):
        write_set({p: "new" for p in paths})
    monkeypatch.undo()
    assert all(p.read_text() == t for p, t in paths.items()), "the old set must stay whole"
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths), "temporaries were left"


def test_transcribe_every_odd_name_in_a_folder_and_by_name(odd_folder, tmp_path):
    inputs = sorted(odd_folder.iterdir())
    out = tmp_path / "out"
    result = run_cli("transcribe", str(odd_folder), "-o", str(out), "--model", "tiny.en")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(inputs)} ok, 0 failed" in result.stdout
    _assert_sets(out, inputs)
    assert "Traceback" not in result.stderr

    # by name (a dash name after --, glob characters taken literally): the same outputs, found done
    again = run_cli("transcribe", "-o", str(out), "--", *(str(p) for p in inputs))
    assert f"0 ok, 0 failed, {len(inputs)} skipped" in again.stdout, again.stdout + again.stderr


def test_run_submit_and_worker_take_every_odd_name(odd_folder, tmp_path):
    inputs = sorted(odd_folder.iterdir())
    out = tmp_path / "run"
    result = run_cli("run", str(odd_folder), "-o", str(out), "--once")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(inputs)} succeeded, 0 dead" in result.stdout
    _assert_sets(out, inputs)

    store, out2 = tmp_path / "jobs.db", tmp_path / "worker"
    submitted = run_cli("submit", str(odd_folder), "-o", str(out2), "--store", str(store))
    assert f"{len(inputs)} queued" in submitted.stdout, submitted.stdout + submitted.stderr
    worked = run_cli("worker", "--store", str(store), "--exit-when-idle")
    assert worked.returncode == 0, worked.stderr
    assert open_job_store(store).status().counts["succeeded"] == len(inputs)
    _assert_sets(out2, inputs)


def test_folder_watch_reports_a_bad_object_once_and_queues_the_files_after_it(odd_folder, tmp_path, caplog):
    route = Route(LocalStore(odd_folder), LocalStore(tmp_path / "out").root)
    jobs = open_job_store(tmp_path / "jobs.db")
    first = sorted(obj.key for obj in route.source.list())[0]
    enqueue = route.enqueue

    def broken_for_first(store, obj):
        if obj.key == first:
            raise ValueError("a store that cannot take this one")
        return enqueue(store, obj)

    route.enqueue = broken_for_first
    watch = FolderWatch(route, jobs, settle_seconds=0.0)
    for _ in range(3):
        watch.scan()
    assert jobs.status().counts["queued"] == len(_odd_names()) - 1
    assert sum("cannot take this one" in r.getMessage() for r in caplog.records) == 1
    for job in jobs.jobs("queued"):
        job.key.encode("utf-8")
        assert LocalStore(odd_folder)._path(job.key).exists()


def test_handed_case_13_meets_its_expected_result(clip, tmp_path):
    expected = {
        "にっぽん": "what do i here seek",
        "Chinese audio (中文)": "he would not be rid of his affliction",
        "-leading-dash": "but behold these kine",
        "two  spaces & quote's": "the best emetic is that which is at hand",
        "caf\udce9_interview": CLIP_TEXT,
    }
    folder = clip / "names"
    out = tmp_path / "out"
    result = run_cli("transcribe", str(folder), "-o", str(out))
    assert result.returncode == 0 and "5 ok, 0 failed" in result.stdout, result.stdout + result.stderr
    dash = run_cli("transcribe", "-o", str(tmp_path / "dash"), "--", str(folder / "-leading-dash.flac"))
    assert dash.returncode == 0, dash.stderr
    assert (tmp_path / "dash" / "-leading-dash.flac.txt").exists()
    names = {_stem(p): p.name for p in folder.iterdir()}
    hypotheses = [(out / f"{names[stem]}.txt").read_text() for stem in expected]
    assert all(h.strip() for h in hypotheses), hypotheses  # every name transcribed, under its own name
    assert wer(list(expected.values()), hypotheses) <= 0.5, hypotheses  # tiny.en: 0.34 measured


def test_batch_job_takes_odd_s3_keys(odd_folder, tmp_path, monkeypatch):
    """`batchscribe job` (the AWS Batch entrypoint) on S3 keys with odd names, against a real S3 server:
    each transcript set lands under the key's own name, and none stops on its name."""
    import boto3
    from services import CREDENTIALS, seaweedfs

    source = next(p for p in odd_folder.iterdir() if p.name.startswith("-dash"))
    keys = ["talks/-dash first.wav", "talks/[take 1] *best? {a,b}.wav", 'talks/it\'s "quoted" & $HOME `x`.wav',
            "talks/会議 録音 🎧.wav"]  # fmt: skip
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with seaweedfs(tmp_path / "s3") as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="media")
        for key in keys:
            s3.upload_file(str(source), "media", f"audio-input/{key}")
        for key in keys:
            result = run_cli("job", "--bucket", "media", "--key", f"audio-input/{key}", "--input",
                             "s3://media/audio-input/", "-o", "s3://media/out/",
                             "--endpoint-url", endpoint)  # fmt: skip
            assert result.returncode == 0, result.stdout + result.stderr
        listed = {o["Key"] for o in s3.list_objects_v2(Bucket="media", Prefix="out/")["Contents"]}
        stored = {k for k in listed if not k.rsplit("/", 1)[-1].startswith(".")}  # less the resume stamps
        assert stored == {f"out/{key}.{fmt}" for key in keys for fmt in FORMATS}
        for key in keys:
            document = json.loads(s3.get_object(Bucket="media", Key=f"out/{key}.json")["Body"].read())
            assert normalize(document["text"]) == normalize(CLIP_TEXT)
            assert document["source"] == f"s3://media/audio-input/{key}"
