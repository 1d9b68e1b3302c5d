"""One run: inputs -> audio -> packed batches -> engine -> transcripts on disk.

A producer thread decodes audio, finds speech and packs windows (with their features)
while the model works on the previous batch, so decoding overlaps inference. The model is
loaded once. A file is finished the moment its last piece comes back from the model; its
outputs are written atomically, and bad files fail alone.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol

from batchscribe.audio import SpeechPiece, VadOptions, open_audio, speech_pieces
from batchscribe.audio.decode import declared_seconds
from batchscribe.engine.backends import load_engine
from batchscribe.engine.batch import Batch, PieceText, PieceWords, transcribe_batch
from batchscribe.engine.decoding import DecodeOptions, Engine, LogMel
from batchscribe.engine.device import Placement, best_batch_size, choose_placement, quick_start
from batchscribe.engine.models import ResolvedModel, resolve_model
from batchscribe.engine.packing import WINDOW_SECONDS, PieceRef, Window, WindowPacker
from batchscribe.checks import check_inputs, check_language, check_output_dir, disk_full
from batchscribe.confidence import language_warnings
from batchscribe.errors import BatchscribeError, ModelError, OptionsError, OutputError
from batchscribe.inputs import InputFile, discover
from batchscribe.names import shown, text_key
from batchscribe.options import TranscribeOptions
from batchscribe.outputs.layout import output_path, plan_stems
from batchscribe.outputs.resume import content_sha256, is_done, mark_done, settings_key
from batchscribe.outputs.segments import build_segments, cue_rules
from batchscribe.outputs.writers import WRITERS, render, write_atomic, write_set
from batchscribe.results import FailureKind, FileResult, RunSummary, Segment, SourceAudio, Transcript, Word
from batchscribe.speakers import (
    SpeakerCount,
    channel_segments,
    diarize,
    embed_piece,
    joined_turns,
    load_encoder_soon,
    speaker_segments,
)
from batchscribe.speakers.sources import speaker_sources

FAILURES_FILE = "failures.jsonl"
LANGUAGE_PROBE_SECONDS = 5.0  # speech gathered before a file's language is detected
BATCHES_AHEAD = 4  # prepared batches waiting for a model worker

log = logging.getLogger("batchscribe")


class ProgressListener(Protocol):
    def started(self, files: int, skipped: int) -> None: ...

    def file_finished(self, result: FileResult) -> None: ...


@dataclass
class _Job:
    """A file in flight: its pieces come back from the model in any order."""

    input: InputFile
    stem: Path
    sha256: str
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


@dataclass
class _FileRead:
    job_id: int
    duration: float
    piece_count: int
    language: Optional[str]
    language_probability: Optional[float]
    audio: SourceAudio
    piece_speakers: tuple[str, ...] = ()
    speaker_turns: tuple = ()


@dataclass
class _Speech:
    """A piece to embed for diarization, on the model workers' pool beside the batches."""

    job_id: int
    piece: SpeechPiece


@dataclass
class _FileFailed:
    job_id: int
    error: str
    failure: FailureKind


_END = object()


class _Producer(threading.Thread):
    """Decodes, finds speech, detects language and packs windows into batches, ahead of the model."""

    def __init__(
        self,
        load_engine: Callable[[], Engine],
        model: ResolvedModel,
        jobs: dict[int, _Job],
        options: TranscribeOptions,
    ):
        super().__init__(name="batchscribe-audio", daemon=True)
        self.load_engine = load_engine  # waits for the model, which may still be loading
        self.multilingual = model.multilingual
        self.mel = LogMel(model.n_mels)  # features need no model: ready before it has loaded
        self.jobs = list(jobs.items())  # the consumer removes finished jobs from its dict
        self.options = options
        self.out: queue.Queue = queue.Queue()
        self._batch_slots = threading.Semaphore(BATCHES_AHEAD)
        self.stop = threading.Event()
        self._packers: dict[tuple, WindowPacker] = {}
        self._ready: dict[tuple, list[Window]] = {}
        self.vad = VadOptions(
            options.vad_threshold, options.vad_min_silence_duration_ms, options.vad_speech_pad_ms,
            options.vad_min_speech_duration_ms, options.vad_filter,
        )  # fmt: skip

    def run(self) -> None:
        try:
            for job_id, job in self.jobs:
                if self.stop.is_set():
                    return
                self._read(job_id, job)
            self._flush(list(self._packers))
            self._put(_END)
        except BaseException as error:  # surfaced in the consumer thread
            self._put(error)

    def _put(self, item) -> None:
        """A batch waits for one of BATCHES_AHEAD slots (features take memory); news about a file
        never waits. (With one bounded queue for both, file news filled it while every worker was
        busy and the consumer not reading, and the audio thread stalled: on 60 short files it read
        nothing for 2.7 s, and workers then sat idle waiting for batches.)"""
        if isinstance(item, Batch):
            while not self._batch_slots.acquire(timeout=0.2):
                if self.stop.is_set():
                    return
        self.out.put(item)

    def _flush(self, groups: list[tuple]) -> None:
        """Close the open windows of `groups` and send every window they hold."""
        for group in groups:
            packer = self._packers.pop(group, None)
            if packer is not None:
                self._collect(packer.flush())
            windows = self._ready.pop(group, [])
            for start in range(0, len(windows), self.options.batch_size):
                self._put(Batch.prepare(self.mel.features, windows[start : start + self.options.batch_size]))

    def batch_taken(self) -> None:
        self._batch_slots.release()

    def _read(self, job_id: int, job: _Job) -> None:
        try:
            stream = open_audio(job.input.path, self.options.audio_track or 1)
            count = 0
            # not measured: given, English-only, or (multilingual) no speech to measure it on
            language = self.options.language or (None if self.multilingual else "en")
            probability: Optional[float] = None
            sources = speaker_sources(stream, self.options)  # --speakers channels, --audio-track all
            found = sources.pieces(self.vad) if sources else self._media_timeline(stream)
            for piece, language, probability in self._with_language(found):  # noqa: B007 (the last describe the file)
                self._add(language, job.initial_prompt, PieceRef(job_id, count, piece))
                if self.options.speakers == "diarize":
                    self._put(_Speech(job_id, piece))
                count += 1
            end, audio = (sources.end, sources.source_audio()) if sources else (stream.end, stream.source_audio())
            labels, turns = (tuple(sources.labels), joined_turns(sources.turns)) if sources else ((), ())
            self._put(_FileRead(job_id, end, count, language, probability, audio, labels, turns))
            if not self.options.packing:  # this file's windows are all known: send them now
                self._flush([g for g in list(self._packers) + list(self._ready) if g[2] == job_id])
        except BatchscribeError as error:
            self._put(_FileFailed(job_id, str(error), FailureKind.of(error)))
        except Exception as error:  # a decoder bug must not stop the batch (and recurs on the same bytes)
            kind = FailureKind.TRANSIENT if isinstance(error, (OSError, MemoryError)) else FailureKind.BAD_INPUT
            message = f"{job.input.path}: unexpected error while reading: {error!r}"
            self._put(_FileFailed(job_id, message, kind))

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
                language, probability = self._detect(held)
                yield from ((p, language, probability) for p in held)
                held = []
            else:
                yield piece, language, probability
        if held:
            language, probability = self._detect(held)
            yield from ((p, language, probability) for p in held)

    def _detect(self, pieces: list[SpeechPiece]) -> tuple[str, float]:
        window = Window("", [])
        for index, piece in enumerate(pieces):
            offset = window.end + 0.2 if window.pieces else 0.0
            if offset + piece.duration > WINDOW_SECONDS:
                break
            window.pieces.append(PieceRef(-1, index, piece, offset))
            piece.language_probed = True  # its language is the one detected: no need to check it again
        return self.load_engine().detect_language(self.mel.features(window.audio()), window.end)

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
                self._put(Batch.prepare(self.mel.features, ready[:]))
                ready.clear()


class _Run:
    def __init__(
        self,
        options: TranscribeOptions,
        output_dir: Optional[Path],
        listener: Optional[ProgressListener],
        multilingual: bool = False,
    ):
        self.options = options
        self.multilingual = multilingual
        self.output_dir = output_dir
        self.listener = listener
        self.results: list[FileResult] = []
        self.settings = options.output_settings()
        self.key = settings_key(self.settings)

    def finish(self, result: FileResult) -> None:
        self.results.append(result)
        if self.listener:
            self.listener.file_finished(result)

    def fail(self, source: str, error: str, failure: FailureKind = FailureKind.TRANSIENT) -> None:
        self.finish(FileResult(source=source, status="failed", error=error, failure=failure))

    def pending_jobs(
        self, files: list[InputFile], prompts: Optional[dict[str, str]] = None
    ) -> tuple[dict[int, _Job], int]:
        jobs: dict[int, _Job] = {}
        skipped = 0
        by_path = {os.path.abspath(path): prompt for path, prompt in (prompts or {}).items()}
        for file, stem in plan_stems(files).items():
            prompt = by_path.get(os.path.abspath(file.path), self.options.initial_prompt)
            key = self.key if prompt == self.options.initial_prompt else settings_key(
                {**self.settings, "initial_prompt": prompt}
            )  # fmt: skip
            try:
                if self.output_dir is None:  # nothing to resume against: only make sure it can be read
                    open(file.path, "rb").close()
                    sha256 = ""
                else:
                    sha256 = content_sha256(file.path)
            except OSError as error:
                reason = "permission denied" if isinstance(error, PermissionError) else (error.strerror or str(error))
                self.fail(str(file.path), f"{file.path}: cannot be read: {reason}")
                continue
            done = (
                self.output_dir is not None
                and not self.options.overwrite
                and is_done(self.output_dir, stem, self.options.formats, sha256, key)
            )
            if done:
                skipped += 1
                self.results.append(FileResult(source=str(file.path), status="skipped"))
            else:
                jobs[len(jobs)] = _Job(file, stem, sha256, prompt, key)
        return jobs, skipped

    def complete(self, job: _Job, model_name: str) -> None:
        pieces = [job.words[i] for i in range(job.piece_count or 0)]
        words = [w for piece in pieces for w in piece.words]
        keep_words = self.options.word_timestamps or self.options.highlight_words
        try:
            segments = self._segments(job, [piece.words for piece in pieces])
        except Exception as error:  # the speaker step failing fails this file, never the batch
            self.fail(str(job.input.path), f"{job.input.path}: speaker labelling failed: {error}")
            return
        transcript = Transcript(
            segments=tuple(_with_decoding(s, pieces, keep_words) for s in segments),
            language=job.language,
            language_probability=job.language_probability,
            warnings=language_warnings(words, job.language, job.language_probability, self.multilingual),
            duration=job.duration or 0.0,
            speaker_turns=job.speaker_turns,
            audio=job.audio,
        )
        result = FileResult(str(job.input.path), "ok", transcript=transcript, audio_seconds=transcript.duration)
        if self.output_dir is not None:
            try:
                result.outputs = self._write(job, transcript, model_name)
            except OSError as error:
                if disk_full(error):  # the environment, not the file: stop before transcribing more
                    kept = self.count_ok()
                    raise OutputError(
                        f"{shown(self.output_dir)}: the disk is full ({error.strerror}); stopped taking new files. "
                        f"{kept} complete transcript set(s) are kept and no partial set was left; free space "
                        "and run the same command again: finished files are skipped"
                    ) from None
                self.fail(str(job.input.path), f"{job.input.path}: cannot write its transcript: {error}")
                return
        self.finish(result)

    def _segments(self, job: _Job, pieces: list[list[Word]]) -> tuple[Segment, ...]:
        """Segments with their words (each segment's decoding fields need its words' tokens)."""
        keep, rules = True, cue_rules(self.options)

        def build(words: list[Word], keep_words: bool) -> tuple[Segment, ...]:
            return build_segments(words, keep_words, rules)

        if self.options.speakers == "channels" or self.options.audio_track == 0:  # a source per speaker
            return channel_segments(pieces, job.piece_speakers, build, keep)
        words = [w for piece in pieces for w in piece]
        if self.options.speakers != "diarize":
            return build(words, keep)
        if job.speaker_error:
            raise BatchscribeError(job.speaker_error)
        options = self.options
        count = SpeakerCount(options.num_speakers, options.min_speakers, options.max_speakers)
        words, job.speaker_turns = diarize(words, job.speaker_windows, count)
        return speaker_segments(words, build, keep)

    def count_ok(self) -> int:
        return sum(1 for r in self.results if r.status == "ok")

    def _write(self, job: _Job, transcript: Transcript, model_name: str) -> dict[str, Path]:
        """Every format or none (write_set), then the stamp that lets a re-run skip the file."""
        assert self.output_dir is not None
        texts = render(transcript, model_name, text_key(str(job.input.path)), self.options)
        outputs = {fmt: output_path(self.output_dir, job.stem, fmt) for fmt in texts}
        write_set({outputs[fmt]: text for fmt, text in texts.items()})
        mark_done(self.output_dir, job.stem, job.input.path, job.sha256, job.settings_key)
        return outputs

    def write_failures(self) -> None:
        """Never raises: a full or read-only disk gets a warning naming the failures instead."""
        if self.output_dir is None:
            return
        path = self.output_dir / FAILURES_FILE
        failed = [r for r in self.results if r.status == "failed"]
        try:
            if failed:
                lines = "".join(
                    json.dumps({"input": text_key(r.source), "error": shown(r.error)}, ensure_ascii=False) + "\n"
                    for r in failed
                )
                write_atomic(path, lines)
            else:
                path.unlink(missing_ok=True)
        except OSError as error:
            log.warning("%s could not be written (%s); the failed files were: %s", shown(path), error.strerror or error,
                        "; ".join(shown(r.error) for r in failed))


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


class Transcriber:
    """A model loaded once (on first use) that transcribes run after run: what a worker keeps.

    `engine_loader` makes the engine from the resolved model and its placement: the backend's
    (engine/backends.py) unless a test hands in another, such as a fake that returns scripted words.
    """

    def __init__(
        self,
        options: Optional[TranscribeOptions] = None,
        engine_loader: Callable[[ResolvedModel, Placement], Engine] = load_engine,
        one_shot: bool = False,
    ):
        self.options = options or TranscribeOptions()
        self._one_shot = one_shot  # one run, then the process ends: a small run may skip PyTorch (quick_start)
        if self.options.condition_on_previous_text:
            raise OptionsError(
                "--condition-on-previous-text True is not supported: batchscribe decodes a file's windows in "
                "parallel, packed with other files' speech, so a window's previous text is not known when it is "
                "decoded; give the vocabulary with --initial-prompt or --hotwords instead"
            )
        unknown = set(self.options.formats) - set(WRITERS)
        if unknown:
            raise BatchscribeError(
                f"unknown output format(s): {', '.join(sorted(unknown))}; choose from {', '.join(WRITERS)}"
            )
        self._check_speaker_options()
        self.placement = self._placement(self.options.backend)
        self.model = resolve_model(self.options.model, self.options.backend)
        check_language(self.options.language, self.options.task, self.model.multilingual)
        if self.model.layout == "hf" and self.placement.backend != "torch":
            self.placement = self._placement("torch")  # only PyTorch runs a Hugging Face folder
        if not self.options.batch_size:
            self.options = replace(self.options, batch_size=best_batch_size(self.placement))
        self.model_load_seconds = 0.0
        self._engine: Optional[Engine] = None
        self._engine_loader = engine_loader

    def _check_speaker_options(self) -> None:
        options = self.options
        if options.audio_track == 0 and options.speakers:
            raise OptionsError(f"--audio-track all labels each track as a speaker: drop --speakers {options.speakers}")
        if options.speakers == "diarize":
            SpeakerCount(options.num_speakers, options.min_speakers, options.max_speakers)  # raises OptionsError
        elif "rttm" in options.formats and not options.speakers and options.audio_track != 0:
            raise OptionsError(
                "--formats rttm holds speaker turns: add --diarize, --speakers channels or --audio-track all"
            )

    def _placement(self, backend: str) -> Placement:
        options = self.options
        return choose_placement(options.device, options.compute_type, options.threads, options.encoder, backend)

    def engine(self) -> Engine:
        if self._engine is None:
            loading = time.perf_counter()
            self._engine = self._engine_loader(self.model, self.placement)
            self.model_load_seconds = time.perf_counter() - loading
            if self.options.language:  # reject impossible options before reading audio
                self._engine.tokenizer(self.options.language, self.options.task)
        return self._engine

    def _engine_soon(self) -> Callable[[], Engine]:
        """Load the model in the background (importing PyTorch alone takes about a second) while
        the audio thread starts reading; the returned call waits for it."""
        if self._engine is not None:
            engine = self._engine
            return lambda: engine
        loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchscribe-load")
        loading = loader.submit(self.engine)
        loader.shutdown(wait=False)
        return loading.result

    def run(
        self,
        inputs: list[str],
        output_dir: Optional[Path],
        listener: Optional[ProgressListener] = None,
        prompts: Optional[dict[str, str]] = None,
    ) -> RunSummary:
        """Transcribe every file named by `inputs`; write outputs under `output_dir` if given.

        `prompts` gives single files (by path) their own initial prompt instead of the options' one;
        their pieces are packed only with pieces of files with the same prompt."""
        started = time.perf_counter()
        this_run = _Run(
            self.options, Path(output_dir) if output_dir is not None else None, listener, self.model.multilingual
        )
        files, missing = discover(inputs)
        for warning in check_inputs(inputs, files, missing):  # raises when there is nothing at all
            log.warning("%s", warning)
        if output_dir is not None:
            check_output_dir(Path(output_dir))
        for item in missing:
            this_run.fail(item.spec, item.error, FailureKind.BAD_INPUT)
        jobs, skipped = this_run.pending_jobs(files, prompts)
        if listener:
            listener.started(len(files) + len(missing), skipped)
        if jobs and self._one_shot and self._engine is None:
            durations = (declared_seconds(job.input.path) for job in jobs.values())
            self.placement = quick_start(self.placement, self.options.encoder, self.model.name, durations)
        try:
            if jobs:
                _transcribe(self._engine_soon(), self.model, jobs, self.options, this_run)
        finally:
            this_run.write_failures()
        return RunSummary(
            this_run.results,
            time.perf_counter() - started,
            self.model.name,
            self.placement.device,
            self.placement.compute_type,
            encoder=self.placement.encoder,
            backend=self.placement.backend,
            model_load_seconds=self.model_load_seconds,
        )


def run(
    inputs: list[str],
    output_dir: Optional[Path],
    options: Optional[TranscribeOptions] = None,
    listener: Optional[ProgressListener] = None,
    prompts: Optional[dict[str, str]] = None,
) -> RunSummary:
    """Transcribe every file named by `inputs` with a freshly loaded model."""
    return Transcriber(options, one_shot=True).run(inputs, output_dir, listener, prompts)


def decode_options_of(options: TranscribeOptions) -> DecodeOptions:
    """The engine's decoding options for a run's options."""
    return DecodeOptions(
        task=options.task,
        beam_size=options.beam_size,
        temperature=options.temperature,
        temperatures=options.temperatures(),
        compression_ratio_threshold=options.compression_ratio_threshold,
        logprob_threshold=options.logprob_threshold,
        no_speech_threshold=options.no_speech_threshold,
        initial_prompt=options.initial_prompt,
        hotwords=options.hotwords,
        suppress_tokens=options.suppress_token_ids(),
    )


def _batch_words(future: Future) -> PieceWords:
    """A batch's words; the model failing (out of GPU memory, a missing library) ends the run with
    an error that says so, not a traceback. Transcripts already written stay."""
    try:
        return future.result()
    except BatchscribeError:
        raise
    except Exception as error:
        raise ModelError(
            f"the model failed on a batch: {type(error).__name__}: {error}; finished transcripts are kept, "
            "re-run to resume"
        ) from error


def _take_speaker_windows(job: _Job, future: Future) -> None:
    job.embeddings_pending -= 1
    try:
        job.speaker_windows.extend(future.result())
    except Exception as error:
        job.speaker_error = f"the speaker encoder failed: {type(error).__name__}: {error}"


def _transcribe(
    load_engine: Callable[[], Engine],
    model: ResolvedModel,
    jobs: dict[int, _Job],
    options: TranscribeOptions,
    this_run: _Run,
) -> None:
    """Feed batches to the engine's workers as the producer makes them; finish files as they complete."""
    model_name = model.name
    producer = _Producer(load_engine, model, jobs, options)
    producer.start()
    speaker_encoder = load_encoder_soon(options.speaker_model if options.speakers == "diarize" else None)
    try:
        engine = load_engine()
        encoder = speaker_encoder()
    except BaseException:
        producer.stop.set()
        producer.join(timeout=5)
        raise
    # code-switching (engine/batch.py): a multilingual model with no --language follows a change of language
    follow_language = model.multilingual and not options.language
    decode_options = replace(decode_options_of(options), detect_language=follow_language)
    speaker_jobs: dict[Future, int] = {}  # embeddings in flight -> their file
    failed: set[int] = set()
    running: set[Future] = set()
    ended = False

    def finish_ready(job_ids: set[int]) -> None:
        for job_id in sorted(job_ids - failed):
            if jobs[job_id].complete:
                this_run.complete(jobs.pop(job_id), model_name)

    def take(item) -> None:
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, _FileFailed):
            failed.add(item.job_id)
            this_run.fail(str(jobs[item.job_id].input.path), item.error, item.failure)
        elif isinstance(item, _FileRead):
            job = jobs[item.job_id]
            job.duration, job.piece_count = item.duration, item.piece_count
            job.language, job.language_probability = item.language, item.language_probability
            job.piece_speakers, job.speaker_turns = item.piece_speakers, item.speaker_turns
            job.audio = item.audio
            finish_ready({item.job_id})
        elif isinstance(item, _Speech):
            jobs[item.job_id].embeddings_pending += 1
            embedding = pool.submit(embed_piece, encoder, item.piece)
            speaker_jobs[embedding] = item.job_id
            running.add(embedding)
        else:
            producer.batch_taken()
            running.add(pool.submit(transcribe_batch, engine, item, decode_options))

    with ThreadPoolExecutor(max_workers=engine.workers, thread_name_prefix="batchscribe-model") as pool:
        try:
            while not ended or running:
                if not ended and len(running) < engine.workers:
                    try:
                        item = producer.out.get(timeout=None if not running else 0.05)
                    except queue.Empty:
                        item = None
                    if item is _END:
                        ended = True
                    elif item is not None:
                        take(item)
                done, _ = wait(
                    running,
                    timeout=0 if (not ended and len(running) < engine.workers) else None,
                    return_when=FIRST_COMPLETED,
                )
                for future in done:
                    running.discard(future)
                    if future in speaker_jobs:
                        job_id = speaker_jobs.pop(future)
                        _take_speaker_windows(jobs[job_id], future)
                        finish_ready({job_id})
                        continue
                    touched = set()
                    for (job_id, index), words in _batch_words(future).items():
                        jobs[job_id].words[index] = words
                        touched.add(job_id)
                    finish_ready(touched)
        finally:
            producer.stop.set()
            for future in running:
                future.cancel()
            producer.join(timeout=5)
