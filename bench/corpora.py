"""The corpora from ../shared/data, their references, and scoring (WER, or CER for ja/zh)."""

from __future__ import annotations

import csv
import os
import wave
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np
from whisper_normalizer.basic import BasicTextNormalizer
from whisper_normalizer.english import EnglishTextNormalizer

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BATCHSCRIBE_TEST_DATA", REPO.parent / "shared" / "data"))
CHARACTER_LANGUAGES = {"ja", "zh"}


@dataclass(frozen=True)
class Corpus:
    name: str
    files: tuple[Path, ...]
    english_only: bool = True


def _manifest() -> dict[str, tuple[str, str]]:
    """relpath -> (language, reference text)."""
    rows = {}
    with open(DATA / "MANIFEST.tsv", newline="") as handle:
        for row in csv.reader(handle, delimiter="\t"):
            text = row[3]
            if text.startswith("file:"):
                text = (DATA / text[5:].split(" ")[0]).read_text()
            rows[row[0]] = (row[2], text)
    return rows


MANIFEST = _manifest()


def _scorable(path: Path) -> bool:
    language, text = MANIFEST[str(path.relative_to(DATA))]
    unusable = ("NO_REF", "EMPTY", "PARTIAL", "APPROX", "LEFT", "RIGHT", '"PARTIAL')
    return path.exists() and "+" not in language and not text.startswith(unusable)


def corpora() -> dict[str, Corpus]:
    multilingual = tuple(
        DATA / rel for rel in sorted(MANIFEST) if rel.startswith("multilingual/") and _scorable(DATA / rel)
    )
    return {
        "short60": Corpus("short60", tuple(sorted((DATA / "librispeech" / "test-other").glob("*.flac")))),
        "long513": Corpus("long513", (DATA / "longform" / "constructed_librispeech_test-other_6spk_60utt.flac",)),
        "long231": Corpus("long231", (DATA / "longform" / "constructed_ljspeech_LJ001-0001_to_0032.flac",)),
        "multilingual": Corpus("multilingual", multilingual, english_only=False),
    }


def audio_seconds(files: tuple[Path, ...] | list[Path]) -> float:
    import av

    total = 0.0
    for path in files:
        with av.open(str(path)) as container:
            total += container.duration / 1e6
    return total


def _transcript_file(out: Path, path: Path) -> Path | None:
    return next((c for c in (out / f"{path.stem}.txt", out / f"{path.name}.txt") if c.exists()), None)


def _transcript(out: Path, path: Path) -> str:
    found = _transcript_file(out, path)
    return found.read_text() if found else ""


def untranscribed(out: Path, files: tuple[Path, ...]) -> list[Path]:
    """Files a system wrote no transcript for: a run that failed, whatever its exit code said."""
    return [path for path in files if _transcript_file(out, path) is None]


def error_rate(out: Path, files: tuple[Path, ...]) -> tuple[float, str]:
    """(rate, "WER" or "WER/CER"): English normaliser for English, basic one and CER for ja/zh."""
    english, basic = EnglishTextNormalizer(), BasicTextNormalizer()
    words: tuple[list[str], list[str]] = ([], [])
    characters: tuple[list[str], list[str]] = ([], [])
    for path in files:
        language, reference = MANIFEST[str(path.relative_to(DATA))]
        hypothesis = _transcript(out, path)
        if language in CHARACTER_LANGUAGES:
            characters[0].append(basic(reference).replace(" ", ""))
            characters[1].append(basic(hypothesis).replace(" ", ""))
        else:
            normalize = english if language == "en" else basic
            words[0].append(normalize(reference))
            words[1].append(normalize(hypothesis))
    if not characters[0]:
        return jiwer.wer(*words), "WER"
    # Mixed corpus: errors over all reference units, words and characters together.
    w = jiwer.process_words(*words)
    c = jiwer.process_characters(*characters)
    errors = w.substitutions + w.deletions + w.insertions + c.substitutions + c.deletions + c.insertions
    units = w.hits + w.substitutions + w.deletions + c.hits + c.substitutions + c.deletions
    return errors / units, "WER/CER"


def write_scaled(folder: Path, seconds: float, source: Path) -> Path:
    """A WAV of `seconds` made by repeating real speech (for the audio-length scaling run)."""
    import av

    with av.open(str(source)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)
        pcm = np.concatenate(
            [f.to_ndarray().reshape(-1) for frame in container.decode(audio=0) for f in resampler.resample(frame)]
        )
    target = int(seconds * 16000)
    path = folder / f"speech_{int(seconds)}s.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        written = 0
        while written < target:
            chunk = pcm[: target - written]
            out.writeframes(chunk.astype("<i2").tobytes())
            written += chunk.size
    return path
