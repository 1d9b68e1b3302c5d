"""Speaker labels on real speech: diarization error rate, speaker counts, outputs, channels, bad input.

The issue's targets, speaker count not given, DER by pyannote.metrics (collar 0.25 s, overlap not
scored). Measured on an Intel Xeon, tiny.en: the 513 s file 4.2% with 6 speakers found; the
three-speaker file 0.0% (3 found); the MFA two-speaker file (a voice per channel) 14.4% (3 found:
two of the hoarse speaker's 11 windows, one with a knock on the microphone, form a group of their
own). The stereo file's two voices (one per channel) overlap for 2.8 of its 5 s: scored with the
overlap, 0.0% with 2 found (it scored 0% with one voice found when the mono mix was diarized,
with overlap not scored). The speaker labels come from the speech detector and the speaker encoder
(float32, no Whisper), so they hardly move between CPUs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, LIBRISPEECH, reference, run_cli, wer

from bench.diarization import SIX_SPEAKERS, STEREO, THREE_SPEAKERS, TWO_SPEAKERS, der, speakers_in

ONE_SPEAKER = LIBRISPEECH / "1688-142285-0000.flac"
SILENCE = DATA / "noise_nonspeech" / "koala_noise.wav"


def _der(relpath: str, rttm: str, detailed: bool = False, skip_overlap: bool = True):
    return der(DATA, relpath, rttm, skip_overlap=skip_overlap, detailed=detailed)


@pytest.fixture(scope="session")
def diarized(tmp_path_factory):
    """One --diarize CLI run (speaker count not given) over every scored file plus bad input."""
    out = tmp_path_factory.mktemp("diarized")
    files = [str(DATA / f) for f in (SIX_SPEAKERS, TWO_SPEAKERS, THREE_SPEAKERS, STEREO)]
    run_cli("transcribe", *files, str(ONE_SPEAKER), str(SILENCE), "-o", str(out), "--diarize",
            "--formats", "txt,srt,vtt,json,rttm", "--word-timestamps", check=True)
    return out


BUGS = Path(os.environ.get("BATCHSCRIBE_TEST_BUGS", DATA.parent / "bugs"))
TWO_TRACKS = BUGS / "15-multitrack-audio" / "in" / "podcast_two_mics.mp4"  # track 1 "Host mic", 2 "Guest mic"


@pytest.fixture(scope="session")
def by_channel(tmp_path_factory):
    out = tmp_path_factory.mktemp("channels")
    run_cli("transcribe", str(DATA / STEREO), str(DATA / TWO_SPEAKERS), "-o", str(out), "--speakers", "channels",
            "--formats", "txt,srt,vtt,json,rttm", check=True)
    return out


def _rttm(out: Path, relpath: str) -> str:
    return (out / f"{Path(relpath).name}.rttm").read_text()


def test_six_speakers_found_and_der_within_10_percent(diarized):
    rttm = _rttm(diarized, SIX_SPEAKERS)
    assert speakers_in(rttm) == 6
    assert _der(SIX_SPEAKERS, rttm) <= 0.10


@pytest.mark.parametrize("relpath, found", [(THREE_SPEAKERS, {3}), (TWO_SPEAKERS, {2, 3})])
def test_two_and_three_speaker_files_der_within_20_percent(diarized, relpath, found):
    rttm = _rttm(diarized, relpath)
    assert _der(relpath, rttm) <= 0.20
    assert speakers_in(rttm) in found


def test_overlapping_voices_on_their_own_channels_are_both_found(diarized):
    """The stereo file's channels are uncorrelated, so --diarize hears each on its own: both voices
    found, their overlap scored too, and the transcript holds both sentences."""
    rttm = _rttm(diarized, STEREO)
    assert speakers_in(rttm) == 2
    assert _der(STEREO, rttm, skip_overlap=False) <= 0.20
    document = json.loads((diarized / f"{Path(STEREO).name}.json").read_text())
    said = {s["speaker"]: [] for s in document["segments"]}
    for segment in document["segments"]:
        said[segment["speaker"]].append(segment["text"])
    expected = reference(STEREO)  # "LEFT: ... | RIGHT: ..."
    left, right = expected.split("|")[0].removeprefix("LEFT:"), expected.split("|")[1].removeprefix(" RIGHT:")
    assert wer([left], [" ".join(said["SPEAKER_1"])]) <= 0.2
    assert wer([right], [" ".join(said["SPEAKER_2"])]) <= 0.2


def test_only_uncorrelated_channels_are_heard_apart(tmp_path):
    """Two people on two channels: apart. The same speech on both (a mono recording stored as
    stereo, a mix panned left, an inverted channel, room noise on the second): one sound, mixed."""
    import soundfile as sf

    from batchscribe.speakers.channels import channels_apart

    first, _ = sf.read(LIBRISPEECH / "1688-142285-0002.flac", dtype="float32")
    second, _ = sf.read(LIBRISPEECH / "1998-15444-0002.flac", dtype="float32")
    size = min(first.size, second.size)
    first, second = first[:size], second[:size]
    noise = np.random.default_rng(0).normal(0, 0.003, size).astype(np.float32)
    cases = {
        "two_people": (first, second, True),
        "one_voice_twice": (first, first, False),
        "panned": (first, 0.3 * first + noise, False),
        "inverted": (first, -first, False),
        "one_silent_channel": (first, np.zeros_like(first), False),
    }
    for name, (left, right, apart) in cases.items():
        path = tmp_path / f"{name}.wav"
        sf.write(path, np.stack([left, right], axis=1), 16000)
        assert channels_apart(path) is apart, name
    surround = tmp_path / "surround.wav"  # dialogue in the centre, other sound around it: not voices apart
    sf.write(surround, np.stack([second, second, first, np.zeros_like(first), second, second], axis=1), 16000)
    assert channels_apart(surround) is False


def test_hoarse_second_speaker_is_heard(diarized):
    """The MFA file's second speaker (a cold, rumble on the microphone) was 16.0 s of its 42.9 s of
    speech missed by the speech detector (DER 40%); now 2.6 s (audio/vad.py's DetectorView)."""
    detail = _der(TWO_SPEAKERS, _rttm(diarized, TWO_SPEAKERS), detailed=True)
    assert detail["missed detection"] <= 0.12 * detail["total"]


def test_every_output_carries_speakers_and_no_segment_spans_a_change(diarized):
    stem, name = Path(THREE_SPEAKERS).stem, Path(THREE_SPEAKERS).name
    document = json.loads((diarized / f"{name}.json").read_text())
    assert [s["speaker"] for s in document["segments"]][0] == "SPEAKER_1"
    for segment in document["segments"]:
        assert {w["speaker"] for w in segment["words"]} == {segment["speaker"]}
    assert document["options"]["speakers"] == "diarize"
    txt = (diarized / f"{name}.txt").read_text().splitlines()
    assert txt[0].startswith("[SPEAKER_1] ")
    assert sum(line.startswith("[SPEAKER_") for line in txt) == 3  # a prefix where each turn starts
    assert "[SPEAKER_2] " in (diarized / f"{name}.srt").read_text()
    vtt = (diarized / f"{name}.vtt").read_text()
    assert "<v SPEAKER_3>" in vtt and vtt.startswith("WEBVTT")
    assert _rttm(diarized, THREE_SPEAKERS).startswith(f"SPEAKER {stem} 1 ")


def test_one_speaker_gets_one_label_and_silence_none(diarized):
    single = json.loads((diarized / f"{ONE_SPEAKER.name}.json").read_text())
    assert {w["speaker"] for s in single["segments"] for w in s["words"]} == {"SPEAKER_1"}
    quiet = json.loads((diarized / f"{SILENCE.name}.json").read_text())
    assert all("speaker" not in s for s in quiet["segments"])
    assert _rttm(diarized, str(SILENCE)) == ""


def test_channels_label_each_channel_and_merge_by_time(by_channel):
    stem = Path(STEREO).name  # its outputs: the input's name plus .FORMAT
    document = json.loads((by_channel / f"{stem}.json").read_text())
    left = " ".join(s["text"] for s in document["segments"] if s["speaker"] == "left")
    right = " ".join(s["text"] for s in document["segments"] if s["speaker"] == "right")
    expected = reference(STEREO)  # "LEFT: ... | RIGHT: ..."
    assert wer([expected.split("|")[0].removeprefix("LEFT:")], [left]) <= 0.2
    assert wer([expected.split("|")[1].removeprefix(" RIGHT:")], [right]) <= 0.2
    starts = [s["start"] for s in document["segments"]]
    assert starts == sorted(starts)
    assert "[left] " in (by_channel / f"{stem}.txt").read_text()
    assert "<v right>" in (by_channel / f"{stem}.vtt").read_text()
    assert speakers_in(_rttm(by_channel, STEREO)) == 2
    assert _der(STEREO, _rttm(by_channel, STEREO), skip_overlap=False) <= 0.20  # overlapping voices scored too
    mfa = _rttm(by_channel, TWO_SPEAKERS)
    assert speakers_in(mfa) == 2


def test_bad_speaker_options_are_clear_errors(tmp_path):
    result = run_cli("transcribe", str(ONE_SPEAKER), "-o", str(tmp_path), "--formats", "rttm")
    assert result.returncode == 2 and "--diarize" in result.stderr
    result = run_cli("transcribe", str(ONE_SPEAKER), "-o", str(tmp_path), "--diarize", "--min-speakers", "3",
                     "--max-speakers", "2")
    assert result.returncode == 2 and "--min-speakers" in result.stderr


def test_more_speakers_asked_than_windows_is_capped():
    from batchscribe.speakers import SpeakerCount, cluster_speakers

    vectors = np.eye(3, 8, dtype=np.float32)
    assert sorted(cluster_speakers(vectors, SpeakerCount(num=5))) == [0, 1, 2]


def test_speaker_step_failure_fails_that_file_alone(monkeypatch, tmp_path):
    """The encoder failing on one file's speech fails that file with the reason; the rest go on."""
    import batchscribe.pipeline.transcriber as pipeline_transcriber
    from batchscribe import pipeline
    from batchscribe.options import TranscribeOptions

    real = pipeline_transcriber.embed_piece

    def failing(encoder, piece):
        if piece.start > 5.0:  # only the three-speaker file has speech this late
            raise RuntimeError("simulated encoder fault")
        return real(encoder, piece)

    monkeypatch.setattr(pipeline_transcriber, "embed_piece", failing)
    summary = pipeline.run([str(DATA / THREE_SPEAKERS), str(ONE_SPEAKER)], tmp_path,
                           TranscribeOptions(speakers="diarize", formats=("json",)))
    status = {Path(r.source).name: r for r in summary.results}
    assert status[ONE_SPEAKER.name].status == "ok"
    failed = status[Path(THREE_SPEAKERS).name]
    assert failed.status == "failed" and "speaker" in failed.error and "simulated encoder fault" in failed.error


def test_event_pipeline_carries_speaker_options(tmp_path):
    """`run --once` (folder -> job store -> worker) with --diarize writes speaker-labelled outputs."""
    import shutil

    inbox = tmp_path / "in"
    inbox.mkdir()
    shutil.copy(DATA / THREE_SPEAKERS, inbox)
    run_cli("run", str(inbox), "-o", str(tmp_path / "out"), "--once", "--diarize", "--formats", "json,rttm",
            check=True)
    name = Path(THREE_SPEAKERS).name
    document = json.loads((tmp_path / "out" / f"{name}.json").read_text())
    assert {s["speaker"] for s in document["segments"]} == {"SPEAKER_1", "SPEAKER_2", "SPEAKER_3"}
    assert speakers_in((tmp_path / "out" / f"{name}.rttm").read_text()) == 3


def test_audio_track_all_labels_each_track_by_its_title(tmp_path):
    """A podcast recorder's file, one microphone per track: both people, labelled by track title,
    the guest's words at 10-17.6 s on the media's timeline."""
    run_cli("transcribe", str(TWO_TRACKS), "-o", str(tmp_path), "--audio-track", "all", "--formats", "json,txt,rttm",
            check=True)
    document = json.loads((tmp_path / f"{TWO_TRACKS.name}.json").read_text())
    host = [s for s in document["segments"] if s["speaker"] == "Host mic"]
    guest = [s for s in document["segments"] if s["speaker"] == "Guest mic"]
    assert host and guest and len(host) + len(guest) == len(document["segments"])
    assert "neighbo" in " ".join(s["text"] for s in host).lower()
    assert "movable types" in " ".join(s["text"] for s in guest).lower()
    assert 9.5 <= guest[0]["start"] and guest[-1]["end"] <= 18.5
    assert all(track["transcribed"] for track in document["audio_tracks"])
    assert "[Guest mic] " in (tmp_path / f"{TWO_TRACKS.name}.txt").read_text()
    assert speakers_in((tmp_path / f"{TWO_TRACKS.name}.rttm").read_text()) == 2


def test_aws_backfill_hands_speaker_options_to_its_jobs():
    from batchscribe.cli import build_parser
    from batchscribe.cli.options import speaker_args

    args = build_parser().parse_args(["aws", "backfill", "s3://b/in/", "--job-queue", "q", "--job-definition", "d",
                                      "--manifests", "s3://b/m/", "--diarize", "--max-speakers", "4"])
    assert speaker_args(args) == ["--speakers", "diarize", "--max-speakers", "4"]
    job = build_parser().parse_args(["job", "--manifest", "s3://b/m/x.json", *speaker_args(args)])
    assert (job.speakers, job.max_speakers) == ("diarize", 4)


class OneVoiceEncoder:
    """A stand-in for a user's own speaker encoder (`--speaker-model test_speakers:OneVoiceEncoder`):
    every clip gets the same vector, so every file has one speaker; it keeps what it was given."""

    name = "one-voice"
    clips: list = []

    def embed(self, clips):
        OneVoiceEncoder.clips.extend(clips)
        return np.tile(np.eye(1, 4, dtype=np.float32), (len(clips), 1))


def test_a_speaker_encoder_of_ones_own_plugs_in(tmp_path):
    """The three-speaker file through the stand-in: its labels, not Resemblyzer's (3 speakers)."""
    from batchscribe.errors import ModelError
    from batchscribe.pipeline import run
    from batchscribe.options import TranscribeOptions
    from batchscribe.speakers import load_encoder

    summary = run([str(DATA / THREE_SPEAKERS)], tmp_path, TranscribeOptions(
        model="tiny.en", speakers="diarize", speaker_model="test_speakers:OneVoiceEncoder", formats=("json", "rttm")))
    assert summary.results[0].status == "ok"
    document = json.loads((tmp_path / f"{Path(THREE_SPEAKERS).name}.json").read_text())
    assert {s["speaker"] for s in document["segments"]} == {"SPEAKER_1"}
    assert len(OneVoiceEncoder.clips) >= 5  # the file's ~2 s windows, 16 kHz mono float32
    assert all(c.ndim == 1 and c.dtype == np.float32 and c.size >= 8000 for c in OneVoiceEncoder.clips)
    with pytest.raises(ModelError, match="cannot import"):
        load_encoder("no_such_package.encoders:make")



def test_aws_batch_jobs_take_the_stacks_speakers_setting(monkeypatch):
    """The stack sets BATCHSCRIBE_SPEAKERS for every `batchscribe job`; it was ignored (argparse
    took the default of --diarize, which shares its destination), so AWS jobs had no speakers.
    (Checked end to end against SeaweedFS once, 27 s: the job's JSON then has 3 speakers.)"""
    from batchscribe.cli import build_parser
    from batchscribe.cli.options import transcribe_options

    job = ["job", "--bucket", "b", "--key", "in/x.wav", "--input", "s3://b/in/", "--output", "s3://b/out/"]
    monkeypatch.setenv("BATCHSCRIBE_SPEAKERS", "diarize")
    assert transcribe_options(build_parser().parse_args(job)).speakers == "diarize"
    monkeypatch.setenv("BATCHSCRIBE_SPEAKERS", "channels")
    assert transcribe_options(build_parser().parse_args([*job, "--diarize"])).speakers == "diarize"  # flag wins
    monkeypatch.delenv("BATCHSCRIBE_SPEAKERS")
    assert transcribe_options(build_parser().parse_args(job)).speakers == ""
