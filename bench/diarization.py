"""Diarization error rate of batchscribe's speaker labels on real speech with known speakers.

    .venv/bin/python -m bench.diarization            # DER per file, and --diarize's wall-time cost

DER is pyannote.metrics' (NIST md-eval's definition): missed speech + false alarm + speaker
confusion over the reference speech, with a 0.25 s forgiveness collar around each reference
boundary and overlapping speech not scored. References: see tests/data/README.md.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCES = REPO / "tests" / "data"
COLLAR = 0.25

SIX_SPEAKERS = "longform/constructed_librispeech_test-other_6spk_60utt.flac"
TWO_SPEAKERS = "multispeaker/mfa_michaelandsickmichael.wav"
THREE_SPEAKERS = "multispeaker/picovoice_diarization_test_3spk.wav"
STEREO = "formats/stereo_two_speakers_L_R.wav"
SCORED = (SIX_SPEAKERS, TWO_SPEAKERS, THREE_SPEAKERS, STEREO)


def read_rttm(text: str):
    """A pyannote Annotation of RTTM `SPEAKER` lines."""
    from pyannote.core import Annotation, Segment

    turns = Annotation()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0] == "SPEAKER":
            onset, duration = float(fields[3]), float(fields[4])
            turns[Segment(onset, onset + duration), len(turns)] = fields[7]
    return turns


def reference(data: Path, relpath: str):
    """The reference speaker turns of one corpus file."""
    from pyannote.core import Annotation, Segment

    path = data / relpath
    turns = Annotation()
    if relpath == SIX_SPEAKERS:
        for utterance in json.loads(path.with_suffix(".segments.json").read_text()):
            turns[Segment(utterance["start"], utterance["end"])] = utterance["utt"].split("-")[0]
    elif relpath == TWO_SPEAKERS:
        for tier, body in re.findall(r'name = "([^"]+)"(.*?)(?=name = "|\Z)', path.with_suffix(".TextGrid").read_text(),
                                     re.S):
            for start, end, text in re.findall(r"xmin = ([\d.]+)\s+xmax = ([\d.]+)\s+text = \"([^\"]*)\"", body):
                if text.strip():
                    turns[Segment(float(start), float(end))] = tier
    else:
        turns = read_rttm((REFERENCES / f"{Path(relpath).stem}.rttm").read_text())
    return turns


def der(data: Path, relpath: str, rttm: str, skip_overlap: bool = True, detailed: bool = False):
    """DER (0..1) of RTTM text against the file's reference; `detailed`: pyannote's components
    (seconds of 'missed detection', 'false alarm', 'confusion', 'total' reference speech)."""
    import warnings

    from pyannote.metrics.diarization import DiarizationErrorRate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyannote: "uem approximated" (the union of both, as intended)
        metric = DiarizationErrorRate(collar=COLLAR, skip_overlap=skip_overlap)
        result = metric(reference(data, relpath), read_rttm(rttm), detailed=detailed)
    return result if detailed else float(result)


def describe(data: Path, relpath: str, rttm: str, skip_overlap: bool = True) -> str:
    """One line: DER, its parts, and the speakers found against the reference's."""
    d = der(data, relpath, rttm, skip_overlap, detailed=True)
    parts = ", ".join(f"{name} {d[key]:.1f} s" for name, key in
                      (("missed", "missed detection"), ("false alarm", "false alarm"), ("confused", "confusion")))
    overlap = "overlap not scored" if skip_overlap else "overlap scored"
    return (f"DER {100 * d['diarization error rate']:.2f}% ({overlap}; of {d['total']:.1f} s: {parts}), "
            f"{speakers_in(rttm)} speakers found of {len(reference(data, relpath).labels())}")


def speakers_in(rttm: str) -> int:
    return len({line.split()[7] for line in rttm.splitlines() if line.startswith("SPEAKER")})


def _timed(args: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one batchscribe process. On a shared machine
    the CPU time says what the work costs; the wall time also says what other processes took."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "batchscribe", *args], check=True, capture_output=True, cwd=REPO)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--reps", type=int, default=3, help="timed runs of the 513 s file, each way (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        files = [str(args.data / f) for f in SCORED]
        common = ["--model", args.model, "--formats", "rttm,json", "--overwrite"]
        subprocess.run([sys.executable, "-m", "batchscribe", "transcribe", *files, "-o", str(out / "d"),
                        "--diarize", *common], check=True, cwd=REPO)
        for relpath in SCORED:
            rttm = (out / "d" / f"{Path(relpath).name}.rttm").read_text()
            print(f"{relpath}: {describe(args.data, relpath, rttm)}")
        # The stereo file's two speakers overlap for 2.8 of its 5 s: with overlap not scored, a
        # diarization that finds one of them scores 0%. Scored with the overlap, the mono mix's
        # --diarize and --speakers channels (each channel on its own) tell the truth.
        subprocess.run([sys.executable, "-m", "batchscribe", "transcribe", str(args.data / STEREO), "-o",
                        str(out / "c"), "--speakers", "channels", *common], check=True, cwd=REPO)
        for how, folder in (("--diarize", "d"), ("--speakers channels", "c")):
            rttm = (out / folder / f"{Path(STEREO).name}.rttm").read_text()
            print(f"{STEREO} {how}: {describe(args.data, STEREO, rttm, skip_overlap=False)}")
        long_file = str(args.data / SIX_SPEAKERS)
        plain, diarized = [], []
        for _ in range(args.reps):  # interleaved, so both see the same machine load
            plain.append(_timed(["transcribe", long_file, "-o", str(out / "p"), "--model", args.model, "--overwrite"]))
            diarized.append(_timed(["transcribe", long_file, "-o", str(out / "q"), "--model", args.model,
                                    "--overwrite", "--diarize"]))
        for what, index in (("wall", 0), ("CPU", 1)):
            p = statistics.median(run[index] for run in plain)
            d = statistics.median(run[index] for run in diarized)
            print(f"513 s file, whole command, {what} time, median of {args.reps}: plain {p:.2f} s, "
                  f"--diarize {d:.2f} s ({100 * (d - p) / p:+.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
