"""A run's files: what each source is called, which are already done, and each file's state while
its pieces are in flight; a finished file becomes a transcript handed to the result sink.

A file is finished the moment its last piece comes back from the model; its outputs are written
all or nothing by the sink, and a bad file fails alone.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Protocol

from batchscribe.checks import disk_full
from batchscribe.confidence import language_warnings
from batchscribe.engine.batching.batch import PieceText
from batchscribe.errors import BatchscribeError, OutputError
from batchscribe.inputs import InputFile
from batchscribe.names import shown, text_key
from batchscribe.options import TranscribeOptions
from batchscribe.outputs.layout import plan_stems
from batchscribe.digests import content_sha256
from batchscribe.outputs.segments import build_segments, cue_rules
from batchscribe.outputs.writers import render
from batchscribe.results import FailureKind, FileResult, Segment, SourceAudio, Transcript, Word
from batchscribe.sinks.base import Failure, ResultSink, SettingsKeys
from batchscribe.speakers import SpeakerCount, channel_segments, diarize, diarize_sources, speaker_segments

log = logging.getLogger("batchscribe")


class ProgressListener(Protocol):
    """Told of every source's result as it is known: a missing input and a source found already done
    (status "skipped") before `started`, the others as they finish. `skipped` in `started` counts the
    skipped ones already reported."""

    def started(self, files: int, skipped: int) -> None: ...

    def file_finished(self, result: FileResult) -> None: ...


@dataclass(frozen=True)
class SourceFile:
    """One source to transcribe: a local `path` to read, its `name` in the sink (`a/c.mp3`), how it is
    `shown` in results and messages (the path, or the object's URI), and its `identity` for the resume
    stamp (None: the content's sha256, computed when a sink needs it)."""

    path: Path
    name: str
    shown: str
    identity: Optional[str] = None
    label: Optional[str] = None  # the JSON's `source` (default: `shown` as text, batchscribe.names.text_key)
    sink: Optional[ResultSink] = field(default=None, compare=False)  # this source's own (a worker's job's route)
    resume_checked: bool = False  # the front end asked the sink already (not done): not asked again

    def message(self, error: str) -> str:
        """An error about the local copy, as the user knows the file (the audio thread only knows the path)."""
        local = str(self.path)
        return error.replace(local, self.shown) if local != self.shown else error


def sources_of(files: list[InputFile]) -> list[SourceFile]:
    """Local inputs with their names under the one naming scheme (outputs/layout.py)."""
    return [SourceFile(file.path, str(stem), str(file.path)) for file, stem in plan_stems(files).items()]


@dataclass
class FileInFlight:
    """A file being transcribed: its pieces come back from the model in any order."""

    source: SourceFile
    identity: str
    initial_prompt: Optional[str] = None
    settings_key: str = ""
    language: Optional[str] = "en"
    language_probability: Optional[float] = None  # None: never measured (see confidence.py)
    duration: Optional[float] = None
    piece_count: Optional[int] = None
    words: dict[int, PieceText] = field(default_factory=dict)
    piece_speakers: tuple[str, ...] = ()  # --speakers channels: each piece's channel name
    speaker_turns: tuple = ()  # (start, end, speaker) of the speech
    speaker_windows: list = field(default_factory=list)  # --diarize: embedded windows (speakers/windows.py)
    embeddings_pending: int = 0
    speaker_error: Optional[str] = None
    audio: SourceAudio = SourceAudio()

    @property
    def complete(self) -> bool:
        return self.piece_count is not None and len(self.words) == self.piece_count and not self.embeddings_pending


class RunFiles:
    """One run's bookkeeping: which files to transcribe, their results, and the sink they go to."""

    def __init__(
        self,
        options: TranscribeOptions,
        sink: Optional[ResultSink],
        listener: Optional[ProgressListener],
        multilingual: bool = False,
        runtime: Optional[dict] = None,
    ):
        """`runtime`: what else changes a transcript (backend, batch size), part of the settings key."""
        self.options = options
        self.multilingual = multilingual
        self.sink = sink
        self.listener = listener
        self.results: list[FileResult] = []
        self.failures: list[tuple[Optional[ResultSink], Failure]] = []
        self.settings = options.output_settings()
        self.runtime = runtime or {}
        self.keys = SettingsKeys.of(self.settings, self.runtime)

    def finish(self, result: FileResult) -> None:
        self.results.append(result)
        if self.listener:
            self.listener.file_finished(result)

    def fail(self, source: str, error: str, failure: FailureKind = FailureKind.TRANSIENT,
             file: Optional[FileInFlight] = None) -> None:  # fmt: skip
        name, identity = (file.source.name, file.identity) if file else (None, "")
        self.failures.append((self.sink_of(file.source) if file else self.sink, Failure(source, error, name, identity)))
        self.finish(FileResult(source=source, status="failed", error=error, failure=failure))

    def sink_of(self, source: SourceFile) -> Optional[ResultSink]:
        return source.sink or self.sink

    def keys_for(self, prompt: Optional[str]) -> SettingsKeys:
        if prompt == self.options.initial_prompt:
            return self.keys
        return SettingsKeys.of({**self.settings, "initial_prompt": prompt}, self.runtime)

    def pending(
        self, sources: list[SourceFile], prompts: Optional[dict[str, str]] = None
    ) -> tuple[dict[int, FileInFlight], int]:
        """The files to transcribe (by number) and how many were skipped as already done."""
        files: dict[int, FileInFlight] = {}
        skipped = 0
        by_path = {os.path.abspath(path): prompt for path, prompt in (prompts or {}).items()}
        for source in sources:
            prompt = by_path.get(os.path.abspath(source.path), self.options.initial_prompt)
            keys = self.keys_for(prompt)
            sink = self.sink_of(source)
            try:
                if sink is None:  # nothing to resume against: only make sure it can be read
                    open(source.path, "rb").close()
                    identity = ""
                else:
                    identity = source.identity or content_sha256(source.path)
            except OSError as error:
                reason = "permission denied" if isinstance(error, PermissionError) else (error.strerror or str(error))
                self.fail(source.shown, f"{source.shown}: cannot be read: {reason}")
                continue
            try:
                done = (
                    sink is not None
                    and not self.options.overwrite
                    and not source.resume_checked
                    and sink.is_done(source.name, identity, keys, self.options.formats)
                )
            except Exception as error:  # the store cannot be asked now: transcribe it; storing it will tell
                log.warning("%s: cannot tell whether it is already transcribed (%s); transcribing it", source.shown,
                            error)  # fmt: skip
                done = False
            if done:  # told at once: a worker acknowledges its job whatever happens to the rest of the run
                skipped += 1
                self.finish(FileResult(source=source.shown, status="skipped"))
            else:
                files[len(files)] = FileInFlight(source, identity, prompt, keys.current)
        return files, skipped

    def complete(self, file: FileInFlight, model_name: str) -> None:
        pieces = [file.words[i] for i in range(file.piece_count or 0)]
        words = [w for piece in pieces for w in piece.words]
        keep_words = self.options.word_timestamps or self.options.highlight_words
        shown_as = file.source.shown
        try:
            segments = self._segments(file, [piece.words for piece in pieces])
        except Exception as error:  # the speaker step failing fails this file, never the batch
            self.fail(shown_as, f"{shown_as}: speaker labelling failed: {error}", file=file)
            return
        transcript = Transcript(
            segments=tuple(_with_decoding(s, pieces, keep_words) for s in segments),
            language=file.language,
            language_probability=file.language_probability,
            warnings=language_warnings(words, file.language, file.language_probability, self.multilingual),
            duration=file.duration or 0.0,
            speaker_turns=file.speaker_turns,
            audio=file.audio,
        )
        result = FileResult(shown_as, "ok", transcript=transcript, audio_seconds=transcript.duration)
        sink = self.sink_of(file.source)
        if sink is not None:
            try:
                result.outputs = self._write(sink, file, transcript, model_name)
            except Exception as error:
                if disk_full(error):  # the environment, not the file: stop before transcribing more
                    kept = self.count_ok()
                    raise OutputError(
                        f"{shown(sink.where)}: the disk is full ({getattr(error, 'strerror', error)}); stopped "
                        f"taking new files. {kept} complete transcript set(s) are kept and no partial set was left; "
                        "free space and run the same command again: finished files are skipped"
                    ) from None
                self.fail(shown_as, f"{shown_as}: cannot write its transcript: {error}", file=file)
                return
        self.finish(result)

    def _segments(self, file: FileInFlight, pieces: list[list[Word]]) -> tuple[Segment, ...]:
        """Segments with their words (each segment's decoding fields need its words' tokens)."""
        keep, rules = True, cue_rules(self.options)

        def build(words: list[Word], keep_words: bool) -> tuple[Segment, ...]:
            return build_segments(words, keep_words, rules)

        if self.options.speakers == "channels" or self.options.audio_track == 0:  # a source per speaker
            return channel_segments(pieces, file.piece_speakers, build, keep)
        words = [w for piece in pieces for w in piece]
        if self.options.speakers != "diarize":
            return build(words, keep)
        if file.speaker_error:
            raise BatchscribeError(file.speaker_error)
        options = self.options
        count = SpeakerCount(options.num_speakers, options.min_speakers, options.max_speakers)
        if file.piece_speakers:  # a voice per channel: channels heard apart (speakers/sources.py)
            segments, file.speaker_turns = diarize_sources(pieces, file.piece_speakers, file.speaker_windows, count,
                                                           build, keep)
            return segments
        words, file.speaker_turns = diarize(words, file.speaker_windows, count)
        return speaker_segments(words, build, keep)

    def count_ok(self) -> int:
        return sum(1 for r in self.results if r.status == "ok")

    def _write(self, sink: ResultSink, file: FileInFlight, transcript: Transcript, model_name: str) -> dict[str, str]:
        """Every format or none, then the stamp that lets a re-run skip the file (the sink's rule)."""
        source = file.source
        label = source.label if source.label is not None else text_key(source.shown)
        texts = render(transcript, model_name, label, self.options)
        return sink.write(source.name, texts, label, file.identity, file.settings_key)

    def record_failures(self) -> None:
        """Each sink's record of this run's failures (never raises); the run's own sink is told even
        when nothing failed (a folder's failures.jsonl of an earlier run goes)."""
        by_sink: dict[int, tuple[ResultSink, list[Failure]]] = {}
        if self.sink is not None:
            by_sink[id(self.sink)] = (self.sink, [])
        for sink, failure in self.failures:
            if sink is not None:
                by_sink.setdefault(id(sink), (sink, []))[1].append(failure)
        for sink, failures in by_sink.values():
            sink.record_failures(failures)


def _with_decoding(segment: Segment, pieces: list[PieceText], keep_words: bool) -> Segment:
    """A segment with openai-whisper's decoding fields, from the window its first word was decoded in."""
    piece = next((p for p in reversed(pieces) if p.start <= segment.start + 1e-6), pieces[0])
    decoded = piece.decoded
    return replace(
        segment,
        words=segment.words if keep_words else (),
        tokens=tuple(t for w in segment.words for t in w.tokens),
        seek=int(round(piece.start * 100)),
        temperature=decoded.temperature,
        avg_logprob=decoded.avg_logprob,
        compression_ratio=decoded.compression_ratio,
        no_speech_prob=decoded.no_speech_prob,
    )
