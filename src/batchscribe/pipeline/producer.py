"""The audio thread: decodes each file and finds its speech (on reader threads, audio/readahead.py),
detects its language and packs windows (with their log-mel features) into batches, ahead of the
model, so decoding overlaps inference.

It tells the model loop about each file through the messages below: FileRead (all of a file's
pieces are packed), Speech (a piece to embed for diarization), FileFailed; END when done.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from batchscribe.audio import SpeechPiece, VadOptions, open_audio, speech_pieces
from batchscribe.audio.readahead import read_ahead
from batchscribe.engine.batching.batch import Batch
from batchscribe.engine.backends.base import Engine, LogMel
from batchscribe.engine.models.resolve import ResolvedModel
from batchscribe.engine.batching.packing import WindowPacker
from batchscribe.engine.windows import PieceRef, Window
from batchscribe.errors import BatchscribeError
from batchscribe.options import TranscribeOptions
from batchscribe.pipeline.files import FileInFlight
from batchscribe.results import FailureKind, SourceAudio
from batchscribe.speakers import joined_turns
from batchscribe.speakers.sources import speaker_sources

LANGUAGE_PROBE_SECONDS = 5.0  # speech gathered before a file's language is detected
BATCHES_AHEAD = 4  # prepared batches waiting for a model worker


@dataclass
class FileRead:
    file_id: int
    duration: float
    piece_count: int
    language: Optional[str]
    language_probability: Optional[float]
    audio: SourceAudio
    piece_speakers: tuple[str, ...] = ()
    speaker_turns: tuple = ()


@dataclass
class Speech:
    """A piece to embed for diarization, on the model workers' pool beside the batches."""

    file_id: int
    piece: SpeechPiece


@dataclass
class Scanned:
    """What a reader knows of a file once its last piece is out."""

    end: float
    audio: SourceAudio
    labels: tuple[str, ...] = ()
    turns: tuple = ()


@dataclass
class FileFailed:
    file_id: int
    error: str
    failure: FailureKind


END = object()


class _Stopped(Exception):
    """The run ended, or the file failed in the model, while the file was being read."""


class Producer(threading.Thread):
    """Decodes, finds speech, detects language and packs windows into batches, ahead of the model."""

    def __init__(
        self,
        load_engine: Callable[[], Engine],
        model: ResolvedModel,
        files: dict[int, FileInFlight],
        options: TranscribeOptions,
    ):
        super().__init__(name="batchscribe-audio", daemon=True)
        self.load_engine = load_engine  # waits for the model, which may still be loading
        self.multilingual = model.multilingual
        self.mel = LogMel(model.n_mels)  # features need no model: ready before it has loaded
        self.files = list(files.items())  # the model loop removes finished files from its dict
        self.options = options
        self.out: queue.Queue = queue.Queue()
        self._batch_slots = threading.Semaphore(BATCHES_AHEAD)
        self.stop = threading.Event()
        self._dropped: set[int] = set()  # files failed in the model: read no further
        self._packers: dict[tuple, WindowPacker] = {}
        self._ready: dict[tuple, list[Window]] = {}
        self.vad = VadOptions(
            options.vad_threshold, options.vad_min_silence_duration_ms, options.vad_speech_pad_ms,
            options.vad_min_speech_duration_ms, options.vad_filter,
        )  # fmt: skip

    def run(self) -> None:
        try:
            files = read_ahead(self.files, self._scan, self.options.audio_workers or 1)
            try:
                for (file_id, file), scanned in files:
                    if self.stop.is_set():
                        return
                    self._read(file_id, file, scanned)
            finally:
                files.close()  # stops the readers still at work
            if self.stop.is_set():
                return
            self._flush(list(self._packers))
            self._put(END)
        except BaseException as error:  # surfaced in the consumer thread
            self._put(error)

    def _put(self, item) -> None:
        """News about a file: never waits (see _send)."""
        self.out.put(item)

    def _send(self, windows: list[Window]) -> None:
        """A batch waits for one of BATCHES_AHEAD slots before its features are computed (they take
        memory); after a stop it is dropped. (With one bounded queue for batches and file news, the
        news filled it while every worker was busy and the consumer not reading, and the audio thread
        stalled: on 60 short files it read nothing for 2.7 s, and workers then sat idle.)"""
        while not self._batch_slots.acquire(timeout=0.2):
            if self.stop.is_set():
                return
        if self.stop.is_set():
            return
        self.out.put(Batch.prepare(self.mel.features, windows))

    def _flush(self, groups: list[tuple]) -> None:
        """Close the open windows of `groups` and send every window they hold."""
        for group in groups:
            packer = self._packers.pop(group, None)
            if packer is not None:
                self._collect(packer.flush())
            windows = self._ready.pop(group, [])
            for start in range(0, len(windows), self.options.batch_size):
                self._send(windows[start : start + self.options.batch_size])

    def drop(self, file_id: int) -> None:
        """Read no more of a file (the model failed on it; from the model loop's thread)."""
        self._dropped.add(file_id)

    def batch_taken(self) -> None:
        self._batch_slots.release()

    def _scan(self, item: tuple[int, FileInFlight]) -> Iterator[SpeechPiece | Scanned]:
        """A file's speech pieces, then what is known of it once read (on a reader thread)."""
        stream = open_audio(item[1].source.path, self.options.audio_track or 1)
        sources = speaker_sources(stream, self.options)  # --speakers channels, --audio-track all
        yield from sources.pieces(self.vad) if sources else self._media_timeline(stream)
        if sources:
            yield Scanned(sources.end, sources.source_audio(), tuple(sources.labels), joined_turns(sources.turns))
        else:
            yield Scanned(stream.end, stream.source_audio())

    def _read(self, file_id: int, file: FileInFlight, scanned: Iterator[SpeechPiece | Scanned]) -> None:
        try:
            count = 0
            # not measured: given, English-only, or (multilingual) no speech to measure it on
            language = self.options.language or (None if self.multilingual else "en")
            probability: Optional[float] = None
            ends: list[Scanned] = []

            def pieces() -> Iterator[SpeechPiece]:
                for item in scanned:
                    if self.stop.is_set() or file_id in self._dropped:  # a stop, the model failing: read no further
                        raise _Stopped
                    if isinstance(item, Scanned):
                        ends.append(item)
                    else:
                        yield item

            for piece, language, probability in self._with_language(pieces()):  # noqa: B007 (the last describe the file)
                self._add(language, file.initial_prompt, PieceRef(file_id, count, piece))
                if self.options.speakers == "diarize":
                    self._put(Speech(file_id, piece))
                count += 1
            end, audio, labels, turns = ends[0].end, ends[0].audio, ends[0].labels, ends[0].turns
            self._put(FileRead(file_id, end, count, language, probability, audio, labels, turns))
            if not self.options.packing:  # this file's windows are all known: send them now
                self._flush([g for g in list(self._packers) + list(self._ready) if g[2] == file_id])
        except _Stopped:
            return
        except BatchscribeError as error:
            self._put(FileFailed(file_id, str(error), FailureKind.of(error)))
        except Exception as error:  # a decoder bug must not stop the batch (and recurs on the same bytes)
            kind = FailureKind.TRANSIENT if isinstance(error, (OSError, MemoryError)) else FailureKind.BAD_INPUT
            message = f"{file.source.path}: unexpected error while reading: {error!r}"
            self._put(FileFailed(file_id, message, kind))

    def _media_timeline(self, stream) -> Iterator[SpeechPiece]:
        """The stream's speech pieces, on the media's timeline (`stream.start` is known once they flow)."""
        for piece in speech_pieces(stream.blocks(), self.vad):
            yield piece.shifted(stream.start)

    def _with_language(self, pieces: Iterator[SpeechPiece]) -> Iterator[tuple[SpeechPiece, str, Optional[float]]]:
        """Tag pieces with the file's language, detected on its first seconds of speech."""
        if self.options.language or not self.multilingual:
            for piece in pieces:
                yield piece, self.options.language or "en", None  # not measured
            return
        held: list[SpeechPiece] = []
        language = None
        probability = 1.0
        for piece in pieces:
            if language is None:
                held.append(piece)
                if sum(p.duration for p in held) < LANGUAGE_PROBE_SECONDS:
                    continue
                language, probability = self.load_engine().detect_language(held)
                yield from ((p, language, probability) for p in held)
                held = []
            else:
                yield piece, language, probability
        if held:
            language, probability = self.load_engine().detect_language(held)
            yield from ((p, language, probability) for p in held)

    def _group(self, language: str, initial_prompt: Optional[str], file_id: int) -> tuple:
        """Pieces share windows and batches only within a group: one language, one initial prompt
        (a file's prompt stays that file's), and without packing one file."""
        return language, initial_prompt, None if self.options.packing else file_id

    def _add(self, language: str, initial_prompt: Optional[str], ref: PieceRef) -> None:
        group = self._group(language, initial_prompt, ref.file_id)
        if group not in self._packers:
            self._packers[group] = WindowPacker(language, initial_prompt=initial_prompt)
        self._collect(self._packers[group].add(ref))

    def _collect(self, windows: list[Window]) -> None:
        for window in windows:
            group = self._group(window.language, window.initial_prompt, window.pieces[0].file_id)
            ready = self._ready.setdefault(group, [])
            ready.append(window)
            if len(ready) >= self.options.batch_size:
                self._send(ready[:])
                ready.clear()
